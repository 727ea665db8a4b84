//! A store used by short-lived processes (a script calling the CLI, a cron job, a serverless
//! handler): every run opens, writes a little, and closes. Runs must go on filling the block
//! the last run left partly filled instead of taking a fresh one each, and a run that finds
//! space short must reclaim it before it refuses writes; no run does background work.

use quiver_engine::{Config, Engine, WriteOptions};

const MIB: u64 = 1 << 20;

/// A directory on tmpfs where there is one (its syncs cost nothing: thousands of opens and
/// closes stay quick), else the default temporary directory.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

fn config(dir: &tempfile::TempDir) -> Config {
    Config::file(dir.path().join("q.db"), 64 * MIB)
}

/// The test of issue 19: 2,000 one-shot opens, each with one put, into a 64 MiB store. Each
/// open used to take a new 1 MiB block (and close left it): DEVICE_FULL after about 60 runs.
#[test]
fn two_thousand_one_shot_puts_fit_in_a_few_blocks() {
    let dir = scratch();
    let w = WriteOptions::default();
    const RUNS: u32 = 2000;
    for i in 0..RUNS {
        let e = Engine::open(config(&dir)).unwrap_or_else(|err| panic!("open {i}: {err}"));
        let key = format!("entity-{}", i % 500);
        let value = format!("value of run {i}");
        e.put(1, key.as_bytes(), value.as_bytes(), &w)
            .unwrap_or_else(|err| panic!("put of run {i}: {err}"));
        e.close()
            .unwrap_or_else(|err| panic!("close of run {i}: {err}"));
    }
    let e = Engine::open(config(&dir)).unwrap();
    for k in 0..500u32 {
        let last = (0..RUNS).rev().find(|i| i % 500 == k).unwrap();
        let got = e.get(1, format!("entity-{k}").as_bytes()).unwrap().unwrap();
        assert_eq!(got.value, format!("value of run {last}").into_bytes());
    }
    let s = e.stats();
    assert_eq!(s.records, 500);
    let live_blocks = s.live_bytes.div_ceil(s.write_block_bytes);
    assert!(
        s.blocks_used <= live_blocks + 2,
        "{} blocks in use for {} live bytes ({live_blocks} blocks' worth)",
        s.blocks_used,
        s.live_bytes
    );
}

/// Every run overwrites the same keys with about a block of data and exits at once: the dead
/// blocks pile up, and without a reclaim at open the 60th run or so gets DEVICE_FULL.
#[test]
fn a_run_that_finds_space_short_reclaims_it_first() {
    let dir = scratch();
    let cfg = || Config {
        write_block_bytes: 128 << 10,
        ..Config::file(dir.path().join("q.db"), 8 * MIB)
    };
    let w = WriteOptions::default();
    const RUNS: u32 = 200;
    for run in 0..RUNS {
        let e = Engine::open(cfg()).unwrap_or_else(|err| panic!("open {run}: {err}"));
        for k in 0..4u32 {
            let value = vec![(run % 251) as u8; 30_000];
            e.put(1, &k.to_le_bytes(), &value, &w)
                .unwrap_or_else(|err| panic!("run {run}, key {k}: {err}"));
        }
        e.close().unwrap();
    }
    let e = Engine::open(cfg()).unwrap();
    for k in 0..4u32 {
        let got = e.get(1, &k.to_le_bytes()).unwrap().unwrap();
        assert_eq!(got.value, vec![((RUNS - 1) % 251) as u8; 30_000]);
    }
}

/// The crash rules hold in a continued block: its first flush rewrites the page holding the
/// old end from the page's start, and a power loss tearing that write anywhere (losing its
/// front or its back) keeps every acknowledged record and returns nothing torn.
#[test]
fn a_torn_flush_of_a_continued_block_loses_nothing_acknowledged() {
    use quiver_wal::device::{CrashMode, FaultDevice, FaultEffect, FaultOp, FaultPlan, FaultRule};
    use quiver_wal::Device;
    use std::sync::Arc;

    const BLOCK: u64 = 128 << 10;
    let cfg = || Config {
        write_block_bytes: BLOCK as u32,
        background: false,
        ..Config::memory(0)
    };
    let sync = WriteOptions {
        durability: Some(quiver_engine::Durability::Sync),
        ..WriteOptions::default()
    };
    let open = |dev: &Arc<FaultDevice>| {
        Engine::open_on_device(cfg(), Arc::clone(dev) as Arc<dyn Device>).unwrap()
    };
    // Two runs, each acknowledged durable; the second continues the first one's block.
    let dev = Arc::new(FaultDevice::new(16 * BLOCK, 19));
    for (k, v) in [(&b"a"[..], vec![1u8; 700]), (b"b", vec![2u8; 2900])] {
        let e = open(&dev);
        e.put(1, k, &v, &sync).unwrap();
        e.close().unwrap();
    }
    let image = dev.written_image();
    let mut cases = 0;
    for sectors in 0..=16 {
        for mode in [
            CrashMode::TearLast {
                keep_sectors: sectors,
            },
            CrashMode::TearLastFront {
                lose_sectors: sectors,
            },
        ] {
            let dev = Arc::new(FaultDevice::from_image(image.clone(), sectors as u64));
            let e = open(&dev);
            assert_eq!(
                e.stats().blocks_used,
                1,
                "the third run continues the block"
            );
            e.put(1, b"c", &[3u8; 5000], &WriteOptions::default())
                .unwrap();
            dev.set_plan(FaultPlan::new(1).with(FaultRule::once_after(
                FaultOp::Sync,
                0,
                FaultEffect::Eio,
            )));
            assert!(e.flush().is_err());
            dev.clear_faults();
            dev.power_loss(mode);
            drop(e);
            let e = open(&dev);
            let get = |k: &[u8]| e.get(1, k).unwrap().map(|r| r.value);
            assert_eq!(get(b"a"), Some(vec![1u8; 700]), "{mode:?}");
            assert_eq!(get(b"b"), Some(vec![2u8; 2900]), "{mode:?}");
            let c = get(b"c");
            assert!(
                c.is_none() || c == Some(vec![3u8; 5000]),
                "{mode:?}: c is absent or whole"
            );
            // The store goes on writing after the crash.
            e.put(1, b"d", b"after", &sync).unwrap();
            assert_eq!(get(b"d"), Some(b"after".to_vec()));
            cases += 1;
        }
    }
    assert_eq!(cases, 34);
}
