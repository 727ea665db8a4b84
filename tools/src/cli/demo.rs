//! `quiver demo`: a feature group of synthetic users, written and read back.
//!
//! Idempotent: a second run reuses the group (if its features match) and rewrites the same
//! users with a newer event time.

use std::time::Instant;

use quiver_engine::feature::{
    EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Value,
};
use serde_json::json;

use super::backend::{Backend, PutRow};
use super::command::DemoArgs;
use super::error::{CliError, CliResult};
use super::json::feature_value_to_json;
use super::output::{print_json_tree, print_values, Out};
use super::progress::{bar, thousands};

/// Dimension of the demo embedding.
pub const EMBEDDING_DIM: u32 = 16;
/// Users written per pipelined batch.
const DEMO_BATCH: usize = 1000;
/// Users read back and printed.
const SAMPLES: u64 = 3;
const COUNTRIES: [&str; 6] = ["de", "fr", "jp", "us", "br", "in"];

fn demo_features() -> Vec<FeatureSpec> {
    [
        ("age", FeatureType::I64),
        ("country", FeatureType::String),
        ("is_premium", FeatureType::Bool),
        ("ctr_7d", FeatureType::F32),
        ("ltv_usd", FeatureType::F64),
        ("embedding", FeatureType::Vector(EMBEDDING_DIM)),
    ]
    .into_iter()
    .map(|(name, ty)| FeatureSpec::new(name, ty))
    .collect()
}

pub fn run(args: &DemoArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let created = ensure_group(&args.group, backend)?;
    let start = Instant::now();
    write_users(args, backend, out)?;
    let seconds = start.elapsed().as_secs_f64();
    let rate = args.entities as f64 / seconds.max(1e-9);
    let refs: Vec<FeatureRef> = demo_features()
        .iter()
        .map(|f| FeatureRef::new(&args.group, &f.name))
        .collect();
    let mut samples = Vec::new();
    for i in sample_ids(args.entities) {
        let key = user_key(i);
        let values = backend.get(&key, &refs)?;
        samples.push((
            key,
            refs.iter()
                .map(|r| r.feature.clone())
                .zip(values)
                .collect::<Vec<_>>(),
        ));
    }
    let stats = backend.stats()?;
    let doc = json!({
        "group": args.group, "created": created, "entities": args.entities, "seconds": seconds,
        "puts_per_s": rate.round(),
        "samples": samples.iter().map(|(key, rows)| json!({
            "key": key.to_string(),
            "features": rows.iter().map(|(n, fv)| feature_value_to_json(n, fv)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "stats": stats,
    });
    out.emit(doc, || {
        let verb = if created { "created" } else { "reused" };
        println!(
            "{verb} feature group '{}' on {}",
            args.group,
            backend.target()
        );
        println!(
            "wrote {} users in {seconds:.2} s ({} puts/s)\n",
            thousands(args.entities),
            thousands(rate as u64)
        );
        for (key, rows) in &samples {
            print_values(&format!("{} / {key}", args.group), rows);
        }
        println!("\nstats:");
        print_json_tree(&stats, 2);
    });
    Ok(())
}

/// Creates the demo group, or checks that the existing one has the demo's features.
/// Returns true when it was created.
fn ensure_group(name: &str, backend: &mut dyn Backend) -> CliResult<bool> {
    match backend.describe_group(name) {
        Ok(schema) => {
            for spec in demo_features() {
                let same = schema
                    .feature(&spec.name)
                    .is_some_and(|f| f.ty == spec.ty && !f.deprecated);
                if !same || schema.key_type != KeyType::String {
                    return Err(CliError::Rejected(format!(
                        "group '{name}' exists but is not the demo's (it lacks {}:{}); pass --group to use another name",
                        spec.name, spec.ty
                    )));
                }
            }
            Ok(false)
        }
        Err(CliError::NotFound(_)) => {
            let mut spec = GroupSpec::new(name, KeyType::String, demo_features());
            spec.description = "synthetic users written by `quiver demo`".to_string();
            spec.tags = vec!["demo".to_string()];
            backend.create_group(spec)?;
            Ok(true)
        }
        Err(other) => Err(other),
    }
}

fn write_users(args: &DemoArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let progress = bar(args.entities, false, out.json);
    let event_time_ms = super::now_ms();
    let opts = PutOptions::default();
    let mut next = 0u64;
    while next < args.entities {
        let end = (next + DEMO_BATCH as u64).min(args.entities);
        let rows: Vec<PutRow> = (next..end)
            .map(|i| synthetic_user(i, event_time_ms))
            .collect();
        for outcome in backend.put_batch(&args.group, rows, &opts)? {
            outcome?;
        }
        next = end;
        progress.set_position(next);
    }
    progress.finish_and_clear();
    Ok(())
}

fn user_key(i: u64) -> EntityKey {
    EntityKey::String(format!("user_{i:06}"))
}

/// The first, the middle and the last user.
fn sample_ids(entities: u64) -> Vec<u64> {
    let mut ids: Vec<u64> = [0, entities / 2, entities - 1]
        .into_iter()
        .take(SAMPLES as usize)
        .collect();
    ids.dedup();
    ids
}

/// splitmix64: a deterministic stream, so reruns write the same users.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(seed: u64) -> f64 {
    (mix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

fn synthetic_user(i: u64, event_time_ms: u64) -> PutRow {
    let seed = i.wrapping_mul(0x1000);
    let embedding: Vec<f32> = (0..EMBEDDING_DIM as u64)
        .map(|d| (unit(seed + 16 + d) * 2.0 - 1.0) as f32)
        .collect();
    let values = vec![
        ("age".to_string(), Value::I64(18 + (mix(seed) % 60) as i64)),
        (
            "country".to_string(),
            Value::String(COUNTRIES[(mix(seed + 1) % COUNTRIES.len() as u64) as usize].to_string()),
        ),
        (
            "is_premium".to_string(),
            Value::Bool(mix(seed + 2) % 5 == 0),
        ),
        (
            "ctr_7d".to_string(),
            Value::F32((unit(seed + 3) * 0.2) as f32),
        ),
        (
            "ltv_usd".to_string(),
            Value::F64((unit(seed + 4) * 5000.0 * 100.0).round() / 100.0),
        ),
        ("embedding".to_string(), Value::Vector(embedding)),
    ];
    PutRow {
        key: user_key(i),
        event_time_ms,
        values,
        write_time_ms: None,
    }
}
