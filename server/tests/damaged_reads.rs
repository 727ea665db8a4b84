//! A damaged row answers CORRUPT per feature (issue 19): in a GET or GET_MANY over several keys
//! and groups, only the damaged (entity, group) row's features read CORRUPT, everything else is
//! answered as usual, in both open modes (from the checkpoint, and by a full scan). A client
//! that does not set the request flag CORRUPT_STATUS gets STORE_FAILED, a status it knows,
//! for the damaged entity only.

mod common;

use common::{f32_group, http_get, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, FeatureValue, PutOptions, Status, Value};
use quiver_server::client::Client;
use quiver_server::protocol::{
    decode_response, encode_request, FrameHeader, Request, Response, StatusCode, HEADER_LEN,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

/// The entity whose row in group `a` is damaged; unique bytes, so that it can be found in the
/// data file.
const VICTIM: &str = "victim-entity-0001";

fn key(s: &str) -> EntityKey {
    EntityKey::String(s.into())
}

fn r(group: &str, feature: &str) -> FeatureRef {
    FeatureRef::new(group, feature)
}

fn args(data: &Path) -> Vec<&str> {
    let p = data.to_str().expect("utf-8 path");
    vec![
        "--data",
        p,
        "--size",
        "32MiB",
        "--workers",
        "2",
        "--engine-threads",
        "2",
    ]
}

fn start(data: &Path) -> Quiverd {
    Quiverd::start(&args(data))
}

/// The value of the sample `name` in a Prometheus text body.
fn sample(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in {body}"))
        .trim()
        .parse()
        .unwrap()
}

/// STATS' engine figure `name`.
fn stat(c: &mut Client, name: &str) -> u64 {
    let doc: serde_json::Value = serde_json::from_str(&c.stats().unwrap()).unwrap();
    doc["engine"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no engine.{name} in {doc}"))
}

fn put(c: &mut Client, group: &str, k: &str, f0: f32, f1: f32) {
    let values = vec![("f0".into(), Value::F32(f0)), ("f1".into(), Value::F32(f1))];
    c.put(group, key(k), 1000, values, PutOptions::default())
        .unwrap();
}

/// Groups `a` and `b` (two f32 features each); entities k0..k9 and VICTIM in both. VICTIM's
/// row in `a` is written first, so its frame is the first place its key bytes appear.
fn populate(data: &Path) {
    let q = start(data);
    let mut c = q.client();
    c.create_group(f32_group("a", 2)).unwrap();
    c.create_group(f32_group("b", 2)).unwrap();
    put(&mut c, "a", VICTIM, 1.0, 2.0);
    put(&mut c, "b", VICTIM, 3.0, 4.0);
    for i in 0..10 {
        put(&mut c, "a", &format!("k{i}"), i as f32, 10.0 + i as f32);
        put(
            &mut c,
            "b",
            &format!("k{i}"),
            20.0 + i as f32,
            30.0 + i as f32,
        );
    }
    assert!(q.terminate().success(), "quiverd shuts down cleanly");
}

/// Flips the byte right after the key in VICTIM's first frame (its row in `a`): the frame's
/// header stays intact, its body fails its checksum.
fn damage_victim_row_in_a(data: &Path) {
    let mut bytes = std::fs::read(data).unwrap();
    let at = bytes
        .windows(VICTIM.len())
        .position(|w| w == VICTIM.as_bytes())
        .expect("the victim's key bytes are in the data file");
    bytes[at + VICTIM.len()] ^= 0x5a;
    std::fs::write(data, bytes).unwrap();
}

fn present(v: &FeatureValue, expect: f32) {
    assert_eq!(v.status, Status::Present, "{v:?}");
    assert_eq!(v.value, Value::F32(expect), "{v:?}");
}

fn corrupt(v: &FeatureValue) {
    assert_eq!(v.status, Status::Corrupt, "{v:?}");
    assert_eq!(v.value, Value::Null);
    assert_eq!(v.event_time_ms, 0);
}

/// The Rust client sets CORRUPT_STATUS: damage comes back typed, per feature.
fn check_typed(c: &mut Client, mode: &str) {
    let refs = vec![r("a", "f0"), r("a", "f1")];
    let items = c
        .get_many(vec![key("k1"), key(VICTIM), key("k2")], refs.clone())
        .unwrap();
    assert_eq!(items.len(), 3, "{mode}");
    let k1 = items[0].as_ref().expect("k1 is answered");
    present(&k1[0], 1.0);
    present(&k1[1], 11.0);
    let victim = items[1]
        .as_ref()
        .unwrap_or_else(|e| panic!("{mode}: the damaged key's item is answered, per feature: {e}"));
    victim.iter().for_each(corrupt);
    let k2 = items[2].as_ref().expect("k2 is answered");
    present(&k2[0], 2.0);

    // Across groups: only the damaged group's features are CORRUPT.
    let got = c
        .get(key(VICTIM), vec![r("a", "f0"), r("b", "f1"), r("a", "f1")])
        .unwrap_or_else(|e| panic!("{mode}: GET of the damaged key: {e}"));
    corrupt(&got[0]);
    present(&got[1], 4.0);
    corrupt(&got[2]);

    // Pipelined GETs with the same references are served by one engine batch.
    let ids: Vec<u64> = ["k3", VICTIM, "k4"]
        .iter()
        .map(|k| {
            c.send(&Request::Get {
                key: key(k),
                features: refs.clone(),
            })
            .unwrap()
        })
        .collect();
    let answers: Vec<Vec<FeatureValue>> = ids
        .iter()
        .map(|&id| match c.wait(id).unwrap() {
            Response::Get(v) => v,
            other => panic!("{mode}: {other:?}"),
        })
        .collect();
    present(&answers[0][0], 3.0);
    answers[1].iter().for_each(corrupt);
    present(&answers[2][1], 14.0);
}

/// One raw request without flags (a client that predates CORRUPT_STATUS) on a fresh connection.
fn legacy_call(addr: &str, request: &Request) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut call = |id: u64, req: &Request| -> Response {
        let mut frame = Vec::new();
        encode_request(id, req, &mut frame);
        s.write_all(&frame).unwrap();
        let mut head = [0u8; HEADER_LEN];
        s.read_exact(&mut head).unwrap();
        let h = FrameHeader::decode(&head, u32::MAX).unwrap();
        let mut body = vec![0u8; h.body_len as usize];
        s.read_exact(&mut body).unwrap();
        decode_response(&h, &body).unwrap()
    };
    let hello = Request::Handshake {
        version: 1,
        token: Vec::new(),
    };
    assert!(matches!(call(1, &hello), Response::Handshake(_)));
    call(2, request)
}

fn check_legacy(addr: &str, mode: &str) {
    let refs = vec![r("a", "f0"), r("b", "f0")];
    match legacy_call(
        addr,
        &Request::Get {
            key: key(VICTIM),
            features: refs.clone(),
        },
    ) {
        Response::Error { status, message } => {
            assert_eq!(status, StatusCode::StoreFailed, "{mode}: {message}");
            assert!(message.contains("CORRUPT"), "{mode}: {message}");
        }
        other => panic!("{mode}: a client without the flag must not see CORRUPT: {other:?}"),
    }
    match legacy_call(
        addr,
        &Request::GetMany {
            keys: vec![key("k5"), key(VICTIM)],
            features: refs,
        },
    ) {
        Response::GetMany(items) => {
            let k5 = items[0].as_ref().expect("k5 is answered");
            present(&k5[0], 5.0);
            present(&k5[1], 25.0);
            let (status, message) = items[1].as_ref().expect_err("the damaged key's item");
            assert_eq!(*status, StatusCode::StoreFailed, "{mode}: {message}");
            assert!(message.contains("a:f0"), "{mode}: {message}");
            assert!(!message.contains("b:f0"), "{mode}: {message}");
        }
        other => panic!("{mode}: {other:?}"),
    }
}

#[test]
fn a_damaged_row_reads_corrupt_per_feature_in_both_open_modes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("q.db");
    populate(&data);
    damage_victim_row_in_a(&data);
    let ckpt = dir.path().join("q.db.ckpt");
    assert!(ckpt.exists(), "a clean shutdown leaves a checkpoint");

    // Restarted with its checkpoint.
    let q = start(&data);
    let mut c = q.client();
    check_typed(&mut c, "checkpoint");
    check_legacy(&q.addr, "checkpoint");
    assert!(q.terminate().success());

    // By a full scan; STATS and /metrics count the damaged key and the reads it answered.
    std::fs::remove_file(&ckpt).unwrap();
    let (q, metrics) = Quiverd::start_with_metrics(&args(&data));
    let mut c = q.client();
    let body = http_get(&metrics, "/metrics");
    assert_eq!(sample(&body, "quiver_engine_damaged_keys"), 1, "{body}");
    assert_eq!(sample(&body, "quiver_engine_damaged_reads_total"), 0);
    check_typed(&mut c, "scan");
    check_legacy(&q.addr, "scan");
    // check_typed reads the damaged row 3 times, check_legacy twice.
    let body = http_get(&metrics, "/metrics");
    assert!(
        body.contains("# TYPE quiver_engine_damaged_reads_total counter"),
        "{body}"
    );
    assert_eq!(sample(&body, "quiver_engine_damaged_reads_total"), 5);
    assert_eq!(stat(&mut c, "damaged_keys"), 1);
    assert_eq!(stat(&mut c, "damaged_reads"), 5);

    // A rewrite clears the damage.
    put(&mut c, "a", VICTIM, 7.0, 8.0);
    let got = c
        .get(key(VICTIM), vec![r("a", "f0"), r("b", "f0")])
        .unwrap();
    present(&got[0], 7.0);
    present(&got[1], 3.0);
    let body = http_get(&metrics, "/metrics");
    assert_eq!(sample(&body, "quiver_engine_damaged_keys"), 0, "{body}");
    assert_eq!(stat(&mut c, "damaged_keys"), 0);
}
