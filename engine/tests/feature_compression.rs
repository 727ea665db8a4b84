//! Row compression: zstd and none round-trip every type; zstd is used only when it makes the
//! row smaller, and the flag byte in the stored row says which.

use quiver_engine::feature::{
    Compression, EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions,
    Row, Status, Value,
};
use quiver_engine::store::Store;
use quiver_engine::Config;
use rand::{Rng, SeedableRng};

fn spec(compression: Compression) -> GroupSpec {
    let features = vec![
        FeatureSpec::new("flag", FeatureType::Bool),
        FeatureSpec::new("count", FeatureType::I64),
        FeatureSpec::new("ctr", FeatureType::F32),
        FeatureSpec::new("score", FeatureType::F64),
        FeatureSpec::new("name", FeatureType::String),
        FeatureSpec::new("blob", FeatureType::Bytes),
        FeatureSpec::new("emb", FeatureType::Vector(128)),
        FeatureSpec::new("ids", FeatureType::ListI64),
        FeatureSpec::new("weights", FeatureType::ListF32),
        FeatureSpec::new("words", FeatureType::ListString),
    ];
    let mut spec = GroupSpec::new("g", KeyType::Bytes, features);
    spec.compression = compression;
    spec
}

fn values(blob: Vec<u8>, emb: Vec<f32>) -> Vec<(&'static str, Value)> {
    vec![
        ("flag", Value::Bool(true)),
        ("count", Value::I64(i64::MIN)),
        ("ctr", Value::F32(0.125)),
        ("score", Value::F64(-1e300)),
        ("name", Value::String("ünïcode name".into())),
        ("blob", Value::Bytes(blob)),
        ("emb", Value::Vector(emb)),
        ("ids", Value::ListI64(vec![1, 2, 3, i64::MAX])),
        ("weights", Value::ListF32(vec![0.5; 40])),
        (
            "words",
            Value::ListString(vec!["a".into(), String::new(), "word".repeat(10)]),
        ),
    ]
}

/// Writes the values, reads them back through the store, and returns the stored row.
fn round_trip(compression: Compression, values: Vec<(&'static str, Value)>) -> Vec<u8> {
    let store = Store::open(Config::memory(64 << 20)).unwrap();
    let schema = store.create_group(spec(compression)).unwrap();
    let key = EntityKey::Bytes(vec![1, 2, 3]);
    store
        .put("g", &key, 42, &values, &PutOptions::default())
        .unwrap();
    let refs: Vec<FeatureRef> = values
        .iter()
        .map(|(n, _)| FeatureRef::new("g", *n))
        .collect();
    let got = store.get(&key, &refs).unwrap();
    for ((name, expected), answer) in values.iter().zip(&got) {
        assert_eq!(answer.status, Status::Present, "{name}");
        assert_eq!(&answer.value, expected, "{name}");
        assert_eq!(answer.event_time_ms, 42);
    }
    store
        .engine()
        .get(schema.id, &[1, 2, 3])
        .unwrap()
        .expect("row stored")
        .value
}

#[test]
fn zstd_compresses_repetitive_rows_and_round_trips() {
    let plain = round_trip(Compression::None, values(vec![7; 2000], vec![0.25; 128]));
    let packed = round_trip(
        Compression::Zstd { level: 3 },
        values(vec![7; 2000], vec![0.25; 128]),
    );
    assert!(!Row::is_compressed(&plain));
    assert!(Row::is_compressed(&packed));
    assert!(
        packed.len() * 4 < plain.len(),
        "{} vs {}",
        packed.len(),
        plain.len()
    );
}

#[test]
fn zstd_is_skipped_when_it_does_not_save() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let blob: Vec<u8> = (0..4000).map(|_| rng.gen()).collect();
    let emb: Vec<f32> = (0..128).map(|_| rng.gen()).collect();
    // Only random payloads: nothing for zstd to find.
    let random = vec![("blob", Value::Bytes(blob)), ("emb", Value::Vector(emb))];
    let packed = round_trip(Compression::Zstd { level: 19 }, random.clone());
    let plain = round_trip(Compression::None, random);
    assert!(!Row::is_compressed(&packed), "random bytes do not compress");
    assert_eq!(
        packed, plain,
        "an uncompressed row is the same whatever the group asks"
    );
}

#[test]
fn partial_updates_of_a_compressed_row_keep_the_other_values() {
    let store = Store::open(Config::memory(64 << 20)).unwrap();
    let schema = store
        .create_group(spec(Compression::Zstd { level: 3 }))
        .unwrap();
    let key = EntityKey::Bytes(vec![9]);
    store
        .put(
            "g",
            &key,
            1,
            &values(vec![1; 500], vec![1.0; 128]),
            &PutOptions::default(),
        )
        .unwrap();
    for t in 2..20u64 {
        store
            .put(
                "g",
                &key,
                t,
                &[("count", Value::I64(t as i64))],
                &PutOptions::default(),
            )
            .unwrap();
    }
    let got = store
        .get(
            &key,
            &[FeatureRef::new("g", "count"), FeatureRef::new("g", "emb")],
        )
        .unwrap();
    assert_eq!(
        (got[0].value.clone(), got[0].event_time_ms),
        (Value::I64(19), 19)
    );
    assert_eq!(
        (got[1].value.clone(), got[1].event_time_ms),
        (Value::Vector(vec![1.0; 128]), 1)
    );
    let row = store.engine().get(schema.id, &[9]).unwrap().unwrap().value;
    assert!(Row::is_compressed(&row));
}
