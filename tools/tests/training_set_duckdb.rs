//! `quiver training-set` compared value for value (and status for status) with an independent
//! reference: DuckDB (the Python `duckdb` package, which `.ci/run` installs) over the same
//! history exported to Parquet. Random data with late events, corrections, nulls, TTLs,
//! missing entities, null keys and two groups with different key types; every mode (event time
//! by ASOF JOIN, "as served" and known-at with the extra write-time condition); Parquet and CSV
//! spines. Zero mismatches. Also the CLI's errors for a bad spine.
//!
//! The Python used is `$QUIVER_PYTHON` (set by `.ci/run` to its venv), else `python3`. Without
//! DuckDB the comparison is skipped with a message, except under CI=true, where it fails.

mod cli_support;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use cli_support::quiver_bin;
use quiver_engine::feature::{
    EntityKey, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Value,
};
use quiver_engine::history::HistoryPolicy;
use quiver_engine::{Config, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value as Json;

const TTL_S: u32 = 60;
const SPAN_MS: u64 = 20_000_000;
const SPINE_ROWS: usize = 4_000;

fn reference_script() -> String {
    format!(
        "{}/tests/training_support/duckdb_reference.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn python() -> String {
    std::env::var("QUIVER_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Whether DuckDB can be imported; under CI=true its absence fails the test.
fn duckdb_available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but `{} -c 'import duckdb'` fails: .ci/run installs it (QUIVER_PYTHON)",
            python()
        );
        eprintln!("skipping: the duckdb Python package is not installed (set QUIVER_PYTHON)");
    }
    ok
}

fn run_python(action: &str, dir: &Path) -> String {
    let out = Command::new(python())
        .arg(reference_script())
        .arg(action)
        .arg(dir)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "duckdb_reference.py {action} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn quiver(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(quiver_bin())
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("quiver runs")
}

fn group(name: &str, key_type: KeyType, features: &[&str], ttl_s: Option<u32>) -> GroupSpec {
    let specs = features
        .iter()
        .map(|f| {
            let ty = if *f == "clicks" {
                FeatureType::I64
            } else {
                FeatureType::F64
            };
            FeatureSpec::new(*f, ty)
        })
        .collect();
    let mut spec = GroupSpec::new(name, key_type, specs);
    spec.ttl_s = ttl_s;
    spec.history = Some(HistoryPolicy::retention(3650 * 86_400));
    spec
}

/// Writes random history to the store and to `hist.csv`: per put, one line per value.
fn write_history(store: &Store, rng: &mut StdRng, t0: u64, csv: &mut String) {
    csv.push_str("grp,entity,feature,event_time,write_time,is_null,value\n");
    let mut events: Vec<(String, String, u64, u64)> = Vec::new();
    let mut used = HashSet::new();
    for _ in 0..2_500 {
        let user = rng.gen_bool(0.7);
        let (grp, entity, features): (&str, String, &[&str]) = if user {
            (
                "user",
                format!("u{}", rng.gen_range(0..6)),
                &["clicks", "score"],
            )
        } else {
            ("shop", rng.gen_range(0..4).to_string(), &["rating"])
        };
        // A correction: an earlier event time of this entity again, written later.
        let earlier = events
            .iter()
            .rev()
            .find(|(g, e, _, _)| g == grp && *e == entity)
            .cloned();
        let (event_ms, write_ms) = match earlier {
            Some((_, _, ev, wr)) if rng.gen_bool(0.1) => (ev, wr + rng.gen_range(1..1_000_000)),
            _ => {
                let ev = t0 + rng.gen_range(0..SPAN_MS);
                // Late by up to a third of the span (some written a little before their time).
                (
                    ev,
                    (ev + rng.gen_range(0..SPAN_MS / 3)).saturating_sub(1_000),
                )
            }
        };
        if !used.insert((grp, entity.clone(), event_ms, write_ms)) {
            continue;
        }
        events.push((grp.to_string(), entity.clone(), event_ms, write_ms));
        let mut values = Vec::new();
        for f in features {
            if values.is_empty() || rng.gen_bool(0.6) {
                let value = match (rng.gen_range(0..10), *f) {
                    (0, _) => Value::Null,
                    (_, "clicks") => Value::I64(rng.gen_range(-50..50)),
                    _ => Value::F64(rng.gen_range(0..1000) as f64 / 8.0),
                };
                values.push((*f, value));
            }
        }
        let key = if user {
            EntityKey::String(entity.clone())
        } else {
            EntityKey::I64(entity.parse().unwrap())
        };
        let opts = PutOptions {
            write_time_ms: Some(write_ms),
            ..PutOptions::default()
        };
        store.put(grp, &key, event_ms, &values, &opts).unwrap();
        for (f, value) in values {
            let (is_null, text) = match value {
                Value::Null => (true, String::new()),
                Value::I64(v) => (false, v.to_string()),
                Value::F64(v) => (false, v.to_string()),
                other => unreachable!("{other:?}"),
            };
            writeln!(
                csv,
                "{grp},{entity},{f},{event_ms},{write_ms},{is_null},{text}"
            )
            .unwrap();
        }
    }
}

/// A random spine: users u0..u7 (u6, u7 never written), shops 0..4 or none; labels.
fn spine_csv(rng: &mut StdRng, t0: u64) -> String {
    let mut csv = String::from("row_id,user_id,shop_id,ts_ms,known_ms,label\n");
    for row in 0..SPINE_ROWS {
        let ts = t0 + rng.gen_range(0..SPAN_MS + 2_000_000);
        let known = ts + rng.gen_range(0..SPAN_MS / 2);
        let user = format!("u{}", rng.gen_range(0..8));
        let shop = if rng.gen_bool(0.85) {
            rng.gen_range(0..5).to_string()
        } else {
            String::new()
        };
        let label = if rng.gen_bool(0.9) {
            format!("{}", rng.gen_range(0..2))
        } else {
            String::new()
        };
        writeln!(csv, "{row},{user},{shop},{ts},{known},{label}").unwrap();
    }
    csv
}

fn training_set(
    data: &Path,
    dir: &Path,
    (spine, ts, mode, name, batch_rows): (&str, &str, &str, &str, usize),
) {
    let out = dir.join(format!("out_{name}.parquet"));
    let args = [
        "training-set",
        "--spine",
        &dir.join(spine).display().to_string(),
        "--timestamp-column",
        ts,
        "--key-column",
        "user=user_id",
        "--key-column",
        "shop=shop_id",
        "--feature",
        "user:clicks",
        "--feature",
        "shop:rating",
        "--feature",
        "user:score",
        "--mode",
        mode,
        "--status-columns",
        "--batch-rows",
        &batch_rows.to_string(),
        "--out",
        &out.display().to_string(),
    ]
    .map(str::to_string);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = quiver(data, &args);
    assert!(
        result.status.success(),
        "training-set {mode} failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn training_sets_match_duckdb_in_every_mode() {
    if !duckdb_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store.db");
    let mut rng = StdRng::seed_from_u64(0xd0c6);
    let t0 = quiver_tools::cli::now_ms() - 40 * 86_400_000;
    {
        let store = Store::open(Config::file(&data, 64 << 20)).unwrap();
        store
            .create_group(group(
                "user",
                KeyType::String,
                &["clicks", "score"],
                Some(TTL_S),
            ))
            .unwrap();
        store
            .create_group(group("shop", KeyType::I64, &["rating"], None))
            .unwrap();
        let mut hist = String::new();
        write_history(&store, &mut rng, t0, &mut hist);
        std::fs::write(dir.path().join("hist.csv"), hist).unwrap();
        store.close().unwrap();
    }
    std::fs::write(dir.path().join("spine.csv"), spine_csv(&mut rng, t0)).unwrap();
    run_python("prepare", dir.path());
    // Batches of 700 rows cut the Parquet spine's row groups of 1,500 rows; batches of
    // 4,000 rows join rows of several row groups at once.
    let runs = [
        ("spine.parquet", "ts", "event", "event", 700),
        ("spine.parquet", "ts", "as-served", "served", 700),
        ("spine.parquet", "ts", "known-at:known", "known", 700),
        ("spine.csv", "ts_ms", "event", "csv_event", 700),
        ("spine.parquet", "ts", "event", "event_wide", 4000),
        ("spine.parquet", "ts", "as-served", "served_wide", 4000),
    ];
    for run in runs {
        training_set(&data, dir.path(), run);
    }
    let ttl_ms = TTL_S as u64 * 1000;
    let features = serde_json::json!({
        "features": [
            {"group": "user", "feature": "clicks", "name": "clicks", "key": "user_id", "ttl_ms": ttl_ms},
            {"group": "shop", "feature": "rating", "name": "rating", "key": "shop_id", "ttl_ms": null},
            {"group": "user", "feature": "score", "name": "score", "key": "user_id", "ttl_ms": ttl_ms},
        ],
        "runs": runs.iter().map(|(_, _, _, name, _)| {
            let mode = name.strip_prefix("csv_").unwrap_or(name);
            let mode = mode.strip_suffix("_wide").unwrap_or(mode);
            serde_json::json!({"name": name, "mode": mode})
        }).collect::<Vec<_>>(),
    });
    std::fs::write(dir.path().join("features.json"), features.to_string()).unwrap();
    let report: Json = serde_json::from_str(&run_python("compare", dir.path())).unwrap();
    for (_, _, _, name, _) in runs {
        let r = &report[name];
        assert_eq!(r["rows"], SPINE_ROWS as u64, "{name}: {r}");
        assert_eq!(r["mismatches"], 0, "{name}: {r}");
        assert_eq!(r["passthrough_mismatches"], 0, "{name}: {r}");
        // Every status occurs, so each comparison could have failed.
        for status in ["present", "null", "not_found", "expired"] {
            let n = r["statuses"][status].as_u64().unwrap_or(0);
            assert!(n >= 20, "{name}: only {n} '{status}' values: {r}");
        }
    }
    assert_ne!(
        report["event"]["statuses"], report["served"]["statuses"],
        "late data makes event time and as-served differ"
    );
}

#[test]
fn a_bad_spine_is_refused_naming_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store.db");
    {
        let store = Store::open(Config::file(&data, 64 << 20)).unwrap();
        store
            .create_group(group("shop", KeyType::I64, &["rating"], None))
            .unwrap();
        store.close().unwrap();
    }
    let now = quiver_tools::cli::now_ms();
    let run = |csv: &str, extra: &[&str]| -> (u8, String) {
        let spine = dir.path().join("spine.csv");
        std::fs::write(&spine, csv).unwrap();
        let out = dir.path().join("out.parquet");
        let mut args = vec![
            "training-set".to_string(),
            "--spine".into(),
            spine.display().to_string(),
            "--timestamp-column".into(),
            "ts".into(),
            "--key-column".into(),
            "shop=shop_id".into(),
            "--feature".into(),
            "shop:rating".into(),
            "--out".into(),
            out.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let existed = out.exists();
        let result = quiver(&data, &args);
        if !result.status.success() {
            assert_eq!(out.exists(), existed, "a failed run leaves no output");
            assert!(!dir.path().join("out.parquet.partial").exists());
        }
        (
            result.status.code().unwrap_or(-1) as u8,
            String::from_utf8_lossy(&result.stderr).to_string(),
        )
    };
    let (code, err) = run(&format!("shop_id,ts\n1,{now}\n2,{now}\nx7,{now}\n"), &[]);
    assert_eq!(code, 9, "{err}");
    assert!(
        err.contains("row 3, column 'shop_id': invalid key 'x7'"),
        "{err}"
    );
    let (code, err) = run(&format!("shop_id,ts\n1,{now}\n2,yesterday\n"), &[]);
    assert_eq!(code, 9, "{err}");
    assert!(
        err.contains("row 2, column 'ts': invalid event time 'yesterday'"),
        "{err}"
    );
    let (_, err) = run(&format!("shop_id,ts\n1,{now}\n2,\n"), &[]);
    assert!(err.contains("row 2, column 'ts': no time (empty)"), "{err}");
    let (code, err) = run(&format!("shop,ts\n1,{now}\n"), &[]);
    assert_eq!(code, 9, "{err}");
    assert!(
        err.contains("the spine has no column 'shop_id' (its columns: shop, ts)"),
        "{err}"
    );
    let (code, err) = run(
        &format!("shop_id,ts\n1,{now}\n"),
        &["--mode", "known-at:seen"],
    );
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("no column 'seen'"), "{err}");
    let (code, err) = run("shop_id,ts\n1,5\n", &[]);
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("spine row 1: as-of time 5 ms is before the history window of group 'shop'"),
        "{err}"
    );
    let (code, err) = run(&format!("shop_id,rating,ts\n1,2,{now}\n"), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("two columns named 'rating'"), "{err}");
    let (code, _) = run(
        &format!("shop_id,rating,ts\n1,2,{now}\n"),
        &["--full-feature-names"],
    );
    assert_eq!(code, 0);
    let (code, err) = run(&format!("shop_id,ts\n1,{now}\n"), &[]);
    assert_eq!(code, 9, "{err}");
    assert!(
        err.contains("already exists (pass --force to overwrite)"),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("out.parquet")).unwrap();
    // A Parquet spine whose key column holds strings for a group of i64 keys.
    let spine = dir.path().join("spine.parquet");
    write_parquet_spine(&spine, now);
    let out = dir.path().join("out.parquet");
    let result = quiver(
        &data,
        &[
            "training-set",
            "--spine",
            spine.to_str().unwrap(),
            "--timestamp-column",
            "ts",
            "--key-column",
            "shop=shop_id",
            "--feature",
            "shop:rating",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(9), "{err}");
    assert!(
        err.contains("column 'shop_id' holds strings, not i64 keys (group 'shop' has i64 keys)"),
        "{err}"
    );
}

fn write_parquet_spine(path: &Path, now: u64) {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message spine { required binary shop_id (STRING); required int64 ts (TIMESTAMP(MILLIS,true)); }",
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema.into(), Default::default()).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<ByteArrayType>()
        .write_batch(&[ByteArray::from("7")], None, None)
        .unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<Int64Type>()
        .write_batch(&[now as i64], None, None)
        .unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
}
