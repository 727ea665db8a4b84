//! Strict parsers for command-line text: durations, sizes, feature specs, keys and values.
//!
//! Each parser accepts exactly the documented syntax and names what was wrong otherwise; none
//! guesses (no "7 days", no "1.5h", no decimal "GB").

use quiver_engine::feature::{EntityKey, FeatureSpec, FeatureType, KeyType, Value};

/// Longest duration accepted anywhere, in seconds (the store's TTL limit is 10 years).
pub const MAX_DURATION_S: u64 = u32::MAX as u64;
/// Largest size accepted (a data file of 16 TiB).
pub const MAX_SIZE_BYTES: u64 = 16 << 40;
/// Longest hex text accepted for a bytes key or value, in characters.
pub const MAX_HEX_CHARS: usize = 2 * 1024 * 1024;

/// Parses `7d`, `12h`, `30m`, `45s` into seconds. The number is a plain non-negative integer;
/// the unit is required.
pub fn parse_duration_s(text: &str) -> Result<u32, String> {
    let bad = || {
        format!("invalid duration '{text}': expected a whole number and a unit s, m, h or d (e.g. 45s, 30m, 12h, 7d)")
    };
    let unit = text.chars().last().ok_or_else(bad)?;
    let digits = &text[..text.len() - unit.len_utf8()];
    let scale: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    let count = parse_digits(digits).ok_or_else(bad)?;
    let seconds = count
        .checked_mul(scale)
        .filter(|s| *s <= MAX_DURATION_S)
        .ok_or_else(|| {
            format!("duration '{text}' exceeds the limit of {MAX_DURATION_S} seconds")
        })?;
    u32::try_from(seconds).map_err(|_| bad())
}

/// Parses a TTL: a duration or `none`.
pub fn parse_ttl(text: &str) -> Result<Option<u32>, String> {
    if text == "none" {
        return Ok(None);
    }
    let ttl = parse_duration_s(text)?;
    if ttl == 0 {
        return Err(format!("TTL '{text}' is zero: use 'none' for no TTL"));
    }
    Ok(Some(ttl))
}

/// Parses a drift threshold: a finite number above 0 and at most
/// [`quiver_engine::feature::MAX_DRIFT_THRESHOLD`].
pub fn parse_threshold(text: &str) -> Result<f64, String> {
    let max = quiver_engine::feature::MAX_DRIFT_THRESHOLD;
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= max => Ok(v),
        _ => Err(format!(
            "invalid threshold '{text}': expected a number above 0 and at most {max} (e.g. 0.2)"
        )),
    }
}

/// Parses a point in time (`what` names it in errors): ms since the epoch, or RFC 3339
/// (`2026-01-02T03:04:05Z`, `2026-01-02T04:04:05+01:00`).
pub fn parse_time(what: &str, text: &str) -> Result<u64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("{what} '{text}' is out of range"));
    }
    let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| {
        format!(
            "invalid {what} '{}': expected ms since the epoch or RFC 3339 (e.g. 2026-01-02T03:04:05Z)",
            clip(text)
        )
    })?;
    u64::try_from(time.timestamp_millis()).map_err(|_| format!("{what} '{text}' is before 1970"))
}

/// A command-line TIME: ms since the epoch, or RFC 3339.
pub fn parse_time_ms(text: &str) -> Result<u64, String> {
    parse_time("time", text)
}

/// Parses a history retention: a duration (`90d`), or `off` for no history (`None`).
pub fn parse_history(text: &str) -> Result<Option<u32>, String> {
    if text == "off" {
        return Ok(None);
    }
    let retention = parse_duration_s(text)?;
    if retention == 0 {
        return Err(format!(
            "history retention '{text}' is zero: use 'off' to keep no history"
        ));
    }
    Ok(Some(retention))
}

/// Parses a history version count: superseded versions kept per feature and entity,
/// 1..=`MAX_HISTORY_VERSIONS`.
pub fn parse_max_versions(text: &str) -> Result<u32, String> {
    let max = quiver_engine::history::MAX_HISTORY_VERSIONS;
    match text.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid max versions '{}': expected a whole number of superseded versions to keep \
             per feature, 1 to {max}",
            clip(text)
        )),
    }
}

/// Parses a version count, or `off` for no count bound (`None`).
pub fn parse_max_versions_or_off(text: &str) -> Result<Option<u32>, String> {
    if text == "off" {
        return Ok(None);
    }
    parse_max_versions(text).map(Some)
}

/// Parses `4GiB`, `512MiB`, `64KiB`, `1TiB` or a plain byte count.
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid size '{text}': expected a whole number with an optional unit KiB, MiB, GiB or TiB (e.g. 4GiB)")
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(bad()),
    };
    let count = parse_digits(digits).ok_or_else(bad)?;
    count
        .checked_mul(scale)
        .filter(|b| *b <= MAX_SIZE_BYTES)
        .ok_or_else(|| format!("size '{text}' exceeds the limit of 16TiB"))
}

fn parse_digits(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parses `NAME:TYPE` (e.g. `embedding:f32[16]`) into a feature spec.
pub fn parse_feature_spec(text: &str) -> Result<FeatureSpec, String> {
    let (name, ty) = text
        .split_once(':')
        .ok_or_else(|| format!("invalid feature '{text}': expected NAME:TYPE, e.g. ctr_7d:f32"))?;
    if name.is_empty() {
        return Err(format!("invalid feature '{text}': the name is empty"));
    }
    let ty: FeatureType = ty.parse().map_err(|e| format!("feature '{name}': {e}"))?;
    Ok(FeatureSpec::new(name, ty))
}

/// Parses `NAME=VALUE` into its two halves; the value is typed later, by the group's schema.
pub fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!(
            "invalid value '{text}': expected NAME=VALUE, e.g. age=31"
        )),
    }
}

/// Parses an entity key for a group of `key_type`: text as is, a decimal i64, or hex bytes.
pub fn parse_key(key_type: KeyType, text: &str) -> Result<EntityKey, String> {
    match key_type {
        KeyType::String => Ok(EntityKey::String(text.to_string())),
        KeyType::I64 => text.parse::<i64>().map(EntityKey::I64).map_err(|_| {
            format!("invalid key '{text}': the group's keys are i64 (a decimal integer)")
        }),
        KeyType::Bytes => parse_hex(text)
            .map(EntityKey::Bytes)
            .map_err(|e| format!("invalid key '{text}': the group's keys are bytes, {e}")),
    }
}

/// Decodes hex text, with or without a `0x` prefix.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let hex = text.strip_prefix("0x").unwrap_or(text);
    if hex.len() > MAX_HEX_CHARS {
        return Err(format!(
            "hex text of {} characters exceeds the limit of {MAX_HEX_CHARS}",
            hex.len()
        ));
    }
    if hex.len() % 2 != 0 {
        return Err("written as hex, which needs an even number of digits".to_string());
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    hex.as_bytes()
        .chunks(2)
        .map(|pair| match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err("written as hex, which allows only 0-9 and a-f".to_string()),
        })
        .collect()
}

/// Parses a value written as text (a command-line `NAME=VALUE` or a CSV cell) as `ty`.
///
/// `null` is the null value for every type; a string that must read `null` is written as the
/// JSON string `"null"`. Vectors and lists are JSON arrays; bytes are hex.
pub fn parse_value(ty: FeatureType, text: &str) -> Result<Value, String> {
    if text == "null" {
        return Ok(Value::Null);
    }
    let expected = || format!("expected {ty}, got '{}'", clip(text));
    match ty {
        FeatureType::Bool => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{}: write true or false", expected())),
        },
        FeatureType::I64 => text.parse().map(Value::I64).map_err(|_| expected()),
        FeatureType::F32 => parse_f32(text).map(Value::F32).ok_or_else(expected),
        FeatureType::F64 => text.parse().map(Value::F64).map_err(|_| expected()),
        FeatureType::String => Ok(Value::String(parse_text(text))),
        FeatureType::Bytes => parse_hex(text)
            .map(Value::Bytes)
            .map_err(|e| format!("{}: {e}", expected())),
        FeatureType::Vector(_)
        | FeatureType::ListI64
        | FeatureType::ListF32
        | FeatureType::ListString => {
            let json: serde_json::Value = serde_json::from_str(text)
                .map_err(|_| format!("{}: write a JSON array such as [0.1,0.2]", expected()))?;
            super::json::value_from_json(ty, &json)
        }
    }
}

/// A string value: as given, unless written as a JSON string (`"null"`, `"a\"b"`).
fn parse_text(text: &str) -> String {
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return s;
        }
    }
    text.to_string()
}

/// An f32 from text, refusing values that only fit an f64 (they would silently become inf).
pub fn parse_f32(text: &str) -> Option<f32> {
    let wide: f64 = text.parse().ok()?;
    let narrow = wide as f32;
    (narrow.is_finite() == wide.is_finite()).then_some(narrow)
}

/// The first 40 characters of `text`, for error messages.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_strictly() {
        assert_eq!(parse_duration_s("45s"), Ok(45));
        assert_eq!(parse_duration_s("30m"), Ok(1800));
        assert_eq!(parse_duration_s("12h"), Ok(43_200));
        assert_eq!(parse_duration_s("7d"), Ok(604_800));
        for bad in [
            "", "7", "d", "1.5h", "-1s", "7 d", "7D", "7days", "1w", "s7", "+5s",
        ] {
            assert!(parse_duration_s(bad).is_err(), "{bad}");
        }
        assert!(parse_duration_s("99999999999d")
            .unwrap_err()
            .contains("limit"));
        assert_eq!(parse_ttl("none"), Ok(None));
        assert!(parse_ttl("0s").is_err());
    }

    #[test]
    fn times_and_history_settings_parse() {
        assert_eq!(parse_time_ms("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time_ms("1970-01-01T01:00:01+01:00"), Ok(1000));
        for bad in ["", "yesterday", "-5", "1969-12-31T23:59:59Z", "2026-01-02"] {
            assert!(parse_time_ms(bad).is_err(), "{bad}");
        }
        assert!(parse_time("write time", "x")
            .unwrap_err()
            .contains("write time"));
        assert_eq!(parse_history("90d"), Ok(Some(90 * 86_400)));
        assert_eq!(parse_history("off"), Ok(None));
        assert!(parse_history("0d").is_err());
        assert!(parse_history("none").is_err());
        assert_eq!(parse_max_versions("5"), Ok(5));
        assert_eq!(parse_max_versions_or_off("off"), Ok(None));
        assert_eq!(parse_max_versions_or_off("100000"), Ok(Some(100_000)));
        for bad in ["0", "100001", "-1", "x"] {
            let err = parse_max_versions(bad).unwrap_err();
            assert!(err.contains("1 to 100000"), "{err}");
        }
    }

    #[test]
    fn sizes_parse_strictly() {
        assert_eq!(parse_size_bytes("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size_bytes("4096"), Ok(4096));
        for bad in ["", "GiB", "4GB", "4 GiB", "4gib", "1.5GiB", "-1"] {
            assert!(parse_size_bytes(bad).is_err(), "{bad}");
        }
        assert!(parse_size_bytes("17TiB").unwrap_err().contains("limit"));
    }

    #[test]
    fn values_follow_the_feature_type() {
        assert_eq!(parse_value(FeatureType::I64, "-3"), Ok(Value::I64(-3)));
        assert_eq!(
            parse_value(FeatureType::Bool, "true"),
            Ok(Value::Bool(true))
        );
        assert_eq!(parse_value(FeatureType::F32, "0.5"), Ok(Value::F32(0.5)));
        assert_eq!(parse_value(FeatureType::String, "null"), Ok(Value::Null));
        assert_eq!(
            parse_value(FeatureType::String, "\"null\""),
            Ok(Value::String("null".into()))
        );
        assert_eq!(
            parse_value(FeatureType::Bytes, "0x00ff"),
            Ok(Value::Bytes(vec![0, 255]))
        );
        assert_eq!(
            parse_value(FeatureType::Vector(2), "[0.5, 1]"),
            Ok(Value::Vector(vec![0.5, 1.0]))
        );
        assert_eq!(
            parse_value(FeatureType::ListString, r#"["a","b"]"#),
            Ok(Value::ListString(vec!["a".into(), "b".into()]))
        );
        assert!(parse_value(FeatureType::Vector(3), "[0.5, 1]")
            .unwrap_err()
            .contains("dimension"));
        assert!(parse_value(FeatureType::I64, "1.5").is_err());
        assert!(parse_value(FeatureType::Bool, "yes").is_err());
        assert!(parse_value(FeatureType::F32, "1e300").is_err());
        assert!(parse_value(FeatureType::Bytes, "abc").is_err());
        assert!(parse_value(FeatureType::ListI64, "[1, 2.5]").is_err());
    }

    #[test]
    fn keys_and_specs_parse() {
        assert_eq!(parse_key(KeyType::I64, "42"), Ok(EntityKey::I64(42)));
        assert!(parse_key(KeyType::I64, "u42").is_err());
        assert_eq!(
            parse_key(KeyType::Bytes, "0a0b"),
            Ok(EntityKey::Bytes(vec![10, 11]))
        );
        let spec = parse_feature_spec("emb:f32[16]").unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.ty),
            ("emb", FeatureType::Vector(16))
        );
        assert!(parse_feature_spec("emb").is_err());
        assert!(parse_feature_spec("emb:float").is_err());
        assert_eq!(parse_assignment("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_assignment("=1").is_err());
    }
}
