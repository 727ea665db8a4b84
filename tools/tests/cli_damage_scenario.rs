//! Issue 19's scenario, as a new user ran it through the CLI on its embedded default: a group
//! with one i64 feature, 3,000 entities written twice with `quiver load` (version 1 at event
//! time 1000, version 2 at 2000), every 37th entity deleted, then 120 bytes flipped at random
//! in the newer half of the group's record frames (the newer versions and the tombstones).
//! Opened from its checkpoint, and by a full scan with the checkpoint removed, every key must
//! read as its newest acknowledged value, NOT_FOUND when deleted, or CORRUPT: never the older
//! value, never a deleted key back, never NOT_FOUND for a key that exists.

mod cli_support;

use std::collections::BTreeMap;
use std::path::Path;

use cli_support::{Quiver, Target};
use rand::{Rng, SeedableRng};

const ENTITIES: u64 = 3_000;
const FLIPPED_BYTES: usize = 120;
const GROUP: &str = "features";

fn deleted(i: u64) -> bool {
    i % 37 == 0
}

fn value(version: u64, i: u64) -> i64 {
    (version * 100_000 + i) as i64
}

/// The byte ranges of the newer half of the group's record frames, by LSN: the second load's
/// versions and the tombstones. Frames of engine group 0 (the registry, and the feature
/// statistics saved at every close) are left out, so that the damage lands on features.
fn newer_frame_ranges(frames: &[cli_support::Frame]) -> Vec<(u64, u64)> {
    let mut ours: Vec<&cli_support::Frame> = frames.iter().filter(|f| f.group != 0).collect();
    assert!(
        ours.len() as u64 >= ENTITIES * 2,
        "{} feature frames in the data file",
        ours.len()
    );
    ours.sort_unstable_by_key(|f| f.lsn);
    ours[ours.len() / 2..]
        .iter()
        .map(|f| (f.abs, (64 + f.key.len() + f.value_len) as u64))
        .collect()
}

/// Flips `FLIPPED_BYTES` distinct bytes chosen at random (from `seed`) in the newer half of the
/// group's record frames; returns their file offsets.
fn flip_newer_half(data: &Path, frames: &[cli_support::Frame], seed: u64) -> Vec<u64> {
    let ranges = newer_frame_ranges(frames);
    let total: u64 = ranges.iter().map(|r| r.1).sum();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut chosen = std::collections::BTreeSet::new();
    while chosen.len() < FLIPPED_BYTES {
        let mut nth = rng.gen_range(0..total);
        let &(at, _) = ranges
            .iter()
            .find(|(_, len)| {
                let here = nth < *len;
                if !here {
                    nth -= len;
                }
                here
            })
            .expect("inside the chosen frames");
        chosen.insert(at + nth);
    }
    for &at in &chosen {
        cli_support::flip_byte(data, at, rng.gen_range(1..=255u8));
    }
    chosen.into_iter().collect()
}

/// Where the flips landed in each frame of entity `i` (offsets from the frame's start), to
/// explain a key that broke the rule.
fn explain(i: u64, frames: &[cli_support::Frame], flipped: &[u64]) -> String {
    let key = format!("k{i}");
    frames
        .iter()
        .filter(|f| f.key == key.as_bytes())
        .map(|f| {
            let len = (64 + f.key.len() + f.value_len) as u64;
            let hits: Vec<u64> = flipped
                .iter()
                .filter(|&&a| a >= f.abs && a < f.abs + len)
                .map(|a| a - f.abs)
                .collect();
            format!(
                "{}frame at {} (LSN {}, {len} bytes) flipped at {hits:?}",
                if f.tombstone { "tombstone " } else { "" },
                f.abs,
                f.lsn
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the damage did to the data file: its intact frames before, and the flipped offsets.
struct Damage {
    frames: Vec<cli_support::Frame>,
    flipped: Vec<u64>,
}

/// Reads every entity with `get --keys` and checks the rule; returns how many read CORRUPT.
fn check(q: &Quiver, keys: &Path, mode: &str, damage: &Damage) -> usize {
    let out = q.run(&[
        "--json",
        "get",
        "--keys",
        keys.to_str().unwrap(),
        GROUP,
        "n",
    ]);
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(3)),
        "{mode}: {}",
        cli_support::describe(&out)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let doc: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let entities = doc["entities"].as_array().unwrap();
    assert_eq!(entities.len() as u64, ENTITIES, "{mode}");
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (i, e) in entities.iter().enumerate() {
        let i = i as u64;
        assert_eq!(e["key"], format!("k{i}"), "{mode}");
        let fv = &e["features"][0];
        let status = fv["status"].as_str().unwrap();
        *tally.entry(status).or_default() += 1;
        let verdict = match status {
            "PRESENT" if deleted(i) => Some(format!("deleted key k{i} came back: {fv}")),
            "PRESENT" if fv["value"] == value(1, i) => {
                Some(format!("k{i} read its OLDER value {}", fv["value"]))
            }
            "PRESENT" if fv["value"] != value(2, i) => Some(format!("k{i} read {fv}")),
            "NOT_FOUND" if !deleted(i) => Some(format!("k{i} (never deleted) read NOT_FOUND")),
            "PRESENT" | "NOT_FOUND" | "CORRUPT" => None,
            _ => Some(format!("k{i}: unexpected {fv}")),
        };
        wrong.extend(
            verdict.map(|v| format!("{v} [{}]", explain(i, &damage.frames, &damage.flipped))),
        );
    }
    println!("{mode}: {tally:?}");
    assert!(
        wrong.is_empty(),
        "{mode}: {} keys broke the rule, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    let corrupt = tally.get("CORRUPT").copied().unwrap_or(0);
    assert_eq!(
        code == Some(3),
        corrupt > 0,
        "{mode}: exit code 3 iff a key read CORRUPT"
    );
    corrupt
}

#[test]
fn damaged_records_never_read_as_an_older_value_in_either_open_mode() {
    let seed: u64 = std::env::var("QUIVER_DAMAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(19_001);
    println!("damage seed {seed} (QUIVER_DAMAGE_SEED replays another)");
    let q = Quiver::embedded();
    let Target::Data(data) = &q.target else {
        unreachable!()
    };
    q.ok(&[
        "group",
        "create",
        GROUP,
        "--key-type",
        "string",
        "--feature",
        "n:i64",
    ]);
    for version in [1, 2] {
        let mut csv = String::from("entity,event_time,n\n");
        for i in 0..ENTITIES {
            csv.push_str(&format!("k{i},{},{}\n", version * 1000, value(version, i)));
        }
        let file = q.write(&format!("v{version}.csv"), &csv);
        q.ok(&["load", GROUP, file.to_str().unwrap()]);
    }
    for i in (0..ENTITIES).filter(|&i| deleted(i)) {
        q.ok(&["delete", GROUP, &format!("k{i}")]);
    }
    let keys: String = (0..ENTITIES).map(|i| format!("k{i}\n")).collect();
    let keys = q.write("keys.txt", &keys);

    let frames = cli_support::frames(data);
    let flipped = flip_newer_half(data, &frames, seed);
    println!(
        "flipped {} bytes from offset {} to {}",
        flipped.len(),
        flipped[0],
        flipped[flipped.len() - 1]
    );
    // The same damaged image, opened the other way: by a full scan, no checkpoint.
    let scan = Quiver::embedded();
    let Target::Data(scan_data) = &scan.target else {
        unreachable!()
    };
    std::fs::create_dir_all(scan_data.parent().unwrap()).unwrap();
    std::fs::copy(data, scan_data).unwrap();

    q.fails(&["inspect", data.to_str().unwrap()], 3);
    let mut ckpt = data.clone().into_os_string();
    ckpt.push(".ckpt");
    assert!(
        Path::new(&ckpt).exists(),
        "the last close left a checkpoint"
    );
    let damage = Damage { frames, flipped };
    let from_checkpoint = check(&q, &keys, "checkpoint", &damage);
    let by_scan = check(&scan, &keys, "full scan", &damage);
    assert!(
        from_checkpoint > 0 && by_scan > 0,
        "the damage reaches keys: {from_checkpoint} and {by_scan} read CORRUPT"
    );
    // The damage found is durable: opened again each way, the same rule holds.
    std::fs::remove_file(&ckpt).unwrap();
    check(&q, &keys, "full scan after the checkpoint open", &damage);
    check(&scan, &keys, "checkpoint after the full scan", &damage);
}
