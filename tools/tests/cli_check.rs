//! `quiver check`: freshness objectives set by `group create|alter --max-staleness`, judged on
//! an embedded store and through quiverd; exit 0 when every group meets them, 12 otherwise.

mod cli_support;

use cli_support::{start_quiverd, Quiver};

fn check_end_to_end(q: &Quiver) {
    q.ok(&[
        "group",
        "create",
        "fresh",
        "--key-type",
        "string",
        "--feature",
        "x:f64",
        "--max-staleness",
        "1h",
    ]);
    let schema = q.json(&["group", "describe", "fresh"]);
    assert_eq!(schema["max_staleness_s"], 3600, "{schema}");
    let text = q.ok(&["group", "describe", "fresh"]);
    assert!(text.contains("newest write at most 1h old"), "{text}");
    // Never written: stale.
    let err = q.fails(&["check"], 12);
    assert!(err.contains("1 of 1 groups failed: fresh (stale)"), "{err}");
    q.ok(&["put", "fresh", "k", "x=1.5"]);
    let text = q.ok(&["check"]);
    assert!(text.contains("ok     fresh: freshness"), "{text}");
    let doc = q.json(&["check"]);
    assert_eq!(doc["ok"], true, "{doc}");

    // A second group, written now, whose objective is one second: stale a second later.
    q.ok(&[
        "group",
        "create",
        "tight",
        "--key-type",
        "string",
        "--feature",
        "x:f64",
    ]);
    q.ok(&["put", "tight", "k", "x=2"]);
    q.ok(&["group", "alter", "tight", "--max-staleness", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = q.run(&["--json", "check"]);
    assert_eq!(out.status.code(), Some(12));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false, "{doc}");
    let groups = doc["groups"].as_array().unwrap();
    let tight = groups.iter().find(|g| g["group"] == "tight").unwrap();
    assert_eq!(tight["problems"][0]["kind"], "stale", "{doc}");
    assert!(tight["problems"][0]["staleness_ms"].as_u64().unwrap() > 1000);
    let fresh = groups.iter().find(|g| g["group"] == "fresh").unwrap();
    assert_eq!(fresh["ok"], true, "{doc}");
    let text = String::from_utf8_lossy(&q.run(&["check"]).stdout).into_owned();
    assert!(
        text.contains("FAIL   tight: stale: newest write is"),
        "{text}"
    );
    assert!(text.contains("objective 1s"), "{text}");
    // Only the named group: fresh passes.
    q.ok(&["check", "--group", "fresh"]);
    // The objective removed: nothing to check, passes.
    q.ok(&["group", "alter", "tight", "--max-staleness", "none"]);
    let text = q.ok(&["check", "--group", "tight"]);
    assert!(text.contains("no freshness or drift objective"), "{text}");

    // Bad input.
    let err = q.fails(&["check", "--group", "nope"], 6);
    assert!(err.contains("nope"), "{err}");
    let err = q.fails(&["group", "alter", "fresh", "--max-staleness", "15x"], 2);
    assert!(err.contains("invalid duration '15x'"), "{err}");
    let err = q.fails(&["group", "alter", "fresh", "--max-staleness", "0s"], 7);
    assert!(err.contains("max staleness 0 s is out of range"), "{err}");
    let err = q.fails(&["group", "alter", "fresh", "--drift-psi=-1"], 2);
    assert!(err.contains("invalid threshold '-1'"), "{err}");
}

#[test]
fn check_on_an_embedded_store() {
    check_end_to_end(&Quiver::embedded());
}

#[test]
fn check_through_quiverd() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_quiverd(&dir.path().join("server.db"), None);
    let q = Quiver::remote(&daemon.addr);
    check_end_to_end(&q);
    // The freshness gauges of the metrics endpoint, when quiverd serves one, are checked in
    // server/tests/feature_stats_op.rs.
}
