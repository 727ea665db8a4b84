//! The byte layouts of history: version lists, the per-entity head, and the segment directory.
//!
//! ## Format
//!
//! All integers little-endian; "varint" is unsigned LEB128. Payloads are encoded as in a row
//! (see [`crate::feature::Row`]).
//!
//! A version list (the body of a segment and the open part of a head):
//!
//! | size | field |
//! | --- | --- |
//! | varint | version count N (at most `MAX_VERSIONS_PER_LIST`) |
//! | 8 | base event time, ms: the smallest event time of the versions (0 if N = 0) |
//! | 8 | base write time, ms: the smallest write time of the versions (0 if N = 0) |
//! | … | N versions, in the order they were written |
//!
//! A version: varint feature id; 1 byte kind (0 null, 1..=10 the feature's type tag, 255 = the
//! feature was removed from the row by a whole-row replace); varint event time minus the base;
//! varint write time minus the base; the payload by kind (nothing for 0 and 255).
//!
//! Segment record (key: entity key ++ u32 BE segment number): 1 byte format `1`, a version list.
//!
//! Head record (key: entity key ++ `FF FF FF FF`): 1 byte format `1`; u32 number of the next
//! segment to seal; u32 directory version this head was written with; u64 horizon, ms (as-of
//! and known-at times before it are refused, because versions they would need were reclaimed;
//! 0 = nothing reclaimed); then the open version list.
//!
//! Directory record (key: entity key ++ `FF FF FF FE`): 1 byte format `1`; u32 directory
//! version (+1 on every write); varint entry count D (at most `MAX_SEGMENTS`); D entries of 40
//! bytes: u32 segment number, u32 version count, u64 min event time, u64 max event time, u64
//! min write time, u64 max write time.
//!
//! Commit rules. The head is the commit point: entries whose segment number is not below the
//! head's next segment number are not yet committed and are ignored; a directory older than
//! the head's directory version is stale (a reader raced a writer) and the read is retried; a
//! listed segment that is missing is skipped only when it lies wholly before the head's
//! horizon (compaction deleted it and the anchors it left answer for it).

use crate::feature::row::payload_slice;
use crate::feature::FeatureError;

use crate::feature::bytes::{put_varint, Reader};

const HISTORY: &str = "history";
const FORMAT: u8 = 1;
/// Kind of a version that removed its feature from the row (a whole-row replace).
pub const KIND_ABSENT: u8 = 0xFF;
/// Most versions one list may hold (a segment seals long before this).
pub const MAX_VERSIONS_PER_LIST: usize = 1 << 20;
/// Most sealed segments one entity may have in one group.
pub const MAX_SEGMENTS: usize = 8192;
const DIR_ENTRY_BYTES: usize = 40;

/// One stored version of one feature, still encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Version<'a> {
    pub feature: u32,
    pub kind: u8,
    pub event_time_ms: u64,
    pub write_time_ms: u64,
    pub payload: &'a [u8],
}

impl Version<'_> {
    /// The order in which versions supersede each other: event time, then write time.
    pub fn order(&self) -> (u64, u64) {
        (self.event_time_ms, self.write_time_ms)
    }
}

/// Encodes `versions` as a version list.
pub fn encode_list(versions: &[Version<'_>], out: &mut Vec<u8>) {
    let base_event = versions.iter().map(|v| v.event_time_ms).min().unwrap_or(0);
    let base_write = versions.iter().map(|v| v.write_time_ms).min().unwrap_or(0);
    put_varint(out, versions.len() as u64);
    out.extend_from_slice(&base_event.to_le_bytes());
    out.extend_from_slice(&base_write.to_le_bytes());
    for v in versions {
        put_varint(out, v.feature as u64);
        out.push(v.kind);
        put_varint(out, v.event_time_ms - base_event);
        put_varint(out, v.write_time_ms - base_write);
        out.extend_from_slice(v.payload);
    }
}

/// Decodes a version list that fills `r` to its end.
fn decode_list<'a>(r: &mut Reader<'a>) -> Result<Vec<Version<'a>>, FeatureError> {
    let mut out = Vec::new();
    decode_list_into(r, |_| true, &mut out)?;
    Ok(out)
}

/// Decodes a version list that fills `r` to its end, appending to `out` the versions of the
/// features `keep` accepts (every version is checked all the same).
fn decode_list_into<'a>(
    r: &mut Reader<'a>,
    keep: impl Fn(u32) -> bool,
    out: &mut Vec<Version<'a>>,
) -> Result<(), FeatureError> {
    let count = r.varint_max(MAX_VERSIONS_PER_LIST, "version count")?;
    let base_event = r.u64()?;
    let base_write = r.u64()?;
    out.reserve(count.min(4096));
    for _ in 0..count {
        let feature = r.varint_max(u32::MAX as usize, "feature id")? as u32;
        let kind = r.u8()?;
        let event = base_event.checked_add(r.varint()?);
        let write = base_write.checked_add(r.varint()?);
        let (Some(event_time_ms), Some(write_time_ms)) = (event, write) else {
            return Err(r.err("version time overflows u64"));
        };
        let payload = match kind {
            KIND_ABSENT => &[][..],
            kind => payload_slice(r, kind)?,
        };
        if keep(feature) {
            out.push(Version {
                feature,
                kind,
                event_time_ms,
                write_time_ms,
                payload,
            });
        }
    }
    if !r.is_empty() {
        return Err(r.err("trailing bytes after the last version"));
    }
    Ok(())
}

fn check_format(r: &mut Reader<'_>, what: &str) -> Result<(), FeatureError> {
    let format = r.u8()?;
    if format != FORMAT {
        return Err(r.err(format!("unknown {what} format version {format}")));
    }
    Ok(())
}

/// A sealed segment's record value.
pub fn encode_segment(versions: &[Version<'_>]) -> Vec<u8> {
    let mut out = vec![FORMAT];
    encode_list(versions, &mut out);
    out
}

pub fn decode_segment(bytes: &[u8]) -> Result<Vec<Version<'_>>, FeatureError> {
    let mut r = Reader::new(bytes, HISTORY);
    check_format(&mut r, "history segment")?;
    decode_list(&mut r)
}

/// Appends a segment's versions of the features `keep` accepts to `out`.
pub fn decode_segment_into<'a>(
    bytes: &'a [u8],
    keep: impl Fn(u32) -> bool,
    out: &mut Vec<Version<'a>>,
) -> Result<(), FeatureError> {
    let mut r = Reader::new(bytes, HISTORY);
    check_format(&mut r, "history segment")?;
    decode_list_into(&mut r, keep, out)
}

/// The per-entity head: the versions not yet sealed and what the directory may use.
#[derive(Debug, Clone, PartialEq)]
pub struct Head<'a> {
    pub next_segment: u32,
    pub directory_version: u32,
    pub horizon_ms: u64,
    pub open: Vec<Version<'a>>,
}

impl<'a> Head<'a> {
    pub fn empty() -> Head<'a> {
        Head {
            next_segment: 0,
            directory_version: 0,
            horizon_ms: 0,
            open: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.open.len() * 16);
        out.push(FORMAT);
        out.extend_from_slice(&self.next_segment.to_le_bytes());
        out.extend_from_slice(&self.directory_version.to_le_bytes());
        out.extend_from_slice(&self.horizon_ms.to_le_bytes());
        encode_list(&self.open, &mut out);
        out
    }

    pub fn decode(bytes: &'a [u8]) -> Result<Head<'a>, FeatureError> {
        let mut r = Reader::new(bytes, HISTORY);
        let fields = HeadFields::read(&mut r)?;
        Ok(Head {
            next_segment: fields.next_segment,
            directory_version: fields.directory_version,
            horizon_ms: fields.horizon_ms,
            open: decode_list(&mut r)?,
        })
    }
}

/// A head's fixed fields, read without decoding its open versions (a read that needs only
/// the directory's use of them, such as choosing which segments to fetch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadFields {
    pub next_segment: u32,
    pub directory_version: u32,
    pub horizon_ms: u64,
}

impl HeadFields {
    pub fn decode(bytes: &[u8]) -> Result<HeadFields, FeatureError> {
        HeadFields::read(&mut Reader::new(bytes, HISTORY))
    }

    /// Appends a head's open versions of the features `keep` accepts to `out`; returns its
    /// fixed fields.
    pub fn decode_open_into<'a>(
        bytes: &'a [u8],
        keep: impl Fn(u32) -> bool,
        out: &mut Vec<Version<'a>>,
    ) -> Result<HeadFields, FeatureError> {
        let mut r = Reader::new(bytes, HISTORY);
        let fields = HeadFields::read(&mut r)?;
        decode_list_into(&mut r, keep, out)?;
        Ok(fields)
    }

    fn read(r: &mut Reader<'_>) -> Result<HeadFields, FeatureError> {
        check_format(r, "history head")?;
        Ok(HeadFields {
            next_segment: r.u32()?,
            directory_version: r.u32()?,
            horizon_ms: r.u64()?,
        })
    }
}

/// What the directory knows of one sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub segment: u32,
    pub count: u32,
    pub min_event_ms: u64,
    pub max_event_ms: u64,
    pub min_write_ms: u64,
    pub max_write_ms: u64,
}

impl SegmentInfo {
    /// Summarizes `versions` as segment number `segment`.
    pub fn of(segment: u32, versions: &[Version<'_>]) -> SegmentInfo {
        let events = versions.iter().map(|v| v.event_time_ms);
        let writes = versions.iter().map(|v| v.write_time_ms);
        SegmentInfo {
            segment,
            count: versions.len() as u32,
            min_event_ms: events.clone().min().unwrap_or(0),
            max_event_ms: events.max().unwrap_or(0),
            min_write_ms: writes.clone().min().unwrap_or(0),
            max_write_ms: writes.max().unwrap_or(0),
        }
    }
}

/// The directory of an entity's sealed segments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    pub version: u32,
    pub entries: Vec<SegmentInfo>,
}

pub fn encode_directory(dir: &Directory) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + dir.entries.len() * DIR_ENTRY_BYTES);
    out.push(FORMAT);
    out.extend_from_slice(&dir.version.to_le_bytes());
    put_varint(&mut out, dir.entries.len() as u64);
    for e in &dir.entries {
        out.extend_from_slice(&e.segment.to_le_bytes());
        out.extend_from_slice(&e.count.to_le_bytes());
        for t in [
            e.min_event_ms,
            e.max_event_ms,
            e.min_write_ms,
            e.max_write_ms,
        ] {
            out.extend_from_slice(&t.to_le_bytes());
        }
    }
    out
}

pub fn decode_directory(bytes: &[u8]) -> Result<Directory, FeatureError> {
    let mut r = Reader::new(bytes, HISTORY);
    check_format(&mut r, "history directory")?;
    let version = r.u32()?;
    let count = r.varint_max(MAX_SEGMENTS, "segment count")?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(SegmentInfo {
            segment: r.u32()?,
            count: r.u32()?,
            min_event_ms: r.u64()?,
            max_event_ms: r.u64()?,
            min_write_ms: r.u64()?,
            max_write_ms: r.u64()?,
        });
    }
    if !r.is_empty() {
        return Err(r.err("trailing bytes after the directory"));
    }
    Ok(Directory {
        version,
        entries: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(payloads: &[[u8; 8]]) -> Vec<Version<'_>> {
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Version {
                feature: i as u32 % 3,
                kind: if i % 4 == 3 { 0 } else { 2 },
                event_time_ms: 1_000 + (i as u64 * 7919) % 50,
                write_time_ms: 9_000 + i as u64,
                payload: if i % 4 == 3 { &[] } else { p },
            })
            .collect()
    }

    #[test]
    fn lists_heads_and_directories_round_trip() {
        let payloads: Vec<[u8; 8]> = (0..20i64).map(|i| i.to_le_bytes()).collect();
        let vs = versions(&payloads);
        let seg = encode_segment(&vs);
        assert_eq!(decode_segment(&seg).unwrap(), vs);
        let mut head = Head::empty();
        head.next_segment = 3;
        head.horizon_ms = 77;
        head.directory_version = 4;
        head.open = vs[..5].to_vec();
        head.open.push(Version {
            feature: 9,
            kind: KIND_ABSENT,
            event_time_ms: 5,
            write_time_ms: 9_500,
            payload: &[],
        });
        let bytes = head.encode();
        assert_eq!(Head::decode(&bytes).unwrap(), head);
        let dir = Directory {
            version: 9,
            entries: vec![SegmentInfo::of(0, &vs), SegmentInfo::of(1, &vs[..2])],
        };
        assert_eq!(decode_directory(&encode_directory(&dir)).unwrap(), dir);
        assert_eq!(dir.entries[0].min_write_ms, 9_000);
        assert_eq!(dir.entries[0].max_write_ms, 9_019);
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        let payloads: Vec<[u8; 8]> = (0..6i64).map(|i| i.to_le_bytes()).collect();
        let seg = encode_segment(&versions(&payloads));
        for len in 0..seg.len() {
            assert!(decode_segment(&seg[..len]).is_err(), "truncated to {len}");
        }
        let mut long = seg.clone();
        long.push(0);
        assert!(decode_segment(&long).is_err());
        let dir = encode_directory(&Directory {
            version: 1,
            entries: vec![SegmentInfo::of(0, &versions(&payloads))],
        });
        for len in 0..dir.len() {
            assert!(decode_directory(&dir[..len]).is_err(), "truncated to {len}");
        }
        let mut bad = seg.clone();
        bad[0] = 2;
        assert!(decode_segment(&bad)
            .unwrap_err()
            .to_string()
            .contains("format version 2"));
    }
}
