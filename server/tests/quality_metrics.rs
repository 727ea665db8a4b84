//! Freshness and drift through quiverd: the freshness objective set by GROUP_ALTER, a baseline
//! saved by BASELINE (0x42), and their Prometheus gauges.

mod common;

use common::{f32_group, http_get, put_at, Quiverd};
use quiver_engine::feature::{Alter, EntityKey, Value};
use quiver_server::client::ClientError;
use quiver_server::protocol::{BaselineRequest, StatusCode};
use serde_json::Value as Json;

#[test]
fn freshness_and_drift_over_the_wire_and_in_metrics() {
    let (q, metrics) = Quiverd::start_with_metrics(&["--memory", "--size", "64MiB"]);
    let mut c = q.client();
    c.create_group(f32_group("g", 2)).unwrap();
    let now = common::now_ms();
    for i in 1..=100u32 {
        let values = vec![("f0", Value::F32(i as f32))];
        put_at(
            &mut c,
            "g",
            &EntityKey::String(format!("e{i}")),
            now,
            now,
            &values,
        );
    }
    // No objective: no freshness gauges. With one, the group is within it (written just now).
    let body = http_get(&metrics, "/metrics");
    assert!(!body.contains("quiver_group_fresh{"), "{body}");
    let schema = c
        .alter_group("g", Alter::SetMaxStaleness(Some(3600)))
        .unwrap();
    assert_eq!(schema.quality.max_staleness_s, Some(3600));
    let report: Json = serde_json::from_str(&c.feature_stats("g", None).unwrap()).unwrap();
    assert_eq!(report["max_staleness_ms"].as_u64(), Some(3_600_000));
    assert_eq!(report["stale"], Json::Bool(false));
    let body = http_get(&metrics, "/metrics");
    assert!(body.contains("quiver_group_fresh{group=\"g\"} 1"), "{body}");
    assert!(
        body.contains("quiver_group_max_staleness_seconds{group=\"g\"} 3600"),
        "{body}"
    );
    // A baseline of f0 from the window it is compared with: no drift, in the metrics too.
    let saved: Json = serde_json::from_str(
        &c.baseline(BaselineRequest::SaveWindow {
            group: "g".into(),
            feature: Some("f0".into()),
            window: "1h".into(),
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(saved["baselines"][0]["feature"], "f0", "{saved}");
    let body = http_get(&metrics, "/metrics");
    assert!(
        body.contains("quiver_feature_drift_psi{group=\"g\",feature=\"f0\",window=\"1h\"} 0"),
        "{body}"
    );
    assert!(
        body.contains("quiver_feature_drifted{group=\"g\",feature=\"f0\",window=\"1h\"} 0"),
        "{body}"
    );
    match c.baseline(BaselineRequest::Show {
        group: "g".into(),
        feature: Some("nope".into()),
    }) {
        Err(ClientError::Server { status, .. }) => assert_eq!(status, StatusCode::UnknownFeature),
        other => panic!("expected UNKNOWN_FEATURE, got {other:?}"),
    }
}
