//! Measures the index at 10 million records: RAM per record (as the index counts it and as the
//! process RSS sees it), insert rate, and lookup rates for single gets and batches.
//!
//! `cargo run --release -p quiver-index --example index_ram [records] [--presized]`

use std::time::Instant;

use quiver_index::{digest, Digest, Entry, Index, Location};

const DEFAULT_RECORDS: u64 = 10_000_000;
const LOOKUPS: usize = 2_000_000;

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
    let start = Instant::now();
    for i in 0..records {
        index.insert(key(i), entry(i));
    }
    let insert_s = start.elapsed().as_secs_f64();
    let rss_delta = rss_bytes().saturating_sub(rss_before);
    assert_eq!(index.len() as u64, records);

    let n = records as f64;
    println!(
        "records            {records} ({})",
        if presized { "with_capacity" } else { "new" }
    );
    println!(
        "memory_bytes       {} ({:.2} bytes/record)",
        index.memory_bytes(),
        index.memory_bytes() as f64 / n
    );
    println!(
        "RSS delta          {rss_delta} ({:.2} bytes/record)",
        rss_delta as f64 / n
    );
    println!("insert             {:.2} M/s", n / insert_s / 1e6);

    // Random keys spread over the whole index, hashed before the clock starts.
    let ds: Vec<Digest> = (0..LOOKUPS as u64)
        .map(|j| key(j.wrapping_mul(2_654_435_761) % records))
        .collect();
    let start = Instant::now();
    let hits = ds.iter().filter(|d| index.get(**d).is_some()).count();
    report("get", start, hits);
    for batch in [16, 100] {
        let mut out = Vec::with_capacity(batch);
        let start = Instant::now();
        let mut hits = 0;
        for group in ds.chunks(batch) {
            index.get_many(group, &mut out);
            hits += out.iter().filter(|e| e.is_some()).count();
        }
        report(&format!("get_many({batch})"), start, hits);
    }
}

fn report(what: &str, start: Instant, hits: usize) {
    let s = start.elapsed().as_secs_f64();
    assert_eq!(hits, LOOKUPS, "{what}: every key was inserted");
    println!(
        "{what:<18} {:.2} M lookups/s ({:.0} ns each)",
        LOOKUPS as f64 / s / 1e6,
        s * 1e9 / LOOKUPS as f64
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
