//! One leaf column of a spine chunk, as read from Parquet (or built from CSV): its values and
//! levels, copied unchanged to the output so that every spine column passes through exactly,
//! whatever its type or nesting. Also the decoding of key and time columns from a leaf.

use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::column::reader::{get_typed_column_reader, ColumnReader, ColumnReaderImpl};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType,
    FloatType, Int32Type, Int64Type, Int96, Int96Type,
};
use parquet::errors::ParquetError;
use parquet::file::writer::SerializedColumnWriter;
use parquet::schema::types::ColumnDescriptor;
use quiver_engine::feature::{EntityKey, KeyType};

use crate::cli::load::row::parse_event_time;

const MS_PER_DAY: i64 = 86_400_000;

/// The values of one leaf column chunk, by physical type (nulls are not stored: see levels).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    I96(Vec<Int96>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<ByteArray>),
    Fixed(Vec<FixedLenByteArray>),
}

/// A leaf column chunk: values, and definition/repetition levels (empty when the column's
/// maximum level is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub values: Values,
    pub defs: Vec<i16>,
    pub reps: Vec<i16>,
    pub max_def: i16,
}

/// A typed reader of one leaf column of a row group.
pub enum LeafReader {
    Bool(ColumnReaderImpl<BoolType>),
    I32(ColumnReaderImpl<Int32Type>),
    I64(ColumnReaderImpl<Int64Type>),
    I96(ColumnReaderImpl<Int96Type>),
    F32(ColumnReaderImpl<FloatType>),
    F64(ColumnReaderImpl<DoubleType>),
    Bytes(ColumnReaderImpl<ByteArrayType>),
    Fixed(ColumnReaderImpl<FixedLenByteArrayType>),
}

/// Reads `records` whole records with `reader` into `values`, `defs` and `reps`.
fn read_all<T: parquet::data_type::DataType>(
    reader: &mut ColumnReaderImpl<T>,
    records: usize,
    defs: &mut Vec<i16>,
    reps: &mut Vec<i16>,
    with_defs: bool,
    with_reps: bool,
) -> Result<Vec<T::T>, ParquetError> {
    let mut values = Vec::new();
    let mut done = 0;
    while done < records {
        let (n, _, _) = reader.read_records(
            records - done,
            with_defs.then_some(&mut *defs),
            with_reps.then_some(&mut *reps),
            &mut values,
        )?;
        if n == 0 {
            return Err(ParquetError::General(format!(
                "the column chunk ended after {done} of {records} rows"
            )));
        }
        done += n;
    }
    Ok(values)
}

impl LeafReader {
    pub fn new(reader: ColumnReader) -> LeafReader {
        match reader {
            ColumnReader::BoolColumnReader(_) => LeafReader::Bool(get_typed_column_reader(reader)),
            ColumnReader::Int32ColumnReader(_) => LeafReader::I32(get_typed_column_reader(reader)),
            ColumnReader::Int64ColumnReader(_) => LeafReader::I64(get_typed_column_reader(reader)),
            ColumnReader::Int96ColumnReader(_) => LeafReader::I96(get_typed_column_reader(reader)),
            ColumnReader::FloatColumnReader(_) => LeafReader::F32(get_typed_column_reader(reader)),
            ColumnReader::DoubleColumnReader(_) => LeafReader::F64(get_typed_column_reader(reader)),
            ColumnReader::ByteArrayColumnReader(_) => {
                LeafReader::Bytes(get_typed_column_reader(reader))
            }
            ColumnReader::FixedLenByteArrayColumnReader(_) => {
                LeafReader::Fixed(get_typed_column_reader(reader))
            }
        }
    }

    /// The next `records` records of this column.
    pub fn read(&mut self, records: usize, descr: &ColumnDescriptor) -> Result<Leaf, ParquetError> {
        let (mut defs, mut reps) = (Vec::new(), Vec::new());
        let (d, r) = (descr.max_def_level() > 0, descr.max_rep_level() > 0);
        let (defs_ref, reps_ref) = (&mut defs, &mut reps);
        let values = match self {
            LeafReader::Bool(x) => Values::Bool(read_all(x, records, defs_ref, reps_ref, d, r)?),
            LeafReader::I32(x) => Values::I32(read_all(x, records, defs_ref, reps_ref, d, r)?),
            LeafReader::I64(x) => Values::I64(read_all(x, records, defs_ref, reps_ref, d, r)?),
            LeafReader::I96(x) => Values::I96(read_all(x, records, defs_ref, reps_ref, d, r)?),
            LeafReader::F32(x) => Values::F32(read_all(x, records, defs_ref, reps_ref, d, r)?),
            LeafReader::F64(x) => Values::F64(read_all(x, records, defs_ref, reps_ref, d, r)?),
            LeafReader::Bytes(x) => Values::Bytes(read_all(x, records, defs_ref, reps_ref, d, r)?),
            LeafReader::Fixed(x) => Values::Fixed(read_all(x, records, defs_ref, reps_ref, d, r)?),
        };
        Ok(Leaf {
            values,
            defs,
            reps,
            max_def: descr.max_def_level(),
        })
    }
}

impl Leaf {
    /// Writes this chunk to an output column of the same type and levels.
    pub fn write(&self, column: &mut SerializedColumnWriter<'_>) -> Result<(), ParquetError> {
        let defs = (!self.defs.is_empty()).then_some(&self.defs[..]);
        let reps = (!self.reps.is_empty()).then_some(&self.reps[..]);
        let written = match &self.values {
            Values::Bool(v) => column.typed::<BoolType>().write_batch(v, defs, reps),
            Values::I32(v) => column.typed::<Int32Type>().write_batch(v, defs, reps),
            Values::I64(v) => column.typed::<Int64Type>().write_batch(v, defs, reps),
            Values::I96(v) => column.typed::<Int96Type>().write_batch(v, defs, reps),
            Values::F32(v) => column.typed::<FloatType>().write_batch(v, defs, reps),
            Values::F64(v) => column.typed::<DoubleType>().write_batch(v, defs, reps),
            Values::Bytes(v) => column.typed::<ByteArrayType>().write_batch(v, defs, reps),
            Values::Fixed(v) => column
                .typed::<FixedLenByteArrayType>()
                .write_batch(v, defs, reps),
        };
        written.map(drop)
    }

    /// For a top-level column (one level per row): per row, the index of its value in
    /// `values`, or `None` for a null.
    fn slots(&self, rows: usize) -> Vec<Option<usize>> {
        if self.max_def == 0 {
            return (0..rows).map(Some).collect();
        }
        let mut next = 0;
        self.defs
            .iter()
            .map(|&d| {
                (d == self.max_def).then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    }

    /// A top-level key column's keys for a group of `key_type`; `None` for a null. `Err` names
    /// the row (0-based within the chunk) and what was wrong.
    pub fn keys(
        &self,
        rows: usize,
        key_type: KeyType,
    ) -> Result<Vec<Option<EntityKey>>, (usize, String)> {
        let slots = self.slots(rows);
        let mut out = Vec::with_capacity(rows);
        for (row, slot) in slots.into_iter().enumerate() {
            let Some(i) = slot else {
                out.push(None);
                continue;
            };
            let key = match (&self.values, key_type) {
                (Values::I64(v), KeyType::I64) => EntityKey::I64(v[i]),
                (Values::I32(v), KeyType::I64) => EntityKey::I64(v[i].into()),
                (Values::I64(v), KeyType::String) => EntityKey::String(v[i].to_string()),
                (Values::I32(v), KeyType::String) => EntityKey::String(v[i].to_string()),
                (Values::Bytes(v), KeyType::String) => {
                    let text = std::str::from_utf8(v[i].data())
                        .map_err(|_| (row, "the key is not valid UTF-8".to_string()))?;
                    EntityKey::String(text.to_string())
                }
                (Values::Bytes(v), KeyType::Bytes) => EntityKey::Bytes(v[i].data().to_vec()),
                (Values::Fixed(v), KeyType::Bytes) => EntityKey::Bytes(v[i].data().to_vec()),
                _ => unreachable!("key columns are checked by key_column_error"),
            };
            out.push(Some(key));
        }
        Ok(out)
    }

    /// A top-level time column's times in unix ms. Nulls, times before 1970 and unparsable
    /// text are errors naming the row (0-based within the chunk).
    pub fn times_ms(&self, rows: usize, unit: TimeColumn) -> Result<Vec<u64>, (usize, String)> {
        let slots = self.slots(rows);
        let mut out = Vec::with_capacity(rows);
        for (row, slot) in slots.into_iter().enumerate() {
            let i = slot.ok_or((row, "no time (null)".to_string()))?;
            let ms = match (&self.values, unit) {
                (Values::I64(v), TimeColumn::Millis) => v[i],
                (Values::I64(v), TimeColumn::Micros) => v[i].div_euclid(1_000),
                (Values::I64(v), TimeColumn::Nanos) => v[i].div_euclid(1_000_000),
                (Values::I32(v), TimeColumn::Days) => i64::from(v[i]) * MS_PER_DAY,
                (Values::I32(v), TimeColumn::Millis) => i64::from(v[i]),
                (Values::I96(v), _) => v[i].to_millis(),
                (Values::Bytes(v), TimeColumn::Text) => {
                    let text = std::str::from_utf8(v[i].data())
                        .map_err(|_| (row, "the time is not valid UTF-8".to_string()))?;
                    parse_event_time(text).map_err(|e| (row, e))? as i64
                }
                _ => unreachable!("time columns are checked by time_column"),
            };
            let ms =
                u64::try_from(ms).map_err(|_| (row, format!("time {ms} ms is before 1970")))?;
            out.push(ms);
        }
        Ok(out)
    }
}

/// How a time column's values read as unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeColumn {
    Millis,
    Micros,
    Nanos,
    Days,
    /// INT96 (legacy Spark timestamps).
    Legacy,
    /// RFC 3339, or digits of ms.
    Text,
}

/// How a column reads as times, or why it cannot (`None`: not a top-level time column).
pub fn time_column(descr: &ColumnDescriptor) -> Result<TimeColumn, String> {
    if descr.max_rep_level() > 0 || descr.path().parts().len() != 1 {
        return Err("is nested (a list or a group), not a time".to_string());
    }
    let logical = descr.logical_type_ref();
    let unit = match (descr.physical_type(), logical, descr.converted_type()) {
        (PhysicalType::INT64, Some(LogicalType::Timestamp(t)), _) => match t.unit {
            TimeUnit::MILLIS => TimeColumn::Millis,
            TimeUnit::MICROS => TimeColumn::Micros,
            TimeUnit::NANOS => TimeColumn::Nanos,
        },
        (PhysicalType::INT64, _, ConvertedType::TIMESTAMP_MICROS) => TimeColumn::Micros,
        (PhysicalType::INT64, _, _) => TimeColumn::Millis,
        (PhysicalType::INT32, Some(LogicalType::Date), _)
        | (PhysicalType::INT32, _, ConvertedType::DATE) => TimeColumn::Days,
        (PhysicalType::INT32, _, _) => TimeColumn::Millis,
        (PhysicalType::INT96, _, _) => TimeColumn::Legacy,
        (PhysicalType::BYTE_ARRAY, _, _) => TimeColumn::Text,
        (other, _, _) => {
            return Err(format!(
                "is {other}: expected a timestamp, an integer of ms, a date or RFC 3339 text"
            ))
        }
    };
    Ok(unit)
}

/// Why a column cannot hold keys of `key_type`, if it cannot.
pub fn key_column_error(descr: &ColumnDescriptor, key_type: KeyType) -> Option<String> {
    if descr.max_rep_level() > 0 || descr.path().parts().len() != 1 {
        return Some("is nested (a list or a group), not a key".to_string());
    }
    let physical = descr.physical_type();
    let fits = match key_type {
        KeyType::I64 => matches!(physical, PhysicalType::INT64 | PhysicalType::INT32),
        KeyType::String => matches!(
            physical,
            PhysicalType::INT64 | PhysicalType::INT32 | PhysicalType::BYTE_ARRAY
        ),
        KeyType::Bytes => matches!(
            physical,
            PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY
        ),
    };
    let holds = match (physical, descr.converted_type()) {
        (PhysicalType::BYTE_ARRAY, ConvertedType::UTF8) => "strings".to_string(),
        (PhysicalType::BYTE_ARRAY, _) => "binary".to_string(),
        (p, _) => p.to_string().to_lowercase(),
    };
    (!fits).then(|| format!("holds {holds}, not {key_type} keys"))
}
