//! Random operation sequences against a `HashMap` model: the index must agree on every result.

use std::collections::HashMap;

use proptest::prelude::*;
use quiver_index::{identity, Digest, Entry, Index, Location, PARTITION_BITS, STORED_BITS};

#[derive(Clone, Debug)]
enum Op {
    Insert(Digest, Entry),
    Remove(Digest),
    Relocate(Digest, Location, Location),
    RemoveIfAt(Digest, Location),
    Get(Digest),
    GetMany(Vec<Digest>),
}

/// Digests crowded into three partitions with few low bits, so that chains form, buckets grow,
/// and some digests differ only in bits the index does not keep.
fn digest_strategy() -> impl Strategy<Value = Digest> {
    (0u128..3, 0u64..64, 0u16..3, 0u128..2).prop_map(|(partition, lo, hi, unused)| {
        (partition << (128 - PARTITION_BITS))
            | (unused << STORED_BITS)
            | (u128::from(hi) << 64)
            | u128::from(lo)
    })
}

/// Few locations, so that compare-and-set operations both succeed and fail.
fn location_strategy() -> impl Strategy<Value = Location> {
    (0u32..3, 0u32..2).prop_map(|(block, offset)| Location::new(block, offset, 1).unwrap())
}

fn entry_strategy() -> impl Strategy<Value = Entry> {
    (
        location_strategy(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(loc, generation, expiry_s, last_update_s)| Entry {
            loc,
            generation,
            expiry_s,
            last_update_s,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (digest_strategy(), entry_strategy()).prop_map(|(d, e)| Op::Insert(d, e)),
        1 => digest_strategy().prop_map(Op::Remove),
        2 => (digest_strategy(), location_strategy(), location_strategy())
            .prop_map(|(d, a, b)| Op::Relocate(d, a, b)),
        1 => (digest_strategy(), location_strategy()).prop_map(|(d, l)| Op::RemoveIfAt(d, l)),
        2 => digest_strategy().prop_map(Op::Get),
        1 => prop::collection::vec(digest_strategy(), 0..40).prop_map(Op::GetMany),
    ]
}

fn apply(index: &Index, model: &mut HashMap<Digest, Entry>, op: &Op) {
    match *op {
        Op::Insert(d, e) => assert_eq!(index.insert(d, e), model.insert(identity(d), e)),
        Op::Remove(d) => assert_eq!(index.remove(d), model.remove(&identity(d))),
        Op::Relocate(d, expected, new_loc) => {
            let hit = model.get_mut(&identity(d)).filter(|e| e.loc == expected);
            let moved = hit.map(|e| e.loc = new_loc).is_some();
            assert_eq!(index.relocate(d, expected, new_loc), moved);
        }
        Op::RemoveIfAt(d, at) => {
            let hit = model.get(&identity(d)).is_some_and(|e| e.loc == at);
            let expected = if hit {
                model.remove(&identity(d))
            } else {
                None
            };
            assert_eq!(index.remove_if_at(d, at), expected);
        }
        Op::Get(d) => assert_eq!(index.get(d), model.get(&identity(d)).copied()),
        Op::GetMany(ref ds) => {
            let mut out = Vec::new();
            index.get_many(ds, &mut out);
            let expected: Vec<_> = ds
                .iter()
                .map(|d| model.get(&identity(*d)).copied())
                .collect();
            assert_eq!(out, expected);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn index_agrees_with_a_hashmap(ops in prop::collection::vec(op_strategy(), 1..600)) {
        let index = Index::new();
        let mut model = HashMap::new();
        for op in &ops {
            apply(&index, &mut model, op);
            prop_assert_eq!(index.len(), model.len());
        }
        let mut seen = HashMap::new();
        index.for_each(|d, e| { seen.insert(d, e); });
        prop_assert_eq!(seen, model);
        index.clear();
        prop_assert!(index.is_empty());
    }
}
