//! `quiver stats --group G [--feature F]` on an embedded store (statistics saved when one
//! command's store closes and read back by the next) and through quiverd, text and --json.

mod cli_support;

use cli_support::{start_quiverd, Quiver};
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

fn stats_end_to_end(q: &Quiver) {
    q.ok(&[
        "group",
        "create",
        "users",
        "--key-type",
        "string",
        "--feature",
        "age:i64",
        "--feature",
        "city:string",
    ]);
    let ages = [20i64, 30, 40, 50, 60, 70];
    let cities = ["paris", "rome", "paris", "oslo", "paris", "rome"];
    let mut csv = String::from("entity,age,city\n");
    for (i, (age, city)) in ages.iter().zip(cities).enumerate() {
        csv += &format!("u{i},{age},{city}\n");
    }
    let file = q.write("users.csv", &csv);
    q.json(&["load", "users", file.to_str().unwrap()]);
    q.ok(&["put", "users", "u9", "city=paris"]);

    let report = q.json(&["stats", "--group", "users"]);
    assert_eq!(report["puts"], 7, "{report}");
    let age = window(&report, "age", "1h");
    assert_eq!(age["count"], 6);
    let mean = ages.iter().sum::<i64>() as f64 / ages.len() as f64;
    assert_eq!(age["numbers"]["mean"].as_f64(), Some(mean));
    assert_eq!(age["numbers"]["min"].as_f64(), Some(20.0));
    let city = window(&report, "city", "24h");
    assert_eq!(city["count"], 7);
    assert_eq!(city["top"][0]["value"], "paris");
    assert_eq!(city["top"][0]["count"], 4);
    assert_eq!(city["top"][1]["value"], "rome");

    let one = q.json(&["stats", "--group", "users", "--feature", "city"]);
    assert_eq!(one["features"].as_array().unwrap().len(), 1);
    let text = q.ok(&["stats", "--group", "users"]);
    assert!(text.contains("group users: 7 puts"), "{text}");
    assert!(
        text.contains("feature age (i64): 6 values, 0 nulls"),
        "{text}"
    );
    assert!(
        text.contains("top: paris (4), rome (2), oslo (1)"),
        "{text}"
    );
    assert!(text.contains("min 20 max 70 mean 45"), "{text}");

    let err = q.fails(&["stats", "--group", "nope"], 6);
    assert!(err.contains("nope"), "{err}");
    let err = q.fails(&["stats", "--group", "users", "--feature", "nope"], 6);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn stats_on_an_embedded_store() {
    stats_end_to_end(&Quiver::embedded());
}

#[test]
fn stats_through_quiverd() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_quiverd(&dir.path().join("server.db"), None);
    stats_end_to_end(&Quiver::remote(&daemon.addr));
}
