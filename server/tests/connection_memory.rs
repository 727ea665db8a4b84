//! What an open connection costs the server: before its handshake it can make the server
//! buffer only a small frame, and after a large request it gives the memory back. Measured as
//! quiverd's resident set with 10,000 connections (fewer if `RLIMIT_NOFILE` is lower) that
//! each sent one 64 KiB request and stay open.

mod common;

use common::Quiverd;
use quiver_engine::feature::{EntityKey, PutOptions, Value};
use quiver_server::protocol::{
    decode_response, encode_request, FrameHeader, Request, Response, StatusCode, HEADER_LEN,
    PROTOCOL_VERSION,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const WANTED_CONNECTIONS: u64 = 10_000;
/// Descriptors kept for everything but the measured connections.
const SPARE_FDS: u64 = 200;
/// Connections opened per wave.
const WAVE: usize = 500;
/// Bytes of the value in each connection's one request.
const REQUEST_VALUE_BYTES: usize = 64 << 10;
/// Resident memory a connection may add once its request is answered. The request alone is
/// 64 KiB: a server that keeps its read buffer at its peak breaks this bound four times over.
const RSS_PER_CONNECTION_BYTES: u64 = 16 << 10;
/// Slack for everything that is not per connection (allocator arenas, the engine's buffers).
const RSS_SLACK_BYTES: u64 = 64 << 20;

/// Raises the soft descriptor limit to the hard one; returns how many connections fit.
fn connections_allowed() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the rlimit struct we own.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    assert!(ok, "getrlimit/setrlimit failed");
    let fit = lim.rlim_cur.saturating_sub(SPARE_FDS);
    if fit < WANTED_CONNECTIONS {
        println!(
            "RLIMIT_NOFILE hard limit is {}: using {fit} connections instead of {WANTED_CONNECTIONS}",
            lim.rlim_max
        );
    }
    fit.min(WANTED_CONNECTIONS)
}

fn rss_bytes(q: &Quiverd) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", q.child.id())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib << 10
}

fn read_frame(s: &mut TcpStream) -> Option<(FrameHeader, Response)> {
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head).ok()?;
    let h = FrameHeader::decode(&head, 1 << 30).unwrap();
    let mut body = vec![0u8; h.body_len as usize];
    s.read_exact(&mut body).unwrap();
    Some((h, decode_response(&h, &body).unwrap()))
}

/// The handshake and one large PUT (to a group that does not exist: a small answer).
fn handshake_and_large_request() -> Vec<u8> {
    let mut out = Vec::new();
    let hello = Request::Handshake {
        version: PROTOCOL_VERSION.into(),
        token: vec![],
    };
    encode_request(1, &hello, &mut out);
    let put = Request::Put {
        group: "nope".into(),
        key: EntityKey::String("k".into()),
        event_time_ms: 1,
        options: PutOptions::default(),
        values: vec![("blob".into(), Value::Bytes(vec![7; REQUEST_VALUE_BYTES]))],
    };
    encode_request(2, &put, &mut out);
    out
}

#[test]
fn connections_that_sent_a_large_request_give_its_memory_back() {
    let n = connections_allowed();
    let max_conns = (n + 64).to_string();
    let q = Quiverd::memory(&["--max-connections", &max_conns]);
    q.client().ping().unwrap();
    let before = rss_bytes(&q);
    let frames = handshake_and_large_request();
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n as usize);
    while (conns.len() as u64) < n {
        let start = conns.len();
        let take = WAVE.min(n as usize - start);
        for _ in 0..take {
            let s = TcpStream::connect(&q.addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            conns.push(s);
        }
        for s in &mut conns[start..] {
            s.write_all(&frames).expect("send");
        }
        for s in &mut conns[start..] {
            let (_, r) = read_frame(s).expect("handshake answer");
            assert!(matches!(r, Response::Handshake(_)), "{r:?}");
            match read_frame(s).expect("put answer") {
                (_, Response::Error { status, .. }) => {
                    assert_eq!(status, StatusCode::UnknownGroup)
                }
                other => panic!("expected UNKNOWN_GROUP, got {other:?}"),
            }
        }
    }
    let after = rss_bytes(&q);
    let grown = after.saturating_sub(before);
    let bound = n * RSS_PER_CONNECTION_BYTES + RSS_SLACK_BYTES;
    println!(
        "{n} connections, each after one {} KiB request: quiverd VmRSS {} MiB before, {} MiB \
         after ({} KiB per connection); bound {} MiB",
        REQUEST_VALUE_BYTES >> 10,
        before >> 20,
        after >> 20,
        (grown / n.max(1)) >> 10,
        bound >> 20
    );
    assert!(
        grown <= bound,
        "quiverd grew by {} MiB for {n} connections, over the {} MiB bound",
        grown >> 20,
        bound >> 20
    );
    drop(conns);
    assert!(q.terminate().success());
}

/// Before its handshake a connection may send only a small frame: a larger header is refused
/// at once with the limit named, and the connection closed; after the handshake the same
/// frame size is accepted.
#[test]
fn a_large_frame_before_the_handshake_is_refused_at_its_header() {
    let q = Quiverd::memory(&[]);
    let mut s = TcpStream::connect(&q.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = Vec::new();
    FrameHeader {
        opcode: 0x01,
        flags: 0,
        status: 0,
        body_len: 1 << 20,
        request_id: 5,
    }
    .encode(&mut head);
    s.write_all(&head).unwrap();
    match read_frame(&mut s) {
        Some((h, Response::Error { status, message })) => {
            assert_eq!(status, StatusCode::LimitExceeded, "{message}");
            assert_eq!(h.request_id, 5);
            assert!(
                message.contains("exceeds the 4096-byte limit for frames before"),
                "{message}"
            );
        }
        other => panic!("expected LIMIT_EXCEEDED, got {other:?}"),
    }
    assert!(read_frame(&mut s).is_none(), "connection still open");
    // A handshaken client may send the same size.
    let mut c = q.client();
    let payload = vec![1u8; 1 << 20];
    match c.call(&Request::Ping {
        payload: payload.clone(),
    }) {
        Ok(Response::Pong { payload: p }) => assert!(p == payload),
        other => panic!("{other:?}"),
    }
}
