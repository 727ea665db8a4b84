//! History through `quiver`, on an embedded store and on quiverd: `group create/alter
//! --history`, `get --as-of [--known-at]`, `history`, `load --write-time-column` (a backfill in
//! shuffled row order builds the same history as in sorted order), and `export --history` to
//! Parquet and JSON Lines, each checked against a model of the loaded file.

mod cli_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use cli_support::{feature, start_quiverd, Quiver};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::parser::parse_message_type;
use serde_json::{json, Value as Json};

const DAY_MS: u64 = 86_400_000;
const ENTITIES: u64 = 5;
/// Rows per entity: with two features, enough versions to seal a segment.
const ROWS: u64 = 40;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One row of the backfill file.
#[derive(Debug, Clone)]
struct Row {
    entity: String,
    event: u64,
    write: u64,
    /// A multiple of 1/4, so that it prints exactly.
    ctr: f32,
    n: i64,
}

/// Rows with event times in a scrambled order (late events throughout), and every seventh row
/// a correction: the event time of an earlier row, written later. An entity's newest event
/// time is never corrected, so the online row does not depend on the order corrections apply.
fn backfill(t: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for e in 0..ENTITIES {
        for i in 0..ROWS {
            let slot = if i % 7 == 6 { i - 3 } else { i };
            let event = t + (slot * 17) % (ROWS - 1) * 60_000;
            rows.push(Row {
                entity: format!("u{e}"),
                event,
                write: t + DAY_MS + i * 1_000,
                ctr: (e * ROWS + i) as f32 / 4.0,
                n: (e * 1_000 + i) as i64,
            });
        }
    }
    rows
}

/// The same rows in a fixed pseudo-random order.
fn shuffled(rows: &[Row]) -> Vec<Row> {
    let mut out = rows.to_vec();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..out.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        out.swap(i, (state >> 33) as usize % (i + 1));
    }
    out
}

fn csv(rows: &[Row]) -> String {
    let mut text = String::from("entity,event_time,write_time,ctr,n\n");
    for r in rows {
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            r.entity, r.event, r.write, r.ctr, r.n
        ));
    }
    text
}

fn jsonl(rows: &[Row]) -> String {
    let mut text = String::new();
    for r in rows {
        let line = json!({"entity": r.entity, "event_time": r.event, "written": r.write, "ctr": r.ctr, "n": r.n});
        text.push_str(&format!("{line}\n"));
    }
    text
}

/// The versions of one entity, in history order: (feature, event, write, value).
fn model(rows: &[Row], entity: &str) -> Vec<(String, u64, u64, Json)> {
    let mut out: Vec<_> = rows
        .iter()
        .filter(|r| r.entity == entity)
        .flat_map(|r| {
            [
                ("ctr".to_string(), r.event, r.write, json!(r.ctr)),
                ("n".to_string(), r.event, r.write, json!(r.n)),
            ]
        })
        .collect();
    // Feature ids: ctr 0, n 1.
    out.sort_by_key(|v| (v.1, v.2, v.0 != "ctr"));
    out
}

/// The value of `ctr` as of `at` (and known at `known`) in the model.
fn model_as_of(rows: &[Row], entity: &str, at: u64, known: Option<u64>) -> Option<f32> {
    rows.iter()
        .filter(|r| r.entity == entity && r.event <= at && !known.is_some_and(|k| r.write > k))
        .max_by_key(|r| (r.event, r.write))
        .map(|r| r.ctr)
}

fn versions(doc: &Json) -> Vec<(String, u64, u64, Json)> {
    doc["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["status"], "PRESENT", "{v}");
            (
                v["feature"].as_str().unwrap().to_string(),
                v["event_time_ms"].as_u64().unwrap(),
                v["write_time_ms"].as_u64().unwrap(),
                v["value"].clone(),
            )
        })
        .collect()
}

fn create_group(q: &Quiver, name: &str, history: &str) {
    q.ok(&[
        "group",
        "create",
        name,
        "--key-type",
        "string",
        "--feature",
        "ctr:f32",
        "--feature",
        "n:i64",
        "--history",
        history,
    ]);
}

fn history_of(q: &Quiver, group: &str, entity: &str) -> Json {
    q.json(&["history", group, entity])
}

/// Every check of this file, against one store.
fn scenario(q: &Quiver) {
    group_settings(q);
    let t = now_ms() - 20 * DAY_MS;
    let rows = backfill(t);
    create_group(q, "sorted", "90d");
    create_group(q, "shuffled", "90d");
    let mut in_order = rows.clone();
    in_order.sort_by_key(|r| (r.entity.clone(), r.event, r.write));
    let file = q.write("sorted.csv", &csv(&in_order));
    let file = file.to_str().unwrap();
    let report = q.json(&["load", "sorted", file, "--write-time-column", "write_time"]);
    assert_eq!(report["rows_written"], rows.len() as u64, "{report}");
    let file = q.write("shuffled.jsonl", &jsonl(&shuffled(&rows)));
    let file = file.to_str().unwrap();
    let report = q.json(&["load", "shuffled", file, "--write-time-column", "written"]);
    assert_eq!(report["rows_written"], rows.len() as u64, "{report}");

    for e in 0..ENTITIES {
        let entity = format!("u{e}");
        let sorted = history_of(q, "sorted", &entity);
        assert_eq!(versions(&sorted), model(&rows, &entity), "{entity}");
        assert_eq!(sorted, {
            let mut other = history_of(q, "shuffled", &entity);
            other["group"] = json!("sorted");
            other
        });
        let online = |group: &str| q.json(&["get", group, &entity])["features"].clone();
        assert_eq!(online("sorted"), online("shuffled"), "{entity} online");
        let newest = model_as_of(&rows, &entity, u64::MAX, None).unwrap();
        assert_eq!(
            feature(&q.json(&["get", "sorted", &entity]), "ctr")["value"],
            json!(newest)
        );
    }
    as_of_reads(q, &rows, t);
    history_ranges(q, &rows, t);
    exports(q, &rows, t);
    refusals(q);
}

fn group_settings(q: &Quiver) {
    create_group(q, "settings", "90d");
    let describe = |q: &Quiver| q.json(&["group", "describe", "settings"]);
    assert_eq!(describe(q)["history_retention_s"], 90 * 86_400);
    q.ok(&["group", "alter", "settings", "--history", "off"]);
    assert_eq!(describe(q)["history_retention_s"], Json::Null);
    q.ok(&["group", "alter", "settings", "--history", "30d"]);
    assert_eq!(describe(q)["history_retention_s"], 30 * 86_400);
    assert!(q
        .ok(&["group", "describe", "settings"])
        .contains("history      30d"));
    let err = q.fails(&["group", "alter", "settings", "--history", "0d"], 2);
    assert!(err.contains("use 'off'"), "{err}");
}

fn as_of_reads(q: &Quiver, rows: &[Row], t: u64) {
    let entity = "u1";
    for (at, known) in [
        (t + 5 * 60_000, None),
        (t + 20 * 60_000, None),
        (t + 20 * 60_000, Some(t + DAY_MS + 10_500)),
        (t + 30 * 60_000 + 1, Some(t + DAY_MS + 25_000)),
        (t + 60 * 60_000, Some(t + DAY_MS)),
    ] {
        let at_text = at.to_string();
        let known_text = known.map(|k| k.to_string());
        let mut args = vec!["get", "sorted", entity, "ctr", "--as-of", &at_text];
        if let Some(k) = &known_text {
            args.extend(["--known-at", k.as_str()]);
        }
        let doc = q.json(&args);
        let got = feature(&doc, "ctr");
        match model_as_of(rows, entity, at, known) {
            Some(v) => assert_eq!(got["value"], json!(v), "as of {at} known {known:?}"),
            None => assert_eq!(got["status"], "NOT_FOUND", "as of {at} known {known:?}"),
        }
        assert_eq!(doc["as_of_ms"], at);
        assert_eq!(doc["known_at_ms"], json!(known));
    }
    // RFC 3339 works as well as ms; the text output names the time.
    let at = t + 20 * 60_000;
    let rfc = chrono::DateTime::from_timestamp_millis(at as i64)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let by_ms = q.json(&["get", "sorted", entity, "--as-of", &at.to_string()]);
    let by_rfc = q.json(&["get", "sorted", entity, "--as-of", &rfc]);
    assert_eq!(by_ms, by_rfc);
    let text = q.ok(&["get", "sorted", entity, "--as-of", &rfc]);
    assert!(text.contains(&format!("as of {rfc}")), "{text}");
    // Before the history window (90 days), as-of reads are refused.
    let err = q.fails(
        &["get", "sorted", entity, "--as-of", "2001-09-09T01:46:40Z"],
        7,
    );
    assert!(err.contains("history horizon"), "{err}");
}

fn history_ranges(q: &Quiver, rows: &[Row], t: u64) {
    let (from, to, known) = (t + 10 * 60_000, t + 25 * 60_000, t + DAY_MS + 30_000);
    let args = [
        "history",
        "sorted",
        "u2",
        "--feature",
        "n",
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--known-at",
        &known.to_string(),
    ]
    .map(|s| s.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let want: Vec<_> = model(rows, "u2")
        .into_iter()
        .filter(|v| v.0 == "n" && (from..=to).contains(&v.1) && v.2 <= known)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(versions(&q.json(&args)), want);
    let text = q.ok(&args);
    assert!(
        text.starts_with(&format!("sorted / u2: {} versions", want.len())),
        "{text}"
    );
}

/// One exported version: (entity, feature, event, write, status, value).
type Exported = (String, String, u64, u64, String, Json);

fn exports(q: &Quiver, rows: &[Row], t: u64) {
    let mut want: BTreeSet<String> = BTreeSet::new();
    for e in 0..ENTITIES {
        let entity = format!("u{e}");
        for v in model(rows, &entity) {
            want.insert(format!("{:?}", (&entity, v.0, v.1, v.2, "present", v.3)));
        }
    }
    let out = q.path("history.parquet");
    let doc = q.json(&["export", "sorted", out.to_str().unwrap(), "--history"]);
    assert_eq!(doc["rows"], want.len() as u64, "{doc}");
    assert_eq!(doc["entities"], ENTITIES);
    let got: BTreeSet<String> = read_parquet(&out)
        .into_iter()
        .map(|r| format!("{:?}", (r.0, r.1, r.2, r.3, r.4, r.5)))
        .collect();
    assert_eq!(got, want);
    // A range of event times, as JSON Lines.
    let (from, to) = (t + 10 * 60_000, t + 20 * 60_000);
    let out = q.path("range.jsonl");
    let args = [
        "export",
        "sorted",
        out.to_str().unwrap(),
        "--history",
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
    ]
    .map(|s| s.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    q.ok(&args);
    let lines: Vec<Json> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let in_range = rows
        .iter()
        .filter(|r| (from..=to).contains(&r.event))
        .count();
    assert_eq!(lines.len(), 2 * in_range);
    for l in &lines {
        let event = l["event_time"].as_u64().unwrap();
        assert!((from..=to).contains(&event), "{l}");
        assert_eq!(l["status"], "present");
        assert!(l["write_time"].as_u64().unwrap() > t + DAY_MS - 1);
    }
}

/// Reads a history export back: one tuple per row, feature values from the feature's column.
fn read_parquet(path: &Path) -> Vec<Exported> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let columns: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(
        columns,
        [
            "entity",
            "feature",
            "event_time",
            "write_time",
            "status",
            "ctr",
            "n"
        ]
    );
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            let cells: Vec<Field> = row.into_columns().into_iter().map(|(_, f)| f).collect();
            let text = |f: &Field| match f {
                Field::Str(s) => s.clone(),
                other => panic!("expected text, got {other:?}"),
            };
            let time = |f: &Field| match f {
                Field::TimestampMillis(ms) => *ms as u64,
                other => panic!("expected a timestamp, got {other:?}"),
            };
            let feature = text(&cells[1]);
            let (ctr, n) = (&cells[5], &cells[6]);
            let value = match (feature.as_str(), ctr, n) {
                ("ctr", Field::Float(v), Field::Null) => json!(v),
                ("n", Field::Null, Field::Long(v)) => json!(v),
                other => panic!("value cells {other:?}"),
            };
            (
                text(&cells[0]),
                feature,
                time(&cells[2]),
                time(&cells[3]),
                text(&cells[4]),
                value,
            )
        })
        .collect()
}

fn refusals(q: &Quiver) {
    q.ok(&[
        "group",
        "create",
        "plain",
        "--key-type",
        "string",
        "--feature",
        "n:i64",
    ]);
    let file = q.write("plain.csv", "entity,n,write_time\nu1,1,5\n");
    let file = file.to_str().unwrap();
    let err = q.fails(
        &["load", "plain", file, "--write-time-column", "write_time"],
        2,
    );
    assert!(err.contains("keeps no history"), "{err}");
    let err = q.fails(&["history", "plain", "u1"], 7);
    assert!(err.contains("keeps no history"), "{err}");
    let out = q.path("plain.parquet");
    let err = q.fails(&["export", "plain", out.to_str().unwrap(), "--history"], 7);
    assert!(err.contains("keeps no history"), "{err}");
    let err = q.fails(&["get", "plain", "u1", "--as-of", "5"], 7);
    assert!(err.contains("keeps no history"), "{err}");
    q.fails(&["get", "sorted", "u1", "--known-at", "5"], 2);
    let err = q.fails(&["history", "sorted", "u1", "--from", "9", "--to", "8"], 2);
    assert!(err.contains("is after --to"), "{err}");
    let err = q.fails(&["history", "sorted", "u1", "--feature", "nope"], 6);
    assert!(err.contains("nope"), "{err}");
    // A file without the named column fails; a row without a write time is rejected.
    let file = q.write("no_column.csv", "entity,n\nu1,1\n");
    let file = file.to_str().unwrap();
    let err = q.fails(
        &["load", "sorted", file, "--write-time-column", "written"],
        9,
    );
    assert!(err.contains("no write-time column"), "{err}");
    let file = q.write("gaps.csv", "entity,n,written\nu9,1,1000\nu9,2,\n");
    let file = file.to_str().unwrap();
    let report = q.json(&["load", "sorted", file, "--write-time-column", "written"]);
    assert_eq!(report["rows_written"], 1, "{report}");
    assert_eq!(report["rows_rejected"], 1, "{report}");
    let reason = report["rejected"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("no write time"), "{reason}");
}

#[test]
fn history_through_the_cli_on_an_embedded_store() {
    scenario(&Quiver::embedded());
}

#[test]
fn history_through_the_cli_on_quiverd() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_quiverd(&dir.path().join("server.db"), None);
    scenario(&Quiver::remote(&daemon.addr));
}

/// A Parquet backfill: (entity, event time, write time, n) with the write time a TIMESTAMP.
fn write_parquet(path: &Path, rows: &[(&str, i64, i64, i64)]) {
    let message = "message backfill { required binary entity (STRING); required int64 event_time; \
                   required int64 write_time (TIMESTAMP(MILLIS,true)); required int64 n; }";
    let schema = Arc::new(parse_message_type(message).unwrap());
    let file = std::fs::File::create(path).unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut index = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        if index == 0 {
            let keys: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.0)).collect();
            let typed = column.typed::<ByteArrayType>();
            typed.write_batch(&keys, None, None).unwrap();
        } else {
            let cells: Vec<i64> = rows.iter().map(|r| [r.1, r.2, r.3][index - 1]).collect();
            let typed = column.typed::<Int64Type>();
            typed.write_batch(&cells, None, None).unwrap();
        }
        column.close().unwrap();
        index += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn a_parquet_backfill_sets_write_times() {
    let q = Quiver::embedded();
    create_group(&q, "g", "90d");
    let t = (now_ms() - 5 * DAY_MS) as i64;
    let path = q.path("backfill.parquet");
    write_parquet(
        &path,
        &[("u1", t + 20, t + 500, 2), ("u1", t + 10, t + 900, 1)],
    );
    q.ok(&[
        "load",
        "g",
        path.to_str().unwrap(),
        "--write-time-column",
        "write_time",
    ]);
    let got = versions(&q.json(&["history", "g", "u1", "--feature", "n"]));
    let (t, n) = (t as u64, |v: i64| json!(v));
    assert_eq!(
        got,
        vec![
            ("n".to_string(), t + 10, t + 900, n(1)),
            ("n".to_string(), t + 20, t + 500, n(2)),
        ]
    );
    // As known at t+600, only the version written at t+500 exists.
    let doc = q.json(&[
        "get",
        "g",
        "u1",
        "n",
        "--as-of",
        &(t + 30).to_string(),
        "--known-at",
        &(t + 600).to_string(),
    ]);
    assert_eq!(feature(&doc, "n")["value"], 2);
    let doc = q.json(&["get", "g", "u1", "n", "--as-of", &(t + 15).to_string()]);
    assert_eq!(feature(&doc, "n")["value"], 1);
}

/// `--max-versions` on create and alter, shown by describe (text and JSON), with its limits.
#[test]
fn max_versions_through_the_cli() {
    let q = Quiver::embedded();
    let refused = q.run(&[
        "group",
        "create",
        "g",
        "--key-type",
        "string",
        "--feature",
        "x:i64",
        "--max-versions",
        "0",
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("invalid max versions '0'") && err.contains("1 to 100000"),
        "{err}"
    );
    q.ok(&[
        "group",
        "create",
        "g",
        "--key-type",
        "string",
        "--feature",
        "x:i64",
        "--max-versions",
        "3",
    ]);
    let doc = q.json(&["group", "describe", "g"]);
    assert_eq!(doc["history_max_versions"], json!(3));
    assert_eq!(doc["history_retention_s"], Json::Null);
    let text = q.ok(&["group", "describe", "g"]);
    assert!(text.contains("history      max 3 versions"), "{text}");
    let doc = q.json(&["group", "alter", "g", "--history", "30d"]);
    assert_eq!(doc["history_retention_s"], json!(30 * 86_400));
    assert_eq!(doc["history_max_versions"], json!(3));
    let text = q.ok(&["group", "describe", "g"]);
    assert!(text.contains("history      30d, max 3 versions"), "{text}");
    let doc = q.json(&["group", "alter", "g", "--max-versions", "off"]);
    assert_eq!(doc["history_max_versions"], Json::Null);
    assert_eq!(doc["history_retention_s"], json!(30 * 86_400));
    // Without a window, the count is history's only bound and cannot be removed.
    q.ok(&["group", "alter", "g", "--history", "off"]);
    q.ok(&["group", "alter", "g", "--max-versions", "2"]);
    let refused = q.run(&["group", "alter", "g", "--max-versions", "off"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("without a bound"), "{err}");
}
