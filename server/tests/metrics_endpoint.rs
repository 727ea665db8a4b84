//! The Prometheus endpoint serves per-opcode counters, latency quantiles, connections and
//! engine figures.

mod common;

use common::{f32_group, Quiverd};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiverd"))
        .args([
            "--memory",
            "--size",
            "64MiB",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .env("QUIVER_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let metrics_line = lines.next().unwrap().unwrap();
    let metrics = metrics_line
        .strip_prefix("metrics on http://")
        .unwrap()
        .strip_suffix("/metrics")
        .unwrap()
        .to_owned();
    let q = Quiverd { child, addr };
    let mut c = q.client();
    c.create_group(f32_group("g", 1)).unwrap();
    c.ping().unwrap();
    let body = http_get(&metrics, "/metrics");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains("quiver_requests_total{op=\"group_create\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("quiver_request_latency_us{op=\"ping\",quantile=\"0.99\"}"),
        "{body}"
    );
    assert!(body.contains("quiver_connections_open 1"), "{body}");
    assert!(body.contains("quiver_engine_index_bytes"), "{body}");
    assert!(body.contains("quiver_engine_defrag_blocks_freed"), "{body}");
    assert!(http_get(&metrics, "/nope").starts_with("HTTP/1.1 404"));
}
