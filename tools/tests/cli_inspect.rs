//! `quiver inspect` on a clean data file and on one with bytes overwritten.

mod cli_support;

use std::io::{Seek, SeekFrom, Write};

use cli_support::{Quiver, Target};

#[test]
fn clean_then_damaged_data_file() {
    let q = Quiver::embedded();
    q.ok(&["demo", "--entities", "300"]);
    let Target::Data(data) = &q.target else {
        unreachable!()
    };
    let inspect = |json: bool| {
        let mut cmd = std::process::Command::new(cli_support::quiver_bin());
        if json {
            cmd.arg("--json");
        }
        cmd.arg("inspect").arg(data).output().unwrap()
    };
    let clean = inspect(true);
    assert!(clean.status.success(), "{}", cli_support::describe(&clean));
    let report: serde_json::Value = serde_json::from_slice(&clean.stdout).unwrap();
    assert_eq!(report["damaged"], false);
    assert!(report["records_live"].as_u64().unwrap() >= 300, "{report}");
    let histogram: u64 = report["live_fraction_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(histogram, report["blocks_in_use"].as_u64().unwrap());
    let text = String::from_utf8(inspect(false).stdout).unwrap();
    assert!(
        text.contains("live fraction")
            && text.contains("0.9-1.0")
            && text.contains("damage      none"),
        "{text}"
    );

    // Overwrite bytes inside the busiest block's records.
    let busiest = report["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|b| b["records"].as_u64().unwrap())
        .unwrap();
    let block = busiest["block"].as_u64().unwrap();
    let block_bytes = report["write_block_bytes"].as_u64().unwrap();
    let used = busiest["used_bytes"].as_u64().unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(data).unwrap();
    file.seek(SeekFrom::Start(block * block_bytes + used / 2))
        .unwrap();
    file.write_all(&[0xA5; 256]).unwrap();
    file.sync_all().unwrap();

    let damaged = inspect(false);
    assert_eq!(
        damaged.status.code(),
        Some(3),
        "{}",
        cli_support::describe(&damaged)
    );
    let err = String::from_utf8_lossy(&damaged.stderr);
    assert!(err.contains(&format!("in block {block}")), "{err}");

    let missing = q.path("missing.db");
    let out = std::process::Command::new(cli_support::quiver_bin())
        .arg("inspect")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9));
}
