//! Eviction decides from a snapshot of the index and deletes one record at a time: a write
//! acknowledged after the snapshot must survive the round, and a candidate whose group was
//! dropped meanwhile must not stop it.

use std::sync::Arc;

use parking_lot::Mutex;
use quiver_engine::{Config, Engine, WriteOptions};
use quiver_wal::{Device, MemoryDevice, ReadOp, WriteOp};

const DEVICE_BYTES: u64 = 4 << 20;
const BLOCK_BYTES: u32 = 128 << 10;

type Hook = Box<dyn FnOnce() + Send>;

/// A memory device that runs a hook (once) before the next read it serves: the eviction
/// round's first device read is the moment between its snapshot and its first delete.
struct HookDevice {
    inner: MemoryDevice,
    on_read: Mutex<Option<Hook>>,
}

impl Device for HookDevice {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<quiver_wal::Result<()>> {
        let hook = self.on_read.lock().take();
        if let Some(hook) = hook {
            hook();
        }
        self.inner.read_many(ops)
    }
    fn write_many(&self, ops: &[WriteOp<'_>]) -> quiver_wal::Result<()> {
        self.inner.write_many(ops)
    }
    fn sync(&self) -> quiver_wal::Result<()> {
        self.inner.sync()
    }
    fn backend(&self) -> &'static str {
        "hook"
    }
}

fn config() -> Config {
    Config {
        write_block_bytes: BLOCK_BYTES,
        post_write_cache_bytes: 0,
        background: false,
        checkpoint_interval_s: 0,
        evict_high_water_pct: 10,
        ..Config::memory(DEVICE_BYTES)
    }
}

fn ttl(s: u32) -> WriteOptions {
    WriteOptions {
        ttl_s: Some(s),
        ..WriteOptions::default()
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

fn open() -> (Arc<Engine>, Arc<HookDevice>) {
    let dev = Arc::new(HookDevice {
        inner: MemoryDevice::new(DEVICE_BYTES),
        on_read: Mutex::new(None),
    });
    let d: Arc<dyn Device> = dev.clone();
    (Arc::new(Engine::open_on_device(config(), d).unwrap()), dev)
}

#[test]
fn a_write_acknowledged_during_the_round_survives_it() {
    let (e, dev) = open();
    const KEYS: u32 = 600;
    // About 6 blocks of records with a TTL: above the 10% mark, all candidates.
    for i in 0..KEYS {
        e.put(1, &key(i), &[1u8; 1000], &ttl(3600 + i)).unwrap();
    }
    e.flush().unwrap();
    // Between the round's snapshot and its first delete, every key is written again
    // without a TTL (and acknowledged): none of these writes is a candidate.
    let writer = Arc::clone(&e);
    *dev.on_read.lock() = Some(Box::new(move || {
        for i in 0..KEYS {
            writer
                .put(1, &key(i), &[2u8; 1000], &WriteOptions::default())
                .unwrap();
        }
    }));
    e.evict().unwrap();
    assert!(dev.on_read.lock().is_none(), "eviction read nothing");
    let lost: Vec<u32> = (0..KEYS)
        .filter(|&i| e.get(1, &key(i)).unwrap().map(|r| r.value) != Some(vec![2u8; 1000]))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes were deleted by eviction, e.g. key {}",
        lost.len(),
        lost[0]
    );
}

#[test]
fn a_candidate_of_a_dropped_group_does_not_stop_the_round() {
    let (e, _dev) = open();
    // Group 2 expires first, so its records lead the candidates; then it is dropped (its
    // index entries stay until the background reclaim, which is off here).
    for i in 0..200 {
        e.put(2, &key(i), &[3u8; 1000], &ttl(60)).unwrap();
    }
    for i in 0..600 {
        e.put(1, &key(i), &[4u8; 1000], &ttl(3600 + i)).unwrap();
    }
    e.flush().unwrap();
    e.drop_group(2).unwrap();
    let evicted = e
        .evict()
        .expect("the eviction round fails on a dropped group");
    assert!(evicted > 0, "nothing evicted above the high-water mark");
    let gone = (0..600)
        .filter(|&i| e.get(1, &key(i)).unwrap().is_none())
        .count();
    assert_eq!(
        gone, evicted,
        "every eviction counted is a record of group 1"
    );
}
