//! Drift: baselines saved from a live window and from a Parquet training set, compared with
//! the live windows in `quiver stats`, `quiver check` and the metrics. On seeded random data,
//! the same distribution stays quiet and a shifted one fires; embedded and through quiverd.

mod cli_support;

use std::path::Path;
use std::sync::Arc;

use cli_support::{start_quiverd, Quiver};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value as Json;

const CITIES: [&str; 4] = ["paris", "rome", "oslo", "lima"];

fn normal(rng: &mut StdRng, mean: f64) -> f64 {
    let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
    mean + (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// `n` rows: x from N(mean, 1), city from CITIES with weights shifted by `tilt`.
fn rows(rng: &mut StdRng, n: usize, mean: f64, tilt: usize) -> Vec<(f64, &'static str)> {
    (0..n)
        .map(|_| {
            let x = normal(rng, mean);
            let pick = rng.gen_range(0..10usize);
            // Unshifted: paris 40%, rome 30%, oslo 20%, lima 10%.
            let city = match (pick + tilt).min(9) {
                0..=3 => CITIES[0],
                4..=6 => CITIES[1],
                7..=8 => CITIES[2],
                _ => CITIES[3],
            };
            (x, city)
        })
        .collect()
}

fn load(q: &Quiver, group: &str, first: usize, rows: &[(f64, &str)]) {
    let mut csv = String::from("entity,x,city\n");
    for (i, (x, city)) in rows.iter().enumerate() {
        csv += &format!("e{},{x},{city}\n", first + i);
    }
    let file = q.write(&format!("{group}-{first}.csv"), &csv);
    let report = q.json(&["load", group, file.to_str().unwrap()]);
    assert_eq!(report["rows_written"], rows.len(), "{report}");
}

fn write_parquet(path: &Path, rows: &[(f64, &str)]) {
    let schema = Arc::new(
        parse_message_type("message t { required double x; required binary city (UTF8); }")
            .unwrap(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut index = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        if index == 0 {
            let xs: Vec<f64> = rows.iter().map(|r| r.0).collect();
            column
                .typed::<DoubleType>()
                .write_batch(&xs, None, None)
                .unwrap();
        } else {
            let cities: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.1)).collect();
            column
                .typed::<ByteArrayType>()
                .write_batch(&cities, None, None)
                .unwrap();
        }
        column.close().unwrap();
        index += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

fn create(q: &Quiver, name: &str) {
    q.ok(&[
        "group",
        "create",
        name,
        "--key-type",
        "string",
        "--feature",
        "x:f64",
        "--feature",
        "city:string",
        "--feature",
        "raw:bytes",
        "--drift-psi",
        "0.2",
        "--drift-distance",
        "0.1",
    ]);
}

fn drift<'a>(report: &'a Json, feature: &str) -> &'a Json {
    let f = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == feature)
        .unwrap();
    &f["drift"]
}

fn window_drift<'a>(report: &'a Json, feature: &str, window: &str) -> &'a Json {
    drift(report, feature)["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == window)
        .unwrap()
}

fn drift_end_to_end(q: &Quiver) {
    let mut rng = StdRng::seed_from_u64(42);

    // A baseline from a live window, then more of the same distribution: quiet.
    create(q, "live");
    load(q, "live", 0, &rows(&mut rng, 2000, 10.0, 0));
    let saved = q.json(&["baseline", "save", "--group", "live", "--window", "hour"]);
    let names: Vec<&str> = saved["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["feature"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["x", "city"], "bytes have no distribution: {saved}");
    assert_eq!(saved["baselines"][0]["source"], "window 1h");
    assert_eq!(saved["baselines"][0]["count"], 2000);
    load(q, "live", 2000, &rows(&mut rng, 2000, 10.0, 0));
    let report = q.json(&["stats", "--group", "live"]);
    let x = window_drift(&report, "x", "1h");
    assert_eq!(x["drifted"], false, "{report}");
    assert!(x["psi"].as_f64().unwrap() < 0.05, "{x}");
    assert!(x["distance"].as_f64().unwrap() < 0.03, "{x}");
    let city = window_drift(&report, "city", "1h");
    assert!(city["psi"].as_f64().unwrap() < 0.05, "{city}");
    assert!(city["distance"].is_null(), "{city}");
    assert!(drift(&report, "raw").is_null());
    let text = q.ok(&["check", "--group", "live"]);
    assert!(text.contains("ok     live: drift"), "{text}");

    // Then a shifted distribution: x by 1.5 standard deviations, the cities tilted.
    load(q, "live", 4000, &rows(&mut rng, 8000, 11.5, 3));
    let report = q.json(&["stats", "--group", "live"]);
    let x = window_drift(&report, "x", "1h");
    assert_eq!(x["drifted"], true, "{report}");
    assert!(x["psi"].as_f64().unwrap() > 0.2, "{x}");
    assert!(x["distance"].as_f64().unwrap() > 0.1, "{x}");
    assert!(
        window_drift(&report, "city", "24h")["psi"]
            .as_f64()
            .unwrap()
            > 0.2
    );
    let out = q.run(&["--json", "check"]);
    assert_eq!(
        out.status.code(),
        Some(12),
        "{}",
        cli_support::describe(&out)
    );
    let doc: Json = serde_json::from_slice(&out.stdout).unwrap();
    let problems = doc["groups"][0]["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["kind"] == "drift" && p["feature"] == "x"),
        "{doc}"
    );
    let err = q.fails(&["check"], 12);
    assert!(err.contains("live (drift"), "{err}");

    // A baseline from a training set in Parquet: live data like it stays quiet, shifted
    // live data fires, in another group sharing the same training set.
    let train = q.path("train.parquet");
    write_parquet(&train, &rows(&mut rng, 5000, 10.0, 0));
    for group in ["same", "moved"] {
        create(q, group);
        let saved = q.json(&[
            "baseline",
            "save",
            "--group",
            group,
            "--parquet",
            train.to_str().unwrap(),
        ]);
        assert_eq!(saved["baselines"].as_array().unwrap().len(), 2, "{saved}");
        assert_eq!(saved["baselines"][0]["source"], "parquet train.parquet");
        assert_eq!(saved["baselines"][0]["count"], 5000);
    }
    load(q, "same", 0, &rows(&mut rng, 3000, 10.0, 0));
    load(q, "moved", 0, &rows(&mut rng, 3000, 11.5, 3));
    q.ok(&["check", "--group", "same"]);
    let err = q.fails(&["check", "--group", "moved"], 12);
    assert!(err.contains("moved (drift"), "{err}");
    let text = String::from_utf8_lossy(&q.run(&["check", "--group", "moved"]).stdout).into_owned();
    assert!(
        text.contains(
            "FAIL   moved: drift: feature 'x' drifted from its baseline in the last 1h: PSI"
        ),
        "{text}"
    );

    // Show and drop.
    let shown = q.json(&["baseline", "show", "--group", "same", "--feature", "city"]);
    assert_eq!(shown["baselines"][0]["kind"], "categories", "{shown}");
    assert_eq!(shown["baselines"][0]["values"][0]["value"], "paris");
    let text = q.ok(&["baseline", "show", "--group", "same"]);
    assert!(
        text.contains("baseline of same.x (numbers): 5000 values"),
        "{text}"
    );
    let dropped = q.json(&["baseline", "drop", "--group", "moved"]);
    assert_eq!(dropped["dropped"], 2);
    q.ok(&["check", "--group", "moved"]);

    // Bad input.
    let err = q.fails(
        &["baseline", "save", "--group", "same", "--window", "week"],
        7,
    );
    assert!(
        err.contains("unknown window 'week': expected one of 1h, 24h"),
        "{err}"
    );
    let err = q.fails(
        &[
            "baseline",
            "save",
            "--group",
            "same",
            "--feature",
            "nope",
            "--window",
            "1h",
        ],
        6,
    );
    assert!(err.contains("nope"), "{err}");
    let err = q.fails(
        &[
            "baseline",
            "save",
            "--group",
            "same",
            "--feature",
            "raw",
            "--window",
            "1h",
        ],
        7,
    );
    assert!(err.contains("only numbers, vectors"), "{err}");
    create(q, "empty");
    let err = q.fails(
        &["baseline", "save", "--group", "empty", "--window", "1h"],
        7,
    );
    assert!(
        err.contains("no feature has values in the last 1h"),
        "{err}"
    );
    let none = q.path("none.parquet");
    write_parquet(&none, &[]);
    let err = q.fails(
        &[
            "baseline",
            "save",
            "--group",
            "empty",
            "--parquet",
            none.to_str().unwrap(),
        ],
        9,
    );
    assert!(err.contains("has no values to make a baseline of"), "{err}");
    let err = q.fails(
        &[
            "baseline",
            "save",
            "--group",
            "empty",
            "--feature",
            "x",
            "--column",
            "city",
            "--parquet",
            train.to_str().unwrap(),
        ],
        9,
    );
    assert!(
        err.contains("column 'city': holds strings, feature 'x' is of type f64"),
        "{err}"
    );
    let err = q.fails(
        &[
            "baseline",
            "save",
            "--group",
            "empty",
            "--feature",
            "x",
            "--column",
            "nope",
            "--parquet",
            train.to_str().unwrap(),
        ],
        9,
    );
    assert!(err.contains("no column 'nope'"), "{err}");
    let csv = q.write("not.parquet", "a,b\n1,2\n");
    let err = q.fails(
        &[
            "baseline",
            "save",
            "--group",
            "empty",
            "--parquet",
            csv.to_str().unwrap(),
        ],
        9,
    );
    assert!(err.contains("not a readable Parquet file"), "{err}");
    let err = q.fails(&["baseline", "save", "--group", "empty"], 2);
    assert!(err.contains("--window"), "{err}");
}

#[test]
fn drift_on_an_embedded_store() {
    drift_end_to_end(&Quiver::embedded());
}

#[test]
fn drift_through_quiverd() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_quiverd(&dir.path().join("server.db"), None);
    drift_end_to_end(&Quiver::remote(&daemon.addr));
}
