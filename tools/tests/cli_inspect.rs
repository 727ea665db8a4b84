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

/// A two-version group with a deleted key; the newest frames of two keys and one tombstone are
/// damaged (headers intact). `inspect` names those keys, entity key text included, not only
/// the places; the tombstone's key bytes are damaged too, so its name comes from the intact
/// older version.
#[test]
fn inspect_lists_the_damaged_keys() {
    use quiver_wal::format::RECORD_HEADER_BYTES;
    let q = Quiver::embedded();
    let Target::Data(data) = &q.target else {
        unreachable!()
    };
    q.ok(&[
        "group",
        "create",
        "users",
        "--key-type",
        "string",
        "--feature",
        "n:i64",
    ]);
    for (version, ts) in [(1, 1000), (2, 2000)] {
        let mut csv = String::from("entity,event_time,n\n");
        for i in 0..200 {
            csv.push_str(&format!("k{i:05},{ts},{}\n", version * 100_000 + i));
        }
        let file = q.write(&format!("v{version}.csv"), &csv);
        q.ok(&["load", "users", file.to_str().unwrap()]);
    }
    q.ok(&["delete", "users", "k00010"]);
    let all = cli_support::frames(data);
    let newest = |key: &str| {
        all.iter()
            .filter(|f| f.key == key.as_bytes())
            .max_by_key(|f| f.lsn)
            .unwrap_or_else(|| panic!("frames of {key}"))
            .clone()
    };
    for key in ["k00005", "k00006"] {
        let f = newest(key);
        assert!(!f.tombstone);
        let at = f.abs + (RECORD_HEADER_BYTES + f.key.len() + f.value_len / 2) as u64;
        cli_support::flip_byte(data, at, 0x20);
    }
    let tomb = newest("k00010");
    assert!(tomb.tombstone);
    cli_support::flip_byte(data, tomb.abs + RECORD_HEADER_BYTES as u64 + 2, 0x01);

    let out = std::process::Command::new(cli_support::quiver_bin())
        .args(["--json", "inspect"])
        .arg(data)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        cli_support::describe(&out)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let listed = report["damaged_keys"].as_array().unwrap();
    let mut keys: Vec<&str> = listed
        .iter()
        .map(|k| {
            assert_eq!(k["group_name"], "users", "{k}");
            k["key"].as_str().unwrap_or_else(|| panic!("key of {k}"))
        })
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["k00005", "k00006", "k00010"], "{report}");

    let text = std::process::Command::new(cli_support::quiver_bin())
        .arg("inspect")
        .arg(data)
        .output()
        .unwrap();
    assert_eq!(text.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("damaged keys 3"), "{stdout}");
    assert!(stdout.contains("group 'users' key 'k00006'"), "{stdout}");
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(
        stderr.contains("3 damaged key(s) read CORRUPT, the first group 'users' key 'k0000"),
        "{stderr}"
    );
}
