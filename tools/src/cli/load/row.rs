//! What every file reader produces: typed rows or rejections, and the column plan shared by
//! the readers that have a header (CSV, Parquet).

use quiver_engine::feature::{EntityKey, FeatureType, GroupSchema};

use crate::cli::backend::PutRow;
use crate::cli::error::{CliError, CliResult};
use crate::cli::parse::parse_time;

/// Rows per batch read ahead of the writer.
pub const READ_AHEAD_BATCHES: usize = 4;

/// A row the file, the schema or the store refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Line of a text file (1-based), or row number of a Parquet file (1-based).
    pub line: u64,
    /// The column at fault; empty when the row as a whole was refused.
    pub column: String,
    pub reason: String,
}

impl Rejection {
    pub fn new(line: u64, column: impl Into<String>, reason: impl Into<String>) -> Rejection {
        Rejection {
            line,
            column: column.into(),
            reason: reason.into(),
        }
    }
}

/// One row read from a file.
pub type ReadRow = Result<(u64, PutRow), Rejection>;

/// The times of one row: its event time, and its write time when the load reads one.
#[derive(Debug, Clone, Copy)]
pub struct RowTimes {
    pub event_time_ms: u64,
    pub write_time_ms: Option<u64>,
}

/// The row read at `line`, or its rejection when it holds no feature value at all.
pub fn finish_row(
    line: u64,
    key: EntityKey,
    times: RowTimes,
    values: Vec<(String, quiver_engine::feature::Value)>,
) -> ReadRow {
    if values.is_empty() {
        return Err(Rejection::new(line, "", "the row has no feature values"));
    }
    Ok((
        line,
        PutRow {
            key,
            event_time_ms: times.event_time_ms,
            values,
            write_time_ms: times.write_time_ms,
        },
    ))
}

/// A slice of the file: its rows and how far into the file (bytes or rows) it reaches.
pub struct Batch {
    pub rows: Vec<ReadRow>,
    pub position: u64,
}

/// A reader of one file format. Fatal problems (I/O errors, a file that is not of its format)
/// are errors; a bad row is a [`Rejection`] inside the batch.
pub trait RowSource {
    /// Progress total, in the unit of [`Batch::position`].
    fn total(&self) -> u64;
    /// True when [`Batch::position`] counts bytes, false when it counts rows.
    fn counts_bytes(&self) -> bool;
    fn next_batch(&mut self, max_rows: usize) -> CliResult<Option<Batch>>;
}

/// Which column holds what, for readers with a header.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    pub key: usize,
    pub ts: Option<usize>,
    /// The write-time column, when the load reads one (`--write-time-column`).
    pub write_time: Option<usize>,
    /// (column index, feature name, feature type)
    pub features: Vec<(usize, String, FeatureType)>,
}

/// The settings of a load that readers need.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub schema: std::sync::Arc<GroupSchema>,
    pub key_column: Option<String>,
    pub ts_column: String,
    pub default_ts_ms: u64,
    /// `--write-time-column`: every row must carry its write time there.
    pub write_time_column: Option<String>,
}

impl LoadSpec {
    /// The key column among `names`: `--key-column`, else "entity", else "key".
    pub fn key_column_in<'a>(&'a self, names: &[&str]) -> Option<&'a str> {
        match &self.key_column {
            Some(name) => names.contains(&name.as_str()).then_some(name.as_str()),
            None => ["entity", "key"].into_iter().find(|c| names.contains(c)),
        }
    }

    /// Maps a header onto the schema. Every column must be the key, the event time, or a live
    /// feature of the group: an unknown column would fail on every row, so it fails the load.
    pub fn plan(&self, header: &[&str], file: &str) -> CliResult<ColumnPlan> {
        check_duplicates(header, file)?;
        let key_name = self
            .key_column_in(header)
            .ok_or_else(|| self.no_key_column(file))?;
        let key = header
            .iter()
            .position(|c| *c == key_name)
            .expect("key column is in the header");
        let ts = header.iter().position(|c| *c == self.ts_column);
        let write_time = match &self.write_time_column {
            Some(name) => Some(
                header
                    .iter()
                    .position(|c| c == name)
                    .ok_or_else(|| self.no_write_time_column(file))?,
            ),
            None => None,
        };
        let mut features = Vec::new();
        for (index, name) in header.iter().enumerate() {
            if index == key || Some(index) == ts || Some(index) == write_time {
                continue;
            }
            let feature = self.schema.feature(name).ok_or_else(|| {
                CliError::NotFound(format!(
                    "{file}: column '{name}' is not a feature of group '{}' (features: {})",
                    self.schema.name,
                    live_features(&self.schema).join(", ")
                ))
            })?;
            if feature.deprecated {
                return Err(CliError::Rejected(format!(
                    "{file}: column '{name}' is a deprecated feature of group '{}', which accepts no writes",
                    self.schema.name
                )));
            }
            features.push((index, feature.name.clone(), feature.ty));
        }
        Ok(ColumnPlan {
            key,
            ts,
            write_time,
            features,
        })
    }

    pub fn no_write_time_column(&self, file: &str) -> CliError {
        let name = self.write_time_column.as_deref().unwrap_or("");
        CliError::File {
            path: file.to_string(),
            reason: format!(
                "no write-time column: expected a column named '{name}' (--write-time-column)"
            ),
        }
    }

    /// A row's write time from the text of its write-time cell (`None`: the cell is empty).
    pub fn write_time_from_text(&self, text: Option<&str>) -> Result<u64, String> {
        match text {
            Some(text) if !text.is_empty() => parse_time("write time", text),
            _ => Err(self.missing_write_time()),
        }
    }

    /// Why a row without a write time is refused.
    pub fn missing_write_time(&self) -> String {
        "the row has no write time: with --write-time-column every row carries one".to_string()
    }

    pub fn no_key_column(&self, file: &str) -> CliError {
        let wanted = match &self.key_column {
            Some(name) => format!("'{name}'"),
            None => "'entity' or 'key' (choose another with --key-column)".to_string(),
        };
        CliError::File {
            path: file.to_string(),
            reason: format!("no key column: expected a column named {wanted}"),
        }
    }

    pub fn key_from_text(&self, text: &str) -> Result<EntityKey, String> {
        crate::cli::parse::parse_key(self.schema.key_type, text)
    }
}

fn check_duplicates(header: &[&str], file: &str) -> CliResult<()> {
    for (i, name) in header.iter().enumerate() {
        if header[..i].contains(name) {
            return Err(CliError::File {
                path: file.to_string(),
                reason: format!("column '{name}' appears twice in the header"),
            });
        }
    }
    Ok(())
}

pub fn live_features(schema: &GroupSchema) -> Vec<&str> {
    schema
        .features
        .iter()
        .filter(|f| !f.deprecated)
        .map(|f| f.name.as_str())
        .collect()
}

/// An event time from text: ms since the epoch, or RFC 3339 (`2026-01-02T03:04:05Z`).
pub fn parse_event_time(text: &str) -> Result<u64, String> {
    parse_time("event time", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_parse() {
        assert_eq!(parse_event_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_event_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_event_time("1970-01-01T01:00:01+01:00"), Ok(1000));
        assert!(parse_event_time("yesterday").is_err());
        assert!(parse_event_time("-5").is_err());
        assert!(parse_event_time("1969-12-31T23:59:59Z").is_err());
    }
}
