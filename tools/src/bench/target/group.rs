//! The benchmark's feature group, shared by the Quiver targets (embedded and quiverd): group
//! `bench`, i64 entity keys, features `f0..f{scalars-1}` (f32) and `embedding` (f32[dim]).
use std::time::{SystemTime, UNIX_EPOCH};

use quiver_engine::feature::{
    FeatureRef, FeatureSpec, FeatureType, FeatureValue, GroupSchema, GroupSpec, KeyType, Status,
    Value,
};

use super::Outcome;
use crate::bench::workload::RecordShape;

/// The feature group the benchmark reads and writes.
pub const GROUP: &str = "bench";

/// Feature names and types of `shape`, in order.
pub fn features(shape: &RecordShape) -> Vec<(String, FeatureType)> {
    shape
        .feature_names()
        .into_iter()
        .map(|name| {
            let ty = if name == "embedding" {
                FeatureType::Vector(shape.vector_dim)
            } else {
                FeatureType::F32
            };
            (name, ty)
        })
        .collect()
}

/// The group to create when it does not exist yet.
pub fn spec(shape: &RecordShape) -> GroupSpec {
    let features = features(shape)
        .into_iter()
        .map(|(name, ty)| FeatureSpec::new(name, ty))
        .collect();
    GroupSpec::new(GROUP, KeyType::I64, features)
}

/// Checks that an existing group can hold the benchmark's records.
pub fn check_schema(schema: &GroupSchema, shape: &RecordShape) -> Result<(), String> {
    if schema.key_type != KeyType::I64 {
        return Err(format!(
            "group '{GROUP}' exists with {:?} keys, the benchmark needs i64 keys; use a fresh store",
            schema.key_type
        ));
    }
    for (name, ty) in features(shape) {
        let found = schema.features.iter().find(|f| f.name == name);
        if found.map(|f| &f.ty) != Some(&ty) {
            return Err(format!(
                "group '{GROUP}' exists with another shape: it has no {ty} feature '{name}'; \
                 use a fresh store or the same --scalars/--vector-dim"
            ));
        }
    }
    Ok(())
}

/// References to every feature of the group, for gets.
pub fn feature_refs(shape: &RecordShape) -> Vec<FeatureRef> {
    shape
        .feature_names()
        .into_iter()
        .map(|feature| FeatureRef {
            group: GROUP.to_string(),
            feature,
        })
        .collect()
}

/// The values written for `key` at `version`.
pub fn values(
    shape: &RecordShape,
    names: &[String],
    vector: &[f32],
    key: u64,
    version: u64,
) -> Vec<(String, Value)> {
    let mut values: Vec<(String, Value)> = Vec::with_capacity(names.len());
    for i in 0..shape.scalars {
        let v = RecordShape::scalar_value(key, version, i);
        values.push((names[i as usize].clone(), Value::F32(v)));
    }
    if shape.vector_dim > 0 {
        values.push(("embedding".to_string(), Value::Vector(vector.to_vec())));
    }
    values
}

/// Milliseconds since the Unix epoch, the event time of every write.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Ok when every feature is present, NotFound otherwise.
pub fn values_outcome(values: &[FeatureValue]) -> Outcome {
    if values.iter().all(|v| v.status == Status::Present) {
        Outcome::Ok
    } else {
        Outcome::NotFound
    }
}
