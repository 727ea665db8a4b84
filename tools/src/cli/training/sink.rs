//! The training set's Parquet output: the spine's columns as they were, then one optional
//! column per feature (null unless PRESENT), then, with `--status-columns`, one required string
//! column per feature holding its status. One row group per spine chunk.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression as ParquetCompression;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{Type, TypePtr};
use quiver_engine::feature::{FeatureType, Status, Value};
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
    features: Vec<OutColumn>,
    status_columns: bool,
    path: PathBuf,
}

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
        let props = WriterProperties::builder()
            .set_compression(ParquetCompression::SNAPPY)
            .build();
        let writer =
            SerializedFileWriter::new(BufWriter::new(file), Arc::new(schema), Arc::new(props))
                .map_err(|e| CliError::file(path, format!("cannot start the Parquet file: {e}")))?;
        Ok(TrainingSink {
            writer,
            features,
            status_columns,
            path: path.to_path_buf(),
        })
    }

    fn failed(&self, e: impl std::fmt::Display) -> CliError {
        CliError::file(&self.path, format!("Parquet write failed: {e}"))
    }

    /// Writes one chunk's rows as one row group.
    pub fn write(&mut self, chunk: &SpineChunk, joined: &Joined) -> CliResult<()> {
        let passed = chunk.leaves.len();
        let features = self.features.len();
        let mut group = self
            .writer
            .next_row_group()
            .map_err(|e| CliError::file(&self.path, e))?;
        let mut index = 0usize;
        while let Some(mut column) = group
            .next_column()
            .map_err(|e| CliError::file(&self.path, e))?
        {
            let written = if index < passed {
                chunk.leaves[index].write(&mut column)
            } else if index < passed + features {
                let f = index - passed;
                let cells: Vec<Option<&Value>> = joined.columns[f]
                    .iter()
                    .map(|v| (v.status == Status::Present).then_some(&v.value))
                    .collect();
                write_feature(&mut column, self.features[f].ty, &cells)
            } else {
                debug_assert!(self.status_columns);
                let f = index - passed - features;
                let names: Vec<ByteArray> = joined.columns[f]
                    .iter()
                    .map(|v| ByteArray::from(status_name(v.status)))
                    .collect();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&names, None, None)
                    .map(drop)
            };
            written
                .and_then(|()| column.close())
                .map_err(|e| CliError::file(&self.path, format!("Parquet write failed: {e}")))?;
            index += 1;
        }
        group.close().map_err(|e| self.failed(e))?;
        Ok(())
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
