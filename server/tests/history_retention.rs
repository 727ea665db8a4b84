//! History retention by version count over the wire: `max_versions` on GROUP_CREATE and
//! GROUP_ALTER (tag 8), schemas that return it, and quiverd's background retention task, which
//! trims histories on its own and reports what it did in STATS and /metrics.

mod common;

use std::time::{Duration, Instant};

use common::{f32_group, now_ms, put_at, with_history, Quiverd};
use quiver_engine::feature::{Alter, EntityKey, Value};
use quiver_engine::history::{HistoryPolicy, HistoryRange};
use quiver_server::client::Client;
use quiver_server::protocol::StatusCode;

const KEEP: u32 = 2;
const ENTITIES: u64 = 3;
const VERSIONS: u64 = 10;

fn key(e: u64) -> EntityKey {
    EntityKey::String(format!("e{e}"))
}

fn engine_figure(c: &mut Client, name: &str) -> u64 {
    let stats: serde_json::Value = serde_json::from_str(&c.stats().unwrap()).unwrap();
    stats["engine"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("STATS has no engine.{name}: {stats}"))
}

/// Waits up to 60 s for `done`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn background_retention_trims_to_max_versions_and_reports_it() {
    let (q, metrics) = Quiverd::start_with_metrics(&[
        "--memory",
        "--size",
        "64MiB",
        "--history-retention-interval-s",
        "1",
    ]);
    let mut c = q.client();
    // Created with a window, then bounded by count too (alteration 8).
    let created = c
        .create_group(with_history(f32_group("user", 1), 3650 * 86_400))
        .unwrap();
    assert_eq!(created.history.unwrap().max_versions, None);
    let altered = c
        .alter_group("user", Alter::SetHistoryMaxVersions(Some(KEEP)))
        .unwrap();
    let policy = HistoryPolicy::retention(3650 * 86_400).with_max_versions(KEEP);
    assert_eq!(altered.history, Some(policy));
    assert_eq!(c.describe_group("user").unwrap().history, Some(policy));
    let base = now_ms() - 3_600_000;
    for v in 0..VERSIONS {
        for e in 0..ENTITIES {
            let t = base + v * 1_000;
            put_at(
                &mut c,
                "user",
                &key(e),
                t,
                t,
                &[("f0", Value::F32(v as f32))],
            );
        }
    }
    let removed = ENTITIES * (VERSIONS - 1 - KEEP as u64);
    wait_for("retention to trim every entity", || {
        engine_figure(&mut c, "history_versions_removed") == removed
    });
    assert!(engine_figure(&mut c, "history_last_sweep_end_ms") > 0);
    for e in 0..ENTITIES {
        let page = c
            .history(
                "user",
                key(e),
                vec!["f0".into()],
                HistoryRange {
                    from_ms: 0,
                    to_ms: u64::MAX,
                    known_at_ms: None,
                },
            )
            .unwrap();
        let values: Vec<Value> = page.iter().map(|h| h.value.clone()).collect();
        let want: Vec<Value> = (VERSIONS - 1 - KEEP as u64..VERSIONS)
            .map(|v| Value::F32(v as f32))
            .collect();
        assert_eq!(values, want, "entity {e}");
    }
    let body = common::http_get(&metrics, "/metrics");
    assert!(
        body.contains(&format!(
            "quiver_engine_history_versions_removed_total {removed}"
        )),
        "{body}"
    );
    assert!(body.contains("# TYPE quiver_engine_history_retention_sweeps_total counter"));
}

#[test]
fn max_versions_out_of_range_is_refused_by_name() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    let mut spec = f32_group("user", 1);
    spec.history = Some(HistoryPolicy::versions(0));
    let err = c.create_group(spec.clone()).unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::InvalidArgument), "{err}");
    assert!(
        err.to_string()
            .contains("max_versions of 0 is outside 1..=100000"),
        "{err}"
    );
    spec.history = Some(HistoryPolicy::versions(5));
    assert_eq!(
        c.create_group(spec).unwrap().history,
        Some(HistoryPolicy::versions(5))
    );
    let err = c
        .alter_group("user", Alter::SetHistoryMaxVersions(None))
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::InvalidArgument), "{err}");
    assert!(err.to_string().contains("without a bound"), "{err}");
}
