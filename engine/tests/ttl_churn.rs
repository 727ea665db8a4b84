//! A TTL-churning workload next to one long-lived cold block must reach a steady state of
//! used space: the dead markers that expiry leaves (kept while an older version of their key
//! may exist) are dropped once none can, and blocks of such markers get defragmented.
//!
//! Short in CI; `QUIVER_TTL_CHURN_SECS=N` runs it for N seconds (`scripts/ttl-churn.sh`).

use std::time::{Duration, Instant};

use quiver_engine::{Config, Engine, Error, WriteOptions};

const DEVICE_BYTES: u64 = 8 << 20;
const BLOCK_BYTES: u32 = 128 << 10;
/// Churned puts per second (each with a 1-second TTL, a new key each time).
const PUTS_PER_S: u64 = 5_000;
const VALUE_BYTES: usize = 48;
const DEFAULT_SECS: u64 = 7;

fn churn_secs() -> u64 {
    match std::env::var("QUIVER_TTL_CHURN_SECS") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("QUIVER_TTL_CHURN_SECS must be whole seconds, got {s:?}")),
        Err(_) => DEFAULT_SECS,
    }
}

#[test]
fn ttl_churn_with_a_cold_block_reaches_a_steady_state() {
    let secs = churn_secs().max(DEFAULT_SECS);
    let e = Engine::open(Config {
        write_block_bytes: BLOCK_BYTES,
        post_write_cache_bytes: 0,
        defrag_pause_ms: 0,
        checkpoint_interval_s: 0,
        background: false,
        ..Config::memory(DEVICE_BYTES)
    })
    .unwrap();
    // The cold block: records written first, never touched again.
    let cold = WriteOptions::default();
    for i in 0..50u32 {
        e.put(1, &i.to_le_bytes(), &[7u8; 1000], &cold).unwrap();
    }
    e.flush().unwrap();
    let ttl = WriteOptions {
        ttl_s: Some(1),
        ..WriteOptions::default()
    };
    let start = Instant::now();
    let mut written = 0u64;
    // Blocks in use, the most seen in each second.
    let mut peak_per_s = vec![0u64; secs as usize];
    while start.elapsed() < Duration::from_secs(secs) {
        let due = (start.elapsed().as_millis() as u64 * PUTS_PER_S / 1000).min(written + 2_000);
        while written < due {
            match e.put(2, &written.to_le_bytes(), &[1u8; VALUE_BYTES], &ttl) {
                Ok(_) => written += 1,
                Err(Error::DeviceFull { .. }) => {
                    let s = e.stats();
                    panic!(
                        "device full after {:.1} s: {} blocks used of {}, {} markers kept, {} dropped",
                        start.elapsed().as_secs_f64(),
                        s.blocks_used,
                        s.blocks_total,
                        s.tombstones_kept,
                        s.tombstones_dropped
                    );
                }
                Err(other) => panic!("{other}"),
            }
        }
        e.sweep_expired();
        e.defragment(usize::MAX).unwrap();
        let second = (start.elapsed().as_secs() as usize).min(peak_per_s.len() - 1);
        peak_per_s[second] = peak_per_s[second].max(e.stats().blocks_used);
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = e.stats();
    eprintln!(
        "ttl churn: {written} puts in {secs} s; blocks used, peak per second: {peak_per_s:?} of {}; \
         {} markers kept, {} dropped; {} blocks freed, {} bytes moved",
        s.blocks_total, s.tombstones_kept, s.tombstones_dropped, s.defrag_blocks_freed, s.defrag_bytes_moved
    );
    // Steady state: after the first records expire (2-3 s), the peak use of the last second
    // is no higher than the peak of the second after warm-up, give or take two blocks.
    let settled = peak_per_s[3];
    let last = *peak_per_s.last().unwrap();
    assert!(
        last <= settled + 2,
        "used space keeps growing: {settled} blocks at 3 s, {last} at the end ({peak_per_s:?})"
    );
    for i in 0..50u32 {
        assert_eq!(
            e.get(1, &i.to_le_bytes()).unwrap().unwrap().value,
            [7u8; 1000]
        );
    }
}
