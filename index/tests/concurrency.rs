//! Several threads on disjoint and on shared keys; the final state must be the one the
//! operations imply, whatever the interleaving.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use quiver_index::{digest, identity, Digest, Entry, Index, Location};

const THREADS: u32 = 4;

fn key(n: u32) -> Digest {
    digest(7, &n.to_le_bytes())
}

fn loc(block: u32, offset_units: u32) -> Location {
    Location::new(block, offset_units, 1).unwrap()
}

fn entry(l: Location) -> Entry {
    Entry {
        loc: l,
        generation: 1,
        expiry_s: 0,
        last_update_s: 0,
    }
}

/// What thread-owned key `n` holds at the end of `disjoint_keys`, if anything.
fn disjoint_final(n: u32) -> Option<Entry> {
    if n % 5 == 0 || n % 3 == 0 {
        return None;
    }
    Some(entry(loc(n, u32::from(n % 2 == 0))))
}

#[test]
fn disjoint_keys() {
    const PER_THREAD: u32 = 20_000;
    let index = Index::new();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let index = &index;
            s.spawn(move || {
                let keys = t * PER_THREAD..(t + 1) * PER_THREAD;
                for n in keys.clone() {
                    assert_eq!(index.insert(key(n), entry(loc(n, 0))), None);
                }
                for n in keys.clone().filter(|n| n % 2 == 0) {
                    assert!(index.relocate(key(n), loc(n, 0), loc(n, 1)));
                }
                for n in keys.clone().filter(|n| n % 3 == 0) {
                    let at = loc(n, u32::from(n % 2 == 0));
                    assert_eq!(index.remove_if_at(key(n), at).map(|e| e.loc), Some(at));
                }
                for n in keys.filter(|n| n % 5 == 0) {
                    index.remove(key(n));
                }
            });
        }
    });
    let all = 0..THREADS * PER_THREAD;
    let expected: HashMap<Digest, Entry> = all
        .clone()
        .filter_map(|n| disjoint_final(n).map(|e| (identity(key(n)), e)))
        .collect();
    for n in all {
        assert_eq!(index.get(key(n)), disjoint_final(n), "key {n}");
    }
    let mut seen = HashMap::new();
    index.for_each(|d, e| {
        seen.insert(d, e);
    });
    assert_eq!(index.len(), expected.len());
    assert_eq!(seen, expected);
}

#[test]
fn shared_keys_with_compare_and_set_and_batch_readers() {
    const KEYS: u32 = 2_000;
    const STEPS: u32 = 25;
    let index = Index::new();
    for n in 0..KEYS {
        index.insert(key(n), entry(loc(n, 0)));
    }
    let writing = AtomicBool::new(true);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let index = &index;
                s.spawn(move || {
                    for step in 0..STEPS {
                        for n in (0..KEYS).map(|i| (i + t * 97 + step) % KEYS) {
                            advance(index, n);
                        }
                    }
                })
            })
            .collect();
        s.spawn(|| read_until_done(&index, &writing, KEYS));
        for w in writers {
            w.join().unwrap();
        }
        writing.store(false, Ordering::Relaxed);
    });
    for n in 0..KEYS {
        assert_eq!(
            index.get(key(n)),
            Some(entry(loc(n, THREADS * STEPS))),
            "key {n}"
        );
    }
    assert_eq!(index.len(), KEYS as usize);
}

/// Moves key `n` one unit forward with compare-and-set, retrying until it wins.
fn advance(index: &Index, n: u32) {
    loop {
        let current = index
            .get(key(n))
            .expect("shared keys are never removed")
            .loc;
        let next = loc(current.block, current.offset_units + 1);
        if index.relocate(key(n), current, next) {
            return;
        }
    }
}

/// Batch-reads every key while writers run: each key keeps its block and only moves forward.
fn read_until_done(index: &Index, writing: &AtomicBool, keys: u32) {
    let ds: Vec<Digest> = (0..keys).map(key).collect();
    let mut last_offset = vec![0u32; keys as usize];
    let mut out = Vec::new();
    while writing.load(Ordering::Relaxed) {
        index.get_many(&ds, &mut out);
        for (n, got) in out.iter().enumerate() {
            let got = got.expect("shared keys are never removed").loc;
            assert_eq!(got.block, n as u32);
            assert!(
                got.offset_units >= last_offset[n],
                "key {n} moved backwards"
            );
            last_offset[n] = got.offset_units;
        }
    }
}

#[test]
fn churn_on_shared_keys_ends_empty() {
    const KEYS: u32 = 500;
    const ROUNDS: u32 = 40;
    let index = Index::new();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let index = &index;
            s.spawn(move || {
                for round in 0..ROUNDS {
                    for n in 0..KEYS {
                        let own = loc(t, n);
                        index.insert(key(n), entry(own));
                        if (n + round) % 4 == t % 4 {
                            index.get_many(&[key(n), key((n + 1) % KEYS)], &mut Vec::new());
                        }
                        index.remove_if_at(key(n), own);
                    }
                }
            });
        }
    });
    // Each thread's last act on a key removes its own insert unless a later insert replaced
    // it, and that later insert's own thread removes it in turn: nothing can survive.
    assert!(index.is_empty(), "{} entries survived", index.len());
    let mut count = 0;
    index.for_each(|_, _| count += 1);
    assert_eq!(count, 0);
}
