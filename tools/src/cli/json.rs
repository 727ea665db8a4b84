//! Conversions between feature values and JSON, for `--json` output, JSON Lines files and
//! JSON-array literals on the command line.
//!
//! Numbers that JSON cannot hold (NaN, infinities) are written as the strings "NaN", "inf" and
//! "-inf", and read back from those strings for float features only. Bytes are hex strings.

use serde_json::{json, Map, Number, Value as Json};

use quiver_engine::feature::{
    EntityKey, FeatureType, FeatureValue, GroupSchema, KeyType, Status, Value,
};
use quiver_engine::history::HistoryEntry;

use super::parse::{clip, parse_hex};

/// Converts one JSON value into a value of `ty`.
pub fn value_from_json(ty: FeatureType, json: &Json) -> Result<Value, String> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    let expected = || format!("expected {ty}, got {}", describe(json));
    let value = match ty {
        FeatureType::Bool => Value::Bool(json.as_bool().ok_or_else(expected)?),
        FeatureType::I64 => Value::I64(json.as_i64().ok_or_else(expected)?),
        FeatureType::F32 => Value::F32(json_f32(json).ok_or_else(expected)?),
        FeatureType::F64 => Value::F64(json_f64(json).ok_or_else(expected)?),
        FeatureType::String => Value::String(json.as_str().ok_or_else(expected)?.to_string()),
        FeatureType::Bytes => {
            Value::Bytes(json_bytes(json).map_err(|e| format!("{}: {e}", expected()))?)
        }
        FeatureType::Vector(dim) => {
            let items = array_of(json, json_f32).ok_or_else(expected)?;
            if items.len() != dim as usize {
                return Err(format!(
                    "expected a vector of dimension {dim}, got {} numbers",
                    items.len()
                ));
            }
            Value::Vector(items)
        }
        FeatureType::ListI64 => Value::ListI64(array_of(json, Json::as_i64).ok_or_else(expected)?),
        FeatureType::ListF32 => Value::ListF32(array_of(json, json_f32).ok_or_else(expected)?),
        FeatureType::ListString => Value::ListString(
            array_of(json, |j| j.as_str().map(str::to_string)).ok_or_else(expected)?,
        ),
    };
    Ok(value)
}

fn array_of<T>(json: &Json, item: impl Fn(&Json) -> Option<T>) -> Option<Vec<T>> {
    json.as_array()?.iter().map(item).collect()
}

fn json_f64(json: &Json) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn json_f32(json: &Json) -> Option<f32> {
    let wide = json_f64(json)?;
    let narrow = wide as f32;
    (narrow.is_finite() == wide.is_finite()).then_some(narrow)
}

fn json_bytes(json: &Json) -> Result<Vec<u8>, String> {
    match json {
        Json::String(s) => parse_hex(s),
        Json::Array(_) => array_of(json, |j| j.as_u64().and_then(|v| u8::try_from(v).ok()))
            .ok_or_else(|| "an array of bytes holds only integers 0..=255".to_string()),
        _ => Err("write bytes as a hex string".to_string()),
    }
}

/// A short description of a JSON value for error messages: its kind and its text, clipped.
pub fn describe(json: &Json) -> String {
    let kind = match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    };
    format!("{kind} ({})", clip(&json.to_string()))
}

/// An f32 as JSON with its shortest decimal form (0.1f32 prints as 0.1, not 0.10000000149).
fn f32_json(v: f32) -> Json {
    match v.to_string().parse::<f64>().ok().and_then(Number::from_f64) {
        Some(n) => Json::Number(n),
        None => non_finite(v as f64),
    }
}

fn f64_json(v: f64) -> Json {
    Number::from_f64(v)
        .map(Json::Number)
        .unwrap_or_else(|| non_finite(v))
}

fn non_finite(v: f64) -> Json {
    Json::String(
        if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "inf"
        } else {
            "-inf"
        }
        .to_string(),
    )
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A value as JSON.
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::I64(v) => json!(v),
        Value::F32(v) => f32_json(*v),
        Value::F64(v) => f64_json(*v),
        Value::String(s) => json!(s),
        Value::Bytes(b) => json!(hex(b)),
        Value::Vector(v) | Value::ListF32(v) => {
            Json::Array(v.iter().map(|x| f32_json(*x)).collect())
        }
        Value::ListI64(v) => json!(v),
        Value::ListString(v) => json!(v),
    }
}

/// An entity key as JSON: a string, a number, or a hex string for bytes keys.
pub fn key_to_json(key: &EntityKey) -> Json {
    match key {
        EntityKey::String(s) => json!(s),
        EntityKey::I64(v) => json!(v),
        EntityKey::Bytes(b) => json!(hex(b)),
    }
}

/// An entity key from a JSON cell, for a group of `key_type`.
pub fn key_from_json(key_type: KeyType, json: &Json) -> Result<EntityKey, String> {
    let wrong = || format!("expected a {key_type} key, got {}", describe(json));
    match (key_type, json) {
        (KeyType::String, Json::String(s)) => Ok(EntityKey::String(s.clone())),
        (KeyType::String, Json::Number(n)) => Ok(EntityKey::String(n.to_string())),
        (KeyType::I64, Json::Number(n)) => n.as_i64().map(EntityKey::I64).ok_or_else(wrong),
        (KeyType::I64, Json::String(s)) => s.parse().map(EntityKey::I64).map_err(|_| wrong()),
        (KeyType::Bytes, Json::String(s)) => parse_hex(s)
            .map(EntityKey::Bytes)
            .map_err(|e| format!("{}: {e}", wrong())),
        _ => Err(wrong()),
    }
}

pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Present => "PRESENT",
        Status::Null => "NULL",
        Status::NotFound => "NOT_FOUND",
        Status::Expired => "EXPIRED",
        Status::Corrupt => "CORRUPT",
    }
}

/// One feature of a get result as JSON.
pub fn feature_value_to_json(name: &str, fv: &FeatureValue) -> Json {
    json!({
        "feature": name,
        "status": status_name(fv.status),
        "value": value_to_json(&fv.value),
        "event_time_ms": fv.event_time_ms,
    })
}

/// One version of a history read as JSON.
pub fn history_entry_to_json(entry: &HistoryEntry) -> Json {
    json!({
        "feature": entry.feature,
        "event_time_ms": entry.event_time_ms,
        "write_time_ms": entry.write_time_ms,
        "status": status_name(entry.status),
        "value": value_to_json(&entry.value),
    })
}

/// A group schema as JSON.
pub fn schema_to_json(schema: &GroupSchema) -> Json {
    let features: Vec<Json> = schema
        .features
        .iter()
        .map(|f| {
            json!({
                "id": f.id, "name": f.name, "type": f.ty.to_string(), "description": f.description,
                "owner": f.owner, "tags": f.tags, "deprecated": f.deprecated,
                "rules": f.rules.texts(),
            })
        })
        .collect();
    let mut map = Map::new();
    map.insert("name".into(), json!(schema.name));
    map.insert("id".into(), json!(schema.id));
    map.insert("version".into(), json!(schema.version));
    map.insert("key_type".into(), json!(schema.key_type.to_string()));
    map.insert("ttl_s".into(), json!(schema.ttl_s));
    map.insert(
        "history_retention_s".into(),
        json!(schema.history.and_then(|h| h.retention_s)),
    );
    map.insert(
        "history_max_versions".into(),
        json!(schema.history.and_then(|h| h.max_versions)),
    );
    map.insert(
        "compression".into(),
        json!(super::output::compression_text(&schema.compression)),
    );
    map.insert("allow_non_finite".into(), json!(schema.allow_non_finite));
    map.insert(
        "on_violation".into(),
        json!(super::output::violation_text(schema.on_violation)),
    );
    map.insert(
        "max_staleness_s".into(),
        json!(schema.quality.max_staleness_s),
    );
    map.insert("drift_psi".into(), json!(schema.quality.drift_psi));
    map.insert(
        "drift_distance".into(),
        json!(schema.quality.drift_distance),
    );
    map.insert("description".into(), json!(schema.description));
    map.insert("owner".into(), json!(schema.owner));
    map.insert("tags".into(), json!(schema.tags));
    map.insert("features".into(), Json::Array(features));
    Json::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json() {
        let cases = [
            (FeatureType::F32, Value::F32(0.1)),
            (FeatureType::F64, Value::F64(f64::INFINITY)),
            (FeatureType::Bytes, Value::Bytes(vec![1, 2, 255])),
            (FeatureType::Vector(3), Value::Vector(vec![0.1, -2.0, 3.5])),
            (FeatureType::ListString, Value::ListString(vec!["a".into()])),
            (FeatureType::I64, Value::Null),
        ];
        for (ty, value) in cases {
            let json = value_to_json(&value);
            assert_eq!(value_from_json(ty, &json).unwrap(), value, "{json}");
        }
        assert_eq!(value_to_json(&Value::F32(0.1)).to_string(), "0.1");
    }

    #[test]
    fn wrong_json_types_are_named() {
        let err = value_from_json(FeatureType::I64, &json!("12")).unwrap_err();
        assert!(err.contains("expected i64, got a string"), "{err}");
        assert!(value_from_json(FeatureType::Vector(2), &json!([1.0]))
            .unwrap_err()
            .contains("dimension 2"));
        assert!(value_from_json(FeatureType::Bytes, &json!([256])).is_err());
        assert!(key_from_json(KeyType::I64, &json!(1.5)).is_err());
        assert_eq!(
            key_from_json(KeyType::I64, &json!("7")).unwrap(),
            EntityKey::I64(7)
        );
    }
}
