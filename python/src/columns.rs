//! Columns of a bulk write, as `quiver._columns` hands them over: numpy buffers per column
//! (values, offsets, validity), copied once into Rust so that rows can be built and sent with
//! the GIL released.

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use quiver_engine::feature::{EntityKey, Value};

use crate::backend::PutRow;
use crate::error::Failure;

fn vec1<'py, T: numpy::Element + Copy>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Vec<T>> {
    let a: PyReadonlyArray1<'py, T> = obj.extract().map_err(|_| {
        PyErr::from(Failure::invalid(format!(
            "column buffer '{what}' must be a 1-D numpy array of {}",
            std::any::type_name::<T>()
        )))
    })?;
    Ok(match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    })
}

/// Variable-length items: item `i` is `data[offsets[i]..offsets[i + 1]]`.
pub struct Ragged<T> {
    offsets: Vec<i64>,
    data: Vec<T>,
}

fn check_offsets(offsets: &[i64], items: usize, data_len: usize, what: &str) -> PyResult<()> {
    let ok = offsets.len() == items + 1
        && offsets.windows(2).all(|w| w[0] <= w[1])
        && offsets.first().is_some_and(|&o| o >= 0)
        && offsets.last().is_some_and(|&o| o as usize <= data_len);
    if ok {
        return Ok(());
    }
    Err(Failure::invalid(format!(
        "column '{what}': offsets must be {} ascending positions within its {data_len} values",
        items + 1
    ))
    .into())
}

impl<T> Ragged<T> {
    fn new(offsets: Vec<i64>, data: Vec<T>, items: usize, what: &str) -> PyResult<Ragged<T>> {
        check_offsets(&offsets, items, data.len(), what)?;
        Ok(Ragged { offsets, data })
    }

    fn item(&self, i: usize) -> &[T] {
        &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

enum Data {
    Bool(Vec<bool>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Str(Ragged<u8>),
    Bytes(Ragged<u8>),
    Vector {
        dim: usize,
        values: Vec<f32>,
    },
    ListF32(Ragged<f32>),
    ListI64(Ragged<i64>),
    /// Row `i` holds strings `lists[i]..lists[i + 1]` of `strs`.
    ListStr {
        lists: Vec<i64>,
        strs: Ragged<u8>,
    },
}

pub struct Column {
    name: String,
    valid: Option<Vec<bool>>,
    data: Data,
}

fn arg<'py>(t: &Bound<'py, PyTuple>, i: usize, name: &str) -> PyResult<Bound<'py, PyAny>> {
    t.get_item(i).map_err(|_| {
        PyErr::from(Failure::invalid(format!(
            "column '{name}' lacks buffer {i}"
        )))
    })
}

impl Column {
    /// `(name, kind, valid or None, *buffers)`.
    pub fn from_tuple(t: &Bound<'_, PyTuple>, rows: usize) -> PyResult<Column> {
        let name: String = t.get_item(0)?.extract()?;
        let kind: String = t.get_item(1)?.extract()?;
        let valid_obj = t.get_item(2)?;
        let valid = if valid_obj.is_none() {
            None
        } else {
            Some(vec1::<bool>(&valid_obj, &name)?)
        };
        let b = |i: usize| arg(t, 3 + i, &name);
        let data = match kind.as_str() {
            "bool" => Data::Bool(vec1(&b(0)?, &name)?),
            "i64" => Data::I64(vec1(&b(0)?, &name)?),
            "f32" => Data::F32(vec1(&b(0)?, &name)?),
            "f64" => Data::F64(vec1(&b(0)?, &name)?),
            "str" | "bytes" => {
                let r = Ragged::new(vec1(&b(0)?, &name)?, vec1(&b(1)?, &name)?, rows, &name)?;
                if kind == "str" {
                    Data::Str(r)
                } else {
                    Data::Bytes(r)
                }
            }
            "vec" => {
                let a: PyReadonlyArray2<'_, f32> = b(0)?.extract()?;
                let dim = a.shape()[1];
                Data::Vector {
                    dim,
                    values: a.as_array().iter().copied().collect(),
                }
            }
            "list_f32" => Data::ListF32(Ragged::new(
                vec1(&b(0)?, &name)?,
                vec1(&b(1)?, &name)?,
                rows,
                &name,
            )?),
            "list_i64" => Data::ListI64(Ragged::new(
                vec1(&b(0)?, &name)?,
                vec1(&b(1)?, &name)?,
                rows,
                &name,
            )?),
            "list_str" => {
                let lists: Vec<i64> = vec1(&b(0)?, &name)?;
                let bounds: Vec<i64> = vec1(&b(1)?, &name)?;
                let strings = bounds.len().saturating_sub(1);
                check_offsets(&lists, rows, strings, &name)?;
                let strs = Ragged::new(bounds, vec1(&b(2)?, &name)?, strings, &name)?;
                Data::ListStr { lists, strs }
            }
            other => {
                return Err(
                    Failure::invalid(format!("column '{name}' has unknown kind '{other}'")).into(),
                )
            }
        };
        Column::finish(name, valid, rows, data)
    }

    fn finish(name: String, valid: Option<Vec<bool>>, rows: usize, data: Data) -> PyResult<Column> {
        let len = match &data {
            Data::Bool(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::Vector { dim, values } => values.len() / (*dim).max(1),
            Data::Str(r) | Data::Bytes(r) => r.offsets.len() - 1,
            Data::ListF32(r) => r.offsets.len() - 1,
            Data::ListI64(r) => r.offsets.len() - 1,
            Data::ListStr { lists, .. } => lists.len() - 1,
        };
        if len != rows || valid.as_ref().is_some_and(|v| v.len() != rows) {
            return Err(Failure::invalid(format!(
                "column '{name}' has {len} values, the write has {rows} rows"
            ))
            .into());
        }
        Ok(Column { name, valid, data })
    }

    /// Row `i`'s value; `Null` where the column is null.
    fn value(&self, i: usize) -> Result<Value, Failure> {
        if self.valid.as_ref().is_some_and(|v| !v[i]) {
            return Ok(Value::Null);
        }
        let text = |b: &[u8]| {
            std::str::from_utf8(b).map(str::to_owned).map_err(|_| {
                Failure::invalid(format!("column '{}' row {i} is not UTF-8", self.name))
            })
        };
        Ok(match &self.data {
            Data::Bool(v) => Value::Bool(v[i]),
            Data::I64(v) => Value::I64(v[i]),
            Data::F32(v) => Value::F32(v[i]),
            Data::F64(v) => Value::F64(v[i]),
            Data::Str(r) => Value::String(text(r.item(i))?),
            Data::Bytes(r) => Value::Bytes(r.item(i).to_vec()),
            Data::Vector { dim, values } => Value::Vector(values[i * dim..(i + 1) * dim].to_vec()),
            Data::ListF32(r) => Value::ListF32(r.item(i).to_vec()),
            Data::ListI64(r) => Value::ListI64(r.item(i).to_vec()),
            Data::ListStr { lists, strs } => {
                let (from, to) = (lists[i] as usize, lists[i + 1] as usize);
                (from..to)
                    .map(|s| text(strs.item(s)))
                    .collect::<Result<_, _>>()
                    .map(Value::ListString)?
            }
        })
    }
}

pub enum Keys {
    Str(Ragged<u8>),
    Bytes(Ragged<u8>),
    I64(Vec<i64>),
}

impl Keys {
    /// `("str" | "bytes", offsets, data)` or `("i64", values)`.
    pub fn from_tuple(t: &Bound<'_, PyTuple>, rows: usize) -> PyResult<Keys> {
        let kind: String = t.get_item(0)?.extract()?;
        let b = |i: usize| arg(t, 1 + i, "key");
        Ok(match kind.as_str() {
            "i64" => {
                let v: Vec<i64> = vec1(&b(0)?, "key")?;
                if v.len() != rows {
                    return Err(Failure::invalid(format!(
                        "the key column has {} values, the write has {rows} rows",
                        v.len()
                    ))
                    .into());
                }
                Keys::I64(v)
            }
            "str" => Keys::Str(Ragged::new(
                vec1(&b(0)?, "key")?,
                vec1(&b(1)?, "key")?,
                rows,
                "key",
            )?),
            "bytes" => Keys::Bytes(Ragged::new(
                vec1(&b(0)?, "key")?,
                vec1(&b(1)?, "key")?,
                rows,
                "key",
            )?),
            other => {
                return Err(Failure::invalid(format!("unknown key column kind '{other}'")).into())
            }
        })
    }

    pub fn key(&self, i: usize) -> Result<EntityKey, Failure> {
        Ok(match self {
            Keys::I64(v) => EntityKey::I64(v[i]),
            Keys::Bytes(r) => EntityKey::Bytes(r.item(i).to_vec()),
            Keys::Str(r) => EntityKey::String(
                std::str::from_utf8(r.item(i))
                    .map_err(|_| Failure::invalid(format!("key of row {i} is not UTF-8")))?
                    .to_owned(),
            ),
        })
    }
}

/// A whole bulk write, owned by Rust.
pub struct Batch {
    pub keys: Keys,
    pub times_ms: Vec<i64>,
    /// Each row's write time (when the store learned it), Unix ms; `None`: the store's clock.
    pub write_times_ms: Option<Vec<i64>>,
    pub columns: Vec<Column>,
    /// Leave a null out of its row instead of writing a stored null.
    pub skip_nulls: bool,
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.times_ms.len()
    }

    /// Rows `from..to`; an error names its row.
    pub fn build(&self, from: usize, to: usize) -> Result<Vec<PutRow>, (usize, Failure)> {
        (from..to)
            .map(|i| {
                let t = self.times_ms[i];
                if t < 0 {
                    return Err((
                        i,
                        Failure::invalid(format!("row {i}: event time {t} ms is before 1970")),
                    ));
                }
                let write_time_ms = match &self.write_times_ms {
                    Some(w) if w[i] < 0 => {
                        return Err((
                            i,
                            Failure::invalid(format!("write time {} ms is before 1970", w[i])),
                        ))
                    }
                    Some(w) => Some(w[i] as u64),
                    None => None,
                };
                let mut values = Vec::with_capacity(self.columns.len());
                for c in &self.columns {
                    let v = c.value(i).map_err(|e| (i, e))?;
                    if !(self.skip_nulls && v == Value::Null) {
                        values.push((c.name.clone(), v));
                    }
                }
                Ok(PutRow {
                    key: self.keys.key(i).map_err(|e| (i, e))?,
                    event_time_ms: t as u64,
                    values,
                    write_time_ms,
                })
            })
            .collect()
    }
}
