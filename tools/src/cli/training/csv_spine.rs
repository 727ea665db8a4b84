//! A CSV spine. A first pass over the file counts its rows and gives each column a type for
//! the output (int64 when every non-empty cell is an integer, else double when every one is a
//! number, else boolean for true/false, else string; an empty cell is a null); the second pass
//! reads it in chunks. Both passes stream, so memory stays bounded by the chunk.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::ByteArray;
use parquet::schema::types::{Type, TypePtr};
use quiver_engine::feature::{EntityKey, KeyType};
use quiver_engine::training::SpineBatch;

use super::leaf::{Leaf, Values};
use super::spine::{cell_error, SpineChunk, SpinePlan, SpineSource};
use crate::cli::error::{CliError, CliResult};
use crate::cli::load::row::parse_event_time;
use crate::cli::parse::{clip, parse_key};

/// A CSV column's type in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsvType {
    /// Only empty cells so far.
    Empty,
    Int,
    Float,
    Bool,
    Text,
}

impl CsvType {
    fn of(text: &str) -> CsvType {
        if text.is_empty() {
            CsvType::Empty
        } else if text.parse::<i64>().is_ok() {
            CsvType::Int
        } else if text.parse::<f64>().is_ok() {
            CsvType::Float
        } else if text == "true" || text == "false" {
            CsvType::Bool
        } else {
            CsvType::Text
        }
    }

    fn join(self, other: CsvType) -> CsvType {
        use CsvType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Empty, x) | (x, Empty) => x,
            (Int, Float) | (Float, Int) => Float,
            _ => Text,
        }
    }

    fn field(self, name: &str) -> TypePtr {
        let (physical, logical) = match self {
            CsvType::Int => (PhysicalType::INT64, None),
            CsvType::Float => (PhysicalType::DOUBLE, None),
            CsvType::Bool => (PhysicalType::BOOLEAN, None),
            CsvType::Empty | CsvType::Text => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        };
        let built = Type::primitive_type_builder(name, physical)
            .with_repetition(Repetition::OPTIONAL)
            .with_logical_type(logical)
            .build()
            .expect("a plain optional column always builds");
        Arc::new(built)
    }

    /// One column of a chunk as a Parquet leaf (`None` when a cell no longer fits the type
    /// the first pass gave: the file changed between the passes).
    fn leaf(self, cells: &[&str]) -> Option<Leaf> {
        let defs: Vec<i16> = cells.iter().map(|c| i16::from(!c.is_empty())).collect();
        let present = cells.iter().filter(|c| !c.is_empty());
        let values = match self {
            CsvType::Int => Values::I64(present.map(|c| c.parse().ok()).collect::<Option<_>>()?),
            CsvType::Float => Values::F64(present.map(|c| c.parse().ok()).collect::<Option<_>>()?),
            CsvType::Bool => {
                Values::Bool(present.map(|c| Some(*c == "true")).collect::<Option<_>>()?)
            }
            CsvType::Empty | CsvType::Text => Values::Bytes(
                present
                    .map(|c| ByteArray::from(c.as_bytes().to_vec()))
                    .collect(),
            ),
        };
        Some(Leaf {
            values,
            defs,
            reps: Vec::new(),
            max_def: 1,
        })
    }
}

pub struct CsvSpine {
    reader: csv::Reader<File>,
    header: Vec<String>,
    types: Vec<CsvType>,
    /// Per group: the key column's index, name and key type.
    keys: Vec<(usize, String, KeyType)>,
    timestamp: (usize, String),
    known_at: Option<(usize, String)>,
    total: u64,
    rows_done: u64,
    path: PathBuf,
}

fn open_reader(path: &Path) -> CliResult<csv::Reader<File>> {
    let file = File::open(path).map_err(|e| CliError::file(path, format!("cannot open: {e}")))?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file))
}

fn record_error(path: &Path, row: u64, e: csv::Error) -> CliError {
    CliError::file(path, format!("row {row}: not valid CSV: {e}"))
}

impl CsvSpine {
    pub fn open(path: &Path, plan: &SpinePlan) -> CliResult<CsvSpine> {
        let mut reader = open_reader(path)?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| CliError::file(path, format!("cannot read the header: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let find = |name: &str| -> CliResult<(usize, String)> {
            let i = header.iter().position(|h| h == name).ok_or_else(|| {
                CliError::file(
                    path,
                    format!(
                        "the spine has no column '{name}' (its columns: {})",
                        header.join(", ")
                    ),
                )
            })?;
            Ok((i, name.to_string()))
        };
        let mut keys = Vec::new();
        for (_, column, key_type) in &plan.keys {
            let (i, name) = find(column)?;
            keys.push((i, name, *key_type));
        }
        let timestamp = find(&plan.timestamp)?;
        let known_at = plan.known_at.as_deref().map(find).transpose()?;
        let mut types = vec![CsvType::Empty; header.len()];
        let mut total = 0u64;
        for record in reader.records() {
            total += 1;
            let record = record.map_err(|e| record_error(path, total, e))?;
            for (t, cell) in types.iter_mut().zip(record.iter()) {
                *t = t.join(CsvType::of(cell));
            }
        }
        Ok(CsvSpine {
            reader: open_reader(path)?,
            header,
            types,
            keys,
            timestamp,
            known_at,
            total,
            rows_done: 0,
            path: path.to_path_buf(),
        })
    }

    fn times(
        &self,
        records: &[csv::StringRecord],
        (i, name): &(usize, String),
    ) -> CliResult<Vec<u64>> {
        let mut out = Vec::with_capacity(records.len());
        for (r, record) in records.iter().enumerate() {
            let row = self.rows_done + r as u64 + 1;
            let text = record.get(*i).unwrap_or("");
            if text.is_empty() {
                return Err(cell_error(&self.path, row, name, "no time (empty)"));
            }
            out.push(parse_event_time(text).map_err(|e| cell_error(&self.path, row, name, e))?);
        }
        Ok(out)
    }

    fn keys(&self, records: &[csv::StringRecord]) -> CliResult<Vec<Vec<Option<EntityKey>>>> {
        let mut out = Vec::with_capacity(self.keys.len());
        for (i, name, key_type) in &self.keys {
            let mut column = Vec::with_capacity(records.len());
            for (r, record) in records.iter().enumerate() {
                let text = record.get(*i).unwrap_or("");
                if text.is_empty() {
                    column.push(None);
                    continue;
                }
                let key = parse_key(*key_type, text)
                    .map_err(|e| cell_error(&self.path, self.rows_done + r as u64 + 1, name, e))?;
                column.push(Some(key));
            }
            out.push(column);
        }
        Ok(out)
    }
}

impl SpineSource for CsvSpine {
    fn fields(&self) -> Vec<TypePtr> {
        self.header
            .iter()
            .zip(&self.types)
            .map(|(name, t)| t.field(name))
            .collect()
    }

    fn total_rows(&self) -> u64 {
        self.total
    }

    fn next_chunk(&mut self, max_rows: usize) -> CliResult<Option<SpineChunk>> {
        let mut records = Vec::with_capacity(max_rows.min(65_536));
        for record in self.reader.records().take(max_rows) {
            let row = self.rows_done + records.len() as u64 + 1;
            let record = record.map_err(|e| record_error(&self.path, row, e))?;
            if record.len() != self.header.len() {
                return Err(CliError::file(
                    &self.path,
                    format!(
                        "row {row}: {} cells, the header has {}",
                        record.len(),
                        self.header.len()
                    ),
                ));
            }
            records.push(record);
        }
        if records.is_empty() {
            return Ok(None);
        }
        let mut leaves = Vec::with_capacity(self.header.len());
        for (c, t) in self.types.iter().enumerate() {
            let cells: Vec<&str> = records.iter().map(|r| r.get(c).unwrap_or("")).collect();
            let leaf = t.leaf(&cells).ok_or_else(|| {
                let bad = cells
                    .iter()
                    .position(|cell| !cell.is_empty() && t.join(CsvType::of(cell)) != *t)
                    .unwrap_or(0);
                cell_error(
                    &self.path,
                    self.rows_done + bad as u64 + 1,
                    &self.header[c],
                    format!(
                        "'{}' does not fit the column's type (the file changed while it was read)",
                        clip(cells[bad])
                    ),
                )
            })?;
            leaves.push(leaf);
        }
        let batch = SpineBatch {
            first_row: self.rows_done,
            keys: self.keys(&records)?,
            timestamps_ms: self.times(&records, &self.timestamp)?,
            known_at_ms: match &self.known_at {
                Some(column) => Some(self.times(&records, column)?),
                None => None,
            },
        };
        self.rows_done += records.len() as u64;
        Ok(Some(SpineChunk { leaves, batch }))
    }
}
