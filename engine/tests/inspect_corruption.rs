//! Bit flips in a device image: `inspect` names each damaged place; the engine opens, serves
//! every intact record and never returns damaged data.

use std::os::unix::fs::FileExt;

use quiver_engine::inspect::inspect;
use quiver_engine::{Config, Engine, WriteOptions};

fn config(path: &std::path::Path) -> Config {
    Config {
        write_block_bytes: 128 << 10,
        checkpoint_path: Some(path.with_extension("no-ckpt")),
        ..Config::file(path, 8 << 20)
    }
}

#[test]
fn flipped_bits_are_found_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let w = WriteOptions::default();
    let e = Engine::open(config(&path)).unwrap();
    for i in 0..400u32 {
        e.put(1, &i.to_le_bytes(), &vec![(i % 200) as u8 + 1; 700], &w)
            .unwrap();
    }
    e.close().unwrap();
    std::fs::remove_file(path.with_extension("no-ckpt")).ok();

    let clean = inspect(&path).unwrap();
    assert!(
        !clean.is_damaged(),
        "fresh image reported damage: {:?}",
        clean.damage
    );
    assert_eq!(clean.records_live, 400);

    // Damage the value bytes of a few records in the first data block.
    let block = 128u64 << 10;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut flipped = Vec::new();
    for at in [
        block + 64 + 200,
        block + 64 + 800 * 5 + 300,
        block + 64 + 800 * 20 + 400,
    ] {
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x5a;
        f.write_all_at(&b, at).unwrap();
        flipped.push(at);
    }
    f.sync_all().unwrap();
    drop(f);

    let damaged = inspect(&path).unwrap();
    assert!(damaged.is_damaged());
    assert_eq!(damaged.damage.len(), 3, "{:?}", damaged.damage);
    assert!(damaged.damage.iter().all(|d| d.block == 1));
    assert_eq!(damaged.records_live, 397);
    // The keys the damage hits are named (no registry here: the key bytes in hex).
    let mut named: Vec<String> = damaged
        .damaged_keys
        .iter()
        .map(|k| {
            assert_eq!((k.group, k.group_name.as_deref()), (1, None), "{k:?}");
            assert!(damaged
                .damage
                .iter()
                .any(|d| (d.block, d.offset) == (k.block, k.offset)));
            k.key.clone().unwrap_or_else(|| panic!("key of {k:?}"))
        })
        .collect();
    named.sort();

    let e = Engine::open(config(&path)).unwrap();
    assert_eq!(e.recovery_report().corrupt_records, 3);
    // A damaged record reads as CORRUPT (never as data, never as absent).
    let mut corrupt = Vec::new();
    for i in 0..400u32 {
        match e.get(1, &i.to_le_bytes()) {
            Ok(Some(r)) => assert_eq!(
                r.value,
                vec![(i % 200) as u8 + 1; 700],
                "damaged data served for {i}"
            ),
            Err(quiver_engine::Error::Corrupt { .. }) => corrupt.push(
                i.to_le_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            ),
            other => panic!("key {i}: {other:?}"),
        }
    }
    corrupt.sort();
    assert_eq!(corrupt.len(), 3);
    assert_eq!(named, corrupt, "inspect names the keys that read CORRUPT");
}
