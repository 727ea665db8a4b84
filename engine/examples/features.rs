//! A small tour of the feature store: two groups of one entity (scalars and an f32[128]
//! embedding), partial puts with event times, and one multi-group get with per-feature status.
//!
//! Run: `cargo run -p quiver-engine --example features`

use quiver_engine::feature::{
    Compression, EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions,
    Value,
};
use quiver_engine::store::Store;
use quiver_engine::Config;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(Config::memory(64 << 20))?;
    let mut user = GroupSpec::new(
        "user",
        KeyType::String,
        vec![
            FeatureSpec::new("age", FeatureType::I64),
            FeatureSpec::new("ctr_7d", FeatureType::F32),
            FeatureSpec::new("country", FeatureType::String),
            FeatureSpec::new("embedding", FeatureType::Vector(128)),
        ],
    );
    user.compression = Compression::Zstd { level: 3 };
    user.description = "profile features of a shop user".into();
    store.create_group(user)?;
    let mut activity = GroupSpec::new(
        "user_activity",
        KeyType::String,
        vec![
            FeatureSpec::new("clicks_1h", FeatureType::I64),
            FeatureSpec::new("last_items", FeatureType::ListI64),
        ],
    );
    activity.ttl_s = Some(3600);
    store.create_group(activity)?;

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let key = EntityKey::String("user_42".into());
    let embedding: Vec<f32> = (0..128).map(|i| (i as f32 / 64.0).sin()).collect();
    let profile = [
        ("age", Value::I64(34)),
        ("ctr_7d", Value::F32(0.031)),
        ("country", Value::Null),
        ("embedding", Value::Vector(embedding)),
    ];
    let r = store.put("user", &key, now_ms, &profile, &PutOptions::default())?;
    println!(
        "put user: written {}, skipped {}, generation {}",
        r.written, r.skipped_stale, r.generation
    );
    // A backfill with an older event time does not overwrite the fresher value.
    let r = store.put(
        "user",
        &key,
        now_ms - 86_400_000,
        &[("age", Value::I64(33))],
        &PutOptions::default(),
    )?;
    println!(
        "backfill: written {}, skipped as stale {}",
        r.written, r.skipped_stale
    );
    // Activity from two hours ago: older than the group's one-hour max age.
    let recent = [
        ("clicks_1h", Value::I64(7)),
        ("last_items", Value::ListI64(vec![11, 12, 13])),
    ];
    store.put(
        "user_activity",
        &key,
        now_ms - 7_200_000,
        &recent,
        &PutOptions::default(),
    )?;

    let refs: Vec<FeatureRef> = [
        "user:age",
        "user:ctr_7d",
        "user:country",
        "user:embedding",
        "user_activity:clicks_1h",
    ]
    .iter()
    .map(|t| t.parse())
    .collect::<Result<_, _>>()?;
    let answers = store.get(&key, &refs)?;
    for (r, a) in refs.iter().zip(&answers) {
        let shown = match &a.value {
            Value::Vector(v) => format!("f32[{}] starting {:?}", v.len(), &v[..3]),
            other => format!("{other:?}"),
        };
        println!(
            "{:<24} {:<10} t={:<14} {shown}",
            r.to_string(),
            a.status.to_string(),
            a.event_time_ms
        );
    }
    let missing = store.get(&EntityKey::String("nobody".into()), &refs[..1])?;
    println!("{:<24} {}", "user:age of 'nobody'", missing[0].status);
    store.close()?;
    Ok(())
}
