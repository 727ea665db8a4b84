//! FEATURE_STATS (0x41) through quiverd: the statistics of known values, one feature or all,
//! errors for unknown names, the Prometheus gauges, and statistics that survive a restart of
//! the server.

mod common;

use common::{f32_group, http_get, put_at, Quiverd};
use quiver_engine::feature::{EntityKey, Value};
use quiver_server::client::ClientError;
use quiver_server::protocol::StatusCode;
use serde_json::Value as Json;

fn window<'a>(report: &'a Json, feature: &str, window: &str) -> &'a Json {
    let f = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == feature)
        .unwrap();
    f["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == window)
        .unwrap()
}

fn put_values(q: &Quiverd) {
    let mut c = q.client();
    c.create_group(f32_group("g", 2)).unwrap();
    let now = common::now_ms();
    // f0 = 1..=100 over 100 entities; f1 only on even entities.
    for i in 1..=100u32 {
        let mut values = vec![("f0", Value::F32(i as f32))];
        if i % 2 == 0 {
            values.push(("f1", Value::F32(-(i as f32))));
        }
        put_at(
            &mut c,
            "g",
            &EntityKey::String(format!("e{i}")),
            now,
            now,
            &values,
        );
    }
}

fn check(report: &Json) {
    assert_eq!(report["group"], "g");
    assert_eq!(report["puts"], 100, "{report}");
    let f0 = window(report, "f0", "1h");
    assert_eq!(f0["count"], 100);
    let n = &f0["numbers"];
    assert_eq!(
        (n["min"].as_f64(), n["max"].as_f64()),
        (Some(1.0), Some(100.0))
    );
    assert!((n["mean"].as_f64().unwrap() - 50.5).abs() < 1e-9, "{n}");
    // Population stddev of 1..=100: sqrt((100^2 - 1) / 12).
    let sd = ((100.0f64 * 100.0 - 1.0) / 12.0).sqrt();
    assert!((n["stddev"].as_f64().unwrap() - sd).abs() < 1e-9, "{n}");
    let median = n["quantiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["q"] == 0.5)
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!((median - 50.0).abs() <= 0.51, "median {median}");
    let f1 = window(report, "f1", "24h");
    assert_eq!(f1["count"], 50);
    assert_eq!(f1["numbers"]["max"].as_f64(), Some(-2.0));
    let entities = report["windows"][0]["entities"].as_f64().unwrap();
    assert!((entities - 100.0).abs() <= 5.0, "{entities}");
}

#[test]
fn feature_stats_over_the_wire_and_in_metrics() {
    let (q, metrics) = Quiverd::start_with_metrics(&["--memory", "--size", "64MiB"]);
    put_values(&q);
    let mut c = q.client();
    let report: Json = serde_json::from_str(&c.feature_stats("g", None).unwrap()).unwrap();
    check(&report);
    let one: Json = serde_json::from_str(&c.feature_stats("g", Some("f1")).unwrap()).unwrap();
    assert_eq!(one["features"].as_array().unwrap().len(), 1);
    assert_eq!(one["features"][0]["name"], "f1");
    for (group, feature, status) in [
        ("nope", None, StatusCode::UnknownGroup),
        ("g", Some("nope"), StatusCode::UnknownFeature),
    ] {
        match c.feature_stats(group, feature) {
            Err(ClientError::Server { status: s, .. }) => assert_eq!(s, status),
            other => panic!("expected {status:?}, got {other:?}"),
        }
    }
    let body = http_get(&metrics, "/metrics");
    assert!(
        body.contains("quiver_group_puts_total{group=\"g\"} 100"),
        "{body}"
    );
    // The mean is folded from per-thread shards, so its last bits depend on the order.
    let mean: f64 = body
        .lines()
        .find_map(|l| {
            l.strip_prefix("quiver_feature_mean{group=\"g\",feature=\"f0\",window=\"1h\"} ")
        })
        .unwrap_or_else(|| panic!("no mean of f0 in {body}"))
        .parse()
        .unwrap();
    assert!((mean - 50.5).abs() < 1e-9, "mean {mean}");
    assert!(
        body.contains("quiver_feature_values_total{group=\"g\",feature=\"f1\"} 50"),
        "{body}"
    );
}

#[test]
fn feature_stats_survive_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats.db");
    let q = Quiverd::file(&path, &[]);
    put_values(&q);
    assert!(q.terminate().success());
    let q = Quiverd::file(&path, &[]);
    let report: Json = serde_json::from_str(&q.client().feature_stats("g", None).unwrap()).unwrap();
    check(&report);
}
