//! `quiver ping|stats|put|get|delete`.

use quiver_engine::feature::{
    EntityKey, FeatureRef, FeatureValue, GroupSchema, PutOptions, Status, Value, WriteMode,
};
use quiver_engine::history::AsOf;
use quiver_engine::Durability;
use serde_json::json;

use super::backend::{Backend, PutRow};
use super::command::{DeleteArgs, GetArgs, ModeArg, PutArgs};
use super::error::{CliError, CliResult};
use super::json::{feature_value_to_json, key_to_json};
use super::output::{print_json_tree, print_values, time_text, Out};
use super::parse::{parse_assignment, parse_key, parse_value};

pub fn ping(backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let rtt = backend.ping()?;
    let us = rtt.as_micros() as u64;
    out.emit(
        json!({ "ok": true, "target": backend.target(), "rtt_us": us }),
        || println!("pong from {} in {us} us", backend.target()),
    );
    Ok(())
}

pub fn stats(backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let stats = backend.stats()?;
    out.emit(stats.clone(), || {
        println!("stats of {}", backend.target());
        print_json_tree(&stats, 2);
    });
    Ok(())
}

pub fn write_mode(mode: ModeArg) -> WriteMode {
    match mode {
        ModeArg::Merge => WriteMode::Merge,
        ModeArg::Replace => WriteMode::ReplaceRow,
        ModeArg::Create => WriteMode::CreateOnly,
        ModeArg::Update => WriteMode::UpdateOnly,
    }
}

pub fn put(args: &PutArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let schema = backend.describe_group(&args.group)?;
    let key = parse_key(schema.key_type, &args.key).map_err(CliError::Usage)?;
    let values = args
        .values
        .iter()
        .map(|text| typed_assignment(&schema, text))
        .collect::<CliResult<Vec<_>>>()?;
    let row = PutRow {
        key,
        event_time_ms: args.ts.unwrap_or_else(super::now_ms),
        values,
        write_time_ms: None,
    };
    let mut opts = PutOptions {
        mode: write_mode(args.mode),
        ..PutOptions::default()
    };
    if args.sync {
        opts.durability = Some(Durability::Sync);
    }
    let result = backend.put(&args.group, &row, &opts)?;
    let doc = json!({
        "group": args.group, "key": key_to_json(&row.key), "written": result.written,
        "skipped_stale": result.skipped_stale, "generation": result.generation,
        "dropped": result.dropped,
    });
    out.emit(doc, || {
        print!("put {}/{}: {} written", args.group, row.key, result.written);
        if result.skipped_stale > 0 {
            print!(
                ", {} skipped (the store holds newer values)",
                result.skipped_stale
            );
        }
        if result.dropped > 0 {
            print!(
                ", {} dropped (they broke a rule of their feature)",
                result.dropped
            );
        }
        println!(", generation {}", result.generation);
    });
    Ok(())
}

/// `NAME=VALUE` typed by the schema's feature NAME.
fn typed_assignment(schema: &GroupSchema, text: &str) -> CliResult<(String, Value)> {
    let (name, raw) = parse_assignment(text).map_err(CliError::Usage)?;
    let feature = schema
        .feature(&name)
        .ok_or_else(|| unknown_feature(schema, &name))?;
    let value = parse_value(feature.ty, &raw).map_err(|reason| {
        CliError::Rejected(format!(
            "feature '{name}' of group '{}': {reason}",
            schema.name
        ))
    })?;
    Ok((name, value))
}

pub fn unknown_feature(schema: &GroupSchema, name: &str) -> CliError {
    let known: Vec<&str> = schema
        .features
        .iter()
        .filter(|f| !f.deprecated)
        .map(|f| f.name.as_str())
        .collect();
    CliError::NotFound(format!(
        "unknown feature '{name}' in group '{}' (its features: {})",
        schema.name,
        known.join(", ")
    ))
}

pub fn get(args: &GetArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    if let Some(file) = &args.keys {
        return get_keys(file, &args.args, backend, out);
    }
    let (key, refs, mut title) = match &args.entity {
        Some(key_text) => cross_group_request(key_text, &args.args, backend)?,
        None => group_request(&args.args, backend)?,
    };
    let at = args.as_of.map(|t| match args.known_at {
        Some(k) => AsOf::known_at(t, k),
        None => AsOf::event_time(t),
    });
    let values = match at {
        Some(at) => {
            title.push_str(&as_of_text(&at));
            backend.get_as_of(&key, &refs, at)?
        }
        None => backend.get(&key, &refs)?,
    };
    let single_group = args.entity.is_none();
    let rows: Vec<(String, _)> = refs
        .iter()
        .zip(values)
        .map(|(r, fv)| {
            (
                if single_group {
                    r.feature.clone()
                } else {
                    r.to_string()
                },
                fv,
            )
        })
        .collect();
    let mut doc = json!({
        "key": key_to_json(&key),
        "features": rows.iter().map(|(name, fv)| feature_value_to_json(name, fv)).collect::<Vec<_>>(),
    });
    if let Some(at) = at {
        doc["as_of_ms"] = json!(at.event_limit_ms);
        doc["known_at_ms"] = json!(at.known_at_ms);
    }
    out.emit(doc, || print_values(&title, &rows));
    corrupt_features(&title, &rows)
}

/// " as of TIME[, as known at TIME]" for a title.
fn as_of_text(at: &AsOf) -> String {
    let mut text = format!(" as of {}", time_text(at.event_limit_ms));
    if let Some(k) = at.known_at_ms {
        text.push_str(&format!(", as known at {}", time_text(k)));
    }
    text
}

/// Exit code 3 (after the values are printed) when a feature read CORRUPT: its row is damaged
/// on the device, and no older value was served in its place.
fn corrupt_features(title: &str, rows: &[(String, FeatureValue)]) -> CliResult<()> {
    let damaged: Vec<&str> = rows
        .iter()
        .filter(|(_, fv)| fv.status == Status::Corrupt)
        .map(|(name, _)| name.as_str())
        .collect();
    if damaged.is_empty() {
        return Ok(());
    }
    Err(CliError::Corruption {
        place: title.to_string(),
        detail: format!(
            "{} read CORRUPT: the stored row is damaged on the device; it reads so (never as an \
             older value) until it is rewritten or deleted",
            damaged.join(", ")
        ),
    })
}

/// Entities read per backend call by `get --keys`.
const KEYS_PER_GET: usize = 1_000;
/// Entities named in the exit-3 message of `get --keys`.
const NAMED_CORRUPT_KEYS: usize = 10;

/// `get --keys FILE GROUP [NAME ...]`: the same features of every entity listed in FILE (one
/// key per line, blank lines skipped), read in batches. Exit code 3, after every entity is
/// printed, when any read CORRUPT.
fn get_keys(
    file: &std::path::Path,
    args: &[String],
    backend: &mut dyn Backend,
    out: Out,
) -> CliResult<()> {
    let [group, names @ ..] = args else {
        return Err(CliError::usage("get --keys FILE needs GROUP [NAME ...]"));
    };
    let schema = backend.describe_group(group)?;
    let refs = group_refs(&schema, names)?;
    let text = std::fs::read_to_string(file).map_err(|e| CliError::file(file, e))?;
    let keys = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            parse_key(schema.key_type, line.trim())
                .map_err(|e| CliError::file(file, format!("line {}: {e}", n + 1)))
        })
        .collect::<CliResult<Vec<EntityKey>>>()?;
    let mut answers = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(KEYS_PER_GET) {
        answers.extend(backend.get_many(chunk, &refs)?);
    }
    let rows: Vec<(&EntityKey, Vec<(String, FeatureValue)>)> = keys
        .iter()
        .zip(answers)
        .map(|(k, values)| {
            let named = refs.iter().map(|r| r.feature.clone()).zip(values);
            (k, named.collect())
        })
        .collect();
    let doc = json!({
        "group": group,
        "entities": rows.iter().map(|(key, values)| json!({
            "key": key_to_json(key),
            "features": values.iter().map(|(name, fv)| feature_value_to_json(name, fv)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    out.emit(doc, || {
        for (key, values) in &rows {
            print_values(&format!("{group} / {key}"), values);
        }
    });
    let corrupt: Vec<String> = rows
        .iter()
        .filter(|(_, values)| values.iter().any(|(_, fv)| fv.status == Status::Corrupt))
        .map(|(key, _)| key.to_string())
        .collect();
    if corrupt.is_empty() {
        return Ok(());
    }
    let more = corrupt.len().saturating_sub(NAMED_CORRUPT_KEYS);
    Err(CliError::Corruption {
        place: format!("group '{group}'"),
        detail: format!(
            "{} of {} entities read CORRUPT ({}{}): their stored rows are damaged on the \
             device; they read so (never as an older value) until rewritten or deleted",
            corrupt.len(),
            rows.len(),
            corrupt[..corrupt.len().min(NAMED_CORRUPT_KEYS)].join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
    })
}

type GetRequest = (EntityKey, Vec<FeatureRef>, String);

/// The features `names` of a group (all live ones when none are named), checked.
fn group_refs(schema: &GroupSchema, names: &[String]) -> CliResult<Vec<FeatureRef>> {
    let group = &schema.name;
    Ok(if names.is_empty() {
        schema
            .features
            .iter()
            .filter(|f| !f.deprecated)
            .map(|f| FeatureRef::new(group, &f.name))
            .collect()
    } else {
        for name in names {
            schema
                .feature(name)
                .ok_or_else(|| unknown_feature(schema, name))?;
        }
        names.iter().map(|n| FeatureRef::new(group, n)).collect()
    })
}

/// `GROUP KEY [NAME ...]`: all live features of the group when none are named.
fn group_request(args: &[String], backend: &mut dyn Backend) -> CliResult<GetRequest> {
    let [group, key_text, names @ ..] = args else {
        return Err(CliError::usage(
            "get needs GROUP KEY [NAME ...], or --entity KEY GROUP:FEATURE ...",
        ));
    };
    let schema = backend.describe_group(group)?;
    let key = parse_key(schema.key_type, key_text).map_err(CliError::Usage)?;
    let refs = group_refs(&schema, names)?;
    let title = format!("{group} / {key}");
    Ok((key, refs, title))
}

/// `--entity KEY GROUP:FEATURE ...`: every named group must share one key type.
fn cross_group_request(
    key_text: &str,
    args: &[String],
    backend: &mut dyn Backend,
) -> CliResult<GetRequest> {
    let refs = args
        .iter()
        .map(|text| {
            text.parse::<FeatureRef>()
                .map_err(|e| CliError::Usage(e.to_string()))
        })
        .collect::<CliResult<Vec<_>>>()?;
    let mut key_type = None;
    for r in &refs {
        let schema = backend.describe_group(&r.group)?;
        match key_type {
            None => key_type = Some((schema.key_type, r.group.clone())),
            Some((kt, ref first)) if kt != schema.key_type => {
                return Err(CliError::usage(format!(
                    "groups '{first}' ({kt} keys) and '{}' ({} keys) cannot share one entity key",
                    r.group, schema.key_type
                )))
            }
            Some(_) => {}
        }
    }
    let (key_type, _) =
        key_type.ok_or_else(|| CliError::usage("get --entity needs at least one GROUP:FEATURE"))?;
    let key = parse_key(key_type, key_text).map_err(CliError::Usage)?;
    let title = format!("entity {key}");
    Ok((key, refs, title))
}

pub fn delete(args: &DeleteArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let schema = backend.describe_group(&args.group)?;
    let key = parse_key(schema.key_type, &args.key).map_err(CliError::Usage)?;
    let existed = backend.delete(&args.group, &key)?;
    out.emit(
        json!({ "group": args.group, "key": key_to_json(&key), "existed": existed }),
        || {
            if existed {
                println!("deleted {}/{key}", args.group);
            } else {
                println!("{}/{key} did not exist", args.group);
            }
        },
    );
    Ok(())
}
