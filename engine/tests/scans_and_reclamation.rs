//! A steady scan must not stop reclamation: while space is short, defragmentation moves
//! records under scans in progress, and those scans still return every record exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_engine::{Config, Engine, Error, ScanCursor, WriteOptions};

const KEYS: u32 = 1800;

fn config() -> Config {
    Config {
        write_block_bytes: 128 << 10,
        post_write_cache_bytes: 0,
        defrag_pause_ms: 0,
        checkpoint_interval_s: 0,
        background: false,
        ..Config::memory(4 << 20)
    }
}

fn value(i: u32, version: u32) -> Vec<u8> {
    let mut v = vec![version as u8; 1000];
    v[..4].copy_from_slice(&i.to_le_bytes());
    v[4..8].copy_from_slice(&version.to_le_bytes());
    v
}

/// 15 blocks of records, then every other key again: about 22 of 31 blocks used, so space
/// is short (under the low-water mark) and the first blocks are half dead.
fn half_dead_store(e: &Engine) -> Vec<u32> {
    let w = WriteOptions::default();
    let mut versions = vec![1; KEYS as usize];
    for i in 0..KEYS {
        e.put(1, &i.to_le_bytes(), &value(i, 1), &w).unwrap();
    }
    for i in (0..KEYS).step_by(2) {
        e.put(1, &i.to_le_bytes(), &value(i, 2), &w).unwrap();
        versions[i as usize] = 2;
    }
    e.flush().unwrap();
    versions
}

/// Scans group 1 from `cursor` to the end, counting each key.
fn scan_rest(e: &Engine, mut cursor: ScanCursor, seen: &mut HashMap<u32, (u32, Vec<u8>)>) {
    loop {
        let chunk = e.scan(1, cursor, 300).unwrap();
        for (_, r) in chunk.records {
            let key = u32::from_le_bytes(r.key.try_into().unwrap());
            seen.entry(key).or_insert((0, r.value)).0 += 1;
        }
        match chunk.next {
            Some(next) => cursor = next,
            None => return,
        }
    }
}

#[test]
fn low_space_defragments_under_a_scan_that_still_sees_each_record_once() {
    let e = Engine::open(config()).unwrap();
    let versions = half_dead_store(&e);
    let mut seen = HashMap::new();
    // The scan is part-way through when defragmentation runs.
    let first = e.scan(1, ScanCursor::START, 700).unwrap();
    for (_, r) in first.records {
        let key = u32::from_le_bytes(r.key.try_into().unwrap());
        seen.entry(key).or_insert((0, r.value)).0 += 1;
    }
    let freed = e.defragment(usize::MAX).unwrap();
    assert!(
        freed > 0,
        "a scan in progress stopped defragmentation while space was short"
    );
    assert!(e.stats().defrag_records_moved > 0);
    scan_rest(&e, first.next.expect("more to scan"), &mut seen);
    for i in 0..KEYS {
        match seen.get(&i) {
            Some((1, v)) => assert_eq!(*v, value(i, versions[i as usize]), "key {i}"),
            Some((n, _)) => panic!("key {i} returned {n} times"),
            None => panic!("key {i} missed by a scan spanning defragmentation"),
        }
    }
    assert_eq!(seen.len(), KEYS as usize);
}

/// A periodic exporter scans the group over and over while writers overwrite it on a small
/// device; overwrites must keep getting space (defragmentation must not wait for the scans).
#[test]
fn overwrites_beside_a_steady_scanner_do_not_end_in_device_full() {
    let e = Arc::new(
        Engine::open(Config {
            background: true,
            ..config()
        })
        .unwrap(),
    );
    half_dead_store(&e);
    let stop = Arc::new(AtomicBool::new(false));
    let scanner = {
        let (e, stop) = (Arc::clone(&e), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut scans = 0u32;
            while !stop.load(Ordering::Acquire) {
                let mut seen = HashMap::new();
                scan_rest(&e, ScanCursor::START, &mut seen);
                scans += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            scans
        })
    };
    // Four more rounds over every key: several times the free space.
    let deadline = Instant::now() + Duration::from_secs(60);
    let w = WriteOptions::default();
    for round in 3..7u32 {
        for i in 0..KEYS {
            loop {
                match e.put(1, &i.to_le_bytes(), &value(i, round), &w) {
                    Ok(_) => break,
                    Err(Error::DeviceFull { .. }) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(other) => {
                        panic!("round {round}, key {i}: {other} (scans hold off reclamation)")
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Release);
    assert!(scanner.join().unwrap() > 0);
    for i in (0..KEYS).step_by(97) {
        assert_eq!(
            e.get(1, &i.to_le_bytes()).unwrap().unwrap().value,
            value(i, 6)
        );
    }
}
