//! Wire encoding of TRAINING_SET (0x16), the point-in-time join of spine rows against the
//! store's history, documented byte by byte in `docs/PROTOCOL.md`, "TRAINING_SET".
//!
//! A request carries one batch of spine rows (column-major: timestamps, known-at times in the
//! known-at mode, one key column per feature group); its answer is one or more frames, each a
//! run of consecutive rows with one column of feature values per requested feature. A client
//! streams a spine of any size as a pipeline of such requests.

use super::types::{get_feature_value, get_key, get_refs, put_feature_value, put_key, put_refs};
use super::wire::{put_len, put_str, put_u32, put_u64, WireReader};
use super::DecodeError;
use quiver_engine::feature::{EntityKey, FeatureRef, FeatureValue, Value};
use quiver_engine::training::TimeMode;

/// Bytes of a TRAINING_SET response frame's body before its values: first row, rows, columns.
pub const TRAINING_CHUNK_HEAD_BYTES: usize = 12;

/// One batch of a spine, and the features to join to it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSetRequest {
    /// The features, from any groups that keep history; answered in this order.
    pub features: Vec<FeatureRef>,
    pub mode: TimeMode,
    /// Spine rows before this batch: errors name a row by its 1-based number in the spine.
    pub first_row: u64,
    /// Each row's timestamp, unix ms.
    pub timestamps_ms: Vec<u64>,
    /// Each row's known-at time, unix ms: present exactly in [`TimeMode::KnownAt`].
    pub known_at_ms: Option<Vec<u64>>,
    /// One column per group of `features` (any order): the group's name and each row's
    /// entity (`None`: the row has no entity of that group; its features read NOT_FOUND).
    pub key_columns: Vec<(String, Vec<Option<EntityKey>>)>,
}

impl TrainingSetRequest {
    pub fn rows(&self) -> usize {
        self.timestamps_ms.len()
    }
}

/// The mode's byte on the wire.
pub fn mode_code(mode: TimeMode) -> u8 {
    match mode {
        TimeMode::EventTime => 0,
        TimeMode::AsServed => 1,
        TimeMode::KnownAt => 2,
    }
}

fn get_mode(r: &mut WireReader<'_>) -> Result<TimeMode, DecodeError> {
    match r.u8("training-set mode")? {
        0 => Ok(TimeMode::EventTime),
        1 => Ok(TimeMode::AsServed),
        2 => Ok(TimeMode::KnownAt),
        tag => Err(DecodeError::UnknownTag {
            what: "training-set mode",
            tag,
        }),
    }
}

/// Bytes an optional key takes on the wire.
pub fn opt_key_len(key: Option<&EntityKey>) -> usize {
    match key {
        None => 1,
        Some(EntityKey::I64(_)) => 1 + 1 + 8,
        Some(EntityKey::String(s)) => 1 + 1 + 4 + s.len(),
        Some(EntityKey::Bytes(b)) => 1 + 1 + 4 + b.len(),
    }
}

pub fn put_training_set_request(b: &mut Vec<u8>, req: &TrainingSetRequest) {
    put_refs(b, &req.features);
    b.push(mode_code(req.mode));
    put_u64(b, req.first_row);
    put_len(b, req.rows());
    for &t in &req.timestamps_ms {
        put_u64(b, t);
    }
    if req.mode.needs_known_at() {
        // Exactly one per row, so that the frame decodes whatever the caller handed in.
        let known = req.known_at_ms.as_deref().unwrap_or(&[]);
        for i in 0..req.rows() {
            put_u64(b, known.get(i).copied().unwrap_or(0));
        }
    }
    put_len(b, req.key_columns.len());
    for (group, keys) in &req.key_columns {
        put_str(b, group);
        for i in 0..req.rows() {
            match keys.get(i).and_then(Option::as_ref) {
                None => b.push(0),
                Some(key) => {
                    b.push(1);
                    put_key(b, key);
                }
            }
        }
    }
}

fn get_u64s(r: &mut WireReader<'_>, n: usize, what: &'static str) -> Result<Vec<u64>, DecodeError> {
    let raw = r.take(n * 8, what)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
        .collect())
}

pub fn get_training_set_request(r: &mut WireReader<'_>) -> Result<TrainingSetRequest, DecodeError> {
    let features = get_refs(r)?;
    let mode = get_mode(r)?;
    let first_row = r.u64("training-set first row")?;
    let n = r.count("training-set rows", 8)?;
    let timestamps_ms = get_u64s(r, n, "training-set timestamps")?;
    let known_at_ms = match mode.needs_known_at() {
        true => Some(get_u64s(r, n, "training-set known-at times")?),
        false => None,
    };
    // Every column holds at least one byte per row.
    let columns = r.count("training-set key columns", (4 + n).min(r.remaining() + 1))?;
    let mut key_columns = Vec::with_capacity(columns);
    for _ in 0..columns {
        let group = r.string("training-set key column group")?;
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(match r.bool("training-set key present flag")? {
                true => Some(get_key(r)?),
                false => None,
            });
        }
        key_columns.push((group, keys));
    }
    Ok(TrainingSetRequest {
        features,
        mode,
        first_row,
        timestamps_ms,
        known_at_ms,
        key_columns,
    })
}

/// Bytes a feature value takes on the wire (status, event time, value).
pub fn feature_value_len(fv: &FeatureValue) -> usize {
    1 + 8 + value_len(&fv.value)
}

fn value_len(v: &Value) -> usize {
    1 + match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::I64(_) | Value::F64(_) => 8,
        Value::F32(_) => 4,
        Value::String(s) => 4 + s.len(),
        Value::Bytes(b) => 4 + b.len(),
        Value::Vector(v) | Value::ListF32(v) => 4 + 4 * v.len(),
        Value::ListI64(v) => 4 + 8 * v.len(),
        Value::ListString(v) => 4 + v.iter().map(|s| 4 + s.len()).sum::<usize>(),
    }
}

/// One response frame's body: `first` (the number of the frame's first row in the request's
/// batch), then `rows` of `columns` (one column per feature).
pub fn put_training_chunk(
    b: &mut Vec<u8>,
    first: u32,
    rows: std::ops::Range<usize>,
    columns: &[Vec<FeatureValue>],
) {
    put_u32(b, first);
    put_len(b, rows.len());
    put_len(b, columns.len());
    for column in columns {
        for fv in &column[rows.clone()] {
            put_feature_value(b, fv);
        }
    }
}

/// A decoded response frame: its first row, its row count, and per feature the values of
/// its rows.
pub type DecodedChunk = (u32, u32, Vec<Vec<FeatureValue>>);

pub fn get_training_chunk(r: &mut WireReader<'_>) -> Result<DecodedChunk, DecodeError> {
    let first = r.u32("training-set first row")?;
    let rows = r.u32("training-set rows")?;
    // A feature value is at least 10 bytes: status, event time, a null tag. (Clamped so that
    // the count check cannot overflow: a column longer than the body fails it either way.)
    let column_bytes = (rows as usize).saturating_mul(10).min(r.remaining() + 1);
    let m = r.count("training-set columns", column_bytes)?;
    let mut columns = Vec::with_capacity(m);
    for _ in 0..m {
        let mut column = Vec::with_capacity(rows as usize);
        for _ in 0..rows {
            column.push(get_feature_value(r)?);
        }
        columns.push(column);
    }
    Ok((first, rows, columns))
}
