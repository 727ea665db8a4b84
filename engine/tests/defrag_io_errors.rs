//! A failed write or sync on the defragmentation path fails the store, as on the write path:
//! after it, every write is refused (the device state is unknown, and with buffered I/O the
//! error may have been the only report of dropped pages), while reads go on.

use std::sync::Arc;

use quiver_engine::{Config, Durability, Engine, Error, WriteOptions};
use quiver_wal::device::{FaultDevice, FaultEffect, FaultOp, FaultPlan, FaultRule};
use quiver_wal::Device;

const DEVICE_BYTES: u64 = 4 << 20;
const KEYS: u32 = 300;

fn config() -> Config {
    Config {
        write_block_bytes: 128 << 10,
        post_write_cache_bytes: 0,
        defrag_pause_ms: 0,
        checkpoint_interval_s: 0,
        background: false,
        ..Config::memory(DEVICE_BYTES)
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

fn value(i: u32, version: u8) -> Vec<u8> {
    let mut v = vec![version; 1000];
    v[..4].copy_from_slice(&i.to_le_bytes());
    v
}

/// A store whose first blocks are two-thirds dead: a defragmentation pass has work.
fn store_with_dead_blocks(dev: &Arc<FaultDevice>) -> Engine {
    let d: Arc<dyn Device> = dev.clone();
    let e = Engine::open_on_device(config(), d).unwrap();
    let w = WriteOptions::default();
    for i in 0..KEYS {
        e.put(1, &key(i), &value(i, 1), &w).unwrap();
    }
    for i in (0..KEYS).filter(|i| !i.is_multiple_of(3)) {
        e.put(1, &key(i), &value(i, 2), &w).unwrap();
    }
    e.flush().unwrap();
    e
}

fn expected(i: u32) -> Vec<u8> {
    value(i, if i.is_multiple_of(3) { 1 } else { 2 })
}

/// Fails the `n`-th write or sync from the start of a defragmentation pass, for every `n`
/// the pass reaches; each time the store must refuse writes and keep serving reads.
fn each_failure_fails_the_store(op: FaultOp) -> u64 {
    let mut fired = 0;
    for n in 0.. {
        let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, n));
        let e = store_with_dead_blocks(&dev);
        dev.set_plan(FaultPlan::new(n).with(FaultRule::once_after(op, n, FaultEffect::Eio)));
        let pass = e.defragment(usize::MAX);
        if dev.stats().injected_eio == 0 {
            assert!(pass.unwrap() > 0, "the pass freed nothing");
            break;
        }
        fired += 1;
        assert!(pass.is_err(), "{op:?} #{n} failed but the pass succeeded");
        assert!(
            e.stats().failed.is_some(),
            "{op:?} #{n} of defragmentation failed and the store did not"
        );
        for durability in [Durability::Buffered, Durability::Sync] {
            let opts = WriteOptions {
                durability: Some(durability),
                ttl_s: None,
            };
            let put = e.put(1, &key(0), b"after", &opts);
            assert!(
                matches!(put, Err(Error::Failed(_))),
                "{op:?} #{n}: a put after the failure got {put:?}"
            );
        }
        for i in 0..KEYS {
            let got = e.get(1, &key(i)).unwrap().map(|r| r.value);
            assert_eq!(got, Some(expected(i)), "{op:?} #{n}: key {i}");
        }
    }
    assert!(fired > 0, "no {op:?} happened during defragmentation");
    fired
}

#[test]
fn a_failed_sync_during_defragmentation_fails_the_store() {
    each_failure_fails_the_store(FaultOp::Sync);
}

#[test]
fn a_failed_write_during_defragmentation_fails_the_store() {
    each_failure_fails_the_store(FaultOp::Write);
}
