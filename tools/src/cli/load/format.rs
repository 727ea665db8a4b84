//! File formats: chosen from `--format` or the extension, and checked against the file's first
//! bytes so that a Parquet file named `.csv` (or the reverse) fails with a clear message.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::csv::CsvSource;
use super::jsonl::JsonlSource;
use super::parquet::ParquetSource;
use super::row::{LoadSpec, RowSource};
use crate::cli::command::FormatArg;
use crate::cli::error::{CliError, CliResult};

/// Bytes read from the start of a text file to judge its format.
const SNIFF_BYTES: usize = 8192;
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl FileFormat {
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// `--format` if given, else the extension: .csv, .jsonl/.ndjson/.json, .parquet/.pq.
pub fn resolve_format(path: &Path, format: Option<FormatArg>) -> CliResult<FileFormat> {
    if let Some(format) = format {
        return Ok(match format {
            FormatArg::Csv => FileFormat::Csv,
            FormatArg::Jsonl => FileFormat::Jsonl,
            FormatArg::Parquet => FileFormat::Parquet,
        });
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Ok(FileFormat::Csv),
        "jsonl" | "ndjson" | "json" => Ok(FileFormat::Jsonl),
        "parquet" | "pq" => Ok(FileFormat::Parquet),
        _ => Err(CliError::usage(format!(
            "cannot tell the format of {} from its extension '{ext}': use .csv, .jsonl or .parquet, or pass --format",
            path.display()
        ))),
    }
}

/// Checks that the file looks like `format` before any row is read.
pub fn sniff(path: &Path, format: FileFormat) -> CliResult<()> {
    let mut file =
        File::open(path).map_err(|e| CliError::file(path, format!("cannot open: {e}")))?;
    let mut head = vec![0u8; SNIFF_BYTES];
    let n = read_up_to(&mut file, &mut head)
        .map_err(|e| CliError::file(path, format!("cannot read: {e}")))?;
    head.truncate(n);
    let not = |what: &str, why: &str| CliError::file(path, format!("not a {what} file: {why}"));
    match format {
        FileFormat::Parquet => {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut tail = [0u8; 4];
            let tail_ok = len >= 12
                && file.seek(SeekFrom::End(-4)).is_ok()
                && file.read_exact(&mut tail).is_ok()
                && &tail == PARQUET_MAGIC;
            if !head.starts_with(PARQUET_MAGIC) || !tail_ok {
                return Err(not(
                    "Parquet",
                    &format!(
                        "it does not start and end with the Parquet magic 'PAR1'{}",
                        text_hint(&head)
                    ),
                ));
            }
        }
        FileFormat::Csv | FileFormat::Jsonl => {
            if head.starts_with(PARQUET_MAGIC) {
                return Err(not(
                    format.name(),
                    "it is a Parquet file (pass --format parquet or rename it .parquet)",
                ));
            }
            if head.contains(&0) {
                return Err(not(format.name(), "it holds binary data (NUL bytes)"));
            }
            let first = head.iter().find(|b| !b.is_ascii_whitespace()).copied();
            if format == FileFormat::Jsonl && first.is_some_and(|b| b != b'{') {
                return Err(not(
                    "JSON Lines",
                    "its first line does not start with '{' (is it CSV? pass --format csv)",
                ));
            }
            if format == FileFormat::Csv && first == Some(b'{') {
                return Err(not(
                    "CSV",
                    "it starts with '{' like JSON Lines (pass --format jsonl or rename it .jsonl)",
                ));
            }
        }
    }
    Ok(())
}

fn text_hint(head: &[u8]) -> &'static str {
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => " (it looks like JSON Lines)",
        Some(_) if !head.contains(&0) => " (it looks like text, perhaps CSV)",
        _ => "",
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Opens the reader for `format`.
pub fn open(path: &Path, format: FileFormat, spec: LoadSpec) -> CliResult<Box<dyn RowSource>> {
    Ok(match format {
        FileFormat::Csv => Box::new(CsvSource::open(path, spec)?),
        FileFormat::Jsonl => Box::new(JsonlSource::open(path, spec)?),
        FileFormat::Parquet => Box::new(ParquetSource::open(path, spec)?),
    })
}
