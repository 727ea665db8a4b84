//! `quiver training-set`: a point-in-time correct training set from a spine file (Parquet or
//! CSV: entity keys, a timestamp, any other columns) and `group:feature` references, written to
//! Parquet: the spine's columns passed through, one column per feature as of each row's time
//! (null when not found or expired), and optionally a status column per feature.
//!
//! Streamed: the spine is read in chunks of `--batch-rows` rows; each chunk is joined by the
//! store (`quiver_engine::training`) and written as one row group, so memory is bounded by the
//! chunk whatever the spine's size. The file is written as `OUT.partial` and renamed when
//! complete.

mod csv_spine;
mod leaf;
mod sink;
mod spine;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use quiver_engine::feature::{FeatureRef, FeatureType, Status};
use quiver_engine::training::{SpineBatch, TimeMode};
use serde_json::json;

use super::backend::Backend;
use super::command::TrainingSetArgs;
use super::error::{CliError, CliResult};
use super::export::partial_path;
use super::load::{resolve_format, sniff, FileFormat};
use super::output::Out;
use super::progress::{bar, thousands};
use sink::{OutColumn, TrainingSink, STATUS_SUFFIX};
use spine::{SpineChunk, SpinePlan, SpineSource};

/// A `--mode` value: `event`, `as-served`, or `known-at:COLUMN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeSpec {
    pub mode: TimeMode,
    pub known_at_column: Option<String>,
}

/// Parses `--mode`.
pub fn parse_mode(text: &str) -> Result<ModeSpec, String> {
    let plain = |mode| ModeSpec {
        mode,
        known_at_column: None,
    };
    match text {
        "event" => Ok(plain(TimeMode::EventTime)),
        "as-served" => Ok(plain(TimeMode::AsServed)),
        _ => match text.strip_prefix("known-at:") {
            Some(column) if !column.is_empty() => Ok(ModeSpec {
                mode: TimeMode::KnownAt,
                known_at_column: Some(column.to_string()),
            }),
            _ => Err(format!(
                "invalid mode '{text}': expected event, as-served or known-at:COLUMN"
            )),
        },
    }
}

/// What the command resolved from its arguments and the store.
struct Request {
    features: Vec<FeatureRef>,
    columns: Vec<OutColumn>,
    plan: SpinePlan,
}

pub fn run(args: &TrainingSetArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let format = resolve_format(&args.spine, args.format)?;
    if format == FileFormat::Jsonl {
        return Err(CliError::usage(
            "a spine is Parquet (.parquet) or CSV (.csv), not JSON Lines",
        ));
    }
    if args.out.exists() && !args.force {
        return Err(CliError::file(
            &args.out,
            "already exists (pass --force to overwrite)",
        ));
    }
    if same_file(&args.spine, &args.out) {
        return Err(CliError::usage("--out must not be the spine file"));
    }
    sniff(&args.spine, format)?;
    let request = resolve(args, backend)?;
    let mut source: Box<dyn SpineSource> = match format {
        FileFormat::Parquet => Box::new(spine::ParquetSpine::open(&args.spine, &request.plan)?),
        _ => Box::new(csv_spine::CsvSpine::open(&args.spine, &request.plan)?),
    };
    check_collisions(&source.fields(), &request.columns, args.status_columns)?;
    let partial = partial_path(&args.out);
    let start = Instant::now();
    let counts =
        write(args, &request, source.as_mut(), backend, &partial, out).inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })?;
    std::fs::rename(&partial, &args.out).map_err(|e| {
        CliError::file(
            &args.out,
            format!("cannot rename {}: {e}", partial.display()),
        )
    })?;
    report(args, &counts, start.elapsed().as_secs_f64(), out);
    Ok(())
}

/// Rows written and values by status (present, null, not found, expired, corrupt).
#[derive(Debug, Default)]
struct Counts {
    rows: u64,
    statuses: [u64; 5],
}

/// Where a status is counted in [`Counts::statuses`].
fn status_slot(status: Status) -> usize {
    match status {
        Status::Present => 0,
        Status::Null => 1,
        Status::NotFound => 2,
        Status::Expired => 3,
        Status::Corrupt => 4,
    }
}

fn write(
    args: &TrainingSetArgs,
    request: &Request,
    source: &mut dyn SpineSource,
    backend: &mut dyn Backend,
    partial: &Path,
    out: Out,
) -> CliResult<Counts> {
    let mut sink = TrainingSink::create(
        partial,
        source.fields(),
        &source.plain_leaves(),
        request.columns.clone(),
        args.status_columns,
    )?;
    let progress = bar(source.total_rows(), false, out.json);
    let start = Instant::now();
    let mut counts = Counts::default();
    let batch_rows = usize::try_from(args.batch_rows).unwrap_or(usize::MAX);
    // The cache serves an entity's rows in later batches: a spine joined in one batch needs
    // none.
    let cache_bytes = match source.total_rows() <= batch_rows as u64 {
        true => 0,
        false => (args.cache_mib as usize) << 20,
    };
    backend.training_cache_bytes(cache_bytes);
    loop {
        // A source's chunks end at its row groups: up to `batch_rows` rows of consecutive
        // chunks are joined as one batch, so that an entity's rows in them share its reads,
        // and each chunk is written back as a row group of its own.
        let mut chunks: Vec<SpineChunk> = Vec::new();
        let mut rows = 0usize;
        while rows < batch_rows {
            let Some(chunk) = source.next_chunk(batch_rows - rows)? else {
                break;
            };
            rows += chunk.batch.len();
            chunks.push(chunk);
        }
        if chunks.is_empty() {
            break;
        }
        let mut parts = chunks.iter_mut().map(|c| {
            let empty = SpineBatch {
                first_row: c.batch.first_row + c.batch.len() as u64,
                timestamps_ms: Vec::new(),
                keys: vec![Vec::new(); c.batch.keys.len()],
                known_at_ms: c.batch.known_at_ms.as_ref().map(|_| Vec::new()),
            };
            std::mem::replace(&mut c.batch, empty)
        });
        let mut batch = parts.next().expect("one chunk at least");
        let lens: Vec<usize> = std::iter::once(batch.len())
            .chain(parts.map(|part| {
                let len = part.len();
                batch.append(part);
                len
            }))
            .collect();
        let joined = backend.training_join(&request.features, args.mode.mode, &batch)?;
        for v in joined.columns.iter().flatten() {
            counts.statuses[status_slot(v.status)] += 1;
        }
        // Each chunk is written from its rows of the batch's answers, in place.
        let mut first = 0;
        for (chunk, len) in chunks.iter().zip(lens) {
            sink.write(chunk, &joined, first..first + len)?;
            first += len;
            counts.rows += len as u64;
            progress.set_position(counts.rows);
        }
        let rate = counts.rows as f64 / start.elapsed().as_secs_f64().max(1e-9);
        progress.set_message(format!("{} rows/s", thousands(rate as u64)));
    }
    progress.finish_and_clear();
    sink.finish()?;
    Ok(counts)
}

fn report(args: &TrainingSetArgs, counts: &Counts, seconds: f64, out: Out) {
    let rate = counts.rows as f64 / seconds.max(1e-9);
    let [present, nulls, not_found, expired, corrupt] = counts.statuses;
    let doc = json!({
        "spine": args.spine.display().to_string(),
        "out": args.out.display().to_string(),
        "mode": args.mode.mode.name(),
        "rows": counts.rows,
        "features": args.features.len(),
        "seconds": seconds,
        "rows_per_s": rate,
        "values": { "present": present, "null": nulls, "not_found": not_found, "expired": expired, "corrupt": corrupt },
    });
    out.emit(doc, || {
        println!(
            "wrote {} rows with {} features ({} mode) to {} in {seconds:.2} s ({} rows/s)",
            thousands(counts.rows),
            args.features.len(),
            args.mode.mode.name(),
            args.out.display(),
            thousands(rate as u64),
        );
        println!(
            "values: {} present, {} null, {} not found, {} expired",
            thousands(present),
            thousands(nulls),
            thousands(not_found),
            thousands(expired)
        );
    });
}

/// Resolves features, their groups' key columns and the output columns.
fn resolve(args: &TrainingSetArgs, backend: &mut dyn Backend) -> CliResult<Request> {
    let mut features: Vec<FeatureRef> = Vec::with_capacity(args.features.len());
    for text in &args.features {
        let r: FeatureRef = text
            .parse()
            .map_err(|e| CliError::usage(format!("--feature: {e}")))?;
        if features.contains(&r) {
            return Err(CliError::usage(format!("--feature {text} is given twice")));
        }
        features.push(r);
    }
    let mut key_columns: Vec<(String, String)> = Vec::new();
    for text in &args.key_columns {
        let (group, column) = text
            .split_once('=')
            .filter(|(g, c)| !g.is_empty() && !c.is_empty())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "invalid --key-column '{text}': expected GROUP=COLUMN"
                ))
            })?;
        if key_columns.iter().any(|(g, _)| g == group) {
            return Err(CliError::usage(format!(
                "--key-column for group '{group}' is given twice"
            )));
        }
        key_columns.push((group.to_string(), column.to_string()));
    }
    let mut keys: Vec<(String, String, quiver_engine::feature::KeyType)> = Vec::new();
    let mut columns = Vec::with_capacity(features.len());
    for r in &features {
        let schema = backend.describe_group(&r.group)?;
        let feature = schema.feature(&r.feature).ok_or_else(|| {
            CliError::NotFound(format!(
                "unknown feature '{}' in group '{}'",
                r.feature, r.group
            ))
        })?;
        columns.push(out_column(args, r, feature.ty));
        if keys.iter().any(|(g, _, _)| *g == r.group) {
            continue;
        }
        let column = key_columns
            .iter()
            .find(|(g, _)| *g == r.group)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "no key column for group '{}': pass --key-column {}=COLUMN",
                    r.group, r.group
                ))
            })?;
        keys.push((r.group.clone(), column, schema.key_type));
    }
    if let Some((group, _)) = key_columns
        .iter()
        .find(|(g, _)| !keys.iter().any(|(k, _, _)| k == g))
    {
        return Err(CliError::usage(format!(
            "--key-column names group '{group}', but no --feature is from it"
        )));
    }
    let plan = SpinePlan {
        keys,
        timestamp: args.timestamp_column.clone(),
        known_at: args.mode.known_at_column.clone(),
    };
    Ok(Request {
        features,
        columns,
        plan,
    })
}

fn out_column(args: &TrainingSetArgs, r: &FeatureRef, ty: FeatureType) -> OutColumn {
    let name = if args.full_feature_names {
        format!("{}__{}", r.group, r.feature)
    } else {
        r.feature.clone()
    };
    OutColumn { name, ty }
}

/// Output column names must be unique.
fn check_collisions(
    spine: &[parquet::schema::types::TypePtr],
    columns: &[OutColumn],
    status_columns: bool,
) -> CliResult<()> {
    let mut seen: HashSet<String> = spine.iter().map(|f| f.name().to_string()).collect();
    let mut added: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    if status_columns {
        added.extend(columns.iter().map(|c| format!("{}{STATUS_SUFFIX}", c.name)));
    }
    for name in added {
        if !seen.insert(name.clone()) {
            return Err(CliError::usage(format!(
                "the output would have two columns named '{name}' (a spine column or another feature): pass --full-feature-names to name features GROUP__FEATURE"
            )));
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The statuses a value column can hold, for documentation and tests.
pub const STATUS_NAMES: [(&str, Status); 4] = [
    ("present", Status::Present),
    ("null", Status::Null),
    ("not_found", Status::NotFound),
    ("expired", Status::Expired),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(parse_mode("event").unwrap().mode, TimeMode::EventTime);
        assert_eq!(parse_mode("as-served").unwrap().mode, TimeMode::AsServed);
        let known = parse_mode("known-at:seen").unwrap();
        assert_eq!(known.mode, TimeMode::KnownAt);
        assert_eq!(known.known_at_column.as_deref(), Some("seen"));
        let err = parse_mode("known-at:").unwrap_err();
        assert!(
            err.contains("expected event, as-served or known-at:COLUMN"),
            "{err}"
        );
        assert!(parse_mode("served").is_err());
        for (name, status) in STATUS_NAMES {
            assert_eq!(sink::status_name(status), name);
        }
    }
}
