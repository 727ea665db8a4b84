//! Model test of the put rule: random sequences of partial puts (random event times, random
//! feature subsets, merge or replace), deletes and gets, against a plain map.

use std::collections::HashMap;

use proptest::prelude::*;
use quiver_engine::feature::{
    Compression, EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions,
    Status, Value, WriteMode,
};
use quiver_engine::store::Store;
use quiver_engine::Config;

const FEATURES: usize = 6;
const KEYS: i64 = 3;

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: i64,
        time: u64,
        values: Vec<(usize, Option<i64>)>,
        replace: bool,
    },
    Delete {
        key: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let values = proptest::collection::btree_map(
        0..FEATURES,
        proptest::option::weighted(0.8, -5i64..5),
        1..=FEATURES,
    )
    .prop_map(|m| m.into_iter().collect::<Vec<_>>());
    prop_oneof![
        8 => (0..KEYS, 0u64..20, values, proptest::bool::weighted(0.15))
            .prop_map(|(key, time, values, replace)| Op::Put { key, time, values, replace }),
        1 => (0..KEYS).prop_map(|key| Op::Delete { key }),
    ]
}

fn name(i: usize) -> String {
    format!("f{i}")
}

/// The value stored for feature `i`: the vector feature (the last) gets a vector built from `v`.
fn value(i: usize, v: Option<i64>) -> Value {
    match v {
        None => Value::Null,
        Some(v) if i == FEATURES - 1 => Value::Vector(vec![v as f32; 8]),
        Some(v) => Value::I64(v),
    }
}

type Model = HashMap<i64, HashMap<usize, (u64, Option<i64>)>>;

fn apply_to_model(
    model: &mut Model,
    key: i64,
    time: u64,
    values: &[(usize, Option<i64>)],
    replace: bool,
) -> (u32, u32) {
    let row = model.entry(key).or_default();
    if replace {
        row.clear();
    }
    let (mut written, mut skipped) = (0, 0);
    for &(i, v) in values {
        match row.get(&i) {
            Some(&(old, _)) if old > time => skipped += 1,
            _ => {
                row.insert(i, (time, v));
                written += 1;
            }
        }
    }
    (written, skipped)
}

fn check_all(store: &Store, model: &Model) {
    let refs: Vec<FeatureRef> = (0..FEATURES)
        .map(|i| FeatureRef::new("g", name(i)))
        .collect();
    let keys: Vec<EntityKey> = (0..KEYS).map(EntityKey::I64).collect();
    let got = store.get_many(&keys, &refs).unwrap();
    for (key, answers) in (0..KEYS).zip(got) {
        for (i, answer) in answers.iter().enumerate() {
            match model.get(&key).and_then(|row| row.get(&i)) {
                None => assert_eq!(answer.status, Status::NotFound, "key {key} f{i}"),
                Some(&(time, None)) => {
                    assert_eq!(
                        (answer.status, answer.event_time_ms),
                        (Status::Null, time),
                        "key {key} f{i}"
                    )
                }
                Some(&(time, Some(v))) => {
                    assert_eq!(answer.status, Status::Present, "key {key} f{i}");
                    assert_eq!(
                        (&answer.value, answer.event_time_ms),
                        (&value(i, Some(v)), time),
                        "key {key} f{i}"
                    );
                }
            }
        }
    }
}

fn run(ops: Vec<Op>, compression: Compression) {
    let store = Store::open(Config::memory(64 << 20)).unwrap();
    let mut features: Vec<FeatureSpec> = (0..FEATURES - 1)
        .map(|i| FeatureSpec::new(name(i), FeatureType::I64))
        .collect();
    features.push(FeatureSpec::new(name(FEATURES - 1), FeatureType::Vector(8)));
    let mut spec = GroupSpec::new("g", KeyType::I64, features);
    spec.compression = compression;
    store.create_group(spec).unwrap();
    let mut model = Model::new();
    for op in ops {
        match op {
            Op::Put {
                key,
                time,
                values,
                replace,
            } => {
                let names: Vec<String> = values.iter().map(|&(i, _)| name(i)).collect();
                let typed: Vec<(&str, Value)> = values
                    .iter()
                    .zip(&names)
                    .map(|(&(i, v), n)| (n.as_str(), value(i, v)))
                    .collect();
                let mode = if replace {
                    WriteMode::ReplaceRow
                } else {
                    WriteMode::Merge
                };
                let result = store
                    .put(
                        "g",
                        &EntityKey::I64(key),
                        time,
                        &typed,
                        &PutOptions {
                            mode,
                            ..PutOptions::default()
                        },
                    )
                    .unwrap();
                let expected = apply_to_model(&mut model, key, time, &values, replace);
                assert_eq!((result.written, result.skipped_stale), expected);
            }
            Op::Delete { key } => {
                let existed = store.delete("g", &EntityKey::I64(key), None).unwrap();
                assert_eq!(
                    existed,
                    model.remove(&key).is_some_and(|row| !row.is_empty())
                );
            }
        }
        check_all(&store, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn merge_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops, Compression::None);
    }

    #[test]
    fn merge_matches_the_model_with_zstd(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops, Compression::Zstd { level: 3 });
    }
}

#[test]
fn backfill_never_overwrites_fresher_values() {
    run(
        vec![
            Op::Put {
                key: 0,
                time: 10,
                values: vec![(0, Some(1)), (1, Some(1))],
                replace: false,
            },
            Op::Put {
                key: 0,
                time: 5,
                values: vec![(0, Some(2)), (2, Some(2))],
                replace: false,
            },
            Op::Put {
                key: 0,
                time: 10,
                values: vec![(1, None)],
                replace: false,
            },
        ],
        Compression::None,
    );
}
