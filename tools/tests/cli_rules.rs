//! Validation rules through the CLI, on an embedded store and through quiverd: set on `group
//! create` and `group alter`, shown by `describe`, enforced by `put` and `load` (a refused row
//! is reported by line, a dropped value is counted), both violation modes.

mod cli_support;

use cli_support::{feature, start_quiverd, Quiver};
use serde_json::{json, Value as Json};

fn rules_of(schema: &Json, feature: &str) -> Json {
    schema["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == feature)
        .unwrap()["rules"]
        .clone()
}

fn rules_end_to_end(q: &Quiver) {
    let schema = q.json(&[
        "group",
        "create",
        "users",
        "--key-type",
        "string",
        "--feature",
        "age:i64",
        "--feature",
        "city:string",
        "--rule",
        "age:range=[0,150]",
        "--rule",
        "city:in=paris,rome",
        "--rule",
        "city:not-null",
    ]);
    assert_eq!(rules_of(&schema, "age"), json!(["range=[0,150]"]));
    assert_eq!(
        rules_of(&schema, "city"),
        json!(["not-null", "in=paris,rome"])
    );
    assert_eq!(schema["on_violation"], "reject");
    let text = q.ok(&["group", "describe", "users"]);
    assert!(text.contains("rules: range=[0,150]"), "{text}");

    let err = q.fails(&["put", "users", "u1", "age=200", "city=paris"], 7);
    assert!(
        err.contains("feature 'age' of group 'users' breaks rule range=[0,150]: got 200"),
        "{err}"
    );
    let put = q.json(&["put", "users", "u1", "age=30", "city=paris"]);
    assert_eq!(
        (put["written"].clone(), put["dropped"].clone()),
        (json!(2), json!(0))
    );

    let file = q.write(
        "users.csv",
        "entity,age,city\nu2,40,rome\nu3,-1,rome\nu4,50,london\nu5,60,paris\n",
    );
    let report = q.json(&["load", "users", file.to_str().unwrap()]);
    assert_eq!(report["rows_written"], 2, "{report}");
    assert_eq!(report["rows_rejected"], 2, "{report}");
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected[0]["line"], 3, "{report}");
    assert!(rejected[0]["reason"]
        .as_str()
        .unwrap()
        .contains("rule range=[0,150]: got -1"));
    assert_eq!(rejected[1]["line"], 4, "{report}");
    assert!(rejected[1]["reason"]
        .as_str()
        .unwrap()
        .contains("in=paris,rome: got 'london'"));
    let u3 = q.json(&["get", "users", "u3"]);
    assert_eq!(feature(&u3, "age")["status"], "NOT_FOUND", "{u3}");

    let schema = q.json(&["group", "alter", "users", "--on-violation", "drop"]);
    assert_eq!(schema["on_violation"], "drop");
    let report = q.json(&["load", "users", file.to_str().unwrap()]);
    assert_eq!(report["rows_written"], 4, "{report}");
    assert_eq!(report["rows_rejected"], 0, "{report}");
    assert_eq!(report["values_dropped"], 2, "{report}");
    assert_eq!(report["rows_with_drops"], 2, "{report}");
    // Row by row, like rejections: the line, the feature, and the rule with the value.
    let dropped = report["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 2, "{report}");
    assert_eq!(
        (dropped[0]["line"].clone(), dropped[0]["column"].clone()),
        (json!(3), json!("age")),
        "{report}"
    );
    assert!(dropped[0]["reason"]
        .as_str()
        .unwrap()
        .contains("rule range=[0,150]: got -1"));
    assert_eq!(
        (dropped[1]["line"].clone(), dropped[1]["column"].clone()),
        (json!(4), json!("city")),
        "{report}"
    );
    assert!(dropped[1]["reason"]
        .as_str()
        .unwrap()
        .contains("in=paris,rome: got 'london'"));
    let text = q.ok(&["load", "users", file.to_str().unwrap()]);
    assert!(
        text.contains("2 values dropped for breaking a rule of their feature, in 2 rows:")
            && text.contains("line 3, column 'age': dropped:"),
        "{text}"
    );
    let put = q.json(&["put", "users", "u9", "age=-5", "city=rome"]);
    assert_eq!(
        (put["written"].clone(), put["dropped"].clone()),
        (json!(1), json!(1))
    );

    let schema = q.json(&[
        "group",
        "alter",
        "users",
        "--clear-rules",
        "age",
        "--rule",
        "city:regex=[a-z]+",
    ]);
    assert_eq!(rules_of(&schema, "age"), json!([]));
    assert_eq!(
        rules_of(&schema, "city"),
        json!(["regex=[a-z]+"]),
        "the city rules were replaced"
    );
    let put = q.json(&["put", "users", "u9", "age=-5", "city=Rome"]);
    assert_eq!(
        (put["written"].clone(), put["dropped"].clone()),
        (json!(1), json!(1))
    );

    let err = q.fails(&["group", "alter", "users", "--rule", "age:regex=x"], 7);
    assert!(
        err.contains("does not apply to a feature of type i64"),
        "{err}"
    );
    let err = q.fails(&["group", "alter", "users", "--rule", "age:between=1"], 2);
    assert!(err.contains("invalid rule 'between=1'"), "{err}");
}

#[test]
fn rules_on_an_embedded_store() {
    rules_end_to_end(&Quiver::embedded());
}

#[test]
fn rules_through_quiverd() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_quiverd(&dir.path().join("server.db"), None);
    rules_end_to_end(&Quiver::remote(&daemon.addr));
}
