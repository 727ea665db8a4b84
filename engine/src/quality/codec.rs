//! The persisted form of a group's statistics: its windows and totals, one engine record per
//! group under the registry's engine group (key `stats/<id>`).
//!
//! ## Format
//!
//! Integers are unsigned LEB128 varints unless said otherwise; `f64` is 8 bytes
//! little-endian; `bytes` is a varint length and the bytes.
//!
//! | field | encoding |
//! | --- | --- |
//! | magic | 4 bytes `QVST` |
//! | version | u8, 1 |
//! | group id | varint |
//! | totals | varint puts, varint newest write ms, varint n, n x (varint values, varint nulls, varint newest write ms), bytes entity sketch |
//! | rings | varint r, r x ring |
//! | checksum | u64 little-endian, xxh3-64 of every byte before it |
//!
//! A ring is: varint bucket ms, varint slots, varint used, used x (varint bucket index,
//! bucket). A bucket is: varint puts, varint newest write ms, bytes entity sketch (CBOR of
//! the HyperLogLog, precision 12), varint f, f x (varint feature id, feature bucket). A feature
//! bucket is: varint count, nulls, non-finite, newest write ms; moments (varint count, f64
//! mean, m2, min, max); u8 flags (1 quantiles, 2 distinct, 4 top values); then if flagged:
//! bytes quantile sketch (DataDog's DDSketch encoding), bytes distinct sketch (CBOR,
//! precision 10), varint t and t x (bytes value, varint count).

use crate::feature::bytes::{put_bytes, put_varint, Reader};
use crate::feature::limits::MAX_FEATURES_PER_GROUP;
use crate::feature::FeatureError;

use super::bucket::{FeatureBucket, GroupBucket};
use super::group::Windows;
use super::sketch::{
    Distinct, Moments, Quantiles, TopValues, DISTINCT_PRECISION, ENTITY_PRECISION, TOP_CAPACITY,
    TOP_VALUE_MAX_BYTES,
};
use super::window::{Ring, Totals, WINDOWS};

const MAGIC: &[u8; 4] = b"QVST";
const VERSION: u8 = 1;
/// Largest encoded sketch accepted (a quantile sketch of 2 x 2048 bins is under 40 KiB).
const MAX_SKETCH_BYTES: usize = 1 << 20;
const WHAT: &str = "feature statistics";

pub fn encode(group_id: u32, w: &Windows) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    put_varint(&mut out, group_id as u64);
    put_varint(&mut out, w.totals.puts);
    put_varint(&mut out, w.totals.last_write_ms);
    put_varint(&mut out, w.totals.features.len() as u64);
    for &(count, nulls, last) in &w.totals.features {
        put_varint(&mut out, count);
        put_varint(&mut out, nulls);
        put_varint(&mut out, last);
    }
    put_bytes(&mut out, &w.totals.entities.encode());
    put_varint(&mut out, w.rings.len() as u64);
    for ring in &w.rings {
        put_varint(&mut out, ring.spec.bucket_ms);
        put_varint(&mut out, ring.spec.slots as u64);
        let used: Vec<_> = ring.slots.iter().flatten().collect();
        put_varint(&mut out, used.len() as u64);
        for (index, bucket) in used {
            put_varint(&mut out, *index);
            put_bucket(&mut out, bucket);
        }
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn put_bucket(out: &mut Vec<u8>, b: &GroupBucket) {
    put_varint(out, b.puts);
    put_varint(out, b.last_write_ms);
    put_bytes(out, &b.entities.encode());
    let features: Vec<_> = b
        .features
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.as_ref().map(|f| (i, f)))
        .collect();
    put_varint(out, features.len() as u64);
    for (id, f) in features {
        put_varint(out, id as u64);
        put_feature(out, f);
    }
}

fn put_feature(out: &mut Vec<u8>, f: &FeatureBucket) {
    for v in [f.count, f.nulls, f.non_finite, f.last_write_ms] {
        put_varint(out, v);
    }
    put_varint(out, f.numbers.count);
    for v in [f.numbers.mean, f.numbers.m2, f.numbers.min, f.numbers.max] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let flags = f.quantiles.is_some() as u8
        | (f.distinct.is_some() as u8) << 1
        | (f.top.is_some() as u8) << 2;
    out.push(flags);
    if let Some(q) = &f.quantiles {
        put_bytes(out, &q.encode());
    }
    if let Some(d) = &f.distinct {
        put_bytes(out, &d.encode());
    }
    if let Some(t) = &f.top {
        put_varint(out, t.entries.len() as u64);
        for (v, c) in &t.entries {
            put_bytes(out, v.as_bytes());
            put_varint(out, *c);
        }
    }
}

/// Decodes a group's statistics, checking the checksum, the group id and every count against
/// its limit. A ring whose bucket width or slot count differs from today's windows is left out
/// (that window starts empty).
pub fn decode(group_id: u32, bytes: &[u8]) -> Result<Windows, FeatureError> {
    if bytes.len() < MAGIC.len() + 1 + 8 {
        return Err(FeatureError::corrupt(
            WHAT,
            format!("{} bytes is too short", bytes.len()),
        ));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    let expected = u64::from_le_bytes(sum.try_into().expect("8 bytes"));
    let got = xxhash_rust::xxh3::xxh3_64(body);
    if got != expected {
        return Err(FeatureError::corrupt(
            WHAT,
            format!("checksum {got:#018x}, expected {expected:#018x}"),
        ));
    }
    let mut r = Reader::new(body, WHAT);
    if r.take(4)? != MAGIC {
        return Err(r.err("bad magic"));
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(r.err(format!("version {version}, this build reads {VERSION}")));
    }
    let id = r.varint()?;
    if id != group_id as u64 {
        return Err(r.err(format!("statistics of group {id} under group {group_id}")));
    }
    let mut w = Windows {
        totals: read_totals(&mut r)?,
        ..Windows::default()
    };
    let rings = r.varint_max(8, "ring count")?;
    for _ in 0..rings {
        let bucket_ms = r.varint()?;
        let slots = r.varint_max(1024, "ring slots")?;
        let used = r.varint_max(slots, "used slots")?;
        let mut ring = WINDOWS
            .iter()
            .find(|s| s.bucket_ms == bucket_ms && s.slots == slots)
            .map(|&s| Ring::new(s));
        for _ in 0..used {
            let index = r.varint()?;
            let bucket = read_bucket(&mut r)?;
            if let Some(ring) = &mut ring {
                ring.add(index * bucket_ms, &bucket);
            }
        }
        if let Some(ring) = ring {
            if let Some(slot) = w.rings.iter_mut().find(|x| x.spec == ring.spec) {
                *slot = ring;
            }
        }
    }
    if !r.is_empty() {
        return Err(r.err(format!("{} trailing bytes", r.remaining())));
    }
    Ok(w)
}

fn read_totals(r: &mut Reader<'_>) -> Result<Totals, FeatureError> {
    let puts = r.varint()?;
    let last_write_ms = r.varint()?;
    let n = r.varint_max(MAX_FEATURES_PER_GROUP, "feature count")?;
    let mut features = Vec::with_capacity(n);
    for _ in 0..n {
        features.push((r.varint()?, r.varint()?, r.varint()?));
    }
    let entities = Distinct::decode(
        r.bytes(MAX_SKETCH_BYTES, "entity sketch")?,
        ENTITY_PRECISION,
    )
    .map_err(|e| r.err(format!("entity sketch: {e}")))?;
    Ok(Totals {
        puts,
        last_write_ms,
        features,
        entities,
    })
}

fn read_bucket(r: &mut Reader<'_>) -> Result<GroupBucket, FeatureError> {
    let mut b = GroupBucket {
        puts: r.varint()?,
        last_write_ms: r.varint()?,
        entities: Distinct::decode(
            r.bytes(MAX_SKETCH_BYTES, "entity sketch")?,
            ENTITY_PRECISION,
        )
        .map_err(|e| r.err(format!("entity sketch: {e}")))?,
        features: Vec::new(),
    };
    let n = r.varint_max(MAX_FEATURES_PER_GROUP, "feature count")?;
    for _ in 0..n {
        let id = r.varint_max(MAX_FEATURES_PER_GROUP - 1, "feature id")? as u32;
        let f = read_feature(r)?;
        *b.feature_mut(id) = f;
    }
    Ok(b)
}

fn read_feature(r: &mut Reader<'_>) -> Result<FeatureBucket, FeatureError> {
    let mut f = FeatureBucket {
        count: r.varint()?,
        nulls: r.varint()?,
        non_finite: r.varint()?,
        last_write_ms: r.varint()?,
        ..FeatureBucket::default()
    };
    f.numbers = Moments {
        count: r.varint()?,
        mean: f64::from_bits(r.u64()?),
        m2: f64::from_bits(r.u64()?),
        min: f64::from_bits(r.u64()?),
        max: f64::from_bits(r.u64()?),
    };
    let flags = r.u8()?;
    if flags & !7 != 0 {
        return Err(r.err(format!("unknown flags {flags:#04x}")));
    }
    if flags & 1 != 0 {
        let bytes = r.bytes(MAX_SKETCH_BYTES, "quantile sketch")?;
        let q = Quantiles::decode(bytes).map_err(|e| r.err(format!("quantile sketch: {e}")))?;
        f.quantiles = Some(Box::new(q));
    }
    if flags & 2 != 0 {
        let bytes = r.bytes(MAX_SKETCH_BYTES, "distinct sketch")?;
        let d = Distinct::decode(bytes, DISTINCT_PRECISION)
            .map_err(|e| r.err(format!("distinct sketch: {e}")))?;
        f.distinct = Some(Box::new(d));
    }
    if flags & 4 != 0 {
        let n = r.varint_max(TOP_CAPACITY, "top values")?;
        let mut t = TopValues::default();
        for _ in 0..n {
            let v = r.string(TOP_VALUE_MAX_BYTES, "top value")?;
            t.entries.push((v, r.varint()?));
        }
        f.top = Some(Box::new(t));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::Value;
    use crate::quality::group::GroupStats;

    fn sample() -> Windows {
        let g = GroupStats::default();
        for i in 0..500u64 {
            let s = format!("s{}", i % 7);
            let values = [
                (0, &Value::F64(i as f64 * 0.5 - 20.0)),
                (2, &Value::String(s)),
                (3, &Value::Null),
            ];
            let values: Vec<(u32, &Value)> = values.iter().map(|(i, v)| (*i, *v)).collect();
            g.record(&i.to_le_bytes(), &values, 1_700_000_000_000 + i * 10_000);
        }
        g.snapshot()
    }

    #[test]
    fn round_trip_keeps_every_window() {
        let w = sample();
        let back = decode(5, &encode(5, &w)).unwrap();
        assert_eq!(back.totals, w.totals);
        let now = 1_700_000_000_000 + 500 * 10_000;
        for (a, b) in w.rings.iter().zip(&back.rings) {
            let (a, b) = (a.window(now), b.window(now));
            assert_eq!(a.puts, b.puts);
            let (fa, fb) = (a.feature(0).unwrap(), b.feature(0).unwrap());
            assert_eq!(fa.numbers, fb.numbers);
            assert_eq!(
                fa.quantiles.as_ref().unwrap().quantile(0.5),
                fb.quantiles.as_ref().unwrap().quantile(0.5)
            );
            assert_eq!(a.feature(2).unwrap().top, b.feature(2).unwrap().top);
            assert_eq!(a.feature(3).unwrap().nulls, b.feature(3).unwrap().nulls);
            assert_eq!(a.entities.estimate(), b.entities.estimate());
        }
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let bytes = encode(5, &sample());
        assert!(decode(6, &bytes).is_err(), "another group's statistics");
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x41;
            assert!(decode(5, &bad).is_err(), "flipped byte {i}");
        }
        for len in [0, 3, 12, bytes.len() - 1] {
            assert!(decode(5, &bytes[..len]).is_err());
        }
    }

    #[test]
    fn bad_fields_under_a_good_checksum_are_errors() {
        // Damage that keeps the checksum right (a bad writer, not a bad disk) must still be
        // caught field by field: rewrite a byte, then fix the checksum.
        let bytes = encode(5, &sample());
        let body = &bytes[..bytes.len() - 8];
        for i in (5..body.len()).step_by(5) {
            let mut bad = body.to_vec();
            bad[i] = bad[i].wrapping_add(0x55);
            let sum = xxhash_rust::xxh3::xxh3_64(&bad);
            bad.extend_from_slice(&sum.to_le_bytes());
            let _ = decode(5, &bad);
        }
    }
}
