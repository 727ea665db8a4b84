//! Measures the feature store on 50-feature records (49 scalars and one f32[128]):
//! gets of 10 features, partial puts of 5 features, and bytes stored per record,
//! with and without zstd.
//!
//! Run: `cargo run --release -p quiver-engine --example feature_bench [entities]`

use std::time::Instant;

use quiver_engine::feature::{
    Compression, EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions,
    Value,
};
use quiver_engine::store::Store;
use quiver_engine::Config;
use rand::{Rng, SeedableRng};

const SCALARS: usize = 49;

fn scalar_type(i: usize) -> FeatureType {
    match i % 4 {
        0 => FeatureType::I64,
        1 => FeatureType::F32,
        2 => FeatureType::F64,
        _ => FeatureType::Bool,
    }
}

fn scalar_value(i: usize, rng: &mut impl Rng) -> Value {
    match scalar_type(i) {
        FeatureType::I64 => Value::I64(rng.gen_range(0..10_000)),
        FeatureType::F32 => Value::F32(rng.gen::<f32>()),
        FeatureType::F64 => Value::F64(rng.gen::<f64>() * 100.0),
        _ => Value::Bool(rng.gen()),
    }
}

fn names() -> Vec<String> {
    let mut names: Vec<String> = (0..SCALARS).map(|i| format!("s{i}")).collect();
    names.push("emb".into());
    names
}

fn create(store: &Store, name: &str, compression: Compression) {
    let mut features: Vec<FeatureSpec> = (0..SCALARS)
        .map(|i| FeatureSpec::new(format!("s{i}"), scalar_type(i)))
        .collect();
    features.push(FeatureSpec::new("emb", FeatureType::Vector(128)));
    let mut spec = GroupSpec::new(name, KeyType::I64, features);
    spec.compression = compression;
    store.create_group(spec).unwrap();
}

fn row(rng: &mut impl Rng) -> Vec<Value> {
    let mut values: Vec<Value> = (0..SCALARS).map(|i| scalar_value(i, rng)).collect();
    // An embedding of modest precision, as models emit them (values in [-1, 1]).
    values.push(Value::Vector(
        (0..128).map(|_| rng.gen_range(-1.0f32..1.0)).collect(),
    ));
    values
}

fn bench_group(store: &Store, group: &str, entities: i64) {
    let names = names();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let opts = PutOptions::default();
    let mut raw_bytes = 0usize;
    let start = Instant::now();
    for e in 0..entities {
        let values = row(&mut rng);
        raw_bytes += values.iter().map(Value::raw_bytes).sum::<usize>();
        let pairs: Vec<(&str, Value)> = names.iter().map(String::as_str).zip(values).collect();
        store
            .put(group, &EntityKey::I64(e), 1_000, &pairs, &opts)
            .unwrap();
    }
    let full_puts = entities as f64 / start.elapsed().as_secs_f64();

    let schema = store.describe_group(group).unwrap();
    let stored: usize = (0..entities)
        .map(|e| {
            store
                .engine()
                .get(schema.id, &e.to_le_bytes())
                .unwrap()
                .unwrap()
                .value
                .len()
        })
        .sum();

    let refs: Vec<FeatureRef> = (0..9)
        .map(|i| FeatureRef::new(group, format!("s{}", i * 5)))
        .chain([FeatureRef::new(group, "emb")])
        .collect();
    let gets = entities.min(200_000) as usize;
    let start = Instant::now();
    for _ in 0..gets {
        let answer = store
            .get(&EntityKey::I64(rng.gen_range(0..entities)), &refs)
            .unwrap();
        assert_eq!(answer.len(), 10);
    }
    let get_rate = gets as f64 / start.elapsed().as_secs_f64();

    let partial: Vec<&str> = (0..5).map(|i| names[i * 10].as_str()).collect();
    let start = Instant::now();
    for n in 0..gets {
        let e = rng.gen_range(0..entities);
        let values: Vec<(&str, Value)> = partial
            .iter()
            .map(|&f| (f, scalar_value(f[1..].parse().unwrap(), &mut rng)))
            .collect();
        store
            .put(group, &EntityKey::I64(e), 2_000 + n as u64, &values, &opts)
            .unwrap();
    }
    let partial_rate = gets as f64 / start.elapsed().as_secs_f64();

    println!("group {group}: {entities} records of 50 features (49 scalars + f32[128])");
    println!("  full puts (50 features):     {full_puts:>10.0} /s");
    println!(
        "  gets of 10 features:         {get_rate:>10.0} /s  ({:.2} us each)",
        1e6 / get_rate
    );
    println!(
        "  partial puts (5 features):   {partial_rate:>10.0} /s  ({:.2} us each)",
        1e6 / partial_rate
    );
    println!(
        "  row bytes per record:        {:>10.1}  (raw values {:.1}, ratio {:.3})",
        stored as f64 / entities as f64,
        raw_bytes as f64 / entities as f64,
        stored as f64 / raw_bytes as f64
    );
}

fn main() {
    let entities: i64 = std::env::args()
        .nth(1)
        .map_or(50_000, |a| a.parse().expect("entity count"));
    for (group, compression) in [
        ("plain", Compression::None),
        ("zstd", Compression::Zstd { level: 3 }),
    ] {
        let store = Store::open(Config::memory(2 << 30)).unwrap();
        create(&store, group, compression);
        bench_group(&store, group, entities);
        let stats = store.stats();
        println!(
            "  engine: {} records, {} live bytes ({:.1} per record)",
            stats.records,
            stats.live_bytes,
            stats.live_bytes as f64 / stats.records.max(1) as f64
        );
        store.close().unwrap();
    }
}
