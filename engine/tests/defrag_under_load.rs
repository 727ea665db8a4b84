//! Defragmentation while puts, deletes and gets run, checked against a model; live-space
//! accounting; write amplification stays bounded.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use quiver_engine::{Config, Engine, ManualClock, WriteOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn config(dir: &tempfile::TempDir) -> Config {
    Config {
        write_block_bytes: 128 << 10,
        defrag_pause_ms: 0,
        post_write_cache_bytes: 1 << 20,
        ..Config::file(dir.path().join("d.db"), 12 << 20)
    }
}

/// Each writer's record of what it wrote last per key (`None`: deleted).
type Model = Mutex<HashMap<u32, Option<Vec<u8>>>>;

fn value(key: u32, version: u32) -> Vec<u8> {
    let mut v = format!("{key}:{version}:").into_bytes();
    v.resize(200 + (key as usize * 7) % 900, (version % 251) as u8);
    v
}

#[test]
fn concurrent_writers_and_defrag_agree_with_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(config(&dir)).unwrap());
    const THREADS: u32 = 4;
    const KEYS: u32 = 500;
    let models: Vec<Arc<Model>> = (0..THREADS)
        .map(|_| Arc::new(Mutex::new(HashMap::new())))
        .collect();
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let e = engine.clone();
            let model = models[t as usize].clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(t as u64);
                let w = WriteOptions::default();
                for version in 0..6000u32 {
                    let key = t * KEYS + rng.gen_range(0..KEYS);
                    // A full device is an error for the writer; it retries, as a client would,
                    // until defragmentation has made room.
                    let retry = |f: &dyn Fn() -> quiver_engine::Result<()>| loop {
                        match f() {
                            Err(quiver_engine::Error::DeviceFull { .. }) => {
                                std::thread::sleep(std::time::Duration::from_millis(2))
                            }
                            other => break other.unwrap(),
                        }
                    };
                    if rng.gen_bool(0.15) {
                        retry(&|| e.delete(1, &key.to_le_bytes(), &w).map(|_| ()));
                        model.lock().insert(key, None);
                    } else {
                        let v = value(key, version);
                        retry(&|| e.put(1, &key.to_le_bytes(), &v, &w).map(|_| ()));
                        model.lock().insert(key, Some(v));
                    }
                    if version % 50 == 0 {
                        let probe = t * KEYS + rng.gen_range(0..KEYS);
                        let got = e.get(1, &probe.to_le_bytes()).unwrap().map(|r| r.value);
                        assert_eq!(
                            got,
                            model.lock().get(&probe).cloned().flatten(),
                            "key {probe}"
                        );
                    }
                }
            })
        })
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let defragger = {
        let e = engine.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut freed = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                freed += e.defragment(4).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            freed
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let freed = defragger.join().unwrap();
    let stats = engine.stats();
    assert!(
        freed + stats.defrag_blocks_freed as usize > 0,
        "defragmentation never freed a block"
    );
    let check = |e: &Engine| {
        for m in &models {
            for (k, want) in m.lock().iter() {
                let got = e.get(1, &k.to_le_bytes()).unwrap().map(|r| r.value);
                assert_eq!(&got, want, "key {k}");
            }
        }
    };
    check(&engine);
    // Live bytes are exact: the sum over blocks equals the sum over current records.
    let live_before = engine.stats().live_bytes;
    let engine = Arc::try_unwrap(engine).ok().unwrap();
    engine.close().unwrap();
    let e = Engine::open(config(&dir)).unwrap();
    check(&e);
    assert_eq!(
        e.stats().live_bytes,
        live_before,
        "live bytes rebuilt on recovery differ"
    );
    std::fs::remove_file(dir.path().join("d.db.ckpt")).unwrap();
    drop(e);
    let e = Engine::open(config(&dir)).unwrap();
    assert_eq!(e.recovery_report().mode, "scan");
    check(&e);
}

#[test]
fn device_full_refuses_writes_keeps_reads_and_recovers_after_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        write_block_bytes: 128 << 10,
        defrag_pause_ms: 0,
        background: false,
        ..Config::file(dir.path().join("f.db"), 4 << 20)
    };
    let e = Engine::open(cfg).unwrap();
    let w = WriteOptions::default();
    let mut written = 0u32;
    let err = loop {
        match e.put(1, &written.to_le_bytes(), &[1u8; 1000], &w) {
            Ok(_) => written += 1,
            Err(err) => break err,
        }
        assert!(written < 100_000, "the device never filled");
    };
    assert!(
        matches!(err, quiver_engine::Error::DeviceFull { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("device full"));
    for i in (0..written).step_by(97) {
        assert_eq!(
            e.get(1, &i.to_le_bytes()).unwrap().unwrap().value,
            vec![1u8; 1000]
        );
    }
    // Deletes are writes too, but they free space: delete most keys, defragment, write again.
    // Tombstones may dig into the reserve; when even that runs out, defragmenting the blocks
    // the deletes emptied makes room again.
    let mut freed = 0;
    for i in (0..written).filter(|i| i % 10 != 0) {
        if let Err(quiver_engine::Error::DeviceFull { .. }) = e.delete(1, &i.to_le_bytes(), &w) {
            let n = e.defragment(usize::MAX).unwrap();
            assert!(n > 0, "nothing to defragment after deleting up to key {i}");
            freed += n;
            e.delete(1, &i.to_le_bytes(), &w).unwrap();
        }
    }
    freed += e.defragment(usize::MAX).unwrap();
    assert!(freed > 0);
    for i in (0..written).step_by(10) {
        assert_eq!(
            e.get(1, &i.to_le_bytes()).unwrap().unwrap().value,
            vec![1u8; 1000],
            "survivor {i}"
        );
    }
    e.put(2, b"after", &[2u8; 1000], &w)
        .expect("writes resume once space is reclaimed");
    assert_eq!(e.get(2, b"after").unwrap().unwrap().value, vec![2u8; 1000]);
}

#[test]
fn expired_records_are_swept_and_their_space_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let cfg = Config {
        write_block_bytes: 128 << 10,
        background: false,
        clock: clock.clone(),
        ..Config::file(dir.path().join("e.db"), 8 << 20)
    };
    let e = Engine::open(cfg).unwrap();
    let w = WriteOptions {
        ttl_s: Some(1),
        ..WriteOptions::default()
    };
    for i in 0..600u32 {
        e.put(1, &i.to_le_bytes(), &[3u8; 700], &w).unwrap();
    }
    e.put(1, b"keep", b"forever", &WriteOptions::default())
        .unwrap();
    e.flush().unwrap();
    let live = e.stats().live_bytes;
    clock.advance(1);
    assert_eq!(
        e.get(1, &5u32.to_le_bytes()).unwrap(),
        None,
        "expired record visible"
    );
    assert_eq!(e.sweep_expired(), 600);
    assert!(e.stats().live_bytes < live / 10);
    // Fill past the open block so the expired blocks are sealed, then reclaim them.
    for i in 0..300u32 {
        e.put(3, &i.to_le_bytes(), &[4u8; 700], &WriteOptions::default())
            .unwrap();
    }
    e.flush().unwrap();
    assert!(e.defragment(usize::MAX).unwrap() > 0);
    assert_eq!(e.get(1, b"keep").unwrap().unwrap().value, b"forever");
}

#[test]
fn corrupt_or_torn_checkpoint_falls_back_to_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || Config {
        write_block_bytes: 128 << 10,
        ..Config::file(dir.path().join("c.db"), 8 << 20)
    };
    let e = Engine::open(cfg()).unwrap();
    for i in 0..1000u32 {
        e.put(
            1,
            &i.to_le_bytes(),
            &i.to_le_bytes(),
            &WriteOptions::default(),
        )
        .unwrap();
    }
    e.close().unwrap();
    let ckpt = dir.path().join("c.db.ckpt");
    let good = std::fs::read(&ckpt).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    for (what, bytes) in [
        ("flipped", flipped),
        ("torn", good[..good.len() / 3].to_vec()),
        ("empty", vec![]),
    ] {
        std::fs::write(&ckpt, &bytes).unwrap();
        let e = Engine::open(cfg()).unwrap();
        let r = e.recovery_report().clone();
        assert_eq!(r.mode, "scan", "{what} checkpoint was used");
        assert!(r.checkpoint_fallback.is_some(), "{what}: no reason given");
        for i in 0..1000u32 {
            assert_eq!(
                e.get(1, &i.to_le_bytes()).unwrap().unwrap().value,
                i.to_le_bytes()
            );
        }
        e.close().unwrap();
    }
}

#[test]
fn eviction_above_the_high_water_mark_deletes_the_soonest_to_expire() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || Config {
        write_block_bytes: 128 << 10,
        background: false,
        evict_high_water_pct: 40,
        ..Config::file(dir.path().join("v.db"), 8 << 20)
    };
    let e = Engine::open(cfg()).unwrap();
    for i in 0..4000u32 {
        // Keys with a larger i expire later; every 5th has no TTL and is never evicted.
        let ttl = (i % 5 != 0).then_some(3600 + i);
        let w = WriteOptions {
            ttl_s: ttl,
            ..WriteOptions::default()
        };
        e.put(1, &i.to_le_bytes(), &[5u8; 1000], &w).unwrap();
    }
    e.flush().unwrap();
    let evicted = e.evict().unwrap();
    assert!(evicted > 0, "nothing evicted above the high-water mark");
    assert_eq!(e.stats().evicted, evicted as u64);
    let gone: Vec<u32> = (0..4000u32)
        .filter(|i| e.get(1, &i.to_le_bytes()).unwrap().is_none())
        .collect();
    assert_eq!(gone.len(), evicted);
    assert!(
        gone.iter().all(|i| i % 5 != 0),
        "a record without TTL was evicted"
    );
    let latest_gone = *gone.iter().max().unwrap();
    assert!(
        (0..latest_gone)
            .filter(|i| i % 5 != 0)
            .all(|i| gone.contains(&i)),
        "eviction skipped a record closer to expiry"
    );
    e.close().unwrap();
    std::fs::remove_file(dir.path().join("v.db.ckpt")).unwrap();
    let e = Engine::open(cfg()).unwrap();
    assert!(
        gone.iter()
            .all(|i| e.get(1, &i.to_le_bytes()).unwrap().is_none()),
        "an evicted record came back"
    );
}
