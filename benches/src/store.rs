//! Building, loading and reopening the file stores that `quiver-perf` measures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quiver_engine::{Config, Durability, Engine, Error as EngineError, WriteOptions};
use quiver_wal::format::{padded_frame_len, RECORD_HEADER_BYTES};

use crate::workload::{self, GROUP, KEY_BYTES, MAX_RECORDS, MAX_THREADS, MAX_VALUE_BYTES};

/// Longest a writer waits in total for defragmentation to free space before it gives up.
pub const MAX_FULL_WAIT: Duration = Duration::from_secs(30);

/// What can go wrong in a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error("{what} is {value}, outside the limit of {min} to {max}")]
    Limit {
        what: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("check failed: {0}")]
    Check(String),
}

pub type Result<T> = std::result::Result<T, PerfError>;

/// Checks `value` against `min..=max`, naming it in the error.
pub fn check_range(what: &'static str, value: f64, min: f64, max: f64) -> Result<()> {
    if value.is_nan() || value < min || value > max {
        return Err(PerfError::Limit {
            what,
            value,
            min,
            max,
        });
    }
    Ok(())
}

/// Checks a thread count against 1..=[`crate::workload::MAX_THREADS`].
pub fn check_threads(what: &'static str, n: usize) -> Result<()> {
    check_range(what, n as f64, 1.0, crate::workload::MAX_THREADS as f64)
}

pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PerfError + '_ {
    move |source| PerfError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes one benchmark record takes in a write block.
pub fn frame_bytes(value_bytes: usize) -> u64 {
    padded_frame_len(RECORD_HEADER_BYTES + KEY_BYTES + value_bytes) as u64
}

/// A file store to open.
#[derive(Clone, Debug)]
pub struct StoreSpec {
    pub path: PathBuf,
    pub device_bytes: u64,
    pub write_block_bytes: u32,
    pub post_write_cache_bytes: u64,
    pub expected_records: usize,
    pub background: bool,
    pub durability: Durability,
}

impl StoreSpec {
    /// A store at `path` with the post-write cache off (every read goes to the device).
    pub fn new(path: PathBuf, device_bytes: u64) -> StoreSpec {
        StoreSpec {
            path,
            device_bytes,
            write_block_bytes: 1 << 20,
            post_write_cache_bytes: 0,
            expected_records: 0,
            background: true,
            durability: Durability::Buffered,
        }
    }

    pub fn config(&self) -> Config {
        Config {
            write_block_bytes: self.write_block_bytes,
            post_write_cache_bytes: self.post_write_cache_bytes,
            expected_records: self.expected_records,
            background: self.background,
            durability: self.durability,
            ..Config::file(self.path.clone(), self.device_bytes)
        }
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(".ckpt");
        PathBuf::from(s)
    }

    pub fn open(&self) -> Result<Engine> {
        Ok(Engine::open(self.config())?)
    }

    /// Removes the store file and its checkpoint.
    pub fn remove(&self) -> Result<()> {
        for p in [self.path.clone(), self.checkpoint_path()] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&p)(e)),
            }
        }
        Ok(())
    }
}

/// Checks the common size flags of a run.
pub fn check_workload(records: u64, value_bytes: usize) -> Result<()> {
    check_range("records", records as f64, 1.0, MAX_RECORDS as f64)?;
    check_range(
        "value bytes",
        value_bytes as f64,
        1.0,
        MAX_VALUE_BYTES as f64,
    )
}

/// Opens the store at `spec`, reusing it when it already holds exactly records `0..records`
/// with `value_bytes` values (checked on a sample); otherwise recreates and loads it.
/// Returns the engine and the load time (zero when reused).
pub fn open_loaded(
    spec: &StoreSpec,
    records: u64,
    value_bytes: usize,
    threads: usize,
) -> Result<(Engine, Duration)> {
    check_workload(records, value_bytes)?;
    if spec.path.exists() {
        let engine = spec.open()?;
        if holds(&engine, records, value_bytes)? {
            return Ok((engine, Duration::ZERO));
        }
        engine.close()?;
        spec.remove()?;
    }
    if let Some(dir) = spec.path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let engine = spec.open()?;
    let t0 = Instant::now();
    load(&engine, records, value_bytes, threads)?;
    engine.flush()?;
    Ok((engine, t0.elapsed()))
}

fn holds(engine: &Engine, records: u64, value_bytes: usize) -> Result<bool> {
    if engine.stats().records != records {
        return Ok(false);
    }
    let step = (records / 64).max(1);
    for i in (0..records).step_by(step as usize) {
        match engine.get(GROUP, &workload::key(i))? {
            Some(r) if r.value.len() == value_bytes => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Writes records `0..records` (version 0) from `threads` threads, buffered.
pub fn load(engine: &Engine, records: u64, value_bytes: usize, threads: usize) -> Result<()> {
    check_range("load threads", threads as f64, 1.0, MAX_THREADS as f64)?;
    let next = AtomicU64::new(0);
    let progress = AtomicU64::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut v = Vec::with_capacity(value_bytes);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= records {
                            return Ok(());
                        }
                        workload::value(i, 0, value_bytes, &mut v);
                        put_waiting(engine, &workload::key(i), &v, &WriteOptions::default())?;
                        let done = progress.fetch_add(1, Ordering::Relaxed) + 1;
                        if done.is_multiple_of(1_000_000) {
                            eprintln!(
                                "  loaded {done} of {records} in {:.1} s",
                                t0.elapsed().as_secs_f64()
                            );
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("load thread panicked"))
            .collect::<Result<Vec<()>>>()
    })?;
    Ok(())
}

/// A put that waits (up to [`MAX_FULL_WAIT`]) while the device is full for defragmentation
/// to free space. Returns how long it waited.
pub fn put_waiting(
    engine: &Engine,
    key: &[u8],
    value: &[u8],
    opts: &WriteOptions,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        match engine.put(GROUP, key, value, opts) {
            Ok(_) => return Ok(start.elapsed()),
            Err(EngineError::DeviceFull { .. }) if start.elapsed() < MAX_FULL_WAIT => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Drops a file's pages from the page cache, so that the next read of it comes from the
/// device (best effort: a missing file is fine).
pub fn evict_page_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = std::fs::File::open(path) {
        // SAFETY: `f` is an open descriptor for the whole call; fadvise only drops clean
        // cached pages of that file and touches no memory of ours.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopens_a_loaded_store_and_reloads_a_different_one() {
        let dir = tempfile::tempdir().unwrap();
        let spec = StoreSpec::new(dir.path().join("t.db"), 32 << 20);
        let spec = StoreSpec {
            write_block_bytes: 128 << 10,
            ..spec
        };
        let (e, took) = open_loaded(&spec, 2000, 100, 2).unwrap();
        assert!(took > Duration::ZERO);
        e.close().unwrap();
        let (e, took) = open_loaded(&spec, 2000, 100, 2).unwrap();
        assert_eq!(took, Duration::ZERO, "an identical store is reused");
        e.close().unwrap();
        let (e, took) = open_loaded(&spec, 1500, 64, 1).unwrap();
        assert!(took > Duration::ZERO, "a different workload reloads");
        assert_eq!(e.stats().records, 1500);
        assert_eq!(
            e.get(GROUP, &workload::key(3))
                .unwrap()
                .unwrap()
                .value
                .len(),
            64
        );
        e.close().unwrap();
    }

    #[test]
    fn limits_are_named() {
        let err = check_workload(0, 600).unwrap_err().to_string();
        assert!(err.contains("records is 0"), "{err}");
        let err = check_workload(10, MAX_VALUE_BYTES + 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("value bytes"), "{err}");
    }
}
