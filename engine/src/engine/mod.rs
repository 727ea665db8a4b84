//! The store: index + log + background work, behind one embeddable type.

mod blocks;
mod checkpoint;
mod damage;
mod defrag;
pub(crate) mod inspect_support;
mod marks;
mod open;
mod read;
mod recovery;
mod recovery_damage;
mod scan;
mod scan_moves;
mod stats;
mod write;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use quiver_index::{Digest, Entry, Index};
use quiver_wal::{Device, LogWriter};

pub use damage::{DamagedKey, DAMAGED_KEYS_NAMED};
pub use read::{DeviceRead, ReadStep};
pub use scan::{ScanChunk, ScanCursor, MAX_SCAN_CHUNK};
pub use stats::{RecoveryReport, Stats};

use crate::config::Config;
use crate::error::{Error, Result};

pub(crate) use blocks::Blocks;

/// Largest entity key, in bytes.
pub const MAX_KEY_BYTES: usize = quiver_wal::format::MAX_KEY_BYTES;
/// Group id of the engine's own records (the set of dropped groups). Never a user group.
pub(crate) const SYSTEM_GROUP: u32 = u32::MAX;
const DROPPED_GROUPS_KEY: &[u8] = b"dropped-groups";
/// Key locks: a read-modify-write of one key holds its stripe.
const STRIPES: usize = 4096;

/// A record as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub generation: u16,
    /// Unix seconds; 0 = never expires.
    pub expiry_s: u32,
    /// Unix seconds of the write.
    pub last_update_s: u32,
}

/// What a [`Engine::modify`] callback decides.
pub enum Modify<T> {
    Put {
        value: Vec<u8>,
        ttl_s: Option<u32>,
        out: T,
    },
    Delete {
        out: T,
    },
    Keep {
        out: T,
    },
}

/// An embedded Quiver store. `Send + Sync`: share it behind an `Arc`.
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

pub(crate) struct Inner {
    pub config: Config,
    pub device: Arc<dyn Device>,
    pub index: Index,
    pub blocks: Arc<Blocks>,
    /// Foreground writes.
    pub fg: LogWriter,
    /// Defragmentation copies, kept apart from fresh writes.
    pub dw: LogWriter,
    pub next_lsn: AtomicU64,
    /// Sequence number the next opened block gets (shared with both writers).
    pub next_seq: Arc<AtomicU64>,
    /// Durable limits under which sequences and LSNs are handed out (never twice).
    pub marks: Arc<marks::Marks>,
    /// Space was short at open: the first write reclaims before it goes on (see `open.rs`).
    pub reclaim_before_writes: AtomicBool,
    pub stripes: Vec<Mutex<()>>,
    pub store_id: u128,
    pub dropped: RwLock<HashSet<u32>>,
    /// Groups dropped whose records still occupy the index and blocks.
    pub reclaim_pending: Mutex<Vec<u32>>,
    pub counters: stats::Counters,
    /// Keys whose newest frame is damaged: they read as CORRUPT.
    pub damage: damage::DamageSet,
    pub recovery: RecoveryReport,
    pub shutdown: AtomicBool,
    pub checkpoint_lock: Mutex<()>,
    /// Scan chunks hold it shared, a block's defragmentation exclusively: records never move
    /// under a chunk.
    pub scan_guard: RwLock<()>,
    /// Unix ms of the last scan chunk; defragmentation waits while scans are active, unless
    /// space is short.
    pub scan_lease_ms: AtomicU64,
    /// What defragmentation moved under the scans in progress.
    pub scan_moves: scan_moves::ScanMoves,
}

impl Inner {
    pub fn stripe(&self, d: Digest) -> &Mutex<()> {
        &self.stripes[(d as usize) % STRIPES]
    }

    pub fn is_expired(e: &Entry, now_s: u32) -> bool {
        e.expiry_s != 0 && e.expiry_s <= now_s
    }

    pub fn check_key(key: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(Error::KeySize {
                len: key.len(),
                max: MAX_KEY_BYTES,
            });
        }
        Ok(())
    }

    pub fn check_group(&self, group: u32) -> Result<()> {
        if group == SYSTEM_GROUP {
            return Err(Error::Config(format!(
                "group id {SYSTEM_GROUP} is reserved for the engine"
            )));
        }
        Ok(())
    }

    pub fn is_dropped(&self, group: u32) -> bool {
        self.dropped.read().contains(&group)
    }
}

/// The index location of a frame at byte `offset` of `block`, `padded_len` bytes long.
pub(crate) fn frame_location(block: u32, offset: u32, padded_len: u32) -> quiver_index::Location {
    let unit = quiver_wal::format::UNIT_BYTES as u32;
    quiver_index::Location {
        block,
        offset_units: offset / unit,
        len_units: padded_len / unit,
    }
}

impl Inner {
    /// Now, by the configured clock (unix seconds).
    pub(crate) fn now_s(&self) -> u32 {
        self.config.clock.now_s()
    }
}

impl Engine {
    /// Opens (creating or recovering) a store.
    pub fn open(config: Config) -> Result<Engine> {
        open::open(config)
    }

    /// Opens a store on a device built by the caller, e.g. a fault-injecting one in tests.
    pub fn open_on_device(config: Config, device: Arc<dyn Device>) -> Result<Engine> {
        open::open_on(config, device)
    }

    /// Reads the current record of `key` in `group`: `None` when absent, deleted or expired;
    /// [`Error::Corrupt`] when its newest record is damaged on the device (never an older one).
    pub fn get(&self, group: u32, key: &[u8]) -> Result<Option<Record>> {
        self.inner.get(group, key)
    }

    /// The first step of a read whose device read the caller makes itself (see [`ReadStep`]):
    /// an event loop submits it to its own io_uring on [`Engine::ring_read_fd`] (or, when
    /// [`Engine::reads_from_memory`], reads it with [`Engine::read_now`]) and hands the bytes
    /// to [`Engine::finish_read`]. Call [`Engine::persist_read_damage`] off the loop when
    /// [`Engine::read_damage_pending`] says a read found damage.
    pub fn begin_read(&self, group: u32, key: &[u8]) -> ReadStep {
        self.inner.begin_read(group, key)
    }

    /// How far the log has been appended: every write that returned before this call lies
    /// before the mark. With [`Engine::wait_durable`], a caller makes many buffered writes
    /// durable with one flush, without a thread blocked per write.
    pub fn write_mark(&self) -> quiver_wal::writer::Pos {
        self.inner.fg.appended()
    }

    /// Blocks until the log is durable up to `mark` (leading a flush if none is running); a
    /// failed flush fails the store, as a sync write's would.
    pub fn wait_durable(&self, mark: quiver_wal::writer::Pos) -> Result<()> {
        self.inner
            .fg
            .wait_durable(mark)
            .map_err(|e| self.inner.failed(e))
    }

    /// Gives a record read on this thread back for reuse: the thread's next reads refill its
    /// buffers instead of allocating (an event loop's GETs allocate nothing once warm).
    pub fn recycle(&self, record: Record) {
        Inner::recycle(record)
    }

    /// The step after `read` (see [`Engine::begin_read`]): `bytes` are the `read.len` bytes
    /// read at `read.offset`, or the read's error.
    pub fn finish_read(
        &self,
        group: u32,
        key: &[u8],
        read: DeviceRead,
        bytes: Result<&[u8]>,
    ) -> ReadStep {
        self.inner
            .counters
            .device_reads
            .fetch_add(1, Ordering::Relaxed);
        self.inner.finish_read(group, key, read, bytes)
    }

    /// The file whose reads a caller may submit to its own io_uring, when the device allows it.
    pub fn ring_read_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.device.ring_read_fd()
    }

    /// Whether device reads are copies from memory (a memory store), cheap enough to make on
    /// an event loop with [`Engine::read_now`].
    pub fn reads_from_memory(&self) -> bool {
        self.inner.device.reads_from_memory()
    }

    /// Makes a device read in place (blocking on a device that is not memory).
    pub fn read_now(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        Ok(self.inner.device.read_at(buf, offset)?)
    }

    /// Whether a read found damage that is not yet written to the device.
    pub fn read_damage_pending(&self) -> bool {
        self.inner.damage.is_dirty()
    }

    /// Writes the damaged-key list when a read changed it (a durable write: it blocks).
    pub fn persist_read_damage(&self) {
        self.inner.persist_damage()
    }

    /// Reads many records with all their device reads in flight together.
    pub fn get_many(&self, keys: &[(u32, &[u8])]) -> Result<Vec<Option<Record>>> {
        self.inner.get_many(keys)
    }

    /// Where each key's record starts on the device (byte offset), or `u64::MAX` for a key
    /// without one: a caller about to read many records sorts its work by this, so that
    /// neighbouring records fall into the same batch and are read together (batch reads
    /// make the device reads of close records as one).
    pub fn device_order(&self, keys: &[(u32, &[u8])]) -> Vec<u64> {
        self.inner.device_order(keys)
    }

    /// As `get_many`, with an answer per key: a damaged key's is [`Error::Corrupt`] while the
    /// others read normally.
    pub fn get_each(&self, keys: &[(u32, &[u8])]) -> Result<Vec<Result<Option<Record>>>> {
        self.inner.get_each(keys)
    }

    /// Keys whose newest record is damaged: they read as [`Error::Corrupt`] until rewritten or
    /// deleted.
    pub fn damaged_keys(&self) -> Vec<DamagedKey> {
        self.inner.damage.list()
    }

    /// Writes `value` as the current record of `key`; returns its new generation.
    pub fn put(
        &self,
        group: u32,
        key: &[u8],
        value: &[u8],
        opts: &crate::WriteOptions,
    ) -> Result<u16> {
        self.inner.put(group, key, value, opts)
    }

    /// Deletes `key`; returns whether it existed. The delete survives restarts (a tombstone is
    /// kept on the device while any older version might still be there).
    pub fn delete(&self, group: u32, key: &[u8], opts: &crate::WriteOptions) -> Result<bool> {
        self.inner.delete(group, key, opts)
    }

    /// Atomic read-modify-write of one key: `f` sees the current record under the key's lock.
    pub fn modify<T>(
        &self,
        group: u32,
        key: &[u8],
        opts: &crate::WriteOptions,
        f: impl FnOnce(Option<&Record>) -> Result<Modify<T>>,
    ) -> Result<T> {
        self.inner.modify(group, key, opts, f)
    }

    /// Current records of `group` in device order, `max_records` at a time.
    pub fn scan(&self, group: u32, cursor: ScanCursor, max_records: usize) -> Result<ScanChunk> {
        self.inner.scan(group, cursor, max_records)
    }

    /// [`Engine::scan`] for background sweeps that may miss a record moved between their
    /// chunks (the next sweep finds it): it does not hold defragmentation off.
    pub fn sweep(&self, group: u32, cursor: ScanCursor, max_records: usize) -> Result<ScanChunk> {
        self.inner.scan_with(group, cursor, max_records, false)
    }

    /// A second handle on this engine for a task of the layer above that runs on its own
    /// thread. It owns no background threads: dropping it leaves the engine running, and the
    /// task must end before the engine is closed.
    pub(crate) fn handle(&self) -> Engine {
        Engine {
            inner: Arc::clone(&self.inner),
            workers: Mutex::new(Vec::new()),
        }
    }

    /// Makes every record of `group` unreachable now; their space is reclaimed in the
    /// background. Durable before it returns.
    pub fn drop_group(&self, group: u32) -> Result<()> {
        self.inner.drop_group(group)
    }

    /// Writes every buffered record to the device and flushes it.
    pub fn flush(&self) -> Result<()> {
        self.inner.fg.flush().map_err(|e| self.inner.failed(e))?;
        self.inner.dw.flush().map_err(|e| self.inner.failed(e))?;
        Ok(())
    }

    /// Writes an index checkpoint so that the next open skips the full device scan.
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.checkpoint()
    }

    /// Runs defragmentation passes until no block is under the threshold (or `max_blocks`
    /// were done); returns how many blocks were freed. The background worker does the same.
    pub fn defragment(&self, max_blocks: usize) -> Result<usize> {
        self.inner.defrag_pass(max_blocks)
    }

    /// Deletes the records closest to expiry while use is above `evict_high_water_pct` (the
    /// background worker does the same); returns how many.
    pub fn evict(&self) -> Result<usize> {
        self.inner.evict_if_needed()
    }

    /// Drops expired records from the index now (the background sweep does it periodically).
    pub fn sweep_expired(&self) -> usize {
        self.inner.sweep_expired()
    }

    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// What the last open found.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// Flushes, checkpoints and stops the background threads.
    pub fn close(self) -> Result<()> {
        self.shutdown_threads();
        let flushed = self.flush();
        let healthy = self.inner.fg.is_failed().is_none() && self.inner.dw.is_failed().is_none();
        let ckpt = if healthy {
            self.inner.checkpoint()
        } else {
            Ok(())
        };
        // Nothing is written after this: record where sequences and LSNs stopped, so that
        // the next open goes on from there instead of jumping past a reserved step.
        let settled = if healthy && flushed.is_ok() {
            self.inner
                .marks
                .settle(
                    self.inner.next_seq.load(Ordering::SeqCst),
                    self.inner.next_lsn.load(Ordering::SeqCst),
                )
                .map_err(|e| self.inner.failed(e))
        } else {
            Ok(())
        };
        flushed.and(ckpt).and(settled)
    }

    fn shutdown_threads(&self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        self.inner.blocks.wake_maintenance();
        for h in self.workers.lock().drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.workers.lock().is_empty() {
            self.shutdown_threads();
            let _ = self.flush();
        }
    }
}
