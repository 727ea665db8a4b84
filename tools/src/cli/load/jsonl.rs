//! JSON Lines reader: one JSON object per line, keys naming the key column, the event-time
//! column and features. Blank lines are skipped.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value as Json};

use super::row::{finish_row, Batch, LoadSpec, ReadRow, Rejection, RowSource, RowTimes};
use crate::cli::error::{CliError, CliResult};
use crate::cli::json::{describe, key_from_json, value_from_json};
use crate::cli::parse::parse_time;

/// Longest line accepted, in bytes.
pub const MAX_LINE_BYTES: u64 = 64 << 20;

pub struct JsonlSource {
    reader: BufReader<File>,
    spec: LoadSpec,
    total: u64,
    position: u64,
    line: u64,
    path: String,
    buf: Vec<u8>,
}

impl JsonlSource {
    pub fn open(path: &Path, spec: LoadSpec) -> CliResult<JsonlSource> {
        let file =
            File::open(path).map_err(|e| CliError::file(path, format!("cannot open: {e}")))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let path = path.display().to_string();
        Ok(JsonlSource {
            reader: BufReader::new(file),
            spec,
            total,
            position: 0,
            line: 0,
            path,
            buf: Vec::new(),
        })
    }

    /// Reads one line into `buf`; false at the end of the file. A line over the limit is
    /// consumed to its end and reported as too long.
    fn read_line(&mut self) -> CliResult<Option<bool>> {
        self.buf.clear();
        let io_err = |e: std::io::Error| CliError::File {
            path: self.path.clone(),
            reason: format!("read failed: {e}"),
        };
        let n = (&mut self.reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(io_err)?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        self.position += n as u64;
        let too_long = n as u64 > MAX_LINE_BYTES && self.buf.last() != Some(&b'\n');
        if too_long {
            let mut rest = Vec::new();
            let skipped = self.reader.read_until(b'\n', &mut rest).map_err(io_err)?;
            self.position += skipped as u64;
        }
        Ok(Some(too_long))
    }

    fn convert(&self) -> Option<ReadRow> {
        let line = self.line;
        let text = std::str::from_utf8(&self.buf)
            .map_err(|_| Rejection::new(line, "", "line is not UTF-8 text"));
        let text = match text {
            Ok(t) if t.trim().is_empty() => return None,
            Ok(t) => t,
            Err(r) => return Some(Err(r)),
        };
        Some(match serde_json::from_str::<Json>(text) {
            Ok(Json::Object(map)) => self.row(line, map),
            Ok(other) => Err(Rejection::new(
                line,
                "",
                format!("expected a JSON object, got {}", describe(&other)),
            )),
            Err(e) => Err(Rejection::new(line, "", format!("invalid JSON: {e}"))),
        })
    }

    fn row(&self, line: u64, map: Map<String, Json>) -> ReadRow {
        let names: Vec<&str> = map.keys().map(String::as_str).collect();
        let key_name = self.spec.key_column_in(&names).ok_or_else(|| {
            Rejection::new(line, "", self.spec.no_key_column(&self.path).to_string())
        })?;
        let key = key_from_json(self.spec.schema.key_type, &map[key_name])
            .map_err(|r| Rejection::new(line, key_name, r))?;
        let ts_column = &self.spec.ts_column;
        let event_time_ms = json_time("event time", map.get(ts_column))
            .map_err(|r| Rejection::new(line, ts_column, r))?
            .unwrap_or(self.spec.default_ts_ms);
        let write_column = self.spec.write_time_column.as_deref();
        let write_time_ms = match write_column {
            Some(column) => Some(
                json_time("write time", map.get(column))
                    .and_then(|t| t.ok_or_else(|| self.spec.missing_write_time()))
                    .map_err(|r| Rejection::new(line, column, r))?,
            ),
            None => None,
        };
        let mut values = Vec::with_capacity(map.len());
        for (name, json) in &map {
            if name == key_name || name == ts_column || Some(name.as_str()) == write_column {
                continue;
            }
            values.push((name.clone(), self.value(line, name, json)?));
        }
        let times = RowTimes {
            event_time_ms,
            write_time_ms,
        };
        finish_row(line, key, times, values)
    }

    fn value(
        &self,
        line: u64,
        name: &str,
        json: &Json,
    ) -> Result<quiver_engine::feature::Value, Rejection> {
        let schema = &self.spec.schema;
        let feature = schema
            .feature(name)
            .filter(|f| !f.deprecated)
            .ok_or_else(|| {
                let what = if schema.feature(name).is_some() {
                    "a deprecated feature"
                } else {
                    "not a feature"
                };
                Rejection::new(
                    line,
                    name,
                    format!("'{name}' is {what} of group '{}'", schema.name),
                )
            })?;
        value_from_json(feature.ty, json).map_err(|r| Rejection::new(line, name, r))
    }
}

/// A time from a JSON cell, ms since the epoch or an RFC 3339 string (`what` names it in
/// errors); `None` when the cell is absent or null.
fn json_time(what: &str, json: Option<&Json>) -> Result<Option<u64>, String> {
    match json {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{what} {n} is not a whole number of ms since 1970")),
        Some(Json::String(s)) => parse_time(what, s).map(Some),
        Some(other) => Err(format!(
            "expected ms since the epoch or an RFC 3339 string, got {}",
            describe(other)
        )),
    }
}

impl RowSource for JsonlSource {
    fn total(&self) -> u64 {
        self.total
    }

    fn counts_bytes(&self) -> bool {
        true
    }

    fn next_batch(&mut self, max_rows: usize) -> CliResult<Option<Batch>> {
        let mut rows = Vec::with_capacity(max_rows);
        while rows.len() < max_rows {
            match self.read_line()? {
                None => break,
                Some(true) => rows.push(Err(Rejection::new(
                    self.line,
                    "",
                    format!("line exceeds the limit of {MAX_LINE_BYTES} bytes"),
                ))),
                Some(false) => rows.extend(self.convert()),
            }
        }
        Ok((!rows.is_empty()).then_some(Batch {
            rows,
            position: self.position,
        }))
    }
}
