//! `quiver history GROUP KEY [--feature NAME ...] [--from TIME] [--to TIME] [--known-at TIME]`:
//! every version of one entity's features in a range of event times, read a page at a time.

use std::sync::Arc;

use quiver_engine::feature::{EntityKey, GroupSchema, Status};
use quiver_engine::history::{HistoryEntry, HistoryRange};
use serde_json::json;

use super::backend::Backend;
use super::command::HistoryArgs;
use super::data::unknown_feature;
use super::error::{CliError, CliResult};
use super::json::{history_entry_to_json, key_to_json};
use super::output::{time_text, value_text, Out};
use super::parse::parse_key;

pub fn run(args: &HistoryArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let schema = history_group(backend, &args.group)?;
    let key = parse_key(schema.key_type, &args.key).map_err(CliError::Usage)?;
    let features = chosen_features(&schema, &args.features)?;
    let range = time_range(args.from, args.to, args.known_at)?;
    let versions = read_all(backend, &schema.name, &key, &features, range)?;
    let doc = json!({
        "group": schema.name, "key": key_to_json(&key), "features": features,
        "from_ms": range.from_ms, "to_ms": range.to_ms, "known_at_ms": range.known_at_ms,
        "versions": versions.iter().map(history_entry_to_json).collect::<Vec<_>>(),
    });
    out.emit(doc, || print_history(&schema.name, &key, &versions));
    Ok(())
}

/// The schema of `group`, which must keep history.
pub fn history_group(backend: &mut dyn Backend, group: &str) -> CliResult<Arc<GroupSchema>> {
    let schema = backend.describe_group(group)?;
    if schema.history.is_none() {
        return Err(CliError::Rejected(format!(
            "group '{group}' keeps no history; turn it on with: quiver group alter {group} --history 90d"
        )));
    }
    Ok(schema)
}

/// The named features (each must exist), or every live feature of the group.
pub fn chosen_features(schema: &GroupSchema, names: &[String]) -> CliResult<Vec<String>> {
    if names.is_empty() {
        return Ok(schema
            .features
            .iter()
            .filter(|f| !f.deprecated)
            .map(|f| f.name.clone())
            .collect());
    }
    for name in names {
        schema
            .feature(name)
            .ok_or_else(|| unknown_feature(schema, name))?;
    }
    Ok(names.to_vec())
}

/// `--from`, `--to` and `--known-at` as a range: the whole history window by default.
pub fn time_range(
    from: Option<u64>,
    to: Option<u64>,
    known_at: Option<u64>,
) -> CliResult<HistoryRange> {
    let range = HistoryRange {
        from_ms: from.unwrap_or(0),
        to_ms: to.unwrap_or(u64::MAX),
        known_at_ms: known_at,
    };
    if range.from_ms > range.to_ms {
        return Err(CliError::usage(format!(
            "--from {} is after --to {}",
            time_text(range.from_ms),
            time_text(range.to_ms)
        )));
    }
    Ok(range)
}

/// Every version in `range`, page by page.
pub fn read_all(
    backend: &mut dyn Backend,
    group: &str,
    key: &EntityKey,
    features: &[String],
    range: HistoryRange,
) -> CliResult<Vec<HistoryEntry>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let (entries, next) = backend.history_page(group, key, features, range, after)?;
        all.extend(entries);
        match next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

fn print_history(group: &str, key: &EntityKey, versions: &[HistoryEntry]) {
    let plural = if versions.len() == 1 { "" } else { "s" };
    println!("{group} / {key}: {} version{plural}", versions.len());
    if versions.is_empty() {
        return;
    }
    let width = versions
        .iter()
        .map(|v| v.feature.len())
        .max()
        .unwrap_or(0)
        .max("feature".len());
    println!(
        "  {:<24}  {:<24}  {:<width$}  value",
        "event time", "written at", "feature"
    );
    for v in versions {
        let value = match v.status {
            Status::Present => value_text(&v.value),
            Status::Null => "null".to_string(),
            _ => "<removed>".to_string(),
        };
        println!(
            "  {:<24}  {:<24}  {:<width$}  {value}",
            time_text(v.event_time_ms),
            time_text(v.write_time_ms),
            v.feature
        );
    }
}
