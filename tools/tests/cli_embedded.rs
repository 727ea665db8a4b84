//! End-to-end tests of every `quiver` command on an in-process store (`--data`).

mod cli_support;

use cli_support::{feature, Quiver};
use serde_json::json;

#[test]
fn group_lifecycle() {
    let q = Quiver::embedded();
    let created = q.json(&[
        "group",
        "create",
        "users",
        "--key-type",
        "i64",
        "--feature",
        "age:i64",
        "--feature",
        "emb:f32[4]",
        "--ttl",
        "7d",
        "--compression",
        "zstd",
        "--tag",
        "team_a",
        "--owner",
        "ml",
    ]);
    assert_eq!(created["name"], "users");
    assert_eq!(created["ttl_s"], 7 * 86_400);
    assert_eq!(created["key_type"], "i64");
    assert_eq!(created["compression"], "zstd:3");
    q.ok(&[
        "group",
        "create",
        "items",
        "--key-type",
        "string",
        "--feature",
        "price:f64",
    ]);

    let listed = q.json(&["group", "list", "--tag", "team_a"]);
    let names: Vec<&str> = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["users"]);
    assert_eq!(
        q.json(&["group", "list"])["groups"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let altered = q.json(&[
        "group",
        "alter",
        "users",
        "--add-feature",
        "city:string",
        "--deprecate",
        "age",
        "--ttl",
        "none",
    ]);
    assert_eq!(altered["ttl_s"], json!(null));
    let age = altered["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "age")
        .unwrap();
    assert_eq!(age["deprecated"], true);
    assert!(q.ok(&["group", "describe", "users"]).contains("city"));

    q.ok(&["group", "drop", "users"]);
    let err = q.fails(&["group", "describe", "users"], 6);
    assert!(err.contains("unknown feature group 'users'"), "{err}");
    q.fails(
        &[
            "group",
            "create",
            "items",
            "--key-type",
            "string",
            "--feature",
            "x:i64",
        ],
        7,
    );
}

#[test]
fn put_get_delete_every_type() {
    let q = Quiver::embedded();
    q.create_all_types_group("g");
    let put = q.json(&[
        "put",
        "g",
        "u1",
        "flag=true",
        "count=-7",
        "ctr=0.25",
        "ltv=1234.5",
        "country=de",
        "blob=0x00ff",
        "emb=[0.5,1,-2]",
        "items=[1,2,3]",
        "weights=[]",
        r#"tags=["a","b"]"#,
        "--ts",
        "1000",
    ]);
    assert_eq!(put["written"], 10);

    let got = q.json(&["get", "g", "u1"]);
    assert_eq!(got["key"], "u1");
    let expect = [
        ("flag", json!(true)),
        ("count", json!(-7)),
        ("ctr", json!(0.25)),
        ("ltv", json!(1234.5)),
        ("country", json!("de")),
        ("blob", json!("00ff")),
        ("emb", json!([0.5, 1.0, -2.0])),
        ("items", json!([1, 2, 3])),
        ("weights", json!([])),
        ("tags", json!(["a", "b"])),
    ];
    for (name, value) in expect {
        let f = feature(&got, name);
        assert_eq!(f["status"], "PRESENT", "{name}");
        assert_eq!(f["value"], value, "{name}");
        assert_eq!(f["event_time_ms"], 1000, "{name}");
    }

    // Named features only, in the order asked; a null is stored as NULL.
    q.ok(&["put", "g", "u1", "country=null", "--ts", "2000"]);
    let some = q.json(&["get", "g", "u1", "country", "count"]);
    let names: Vec<&str> = some["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feature"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["country", "count"]);
    assert_eq!(feature(&some, "country")["status"], "NULL");

    // An older event time does not overwrite a newer value.
    let stale = q.json(&["put", "g", "u1", "count=99", "--ts", "500"]);
    assert_eq!(stale["skipped_stale"], 1);
    assert_eq!(
        feature(&q.json(&["get", "g", "u1", "count"]), "count")["value"],
        -7
    );

    let text = q.ok(&["get", "g", "u1", "emb", "count"]);
    assert!(
        text.contains("[0.5, 1, -2]") && text.contains("-7"),
        "{text}"
    );

    assert_eq!(q.json(&["delete", "g", "u1"])["existed"], true);
    assert_eq!(q.json(&["delete", "g", "u1"])["existed"], false);
    assert_eq!(
        feature(&q.json(&["get", "g", "u1", "count"]), "count")["status"],
        "NOT_FOUND"
    );
}

#[test]
fn get_across_groups_of_one_entity() {
    let q = Quiver::embedded();
    q.ok(&[
        "group",
        "create",
        "profile",
        "--key-type",
        "string",
        "--feature",
        "age:i64",
    ]);
    q.ok(&[
        "group",
        "create",
        "activity",
        "--key-type",
        "string",
        "--feature",
        "clicks:i64",
    ]);
    q.ok(&[
        "group",
        "create",
        "by_id",
        "--key-type",
        "i64",
        "--feature",
        "x:i64",
    ]);
    q.ok(&["put", "profile", "u9", "age=40"]);
    q.ok(&["put", "activity", "u9", "clicks=12"]);
    let got = q.json(&["get", "--entity", "u9", "profile:age", "activity:clicks"]);
    assert_eq!(feature(&got, "profile:age")["value"], 40);
    assert_eq!(feature(&got, "activity:clicks")["value"], 12);
    let err = q.fails(&["get", "--entity", "u9", "profile:age", "by_id:x"], 2);
    assert!(err.contains("cannot share one entity key"), "{err}");
    q.fails(&["get", "--entity", "u9", "profile"], 2);
}

#[test]
fn bad_input_has_clear_messages_and_exit_codes() {
    let q = Quiver::embedded();
    q.ok(&[
        "group",
        "create",
        "g",
        "--key-type",
        "i64",
        "--feature",
        "age:i64",
        "--feature",
        "emb:f32[2]",
    ]);
    let err = q.fails(&["put", "nope", "1", "age=1"], 6);
    assert!(err.contains("unknown feature group 'nope'"), "{err}");
    let err = q.fails(&["put", "g", "1", "height=1"], 6);
    assert!(
        err.contains("unknown feature 'height'") && err.contains("age, emb"),
        "{err}"
    );
    let err = q.fails(&["put", "g", "1", "age=old"], 7);
    assert!(err.contains("expected i64, got 'old'"), "{err}");
    let err = q.fails(&["put", "g", "1", "emb=[1,2,3]"], 7);
    assert!(err.contains("dimension 2"), "{err}");
    let err = q.fails(&["put", "g", "user1", "age=1"], 2);
    assert!(err.contains("i64"), "{err}");
    q.fails(&["put", "g", "1", "age"], 2);
    let err = q.fails(
        &[
            "group",
            "create",
            "h",
            "--key-type",
            "i64",
            "--feature",
            "a:i64",
            "--ttl",
            "7days",
        ],
        2,
    );
    assert!(err.contains("invalid duration '7days'"), "{err}");
    q.fails(
        &[
            "group",
            "create",
            "h",
            "--key-type",
            "i64",
            "--feature",
            "a:float",
        ],
        2,
    );
    q.fails(
        &[
            "group",
            "create",
            "Bad-Name",
            "--key-type",
            "i64",
            "--feature",
            "a:i64",
        ],
        7,
    );
    q.fails(&["--addr", "127.0.0.1:7878", "ping"], 2);
    q.fails(&["group", "alter", "g"], 2);
    let out = std::process::Command::new(cli_support::quiver_bin())
        .args(["--data-size", "4GB", "ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid size '4GB'"), "{err}");
}

#[test]
fn errors_in_json_mode_are_json() {
    let q = Quiver::embedded();
    let out = q.run(&["--json", "group", "describe", "missing"]);
    assert_eq!(out.status.code(), Some(6));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error on stdout");
    assert_eq!(doc["error"]["kind"], "not_found");
    assert_eq!(doc["error"]["exit_code"], 6);
}

#[test]
fn demo_is_idempotent() {
    let q = Quiver::embedded();
    let first = q.json(&["demo", "--entities", "1500"]);
    assert_eq!(first["created"], true);
    let samples = first["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    let emb = feature(&samples[0], "embedding");
    assert_eq!(emb["status"], "PRESENT");
    assert_eq!(emb["value"].as_array().unwrap().len(), 16);
    let second = q.json(&["demo", "--entities", "1500"]);
    assert_eq!(second["created"], false);
    // Same users, same values; only the event time moved forward.
    let values = |doc: &serde_json::Value| -> Vec<serde_json::Value> {
        doc["samples"][1]["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["value"].clone())
            .collect()
    };
    assert_eq!(values(&first), values(&second));
    let text = q.ok(&["demo", "--entities", "10"]);
    assert!(
        text.contains("reused feature group 'demo_users'") && text.contains("user_000005"),
        "{text}"
    );
    q.ok(&[
        "group",
        "create",
        "other",
        "--key-type",
        "i64",
        "--feature",
        "a:i64",
    ]);
    q.fails(&["demo", "--group", "other"], 7);
}

#[test]
fn stats_and_ping() {
    let q = Quiver::embedded();
    q.ok(&[
        "group",
        "create",
        "g",
        "--key-type",
        "string",
        "--feature",
        "a:i64",
    ]);
    q.ok(&["put", "g", "k", "a=1"]);
    let stats = q.json(&["stats"]);
    assert!(
        stats.is_object() && !stats.as_object().unwrap().is_empty(),
        "{stats}"
    );
    assert_eq!(q.json(&["ping"])["ok"], true);
    assert!(q.ok(&["stats"]).contains("stats of store"));
}

#[test]
fn data_persists_across_runs() {
    let q = Quiver::embedded();
    q.ok(&[
        "group",
        "create",
        "g",
        "--key-type",
        "string",
        "--feature",
        "a:i64",
    ]);
    q.ok(&["put", "g", "k", "a=41"]);
    assert_eq!(feature(&q.json(&["get", "g", "k"]), "a")["value"], 41);
}

#[test]
fn unreachable_server_is_named() {
    let out = std::process::Command::new(cli_support::quiver_bin())
        .args(["--addr", "127.0.0.1:1", "ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to 127.0.0.1:1") && err.contains("is quiverd running?"),
        "{err}"
    );
}

#[test]
fn help_documents_exit_codes() {
    let out = std::process::Command::new(cli_support::quiver_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "Exit codes:",
        "3  corruption",
        "4  cannot connect",
        "8  load aborted",
    ] {
        assert!(text.contains(line), "--help lacks '{line}'");
    }
}

#[test]
fn export_and_load_back_round_trip() {
    let q = Quiver::embedded();
    q.create_all_types_group("src");
    q.create_all_types_group("dst_j");
    q.create_all_types_group("dst_p");
    // One process writes the source rows (a load), so the test is about export and load only.
    let mut rows = String::new();
    for i in 0..50 {
        rows.push_str(&format!(
            "{{\"entity\":\"k{i}\",\"event_time\":5000,\"count\":{i},\"emb\":[{i},0.5,-1],\"country\":\"fr\",\"tags\":[\"x\"],\"blob\":\"0a\",\"weights\":[]}}\n"
        ));
    }
    let input = q.write("input.jsonl", &rows);
    assert_eq!(
        q.json(&["load", "src", input.to_str().unwrap()])["rows_written"],
        50
    );
    for (ext, dst) in [("jsonl", "dst_j"), ("parquet", "dst_p")] {
        let file = q.path(&format!("out.{ext}"));
        let file = file.to_str().unwrap();
        assert_eq!(q.json(&["export", "src", file])["rows"], 50);
        q.fails(&["export", "src", file], 9);
        let loaded = q.json(&["load", dst, file]);
        assert_eq!(loaded["rows_written"], 50, "{loaded}");
        assert_eq!(loaded["rows_rejected"], 0, "{loaded}");
        for i in [0, 17, 49] {
            let key = format!("k{i}");
            let a = q.json(&["get", "src", &key]);
            let b = q.json(&["get", dst, &key]);
            for name in ["count", "emb", "country", "tags", "blob", "weights"] {
                assert_eq!(
                    feature(&a, name)["value"],
                    feature(&b, name)["value"],
                    "{ext} {key} {name}"
                );
                assert_eq!(
                    feature(&b, name)["event_time_ms"],
                    5000,
                    "{ext} {key} {name}"
                );
            }
        }
    }
    q.fails(&["export", "src", q.path("out.csv").to_str().unwrap()], 2);
}

/// Finds the first value named `name` anywhere in `doc`.
fn find<'a>(doc: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    match doc {
        serde_json::Value::Object(m) => m
            .get(name)
            .or_else(|| m.values().find_map(|v| find(v, name))),
        serde_json::Value::Array(a) => a.iter().find_map(|v| find(v, name)),
        _ => None,
    }
}

/// Issue 19: every one-shot `quiver --data FILE put` took a fresh 1 MiB block (21 blocks for
/// 20 puts of a few bytes); runs now go on filling the block the last one left.
#[test]
fn one_shot_puts_share_a_block() {
    let q = Quiver::embedded();
    q.ok(&[
        "group",
        "create",
        "g",
        "--key-type",
        "string",
        "--feature",
        "a:i64",
    ]);
    for i in 0..20 {
        q.ok(&["put", "g", &format!("k{i}"), &format!("a={i}")]);
    }
    let stats = q.json(&["stats"]);
    let used = find(&stats, "blocks_used").and_then(|v| v.as_u64());
    assert_eq!(used, Some(1), "20 one-shot puts share one block: {stats}");
    assert_eq!(feature(&q.json(&["get", "g", "k19"]), "a")["value"], 19);
}
