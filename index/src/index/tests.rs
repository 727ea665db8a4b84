use super::*;
use crate::digest::{digest, identity, PARTITION_BITS, STORED_BITS};

fn entry(n: u32) -> Entry {
    Entry {
        loc: Location::new(n % (Location::MAX_BLOCK + 1), n % 1000, 1 + n % 7).unwrap(),
        generation: n as u16,
        expiry_s: n.wrapping_mul(3),
        last_update_s: n.wrapping_mul(5),
    }
}

fn key(n: u64) -> Digest {
    digest(1, &n.to_le_bytes())
}

/// A digest in partition `partition` whose stored bits are `lo` and `hi`.
fn in_partition(partition: u128, lo: u64, hi: u16) -> Digest {
    (partition << (128 - PARTITION_BITS)) | (u128::from(hi) << 64) | u128::from(lo)
}

#[test]
fn index_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Index>();
}

#[test]
fn insert_get_upsert_remove() {
    let index = Index::new();
    assert!(index.is_empty());
    assert_eq!(index.get(key(1)), None);
    assert_eq!(index.insert(key(1), entry(10)), None);
    assert_eq!(index.get(key(1)), Some(entry(10)));
    assert_eq!(index.insert(key(1), entry(11)), Some(entry(10)));
    assert_eq!(index.get(key(1)), Some(entry(11)));
    assert_eq!(index.len(), 1);
    assert_eq!(index.remove(key(2)), None);
    assert_eq!(index.remove(key(1)), Some(entry(11)));
    assert_eq!(index.remove(key(1)), None);
    assert_eq!(index.get(key(1)), None);
    assert!(index.is_empty());
    index.check();
}

#[test]
fn relocate_is_a_compare_and_set() {
    let index = Index::new();
    let (a, b, c) = (entry(1).loc, entry(2).loc, entry(3).loc);
    assert!(!index.relocate(key(1), a, b), "relocating a missing entry");
    index.insert(key(1), entry(1));
    assert!(!index.relocate(key(1), b, c), "stale expected location");
    assert_eq!(index.get(key(1)), Some(entry(1)));
    assert!(index.relocate(key(1), a, b));
    assert_eq!(index.get(key(1)), Some(Entry { loc: b, ..entry(1) }));
}

#[test]
fn remove_if_at_only_removes_at_the_expected_location() {
    let index = Index::new();
    index.insert(key(1), entry(1));
    assert_eq!(index.remove_if_at(key(1), entry(2).loc), None);
    assert_eq!(index.len(), 1);
    assert_eq!(index.remove_if_at(key(1), entry(1).loc), Some(entry(1)));
    assert_eq!(index.remove_if_at(key(1), entry(1).loc), None);
    assert!(index.is_empty());
}

#[test]
fn one_crowded_partition_grows_and_keeps_every_entry() {
    let index = Index::new();
    let n = 20_000u64;
    for i in 0..n {
        let d = in_partition(7, key(i) as u64, i as u16);
        assert_eq!(index.insert(d, entry(i as u32)), None);
    }
    index.check();
    assert!(index.partitions[7].table.read().bucket_count() >= (n as usize) / 2);
    for i in 0..n {
        let d = in_partition(7, key(i) as u64, i as u16);
        assert_eq!(index.get(d), Some(entry(i as u32)));
    }
    for i in (0..n).step_by(3) {
        assert!(index
            .remove(in_partition(7, key(i) as u64, i as u16))
            .is_some());
    }
    index.check();
    assert_eq!(index.len(), (n - n.div_ceil(3)) as usize);
}

#[test]
fn digests_sharing_a_bucket_chain_stay_apart() {
    let index = Index::new();
    // Same low 64 bits, so the same bucket at every table size; only digest_hi differs.
    for hi in 0..100u16 {
        index.insert(in_partition(3, 42, hi), entry(u32::from(hi)));
    }
    index.check();
    for hi in 0..100u16 {
        assert_eq!(
            index.get(in_partition(3, 42, hi)),
            Some(entry(u32::from(hi)))
        );
    }
    // Remove from the middle, the head and the tail of the chain.
    for hi in [50u16, 99, 0] {
        assert_eq!(
            index.remove(in_partition(3, 42, hi)),
            Some(entry(u32::from(hi)))
        );
    }
    index.check();
    assert_eq!(index.get(in_partition(3, 42, 50)), None);
    assert_eq!(index.get(in_partition(3, 42, 49)), Some(entry(49)));
}

#[test]
fn unstored_bits_do_not_tell_digests_apart() {
    let index = Index::new();
    let d = key(5);
    let twin = d ^ (1u128 << STORED_BITS);
    assert_ne!(d, twin);
    assert_eq!(identity(d), identity(twin));
    index.insert(d, entry(1));
    assert_eq!(index.get(twin), Some(entry(1)));
    let other_partition = d ^ (1u128 << 127);
    assert_eq!(index.get(other_partition), None);
    let other_stored = d ^ (1u128 << (STORED_BITS - 1));
    assert_eq!(index.get(other_stored), None);
}

#[test]
fn for_each_yields_identities_and_lets_the_callback_write() {
    let index = Index::new();
    for i in 0..5000 {
        index.insert(key(i), entry(i as u32));
    }
    let mut seen = std::collections::HashMap::new();
    index.for_each(|d, e| {
        assert!(seen.insert(d, e).is_none(), "digest {d:x} visited twice");
        if e.generation % 2 == 0 {
            // Allowed: the partition's lock is not held while the callback runs.
            assert_eq!(index.remove_if_at(d, e.loc), Some(e));
        }
    });
    assert_eq!(seen.len(), 5000);
    for i in 0..5000 {
        assert_eq!(seen.get(&identity(key(i))), Some(&entry(i as u32)));
    }
    assert_eq!(index.len(), 2500);
    index.check();
}

#[test]
fn freed_slots_are_reused_before_the_slab_grows() {
    let index = Index::new();
    for i in 0..50_000 {
        index.insert(key(i), entry(1));
    }
    let full = index.memory_bytes();
    for i in 0..50_000 {
        index.remove(key(i));
    }
    assert_eq!(
        index.memory_bytes(),
        full,
        "removal keeps the slab for reuse"
    );
    // The same keys land in the same partitions, so each partition needs what it had.
    for i in 0..50_000 {
        assert_eq!(index.insert(key(i), entry(2)), None);
    }
    assert_eq!(
        index.memory_bytes(),
        full,
        "reinsertion reuses the freed slots"
    );
    index.check();
}

#[test]
fn memory_bytes_counts_growth_and_clear_gives_it_back() {
    let index = Index::new();
    let fresh = index.memory_bytes();
    assert!(fresh >= PARTITIONS * std::mem::size_of::<Partition>());
    for i in 0..100_000 {
        index.insert(key(i), entry(1));
    }
    let full = index.memory_bytes();
    assert!(
        full >= fresh + 100_000 * 32,
        "{full} bytes for 100000 entries"
    );
    assert!(
        full <= fresh + 100_000 * 48,
        "{full} bytes for 100000 entries"
    );
    index.check();
    index.clear();
    assert!(index.is_empty());
    assert_eq!(index.get(key(1)), None);
    assert_eq!(index.memory_bytes(), fresh);
}

#[test]
fn with_capacity_never_rehashes_up_to_the_expected_count() {
    let n = 200_000;
    let index = Index::with_capacity(n);
    let before: Vec<usize> = index
        .partitions
        .iter()
        .map(|p| p.table.read().bucket_count())
        .collect();
    for i in 0..n as u64 {
        index.insert(key(i), entry(1));
    }
    let after: Vec<usize> = index
        .partitions
        .iter()
        .map(|p| p.table.read().bucket_count())
        .collect();
    assert_eq!(before, after);
    assert_eq!(index.len(), n);
}

#[test]
fn get_many_agrees_with_get() {
    let index = Index::new();
    for i in 0..1000 {
        index.insert(key(i), entry(i as u32));
    }
    for i in 0..300u16 {
        index.insert(in_partition(9, 7, i), entry(u32::from(i)));
    }
    let mut ds: Vec<Digest> = (0..1500).map(|i| key(i * 7 % 1500)).collect();
    ds.extend((0..400u16).map(|i| in_partition(9, 7, i)));
    ds.extend([key(3), key(3), key(3)]);
    let mut out = vec![None; 5];
    index.get_many(&ds, &mut out);
    assert_eq!(out.len(), ds.len());
    for (d, got) in ds.iter().zip(&out) {
        assert_eq!(*got, index.get(*d), "digest {d:x}");
    }
    assert!(out.iter().filter(|e| e.is_some()).count() > 1000);
    index.get_many(&[], &mut out);
    assert!(out.is_empty());
}

#[test]
fn a_million_records_stay_within_the_ram_budget() {
    // The budget is 40 bytes per record at 10 million (measured by examples/index_ram.rs); at a
    // million the fixed partition array weighs ten times more per record and it still fits.
    let n = 1_000_000;
    let index = Index::new();
    for i in 0..n {
        index.insert(key(i), entry(1));
    }
    let per_record = index.memory_bytes() as f64 / n as f64;
    assert!(per_record <= 40.0, "{per_record:.2} bytes per record");
    assert!(
        per_record >= 32.0,
        "{per_record:.2} bytes per record is below the slot size"
    );
}
