//! Malformed, truncated, oversize and slow frames: the offender gets an error naming what was
//! wrong; the connection closes only when framing is lost; other clients never notice.

mod common;

use common::{f32_group, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Value};
use quiver_server::protocol::{
    decode_response, encode_request, FrameHeader, Request, Response, StatusCode, HEADER_LEN,
    PROTOCOL_VERSION,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn raw(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn handshake(s: &mut TcpStream) {
    let mut out = Vec::new();
    encode_request(
        1,
        &Request::Handshake {
            version: PROTOCOL_VERSION.into(),
            token: vec![],
        },
        &mut out,
    );
    s.write_all(&out).unwrap();
    let (_, r) = read_frame(s).expect("handshake response");
    assert!(matches!(r, Response::Handshake(_)), "{r:?}");
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

fn expect_error(s: &mut TcpStream, status: StatusCode, needle: &str) -> u64 {
    let (h, r) = read_frame(s).expect("an error response");
    match r {
        Response::Error {
            status: got,
            message,
        } => {
            assert_eq!(got, status, "{message}");
            assert!(
                message.contains(needle),
                "message {message:?} lacks {needle:?}"
            );
        }
        other => panic!("expected {status}, got {other:?}"),
    }
    h.request_id
}

fn expect_closed(s: &mut TcpStream) {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("connection still open: {other:?}"),
    }
}

fn header(opcode: u8, flags: u16, body_len: u32, id: u64) -> Vec<u8> {
    let mut v = Vec::new();
    FrameHeader {
        opcode,
        flags,
        status: 0,
        body_len,
        request_id: id,
    }
    .encode(&mut v);
    v
}

/// A well-behaved client doing puts and gets; returns after `rounds` checked round trips.
fn bystander(addr: String, rounds: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = quiver_server::client::Client::connect(&addr, common::test_config()).unwrap();
        for i in 0..rounds {
            let k = EntityKey::String(format!("by{i}"));
            c.put(
                "g",
                k.clone(),
                1,
                vec![("f0".into(), Value::F32(i as f32))],
                PutOptions::default(),
            )
            .unwrap();
            let got = c
                .get(
                    k,
                    vec![FeatureRef {
                        group: "g".into(),
                        feature: "f0".into(),
                    }],
                )
                .unwrap();
            assert_eq!(got[0].value, Value::F32(i as f32));
        }
    })
}

#[test]
fn malformed_bodies_get_errors_and_keep_the_connection() {
    let q = Quiverd::memory(&[]);
    q.client().create_group(f32_group("g", 1)).unwrap();
    let by = bystander(q.addr.clone(), 300);
    let mut s = raw(&q.addr);
    handshake(&mut s);
    // Unknown opcode, framing intact.
    s.write_all(&header(0x7f, 0, 3, 11)).unwrap();
    s.write_all(b"abc").unwrap();
    assert_eq!(expect_error(&mut s, StatusCode::UnknownOpcode, "0x7f"), 11);
    // Truncated GET body: an entity key tag with no key.
    s.write_all(&header(0x11, 0, 1, 12)).unwrap();
    s.write_all(&[0]).unwrap();
    assert_eq!(expect_error(&mut s, StatusCode::BadFrame, "truncated"), 12);
    // Reserved flags in a request.
    s.write_all(&header(0x02, 0x8000, 0, 13)).unwrap();
    assert_eq!(expect_error(&mut s, StatusCode::BadFrame, "flag"), 13);
    // Trailing bytes after a DESCRIBE body.
    let mut body = Vec::new();
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(b"gXX");
    s.write_all(&header(0x21, 0, body.len() as u32, 14))
        .unwrap();
    s.write_all(&body).unwrap();
    assert_eq!(expect_error(&mut s, StatusCode::BadFrame, "trailing"), 14);
    // A count field claiming four billion keys in a tiny body.
    let mut body = u32::MAX.to_le_bytes().to_vec();
    body.push(0);
    s.write_all(&header(0x12, 0, body.len() as u32, 15))
        .unwrap();
    s.write_all(&body).unwrap();
    assert_eq!(expect_error(&mut s, StatusCode::BadFrame, "batch keys"), 15);
    // The connection still works.
    let mut out = Vec::new();
    encode_request(
        16,
        &Request::Ping {
            payload: b"hi".to_vec(),
        },
        &mut out,
    );
    s.write_all(&out).unwrap();
    let (h, r) = read_frame(&mut s).unwrap();
    assert_eq!(h.request_id, 16);
    assert!(matches!(r, Response::Pong { payload } if payload == b"hi"));
    by.join().unwrap();
}

#[test]
fn lost_framing_closes_only_that_connection() {
    let q = Quiverd::memory(&["--max-frame-bytes", "1MiB"]);
    q.client().create_group(f32_group("g", 1)).unwrap();
    let by = bystander(q.addr.clone(), 300);
    // Oversize length: error naming the limit, then close.
    let mut s = raw(&q.addr);
    handshake(&mut s);
    s.write_all(&header(0x10, 0, 70 << 20, 21)).unwrap();
    expect_error(
        &mut s,
        StatusCode::LimitExceeded,
        "1048576-byte frame limit",
    );
    expect_closed(&mut s);
    // Bad magic: error, then close.
    let mut s = raw(&q.addr);
    handshake(&mut s);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    expect_error(&mut s, StatusCode::BadFrame, "magic");
    expect_closed(&mut s);
    // Wrong protocol version in the header.
    let mut s = raw(&q.addr);
    let mut h = header(0x02, 0, 0, 22);
    h[2] = 9;
    s.write_all(&h).unwrap();
    expect_error(&mut s, StatusCode::UnsupportedVersion, "version 9");
    expect_closed(&mut s);
    by.join().unwrap();
}

#[test]
fn requests_before_handshake_are_refused() {
    let q = Quiverd::memory(&[]);
    let mut s = raw(&q.addr);
    let mut out = Vec::new();
    encode_request(5, &Request::Stats, &mut out);
    s.write_all(&out).unwrap();
    assert_eq!(
        expect_error(&mut s, StatusCode::HandshakeRequired, "HANDSHAKE"),
        5
    );
    expect_closed(&mut s);
}

#[test]
fn batch_over_the_key_limit_is_refused_with_the_limit() {
    let q = Quiverd::memory(&["--max-batch-keys", "100"]);
    let mut c = q.client();
    c.create_group(f32_group("g", 1)).unwrap();
    let keys = (0..101)
        .map(|i| EntityKey::String(format!("k{i}")))
        .collect();
    let err = c
        .get_many(
            keys,
            vec![FeatureRef {
                group: "g".into(),
                feature: "f0".into(),
            }],
        )
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::LimitExceeded));
    assert!(
        err.to_string().contains("max_batch_keys limit of 100"),
        "{err}"
    );
    c.ping().unwrap();
}

#[test]
fn truncated_frame_then_disconnect_does_not_disturb_others() {
    let q = Quiverd::memory(&[]);
    q.client().create_group(f32_group("g", 1)).unwrap();
    let by = bystander(q.addr.clone(), 200);
    for i in 0..20 {
        let mut s = raw(&q.addr);
        handshake(&mut s);
        let mut out = Vec::new();
        encode_request(i, &Request::Stats, &mut out);
        out.truncate(HEADER_LEN / 2 + (i as usize % HEADER_LEN));
        s.write_all(&out).unwrap();
    }
    by.join().unwrap();
}

#[test]
fn slow_client_hits_the_frame_deadline() {
    let q = Quiverd::memory(&["--frame-deadline-ms", "300"]);
    q.client().create_group(f32_group("g", 1)).unwrap();
    let by = bystander(q.addr.clone(), 200);
    let mut s = raw(&q.addr);
    handshake(&mut s);
    // Half a header, then silence: the server gives up on the frame and closes.
    s.write_all(&header(0x02, 0, 10, 31)[..7]).unwrap();
    expect_error(
        &mut s,
        StatusCode::LimitExceeded,
        "frame_deadline_ms limit of 300 ms",
    );
    expect_closed(&mut s);
    by.join().unwrap();
}
