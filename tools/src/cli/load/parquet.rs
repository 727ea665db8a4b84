//! Parquet reader, through the parquet crate's record API (no Arrow).
//!
//! Top-level columns map like a CSV header. Integer columns feed i64 (and float) features,
//! float and double columns feed f32/f64, strings feed strings, binary feeds bytes, and list
//! columns feed vectors and lists. Event times may be TIMESTAMP (millis or micros), INT64 ms,
//! DATE, or RFC 3339 strings.

use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::{Field, Row};
use quiver_engine::feature::{EntityKey, FeatureType, KeyType, Value};

use super::row::{
    finish_row, Batch, ColumnPlan, LoadSpec, ReadRow, Rejection, RowSource, RowTimes,
};
use crate::cli::error::{CliError, CliResult};
use crate::cli::json::hex;
use crate::cli::parse::parse_time;

const MS_PER_DAY: i64 = 86_400_000;

pub struct ParquetSource {
    rows: RowIter<'static>,
    plan: ColumnPlan,
    header: Vec<String>,
    spec: LoadSpec,
    total: u64,
    row: u64,
    path: String,
}

impl ParquetSource {
    pub fn open(path: &Path, spec: LoadSpec) -> CliResult<ParquetSource> {
        let file =
            File::open(path).map_err(|e| CliError::file(path, format!("cannot open: {e}")))?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| CliError::file(path, format!("not a readable Parquet file: {e}")))?;
        let meta = reader.metadata().file_metadata();
        let total = u64::try_from(meta.num_rows()).unwrap_or(0);
        let header: Vec<String> = meta
            .schema_descr()
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        let names: Vec<&str> = header.iter().map(String::as_str).collect();
        let name = path.display().to_string();
        let plan = spec.plan(&names, &name)?;
        Ok(ParquetSource {
            rows: reader.into_iter(),
            plan,
            header,
            spec,
            total,
            row: 0,
            path: name,
        })
    }

    fn convert(&self, row: Row) -> ReadRow {
        let line = self.row;
        let columns = row.into_columns();
        if columns.len() != self.header.len() {
            return Err(Rejection::new(
                line,
                "",
                format!(
                    "{} columns, the schema has {}",
                    columns.len(),
                    self.header.len()
                ),
            ));
        }
        let key_name = &self.header[self.plan.key];
        let key = field_key(self.spec.schema.key_type, &columns[self.plan.key].1)
            .map_err(|r| Rejection::new(line, key_name, r))?;
        let event_time_ms = match self.plan.ts.map(|i| &columns[i].1) {
            None | Some(Field::Null) => self.spec.default_ts_ms,
            Some(field) => field_time("event time", field)
                .map_err(|r| Rejection::new(line, &self.spec.ts_column, r))?,
        };
        let write_time_ms = match self.plan.write_time {
            Some(i) => Some(
                match &columns[i].1 {
                    Field::Null => Err(self.spec.missing_write_time()),
                    field => field_time("write time", field),
                }
                .map_err(|r| Rejection::new(line, &self.header[i], r))?,
            ),
            None => None,
        };
        let times = RowTimes {
            event_time_ms,
            write_time_ms,
        };
        let mut values = Vec::with_capacity(self.plan.features.len());
        for (index, name, ty) in &self.plan.features {
            let value = field_value(*ty, &columns[*index].1)
                .map_err(|r| Rejection::new(line, name.clone(), r))?;
            values.push((name.clone(), value));
        }
        finish_row(line, key, times, values)
    }
}

impl RowSource for ParquetSource {
    fn total(&self) -> u64 {
        self.total
    }

    fn counts_bytes(&self) -> bool {
        false
    }

    fn next_batch(&mut self, max_rows: usize) -> CliResult<Option<Batch>> {
        let mut rows = Vec::with_capacity(max_rows);
        while rows.len() < max_rows {
            let Some(next) = self.rows.next() else { break };
            self.row += 1;
            let row = next.map_err(|e| CliError::File {
                path: self.path.clone(),
                reason: format!("cannot decode row {}: {e}", self.row),
            })?;
            rows.push(self.convert(row));
        }
        Ok((!rows.is_empty()).then_some(Batch {
            rows,
            position: self.row,
        }))
    }
}

fn type_name(field: &Field) -> &'static str {
    match field {
        Field::Null => "null",
        Field::Bool(_) => "boolean",
        Field::Byte(_) | Field::Short(_) | Field::Int(_) | Field::Long(_) => "integer",
        Field::UByte(_) | Field::UShort(_) | Field::UInt(_) | Field::ULong(_) => "unsigned integer",
        Field::Float16(_) | Field::Float(_) | Field::Double(_) => "float",
        Field::Decimal(_) => "decimal",
        Field::Str(_) => "string",
        Field::Bytes(_) => "binary",
        Field::Date(_) => "date",
        Field::TimeMillis(_) | Field::TimeMicros(_) => "time of day",
        Field::TimestampMillis(_) | Field::TimestampMicros(_) => "timestamp",
        Field::Group(_) => "group",
        Field::ListInternal(_) => "list",
        Field::MapInternal(_) => "map",
    }
}

fn field_i64(field: &Field) -> Option<i64> {
    match *field {
        Field::Byte(v) => Some(v.into()),
        Field::Short(v) => Some(v.into()),
        Field::Int(v) => Some(v.into()),
        Field::Long(v) => Some(v),
        Field::UByte(v) => Some(v.into()),
        Field::UShort(v) => Some(v.into()),
        Field::UInt(v) => Some(v.into()),
        Field::ULong(v) => i64::try_from(v).ok(),
        _ => None,
    }
}

fn field_f64(field: &Field) -> Option<f64> {
    match *field {
        Field::Float(v) => Some(v.into()),
        Field::Double(v) => Some(v),
        Field::Float16(v) => Some(v.into()),
        _ => field_i64(field).map(|v| v as f64),
    }
}

fn field_f32(field: &Field) -> Option<f32> {
    let wide = field_f64(field)?;
    let narrow = wide as f32;
    (narrow.is_finite() == wide.is_finite()).then_some(narrow)
}

fn field_list<T>(field: &Field, item: impl Fn(&Field) -> Option<T>) -> Option<Vec<T>> {
    match field {
        Field::ListInternal(list) => list.elements().iter().map(item).collect(),
        _ => None,
    }
}

/// Converts one Parquet cell to a value of `ty`.
pub fn field_value(ty: FeatureType, field: &Field) -> Result<Value, String> {
    if matches!(field, Field::Null) {
        return Ok(Value::Null);
    }
    let wrong = || format!("expected {ty}, got a Parquet {}", type_name(field));
    let value = match (ty, field) {
        (FeatureType::Bool, Field::Bool(b)) => Value::Bool(*b),
        (FeatureType::I64, _) => Value::I64(field_i64(field).ok_or_else(wrong)?),
        (FeatureType::F32, _) => Value::F32(field_f32(field).ok_or_else(wrong)?),
        (FeatureType::F64, _) => Value::F64(field_f64(field).ok_or_else(wrong)?),
        (FeatureType::String, Field::Str(s)) => Value::String(s.clone()),
        (FeatureType::Bytes, Field::Bytes(b)) => Value::Bytes(b.data().to_vec()),
        (FeatureType::Bytes, Field::Str(s)) => Value::Bytes(s.as_bytes().to_vec()),
        (FeatureType::Vector(dim), _) => {
            let items = field_list(field, field_f32).ok_or_else(wrong)?;
            if items.len() != dim as usize {
                return Err(format!(
                    "expected a vector of dimension {dim}, got {} numbers",
                    items.len()
                ));
            }
            Value::Vector(items)
        }
        (FeatureType::ListI64, _) => {
            Value::ListI64(field_list(field, field_i64).ok_or_else(wrong)?)
        }
        (FeatureType::ListF32, _) => {
            Value::ListF32(field_list(field, field_f32).ok_or_else(wrong)?)
        }
        (FeatureType::ListString, _) => Value::ListString(
            field_list(field, |f| {
                if let Field::Str(s) = f {
                    Some(s.clone())
                } else {
                    None
                }
            })
            .ok_or_else(wrong)?,
        ),
        _ => return Err(wrong()),
    };
    Ok(value)
}

fn field_key(key_type: KeyType, field: &Field) -> Result<EntityKey, String> {
    let wrong = || {
        format!(
            "expected a {key_type} key, got a Parquet {}",
            type_name(field)
        )
    };
    match (key_type, field) {
        (KeyType::String, Field::Str(s)) => Ok(EntityKey::String(s.clone())),
        (KeyType::String, _) => field_i64(field)
            .map(|v| EntityKey::String(v.to_string()))
            .ok_or_else(wrong),
        (KeyType::I64, _) => field_i64(field).map(EntityKey::I64).ok_or_else(wrong),
        (KeyType::Bytes, Field::Bytes(b)) => Ok(EntityKey::Bytes(b.data().to_vec())),
        (KeyType::Bytes, Field::Str(s)) => crate::cli::parse::parse_hex(s)
            .map(EntityKey::Bytes)
            .map_err(|e| format!("{}: {e}", wrong())),
        _ => Err(wrong()),
    }
}

/// A time from a Parquet cell (`what` names it in errors).
fn field_time(what: &str, field: &Field) -> Result<u64, String> {
    let ms = match field {
        Field::TimestampMillis(ms) => Some(*ms),
        Field::TimestampMicros(us) => Some(us.div_euclid(1000)),
        Field::Date(days) => i64::from(*days).checked_mul(MS_PER_DAY),
        Field::Str(s) => return parse_time(what, s),
        Field::Bytes(b) => {
            return Err(format!(
                "expected the {what}, got bytes 0x{}",
                hex(b.data())
            ))
        }
        _ => field_i64(field),
    };
    let ms =
        ms.ok_or_else(|| format!("expected the {what}, got a Parquet {}", type_name(field)))?;
    u64::try_from(ms).map_err(|_| format!("{what} {ms} ms is before 1970"))
}
