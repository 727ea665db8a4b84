//! A read that races with the reuse of its record's block: the block is freed, reused, and
//! the same key written at the same place, while the read still holds the bytes of the
//! block's earlier use. Those bytes fail the sequence check of the block's new use although
//! nothing is damaged: the read must follow the index again, not report corruption.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quiver_engine::{Config, Engine, WriteOptions};
use quiver_wal::{Device, MemoryDevice, ReadOp, WriteOp};

const BLOCK: u64 = 128 << 10;
/// Keys per round: 127 frames of exactly 1 KiB fill a 128 KiB block after its 64-byte header,
/// so every round fills one block and every key sits at the same offset in each block.
const KEYS: u64 = 127;
const VALUE_BYTES: usize = 1024 - 64 - 8;
/// The writer goes on until the readers made this many lagging device reads...
const LAGGED_READS: u64 = 80;
/// ...or this many rounds were written.
const MAX_ROUNDS: u64 = 20_000;

/// A memory device whose small reads (records, not defragmentation's whole pieces) copy their
/// bytes at once and return them only after a pause: the reader holds a snapshot while the
/// writer moves on, as a reader preempted between its read and its check would. The pause
/// is longer than the writer takes to cycle through the device's 7 data blocks, so the
/// block read from is often reused, with the key at the same offset, when the read returns.
struct LaggingReads {
    inner: MemoryDevice,
    lag: Duration,
    lagged: AtomicU64,
}

impl Device for LaggingReads {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<quiver_wal::Result<()>> {
        let small = ops.iter().all(|op| op.buf.len() <= 8192);
        let out = self.inner.read_many(ops);
        if small {
            self.lagged.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(self.lag);
        }
        out
    }
    fn write_many(&self, ops: &[WriteOp<'_>]) -> quiver_wal::Result<()> {
        self.inner.write_many(ops)
    }
    fn sync(&self) -> quiver_wal::Result<()> {
        self.inner.sync()
    }
    fn backend(&self) -> &'static str {
        "lagging"
    }
}

fn key(j: u64) -> [u8; 8] {
    j.to_be_bytes()
}

/// A value that names its key and round.
fn value(j: u64, round: u64) -> Vec<u8> {
    let mut v = vec![(round % 251) as u8; VALUE_BYTES];
    v[..8].copy_from_slice(&key(j));
    v[8..16].copy_from_slice(&round.to_le_bytes());
    v
}

/// Reads keys in a fixed stride until `done`; every read must return its key's record.
fn read_until(engine: &Engine, done: &AtomicBool, r: u64) -> Result<u64, String> {
    let mut reads = 0u64;
    let mut j = r * 41;
    while !done.load(Ordering::Acquire) {
        j = (j + 17) % KEYS;
        let got = engine
            .get(1, &key(j))
            .map_err(|e| format!("get of key {j}: {e}"))?
            .ok_or_else(|| format!("key {j} is missing"))?;
        if got.value.len() != VALUE_BYTES || got.value[..8] != key(j) {
            return Err(format!("key {j} read another record"));
        }
        reads += 1;
    }
    Ok(reads)
}

#[test]
fn a_read_racing_the_reuse_of_its_block_is_not_corruption() {
    let dev = Arc::new(LaggingReads {
        inner: MemoryDevice::new(8 * BLOCK),
        lag: Duration::from_millis(50),
        lagged: AtomicU64::new(0),
    });
    let cfg = Config {
        write_block_bytes: BLOCK as u32,
        post_write_cache_bytes: 0,
        defrag_pause_ms: 0,
        defrag_nice: 0,
        background: false,
        ..Config::memory(0)
    };
    let engine =
        Arc::new(Engine::open_on_device(cfg, Arc::clone(&dev) as Arc<dyn Device>).unwrap());
    let w = WriteOptions::default();
    for j in 0..KEYS {
        engine.put(1, &key(j), &value(j, 0), &w).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4u64)
        .map(|r| {
            let (engine, done) = (Arc::clone(&engine), Arc::clone(&done));
            std::thread::spawn(move || -> Result<u64, String> {
                let outcome = read_until(&engine, &done, r);
                // A failed reader ends the run: the writer need not go on.
                done.store(true, Ordering::Release);
                outcome
            })
        })
        .collect();
    // Each round overwrites every key, in the same order, so that each lands at its offset of
    // the next block; the previous round's block is then all dead and defragmentation frees
    // it (no copies), and the blocks cycle through the free list.
    let mut written = Ok(());
    let mut rounds = 0;
    for round in 1..=MAX_ROUNDS {
        if dev.lagged.load(Ordering::Relaxed) >= LAGGED_READS || done.load(Ordering::Acquire) {
            break;
        }
        rounds = round;
        for j in 0..KEYS {
            if let Err(e) = engine.put(1, &key(j), &value(j, round), &w) {
                written = Err(format!("round {round}: put of key {j}: {e}"));
                break;
            }
        }
        if written.is_err() {
            break;
        }
        engine.defragment(usize::MAX).unwrap();
    }
    done.store(true, Ordering::Release);
    let outcomes: Vec<_> = readers.into_iter().map(|h| h.join().unwrap()).collect();
    eprintln!(
        "{rounds} rounds, {} lagging device reads, reads per reader: {outcomes:?}",
        dev.lagged.load(Ordering::Relaxed)
    );
    written.unwrap();
    for o in &outcomes {
        if let Err(e) = o {
            panic!("a reader failed: {e}");
        }
    }
    let stats = engine.stats();
    assert!(
        stats.defrag_blocks_freed >= rounds - 2,
        "blocks were freed and reused: {} freed",
        stats.defrag_blocks_freed
    );
    assert!(
        dev.lagged.load(Ordering::Relaxed) >= LAGGED_READS,
        "reads from the device raced the writer: {}",
        dev.lagged.load(Ordering::Relaxed)
    );
    assert_eq!(stats.corrupt_reads, 0, "no record was damaged");
}
