//! Put, get, delete, TTL and reopen on a file and in memory.

use std::sync::Arc;

use quiver_engine::{Clock, Config, Durability, Engine, Error, ManualClock, WriteOptions};

fn small_file(dir: &tempfile::TempDir) -> Config {
    Config {
        write_block_bytes: 128 << 10,
        ..Config::file(dir.path().join("q.db"), 16 << 20)
    }
}

#[test]
fn put_get_delete_memory() {
    let e = Engine::open(Config::memory(16 << 20)).unwrap();
    let w = WriteOptions::default();
    assert_eq!(e.get(1, b"k").unwrap(), None);
    let g1 = e.put(1, b"k", b"v1", &w).unwrap();
    let g2 = e.put(1, b"k", b"v2", &w).unwrap();
    assert_eq!(g2, g1.wrapping_add(1));
    let r = e.get(1, b"k").unwrap().unwrap();
    assert_eq!(r.value, b"v2");
    assert_eq!(r.generation, g2);
    assert_eq!(
        e.get(2, b"k").unwrap(),
        None,
        "groups are separate key spaces"
    );
    assert!(e.delete(1, b"k", &w).unwrap());
    assert!(!e.delete(1, b"k", &w).unwrap());
    assert_eq!(e.get(1, b"k").unwrap(), None);
    e.close().unwrap();
}

#[test]
fn bad_input_is_a_typed_error() {
    let e = Engine::open(Config::memory(16 << 20)).unwrap();
    let w = WriteOptions::default();
    assert!(matches!(
        e.put(1, b"", b"v", &w),
        Err(Error::KeySize { .. })
    ));
    assert!(matches!(
        e.put(1, &[0u8; 1025], b"v", &w),
        Err(Error::KeySize {
            len: 1025,
            max: 1024
        })
    ));
    let big = vec![0u8; (1 << 20) + 1];
    assert!(matches!(
        e.put(1, b"k", &big, &w),
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(
        e.get(1, b"k").unwrap(),
        None,
        "a rejected put writes nothing"
    );
    let bad = Config {
        write_block_bytes: 3 << 20,
        ..Config::memory(64 << 20)
    };
    assert!(matches!(Engine::open(bad), Err(Error::Config(_))));
    assert!(matches!(
        Engine::open(Config {
            write_block_bytes: 1 << 20,
            ..Config::memory(2 << 20)
        }),
        Err(Error::Wal(quiver_wal::Error::DeviceTooSmall { .. }))
    ));
}

#[test]
fn reopen_file_finds_everything_by_scan_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let w = WriteOptions::default();
    {
        let e = Engine::open(small_file(&dir)).unwrap();
        for i in 0..3000u32 {
            e.put(
                7,
                format!("key{i}").as_bytes(),
                &i.to_le_bytes().repeat(20),
                &w,
            )
            .unwrap();
        }
        for i in (0..3000u32).step_by(3) {
            e.delete(7, format!("key{i}").as_bytes(), &w).unwrap();
        }
        e.close().unwrap();
    }
    let check = |e: &Engine| {
        for i in 0..3000u32 {
            let got = e.get(7, format!("key{i}").as_bytes()).unwrap();
            if i % 3 == 0 {
                assert_eq!(got, None, "deleted key{i} came back");
            } else {
                assert_eq!(got.unwrap().value, i.to_le_bytes().repeat(20));
            }
        }
    };
    {
        let e = Engine::open(small_file(&dir)).unwrap();
        assert_eq!(e.recovery_report().mode, "checkpoint");
        check(&e);
        e.close().unwrap();
    }
    std::fs::remove_file(dir.path().join("q.db.ckpt")).unwrap();
    let e = Engine::open(small_file(&dir)).unwrap();
    assert_eq!(e.recovery_report().mode, "scan");
    check(&e);
    assert_eq!(e.stats().records, 2000);
}

#[test]
fn get_many_matches_get() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        post_write_cache_bytes: 0,
        ..small_file(&dir)
    };
    let e = Engine::open(cfg).unwrap();
    let w = WriteOptions {
        durability: Some(Durability::Sync),
        ttl_s: None,
    };
    for i in 0..500u32 {
        e.put(3, &i.to_le_bytes(), &vec![i as u8; 600], &w).unwrap();
    }
    e.flush().unwrap();
    let keys: Vec<[u8; 4]> = (0..600u32).map(|i| i.to_le_bytes()).collect();
    let req: Vec<(u32, &[u8])> = keys.iter().map(|k| (3, &k[..])).collect();
    let got = e.get_many(&req).unwrap();
    for (i, r) in got.iter().enumerate() {
        if i < 500 {
            assert_eq!(r.as_ref().unwrap().value, vec![i as u8; 600]);
        } else {
            assert!(r.is_none());
        }
    }
    assert!(e.stats().device_reads > 0, "reads came from the device");
}

#[test]
fn ttl_expires_and_stays_expired_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let config = || Config {
        clock: clock.clone(),
        ..small_file(&dir)
    };
    let w = WriteOptions::default();
    {
        let e = Engine::open(config()).unwrap();
        e.put(
            1,
            b"short",
            b"x",
            &WriteOptions {
                ttl_s: Some(1),
                ..w
            },
        )
        .unwrap();
        e.put(
            1,
            b"long",
            b"y",
            &WriteOptions {
                ttl_s: Some(3600),
                ..w
            },
        )
        .unwrap();
        clock.advance(1);
        assert_eq!(e.get(1, b"short").unwrap(), None, "expired at put + TTL");
        clock.set(clock.now_s() - 1);
        assert!(e.get(1, b"short").unwrap().is_some(), "live until then");
        e.close().unwrap();
    }
    clock.advance(2);
    let e = Engine::open(config()).unwrap();
    assert_eq!(e.get(1, b"short").unwrap(), None);
    assert_eq!(
        e.get(1, b"long").unwrap().unwrap().expiry_s,
        1_700_000_000 + 3600,
        "the expiry is the clock's time of the put plus the TTL"
    );
}

#[test]
fn scan_returns_current_records_of_one_group() {
    let e = Engine::open(Config::memory(16 << 20)).unwrap();
    let w = WriteOptions::default();
    for i in 0..100u32 {
        e.put(1, &i.to_le_bytes(), b"a", &w).unwrap();
        e.put(2, &i.to_le_bytes(), b"b", &w).unwrap();
    }
    for i in 0..50u32 {
        e.put(1, &i.to_le_bytes(), b"a2", &w).unwrap();
    }
    let mut cursor = quiver_engine::ScanCursor::START;
    let mut seen = Vec::new();
    loop {
        let chunk = e.scan(1, cursor, 7).unwrap();
        seen.extend(chunk.records.into_iter().map(|(g, r)| (g, r.key, r.value)));
        match chunk.next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert_eq!(seen.len(), 100);
    assert!(seen.iter().all(|(g, _, _)| *g == 1));
    assert_eq!(seen.iter().filter(|(_, _, v)| v == b"a2").count(), 50);
}

#[test]
fn dropped_group_is_unreachable_and_stays_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let w = WriteOptions::default();
    {
        let e = Engine::open(small_file(&dir)).unwrap();
        e.put(5, b"a", b"1", &w).unwrap();
        e.put(6, b"a", b"2", &w).unwrap();
        e.drop_group(5).unwrap();
        assert_eq!(e.get(5, b"a").unwrap(), None);
        assert!(matches!(
            e.put(5, b"b", b"1", &w),
            Err(Error::GroupDropped(5))
        ));
        e.close().unwrap();
    }
    std::fs::remove_file(dir.path().join("q.db.ckpt")).unwrap();
    let e = Engine::open(small_file(&dir)).unwrap();
    assert_eq!(e.get(5, b"a").unwrap(), None);
    assert_eq!(e.get(6, b"a").unwrap().unwrap().value, b"2");
}

#[test]
fn scan_during_background_defragmentation_returns_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || Config {
        defrag_pause_ms: 0,
        ..small_file(&dir)
    };
    {
        let e = Engine::open(Config {
            background: false,
            ..cfg()
        })
        .unwrap();
        // Overwrite half the keys so that many sealed blocks fall under the threshold.
        for round in 0..2u32 {
            for i in 0..4000u32 {
                if round == 0 || i % 2 == 0 {
                    e.put(
                        4,
                        &i.to_le_bytes(),
                        &[round as u8; 500],
                        &WriteOptions::default(),
                    )
                    .unwrap();
                }
            }
        }
        e.close().unwrap();
    }
    // Background defragmentation starts at once on reopen; the scan must not see moves.
    let e = Engine::open(cfg()).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut cursor = quiver_engine::ScanCursor::START;
    loop {
        let chunk = e.scan(4, cursor, 97).unwrap();
        for (_, r) in chunk.records {
            assert!(seen.insert(r.key.clone()), "key returned twice");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        match chunk.next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert_eq!(seen.len(), 4000);
}

#[test]
fn a_newer_format_or_damaged_superblock_is_refused_untouched() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    Engine::open(small_file(&dir)).unwrap().close().unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut sb = [0u8; 56];
    f.read_exact_at(&mut sb, 0).unwrap();
    // A format version newer than this build's, with a checksum that holds.
    let newer = quiver_wal::format::FORMAT_VERSION + 1;
    sb[8..12].copy_from_slice(&newer.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&sb[0..48]);
    sb[48..56].copy_from_slice(&sum.to_le_bytes());
    f.write_all_at(&sb, 0).unwrap();
    let err = Engine::open(small_file(&dir))
        .err()
        .expect("newer format opened");
    assert!(
        err.to_string().contains("newer than this build supports"),
        "{err}"
    );
    // A flipped bit in the superblock is corruption, reported as such.
    sb[8..12].copy_from_slice(&1u32.to_le_bytes());
    sb[20] ^= 1;
    f.write_all_at(&sb, 0).unwrap();
    let err = Engine::open(small_file(&dir))
        .err()
        .expect("damaged superblock opened");
    assert!(err.to_string().contains("corrupt superblock"), "{err}");
    let mut after = [0u8; 56];
    f.read_exact_at(&mut after, 0).unwrap();
    assert_eq!(after, sb, "a refused device was written to");
}
