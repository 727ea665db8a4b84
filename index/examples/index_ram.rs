//! Measures the index at 10 million records: RAM per record (as the index counts it and as the
//! process RSS sees it), insert rate, and lookup rates for single gets and batches.
//!
//! `cargo run --release -p quiver-index --example index_ram [records] [--presized]`
//!
//! Rates are given per second of this thread's CPU time and, in brackets, of wall time: on a
//! shared machine the CPU-time figure is the one other work disturbs least.

use std::time::Instant;

use quiver_index::{digest, Digest, Entry, Index, Location};

const DEFAULT_RECORDS: u64 = 10_000_000;
const LOOKUPS: usize = 2_000_000;
const ROUNDS: usize = 3;

fn main() {
    let mut records = DEFAULT_RECORDS;
    let mut presized = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--presized" => presized = true,
            n => records = n.parse().expect("records must be a number"),
        }
    }
    let rss_before = rss_bytes();
    let index = if presized {
        Index::with_capacity(records as usize)
    } else {
        Index::new()
    };
    let clock = Clock::start();
    for i in 0..records {
        index.insert(key(i), entry(i));
    }
    let (insert_cpu_s, insert_wall_s) = clock.elapsed_s();
    let rss_delta = rss_bytes().saturating_sub(rss_before);
    assert_eq!(index.len() as u64, records);

    let n = records as f64;
    let memory = index.memory_bytes();
    println!(
        "records            {records} ({})",
        if presized { "with_capacity" } else { "new" }
    );
    println!(
        "memory_bytes       {memory} ({:.2} bytes/record)",
        memory as f64 / n
    );
    println!(
        "RSS delta          {rss_delta} ({:.2} bytes/record)",
        rss_delta as f64 / n
    );
    println!(
        "insert             {:.2} M/s [wall {:.2} M/s]",
        n / insert_cpu_s / 1e6,
        n / insert_wall_s / 1e6
    );

    // Random keys spread over the whole index, hashed before the clock starts.
    let ds: Vec<Digest> = (0..LOOKUPS as u64)
        .map(|j| key(j.wrapping_mul(2_654_435_761) % records))
        .collect();
    best_of("get", || {
        ds.iter().filter(|d| index.get(**d).is_some()).count()
    });
    for batch in [16, 100] {
        let mut out = Vec::with_capacity(batch);
        best_of(&format!("get_many({batch})"), || {
            let mut hits = 0;
            for group in ds.chunks(batch) {
                index.get_many(group, &mut out);
                hits += out.iter().filter(|e| e.is_some()).count();
            }
            hits
        });
    }
}

/// Runs `lookups` a few times and reports the fastest run: the machine is shared, and the
/// fastest run is the one least disturbed by other work.
fn best_of(what: &str, mut lookups: impl FnMut() -> usize) {
    let (mut cpu_s, mut wall_s) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        let clock = Clock::start();
        let hits = lookups();
        let (cpu, wall) = clock.elapsed_s();
        (cpu_s, wall_s) = (cpu_s.min(cpu), wall_s.min(wall));
        assert_eq!(hits, LOOKUPS, "{what}: every key was inserted");
    }
    let n = LOOKUPS as f64;
    println!(
        "{what:<18} {:.2} M lookups/s ({:.0} ns each) [wall {:.2} M/s]",
        n / cpu_s / 1e6,
        cpu_s * 1e9 / n,
        n / wall_s / 1e6
    );
}

fn key(i: u64) -> Digest {
    digest(0, &i.to_le_bytes())
}

fn entry(i: u64) -> Entry {
    let loc = Location::new(
        (i >> 16) as u32 & Location::MAX_BLOCK,
        (i & 0xffff) as u32,
        40,
    )
    .unwrap();
    Entry {
        loc,
        generation: 1,
        expiry_s: 0,
        last_update_s: 1_700_000_000,
    }
}

/// Wall time and this thread's CPU time since a start.
struct Clock {
    wall: Instant,
    cpu_s: f64,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu_s: thread_cpu_s(),
        }
    }

    /// (CPU seconds, wall seconds) since the start.
    fn elapsed_s(&self) -> (f64, f64) {
        (
            thread_cpu_s() - self.cpu_s,
            self.wall.elapsed().as_secs_f64(),
        )
    }
}

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Resident set size of this process, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm has a resident field");
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as u64
}
