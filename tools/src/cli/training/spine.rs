//! Reading a spine in chunks: the columns to pass through (as Parquet leaves) and, decoded, the
//! keys, timestamps and known-at times the join needs. Parquet spines are read column chunk by
//! column chunk with the parquet crate's column readers (no Arrow), so any column type passes
//! through unchanged; CSV spines are in [`super::csv_spine`].

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::{ColumnPath, SchemaDescPtr, TypePtr};
use quiver_engine::feature::{EntityKey, KeyType};
use quiver_engine::training::SpineBatch;

use super::leaf::{key_column_error, time_column, Leaf, LeafReader, TimeColumn};
use crate::cli::error::{CliError, CliResult};

/// The spine columns a training set reads: per group its key column, the timestamp column,
/// and in the known-at mode the known-at column.
#[derive(Debug, Clone)]
pub struct SpinePlan {
    /// (group, column, the group's key type), in the order of the training set's groups.
    pub keys: Vec<(String, String, KeyType)>,
    pub timestamp: String,
    pub known_at: Option<String>,
}

/// One chunk of the spine: its leaves to pass through, and the batch the join reads.
pub struct SpineChunk {
    pub leaves: Vec<Leaf>,
    pub batch: SpineBatch,
}

/// A spine file read in chunks.
pub trait SpineSource {
    /// The spine's top-level columns, as the output's first columns.
    fn fields(&self) -> Vec<TypePtr>;
    /// Rows in the whole spine.
    fn total_rows(&self) -> u64;
    /// The next chunk of at most `max_rows` rows; `None` at the end.
    fn next_chunk(&mut self, max_rows: usize) -> CliResult<Option<SpineChunk>>;
    /// The leaf columns (by path) that the spine stores without a dictionary: the output
    /// writes them so too, rather than build a dictionary of each row group's values that
    /// the spine's writer already found not worth one (unique ids, times).
    fn plain_leaves(&self) -> Vec<ColumnPath> {
        Vec::new()
    }
}

/// An error about one cell of the spine, by 1-based row number and column name.
pub fn cell_error(path: &Path, row: u64, column: &str, reason: impl std::fmt::Display) -> CliError {
    CliError::file(path, format!("row {row}, column '{column}': {reason}"))
}

/// A Parquet spine.
pub struct ParquetSpine {
    reader: SerializedFileReader<File>,
    schema: SchemaDescPtr,
    /// The next row group to open.
    row_group: usize,
    /// Rows left in the open row group.
    left: usize,
    readers: Vec<LeafReader>,
    /// Per group: the key column's leaf, name and key type.
    keys: Vec<(usize, String, KeyType)>,
    timestamp: (usize, String, TimeColumn),
    known_at: Option<(usize, String, TimeColumn)>,
    rows_done: u64,
    path: PathBuf,
}

impl ParquetSpine {
    pub fn open(path: &Path, plan: &SpinePlan) -> CliResult<ParquetSpine> {
        let file =
            File::open(path).map_err(|e| CliError::file(path, format!("cannot open: {e}")))?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| CliError::file(path, format!("not a readable Parquet file: {e}")))?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let find = |name: &str| -> CliResult<usize> {
            let leaf =
                (0..schema.num_columns()).find(|&i| schema.column(i).path().parts()[0] == name);
            leaf.ok_or_else(|| {
                let names: Vec<String> = schema
                    .root_schema()
                    .get_fields()
                    .iter()
                    .map(|f| f.name().to_string())
                    .collect();
                CliError::file(
                    path,
                    format!(
                        "the spine has no column '{name}' (its columns: {})",
                        names.join(", ")
                    ),
                )
            })
        };
        let mut keys = Vec::new();
        for (group, column, key_type) in &plan.keys {
            let leaf = find(column)?;
            if let Some(why) = key_column_error(&schema.column(leaf), *key_type) {
                return Err(CliError::file(
                    path,
                    format!("column '{column}' {why} (group '{group}' has {key_type} keys)"),
                ));
            }
            keys.push((leaf, column.clone(), *key_type));
        }
        let time = |name: &str, what: &str| -> CliResult<(usize, String, TimeColumn)> {
            let leaf = find(name)?;
            let unit = time_column(&schema.column(leaf))
                .map_err(|why| CliError::file(path, format!("{what} column '{name}' {why}")))?;
            Ok((leaf, name.to_string(), unit))
        };
        let timestamp = time(&plan.timestamp, "timestamp")?;
        let known_at = match &plan.known_at {
            Some(name) => Some(time(name, "known-at")?),
            None => None,
        };
        Ok(ParquetSpine {
            reader,
            schema,
            row_group: 0,
            left: 0,
            readers: Vec::new(),
            keys,
            timestamp,
            known_at,
            rows_done: 0,
            path: path.to_path_buf(),
        })
    }

    fn file_error(&self, e: impl std::fmt::Display) -> CliError {
        CliError::file(
            &self.path,
            format!("cannot read row group {}: {e}", self.row_group),
        )
    }

    /// Opens the next row group that has rows; false at the end of the file.
    fn open_row_group(&mut self) -> CliResult<bool> {
        while self.row_group < self.reader.num_row_groups() {
            let group = self
                .reader
                .get_row_group(self.row_group)
                .map_err(|e| self.file_error(e))?;
            let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
            let readers = (0..self.schema.num_columns())
                .map(|i| group.get_column_reader(i).map(LeafReader::new))
                .collect::<Result<Vec<_>, _>>();
            drop(group);
            self.readers = readers.map_err(|e| self.file_error(e))?;
            self.row_group += 1;
            if rows > 0 {
                self.left = rows;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn times(
        &self,
        leaves: &[Leaf],
        rows: usize,
        column: &(usize, String, TimeColumn),
    ) -> CliResult<Vec<u64>> {
        let (leaf, name, unit) = column;
        leaves[*leaf].times_ms(rows, *unit).map_err(|(row, why)| {
            cell_error(&self.path, self.rows_done + row as u64 + 1, name, why)
        })
    }
}

impl SpineSource for ParquetSpine {
    fn fields(&self) -> Vec<TypePtr> {
        self.schema.root_schema().get_fields().to_vec()
    }

    fn total_rows(&self) -> u64 {
        u64::try_from(self.reader.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    fn next_chunk(&mut self, max_rows: usize) -> CliResult<Option<SpineChunk>> {
        if self.left == 0 && !self.open_row_group()? {
            return Ok(None);
        }
        let rows = self.left.min(max_rows);
        let mut leaves = Vec::with_capacity(self.readers.len());
        for (i, reader) in self.readers.iter_mut().enumerate() {
            let leaf = reader.read(rows, &self.schema.column(i)).map_err(|e| {
                CliError::file(
                    &self.path,
                    format!("cannot read row group {}: {e}", self.row_group - 1),
                )
            })?;
            leaves.push(leaf);
        }
        self.left -= rows;
        let mut keys: Vec<Vec<Option<EntityKey>>> = Vec::with_capacity(self.keys.len());
        for (leaf, name, key_type) in &self.keys {
            let column = leaves[*leaf].keys(rows, *key_type).map_err(|(row, why)| {
                cell_error(&self.path, self.rows_done + row as u64 + 1, name, why)
            })?;
            keys.push(column);
        }
        let timestamps_ms = self.times(&leaves, rows, &self.timestamp)?;
        let known_at_ms = match &self.known_at {
            Some(column) => Some(self.times(&leaves, rows, column)?),
            None => None,
        };
        let batch = SpineBatch {
            first_row: self.rows_done,
            timestamps_ms,
            keys,
            known_at_ms,
        };
        self.rows_done += rows as u64;
        Ok(Some(SpineChunk { leaves, batch }))
    }

    fn plain_leaves(&self) -> Vec<ColumnPath> {
        // The first row group's choices stand for the file's.
        let Some(group) = self.reader.metadata().row_groups().first() else {
            return Vec::new();
        };
        group
            .columns()
            .iter()
            .filter(|c| c.dictionary_page_offset().is_none())
            .map(|c| c.column_path().clone())
            .collect()
    }
}
