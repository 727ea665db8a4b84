//! `quiver export GROUP FILE`: every row of a group, through the group scan, to JSON Lines or
//! Parquet. Each row carries the entity key (`entity`), the newest event time among its values
//! (`event_time`, ms) and its feature values, so the file loads back with `quiver load`.
//!
//! With `--history`, every version kept in the group's history instead, one row per entity
//! and version (see `history.rs`).
//!
//! The file is written beside its final name (`FILE.partial`) and renamed when complete, so a
//! failed export never leaves a truncated file under the requested name.

mod history;
mod jsonl;
pub(crate) mod parquet;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use quiver_engine::feature::{GroupSchema, ScanItem, Status};
use quiver_engine::ScanCursor;
use serde_json::json;

use super::backend::Backend;
use super::command::ExportArgs;
use super::error::{CliError, CliResult};
use super::load::{resolve_format, FileFormat};
use super::output::Out;
use super::progress::thousands;

/// Rows asked of the store per scan call.
pub const SCAN_CHUNK_ITEMS: usize = 1000;
/// Name of the key column in exported files.
pub const KEY_COLUMN: &str = "entity";
/// Name of the event-time column in exported files.
pub const TS_COLUMN: &str = "event_time";

/// A writer of one output format.
trait RowSink {
    fn write(&mut self, items: &[ScanItem]) -> CliResult<()>;
    fn finish(self: Box<Self>) -> CliResult<()>;
}

pub fn run(args: &ExportArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let format = resolve_format(&args.file, args.format)?;
    if format == FileFormat::Csv {
        return Err(CliError::usage(
            "export writes JSON Lines (.jsonl) or Parquet (.parquet), not CSV",
        ));
    }
    if args.file.exists() && !args.force {
        return Err(CliError::file(
            &args.file,
            "already exists (pass --force to overwrite)",
        ));
    }
    let schema = match args.history {
        true => crate::cli::history::history_group(backend, &args.group)?,
        false => backend.describe_group(&args.group)?,
    };
    let reserved: &[&str] = match args.history {
        true => &history::COLUMNS,
        false => &[KEY_COLUMN, TS_COLUMN],
    };
    check_column_names(&schema, reserved)?;
    let range = crate::cli::history::time_range(args.from, args.to, args.known_at)?;
    let partial = partial_path(&args.file);
    let start = Instant::now();
    let written = match args.history {
        true => history::write_file(&partial, format, &schema, range, backend),
        false => write_file(&partial, format, &schema, backend).map(|rows| history::Written {
            versions: rows,
            entities: rows,
        }),
    };
    let written = written.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    let rows = written.versions;
    std::fs::rename(&partial, &args.file).map_err(|e| {
        CliError::file(
            &args.file,
            format!("cannot rename {}: {e}", partial.display()),
        )
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let mut doc = json!({ "group": args.group, "file": args.file.display().to_string(), "format": format.name(), "rows": rows, "seconds": seconds });
    if args.history {
        doc["history"] = json!(true);
        doc["entities"] = json!(written.entities);
        doc["from_ms"] = json!(range.from_ms);
        doc["to_ms"] = json!(range.to_ms);
        doc["known_at_ms"] = json!(range.known_at_ms);
    }
    out.emit(doc, || {
        let what = match args.history {
            true => format!("versions of {} entities", thousands(written.entities)),
            false => "rows".to_string(),
        };
        println!(
            "exported {} {what} of '{}' to {} in {seconds:.2} s",
            thousands(rows),
            args.group,
            args.file.display()
        )
    });
    Ok(())
}

/// Where a file is written before it is renamed to `path` when complete.
pub(crate) fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// The exported file's own columns must not collide with a feature.
fn check_column_names(schema: &GroupSchema, reserved: &[&str]) -> CliResult<()> {
    for &reserved in reserved {
        if schema.feature(reserved).is_some() {
            return Err(CliError::Rejected(format!(
                "group '{}' has a feature named '{reserved}', which is the name of an exported file's own column",
                schema.name
            )));
        }
    }
    Ok(())
}

fn write_file(
    path: &Path,
    format: FileFormat,
    schema: &GroupSchema,
    backend: &mut dyn Backend,
) -> CliResult<u64> {
    let file =
        File::create(path).map_err(|e| CliError::file(path, format!("cannot create: {e}")))?;
    let writer = BufWriter::new(file);
    let mut sink: Box<dyn RowSink> = match format {
        FileFormat::Parquet => Box::new(parquet::ParquetSink::new(writer, schema, path)?),
        _ => Box::new(jsonl::JsonlSink::new(writer, path)),
    };
    let mut cursor: Option<ScanCursor> = None;
    let mut rows = 0u64;
    loop {
        let (items, next) = backend.scan(&schema.name, cursor, SCAN_CHUNK_ITEMS)?;
        // A row whose values have all expired has nothing to export (and would not load back).
        let items: Vec<ScanItem> = items.into_iter().filter(row_has_values).collect();
        rows += items.len() as u64;
        sink.write(&items)?;
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    sink.finish()?;
    Ok(rows)
}

fn row_has_values(item: &ScanItem) -> bool {
    item.values
        .iter()
        .any(|(_, fv)| matches!(fv.status, Status::Present | Status::Null))
}

/// The newest event time among a row's stored values (0 when it holds none).
fn row_event_time(item: &ScanItem) -> u64 {
    item.values
        .iter()
        .filter(|(_, fv)| matches!(fv.status, Status::Present | Status::Null))
        .map(|(_, fv)| fv.event_time_ms)
        .max()
        .unwrap_or(0)
}
