//! What docs/PROTOCOL.md promises about behaviour a client cannot see in the byte layout:
//! the limits announced in the handshake, a second handshake, GET_MANY of no keys, an empty
//! key, a made-up scan cursor, what `frames_malformed` counts, and a half-closed client that
//! still gets every answer.

mod common;

use common::{f32_group, test_config, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Status, Value};
use quiver_engine::ScanCursor;
use quiver_server::client::Client;
use quiver_server::protocol::{
    decode_response, encode_request, FrameHeader, Request, Response, ScanRequest, StatusCode,
    HEADER_LEN, PROTOCOL_VERSION,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn f0() -> Vec<FeatureRef> {
    vec![FeatureRef {
        group: "g".into(),
        feature: "f0".into(),
    }]
}

fn raw(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn send(s: &mut TcpStream, id: u64, request: &Request) {
    let mut out = Vec::new();
    encode_request(id, request, &mut out);
    s.write_all(&out).unwrap();
}

fn hello() -> Request {
    Request::Handshake {
        version: PROTOCOL_VERSION.into(),
        token: vec![],
    }
}

/// Reads one response frame; `None` when the server closed the connection.
fn read_frame(s: &mut TcpStream) -> Option<(FrameHeader, Response)> {
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head).ok()?;
    let h = FrameHeader::decode(&head, 1 << 30).unwrap();
    let mut body = vec![0u8; h.body_len as usize];
    s.read_exact(&mut body).unwrap();
    Some((h, decode_response(&h, &body).unwrap()))
}

fn server_counter(c: &mut Client, name: &str) -> u64 {
    let json: serde_json::Value = serde_json::from_str(&c.stats().unwrap()).unwrap();
    json["server"][name].as_u64().unwrap()
}

#[test]
fn handshake_announces_every_request_limit() {
    let q = Quiverd::memory(&[
        "--max-batch-keys",
        "77",
        "--max-features-per-request",
        "7",
        "--max-scan-chunks",
        "3",
        "--max-inflight-per-connection",
        "5",
    ]);
    let c = q.client();
    let info = c.server_info();
    assert_eq!(info.version, 1);
    assert_eq!(info.max_frame_bytes, 16 << 20);
    assert_eq!(info.max_batch_keys, 77);
    assert_eq!(info.max_features_per_request, 7);
    assert_eq!(info.max_scan_chunks, 3);
    assert_eq!(info.max_inflight_per_connection, 5);
    assert!(info.server.starts_with("quiverd "), "{}", info.server);
}

#[test]
fn a_second_handshake_is_answered_like_the_first() {
    let q = Quiverd::memory(&[]);
    let mut s = raw(&q.addr);
    send(&mut s, 1, &hello());
    assert!(matches!(
        read_frame(&mut s),
        Some((_, Response::Handshake(_)))
    ));
    send(&mut s, 2, &hello());
    let (h, r) = read_frame(&mut s).expect("second handshake answered");
    assert_eq!(h.request_id, 2);
    assert!(matches!(r, Response::Handshake(_)), "{r:?}");
    send(&mut s, 3, &Request::Ping { payload: vec![3] });
    let (h, r) = read_frame(&mut s).expect("ping after the second handshake");
    assert_eq!(h.request_id, 3);
    assert!(matches!(r, Response::Pong { payload } if payload == [3]));
    // A second handshake that fails closes the connection, as a first one would.
    send(
        &mut s,
        4,
        &Request::Handshake {
            version: 9,
            token: vec![],
        },
    );
    match read_frame(&mut s) {
        Some((_, Response::Error { status, .. })) => {
            assert_eq!(status, StatusCode::UnsupportedVersion)
        }
        other => panic!("expected UNSUPPORTED_VERSION, got {other:?}"),
    }
    assert!(read_frame(&mut s).is_none(), "connection still open");
}

#[test]
fn get_many_of_no_keys_is_an_invalid_argument() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    c.create_group(f32_group("g", 1)).unwrap();
    let err = c.get_many(vec![], f0()).unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::InvalidArgument), "{err}");
    assert!(err.to_string().contains("0 keys"), "{err}");
    // The connection goes on.
    let items = c
        .get_many(vec![EntityKey::String("k".into())], f0())
        .unwrap();
    assert!(items[0].is_ok());
}

#[test]
fn an_empty_key_is_refused_with_the_key_limit() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    c.create_group(f32_group("g", 1)).unwrap();
    let empty = EntityKey::String(String::new());
    let put = c
        .put(
            "g",
            empty.clone(),
            1,
            vec![("f0".into(), Value::F32(1.0))],
            PutOptions::default(),
        )
        .unwrap_err();
    assert_eq!(put.status(), Some(StatusCode::LimitExceeded), "{put}");
    assert!(put.to_string().contains("1 to 1024 bytes"), "{put}");
    let get = c.get(empty.clone(), f0()).unwrap_err();
    assert_eq!(get.status(), Some(StatusCode::LimitExceeded), "{get}");
    let items = c
        .get_many(vec![empty, EntityKey::String("k".into())], f0())
        .unwrap();
    let first = items[0].as_ref().unwrap_err();
    assert_eq!(first.status(), Some(StatusCode::LimitExceeded), "{first}");
    assert!(items[1].is_ok());
}

#[test]
fn a_made_up_cursor_is_not_an_error() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    c.create_group(f32_group("g", 1)).unwrap();
    for i in 0..20 {
        let key = EntityKey::String(format!("k{i}"));
        let values = vec![("f0".into(), Value::F32(i as f32))];
        c.put("g", key, 1, values, PutOptions::default()).unwrap();
    }
    // Past the end of the device: an empty last chunk.
    let (items, next) = c.scan_page("g", Some(ScanCursor(u64::MAX)), 10, 2).unwrap();
    assert!(items.is_empty() && next.is_none(), "{items:?} {next:?}");
    // Before the first entity (block 0 is never a data block): the whole group.
    let (items, next) = c.scan_page("g", Some(ScanCursor(0)), 100, 1).unwrap();
    assert_eq!(items.len(), 20);
    assert!(next.is_none());
    // Inside a block, at no frame boundary: the entities stored from there on, each once.
    let (_, mid) = c.scan_page("g", None, 5, 1).unwrap();
    let odd = ScanCursor(mid.unwrap().0 + 3);
    let (items, _) = c.scan_page("g", Some(odd), 100, 1).unwrap();
    let mut keys: Vec<String> = items.iter().map(|i| format!("{:?}", i.key)).collect();
    keys.dedup();
    assert_eq!(keys.len(), items.len());
    assert!(items.len() < 20, "{} entities", items.len());
    let mut raw_scan = raw(&q.addr);
    send(&mut raw_scan, 1, &hello());
    read_frame(&mut raw_scan).unwrap();
    send(
        &mut raw_scan,
        2,
        &Request::Scan(ScanRequest {
            group: "g".into(),
            cursor: Some(ScanCursor(0xdead_beef_dead_beef)),
            chunk_items: 10,
            max_chunks: 1,
        }),
    );
    let (_, r) = read_frame(&mut raw_scan).unwrap();
    assert!(
        matches!(r, Response::ScanChunk { ref items, next: None, more: false } if items.is_empty()),
        "{r:?}"
    );
}

#[test]
fn frames_malformed_counts_every_body_that_does_not_decode() {
    let q = Quiverd::memory(&[]);
    let mut control = q.client();
    let before = server_counter(&mut control, "frames_malformed");
    let mut s = raw(&q.addr);
    send(&mut s, 1, &hello());
    read_frame(&mut s).unwrap();
    // A GET, a PUT and a GROUP_DESCRIBE whose bodies end early, and a reserved flag.
    let mut frames = Vec::new();
    for (id, opcode) in [(2u64, 0x11u8), (3, 0x10), (4, 0x21)] {
        FrameHeader {
            opcode,
            flags: 0,
            status: 0,
            body_len: 1,
            request_id: id,
        }
        .encode(&mut frames);
        frames.push(9);
    }
    FrameHeader {
        opcode: 0x02,
        flags: 0x8000,
        status: 0,
        body_len: 0,
        request_id: 5,
    }
    .encode(&mut frames);
    s.write_all(&frames).unwrap();
    for _ in 0..4 {
        match read_frame(&mut s) {
            Some((_, Response::Error { status, .. })) => assert_eq!(status, StatusCode::BadFrame),
            other => panic!("expected BAD_FRAME, got {other:?}"),
        }
    }
    assert_eq!(server_counter(&mut control, "frames_malformed"), before + 4);
}

/// A client that pipelines more requests than may execute at once, then shuts down its write
/// side, gets an answer to every one of them before the server closes.
#[test]
fn a_half_closed_client_gets_every_answer() {
    const REQUESTS: u64 = 200;
    let q = Quiverd::memory(&["--max-inflight-per-connection", "2"]);
    let mut c = Client::connect(&q.addr, test_config()).unwrap();
    c.create_group(f32_group("g", 1)).unwrap();
    let mut s = raw(&q.addr);
    let mut out = Vec::new();
    encode_request(1, &hello(), &mut out);
    for id in 0..REQUESTS {
        let key = EntityKey::String(format!("k{id}"));
        encode_request(
            100 + id,
            &Request::Get {
                key,
                features: f0(),
            },
            &mut out,
        );
    }
    s.write_all(&out).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answered = 0;
    while let Some((h, r)) = read_frame(&mut s) {
        if h.request_id >= 100 {
            assert!(matches!(r, Response::Get(_)), "{r:?}");
            answered += 1;
        }
    }
    assert_eq!(answered, REQUESTS, "answers before the server closed");
}

#[test]
fn refs_puts_and_event_time_ties_behave_as_documented() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    c.create_group(f32_group("g", 2)).unwrap();
    let k = EntityKey::String("k".into());
    let put = |c: &mut Client, t: u64, values: Vec<(String, Value)>| {
        c.put("g", k.clone(), t, values, PutOptions::default())
    };
    // 0 values, and the same feature twice: INVALID_ARGUMENT, nothing written.
    let none = put(&mut c, 5, vec![]).unwrap_err();
    assert_eq!(none.status(), Some(StatusCode::InvalidArgument), "{none}");
    let twice = vec![
        ("f0".into(), Value::F32(1.0)),
        ("f0".into(), Value::F32(2.0)),
    ];
    let dup = put(&mut c, 5, twice).unwrap_err();
    assert_eq!(dup.status(), Some(StatusCode::InvalidArgument), "{dup}");
    assert_eq!(c.get(k.clone(), f0()).unwrap()[0].status, Status::NotFound);
    // Generations: 1 on creation, +1 per stored write, unchanged by an all-stale put.
    let first = put(&mut c, 5, vec![("f0".into(), Value::F32(1.0))]).unwrap();
    assert_eq!(first.generation, 1);
    // At an equal event time the later write wins.
    let tie = put(&mut c, 5, vec![("f0".into(), Value::F32(2.0))]).unwrap();
    assert_eq!((tie.written, tie.skipped_stale, tie.generation), (1, 0, 2));
    let stale = put(&mut c, 4, vec![("f0".into(), Value::F32(3.0))]).unwrap();
    assert_eq!(
        (stale.written, stale.skipped_stale, stale.generation),
        (0, 1, 2)
    );
    assert_eq!(c.get(k.clone(), f0()).unwrap()[0].value, Value::F32(2.0));
    // 0 refs: an empty answer; a repeated ref: answered each time.
    assert!(c.get(k.clone(), vec![]).unwrap().is_empty());
    let twice = c.get(k.clone(), [f0(), f0()].concat()).unwrap();
    assert_eq!(twice.len(), 2);
    assert!(twice.iter().all(|v| v.value == Value::F32(2.0)));
    // An unknown group fails a GET, and every item of a GET_MANY.
    let unknown = vec![FeatureRef {
        group: "nope".into(),
        feature: "f0".into(),
    }];
    let err = c.get(k.clone(), unknown.clone()).unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UnknownGroup), "{err}");
    let items = c.get_many(vec![k.clone(), k], unknown).unwrap();
    for item in items {
        let e = item.unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::UnknownGroup), "{e}");
    }
}
