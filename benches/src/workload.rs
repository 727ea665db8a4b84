//! The records, keys, timing loops and reports that Quiver's benchmarks share with their peers.
//!
//! This file is compiled into both `quiver-benches` (as `quiver_benches::workload`) and the
//! RocksDB crate in `benches/peers` (through `#[path]`), so the two sides of a comparison
//! write the same keys and values, choose keys the same way and report in the same format.
//! It depends only on `std`, `rand`, `hdrhistogram`, `serde_json` and `libc`.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Group id of the benchmark records in Quiver.
pub const GROUP: u32 = 1;
/// Length of every key: 16 hex digits.
pub const KEY_BYTES: usize = 16;
/// Most records any benchmark addresses.
pub const MAX_RECORDS: u64 = 1_000_000_000;
/// Largest value a benchmark writes (Quiver's default record limit).
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most threads a benchmark starts.
pub const MAX_THREADS: usize = 1024;

/// A bijection on u64 (SplitMix64's finalizer): distinct indexes give distinct keys, spread
/// uniformly over the key space, so sequential loads insert in random key order.
pub fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of record `i`.
pub fn key(i: u64) -> [u8; KEY_BYTES] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let m = mix(i);
    let mut k = [0u8; KEY_BYTES];
    for (n, b) in k.iter_mut().enumerate() {
        *b = HEX[((m >> (60 - 4 * n)) & 0xF) as usize];
    }
    k
}

/// Fills `out` with the value of record `i` in its `version`: incompressible bytes, so that
/// neither side gains from compression.
pub fn value(i: u64, version: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut s = mix(i ^ version.rotate_left(32));
    while out.len() < len {
        s = mix(s);
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&s.to_le_bytes()[..take]);
    }
}

/// Uniform random record indexes in `0..records`.
pub struct Uniform {
    rng: SmallRng,
    records: u64,
}

impl Uniform {
    pub fn new(seed: u64, records: u64) -> Uniform {
        Uniform {
            rng: SmallRng::seed_from_u64(mix(seed)),
            records: records.max(1),
        }
    }

    pub fn next_index(&mut self) -> u64 {
        self.rng.gen_range(0..self.records)
    }
}

/// A latency histogram in nanoseconds, 1 ns to 100 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("static histogram bounds are valid")
}

/// Records one latency, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = (d.as_nanos() as u64).clamp(1, h.high());
    h.saturating_record(ns);
}

/// What a timed phase did: operations, latencies, wall time.
pub struct Phase {
    pub ops: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
    pub elapsed: Duration,
}

impl Phase {
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn p_us(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Runs `threads` threads for `duration`. Each calls `op(thread, iteration)` in a loop; `op`
/// returns how many operations it did (0 counts as an error) and its latency is recorded.
pub fn run_timed<F>(threads: usize, duration: Duration, op: F) -> Phase
where
    F: Fn(usize, u64) -> u64 + Send + Sync,
{
    run_until(threads, duration, None, op)
}

/// [`run_timed`] that also ends as soon as `done` becomes true.
pub fn run_until<F>(threads: usize, duration: Duration, done: Option<&AtomicBool>, op: F) -> Phase
where
    F: Fn(usize, u64) -> u64 + Send + Sync,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let results: Vec<(u64, u64, Histogram<u64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.clamp(1, MAX_THREADS))
            .map(|t| {
                let stop = stop.clone();
                let op = &op;
                s.spawn(move || {
                    let mut h = histogram();
                    let (mut ops, mut errors, mut it) = (0u64, 0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let n = op(t, it);
                        record(&mut h, t0.elapsed());
                        it += 1;
                        if n == 0 {
                            errors += 1;
                        }
                        ops += n;
                    }
                    (ops, errors, h)
                })
            })
            .collect();
        while start.elapsed() < duration && !done.is_some_and(|d| d.load(Ordering::Relaxed)) {
            std::thread::sleep(Duration::from_millis(5).min(duration));
        }
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread panicked"))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut phase = Phase {
        ops: 0,
        errors: 0,
        hist: histogram(),
        elapsed,
    };
    for (ops, errors, h) in results {
        phase.ops += ops;
        phase.errors += errors;
        phase.hist.add(&h).expect("histograms share their bounds");
    }
    phase
}

/// The device's flush rate: a loop of 4 KiB pwrite + fdatasync on a file in `dir` for
/// `duration`. Returns the phase (one op per pwrite + fdatasync); the file is removed.
pub fn fsync_loop(dir: &Path, duration: Duration) -> std::io::Result<Phase> {
    use std::os::unix::fs::FileExt;
    let path = dir.join(format!("fsync-probe-{}.dat", std::process::id()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let block = vec![0xA5u8; 4096];
    let mut h = histogram();
    let start = Instant::now();
    let mut ops = 0u64;
    let mut result = Ok(());
    while start.elapsed() < duration {
        let t0 = Instant::now();
        if let Err(e) = file
            .write_all_at(&block, (ops % 256) * 4096)
            .and_then(|()| file.sync_data())
        {
            result = Err(e);
            break;
        }
        record(&mut h, t0.elapsed());
        ops += 1;
    }
    let elapsed = start.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    result.map(|()| Phase {
        ops,
        errors: 0,
        hist: h,
        elapsed,
    })
}

/// Resident set size of this process, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no memory-safety preconditions; it only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

/// Median of a list (the middle one, or the mean of the two middle ones); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One benchmark's results: named parameters and named figures.
pub struct Report {
    pub system: String,
    pub bench: String,
    pub params: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
}

impl Report {
    pub fn new(system: &str, bench: &str) -> Report {
        Report {
            system: system.to_string(),
            bench: bench.to_string(),
            params: BTreeMap::new(),
            metrics: BTreeMap::new(),
        }
    }

    pub fn param(&mut self, name: &str, value: impl ToString) -> &mut Report {
        self.params.insert(name.to_string(), value.to_string());
        self
    }

    pub fn metric(&mut self, name: &str, value: f64) -> &mut Report {
        eprintln!(
            "  {:<10} {:<8} {name:<32} {value:.3}",
            self.system, self.bench
        );
        self.metrics.insert(name.to_string(), value);
        self
    }

    /// Adds `<prefix>_ops_s`, `<prefix>_p50_us`, `<prefix>_p99_us` and `<prefix>_errors`.
    pub fn phase(&mut self, prefix: &str, p: &Phase) -> &mut Report {
        self.metric(&format!("{prefix}_ops_s"), p.ops_per_s());
        self.metric(&format!("{prefix}_p50_us"), p.p_us(0.50));
        self.metric(&format!("{prefix}_p99_us"), p.p_us(0.99));
        self.metric(&format!("{prefix}_errors"), p.errors as f64)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "system": self.system,
            "bench": self.bench,
            "params": self.params,
            "metrics": self.metrics,
        })
    }

    /// Prints the JSON on stdout; with `out`, also writes `<out>/<system>-<bench>-<unix ms>.json`
    /// and appends `system,bench,metric,value` rows to `<out>/results.csv`.
    pub fn emit(&self, out: Option<&Path>) -> std::io::Result<Option<PathBuf>> {
        let json = self.to_json();
        println!("{json}");
        let Some(dir) = out else { return Ok(None) };
        std::fs::create_dir_all(dir)?;
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let path = dir.join(format!("{}-{}-{ms}.json", self.system, self.bench));
        std::fs::write(&path, serde_json::to_vec_pretty(&json)?)?;
        let csv = dir.join("results.csv");
        let fresh = !csv.exists();
        let mut f = OpenOptions::new().create(true).append(true).open(&csv)?;
        if fresh {
            writeln!(f, "system,bench,metric,value")?;
        }
        for (name, value) in &self.metrics {
            writeln!(f, "{},{},{name},{value}", self.system, self.bench)?;
        }
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_fixed_length() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000u64 {
            assert!(seen.insert(key(i)), "key {i} repeated");
        }
        assert!(key(7).iter().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn values_depend_on_index_and_version() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        value(1, 0, 600, &mut a);
        value(2, 0, 600, &mut b);
        value(1, 1, 600, &mut c);
        assert_eq!(a.len(), 600);
        assert_ne!(a, b);
        assert_ne!(a, c);
        let mut again = Vec::new();
        value(1, 0, 600, &mut again);
        assert_eq!(a, again);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn uniform_stays_in_range() {
        let mut u = Uniform::new(9, 10);
        assert!((0..1000).all(|_| u.next_index() < 10));
    }
}
