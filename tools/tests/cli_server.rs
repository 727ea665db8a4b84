//! End-to-end tests of `quiver` against a real quiverd process (started by
//! [`cli_support::start_quiverd`]).

mod cli_support;

use std::process::Command;

use cli_support::{feature, start_quiverd, Quiver};

#[test]
fn every_command_against_quiverd() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_quiverd(&dir.path().join("server.db"), None);
    let q = Quiver::remote(&daemon.addr);
    assert_eq!(q.json(&["ping"])["ok"], true);
    q.create_all_types_group("g");
    assert_eq!(q.json(&["group", "list"])["groups"][0]["name"], "g");
    q.ok(&[
        "group",
        "alter",
        "g",
        "--add-feature",
        "extra:i64",
        "--ttl",
        "1d",
    ]);
    assert_eq!(q.json(&["group", "describe", "g"])["ttl_s"], 86_400);
    q.ok(&["put", "g", "u1", "count=5", "emb=[1,2,3]", "country=de"]);
    // The group's TTL (1d) makes a value with a 1970 event time read as expired.
    q.ok(&["put", "g", "old", "count=1", "--ts", "1000"]);
    assert_eq!(
        feature(&q.json(&["get", "g", "old", "count"]), "count")["status"],
        "EXPIRED"
    );
    let got = q.json(&["get", "g", "u1", "count", "emb"]);
    assert_eq!(feature(&got, "count")["value"], 5);
    assert_eq!(
        feature(&got, "emb")["value"],
        serde_json::json!([1.0, 2.0, 3.0])
    );
    assert_eq!(
        feature(
            &q.json(&["get", "--entity", "u1", "g:country"]),
            "g:country"
        )["value"],
        "de"
    );
    let err = q.fails(&["put", "g", "u1", "count=x"], 7);
    assert!(err.contains("expected i64"), "{err}");
    q.fails(&["get", "nope", "u1"], 6);

    let mut csv = String::from("entity,count,ctr\n");
    for i in 0..3000 {
        csv.push_str(&format!("e{i},{i},0.5\n"));
    }
    csv.push_str("bad,notanumber,0.5\n");
    let file = q.write("rows.csv", &csv);
    let report = q.json(&["load", "g", file.to_str().unwrap()]);
    assert_eq!(report["rows_written"], 3000, "{report}");
    assert_eq!(report["rows_rejected"], 1, "{report}");
    assert_eq!(
        feature(&q.json(&["get", "g", "e2999", "count"]), "count")["value"],
        2999
    );
    // Many entities at once: batches of GET_MANY.
    let keys: String = (0..2500).map(|i| format!("e{}\n", i * 7 % 3000)).collect();
    let keys = q.write("keys.txt", &format!("{keys}\nnobody\n"));
    let many = q.json(&["get", "--keys", keys.to_str().unwrap(), "g", "count"]);
    let entities = many["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 2501);
    assert_eq!(entities[1000]["key"], "e1000");
    assert_eq!(feature(&entities[1000], "count")["value"], 1000);
    assert_eq!(feature(&entities[2500], "count")["status"], "NOT_FOUND");

    let out = q.path("out.parquet");
    assert_eq!(
        q.json(&["export", "g", out.to_str().unwrap()])["rows"],
        3001
    );
    assert_eq!(q.json(&["delete", "g", "u1"])["existed"], true);
    assert!(q.json(&["stats"]).is_object());
    q.ok(&["demo", "--entities", "200"]);
    q.ok(&["group", "drop", "g"]);
    q.fails(&["group", "describe", "g"], 6);
}

#[test]
fn auth_token_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_quiverd(&dir.path().join("auth.db"), Some("s3cret-token"));
    let q = Quiver::remote(&daemon.addr);
    let err = q.fails(&["ping"], 5);
    assert!(err.contains("refused the auth token"), "{err}");
    let ok = Command::new(cli_support::quiver_bin())
        .args(["--addr", &daemon.addr, "ping"])
        .env("QUIVER_AUTH_TOKEN", "s3cret-token")
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", cli_support::describe(&ok));
    q.ok(&["--auth-token", "s3cret-token", "ping"]);
}
