//! The Prometheus endpoint serves per-opcode counters, latency quantiles, connections and
//! engine figures.

mod common;

use common::{f32_group, http_get, Quiverd};

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let (q, metrics) = Quiverd::start_with_metrics(&["--memory", "--size", "64MiB"]);
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
    // Damage (counted by server/tests/damaged_reads.rs): none here.
    assert!(body.contains("quiver_engine_damaged_keys 0"), "{body}");
    assert!(
        body.contains(
            "# TYPE quiver_engine_damaged_reads_total counter\nquiver_engine_damaged_reads_total 0"
        ),
        "{body}"
    );
    assert!(http_get(&metrics, "/nope").starts_with("HTTP/1.1 404"));
}
