//! CSV reader: a header row names the columns; cells are typed as on the command line.
//!
//! An empty cell leaves the feature unwritten for that row; `null` writes a null.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use csv::{ByteRecord, ReaderBuilder};

use super::row::{
    finish_row, parse_event_time, Batch, ColumnPlan, LoadSpec, ReadRow, Rejection, RowSource,
    RowTimes,
};
use crate::cli::error::{CliError, CliResult};
use crate::cli::parse::parse_value;

pub struct CsvSource {
    reader: csv::Reader<BufReader<File>>,
    plan: ColumnPlan,
    header: Vec<String>,
    spec: LoadSpec,
    total: u64,
    path: String,
    record: ByteRecord,
}

impl CsvSource {
    pub fn open(path: &Path, spec: LoadSpec) -> CliResult<CsvSource> {
        let file =
            File::open(path).map_err(|e| CliError::file(path, format!("cannot open: {e}")))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = ReaderBuilder::new()
            .flexible(true)
            .from_reader(BufReader::new(file));
        let name = path.display().to_string();
        let header = reader
            .byte_headers()
            .map_err(|e| CliError::file(path, format!("cannot read the CSV header: {e}")))?
            .iter()
            .map(|h| std::str::from_utf8(h).map(str::to_string))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| CliError::file(path, "the CSV header is not UTF-8 text"))?;
        let names: Vec<&str> = header.iter().map(String::as_str).collect();
        let plan = spec.plan(&names, &name)?;
        Ok(CsvSource {
            reader,
            plan,
            header,
            spec,
            total,
            path: name,
            record: ByteRecord::new(),
        })
    }

    fn convert(&self, line: u64) -> ReadRow {
        let record = &self.record;
        if record.len() != self.header.len() {
            let reason = format!(
                "{} fields, the header has {}",
                record.len(),
                self.header.len()
            );
            return Err(Rejection::new(line, "", reason));
        }
        let cell = |index: usize| {
            std::str::from_utf8(&record[index]).map_err(|_| {
                Rejection::new(line, self.header[index].clone(), "cell is not UTF-8 text")
            })
        };
        let key_text = cell(self.plan.key)?;
        let key = self
            .spec
            .key_from_text(key_text)
            .map_err(|r| Rejection::new(line, &self.header[self.plan.key], r))?;
        let event_time_ms = match self.plan.ts.map(cell).transpose()? {
            Some(text) if !text.is_empty() => {
                parse_event_time(text).map_err(|r| Rejection::new(line, &self.spec.ts_column, r))?
            }
            _ => self.spec.default_ts_ms,
        };
        let write_time_ms = match self.plan.write_time {
            Some(index) => Some(
                self.spec
                    .write_time_from_text(Some(cell(index)?))
                    .map_err(|r| Rejection::new(line, &self.header[index], r))?,
            ),
            None => None,
        };
        let times = RowTimes {
            event_time_ms,
            write_time_ms,
        };
        let mut values = Vec::with_capacity(self.plan.features.len());
        for (index, name, ty) in &self.plan.features {
            let text = cell(*index)?;
            if text.is_empty() {
                continue;
            }
            let value =
                parse_value(*ty, text).map_err(|r| Rejection::new(line, name.clone(), r))?;
            values.push((name.clone(), value));
        }
        finish_row(line, key, times, values)
    }
}

impl RowSource for CsvSource {
    fn total(&self) -> u64 {
        self.total
    }

    fn counts_bytes(&self) -> bool {
        true
    }

    fn next_batch(&mut self, max_rows: usize) -> CliResult<Option<Batch>> {
        let mut rows = Vec::with_capacity(max_rows);
        while rows.len() < max_rows {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = self.record.position().map(|p| p.line()).unwrap_or(0);
                    rows.push(self.convert(line));
                }
                Err(err) => rows.push(Err(self.csv_error(err)?)),
            }
        }
        let position = self.reader.position().byte();
        Ok((!rows.is_empty()).then_some(Batch { rows, position }))
    }
}

impl CsvSource {
    /// A malformed record is a rejection; an I/O error ends the load.
    fn csv_error(&self, err: csv::Error) -> CliResult<Rejection> {
        let line = err.position().map(|p| p.line()).unwrap_or(0);
        match err.into_kind() {
            csv::ErrorKind::Io(e) => Err(CliError::File {
                path: self.path.clone(),
                reason: format!("read failed: {e}"),
            }),
            other => Ok(Rejection::new(
                line,
                "",
                format!("malformed CSV: {other:?}"),
            )),
        }
    }
}
