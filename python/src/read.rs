//! Answers of a get, turned into one column per feature: a numpy array of statuses, one of
//! event times, and the values as numpy arrays where the type has a fixed width (a vector
//! feature becomes one 2-D float32 array built in Rust and handed to numpy without a copy).

use numpy::{IntoPyArray, PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use quiver_engine::feature::{FeatureType, FeatureValue, Status, Value};

use crate::error::Failure;

/// Values of one column, before they become Python objects.
enum Values {
    Bool(Vec<bool>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Objects(Vec<Value>),
    Vector { dim: usize, values: Vec<f32> },
    ListF32 { offsets: Vec<i64>, values: Vec<f32> },
    ListI64 { offsets: Vec<i64>, values: Vec<i64> },
}

/// One requested feature's answers for every entity.
pub struct Column {
    statuses: Vec<u8>,
    times_ms: Vec<i64>,
    kind: &'static str,
    values: Values,
}

fn wrong(reference: &str, ty: FeatureType, v: &Value) -> Failure {
    Failure::Protocol(format!(
        "feature '{reference}' is declared {ty} but the store returned a {} value",
        v.type_name()
    ))
}

impl Column {
    fn new(ty: FeatureType, n: usize) -> Column {
        let (kind, values) = match ty {
            FeatureType::Bool => ("bool", Values::Bool(Vec::with_capacity(n))),
            FeatureType::I64 => ("i64", Values::I64(Vec::with_capacity(n))),
            FeatureType::F32 => ("f32", Values::F32(Vec::with_capacity(n))),
            FeatureType::F64 => ("f64", Values::F64(Vec::with_capacity(n))),
            FeatureType::String => ("str", Values::Objects(Vec::with_capacity(n))),
            FeatureType::Bytes => ("bytes", Values::Objects(Vec::with_capacity(n))),
            FeatureType::ListString => ("list_str", Values::Objects(Vec::with_capacity(n))),
            FeatureType::Vector(dim) => (
                "vec",
                Values::Vector {
                    dim: dim as usize,
                    values: Vec::with_capacity(n * dim as usize),
                },
            ),
            FeatureType::ListF32 => (
                "list_f32",
                Values::ListF32 {
                    offsets: vec![0],
                    values: Vec::new(),
                },
            ),
            FeatureType::ListI64 => (
                "list_i64",
                Values::ListI64 {
                    offsets: vec![0],
                    values: Vec::new(),
                },
            ),
        };
        Column {
            statuses: Vec::with_capacity(n),
            times_ms: Vec::with_capacity(n),
            kind,
            values,
        }
    }

    /// Appends one answer; a value that is not PRESENT leaves a zero (or `None`) behind.
    fn push(&mut self, reference: &str, ty: FeatureType, fv: FeatureValue) -> Result<(), Failure> {
        self.statuses.push(fv.status as u8);
        self.times_ms.push(fv.event_time_ms as i64);
        let present = fv.status == Status::Present;
        let v = if present { fv.value } else { Value::Null };
        match (&mut self.values, v) {
            (Values::Objects(out), v) => out.push(v),
            (Values::Bool(out), Value::Bool(x)) => out.push(x),
            (Values::Bool(out), Value::Null) => out.push(false),
            (Values::I64(out), Value::I64(x)) => out.push(x),
            (Values::I64(out), Value::Null) => out.push(0),
            (Values::F32(out), Value::F32(x)) => out.push(x),
            (Values::F32(out), Value::Null) => out.push(f32::NAN),
            (Values::F64(out), Value::F64(x)) => out.push(x),
            (Values::F64(out), Value::Null) => out.push(f64::NAN),
            (Values::Vector { dim, values }, Value::Vector(x)) if x.len() == *dim => {
                values.extend_from_slice(&x)
            }
            (Values::Vector { dim, values }, Value::Null) => {
                values.resize(values.len() + *dim, 0.0)
            }
            (Values::ListF32 { offsets, values }, v) => {
                if let Value::ListF32(x) = v {
                    values.extend_from_slice(&x);
                } else if v != Value::Null {
                    return Err(wrong(reference, ty, &v));
                }
                offsets.push(values.len() as i64);
            }
            (Values::ListI64 { offsets, values }, v) => {
                if let Value::ListI64(x) = v {
                    values.extend_from_slice(&x);
                } else if v != Value::Null {
                    return Err(wrong(reference, ty, &v));
                }
                offsets.push(values.len() as i64);
            }
            (_, v) => return Err(wrong(reference, ty, &v)),
        }
        Ok(())
    }

    /// `(statuses, event_times_ms, kind, values...)`.
    fn into_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
        let statuses = self.statuses.into_pyarray(py).into_any();
        let times = self.times_ms.into_pyarray(py).into_any();
        let kind = PyString::new(py, self.kind).into_any();
        let mut items = vec![statuses, times, kind];
        match self.values {
            Values::Bool(v) => items.push(v.into_pyarray(py).into_any()),
            Values::I64(v) => items.push(v.into_pyarray(py).into_any()),
            Values::F32(v) => items.push(v.into_pyarray(py).into_any()),
            Values::F64(v) => items.push(v.into_pyarray(py).into_any()),
            Values::Vector { dim, values } => {
                let rows = values.len() / dim.max(1);
                let flat: Bound<'_, PyArray1<f32>> = values.into_pyarray(py);
                items.push(flat.reshape([rows, dim])?.into_any());
            }
            Values::ListF32 { offsets, values } => {
                items.push(offsets.into_pyarray(py).into_any());
                items.push(values.into_pyarray(py).into_any());
            }
            Values::ListI64 { offsets, values } => {
                items.push(offsets.into_pyarray(py).into_any());
                items.push(values.into_pyarray(py).into_any());
            }
            Values::Objects(v) => {
                let objs = v
                    .iter()
                    .map(|x| object(py, x))
                    .collect::<PyResult<Vec<_>>>()?;
                items.push(PyList::new(py, objs)?.into_any());
            }
        }
        PyTuple::new(py, items)
    }
}

fn object<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::ListString(v) => PyList::new(py, v)?.into_any(),
        _ => py.None().into_bound(py),
    })
}

/// Regroups answers (one row per entity, one value per reference) into one column per
/// reference. Runs without the GIL.
pub fn columns(
    references: &[String],
    types: &[FeatureType],
    rows: Vec<Vec<FeatureValue>>,
) -> Result<Vec<Column>, Failure> {
    let n = rows.len();
    let mut cols: Vec<Column> = types.iter().map(|&ty| Column::new(ty, n)).collect();
    for row in rows {
        if row.len() != cols.len() {
            return Err(Failure::Protocol(format!(
                "an answer has {} values for {} features",
                row.len(),
                cols.len()
            )));
        }
        for (j, fv) in row.into_iter().enumerate() {
            cols[j].push(&references[j], types[j], fv)?;
        }
    }
    Ok(cols)
}

/// The same columns from answers that already come one column per reference (a training
/// set's). Runs without the GIL.
pub fn feature_columns(
    references: &[String],
    types: &[FeatureType],
    answers: Vec<Vec<FeatureValue>>,
) -> Result<Vec<Column>, Failure> {
    if answers.len() != types.len() {
        return Err(Failure::Protocol(format!(
            "an answer has {} columns for {} features",
            answers.len(),
            types.len()
        )));
    }
    answers
        .into_iter()
        .enumerate()
        .map(|(j, values)| {
            let mut col = Column::new(types[j], values.len());
            for fv in values {
                col.push(&references[j], types[j], fv)?;
            }
            Ok(col)
        })
        .collect()
}

pub fn columns_into_py(py: Python<'_>, cols: Vec<Column>) -> PyResult<Bound<'_, PyList>> {
    let items = cols
        .into_iter()
        .map(|c| c.into_py(py))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}
