//! The training set's Parquet output: the spine's columns as they were, then one optional
//! column per feature (null unless PRESENT), then, with `--status-columns`, one required string
//! column per feature holding its status. One row group per spine chunk.
//!
//! A row group's columns are encoded in parallel, one thread per core, each column into a
//! buffer of its own (pages compressed and all), then spliced into the file in order: a
//! training set's output is written at the speed of its cores, not of one.

use std::fs::File;
use std::io::BufWriter;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parquet::basic::Compression as ParquetCompression;
use parquet::column::writer::{get_column_writer, ColumnCloseResult};
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::errors::ParquetError;
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::{
    SerializedColumnWriter, SerializedFileWriter, SerializedPageWriter, TrackedWrite,
};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{ColumnPath, Type, TypePtr};
use quiver_engine::feature::{FeatureType, FeatureValue, Status, Value};
use quiver_engine::training::Joined;

use super::spine::SpineChunk;
use crate::cli::error::{CliError, CliResult};
use crate::cli::export::parquet::{feature_column, write_feature};

/// One feature column of the output.
#[derive(Debug, Clone)]
pub struct OutColumn {
    pub name: String,
    pub ty: FeatureType,
}

/// The suffix of a feature's status column.
pub const STATUS_SUFFIX: &str = "__status";

pub struct TrainingSink {
    writer: SerializedFileWriter<BufWriter<File>>,
    props: WriterPropertiesPtr,
    features: Vec<OutColumn>,
    status_columns: bool,
    path: PathBuf,
    threads: usize,
}

/// One column chunk encoded apart from the file: its bytes and what closing its writer said.
type Encoded = (bytes::Bytes, ColumnCloseResult);

/// The status as the status column spells it.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Present => "present",
        Status::Null => "null",
        Status::NotFound => "not_found",
        Status::Expired => "expired",
        // History reads fail on a damaged record instead of answering it per value.
        Status::Corrupt => "corrupt",
    }
}

/// The fields the output adds after the spine's: features, then statuses.
fn added_fields(features: &[OutColumn], status_columns: bool) -> CliResult<Vec<TypePtr>> {
    let mut text = String::from("message added {\n");
    for f in features {
        text.push_str(&feature_column(&f.name, f.ty));
        text.push('\n');
    }
    if status_columns {
        for f in features {
            text.push_str(&format!(
                "required binary {}{STATUS_SUFFIX} (STRING);\n",
                f.name
            ));
        }
    }
    text.push('}');
    let parsed = parse_message_type(&text)
        .map_err(|e| CliError::Internal(format!("output schema does not parse: {e}: {text}")))?;
    Ok(parsed.get_fields().to_vec())
}

impl TrainingSink {
    pub fn create(
        path: &Path,
        spine_fields: Vec<TypePtr>,
        plain_leaves: &[ColumnPath],
        features: Vec<OutColumn>,
        status_columns: bool,
    ) -> CliResult<TrainingSink> {
        let mut fields = spine_fields;
        fields.extend(added_fields(&features, status_columns)?);
        let schema = Type::group_type_builder("training_set")
            .with_fields(fields)
            .build()
            .map_err(|e| CliError::Internal(format!("output schema does not build: {e}")))?;
        let file =
            File::create(path).map_err(|e| CliError::file(path, format!("cannot create: {e}")))?;
        let mut props = WriterProperties::builder().set_compression(ParquetCompression::SNAPPY);
        for path in plain_leaves {
            props = props.set_column_dictionary_enabled(path.clone(), false);
        }
        let props = Arc::new(props.build());
        let writer =
            SerializedFileWriter::new(BufWriter::new(file), Arc::new(schema), props.clone())
                .map_err(|e| CliError::file(path, format!("cannot start the Parquet file: {e}")))?;
        Ok(TrainingSink {
            writer,
            props,
            features,
            status_columns,
            path: path.to_path_buf(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    fn failed(&self, e: impl std::fmt::Display) -> CliError {
        CliError::file(&self.path, format!("Parquet write failed: {e}"))
    }

    /// Writes one chunk's rows as one row group, with their answers at `rows` of `joined`:
    /// its columns encoded on up to one thread per core, then appended in order.
    pub fn write(
        &mut self,
        chunk: &SpineChunk,
        joined: &Joined,
        rows: Range<usize>,
    ) -> CliResult<()> {
        let schema = self.writer.schema_descr();
        let columns = schema.num_columns();
        let descrs: Vec<_> = (0..columns).map(|i| schema.column(i)).collect();
        let next = AtomicUsize::new(0);
        let encode_all = || -> Vec<(usize, Result<Encoded, ParquetError>)> {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= columns {
                    return done;
                }
                let encoded = encode(descrs[i].clone(), self.props.clone(), |column| {
                    self.write_column(i, column, chunk, &joined.columns, &rows)
                });
                done.push((i, encoded));
            }
        };
        let threads = self.threads.clamp(1, columns.max(1));
        let mut encoded: Vec<Option<Result<Encoded, ParquetError>>> =
            (0..columns).map(|_| None).collect();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (1..threads).map(|_| scope.spawn(encode_all)).collect();
            let mine = encode_all();
            for (i, e) in workers
                .into_iter()
                .flat_map(|w| w.join().expect("encoding a Parquet column panicked"))
                .chain(mine)
            {
                encoded[i] = Some(e);
            }
        });
        let mut group = self
            .writer
            .next_row_group()
            .map_err(|e| CliError::file(&self.path, e))?;
        for e in encoded {
            let (bytes, close) = e
                .expect("every column was encoded")
                .map_err(|e| CliError::file(&self.path, format!("Parquet write failed: {e}")))?;
            group
                .append_column(&bytes, close)
                .map_err(|e| CliError::file(&self.path, format!("Parquet write failed: {e}")))?;
        }
        group.close().map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// Writes column `index` of the output (spine columns, then features, then statuses).
    fn write_column(
        &self,
        index: usize,
        column: &mut SerializedColumnWriter<'_>,
        chunk: &SpineChunk,
        answers: &[Vec<FeatureValue>],
        rows: &Range<usize>,
    ) -> Result<(), ParquetError> {
        let passed = chunk.leaves.len();
        let features = self.features.len();
        if index < passed {
            chunk.leaves[index].write(column)
        } else if index < passed + features {
            let f = index - passed;
            let cells: Vec<Option<&Value>> = answers[f][rows.clone()]
                .iter()
                .map(|v| (v.status == Status::Present).then_some(&v.value))
                .collect();
            write_feature(column, self.features[f].ty, &cells)
        } else {
            debug_assert!(self.status_columns);
            let f = index - passed - features;
            let names: Vec<ByteArray> = answers[f][rows.clone()]
                .iter()
                .map(|v| ByteArray::from(status_name(v.status)))
                .collect();
            column
                .typed::<ByteArrayType>()
                .write_batch(&names, None, None)
                .map(drop)
        }
    }

    /// Ends the file and makes it durable.
    pub fn finish(self) -> CliResult<()> {
        let path = self.path;
        let mut out = self
            .writer
            .into_inner()
            .map_err(|e| CliError::file(&path, format!("Parquet write failed: {e}")))?;
        std::io::Write::flush(&mut out)
            .map_err(|e| CliError::file(&path, format!("write failed: {e}")))?;
        out.get_ref()
            .sync_all()
            .map_err(|e| CliError::file(&path, format!("sync failed: {e}")))
    }
}

/// Encodes one column chunk into memory with `write`: the bytes of its pages, compressed as
/// the file's properties say, and its writer's close result, for
/// `SerializedRowGroupWriter::append_column`.
fn encode(
    descr: parquet::schema::types::ColumnDescPtr,
    props: WriterPropertiesPtr,
    write: impl FnOnce(&mut SerializedColumnWriter<'_>) -> Result<(), ParquetError>,
) -> Result<Encoded, ParquetError> {
    let mut sink = TrackedWrite::new(Vec::new());
    let mut closed: Option<ColumnCloseResult> = None;
    {
        let pages = Box::new(SerializedPageWriter::new(&mut sink));
        let on_close = Box::new(|result: ColumnCloseResult| {
            closed = Some(result);
            Ok(())
        });
        let mut column =
            SerializedColumnWriter::new(get_column_writer(descr, props, pages), Some(on_close));
        write(&mut column)?;
        column.close()?;
    }
    let close = closed
        .ok_or_else(|| ParquetError::General("a column writer closed without a result".into()))?;
    Ok((bytes::Bytes::from(sink.into_inner()?), close))
}
