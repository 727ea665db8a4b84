//! `quiver load` with good and bad CSV, JSON Lines and Parquet files made here.

mod cli_support;

use std::path::Path;
use std::sync::Arc;

use cli_support::{feature, Quiver};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::Value as Json;

fn setup() -> Quiver {
    let q = Quiver::embedded();
    q.ok(&[
        "group",
        "create",
        "users",
        "--key-type",
        "string",
        "--feature",
        "age:i64",
        "--feature",
        "score:f32",
        "--feature",
        "emb:f32[2]",
        "--feature",
        "city:string",
    ]);
    q
}

fn rejected(report: &Json) -> Vec<(u64, String, String)> {
    report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["column"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn csv_good_rows_load() {
    let q = setup();
    let file = q.write(
        "users.csv",
        "entity,event_time,age,score,emb,city\n\
         u1,1700000000000,31,0.5,\"[1,2]\",Paris\n\
         u2,2024-01-02T03:04:05Z,42,,\"[0.5,-0.5]\",\n\
         u3,,7,1.5,null,\"\"\"quoted\"\"\"\n",
    );
    let report = q.json(&["load", "users", file.to_str().unwrap()]);
    assert_eq!(report["rows_read"], 3, "{report}");
    assert_eq!(report["rows_written"], 3, "{report}");
    assert_eq!(report["rows_rejected"], 0, "{report}");
    let u1 = q.json(&["get", "users", "u1"]);
    assert_eq!(feature(&u1, "age")["value"], 31);
    assert_eq!(feature(&u1, "emb")["value"], serde_json::json!([1.0, 2.0]));
    assert_eq!(feature(&u1, "age")["event_time_ms"], 1_700_000_000_000u64);
    let u2 = q.json(&["get", "users", "u2"]);
    assert_eq!(feature(&u2, "age")["event_time_ms"], 1_704_164_645_000u64);
    assert_eq!(
        feature(&u2, "score")["status"],
        "NOT_FOUND",
        "an empty cell writes nothing"
    );
    let u3 = q.json(&["get", "users", "u3"]);
    assert_eq!(feature(&u3, "emb")["status"], "NULL");
    // A cell written as a JSON string is decoded: `"quoted"` stores the text quoted.
    assert_eq!(feature(&u3, "city")["value"], "quoted");
}

#[test]
fn csv_bad_rows_are_reported_and_skipped() {
    let q = setup();
    let file = q.write(
        "bad.csv",
        "key,age,emb\n\
         a,1,\"[1,2]\"\n\
         b,old,\"[1,2]\"\n\
         c,3,\"[1,2,3]\"\n\
         d,4\n\
         e,5,\"[1,2]\"\n",
    );
    let report = q.json(&["load", "users", file.to_str().unwrap()]);
    assert_eq!(report["rows_written"], 2, "{report}");
    assert_eq!(report["rows_rejected"], 3, "{report}");
    let bad = rejected(&report);
    assert_eq!((bad[0].0, bad[0].1.as_str()), (3, "age"));
    assert!(bad[0].2.contains("expected i64, got 'old'"), "{bad:?}");
    assert_eq!((bad[1].0, bad[1].1.as_str()), (4, "emb"));
    assert!(bad[1].2.contains("dimension 2"), "{bad:?}");
    assert_eq!(bad[2].0, 5);
    assert!(bad[2].2.contains("2 fields, the header has 3"), "{bad:?}");
    let text = q.ok(&["load", "users", file.to_str().unwrap()]);
    assert!(
        text.contains("line 3, column 'age': expected i64, got 'old'"),
        "{text}"
    );
}

#[test]
fn max_errors_aborts_the_load() {
    let q = setup();
    let mut text = String::from("entity,age\n");
    for i in 0..50 {
        text.push_str(&format!("u{i},x{i}\n"));
    }
    let file = q.write("worse.csv", &text);
    let err = q.fails(
        &["load", "users", file.to_str().unwrap(), "--max-errors", "5"],
        8,
    );
    assert!(
        err.contains("load aborted") && err.contains("--max-errors 5"),
        "{err}"
    );
    // Under the default limit of 100, the same file loads with 50 rejections and exits 0.
    let report = q.json(&["load", "users", file.to_str().unwrap()]);
    assert_eq!(report["rows_rejected"], 50);
    assert_eq!(report["aborted"], false);
}

#[test]
fn file_level_problems_fail_fast() {
    let q = setup();
    let unknown = q.write("unknown.csv", "entity,age,height\nu1,1,180\n");
    let err = q.fails(&["load", "users", unknown.to_str().unwrap()], 6);
    assert!(
        err.contains("column 'height' is not a feature of group 'users'"),
        "{err}"
    );
    let nokey = q.write("nokey.csv", "id,age\nu1,1\n");
    let err = q.fails(&["load", "users", nokey.to_str().unwrap()], 9);
    assert!(err.contains("no key column"), "{err}");
    q.ok(&[
        "load",
        "users",
        nokey.to_str().unwrap(),
        "--key-column",
        "id",
    ]);
    let json_as_csv = q.write("rows.csv", "{\"entity\":\"u1\",\"age\":1}\n");
    let err = q.fails(&["load", "users", json_as_csv.to_str().unwrap()], 9);
    assert!(err.contains("not a CSV file"), "{err}");
    let csv_as_parquet = q.write("rows.parquet", "entity,age\nu1,1\n");
    let err = q.fails(&["load", "users", csv_as_parquet.to_str().unwrap()], 9);
    assert!(
        err.contains("not a Parquet file") && err.contains("PAR1"),
        "{err}"
    );
    let csv_as_jsonl = q.write("rows.jsonl", "entity,age\nu1,1\n");
    let err = q.fails(&["load", "users", csv_as_jsonl.to_str().unwrap()], 9);
    assert!(err.contains("not a JSON Lines file"), "{err}");
    let no_ext = q.write("rows.txt", "entity,age\nu1,1\n");
    q.fails(&["load", "users", no_ext.to_str().unwrap()], 2);
    q.ok(&["load", "users", no_ext.to_str().unwrap(), "--format", "csv"]);
    let missing = q.path("missing.csv");
    q.fails(&["load", "users", missing.to_str().unwrap()], 9);
    q.fails(&["load", "nogroup", nokey.to_str().unwrap()], 6);
}

#[test]
fn jsonl_good_and_bad_rows() {
    let q = setup();
    let file = q.write(
        "users.jsonl",
        "{\"entity\":\"u1\",\"age\":31,\"emb\":[1,2],\"event_time\":1000}\n\
         \n\
         {\"entity\":\"u2\",\"age\":\"31\"}\n\
         not json\n\
         {\"entity\":\"u3\",\"height\":5}\n\
         {\"entity\":\"u4\",\"score\":0.25,\"city\":null,\"event_time\":\"1970-01-01T00:00:02Z\"}\n\
         [1,2]\n\
         {\"age\":1}\n",
    );
    let report = q.json(&["load", "users", file.to_str().unwrap()]);
    assert_eq!(report["rows_written"], 2, "{report}");
    assert_eq!(report["rows_rejected"], 5, "{report}");
    let bad = rejected(&report);
    let lines: Vec<u64> = bad.iter().map(|b| b.0).collect();
    assert_eq!(lines, [3, 4, 5, 7, 8]);
    assert_eq!(bad[0].1, "age");
    assert!(bad[0].2.contains("expected i64, got a string"), "{bad:?}");
    assert!(bad[1].2.contains("invalid JSON"), "{bad:?}");
    assert_eq!(bad[2].1, "height");
    assert!(bad[3].2.contains("expected a JSON object"), "{bad:?}");
    assert!(bad[4].2.contains("no key column"), "{bad:?}");
    let u4 = q.json(&["get", "users", "u4"]);
    assert_eq!(feature(&u4, "score")["value"], 0.25);
    assert_eq!(feature(&u4, "score")["event_time_ms"], 2000);
    assert_eq!(feature(&u4, "city")["status"], "NULL");
}

const PARQUET_SCHEMA: &str = "message users {
  required binary entity (STRING);
  optional int64 event_time (TIMESTAMP(MILLIS,true));
  optional int64 age;
  optional double score;
  optional group emb (LIST) { repeated group list { required float element; } }
}";

/// One test row: key, event time, age, score, embedding.
type TestRow<'a> = (
    &'a str,
    Option<i64>,
    Option<i64>,
    Option<f64>,
    Option<Vec<f32>>,
);

/// Writes rows of (key, event time, age, score, embedding) with the parquet crate's writer.
fn write_parquet(path: &Path, rows: &[TestRow<'_>]) {
    let schema = Arc::new(parse_message_type(PARQUET_SCHEMA).unwrap());
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .unwrap();
    let mut group = writer.next_row_group().unwrap();
    let defs = |present: Vec<bool>| present.into_iter().map(i16::from).collect::<Vec<_>>();
    let mut index = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        match index {
            0 => {
                let keys: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.0)).collect();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&keys, None, None)
                    .unwrap();
            }
            1 | 2 => {
                let cells: Vec<Option<i64>> = rows
                    .iter()
                    .map(|r| if index == 1 { r.1 } else { r.2 })
                    .collect();
                let values: Vec<i64> = cells.iter().flatten().copied().collect();
                let d = defs(cells.iter().map(Option::is_some).collect());
                column
                    .typed::<Int64Type>()
                    .write_batch(&values, Some(&d), None)
                    .unwrap();
            }
            3 => {
                let values: Vec<f64> = rows.iter().filter_map(|r| r.3).collect();
                let d = defs(rows.iter().map(|r| r.3.is_some()).collect());
                column
                    .typed::<DoubleType>()
                    .write_batch(&values, Some(&d), None)
                    .unwrap();
            }
            _ => {
                let (mut values, mut d, mut reps) = (Vec::new(), Vec::new(), Vec::new());
                for row in rows {
                    match &row.4 {
                        None => {
                            d.push(0);
                            reps.push(0);
                        }
                        Some(items) => {
                            for (i, x) in items.iter().enumerate() {
                                values.push(*x);
                                d.push(2);
                                reps.push(i16::from(i > 0));
                            }
                        }
                    }
                }
                column
                    .typed::<FloatType>()
                    .write_batch(&values, Some(&d), Some(&reps))
                    .unwrap();
            }
        }
        column.close().unwrap();
        index += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_good_and_bad_rows() {
    let q = setup();
    let path = q.path("users.parquet");
    write_parquet(
        &path,
        &[
            ("p1", Some(3000), Some(30), Some(0.75), Some(vec![1.0, 2.0])),
            ("p2", None, None, Some(1e300), None),
            ("p3", Some(4000), Some(33), None, Some(vec![1.0])),
            ("p4", Some(5000), Some(34), Some(2.5), Some(vec![3.0, 4.0])),
        ],
    );
    let report = q.json(&["load", "users", path.to_str().unwrap()]);
    assert_eq!(report["format"], "parquet");
    assert_eq!(report["rows_written"], 2, "{report}");
    let bad = rejected(&report);
    assert_eq!((bad[0].0, bad[0].1.as_str()), (2, "score"), "{bad:?}");
    assert_eq!((bad[1].0, bad[1].1.as_str()), (3, "emb"), "{bad:?}");
    assert!(bad[1].2.contains("dimension 2"), "{bad:?}");
    let p1 = q.json(&["get", "users", "p1"]);
    assert_eq!(feature(&p1, "age")["value"], 30);
    assert_eq!(feature(&p1, "score")["value"], 0.75);
    assert_eq!(feature(&p1, "emb")["value"], serde_json::json!([1.0, 2.0]));
    assert_eq!(feature(&p1, "age")["event_time_ms"], 3000);

    // A Parquet file named .csv, and one loaded as --format jsonl, are refused whole.
    let renamed = q.path("users.csv");
    std::fs::copy(&path, &renamed).unwrap();
    let err = q.fails(&["load", "users", renamed.to_str().unwrap()], 9);
    assert!(err.contains("it is a Parquet file"), "{err}");
    q.fails(
        &["load", "users", path.to_str().unwrap(), "--format", "jsonl"],
        9,
    );
    // A truncated Parquet file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = q.path("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    q.fails(&["load", "users", cut.to_str().unwrap()], 9);
}
