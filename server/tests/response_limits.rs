//! Responses are bounded: none exceeds `max_frame_bytes` (a GET_MANY or GET that would is
//! refused with LIMIT_EXCEEDED naming the limit), and a client that pipelines large reads
//! without reading the answers cannot make the server queue more than about
//! `max_output_bytes_per_connection` for it (the excess is refused with BUSY).

mod common;

use common::{feature, Quiverd};
use quiver_engine::feature::{
    Compression, EntityKey, FeatureRef, FeatureType, GroupSpec, KeyType, PutOptions, Value,
};
use quiver_server::client::Client;
use quiver_server::protocol::{
    decode_response, encode_request, FrameHeader, Request, Response, StatusCode, HEADER_LEN,
    PROTOCOL_VERSION,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const MAX_FRAME: usize = 64 << 10;
/// Bytes of the one `bytes` value every entity holds.
const VALUE_BYTES: usize = 10_000;
const ENTITIES: usize = 40;

fn blob_group() -> GroupSpec {
    GroupSpec {
        name: "g".into(),
        key_type: KeyType::String,
        features: vec![feature("blob", FeatureType::Bytes)],
        ttl_s: None,
        compression: Compression::None,
        allow_non_finite: false,
        description: String::new(),
        owner: String::new(),
        tags: vec![],
        history: None,
        on_violation: Default::default(),
        quality: Default::default(),
    }
}

fn blob() -> FeatureRef {
    FeatureRef {
        group: "g".into(),
        feature: "blob".into(),
    }
}

fn key(i: usize) -> EntityKey {
    EntityKey::String(format!("k{i}"))
}

fn value(i: usize) -> Value {
    Value::Bytes(vec![(i % 251) as u8; VALUE_BYTES])
}

/// quiverd with a 64 KiB frame limit and `ENTITIES` rows of `VALUE_BYTES` each.
fn populated(extra: &[&str]) -> Quiverd {
    let frame = MAX_FRAME.to_string();
    let mut args = vec!["--max-frame-bytes", frame.as_str()];
    args.extend_from_slice(extra);
    let q = Quiverd::memory(&args);
    let mut c = q.client();
    c.create_group(blob_group()).unwrap();
    for i in 0..ENTITIES {
        let values = vec![("blob".into(), value(i))];
        c.put("g", key(i), 1, values, PutOptions::default())
            .unwrap();
    }
    q
}

fn expect_limit(err: quiver_server::client::ClientError, what: &str) {
    assert_eq!(
        err.status(),
        Some(StatusCode::LimitExceeded),
        "{what}: {err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("max_frame_bytes limit of {MAX_FRAME}")),
        "{what}: {text}"
    );
}

#[test]
fn reads_whose_response_would_exceed_the_frame_limit_are_refused() {
    let q = populated(&[]);
    let mut c = q.client();
    let mut bystander = q.client();
    // 40 values of 10,000 bytes: about 400 KB, over the 64 KiB frame limit.
    let all: Vec<EntityKey> = (0..ENTITIES).map(key).collect();
    let err = c.get_many(all, vec![blob()]).unwrap_err();
    expect_limit(err, "GET_MANY");
    // A batch small enough for the io_uring loop to serve itself: 7 values, about 70 KB.
    let err = c
        .get_many((0..7).map(key).collect(), vec![blob()])
        .unwrap_err();
    expect_limit(err, "GET_MANY of 7 keys");
    // One key, the same feature named 10 times: about 100 KB.
    let err = c.get(key(0), vec![blob(); 10]).unwrap_err();
    expect_limit(err, "GET");
    // The connection and the other clients go on; a batch that fits is served.
    let few: Vec<EntityKey> = (0..5).map(key).collect();
    let items = c.get_many(few, vec![blob()]).unwrap();
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.as_ref().unwrap()[0].value, value(i));
    }
    assert_eq!(
        bystander.get(key(7), vec![blob()]).unwrap()[0].value,
        value(7)
    );
    c.ping().unwrap();
}

fn answered_gets(c: &mut Client) -> u64 {
    let json: serde_json::Value = serde_json::from_str(&c.stats().unwrap()).unwrap();
    json["ops"]["get"]["count"].as_u64().unwrap()
}

fn read_frame(s: &mut TcpStream) -> (FrameHeader, Response) {
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head).expect("response header");
    let h = FrameHeader::decode(&head, MAX_FRAME as u32).expect("a frame within the limit");
    let mut body = vec![0u8; h.body_len as usize];
    s.read_exact(&mut body).expect("response body");
    let r = decode_response(&h, &body).expect("response decodes");
    (h, r)
}

/// 200 GETs of about 50 KB each (10 MB) pipelined by a client that reads nothing until the
/// server has answered them all: with a 1 MiB output limit most are refused with BUSY, the
/// others are served intact, and the connection works afterwards.
#[test]
fn a_client_that_does_not_read_cannot_queue_unbounded_output() {
    const GETS: u64 = 200;
    let q = populated(&["--max-output-bytes-per-connection", "1MiB"]);
    let mut control = q.client();
    let before = answered_gets(&mut control);
    let mut s = TcpStream::connect(&q.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    let hello = Request::Handshake {
        version: PROTOCOL_VERSION.into(),
        token: vec![],
    };
    encode_request(1, &hello, &mut out);
    for id in 0..GETS {
        let get = Request::Get {
            key: key(id as usize % ENTITIES),
            features: vec![blob(); 5],
        };
        encode_request(100 + id, &get, &mut out);
    }
    s.write_all(&out).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered_gets(&mut control) < before + GETS {
        assert!(
            Instant::now() < deadline,
            "the server did not answer every GET"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", q.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()));
    let (mut ok, mut busy) = (0, 0);
    let (_, r) = read_frame(&mut s);
    assert!(matches!(r, Response::Handshake(_)), "{r:?}");
    for _ in 0..GETS {
        let (h, r) = read_frame(&mut s);
        let i = (h.request_id - 100) as usize % ENTITIES;
        match r {
            Response::Get(values) => {
                assert!(values.iter().all(|v| v.value == value(i)));
                ok += 1;
            }
            Response::Error { status, message } => {
                assert_eq!(status, StatusCode::Busy, "{message}");
                assert!(
                    message.contains("max_output_bytes_per_connection limit of 1048576"),
                    "{message}"
                );
                busy += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    println!("{ok} GETs served, {busy} refused with BUSY; quiverd VmRSS {rss_kib:?}");
    assert!(busy > 0, "all {ok} responses (about 10 MB) were queued");
    // Reading drained the queue: the same connection is served again.
    let again = Request::Get {
        key: key(3),
        features: vec![blob()],
    };
    let mut out = Vec::new();
    encode_request(7, &again, &mut out);
    s.write_all(&out).unwrap();
    let (h, r) = read_frame(&mut s);
    assert_eq!(h.request_id, 7);
    assert!(
        matches!(r, Response::Get(ref v) if v[0].value == value(3)),
        "{r:?}"
    );
}
