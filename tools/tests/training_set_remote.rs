//! `quiver training-set --addr` (the TRAINING_SET protocol operation) against the same command
//! on the store opened in-process: for the same data, spine and flags, in every mode, the two
//! Parquet files are identical byte for byte. The server runs with small limits
//! (`--max-batch-keys 300`, `--max-frame-bytes 4096`), so each spine chunk travels as many
//! pipelined requests, each answered in several frames. A bad row deep in the spine is named
//! by its number in the whole spine over the wire too.

mod cli_support;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use cli_support::{start_quiverd_with, Quiver, Target};
use quiver_engine::feature::{
    EntityKey, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Value,
};
use quiver_engine::history::HistoryPolicy;
use quiver_engine::{Config, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SPAN_MS: u64 = 20_000_000;
const SPINE_ROWS: usize = 3_000;

fn group(
    name: &str,
    key_type: KeyType,
    features: &[(&str, FeatureType)],
    ttl_s: Option<u32>,
) -> GroupSpec {
    let specs = features
        .iter()
        .map(|(f, ty)| FeatureSpec::new(*f, *ty))
        .collect();
    let mut spec = GroupSpec::new(name, key_type, specs);
    spec.ttl_s = ttl_s;
    spec.history = Some(HistoryPolicy::retention(3650 * 86_400));
    spec
}

/// Random history: late writes, corrections, nulls, a vector feature, two key types.
fn write_history(data: &Path, rng: &mut StdRng, t0: u64) {
    let store = Store::open(Config::file(data, 64 << 20)).unwrap();
    let user = [
        ("clicks", FeatureType::I64),
        ("emb", FeatureType::Vector(3)),
    ];
    store
        .create_group(group("user", KeyType::String, &user, Some(60)))
        .unwrap();
    let shop = [("rating", FeatureType::F64), ("name", FeatureType::String)];
    store
        .create_group(group("shop", KeyType::I64, &shop, None))
        .unwrap();
    let mut used = HashSet::new();
    for _ in 0..2_000 {
        let is_user = rng.gen_bool(0.6);
        let event_ms = t0 + rng.gen_range(0..SPAN_MS);
        let write_ms = event_ms + rng.gen_range(0..SPAN_MS / 3);
        let null = rng.gen_bool(0.1);
        let (grp, key, values) = if is_user {
            let id = rng.gen_range(0..6);
            let values = vec![
                (
                    "clicks",
                    if null {
                        Value::Null
                    } else {
                        Value::I64(rng.gen_range(-9..99))
                    },
                ),
                ("emb", Value::Vector(vec![rng.gen(), rng.gen(), id as f32])),
            ];
            ("user", EntityKey::String(format!("u{id}")), values)
        } else {
            let id = rng.gen_range(0..4);
            let values = vec![
                (
                    "rating",
                    if null {
                        Value::Null
                    } else {
                        Value::F64(rng.gen_range(0..40) as f64 / 8.0)
                    },
                ),
                ("name", Value::String(format!("shop {id} at {event_ms}"))),
            ];
            ("shop", EntityKey::I64(id), values)
        };
        if !used.insert((grp, format!("{key:?}"), event_ms, write_ms)) {
            continue;
        }
        let opts = PutOptions {
            write_time_ms: Some(write_ms),
            ..PutOptions::default()
        };
        store.put(grp, &key, event_ms, &values, &opts).unwrap();
    }
    store.close().unwrap();
}

/// Users u0..u7 (u6, u7 never written), shops 0..4 or none, a label.
fn spine_csv(rng: &mut StdRng, t0: u64, bad_row: Option<usize>) -> String {
    let mut csv = String::from("user_id,shop_id,ts_ms,known_ms,label\n");
    for row in 1..=SPINE_ROWS {
        let ts = match bad_row {
            // Before the groups' history window.
            Some(bad) if bad == row => 5,
            _ => t0 + rng.gen_range(0..SPAN_MS + 2_000_000),
        };
        let known = ts + rng.gen_range(0..SPAN_MS / 2);
        let user = rng.gen_range(0..8);
        let shop = if rng.gen_bool(0.85) {
            rng.gen_range(0..5).to_string()
        } else {
            String::new()
        };
        writeln!(csv, "u{user},{shop},{ts},{known},{}", rng.gen_range(0..2)).unwrap();
    }
    csv
}

fn args(spine: &Path, mode: &str, out: &Path) -> Vec<String> {
    [
        "training-set",
        "--spine",
        spine.to_str().unwrap(),
        "--timestamp-column",
        "ts_ms",
        "--key-column",
        "user=user_id",
        "--key-column",
        "shop=shop_id",
        "--feature",
        "user:clicks",
        "--feature",
        "shop:rating",
        "--feature",
        "user:emb",
        "--feature",
        "shop:name",
        "--mode",
        mode,
        "--status-columns",
        "--batch-rows",
        "1000",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(str::to_string)
    .to_vec()
}

fn run(q: &Quiver, args: &[String]) -> serde_json::Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    q.json(&args)
}

#[test]
fn remote_training_sets_equal_embedded_ones_byte_for_byte() {
    let local = Quiver::embedded();
    let Target::Data(data) = &local.target else {
        unreachable!("an embedded runner has a data file")
    };
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    let mut rng = StdRng::seed_from_u64(0x7e40);
    let t0 = quiver_tools::cli::now_ms() - 30 * 86_400_000;
    write_history(data, &mut rng, t0);
    let spine = local.write("spine.csv", &spine_csv(&mut rng, t0, None));
    let modes = ["event", "as-served", "known-at:known_ms"];
    let mut reports = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        let out = local.path(&format!("local_{i}.parquet"));
        reports.push(run(&local, &args(&spine, mode, &out)));
    }
    let daemon = start_quiverd_with(
        data,
        &["--max-batch-keys", "300", "--max-frame-bytes", "4096"],
    );
    let remote = Quiver::remote(&daemon.addr);
    for (i, mode) in modes.iter().enumerate() {
        let out = local.path(&format!("remote_{i}.parquet"));
        let report = run(&remote, &args(&spine, mode, &out));
        assert_eq!(report["rows"], SPINE_ROWS as u64, "{mode}: {report}");
        assert_eq!(report["values"], reports[i]["values"], "{mode}: {report}");
        for status in ["present", "null", "not_found", "expired"] {
            let n = report["values"][status].as_u64().unwrap();
            assert!(n >= 20, "{mode}: only {n} '{status}' values: {report}");
        }
        let local_bytes = std::fs::read(local.path(&format!("local_{i}.parquet"))).unwrap();
        let remote_bytes = std::fs::read(&out).unwrap();
        assert!(
            local_bytes == remote_bytes,
            "{mode}: the remote file ({} bytes) differs from the embedded one ({} bytes)",
            remote_bytes.len(),
            local_bytes.len()
        );
    }
    assert_ne!(
        reports[0]["values"], reports[1]["values"],
        "late data makes event time and as-served differ"
    );
    // A row before the history window, deep in the second chunk: the server names it by its
    // number in the whole spine.
    let bad = local.write("bad.csv", &spine_csv(&mut rng, t0, Some(1_777)));
    let out = local.path("bad.parquet");
    let args = args(&bad, "event", &out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = remote.fails(&args, 7);
    assert!(
        err.contains("spine row 1777: as-of time 5 ms is before the history window of group"),
        "{err}"
    );
    assert!(!out.exists(), "a failed run leaves no output");
}
