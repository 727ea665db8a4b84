//! Parquet output through the parquet crate's column writers.
//!
//! ## Layout
//! `entity` (required: STRING binary, int64, or binary by the group's key type),
//! `event_time` (required int64, TIMESTAMP(MILLIS)), then one optional column per feature:
//! bool -> boolean, i64 -> int64, f32 -> float, f64 -> double, string -> STRING binary,
//! bytes -> binary, and f32[N] / list<...> -> a standard three-level LIST of required elements
//! (definition level 0 = null, 1 = empty list, 2 = element; repetition level 1 continues a list).
//! A feature with no value in a row (absent, expired or null) is a null cell.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression as ParquetCompression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::parser::parse_message_type;
use quiver_engine::feature::{
    EntityKey, FeatureType, GroupSchema, KeyType, ScanItem, Status, Value,
};

use super::{row_event_time, RowSink, TS_COLUMN};
use crate::cli::error::{CliError, CliResult};

/// Rows gathered before a row group is written.
pub const ROW_GROUP_ROWS: usize = 16_384;

pub struct ParquetSink {
    writer: SerializedFileWriter<BufWriter<File>>,
    features: Vec<(String, FeatureType)>,
    pending: Vec<ScanItem>,
    path: PathBuf,
}

/// The message type of an exported group.
pub fn message_type(schema: &GroupSchema) -> String {
    let key = key_column(schema.key_type);
    let mut text = format!(
        "message {} {{\n  {key}\n  required int64 {TS_COLUMN} (TIMESTAMP(MILLIS,true));\n",
        schema.name
    );
    for f in &schema.features {
        text.push_str("  ");
        text.push_str(&feature_column(&f.name, f.ty));
        text.push('\n');
    }
    text.push('}');
    text
}

/// The Parquet column (message-type text) of the entity key.
pub fn key_column(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::String => "required binary entity (STRING);",
        KeyType::I64 => "required int64 entity;",
        KeyType::Bytes => "required binary entity;",
    }
}

/// Starts a Parquet file of `message` (message-type text) over `out`, snappy-compressed.
pub fn start_file(
    out: BufWriter<File>,
    message: &str,
    path: &Path,
) -> CliResult<SerializedFileWriter<BufWriter<File>>> {
    let parquet_schema = parse_message_type(message)
        .map_err(|e| CliError::Internal(format!("export schema does not parse: {e}: {message}")))?;
    let props = WriterProperties::builder()
        .set_compression(ParquetCompression::SNAPPY)
        .build();
    SerializedFileWriter::new(out, Arc::new(parquet_schema), Arc::new(props))
        .map_err(|e| CliError::file(path, format!("cannot start the Parquet file: {e}")))
}

/// Writes the footer, flushes and syncs the file.
pub fn finish_file(writer: SerializedFileWriter<BufWriter<File>>, path: &Path) -> CliResult<()> {
    let mut out = writer
        .into_inner()
        .map_err(|e| CliError::file(path, format!("Parquet write failed: {e}")))?;
    std::io::Write::flush(&mut out)
        .map_err(|e| CliError::file(path, format!("write failed: {e}")))?;
    out.get_ref()
        .sync_all()
        .map_err(|e| CliError::file(path, format!("sync failed: {e}")))
}

/// The Parquet column (message-type text) of one feature: optional, null when it has no value.
pub fn feature_column(name: &str, ty: FeatureType) -> String {
    match ty {
        FeatureType::Bool => format!("optional boolean {name};"),
        FeatureType::I64 => format!("optional int64 {name};"),
        FeatureType::F32 => format!("optional float {name};"),
        FeatureType::F64 => format!("optional double {name};"),
        FeatureType::String => format!("optional binary {name} (STRING);"),
        FeatureType::Bytes => format!("optional binary {name};"),
        FeatureType::Vector(_) | FeatureType::ListF32 => list_column(name, "float"),
        FeatureType::ListI64 => list_column(name, "int64"),
        FeatureType::ListString => list_column(name, "binary element (STRING)"),
    }
}

fn list_column(name: &str, element: &str) -> String {
    let element = if element.contains("element") {
        element.to_string()
    } else {
        format!("{element} element")
    };
    format!("optional group {name} (LIST) {{ repeated group list {{ required {element}; }} }}")
}

impl ParquetSink {
    pub fn new(out: BufWriter<File>, schema: &GroupSchema, path: &Path) -> CliResult<ParquetSink> {
        let writer = start_file(out, &message_type(schema), path)?;
        let features = schema
            .features
            .iter()
            .map(|f| (f.name.clone(), f.ty))
            .collect();
        Ok(ParquetSink {
            writer,
            features,
            pending: Vec::new(),
            path: path.to_path_buf(),
        })
    }

    fn write_row_group(&mut self) -> CliResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.pending);
        let lookup: Vec<HashMap<&str, &Value>> = items.iter().map(present_values).collect();
        let mut group = self
            .writer
            .next_row_group()
            .map_err(|e| CliError::file(&self.path, e))?;
        let mut index = 0usize;
        while let Some(mut column) = group
            .next_column()
            .map_err(|e| CliError::file(&self.path, e))?
        {
            let written = match index {
                0 => {
                    let keys: Vec<&EntityKey> = items.iter().map(|i| &i.key).collect();
                    write_keys(&mut column, &keys)
                }
                1 => {
                    let times: Vec<i64> = items.iter().map(|i| row_event_time(i) as i64).collect();
                    column
                        .typed::<Int64Type>()
                        .write_batch(&times, None, None)
                        .map(drop)
                }
                _ => {
                    let (name, ty) = &self.features[index - 2];
                    let cells: Vec<Option<&Value>> = lookup
                        .iter()
                        .map(|m| m.get(name.as_str()).copied())
                        .collect();
                    write_feature(&mut column, *ty, &cells)
                }
            };
            written
                .and_then(|()| column.close())
                .map_err(|e| CliError::file(&self.path, format!("Parquet write failed: {e}")))?;
            index += 1;
        }
        group
            .close()
            .map_err(|e| CliError::file(&self.path, format!("Parquet write failed: {e}")))?;
        Ok(())
    }
}

impl RowSink for ParquetSink {
    fn write(&mut self, items: &[ScanItem]) -> CliResult<()> {
        self.pending.extend_from_slice(items);
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

fn present_values(item: &ScanItem) -> HashMap<&str, &Value> {
    item.values
        .iter()
        .filter(|(_, fv)| fv.status == Status::Present)
        .map(|(name, fv)| (name.as_str(), &fv.value))
        .collect()
}

pub type PqResult = Result<(), parquet::errors::ParquetError>;

/// Writes the required entity-key column.
pub fn write_keys(column: &mut SerializedColumnWriter<'_>, keys: &[&EntityKey]) -> PqResult {
    if let Some(EntityKey::I64(_)) = keys.first() {
        let keys: Vec<i64> = keys
            .iter()
            .map(|k| if let EntityKey::I64(v) = k { *v } else { 0 })
            .collect();
        return column
            .typed::<Int64Type>()
            .write_batch(&keys, None, None)
            .map(drop);
    }
    let keys: Vec<ByteArray> = keys
        .iter()
        .map(|k| match k {
            EntityKey::String(s) => ByteArray::from(s.as_bytes().to_vec()),
            EntityKey::Bytes(b) => ByteArray::from(b.clone()),
            EntityKey::I64(v) => ByteArray::from(v.to_string().into_bytes()),
        })
        .collect();
    column
        .typed::<ByteArrayType>()
        .write_batch(&keys, None, None)
        .map(drop)
}

/// Writes one optional scalar column: definition level 1 for a value, 0 for null.
fn scalar<T: Clone>(
    cells: &[Option<&Value>],
    pick: impl Fn(&Value) -> Option<T>,
) -> (Vec<T>, Vec<i16>) {
    let mut values = Vec::with_capacity(cells.len());
    let defs = cells
        .iter()
        .map(|cell| match cell.and_then(&pick) {
            Some(v) => {
                values.push(v);
                1
            }
            None => 0,
        })
        .collect();
    (values, defs)
}

/// Flattens one list column into values and levels (see the module's layout notes).
fn list<T: Clone>(
    cells: &[Option<&Value>],
    pick: impl Fn(&Value) -> Option<Vec<T>>,
) -> (Vec<T>, Vec<i16>, Vec<i16>) {
    let (mut values, mut defs, mut reps) = (Vec::new(), Vec::new(), Vec::new());
    for cell in cells {
        match cell.and_then(&pick) {
            None => {
                defs.push(0);
                reps.push(0);
            }
            Some(items) if items.is_empty() => {
                defs.push(1);
                reps.push(0);
            }
            Some(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    values.push(item);
                    defs.push(2);
                    reps.push(if i == 0 { 0 } else { 1 });
                }
            }
        }
    }
    (values, defs, reps)
}

/// Writes one feature column: a value per cell, or null (`None`).
pub fn write_feature(
    column: &mut SerializedColumnWriter<'_>,
    ty: FeatureType,
    cells: &[Option<&Value>],
) -> PqResult {
    let bytes = |b: &[u8]| ByteArray::from(b.to_vec());
    match ty {
        FeatureType::Bool => {
            let (v, d) = scalar(cells, |v| {
                if let Value::Bool(b) = v {
                    Some(*b)
                } else {
                    None
                }
            });
            column
                .typed::<BoolType>()
                .write_batch(&v, Some(&d), None)
                .map(drop)
        }
        FeatureType::I64 => {
            let (v, d) = scalar(cells, |v| {
                if let Value::I64(x) = v {
                    Some(*x)
                } else {
                    None
                }
            });
            column
                .typed::<Int64Type>()
                .write_batch(&v, Some(&d), None)
                .map(drop)
        }
        FeatureType::F32 => {
            let (v, d) = scalar(cells, |v| {
                if let Value::F32(x) = v {
                    Some(*x)
                } else {
                    None
                }
            });
            column
                .typed::<FloatType>()
                .write_batch(&v, Some(&d), None)
                .map(drop)
        }
        FeatureType::F64 => {
            let (v, d) = scalar(cells, |v| {
                if let Value::F64(x) = v {
                    Some(*x)
                } else {
                    None
                }
            });
            column
                .typed::<DoubleType>()
                .write_batch(&v, Some(&d), None)
                .map(drop)
        }
        FeatureType::String | FeatureType::Bytes => {
            let (v, d) = scalar(cells, |v| match v {
                Value::String(s) => Some(bytes(s.as_bytes())),
                Value::Bytes(b) => Some(bytes(b)),
                _ => None,
            });
            column
                .typed::<ByteArrayType>()
                .write_batch(&v, Some(&d), None)
                .map(drop)
        }
        FeatureType::Vector(_) | FeatureType::ListF32 => {
            let (v, d, r) = list(cells, |v| match v {
                Value::Vector(x) | Value::ListF32(x) => Some(x.clone()),
                _ => None,
            });
            column
                .typed::<FloatType>()
                .write_batch(&v, Some(&d), Some(&r))
                .map(drop)
        }
        FeatureType::ListI64 => {
            let (v, d, r) = list(cells, |v| {
                if let Value::ListI64(x) = v {
                    Some(x.clone())
                } else {
                    None
                }
            });
            column
                .typed::<Int64Type>()
                .write_batch(&v, Some(&d), Some(&r))
                .map(drop)
        }
        FeatureType::ListString => {
            let (v, d, r) = list(cells, |v| match v {
                Value::ListString(x) => Some(x.iter().map(|s| bytes(s.as_bytes())).collect()),
                _ => None,
            });
            column
                .typed::<ByteArrayType>()
                .write_batch(&v, Some(&d), Some(&r))
                .map(drop)
        }
    }
}
