//! `GET /groups` and `GET /groups/{name}`: group schemas as JSON (the shape of
//! `quiver group describe --json`), with the Feast feature view a group stands for.

use super::feast::FeastView;
use super::ApiError;
use quiver_engine::feature::{Compression, GroupSchema, ViolationMode};
use quiver_engine::Store;
use serde_json::{json, Value as Json};

/// A group schema as JSON.
pub fn schema_json(schema: &GroupSchema) -> Json {
    let features: Vec<Json> = schema
        .features
        .iter()
        .map(|f| {
            json!({
                "id": f.id, "name": f.name, "type": f.ty.to_string(),
                "description": f.description, "owner": f.owner, "tags": f.tags,
                "deprecated": f.deprecated, "rules": f.rules.texts(),
            })
        })
        .collect();
    let compression = match schema.compression {
        Compression::None => "none".to_string(),
        Compression::Zstd { level } => format!("zstd:{level}"),
    };
    let feast = FeastView::of(schema).map(|v| {
        json!({
            "project": v.project,
            "feature_view": v.view,
            "join_keys": v.join_keys.map(|keys| keys.iter().map(|(k, t)| json!([k, t.name()])).collect::<Vec<_>>()),
            "entity_key_serialization_version": v.version,
        })
    });
    json!({
        "name": schema.name,
        "id": schema.id,
        "version": schema.version,
        "key_type": schema.key_type.to_string(),
        "ttl_s": schema.ttl_s,
        "history_retention_s": schema.history.map(|h| h.retention_s),
        "compression": compression,
        "allow_non_finite": schema.allow_non_finite,
        "on_violation": match schema.on_violation {
            ViolationMode::Reject => "reject",
            ViolationMode::Drop => "drop",
        },
        "max_staleness_s": schema.quality.max_staleness_s,
        "drift_psi": schema.quality.drift_psi,
        "drift_distance": schema.quality.drift_distance,
        "description": schema.description,
        "owner": schema.owner,
        "tags": schema.tags,
        "features": features,
        "feast": feast,
    })
}

/// `{"groups": [schema, ...]}`, only those tagged `tag` when one is given, and only those
/// `shown` lets the caller see.
pub fn list(
    store: &Store,
    tag: Option<&str>,
    shown: &mut dyn FnMut(&str, &[String]) -> bool,
) -> Vec<u8> {
    let groups: Vec<Json> = store
        .list_groups(tag)
        .iter()
        .filter(|g| shown(&g.name, &g.tags))
        .map(|g| schema_json(g))
        .collect();
    serde_json::to_vec(&json!({ "groups": groups })).expect("JSON")
}

/// Ok when the caller may see the group of this name and tags; else why not.
pub type MaySee<'a> = dyn FnMut(&str, &[String]) -> Result<(), ApiError> + 'a;

/// One group's schema, when `may_see` lets the caller see it.
pub fn describe(store: &Store, name: &str, may_see: &mut MaySee) -> Result<Vec<u8>, ApiError> {
    let schema = store
        .describe_group(name)
        .map_err(|e| ApiError::from_engine(&e))?;
    may_see(&schema.name, &schema.tags)?;
    Ok(serde_json::to_vec(&schema_json(&schema)).expect("JSON"))
}
