//! Human-readable printing; `--json` output is built from `json.rs` and printed here too.

use quiver_engine::feature::{Compression, FeatureValue, GroupSchema, Status, Value};
use quiver_engine::history::HistoryPolicy;
use serde_json::Value as Json;

use super::json::{hex, status_name};

/// Where results go: JSON documents or text, always on stdout.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints `doc` in JSON mode, or runs `human` otherwise.
    pub fn emit(&self, doc: Json, human: impl FnOnce()) {
        if self.json {
            println!("{doc}");
        } else {
            human();
        }
    }
}

/// Vectors and lists longer than this print clipped in text output (JSON prints them whole).
const MAX_PRINTED_ELEMENTS: usize = 8;

pub fn compression_text(compression: &Compression) -> String {
    match compression {
        Compression::None => "none".to_string(),
        Compression::Zstd { level } => format!("zstd:{level}"),
    }
}

pub fn ttl_text(ttl_s: Option<u32>) -> String {
    match ttl_s {
        None => "none".to_string(),
        Some(s) if s % 86_400 == 0 => format!("{}d", s / 86_400),
        Some(s) if s % 3600 == 0 => format!("{}h", s / 3600),
        Some(s) if s % 60 == 0 => format!("{}m", s / 60),
        Some(s) => format!("{s}s"),
    }
}

/// A history setting: the window as `create --history` takes it and the version count, or
/// `off`.
pub fn history_text(history: Option<HistoryPolicy>) -> String {
    let Some(h) = history else {
        return "off".to_string();
    };
    let window = h.retention_s.map(|r| ttl_text(Some(r)));
    let count = h.max_versions.map(|n| format!("max {n} versions"));
    [window, count]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Milliseconds since the epoch as RFC 3339 UTC.
pub fn time_text(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// `reject` or `drop`.
pub fn violation_text(mode: quiver_engine::feature::ViolationMode) -> &'static str {
    match mode {
        quiver_engine::feature::ViolationMode::Reject => "reject",
        quiver_engine::feature::ViolationMode::Drop => "drop",
    }
}

pub fn print_schema(schema: &GroupSchema) {
    println!(
        "group {} (id {}, version {})",
        schema.name, schema.id, schema.version
    );
    println!("  key type     {}", schema.key_type);
    println!("  ttl          {}", ttl_text(schema.ttl_s));
    println!("  history      {}", history_text(schema.history));
    println!("  compression  {}", compression_text(&schema.compression));
    if schema.allow_non_finite {
        println!("  non-finite   allowed");
    }
    if schema.features.iter().any(|f| !f.rules.is_empty()) {
        println!("  on violation {}", violation_text(schema.on_violation));
    }
    let q = &schema.quality;
    if let Some(s) = q.max_staleness_s {
        println!(
            "  freshness    newest write at most {} old",
            ttl_text(Some(s))
        );
    }
    if q.drift_psi.is_some() || q.drift_distance.is_some() {
        let part = |name: &str, v: Option<f64>| v.map(|v| format!("{name} > {v}"));
        let parts: Vec<String> = [part("PSI", q.drift_psi), part("distance", q.drift_distance)]
            .into_iter()
            .flatten()
            .collect();
        println!("  drift        {}", parts.join(" or "));
    }
    for (label, text) in [
        ("description", &schema.description),
        ("owner", &schema.owner),
    ] {
        if !text.is_empty() {
            println!("  {label:<12} {text}");
        }
    }
    if !schema.tags.is_empty() {
        println!("  tags         {}", schema.tags.join(", "));
    }
    println!("  features:");
    let width = schema
        .features
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0);
    for f in &schema.features {
        let note = if f.deprecated { "  (deprecated)" } else { "" };
        let rules = f.rules.texts();
        let rules = if rules.is_empty() {
            String::new()
        } else {
            format!("  rules: {}", rules.join(" "))
        };
        println!("    {:<width$}  {}{note}{rules}", f.name, f.ty);
    }
}

pub fn print_group_list(groups: &[std::sync::Arc<GroupSchema>]) {
    if groups.is_empty() {
        println!("no feature groups");
        return;
    }
    let width = groups
        .iter()
        .map(|g| g.name.len())
        .max()
        .unwrap_or(0)
        .max(5);
    println!(
        "{:<width$}  {:<6}  {:>8}  {:>6}  {:>7}  tags",
        "group", "key", "features", "ttl", "history"
    );
    for g in groups {
        let live = g.features.iter().filter(|f| !f.deprecated).count();
        println!(
            "{:<width$}  {:<6}  {:>8}  {:>6}  {:>7}  {}",
            g.name,
            g.key_type.to_string(),
            live,
            ttl_text(g.ttl_s),
            history_text(g.history),
            g.tags.join(",")
        );
    }
}

/// Prints one entity's features as an aligned table.
pub fn print_values(title: &str, rows: &[(String, FeatureValue)]) {
    println!("{title}");
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, fv) in rows {
        let status = status_name(fv.status);
        match fv.status {
            Status::Present => println!(
                "  {name:<width$}  {}  ({})",
                value_text(&fv.value),
                time_text(fv.event_time_ms)
            ),
            Status::Null => println!("  {name:<width$}  null  ({})", time_text(fv.event_time_ms)),
            _ => println!("  {name:<width$}  <{status}>"),
        }
    }
}

/// A value as text, long vectors and lists clipped.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::I64(v) => v.to_string(),
        Value::F32(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Bytes(b) => format!("0x{}", hex(b)),
        Value::Vector(v) | Value::ListF32(v) => list_text(v, |x| trim_zeros(&format!("{x:.4}"))),
        Value::ListI64(v) => list_text(v, i64::to_string),
        Value::ListString(v) => list_text(v, |s| format!("{s:?}")),
    }
}

fn list_text<T>(items: &[T], text: impl Fn(&T) -> String) -> String {
    let shown: Vec<String> = items.iter().take(MAX_PRINTED_ELEMENTS).map(text).collect();
    if items.len() > MAX_PRINTED_ELEMENTS {
        format!("[{}, ... ({} values)]", shown.join(", "), items.len())
    } else {
        format!("[{}]", shown.join(", "))
    }
}

/// `0.5000` -> `0.5`, `2.0000` -> `2`; other text unchanged.
fn trim_zeros(text: &str) -> String {
    if !text.contains('.') || text.contains(['e', 'N', 'i']) {
        return text.to_string();
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Prints a JSON object as indented `key: value` lines.
pub fn print_json_tree(json: &Json, indent: usize) {
    let Json::Object(map) = json else {
        println!("{:indent$}{json}", "");
        return;
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    for (key, value) in map {
        match value {
            Json::Object(_) => {
                println!("{:indent$}{key}:", "");
                print_json_tree(value, indent + 2);
            }
            Json::String(s) => println!("{:indent$}{key:<width$}  {s}", ""),
            other => println!("{:indent$}{key:<width$}  {other}", ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        assert_eq!(ttl_text(Some(7 * 86_400)), "7d");
        assert_eq!(ttl_text(Some(90)), "90s");
        assert_eq!(time_text(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(value_text(&Value::Vector(vec![0.5, 1.0])), "[0.5, 1]");
        let long = value_text(&Value::ListI64((0..20).collect()));
        assert!(long.ends_with("... (20 values)]"), "{long}");
    }
}
