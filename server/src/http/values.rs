//! Feature values and timestamps to and from JSON.
//!
//! Values are written the way Feast's feature server writes them: a value as its plain JSON
//! form (`null` for a null or absent value), vectors and lists as arrays, bytes as base64
//! strings, and non-finite floats as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`.
//! An `f32` is written in its shortest form that reads back as the same `f32`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use quiver_engine::feature::{EntityKey, FeatureType, KeyType, Value};
use serde_json::Value as Json;
use std::io::Write;

/// Appends `v` as JSON.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::I64(i) => write_json(out, i),
        Value::F32(f) => write_f32(out, *f),
        Value::F64(f) => write_f64(out, *f),
        Value::String(s) => write_json(out, s),
        Value::Bytes(b) => write_base64(out, b),
        Value::Vector(v) | Value::ListF32(v) => write_list(out, v, |out, f| write_f32(out, *f)),
        Value::ListI64(v) => write_list(out, v, write_json),
        Value::ListString(v) => write_list(out, v, write_json),
    }
}

pub fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(out, v).expect("writing JSON into a Vec cannot fail");
}

pub fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(BASE64.encode(bytes).as_bytes());
    out.push(b'"');
}

pub fn write_list<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

fn non_finite(out: &mut Vec<u8>, f: f64) {
    out.extend_from_slice(if f.is_nan() {
        b"\"NaN\"".as_slice()
    } else if f > 0.0 {
        b"\"Infinity\"".as_slice()
    } else {
        b"\"-Infinity\"".as_slice()
    });
}

pub fn write_f32(out: &mut Vec<u8>, f: f32) {
    if f.is_finite() {
        write_json(out, &f)
    } else {
        non_finite(out, f as f64)
    }
}

pub fn write_f64(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        write_json(out, &f)
    } else {
        non_finite(out, f)
    }
}

/// Appends a Unix time in microseconds as an RFC 3339 string in UTC, with as many fraction
/// digits as it needs (none, 3 or 6), as Feast's feature server writes event timestamps;
/// 0 (no timestamp) is `"1970-01-01T00:00:00Z"`.
pub fn write_timestamp(out: &mut Vec<u8>, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let Some(t) = chrono::DateTime::from_timestamp(secs, 0) else {
        return write_json(out, &micros);
    };
    let _ = write!(out, "\"{}", t.format("%Y-%m-%dT%H:%M:%S"));
    let _ = match frac {
        0 => write!(out, "Z\""),
        f if f % 1000 == 0 => write!(out, ".{:03}Z\"", f / 1000),
        f => write!(out, ".{f:06}Z\""),
    };
}

/// An event time from JSON: an RFC 3339 string, or a number of Unix milliseconds. Returns
/// Unix microseconds.
pub fn parse_timestamp(v: &Json) -> Result<i64, String> {
    match v {
        Json::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_micros())
            .map_err(|e| format!("'{s}' is not an RFC 3339 time ({e})")),
        Json::Number(n) => n
            .as_i64()
            .filter(|ms| (0..=i64::MAX / 1000).contains(ms))
            .map(|ms| ms * 1000)
            .ok_or_else(|| format!("{n} is not a time in Unix milliseconds")),
        other => Err(format!(
            "{other} is not a time (an RFC 3339 string or Unix milliseconds)"
        )),
    }
}

fn float(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn items<T>(v: &Json, what: &str, each: impl Fn(&Json) -> Option<T>) -> Result<Vec<T>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("{v} is not a JSON array of {what}"))?;
    list.iter()
        .map(|x| each(x).ok_or_else(|| format!("{x} in a list is not {what}")))
        .collect()
}

/// A value of type `ty` from JSON (`null` is a stored null).
pub fn parse_value(ty: FeatureType, v: &Json) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let wrong = || format!("{v} is not a {ty} value");
    let value = match ty {
        FeatureType::Bool => Value::Bool(v.as_bool().ok_or_else(wrong)?),
        FeatureType::I64 => Value::I64(v.as_i64().ok_or_else(wrong)?),
        FeatureType::F32 => Value::F32(float(v).ok_or_else(wrong)? as f32),
        FeatureType::F64 => Value::F64(float(v).ok_or_else(wrong)?),
        FeatureType::String => Value::String(v.as_str().ok_or_else(wrong)?.to_owned()),
        FeatureType::Bytes => Value::Bytes(base64(v).map_err(|e| format!("{} ({e})", wrong()))?),
        FeatureType::Vector(_) => {
            Value::Vector(items(v, "numbers", |x| float(x).map(|f| f as f32))?)
        }
        FeatureType::ListF32 => {
            Value::ListF32(items(v, "numbers", |x| float(x).map(|f| f as f32))?)
        }
        FeatureType::ListI64 => Value::ListI64(items(v, "integers", Json::as_i64)?),
        FeatureType::ListString => {
            Value::ListString(items(v, "strings", |x| x.as_str().map(str::to_owned))?)
        }
    };
    Ok(value)
}

/// Bytes from a base64 JSON string.
pub fn base64(v: &Json) -> Result<Vec<u8>, String> {
    let s = v.as_str().ok_or("bytes are a base64 string")?;
    BASE64.decode(s).map_err(|e| format!("not base64: {e}"))
}

/// The entity key of a Quiver group of `key_type` from JSON: an integer for `i64`, a string
/// for `string`, a base64 string for `bytes`.
pub fn entity_key(key_type: KeyType, v: &Json) -> Result<EntityKey, String> {
    let key = match key_type {
        KeyType::I64 => v.as_i64().map(EntityKey::I64),
        KeyType::String => v.as_str().map(|s| EntityKey::String(s.to_owned())),
        KeyType::Bytes => base64(v).ok().map(EntityKey::Bytes),
    };
    key.ok_or_else(|| format!("entity {v} is not a {key_type} key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(v: &Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_round_trip_through_json() {
        let cases = [
            (FeatureType::Bool, Value::Bool(true)),
            (FeatureType::I64, Value::I64(-7)),
            (FeatureType::F32, Value::F32(0.1)),
            (FeatureType::F64, Value::F64(1e300)),
            (FeatureType::String, Value::String("a\"b".into())),
            (FeatureType::Bytes, Value::Bytes(vec![0, 255, 7])),
            (FeatureType::Vector(2), Value::Vector(vec![0.5, -1.25])),
            (FeatureType::ListI64, Value::ListI64(vec![1, 2])),
            (FeatureType::ListString, Value::ListString(vec!["x".into()])),
            (FeatureType::F64, Value::Null),
        ];
        for (ty, v) in cases {
            let j: Json = serde_json::from_str(&text(&v)).unwrap();
            assert_eq!(parse_value(ty, &j).unwrap(), v, "{ty}");
        }
        assert_eq!(text(&Value::F32(0.1)), "0.1");
        assert_eq!(text(&Value::F64(f64::NAN)), "\"NaN\"");
        let back = parse_value(FeatureType::F32, &json!("-Infinity")).unwrap();
        assert_eq!(back, Value::F32(f32::NEG_INFINITY));
        assert!(parse_value(FeatureType::I64, &json!("7")).is_err());
        assert!(parse_value(FeatureType::ListI64, &json!([1, "2"])).is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_with_feast_precision() {
        let t = |us| {
            let mut out = Vec::new();
            write_timestamp(&mut out, us);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(t(0), "\"1970-01-01T00:00:00Z\"");
        assert_eq!(t(1_700_000_000_000_000), "\"2023-11-14T22:13:20Z\"");
        assert_eq!(t(1_700_000_000_123_000), "\"2023-11-14T22:13:20.123Z\"");
        assert_eq!(t(1_700_000_000_123_456), "\"2023-11-14T22:13:20.123456Z\"");
        let back = parse_timestamp(&json!("2023-11-14T22:13:20.123456Z")).unwrap();
        assert_eq!(back, 1_700_000_000_123_456);
        assert_eq!(
            parse_timestamp(&json!(1_700_000_000_123i64)).unwrap(),
            1_700_000_000_123_000
        );
        assert!(parse_timestamp(&json!("yesterday")).is_err());
        assert!(parse_timestamp(&json!(-1)).is_err());
    }
}
