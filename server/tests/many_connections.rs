//! `quiverd` under 10,000 connections: all handshaken, left idle, then pinged in waves while
//! a bystander keeps doing checked puts and gets; frames exactly at and one byte over the
//! frame limit; a client that dribbles its frame byte by byte and one that stops reading its
//! responses: the others keep being served.

mod common;

use common::{f32_group, test_config, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Value};
use quiver_server::client::{Client, ClientError};
use quiver_server::protocol::{
    decode_response, encode_request, FrameHeader, Request, Response, StatusCode, HEADER_LEN,
    PROTOCOL_VERSION,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const WANTED_CONNECTIONS: u64 = 10_000;
/// Descriptors kept for everything but the idle connections (clients, the child's pipes).
const SPARE_FDS: u64 = 200;
/// Connections opened, or pinged, per wave.
const WAVE: usize = 500;
const MAX_FRAME: usize = 64 << 10;
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Round trips of the bystander per phase.
const BYSTANDER_ROUNDS: u64 = 300;

/// Raises the descriptor limit (the hard one too where the process may, as root can) so that
/// `WANTED_CONNECTIONS` fit; returns how many connections fit. quiverd inherits the limit.
/// Where fewer fit, the test runs with fewer and says so, except in CI (`CI=true`), where
/// that fails it: a 10,000-connection test must not quietly test 800.
fn connections_allowed() -> u64 {
    let need = WANTED_CONNECTIONS + SPARE_FDS;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the rlimit struct we own.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
            if lim.rlim_max < need {
                let raised = libc::rlimit {
                    rlim_cur: need,
                    rlim_max: need,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    assert!(ok, "getrlimit/setrlimit failed");
    let fit = lim.rlim_cur.saturating_sub(SPARE_FDS);
    if fit < WANTED_CONNECTIONS {
        let why = format!(
            "RLIMIT_NOFILE hard limit is {} and cannot be raised to {need}",
            lim.rlim_max
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{why} (CI=true): the test needs {WANTED_CONNECTIONS} connections"
        );
        println!("{why}: using {fit} connections instead of {WANTED_CONNECTIONS}");
    }
    fit.min(WANTED_CONNECTIONS)
}

fn frame(id: u64, request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(id, request, &mut out);
    out
}

/// Reads one response frame; `None` when the server closed the connection.
fn read_frame(s: &mut TcpStream) -> Option<(FrameHeader, Response)> {
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head).ok()?;
    let h = FrameHeader::decode(&head, 1 << 30).expect("response header");
    let mut body = vec![0u8; h.body_len as usize];
    s.read_exact(&mut body).expect("response body");
    Some((
        h,
        decode_response(&h, &body).expect("response body decodes"),
    ))
}

fn handshake_frame() -> Vec<u8> {
    frame(
        1,
        &Request::Handshake {
            version: PROTOCOL_VERSION.into(),
            token: vec![],
        },
    )
}

fn expect_handshake(s: &mut TcpStream) {
    let (_, r) = read_frame(s).expect("handshake response");
    assert!(matches!(r, Response::Handshake(_)), "{r:?}");
}

fn expect_pong(s: &mut TcpStream, id: u64, payload: &[u8]) {
    let (h, r) = read_frame(s).expect("pong");
    assert_eq!(h.request_id, id);
    match r {
        Response::Pong { payload: p } => assert!(p == payload, "pong payload differs"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

/// Opens `n` connections in waves: connect the wave, send every handshake, read every answer.
fn open_idle(addr: &str, n: u64) -> Vec<TcpStream> {
    let mut all = Vec::with_capacity(n as usize);
    let hello = handshake_frame();
    while (all.len() as u64) < n {
        let take = WAVE.min(n as usize - all.len());
        let start = all.len();
        for _ in 0..take {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
            all.push(s);
        }
        for s in &mut all[start..] {
            s.write_all(&hello).expect("send handshake");
        }
        for s in &mut all[start..] {
            expect_handshake(s);
        }
    }
    all
}

/// Pings every connection, a wave at a time: send the wave's pings, then read its pongs.
fn ping_all(conns: &mut [TcpStream], round: u64) {
    for (w, wave) in conns.chunks_mut(WAVE).enumerate() {
        for (i, s) in wave.iter_mut().enumerate() {
            let id = round << 32 | (w * WAVE + i) as u64;
            let out = frame(
                id,
                &Request::Ping {
                    payload: id.to_le_bytes().to_vec(),
                },
            );
            s.write_all(&out).expect("send ping");
        }
        for (i, s) in wave.iter_mut().enumerate() {
            let id = round << 32 | (w * WAVE + i) as u64;
            expect_pong(s, id, &id.to_le_bytes());
        }
    }
}

fn open_connections(c: &mut Client) -> u64 {
    let json: serde_json::Value = serde_json::from_str(&c.stats().expect("stats")).unwrap();
    json["server"]["connections_open"].as_u64().unwrap()
}

/// Polls (bounded) until the server counts `want` open connections; returns the last count.
fn wait_open(c: &mut Client, want: u64) -> u64 {
    let mut open = 0;
    for _ in 0..400 {
        open = open_connections(c);
        if open == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    open
}

/// A well-behaved client: checked put/get round trips until `stop` (at least `min_rounds`).
fn bystander(addr: &str, name: &str, stop: &AtomicBool, rounds: &AtomicU64, min_rounds: u64) {
    let mut c = Client::connect(addr, test_config()).expect("bystander connect");
    let f0 = FeatureRef {
        group: "g".into(),
        feature: "f0".into(),
    };
    let mut i = 0u64;
    while i < min_rounds || !stop.load(Ordering::Relaxed) {
        let k = EntityKey::String(format!("{name}{}", i % 1000));
        let v = Value::F32(i as f32);
        c.put(
            "g",
            k.clone(),
            i,
            vec![("f0".into(), v.clone())],
            PutOptions::default(),
        )
        .expect("bystander put");
        let got = c.get(k, vec![f0.clone()]).expect("bystander get");
        assert_eq!(got[0].value, v);
        i += 1;
        rounds.store(i, Ordering::Relaxed);
    }
}

/// Pings whose bodies are exactly the frame limit pass (request and response); one byte
/// more is refused with an error naming the limit, and the connection is closed.
fn frame_limit(addr: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.write_all(&handshake_frame()).unwrap();
    expect_handshake(&mut s);
    let at_limit: Vec<u8> = (0..MAX_FRAME).map(|i| (i % 251) as u8).collect();
    s.write_all(&frame(
        7,
        &Request::Ping {
            payload: at_limit.clone(),
        },
    ))
    .unwrap();
    expect_pong(&mut s, 7, &at_limit);
    let mut over = at_limit;
    over.push(0);
    s.write_all(&frame(
        8,
        &Request::Ping {
            payload: over.clone(),
        },
    ))
    .unwrap();
    match read_frame(&mut s) {
        Some((_, Response::Error { status, message })) => {
            assert_eq!(status, StatusCode::LimitExceeded, "{message}");
            assert!(
                message.contains(&format!("{MAX_FRAME}-byte frame limit")),
                "{message}"
            );
        }
        other => panic!("expected a frame-limit error, got {other:?}"),
    }
    let mut b = [0u8; 1];
    assert!(
        matches!(s.read(&mut b), Ok(0) | Err(_)),
        "connection still open"
    );
    // The client library refuses the oversize request itself, and serves the one at the limit.
    let mut c = Client::connect(addr, test_config()).unwrap();
    let err = c.call(&Request::Ping { payload: over }).unwrap_err();
    assert!(matches!(err, ClientError::RequestTooLarge { .. }), "{err}");
    let exact = vec![9u8; MAX_FRAME];
    match c
        .call(&Request::Ping {
            payload: exact.clone(),
        })
        .unwrap()
    {
        Response::Pong { payload } => assert!(payload == exact),
        other => panic!("{other:?}"),
    }
}

/// Sends one ping a byte at a time (each byte 10 ms apart, well inside the frame deadline),
/// then reads its pong.
fn dribbling_client(addr: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(&handshake_frame()).unwrap();
    expect_handshake(&mut s);
    let payload = b"slow and steady".to_vec();
    for b in frame(
        99,
        &Request::Ping {
            payload: payload.clone(),
        },
    ) {
        s.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    expect_pong(&mut s, 99, &payload);
}

/// Pipelines `n` large pings without reading: the server's output queue for it fills and it
/// stops reading from it. Returns the stream to drain later and the writer thread.
fn stalled_reader(addr: &str, n: u64) -> (TcpStream, std::thread::JoinHandle<()>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.write_all(&handshake_frame()).unwrap();
    expect_handshake(&mut s);
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for id in 0..n {
            let payload = vec![(id % 256) as u8; MAX_FRAME - 16];
            if w.write_all(&frame(1000 + id, &Request::Ping { payload }))
                .is_err()
            {
                return; // the test closed the connection
            }
        }
    });
    (s, writer)
}

#[test]
fn ten_thousand_connections_idle_then_pinged_with_limits_and_slow_clients() {
    let n = connections_allowed();
    let max_conns = (n + 64).to_string();
    let max_frame = MAX_FRAME.to_string();
    let q = Quiverd::memory(&[
        "--max-connections",
        &max_conns,
        "--max-frame-bytes",
        &max_frame,
        "--max-output-bytes-per-connection",
        "1MiB",
    ]);
    let mut control = q.client();
    control.create_group(f32_group("g", 1)).unwrap();
    let stop = AtomicBool::new(false);
    let rounds = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        let by = scope.spawn(|| bystander(&q.addr, "bg", &stop, &rounds, BYSTANDER_ROUNDS));
        let mut idle = open_idle(&q.addr, n);
        // The control client, the bystander, and the idle ones.
        assert_eq!(wait_open(&mut control, n + 2), n + 2);
        ping_all(&mut idle, 1);
        frame_limit(&q.addr);
        let slow = scope.spawn(|| dribbling_client(&q.addr));
        let (stalled, writer) = stalled_reader(&q.addr, 200);
        // While both slow clients are stuck, the others keep being served (a starved
        // client fails on its 20 s I/O timeout).
        ping_all(&mut idle, 2);
        let no_stop = AtomicBool::new(true);
        bystander(
            &q.addr,
            "fg",
            &no_stop,
            &AtomicU64::new(0),
            BYSTANDER_ROUNDS,
        );
        // Draining it is checked by `paused_connection_resumes_when_its_client_reads`
        // (ignored: the resume can be missed); here it is closed, which unblocks its writer.
        stalled.shutdown(std::net::Shutdown::Both).unwrap();
        let _ = writer.join();
        slow.join().expect("dribbling client");
        stop.store(true, Ordering::Relaxed);
        by.join().expect("bystander");
        ping_all(&mut idle, 3);
        println!(
            "{n} idle connections pinged 3 times; bystander made {} round trips",
            rounds.load(Ordering::Relaxed)
        );
    });
    drop(control);
    assert!(q.terminate().success());
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A connection paused by flow control (its client stopped reading, its queued output went
/// over `max_output_bytes_per_connection`) must be resumed once its client reads again.
///
/// Bug: in `Worker::process_dirty` (server/src/server/worker.rs) a paused connection is
/// resumed at most once per pass (`resumed.insert(id)`). When the resumed read parses enough
/// frames to pause it again, and the second visit of the same pass writes its whole output
/// (the client is reading), the connection stays paused with an empty output queue: no
/// writable edge follows (no write hit EAGAIN), no readable edge either (its bytes already
/// wait in the socket), and `sweep` does not resume paused connections. The client waits
/// forever (here: until the 30 s read timeout). Seen in about 1 run in 10 of the drain in
/// this test's first form; each round below is one more chance.
#[test]
fn paused_connection_resumes_when_its_client_reads() {
    let q = Quiverd::memory(&[
        "--max-frame-bytes",
        &MAX_FRAME.to_string(),
        "--max-output-bytes-per-connection",
        "1MiB",
    ]);
    for round in 0..20 {
        let (mut stalled, writer) = stalled_reader(&q.addr, 200);
        std::thread::sleep(Duration::from_millis(200));
        for id in 0..200u64 {
            let payload = vec![(id % 256) as u8; MAX_FRAME - 16];
            let (h, r) = read_frame(&mut stalled)
                .unwrap_or_else(|| panic!("round {round}: no response to ping {id} of 200"));
            assert_eq!(h.request_id, 1000 + id);
            assert!(matches!(r, Response::Pong { payload: p } if p == payload));
        }
        writer.join().expect("writer");
    }
}
