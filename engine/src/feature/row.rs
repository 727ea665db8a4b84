//! The row codec: how one entity's values in one group are laid out in an engine record.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Range;

use super::bytes::{put_bytes, put_varint, Reader};
use super::error::FeatureError;
use super::limits::{
    MAX_FEATURES_PER_GROUP, MAX_LIST_LEN, MAX_ROW_BYTES, MAX_VALUE_BYTES, MAX_VECTOR_DIM,
    MIN_COMPRESS_BYTES,
};
use super::schema::Compression;
use super::types::{FeatureType, Value};

pub(crate) const ROW_FORMAT_VERSION: u8 = 1;
const FLAG_ZSTD: u8 = 1;
const ROW: &str = "row";
/// Row header: format version byte and flags byte.
const HEADER_BYTES: usize = 2;

/// Kind byte of a stored null.
pub const KIND_NULL: u8 = 0;

/// One stored value, still encoded: the payload borrows from a row body or an encode buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawCell<'a> {
    pub id: u32,
    /// [`KIND_NULL`] or the feature type tag (1..=10) of the payload.
    pub kind: u8,
    pub event_time_ms: u64,
    pub payload: &'a [u8],
}

impl RawCell<'_> {
    /// Decodes the value, checking it against the feature's type (a stored value whose kind does
    /// not match its feature is corruption: feature types never change).
    pub fn value(&self, ty: FeatureType) -> Result<Value, FeatureError> {
        if self.kind == KIND_NULL {
            return Ok(Value::Null);
        }
        if self.kind != ty.tag() {
            return Err(FeatureError::corrupt(
                ROW,
                format!(
                    "feature id {} holds kind {}, its type is {ty}",
                    self.id, self.kind
                ),
            ));
        }
        let value = decode_payload(self.kind, self.payload)?;
        if let (FeatureType::Vector(dim), Value::Vector(v)) = (ty, &value) {
            if v.len() != dim as usize {
                return Err(FeatureError::corrupt(
                    ROW,
                    format!("vector of {} elements for f32[{dim}]", v.len()),
                ));
            }
        }
        Ok(value)
    }

    /// [`RawCell::value`] into `out`, reusing the buffer of the vector `out` already holds
    /// for a vector feature (a server loop decodes the same features over and over: no
    /// allocation once its answers are warm).
    pub fn value_into(&self, ty: FeatureType, out: &mut Value) -> Result<(), FeatureError> {
        if let (FeatureType::Vector(dim), Value::Vector(v)) = (ty, &mut *out) {
            if self.kind == ty.tag() {
                let mut r = Reader::new(self.payload, ROW);
                r.varint()?;
                let rest = r.rest();
                if rest.len() == dim as usize * 4 {
                    v.clear();
                    v.extend(
                        rest.chunks_exact(4)
                            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
                    );
                    return Ok(());
                }
            }
        }
        *out = self.value(ty)?;
        Ok(())
    }
}

/// A row, the value of one (group, entity) engine record.
///
/// ## Format
///
/// All integers little-endian; "varint" is unsigned LEB128 (1 to 10 bytes).
///
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 1 | format version, `1` |
/// | 1 | 1 | flags: bit 0 set = the body is zstd-compressed; other bits are 0 |
/// | 2 | … | uncompressed: the body, to the end of the record |
/// | 2 | 4 | compressed: u32 LE length of the uncompressed body (at most `MAX_ROW_BYTES`) … |
/// | 6 | … | … followed by one zstd frame that decompresses to exactly that many bytes |
///
/// Compression is used only when the group asks for it, the body is at least
/// `MIN_COMPRESS_BYTES` long, and the compressed form (with its 4-byte length) is smaller.
///
/// The body:
///
/// | size | field |
/// | --- | --- |
/// | varint | cell count C (at most `MAX_FEATURES_PER_GROUP`) |
/// | 8 | base event time, u64 LE ms since the Unix epoch: the smallest event time of the cells (0 if C = 0) |
/// | … | C cells, feature ids strictly ascending, nothing after the last |
///
/// A cell:
///
/// | size | field |
/// | --- | --- |
/// | varint | feature id (its index in the group schema) |
/// | 1 | kind: 0 = null, else the feature's type tag (see below) |
/// | varint | event time minus the base event time, ms |
/// | … | payload, by kind |
///
/// Payload by kind: 0 null: nothing. 1 bool: 1 byte, 0 or 1. 2 i64: 8 bytes LE. 3 f32: 4 bytes
/// LE (IEEE 754). 4 f64: 8 bytes LE. 5 string: varint length + UTF-8 bytes. 6 bytes: varint
/// length + bytes. 7 f32[N]: varint N + N × 4 bytes LE f32. 8 list<i64>: varint count + count ×
/// 8 bytes LE. 9 list<f32>: varint count + count × 4 bytes LE. 10 list<string>: varint count,
/// then per element varint length + UTF-8 bytes. Lengths are at most `MAX_VALUE_BYTES`, counts at
/// most `MAX_LIST_LEN`, N at most `MAX_VECTOR_DIM`.
#[derive(Debug, Clone, Copy)]
pub struct Row;

impl Row {
    /// Encodes cells (ids strictly ascending) into a row, compressing when it pays.
    pub fn encode(cells: &[RawCell<'_>], compression: Compression) -> Vec<u8> {
        let base = cells.iter().map(|c| c.event_time_ms).min().unwrap_or(0);
        let payload_bytes: usize = cells.iter().map(|c| c.payload.len() + 8).sum();
        let mut row = Vec::with_capacity(HEADER_BYTES + 16 + payload_bytes);
        row.extend_from_slice(&[ROW_FORMAT_VERSION, 0]);
        put_varint(&mut row, cells.len() as u64);
        row.extend_from_slice(&base.to_le_bytes());
        let mut last_id = None;
        for cell in cells {
            assert!(
                last_id < Some(cell.id),
                "row cells must have strictly ascending ids"
            );
            last_id = Some(cell.id);
            put_varint(&mut row, cell.id as u64);
            row.push(cell.kind);
            put_varint(&mut row, cell.event_time_ms - base);
            row.extend_from_slice(cell.payload);
        }
        match compression {
            Compression::Zstd { level } if row.len() - HEADER_BYTES >= MIN_COMPRESS_BYTES => {
                compress(row, level)
            }
            _ => row,
        }
    }

    /// The body of a row, decompressed if needed.
    pub fn body(row: &[u8]) -> Result<Cow<'_, [u8]>, FeatureError> {
        let mut r = Reader::new(row, ROW);
        let version = r.u8()?;
        if version != ROW_FORMAT_VERSION {
            return Err(r.err(format!("unknown row format version {version}")));
        }
        match r.u8()? {
            0 => Ok(Cow::Borrowed(r.rest())),
            FLAG_ZSTD => {
                let raw_len = r.u32()? as usize;
                if raw_len > MAX_ROW_BYTES {
                    return Err(r.err(format!(
                        "body of {raw_len} bytes exceeds the {MAX_ROW_BYTES}-byte limit"
                    )));
                }
                let body = decompress(r.rest(), raw_len)?;
                if body.len() != raw_len {
                    return Err(FeatureError::corrupt(
                        ROW,
                        format!("body is {} bytes, header says {raw_len}", body.len()),
                    ));
                }
                Ok(Cow::Owned(body))
            }
            flags => Err(r.err(format!("unknown row flags {flags:#x}"))),
        }
    }

    /// Length of a row's uncompressed body, read from its header.
    pub fn body_len(row: &[u8]) -> usize {
        match row.get(2..6) {
            Some(len) if Row::is_compressed(row) => {
                u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize
            }
            _ => row.len().saturating_sub(HEADER_BYTES),
        }
    }

    /// Whether a row's body is stored compressed.
    pub fn is_compressed(row: &[u8]) -> bool {
        row.get(1) == Some(&FLAG_ZSTD)
    }

    /// Decodes every cell of a row body.
    pub fn cells(body: &[u8]) -> Result<Vec<RawCell<'_>>, FeatureError> {
        Cells::new(body)?.collect()
    }
}

type CachedCompressor = RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>>;

thread_local! {
    /// zstd contexts are costly to build (hundreds of KiB each): one per thread, reused.
    static COMPRESSOR: CachedCompressor = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn zstd_compress(body: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(slot.as_ref(), Some((l, _)) if *l == level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        slot.as_mut().expect("just set").1.compress(body)
    })
}

fn decompress(packed: &[u8], raw_len: usize) -> Result<Vec<u8>, FeatureError> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| FeatureError::corrupt(ROW, format!("zstd: {e}")))?,
            );
        }
        let d = slot.as_mut().expect("just set");
        d.decompress(packed, raw_len)
            .map_err(|e| FeatureError::corrupt(ROW, format!("zstd: {e}")))
    })
}

fn compress(row: Vec<u8>, level: i32) -> Vec<u8> {
    let body = &row[HEADER_BYTES..];
    // A zstd failure (it has none for in-memory buffers of this size) just keeps the row plain.
    match zstd_compress(body, level) {
        Ok(packed) if packed.len() + 4 < body.len() => {
            let mut out = Vec::with_capacity(HEADER_BYTES + 4 + packed.len());
            out.extend_from_slice(&[ROW_FORMAT_VERSION, FLAG_ZSTD]);
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&packed);
            out
        }
        _ => row,
    }
}

/// Iterates the cells of a row body, checking structure as it goes.
pub struct Cells<'a> {
    r: Reader<'a>,
    left: usize,
    base: u64,
    last_id: Option<u32>,
}

impl<'a> Cells<'a> {
    pub fn new(body: &'a [u8]) -> Result<Cells<'a>, FeatureError> {
        let mut r = Reader::new(body, ROW);
        let left = r.varint_max(MAX_FEATURES_PER_GROUP, "cell count")?;
        let base = r.u64()?;
        Ok(Cells {
            r,
            left,
            base,
            last_id: None,
        })
    }

    fn next_cell(&mut self) -> Result<RawCell<'a>, FeatureError> {
        let id = self
            .r
            .varint_max(MAX_FEATURES_PER_GROUP - 1, "feature id")? as u32;
        if self.last_id >= Some(id) {
            return Err(self.r.err(format!("feature id {id} out of order")));
        }
        self.last_id = Some(id);
        let kind = self.r.u8()?;
        let delta = self.r.varint()?;
        let event_time_ms = self
            .base
            .checked_add(delta)
            .ok_or_else(|| self.r.err("event time overflows u64"))?;
        let payload = payload_slice(&mut self.r, kind)?;
        self.left -= 1;
        if self.left == 0 && !self.r.is_empty() {
            return Err(self.r.err("trailing bytes after the last cell"));
        }
        Ok(RawCell {
            id,
            kind,
            event_time_ms,
            payload,
        })
    }
}

impl<'a> Iterator for Cells<'a> {
    type Item = Result<RawCell<'a>, FeatureError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let cell = self.next_cell();
        if cell.is_err() {
            self.left = 0;
        }
        Some(cell)
    }
}

/// Takes one payload of `kind` from the reader, checking every length against its limit.
pub(crate) fn payload_slice<'a>(r: &mut Reader<'a>, kind: u8) -> Result<&'a [u8], FeatureError> {
    let mut probe = Reader::new(r.peek(), ROW);
    let len = match kind {
        KIND_NULL => 0,
        1 => 1,
        3 => 4,
        2 | 4 => 8,
        5 | 6 => {
            let n = probe.varint_max(MAX_VALUE_BYTES, "value length")?;
            consumed(&probe, r) + n
        }
        7 => {
            let n = probe.varint_max(MAX_VECTOR_DIM as usize, "vector dimension")?;
            consumed(&probe, r) + 4 * n
        }
        8 | 9 => {
            let n = probe.varint_max(MAX_LIST_LEN, "list length")?;
            consumed(&probe, r) + n * if kind == 8 { 8 } else { 4 }
        }
        10 => {
            let n = probe.varint_max(MAX_LIST_LEN, "list length")?;
            for _ in 0..n {
                probe.bytes(MAX_VALUE_BYTES, "string length")?;
            }
            consumed(&probe, r)
        }
        _ => return Err(r.err(format!("unknown value kind {kind}"))),
    };
    r.take(len)
}

fn consumed(probe: &Reader<'_>, r: &Reader<'_>) -> usize {
    r.remaining() - probe.remaining()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

fn i64s(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// Decodes a payload whose extent [`payload_slice`] already checked.
fn decode_payload(kind: u8, payload: &[u8]) -> Result<Value, FeatureError> {
    let mut r = Reader::new(payload, ROW);
    let utf8 = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|_| FeatureError::corrupt(ROW, "string is not UTF-8"))
    };
    let value = match kind {
        1 => match r.u8()? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => return Err(r.err(format!("bool byte {b}"))),
        },
        2 => Value::I64(r.u64()? as i64),
        3 => Value::F32(f32::from_bits(r.u32()?)),
        4 => Value::F64(f64::from_bits(r.u64()?)),
        5 => Value::String(utf8(r.bytes(MAX_VALUE_BYTES, "value length")?)?),
        6 => Value::Bytes(r.bytes(MAX_VALUE_BYTES, "value length")?.to_vec()),
        7 => {
            r.varint()?;
            Value::Vector(f32s(r.rest()))
        }
        8 => {
            r.varint()?;
            Value::ListI64(i64s(r.rest()))
        }
        9 => {
            r.varint()?;
            Value::ListF32(f32s(r.rest()))
        }
        10 => {
            let n = r.varint_max(MAX_LIST_LEN, "list length")?;
            let items = (0..n)
                .map(|_| utf8(r.bytes(MAX_VALUE_BYTES, "string length")?))
                .collect::<Result<_, _>>()?;
            Value::ListString(items)
        }
        _ => return Err(r.err(format!("unknown value kind {kind}"))),
    };
    Ok(value)
}

/// Appends the payload of `value` to `out` and returns its kind byte. The value must already
/// have passed [`check_value`](super::check::check_value).
pub fn encode_payload(value: &Value, out: &mut Vec<u8>) -> u8 {
    let kind = match value {
        Value::Null => return KIND_NULL,
        Value::Bool(b) => {
            out.push(*b as u8);
            FeatureType::Bool
        }
        Value::I64(v) => {
            out.extend_from_slice(&v.to_le_bytes());
            FeatureType::I64
        }
        Value::F32(v) => {
            out.extend_from_slice(&v.to_le_bytes());
            FeatureType::F32
        }
        Value::F64(v) => {
            out.extend_from_slice(&v.to_le_bytes());
            FeatureType::F64
        }
        Value::String(s) => {
            put_bytes(out, s.as_bytes());
            FeatureType::String
        }
        Value::Bytes(b) => {
            put_bytes(out, b);
            FeatureType::Bytes
        }
        Value::Vector(v) => {
            put_f32s(out, v);
            FeatureType::Vector(v.len() as u32)
        }
        Value::ListI64(v) => {
            put_varint(out, v.len() as u64);
            v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            FeatureType::ListI64
        }
        Value::ListF32(v) => {
            put_f32s(out, v);
            FeatureType::ListF32
        }
        Value::ListString(v) => {
            put_varint(out, v.len() as u64);
            v.iter().for_each(|s| put_bytes(out, s.as_bytes()));
            FeatureType::ListString
        }
    };
    kind.tag()
}

fn put_f32s(out: &mut Vec<u8>, values: &[f32]) {
    put_varint(out, values.len() as u64);
    out.reserve(values.len() * 4);
    values
        .iter()
        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
}

/// Values of one put, encoded once into one buffer, sorted by feature id.
#[derive(Debug, Default)]
pub struct EncodedCells {
    buf: Vec<u8>,
    cells: Vec<(u32, u8, Range<usize>)>,
    event_time_ms: u64,
}

impl EncodedCells {
    /// Encodes `(feature id, value)` pairs, all with one event time. Ids must be distinct.
    pub fn new<'v>(
        event_time_ms: u64,
        values: impl IntoIterator<Item = (u32, &'v Value)>,
    ) -> EncodedCells {
        let mut out = EncodedCells {
            event_time_ms,
            ..EncodedCells::default()
        };
        for (id, value) in values {
            let start = out.buf.len();
            let kind = encode_payload(value, &mut out.buf);
            out.cells.push((id, kind, start..out.buf.len()));
        }
        out.cells.sort_unstable_by_key(|c| c.0);
        assert!(
            out.cells.windows(2).all(|w| w[0].0 < w[1].0),
            "feature ids of one put are distinct"
        );
        out
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn cells(&self) -> impl Iterator<Item = RawCell<'_>> + '_ {
        self.cells.iter().map(|(id, kind, range)| RawCell {
            id: *id,
            kind: *kind,
            event_time_ms: self.event_time_ms,
            payload: &self.buf[range.clone()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(u32, Value)> {
        vec![
            (0, Value::Bool(true)),
            (1, Value::I64(-42)),
            (2, Value::F32(1.5)),
            (3, Value::F64(-2.25)),
            (4, Value::String("héllo".into())),
            (5, Value::Bytes(vec![0, 255])),
            (6, Value::Vector(vec![0.5; 16])),
            (7, Value::ListI64(vec![1, -2, 3])),
            (8, Value::ListF32(vec![])),
            (
                9,
                Value::ListString(vec!["a".into(), String::new(), "ccc".into()]),
            ),
            (12, Value::Null),
        ]
    }

    fn types() -> Vec<FeatureType> {
        use FeatureType::*;
        vec![
            Bool,
            I64,
            F32,
            F64,
            String,
            Bytes,
            Vector(16),
            ListI64,
            ListF32,
            ListString,
            Bool,
            Bool,
            F32,
        ]
    }

    fn round_trip(compression: Compression) -> Vec<u8> {
        let values = sample();
        let enc = EncodedCells::new(1_700_000_000_123, values.iter().map(|(id, v)| (*id, v)));
        let cells: Vec<RawCell<'_>> = enc.cells().collect();
        let row = Row::encode(&cells, compression);
        let body = Row::body(&row).unwrap();
        let decoded = Row::cells(&body).unwrap();
        assert_eq!(decoded, cells);
        for (cell, (id, value)) in decoded.iter().zip(&values) {
            assert_eq!(cell.id, *id);
            assert_eq!(&cell.value(types()[*id as usize]).unwrap(), value);
        }
        row
    }

    #[test]
    fn rows_round_trip_plain_and_compressed() {
        let plain = round_trip(Compression::None);
        assert!(!Row::is_compressed(&plain));
        let packed = round_trip(Compression::Zstd { level: 3 });
        assert!(
            Row::is_compressed(&packed),
            "a repetitive vector compresses"
        );
        assert!(packed.len() < plain.len());
    }

    #[test]
    fn compression_is_skipped_when_it_does_not_pay() {
        let v = Value::I64(7);
        let enc = EncodedCells::new(5, [(0, &v)]);
        let cells: Vec<_> = enc.cells().collect();
        let row = Row::encode(&cells, Compression::Zstd { level: 3 });
        assert!(!Row::is_compressed(&row));
        assert_eq!(row, Row::encode(&cells, Compression::None));
    }

    #[test]
    fn event_times_are_per_cell() {
        let (a, b) = (Value::I64(1), Value::I64(2));
        let e1 = EncodedCells::new(100, [(0, &a)]);
        let e2 = EncodedCells::new(90, [(3, &b)]);
        let cells: Vec<_> = e1.cells().chain(e2.cells()).collect();
        let row = Row::encode(&cells, Compression::None);
        let times: Vec<u64> = Row::cells(&Row::body(&row).unwrap())
            .unwrap()
            .iter()
            .map(|c| c.event_time_ms)
            .collect();
        assert_eq!(times, vec![100, 90]);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let row = round_trip(Compression::None);
        for len in 0..row.len() {
            let result = Row::body(&row[..len]).and_then(|body| Row::cells(&body).map(|c| c.len()));
            assert!(result.is_err(), "len {len}");
        }
        let mut flipped = row.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = Row::body(&flipped).and_then(|body| Row::cells(&body).map(|c| c.len()));
            flipped[i] ^= 0xff;
        }
    }

    #[test]
    fn wrong_kind_for_type_is_corruption() {
        let v = Value::I64(1);
        let enc = EncodedCells::new(5, [(0, &v)]);
        let cell = enc.cells().next().unwrap();
        assert!(matches!(
            cell.value(FeatureType::F64),
            Err(FeatureError::Corrupt { .. })
        ));
    }
}
