//! Counters and the stats snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Inner;

#[derive(Default)]
pub(crate) struct Counters {
    pub puts: AtomicU64,
    pub deletes: AtomicU64,
    pub gets: AtomicU64,
    pub device_reads: AtomicU64,
    pub memory_reads: AtomicU64,
    pub corrupt_reads: AtomicU64,
    /// Reads answered CORRUPT (a damaged key).
    pub damaged_reads: AtomicU64,
    pub bytes_appended: AtomicU64,
    pub defrag_blocks_freed: AtomicU64,
    pub defrag_records_moved: AtomicU64,
    pub defrag_bytes_moved: AtomicU64,
    pub tombstones_kept: AtomicU64,
    pub tombstones_dropped: AtomicU64,
    pub expired_swept: AtomicU64,
    pub evicted: AtomicU64,
    pub checkpoints: AtomicU64,
    pub groups_reclaimed: AtomicU64,
}

/// What the last open found on the device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// "created", "checkpoint" or "scan".
    pub mode: String,
    /// Why a checkpoint was not used, when it was not.
    pub checkpoint_fallback: Option<String>,
    pub blocks_scanned: u64,
    pub bytes_scanned: u64,
    pub records_seen: u64,
    pub records_recovered: u64,
    pub tombstones_seen: u64,
    /// Frames whose body checksum failed: skipped, never returned.
    pub corrupt_records: u64,
    /// Blocks whose data ended in non-zero bytes that are no valid frame (a torn write).
    pub torn_tails: u64,
    /// Where the corrupt frames and torn tails were: (block, offset, what).
    pub damage: Vec<(u32, u32, String)>,
    /// Damaged frames at the end of the block a writer had open last: writes torn by a crash
    /// (never acknowledged as durable), not damage.
    pub crash_tail_frames: u64,
    /// Keys whose newest frame is damaged: they read as CORRUPT until rewritten or deleted.
    pub damaged_keys: u64,
    /// The first of them (up to `DAMAGED_KEYS_NAMED`), described.
    pub damaged_key_names: Vec<String>,
    pub elapsed_ms: u64,
}

/// A snapshot of the store's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub records: u64,
    pub live_bytes: u64,
    pub device_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub write_block_bytes: u64,
    pub blocks_total: u64,
    pub blocks_used: u64,
    pub blocks_free: u64,
    pub index_bytes: u64,
    pub backend: String,
    /// Whether the device bypasses the page cache (O_DIRECT), as it was actually opened.
    pub direct_io: bool,
    pub puts: u64,
    pub deletes: u64,
    pub gets: u64,
    pub device_reads: u64,
    pub memory_reads: u64,
    pub corrupt_reads: u64,
    /// Reads answered CORRUPT because their key is damaged.
    pub damaged_reads: u64,
    /// Keys that read as CORRUPT now (their newest frame is damaged).
    pub damaged_keys: u64,
    /// Bytes of frames appended by foreground writes.
    pub user_bytes_written: u64,
    /// Bytes written to the device by both writers (foreground and defragmentation).
    pub device_bytes_written: u64,
    pub flushes: u64,
    pub defrag_blocks_freed: u64,
    pub defrag_records_moved: u64,
    pub defrag_bytes_moved: u64,
    pub defrag_queue: u64,
    pub tombstones_kept: u64,
    pub tombstones_dropped: u64,
    pub expired_swept: u64,
    /// Records deleted early by eviction above the high-water mark.
    pub evicted: u64,
    pub checkpoints: u64,
    pub failed: Option<String>,
}

impl Inner {
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let bb = self.blocks.block_bytes;
        let total = self.blocks.count() as u64 - 1;
        let used = self.blocks.used_blocks() as u64;
        let free = self.blocks.free_count() as u64;
        let fg = self.fg.stats();
        let dw = self.dw.stats();
        Stats {
            records: self.index.len() as u64,
            live_bytes: self.blocks.live_bytes(),
            device_bytes: self.device.capacity(),
            used_bytes: used * bb,
            free_bytes: free * bb,
            write_block_bytes: bb,
            blocks_total: total,
            blocks_used: used,
            blocks_free: free,
            index_bytes: self.index.memory_bytes() as u64,
            backend: self.device.backend().to_string(),
            direct_io: self.device.direct_io(),
            puts: get(&c.puts),
            deletes: get(&c.deletes),
            gets: get(&c.gets),
            device_reads: get(&c.device_reads),
            memory_reads: get(&c.memory_reads),
            corrupt_reads: get(&c.corrupt_reads),
            damaged_reads: get(&c.damaged_reads),
            damaged_keys: self.damage.len() as u64,
            user_bytes_written: get(&c.bytes_appended),
            device_bytes_written: fg.bytes_written + dw.bytes_written,
            flushes: fg.flushes + dw.flushes,
            defrag_blocks_freed: get(&c.defrag_blocks_freed),
            defrag_records_moved: get(&c.defrag_records_moved),
            defrag_bytes_moved: get(&c.defrag_bytes_moved),
            defrag_queue: self
                .blocks
                .defrag_candidates(self.config.defrag_lwm_pct, usize::MAX)
                .len() as u64,
            tombstones_kept: get(&c.tombstones_kept),
            tombstones_dropped: get(&c.tombstones_dropped),
            expired_swept: get(&c.expired_swept),
            evicted: get(&c.evicted),
            checkpoints: get(&c.checkpoints),
            failed: self.fg.is_failed().or_else(|| self.dw.is_failed()),
        }
    }
}
