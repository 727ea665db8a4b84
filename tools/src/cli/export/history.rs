//! `quiver export GROUP FILE --history [--from TIME] [--to TIME] [--known-at TIME]`: every
//! version kept in a group's history, one row per entity and version, for data-lake tools.
//!
//! The entities come from the group's history itself (`Backend::history_keys`), so entities
//! whose online row expired are exported too; each entity's versions are read a page at a time.
//!
//! ## Layout
//! Parquet: `entity` (as in the row export), `feature` (STRING, the version's feature),
//! `event_time` and `write_time` (required int64, TIMESTAMP(MILLIS)), `status` (STRING:
//! `present`, `null` for a stored null, `not_found` where a whole-row replace removed the
//! feature), then one optional column per feature of the group, holding the version's value on
//! that feature's rows and null on every other row. JSON Lines: one object per version,
//! `{"entity", "feature", "event_time", "write_time", "status", "value"}`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::writer::SerializedFileWriter;
use quiver_engine::feature::{EntityKey, FeatureType, GroupSchema, Status, Value};
use quiver_engine::history::{HistoryEntry, HistoryRange};
use serde_json::json;

use super::parquet::{
    feature_column, finish_file, key_column, start_file, write_feature, write_keys, ROW_GROUP_ROWS,
};
use super::{KEY_COLUMN, TS_COLUMN};
use crate::cli::backend::Backend;
use crate::cli::error::{CliError, CliResult};
use crate::cli::json::{key_to_json, value_to_json};

/// A status as the `status` column spells it: `present`, `null`, `not_found`.
fn status_name(status: Status) -> String {
    crate::cli::json::status_name(status).to_ascii_lowercase()
}
use crate::cli::load::FileFormat;

/// History records scanned per listing of entities.
pub const HISTORY_KEYS_RECORDS: usize = 1000;
/// Name of the feature column of a history export.
pub const FEATURE_COLUMN: &str = "feature";
/// Name of the write-time column of a history export.
pub const WRITE_TIME_COLUMN: &str = "write_time";
/// Name of the status column of a history export.
pub const STATUS_COLUMN: &str = "status";
/// The columns a history export adds before the feature columns.
pub const COLUMNS: [&str; 5] = [
    KEY_COLUMN,
    FEATURE_COLUMN,
    TS_COLUMN,
    WRITE_TIME_COLUMN,
    STATUS_COLUMN,
];

/// What a history export wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub versions: u64,
    pub entities: u64,
}

/// A writer of one output format.
trait VersionSink {
    fn write(&mut self, key: &EntityKey, versions: &[HistoryEntry]) -> CliResult<()>;
    fn finish(self: Box<Self>) -> CliResult<()>;
}

/// Writes every version of `schema`'s history in `range` to `path`.
pub fn write_file(
    path: &Path,
    format: FileFormat,
    schema: &GroupSchema,
    range: HistoryRange,
    backend: &mut dyn Backend,
) -> CliResult<Written> {
    let file =
        File::create(path).map_err(|e| CliError::file(path, format!("cannot create: {e}")))?;
    let out = BufWriter::new(file);
    let mut sink: Box<dyn VersionSink> = match format {
        FileFormat::Parquet => Box::new(ParquetVersions::new(out, schema, path)?),
        _ => Box::new(JsonlVersions {
            out,
            path: path.to_path_buf(),
        }),
    };
    let features: Vec<String> = schema.features.iter().map(|f| f.name.clone()).collect();
    let mut written = Written::default();
    let mut cursor = None;
    loop {
        let (keys, next) = backend.history_keys(&schema.name, cursor, HISTORY_KEYS_RECORDS)?;
        for key in &keys {
            let mut after = None;
            let mut any = false;
            loop {
                let (versions, more) =
                    backend.history_page(&schema.name, key, &features, range, after)?;
                any |= !versions.is_empty();
                written.versions += versions.len() as u64;
                sink.write(key, &versions)?;
                match more {
                    Some(more) => after = Some(more),
                    None => break,
                }
            }
            written.entities += u64::from(any);
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    sink.finish()?;
    Ok(written)
}

struct JsonlVersions {
    out: BufWriter<File>,
    path: PathBuf,
}

impl JsonlVersions {
    fn io(&self, err: std::io::Error) -> CliError {
        CliError::file(&self.path, format!("write failed: {err}"))
    }
}

impl VersionSink for JsonlVersions {
    fn write(&mut self, key: &EntityKey, versions: &[HistoryEntry]) -> CliResult<()> {
        for v in versions {
            let line = json!({
                KEY_COLUMN: key_to_json(key),
                FEATURE_COLUMN: v.feature,
                TS_COLUMN: v.event_time_ms,
                WRITE_TIME_COLUMN: v.write_time_ms,
                STATUS_COLUMN: status_name(v.status),
                "value": value_to_json(&v.value),
            });
            serde_json::to_writer(&mut self.out, &line).map_err(|e| self.io(e.into()))?;
            self.out.write_all(b"\n").map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> CliResult<()> {
        self.out.flush().map_err(|e| self.io(e))?;
        self.out.get_ref().sync_all().map_err(|e| self.io(e))
    }
}

struct ParquetVersions {
    writer: SerializedFileWriter<BufWriter<File>>,
    features: Vec<(String, FeatureType)>,
    pending: Vec<(EntityKey, HistoryEntry)>,
    path: PathBuf,
}

/// The message type of a history export of `schema`.
pub fn message_type(schema: &GroupSchema) -> String {
    let mut text = format!(
        "message {} {{\n  {}\n  required binary {FEATURE_COLUMN} (STRING);\n  \
         required int64 {TS_COLUMN} (TIMESTAMP(MILLIS,true));\n  \
         required int64 {WRITE_TIME_COLUMN} (TIMESTAMP(MILLIS,true));\n  \
         required binary {STATUS_COLUMN} (STRING);\n",
        schema.name,
        key_column(schema.key_type)
    );
    for f in &schema.features {
        text.push_str("  ");
        text.push_str(&feature_column(&f.name, f.ty));
        text.push('\n');
    }
    text.push('}');
    text
}

impl ParquetVersions {
    fn new(out: BufWriter<File>, schema: &GroupSchema, path: &Path) -> CliResult<ParquetVersions> {
        Ok(ParquetVersions {
            writer: start_file(out, &message_type(schema), path)?,
            features: schema
                .features
                .iter()
                .map(|f| (f.name.clone(), f.ty))
                .collect(),
            pending: Vec::new(),
            path: path.to_path_buf(),
        })
    }

    fn write_row_group(&mut self) -> CliResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let path = &self.path;
        let fail = |e: parquet::errors::ParquetError| {
            CliError::file(path, format!("Parquet write failed: {e}"))
        };
        let mut group = self.writer.next_row_group().map_err(fail)?;
        let mut index = 0usize;
        while let Some(mut column) = group.next_column().map_err(fail)? {
            let text = |pick: &dyn Fn(&HistoryEntry) -> String| -> Vec<ByteArray> {
                rows.iter()
                    .map(|(_, v)| ByteArray::from(pick(v).into_bytes()))
                    .collect()
            };
            let times = |pick: &dyn Fn(&HistoryEntry) -> u64| -> Vec<i64> {
                rows.iter().map(|(_, v)| pick(v) as i64).collect()
            };
            let written = match index {
                0 => {
                    let keys: Vec<&EntityKey> = rows.iter().map(|(k, _)| k).collect();
                    write_keys(&mut column, &keys)
                }
                1 | 4 => {
                    let cells = if index == 1 {
                        text(&|v| v.feature.clone())
                    } else {
                        text(&|v| status_name(v.status))
                    };
                    let typed = column.typed::<ByteArrayType>();
                    typed.write_batch(&cells, None, None).map(drop)
                }
                2 | 3 => {
                    let cells = if index == 2 {
                        times(&|v| v.event_time_ms)
                    } else {
                        times(&|v| v.write_time_ms)
                    };
                    let typed = column.typed::<Int64Type>();
                    typed.write_batch(&cells, None, None).map(drop)
                }
                _ => {
                    let (name, ty) = &self.features[index - COLUMNS.len()];
                    let cells: Vec<Option<&Value>> = rows
                        .iter()
                        .map(|(_, v)| {
                            (v.feature == *name && v.status == Status::Present).then_some(&v.value)
                        })
                        .collect();
                    write_feature(&mut column, *ty, &cells)
                }
            };
            written.and_then(|()| column.close()).map_err(fail)?;
            index += 1;
        }
        group.close().map_err(fail)?;
        Ok(())
    }
}

impl VersionSink for ParquetVersions {
    fn write(&mut self, key: &EntityKey, versions: &[HistoryEntry]) -> CliResult<()> {
        self.pending
            .extend(versions.iter().map(|v| (key.clone(), v.clone())));
        if self.pending.len() >= ROW_GROUP_ROWS {
            self.write_row_group()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> CliResult<()> {
        self.write_row_group()?;
        finish_file(self.writer, &self.path)
    }
}
