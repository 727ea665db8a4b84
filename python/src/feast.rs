//! Feast's `GetOnlineFeaturesResponse.results` written straight from a get's answers.
//!
//! The Feast online store (`quiver.feast`) reads every feature view of a request in one get
//! and needs, per view, one `FeatureVector` per feature: the values (a Feast `Value` message
//! each, an empty one where the value is not served), the statuses (PRESENT for a value or a
//! stored null, NOT_FOUND otherwise) and the row's event timestamp (the exact microseconds of
//! the view's hidden timestamp feature, else the newest event time among the row's values;
//! an empty `Timestamp` for a row with nothing). Written here as protobuf wire bytes, the
//! Python side parses the whole response in one call; the bytes are those
//! `quiver/feast/response.py` writes from numpy columns, and `python/tests/test_feast.py`
//! compares them with Feast's own conversion.
//!
//! ## Format
//! Per feature: `0x12 len FeatureVector`, where FeatureVector is, for each row,
//! `0x0a len Value`; then `0x12 len statuses` (one byte each, 1 PRESENT, 3 NOT_FOUND); then for
//! each row `0x1a len Timestamp` (`0x08 seconds` when non-zero, `0x10 nanos` when non-zero).

use quiver_engine::feature::{FeatureValue, Status, Value};

use crate::error::Failure;

/// Feast's `FieldStatus` numbers.
const FS_PRESENT: u8 = 1;
const FS_NOT_FOUND: u8 = 3;
/// A view's features (its hidden timestamp feature apart) at most: Quiver's own per-request
/// limit is lower, this only bounds what Python may hand over.
pub const MAX_VIEW_FEATURES: usize = 65_536;

/// How one Feast feature's value is written: the `Value` field's number and its encoding.
#[derive(Clone, Copy, Debug)]
pub struct Encoding {
    field: u32,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// The stored bytes are a serialized `Value` already.
    Serialized,
    Varint,
    Fixed64,
    Fixed32,
    Bool,
    Delimited,
    FloatList,
    VarintList,
    StringList,
}

impl Encoding {
    /// From the names Python gives: `kind` one of "serialized", "varint", "fixed64",
    /// "fixed32", "bool", "delimited", "float_list", "varint_list", "string_list".
    pub fn parse(field: u32, kind: &str) -> Result<Encoding, Failure> {
        let kind = match kind {
            "serialized" => Kind::Serialized,
            "varint" => Kind::Varint,
            "fixed64" => Kind::Fixed64,
            "fixed32" => Kind::Fixed32,
            "bool" => Kind::Bool,
            "delimited" => Kind::Delimited,
            "float_list" => Kind::FloatList,
            "varint_list" => Kind::VarintList,
            "string_list" => Kind::StringList,
            other => {
                return Err(Failure::invalid(format!(
                    "unknown Feast value encoding '{other}'"
                )))
            }
        };
        if kind != Kind::Serialized && !(1..=(1 << 29) - 1).contains(&field) {
            return Err(Failure::invalid(format!(
                "Feast value field number {field} is outside 1..2^29"
            )));
        }
        Ok(Encoding { field, kind })
    }
}

/// A view as Python hands it: `([(Value field number, kind), ...], positions)`.
pub type ViewArg = (Vec<(u32, String)>, Vec<usize>);

/// One view of the request: its features' encodings (their references come first in the
/// get, in this order, then the view's timestamp feature) and, per entity row of the
/// response, the index of its key in the get.
pub struct View {
    pub encodings: Vec<Encoding>,
    pub positions: Vec<usize>,
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7F) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends `head` then `body`'s length then `body`.
fn delimited(out: &mut Vec<u8>, head: u8, body: &[u8]) {
    out.push(head);
    varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from((field << 3) | wire));
}

/// The `Value` message of a served value, into `out`.
fn value(out: &mut Vec<u8>, e: Encoding, v: &Value, reference: &str) -> Result<(), Failure> {
    let mut inner = Vec::new();
    match (e.kind, v) {
        (Kind::Serialized, Value::Bytes(b)) => {
            out.extend_from_slice(b);
            return Ok(());
        }
        (Kind::Varint, Value::I64(x)) => {
            tag(out, e.field, 0);
            varint(out, *x as u64);
        }
        (Kind::Fixed64, Value::F64(x)) => {
            tag(out, e.field, 1);
            out.extend_from_slice(&x.to_le_bytes());
        }
        (Kind::Fixed32, Value::F32(x)) => {
            tag(out, e.field, 5);
            out.extend_from_slice(&x.to_le_bytes());
        }
        (Kind::Bool, Value::Bool(x)) => {
            tag(out, e.field, 0);
            out.push(u8::from(*x));
        }
        (Kind::Delimited, Value::String(s)) => {
            tag(out, e.field, 2);
            varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        (Kind::Delimited, Value::Bytes(b)) => {
            tag(out, e.field, 2);
            varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        (Kind::FloatList, Value::Vector(xs) | Value::ListF32(xs)) => {
            if !xs.is_empty() {
                let mut packed = Vec::with_capacity(xs.len() * 4);
                for x in xs {
                    packed.extend_from_slice(&x.to_le_bytes());
                }
                delimited(&mut inner, 0x0A, &packed);
            }
            tag(out, e.field, 2);
            varint(out, inner.len() as u64);
            out.extend_from_slice(&inner);
        }
        (Kind::VarintList, Value::ListI64(xs)) => {
            if !xs.is_empty() {
                let mut packed = Vec::with_capacity(xs.len());
                for &x in xs {
                    varint(&mut packed, x as u64);
                }
                delimited(&mut inner, 0x0A, &packed);
            }
            tag(out, e.field, 2);
            varint(out, inner.len() as u64);
            out.extend_from_slice(&inner);
        }
        (Kind::StringList, Value::ListString(xs)) => {
            for s in xs {
                delimited(&mut inner, 0x0A, s.as_bytes());
            }
            tag(out, e.field, 2);
            varint(out, inner.len() as u64);
            out.extend_from_slice(&inner);
        }
        (kind, v) => {
            return Err(Failure::Protocol(format!(
                "feature '{reference}' is read as a Feast {kind:?} value but the store returned a {} value",
                v.type_name()
            )))
        }
    }
    Ok(())
}

/// A `Timestamp` entry of Unix microseconds `us`.
fn timestamp(out: &mut Vec<u8>, us: i64) {
    let (seconds, nanos) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000) * 1000);
    let mut m = Vec::with_capacity(16);
    if seconds != 0 {
        m.push(0x08);
        varint(&mut m, seconds as u64);
    }
    if nanos != 0 {
        m.push(0x10);
        varint(&mut m, nanos as u64);
    }
    delimited(out, 0x1A, &m);
}

fn served(s: Status) -> bool {
    matches!(s, Status::Present | Status::Null)
}

/// The `results` entries of every view, end to end, and per view the number of values
/// served (PRESENT or a stored null). `rows[k][j]` is key `k`'s answer to reference `j`.
pub fn results(
    references: &[String],
    rows: &[Vec<FeatureValue>],
    views: &[View],
) -> Result<(Vec<u8>, Vec<u64>), Failure> {
    if let Some(row) = rows.iter().find(|r| r.len() != references.len()) {
        return Err(Failure::Protocol(format!(
            "an answer has {} values for {} features",
            row.len(),
            references.len()
        )));
    }
    if let Some(&p) = views
        .iter()
        .flat_map(|v| &v.positions)
        .find(|&&p| p >= rows.len())
    {
        return Err(Failure::Protocol(format!(
            "the answer has {} rows, a view reads row {p}",
            rows.len()
        )));
    }
    let mut out = Vec::new();
    let mut counts = Vec::with_capacity(views.len());
    let mut first = 0;
    for view in views {
        let ts = first + view.encodings.len();
        let n = view.positions.len();
        // Each row's timestamp entry, shared by every feature of the view.
        let mut stamps = Vec::with_capacity(n * 12);
        for &p in &view.positions {
            let row = &rows[p][first..=ts];
            let (features, stamp) = row.split_at(view.encodings.len());
            let newest = features
                .iter()
                .filter(|fv| served(fv.status))
                .map(|fv| fv.event_time_ms as i64)
                .max();
            match (newest, &stamp[0]) {
                (None, _) => stamps.extend_from_slice(&[0x1A, 0x00]),
                (
                    Some(_),
                    FeatureValue {
                        status: Status::Present,
                        value: Value::I64(us),
                        ..
                    },
                ) => timestamp(&mut stamps, *us),
                (Some(ms), _) => timestamp(&mut stamps, ms.saturating_mul(1000)),
            }
        }
        let mut count = 0u64;
        let mut fv = Vec::new();
        let mut entry = Vec::new();
        for (j, &e) in view.encodings.iter().enumerate() {
            fv.clear();
            let mut statuses = Vec::with_capacity(n);
            for &p in &view.positions {
                let answer = &rows[p][first + j];
                entry.clear();
                if answer.status == Status::Present {
                    value(&mut entry, e, &answer.value, &references[first + j])?;
                }
                delimited(&mut fv, 0x0A, &entry);
                let ok = served(answer.status);
                count += u64::from(ok);
                statuses.push(if ok { FS_PRESENT } else { FS_NOT_FOUND });
            }
            if n > 0 {
                delimited(&mut fv, 0x12, &statuses);
            }
            fv.extend_from_slice(&stamps);
            delimited(&mut out, 0x12, &fv);
        }
        counts.push(count);
        first = ts + 1;
    }
    Ok((out, counts))
}

/// Checks the views against the references and keys before the get.
pub fn check(views: &[View], references: usize, keys: usize) -> Result<(), Failure> {
    let wanted: usize = views.iter().map(|v| v.encodings.len() + 1).sum();
    if wanted != references {
        return Err(Failure::invalid(format!(
            "the views name {wanted} references (features and one timestamp each) but {references} were given"
        )));
    }
    for v in views {
        if v.encodings.len() > MAX_VIEW_FEATURES {
            return Err(Failure::invalid(format!(
                "a view of {} features exceeds the limit of {MAX_VIEW_FEATURES}",
                v.encodings.len()
            )));
        }
        if let Some(&p) = v.positions.iter().find(|&&p| p >= keys) {
            return Err(Failure::invalid(format!(
                "a view's row names key {p} of {keys} keys"
            )));
        }
    }
    Ok(())
}
