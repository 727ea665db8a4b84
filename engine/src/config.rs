//! How a store is opened.

use std::path::PathBuf;
use std::sync::Arc;

use quiver_wal::format::{MAX_WRITE_BLOCK_BYTES, MIN_WRITE_BLOCK_BYTES};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::file_step::FileStepHook;

/// Durability of a write, named (never a bare bool).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledged from memory; on the device within `flush_interval_ms`.
    #[default]
    Buffered,
    /// Acknowledged once on the device and flushed; concurrent writers share one flush.
    Sync,
}

impl std::str::FromStr for Durability {
    type Err = Error;
    fn from_str(s: &str) -> Result<Durability> {
        match s {
            "buffered" => Ok(Durability::Buffered),
            "sync" => Ok(Durability::Sync),
            other => Err(Error::Config(format!(
                "durability '{other}' is neither 'sync' nor 'buffered'"
            ))),
        }
    }
}

/// Where the store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceConfig {
    /// A preallocated file, created with `size_bytes` when missing.
    File { path: PathBuf, size_bytes: u64 },
    /// A raw block device (the whole device is the store's).
    BlockDevice { path: PathBuf },
    /// RAM only: nothing survives the process.
    Memory { size_bytes: u64 },
}

/// Store configuration. Build with the constructors or `..Config::default()`.
#[derive(Clone, Debug)]
pub struct Config {
    pub device: DeviceConfig,
    /// Write block size: 128 KiB to 8 MiB, a power of two.
    pub write_block_bytes: u32,
    /// Largest value accepted, in bytes.
    pub max_record_bytes: u32,
    pub durability: Durability,
    /// Upper bound on how long a buffered write stays only in memory.
    pub flush_interval_ms: u64,
    /// Recently written blocks kept in RAM to serve reads without a device I/O.
    pub post_write_cache_bytes: u64,
    /// Blocks whose live bytes fall under this percentage of the block are defragmented.
    pub defrag_lwm_pct: u8,
    /// Pause between two batches of defragmented blocks (throttle).
    pub defrag_pause_ms: u64,
    /// Scheduling niceness (Linux `nice`, 0 to 19) of the thread that defragments, so that
    /// it yields the CPU to foreground reads and writes when both want it. 0 = none.
    pub defrag_nice: u8,
    /// Largest single read or write of defragmentation, issued one at a time, so that a
    /// foreground read never waits behind a whole-block transfer (4 KiB multiples; 0 = whole
    /// blocks).
    pub defrag_io_bytes: u32,
    /// Writes fail with "device full" while free space is under this percentage.
    pub min_free_pct: u8,
    /// Eviction: above this percentage of blocks in use, the records closest to expiry (only
    /// records with a TTL) are deleted early until use is back under it. 0 = off (default).
    pub evict_high_water_pct: u8,
    /// Index checkpoint period; 0 = only on clean shutdown.
    pub checkpoint_interval_s: u64,
    /// Where the index checkpoint lives; `None` = next to a file device (`<path>.ckpt`), none
    /// for block devices and memory.
    pub checkpoint_path: Option<PathBuf>,
    /// Period of the background sweep that drops expired records from the index.
    pub expiry_sweep_interval_s: u64,
    /// Use io_uring (falls back to pread/pwrite when the kernel refuses it).
    pub io_uring: bool,
    /// O_DIRECT on files and devices.
    pub direct_io: bool,
    /// Expected record count, to presize the index.
    pub expected_records: usize,
    /// Pause between two background retention sweeps of feature history: each enforces the
    /// retention window and version count of every group with a history setting. 0 = none
    /// (`Store::compact_history` still runs one on demand).
    pub history_retention_interval_s: u64,
    /// History records one step of a retention sweep scans (1 to 100,000); the entities whose
    /// heads it finds are trimmed, one at a time under their lock.
    pub history_retention_batch: u32,
    /// Pause between two steps of a retention sweep (throttle).
    pub history_retention_pause_ms: u64,
    /// Keep live statistics of every feature on the write path (`Store::feature_stats`).
    pub feature_stats: bool,
    /// Period at which the feature statistics are saved to the store (they are also saved by
    /// `Store::close`); 0 = only on close and `Store::save_stats`. A crash loses at most the
    /// statistics of this period.
    pub stats_save_interval_s: u64,
    /// Start the background threads (flusher, defragmentation, expiry, checkpoint, history
    /// retention, statistics saving).
    pub background: bool,
    /// Told of each step of writing the checkpoint file (for fault injection in tests).
    pub file_step_hook: Option<FileStepHook>,
    /// The time expiry is judged by: the system clock, or a test's.
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            device: DeviceConfig::Memory {
                size_bytes: 64 << 20,
            },
            write_block_bytes: 1 << 20,
            max_record_bytes: 1 << 20,
            durability: Durability::Buffered,
            flush_interval_ms: 1000,
            post_write_cache_bytes: 64 << 20,
            defrag_lwm_pct: 50,
            defrag_pause_ms: 1,
            defrag_nice: 10,
            defrag_io_bytes: 64 << 10,
            min_free_pct: 5,
            evict_high_water_pct: 0,
            checkpoint_interval_s: 300,
            checkpoint_path: None,
            expiry_sweep_interval_s: 10,
            io_uring: true,
            direct_io: true,
            expected_records: 0,
            history_retention_interval_s: 60,
            history_retention_batch: 1024,
            feature_stats: true,
            stats_save_interval_s: 10,
            history_retention_pause_ms: 10,
            background: true,
            file_step_hook: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl Config {
    /// A store in a file, created with `size_bytes` when missing.
    pub fn file(path: impl Into<PathBuf>, size_bytes: u64) -> Config {
        Config {
            device: DeviceConfig::File {
                path: path.into(),
                size_bytes,
            },
            ..Config::default()
        }
    }

    /// A store on a raw block device.
    pub fn block_device(path: impl Into<PathBuf>) -> Config {
        Config {
            device: DeviceConfig::BlockDevice { path: path.into() },
            ..Config::default()
        }
    }

    /// A store in RAM.
    pub fn memory(size_bytes: u64) -> Config {
        Config {
            device: DeviceConfig::Memory { size_bytes },
            ..Config::default()
        }
    }

    /// Checks every field against its limit.
    pub fn validate(&self) -> Result<()> {
        let b = self.write_block_bytes;
        if !(MIN_WRITE_BLOCK_BYTES..=MAX_WRITE_BLOCK_BYTES).contains(&b) || !b.is_power_of_two() {
            return Err(Error::Config(format!(
                "write_block_bytes {b} must be a power of two from {MIN_WRITE_BLOCK_BYTES} to {MAX_WRITE_BLOCK_BYTES}"
            )));
        }
        let max_value = quiver_wal::format::MAX_RECORD_FRAME_BYTES;
        if self.max_record_bytes == 0 || self.max_record_bytes as usize > max_value {
            return Err(Error::Config(format!(
                "max_record_bytes {} must be from 1 to {max_value}",
                self.max_record_bytes
            )));
        }
        if !(1..=99).contains(&self.defrag_lwm_pct) {
            return Err(Error::Config(format!(
                "defrag_lwm_pct {} must be from 1 to 99",
                self.defrag_lwm_pct
            )));
        }
        if self.defrag_io_bytes != 0
            && (!self.defrag_io_bytes.is_multiple_of(4096) || self.defrag_io_bytes > b)
        {
            return Err(Error::Config(format!(
                "defrag_io_bytes {} must be 0 (whole blocks) or a multiple of 4096 up to write_block_bytes ({b})",
                self.defrag_io_bytes
            )));
        }
        if self.defrag_nice > 19 {
            return Err(Error::Config(format!(
                "defrag_nice {} must be from 0 to 19",
                self.defrag_nice
            )));
        }
        if self.min_free_pct > 50 {
            return Err(Error::Config(format!(
                "min_free_pct {} must be at most 50",
                self.min_free_pct
            )));
        }
        if self.evict_high_water_pct > 99 {
            return Err(Error::Config(format!(
                "evict_high_water_pct {} must be from 0 (off) to 99",
                self.evict_high_water_pct
            )));
        }
        let batch = self.history_retention_batch;
        if !(1..=crate::engine::MAX_SCAN_CHUNK as u32).contains(&batch) {
            return Err(Error::Config(format!(
                "history_retention_batch {batch} must be from 1 to {}",
                crate::engine::MAX_SCAN_CHUNK
            )));
        }
        if !(1..=60_000).contains(&self.flush_interval_ms) {
            return Err(Error::Config(format!(
                "flush_interval_ms {} must be from 1 to 60000",
                self.flush_interval_ms
            )));
        }
        Ok(())
    }

    pub(crate) fn checkpoint_file(&self) -> Option<PathBuf> {
        if let Some(p) = &self.checkpoint_path {
            return Some(p.clone());
        }
        match &self.device {
            DeviceConfig::File { path, .. } => {
                let mut s = path.clone().into_os_string();
                s.push(".ckpt");
                Some(PathBuf::from(s))
            }
            _ => None,
        }
    }
}

/// Options of one write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// `None`: the store's durability.
    pub durability: Option<Durability>,
    /// Time to live in seconds; `None` or 0 = never expires.
    pub ttl_s: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        Config::default().validate().expect("defaults validate");
    }

    /// Each out-of-range field is refused with an error that names it.
    #[test]
    fn bad_fields_are_named() {
        let cases: Vec<(&str, Config)> = vec![
            (
                "write_block_bytes",
                Config {
                    write_block_bytes: 3 << 20,
                    ..Config::default()
                },
            ),
            (
                "history_retention_batch",
                Config {
                    history_retention_batch: 0,
                    ..Config::default()
                },
            ),
            (
                "defrag_lwm_pct",
                Config {
                    defrag_lwm_pct: 0,
                    ..Config::default()
                },
            ),
            (
                "defrag_io_bytes",
                Config {
                    defrag_io_bytes: 5000,
                    ..Config::default()
                },
            ),
            (
                "defrag_io_bytes",
                Config {
                    defrag_io_bytes: 2 << 20,
                    ..Config::default()
                },
            ),
            (
                "defrag_nice",
                Config {
                    defrag_nice: 20,
                    ..Config::default()
                },
            ),
            (
                "min_free_pct",
                Config {
                    min_free_pct: 51,
                    ..Config::default()
                },
            ),
            (
                "flush_interval_ms",
                Config {
                    flush_interval_ms: 0,
                    ..Config::default()
                },
            ),
        ];
        for (field, config) in cases {
            let err = config.validate().expect_err(field).to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
        let whole_blocks = Config {
            defrag_io_bytes: 0,
            ..Config::default()
        };
        whole_blocks.validate().expect("0 = whole blocks");
    }
}
