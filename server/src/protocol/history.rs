//! Wire encodings of the history operations (GET_AS_OF, HISTORY, HISTORY_KEYS), documented
//! byte by byte in `docs/PROTOCOL.md`, sections "As-of time", "History cursor" and the
//! operations themselves.

use super::types::status_code;
use super::types::{get_key, get_refs, get_status, get_value, put_key, put_refs, put_value};
use super::wire::{
    put_len, put_opt_u64, put_str, put_strs, put_u32, put_u64, zero_unless, WireReader,
};
use super::DecodeError;
use quiver_engine::feature::{EntityKey, FeatureRef};
use quiver_engine::history::{AsOf, HistoryCursor, HistoryEntry, HistoryRange};
use quiver_engine::ScanCursor;

/// Bytes of an `as_of` on the wire.
pub const AS_OF_BYTES: usize = 25;
/// Bytes of a `history_cursor` on the wire.
pub const HISTORY_CURSOR_BYTES: usize = 24;

/// GET_AS_OF: the same features for every key, each key read as of its own time, or all of
/// them as of one time.
#[derive(Debug, Clone, PartialEq)]
pub struct GetAsOfRequest {
    pub keys: Vec<EntityKey>,
    /// One time for every key, or one per key (the server refuses any other count).
    pub times: Vec<AsOf>,
    pub features: Vec<FeatureRef>,
}

impl GetAsOfRequest {
    /// The (key, time) rows; `None` when `times` is neither one nor one per key.
    pub fn rows(&self) -> Option<Vec<(EntityKey, AsOf)>> {
        match self.times.as_slice() {
            [one] => Some(self.keys.iter().map(|k| (k.clone(), *one)).collect()),
            times if times.len() == self.keys.len() => Some(
                self.keys
                    .iter()
                    .cloned()
                    .zip(times.iter().copied())
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// HISTORY: one page of the versions of some features of one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRequest {
    pub group: String,
    pub key: EntityKey,
    /// Feature names of `group`.
    pub features: Vec<String>,
    pub range: HistoryRange,
    /// `None`: the first page; else a `next` returned with the previous page.
    pub after: Option<HistoryCursor>,
    /// Most versions in the page.
    pub max_versions: u32,
}

/// HISTORY_KEYS: one chunk of the entities of a group that have history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryKeysRequest {
    pub group: String,
    /// `None`: from the start; else a `next` returned with an earlier chunk.
    pub cursor: Option<ScanCursor>,
    /// History records scanned for this chunk.
    pub max_records: u32,
}

/// 25 bytes: event limit, known-at time (`opt_u64`), TTL reference.
pub fn put_as_of(out: &mut Vec<u8>, at: &AsOf) {
    put_u64(out, at.event_limit_ms);
    put_opt_u64(out, at.known_at_ms);
    put_u64(out, at.ttl_reference_ms);
}

pub fn get_as_of(r: &mut WireReader<'_>) -> Result<AsOf, DecodeError> {
    Ok(AsOf {
        event_limit_ms: r.u64("as-of event limit")?,
        known_at_ms: r.opt_u64("as-of known-at time")?,
        ttl_reference_ms: r.u64("as-of TTL reference")?,
    })
}

const ZERO_CURSOR: HistoryCursor = HistoryCursor {
    event_time_ms: 0,
    write_time_ms: 0,
    feature: 0,
    skip: 0,
};

/// 24 bytes: event time, write time, feature id, skip (zeros for none).
pub fn put_history_cursor(out: &mut Vec<u8>, c: Option<&HistoryCursor>) {
    let c = c.copied().unwrap_or(ZERO_CURSOR);
    put_u64(out, c.event_time_ms);
    put_u64(out, c.write_time_ms);
    put_u32(out, c.feature);
    put_u32(out, c.skip);
}

pub fn get_history_cursor(r: &mut WireReader<'_>) -> Result<HistoryCursor, DecodeError> {
    Ok(HistoryCursor {
        event_time_ms: r.u64("history cursor")?,
        write_time_ms: r.u64("history cursor")?,
        feature: r.u32("history cursor")?,
        skip: r.u32("history cursor")?,
    })
}

pub fn put_get_as_of_request(b: &mut Vec<u8>, req: &GetAsOfRequest) {
    put_len(b, req.keys.len());
    for k in &req.keys {
        put_key(b, k);
    }
    put_len(b, req.times.len());
    for t in &req.times {
        put_as_of(b, t);
    }
    put_refs(b, &req.features);
}

pub fn get_get_as_of_request(r: &mut WireReader<'_>) -> Result<GetAsOfRequest, DecodeError> {
    let n = r.count("as-of keys", 5)?;
    let keys = (0..n).map(|_| get_key(r)).collect::<Result<_, _>>()?;
    let m = r.count("as-of times", AS_OF_BYTES)?;
    let times = (0..m).map(|_| get_as_of(r)).collect::<Result<_, _>>()?;
    Ok(GetAsOfRequest {
        keys,
        times,
        features: get_refs(r)?,
    })
}

pub fn put_history_request(b: &mut Vec<u8>, req: &HistoryRequest) {
    put_str(b, &req.group);
    put_key(b, &req.key);
    put_strs(b, &req.features);
    put_u64(b, req.range.from_ms);
    put_u64(b, req.range.to_ms);
    put_opt_u64(b, req.range.known_at_ms);
    put_u32(b, req.max_versions);
    b.push(req.after.is_some() as u8);
    put_history_cursor(b, req.after.as_ref());
}

pub fn get_history_request(r: &mut WireReader<'_>) -> Result<HistoryRequest, DecodeError> {
    let group = r.string("group name")?;
    let key = get_key(r)?;
    let features = r.strings("history features")?;
    let range = HistoryRange {
        from_ms: r.u64("history from")?,
        to_ms: r.u64("history to")?,
        known_at_ms: r.opt_u64("history known-at time")?,
    };
    let max_versions = r.u32("history max versions")?;
    let resume = r.bool("history resume flag")?;
    let cursor = get_history_cursor(r)?;
    Ok(HistoryRequest {
        group,
        key,
        features,
        range,
        after: present(resume, cursor, ZERO_CURSOR, "history cursor")?,
        max_versions,
    })
}

pub fn put_history_keys_request(b: &mut Vec<u8>, req: &HistoryKeysRequest) {
    put_str(b, &req.group);
    b.push(req.cursor.is_some() as u8);
    put_u64(b, req.cursor.map_or(0, |c| c.0));
    put_u32(b, req.max_records);
}

pub fn get_history_keys_request(r: &mut WireReader<'_>) -> Result<HistoryKeysRequest, DecodeError> {
    let group = r.string("group name")?;
    let resume = r.bool("history keys resume flag")?;
    let cursor = r.u64("history keys cursor")?;
    zero_unless(resume, "history keys cursor", "when resume is 0", cursor)?;
    Ok(HistoryKeysRequest {
        group,
        cursor: resume.then_some(ScanCursor(cursor)),
        max_records: r.u32("history keys max records")?,
    })
}

/// One version: feature name, event time, write time, status, value.
pub fn put_history_entry(b: &mut Vec<u8>, e: &HistoryEntry) {
    put_str(b, &e.feature);
    put_u64(b, e.event_time_ms);
    put_u64(b, e.write_time_ms);
    b.push(status_code(e.status));
    put_value(b, &e.value);
}

fn get_history_entry(r: &mut WireReader<'_>) -> Result<HistoryEntry, DecodeError> {
    Ok(HistoryEntry {
        feature: r.string("history feature")?,
        event_time_ms: r.u64("history event time")?,
        write_time_ms: r.u64("history write time")?,
        status: get_status(r)?,
        value: get_value(r)?,
    })
}

/// The end of a HISTORY response body: has_next and the cursor.
pub fn put_history_next(b: &mut Vec<u8>, next: Option<&HistoryCursor>) {
    b.push(next.is_some() as u8);
    put_history_cursor(b, next);
}

/// Bytes [`put_history_next`] appends.
pub const HISTORY_NEXT_BYTES: usize = 1 + HISTORY_CURSOR_BYTES;

pub fn put_history_page(b: &mut Vec<u8>, entries: &[HistoryEntry], next: Option<&HistoryCursor>) {
    put_len(b, entries.len());
    for e in entries {
        put_history_entry(b, e);
    }
    put_history_next(b, next);
}

pub type DecodedPage = (Vec<HistoryEntry>, Option<HistoryCursor>);

pub fn get_history_page(r: &mut WireReader<'_>) -> Result<DecodedPage, DecodeError> {
    let n = r.count("history versions", 22)?;
    let entries = (0..n)
        .map(|_| get_history_entry(r))
        .collect::<Result<_, _>>()?;
    let has_next = r.bool("history has_next")?;
    let cursor = get_history_cursor(r)?;
    let next = present(has_next, cursor, ZERO_CURSOR, "history next cursor")?;
    Ok((entries, next))
}

pub fn put_history_keys(b: &mut Vec<u8>, keys: &[EntityKey], next: Option<ScanCursor>) {
    put_len(b, keys.len());
    for k in keys {
        put_key(b, k);
    }
    b.push(next.is_some() as u8);
    put_u64(b, next.map_or(0, |c| c.0));
}

pub type DecodedKeys = (Vec<EntityKey>, Option<ScanCursor>);

pub fn get_history_keys(r: &mut WireReader<'_>) -> Result<DecodedKeys, DecodeError> {
    let n = r.count("history keys", 5)?;
    let keys = (0..n).map(|_| get_key(r)).collect::<Result<_, _>>()?;
    let has_next = r.bool("history keys has_next")?;
    let next = r.u64("history keys next cursor")?;
    let next = present(has_next, next, 0, "history keys next cursor")?;
    Ok((keys, next.map(ScanCursor)))
}

/// An optional field of several values: its bytes must be zeros when absent, so that every
/// frame that decodes re-encodes to the same bytes.
fn present<T: PartialEq>(
    has: bool,
    value: T,
    zero: T,
    what: &'static str,
) -> Result<Option<T>, DecodeError> {
    match (has, value == zero) {
        (true, _) => Ok(Some(value)),
        (false, true) => Ok(None),
        (false, false) => Err(DecodeError::AbsentNotZero { what }),
    }
}
