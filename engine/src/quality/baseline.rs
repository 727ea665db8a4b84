//! Baselines: a saved summary of one feature's distribution (from a window of the live
//! statistics, or from a file such as a training set) that the live windows are compared with
//! to measure drift ([`super::drift`]).
//!
//! A baseline is built from the same summaries as the live statistics (a DDSketch of numbers or
//! vector norms, the top values of strings and bools), whatever its source, so that a live
//! window of the same distribution lands in the same bins.
//!
//! ## Format
//!
//! All of a group's baselines are one engine record under the registry's engine group, key
//! `baseline/<group id>`. Integers are unsigned LEB128 varints unless said otherwise; `f64` is
//! 8 bytes little-endian; `bytes` is a varint length and the bytes.
//!
//! | field | encoding |
//! | --- | --- |
//! | magic | 4 bytes `QVBL` |
//! | version | u8, 1 |
//! | group id | varint |
//! | baselines | varint n (at most 4096), n x baseline, ascending feature id, one per feature |
//! | checksum | u64 little-endian, xxh3-64 of every byte before it |
//!
//! A baseline is: varint feature id, u8 kind (1 numbers, 2 categories), `bytes` source (UTF-8,
//! at most 255 bytes), varint created (unix ms), varint values summarized (at least 1), then
//! for numbers: varint E (1..=9) and E x f64 bin edges (finite, strictly ascending), (E + 1) x
//! f64 bin shares, 9 x f64 deciles (q = 0.1 .. 0.9, finite, ascending), f64 spread (p99 - p1,
//! finite, at least 0); for categories: varint C (1..=20), C x (`bytes` value (UTF-8, at most
//! 64 bytes), f64 share), f64 share of every other value. Shares are finite, in 0..=1, and add
//! up to 1 within 1e-6.

use crate::feature::bytes::{put_bytes, put_varint, Reader};
use crate::feature::{Feature, FeatureError, FeatureType, Value};

use super::bucket::{FeatureBucket, RawFeature};
use super::sketch::Quantiles;

const MAGIC: &[u8; 4] = b"QVBL";
const VERSION: u8 = 1;
const WHAT: &str = "feature baselines";
/// Most inner bin edges of a numeric baseline (deciles: ten bins).
pub const MAX_EDGES: usize = 9;
/// Categories a baseline keeps (the rest is "other").
pub const MAX_CATEGORIES: usize = 20;
/// Longest source description, bytes.
pub const MAX_SOURCE_BYTES: usize = 255;
/// Longest category value, bytes (the live top values keep as many).
pub const MAX_CATEGORY_BYTES: usize = 64;
/// The quantiles the quantile distance compares.
pub const DECILES: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Engine key of group `id`'s baselines: `baseline/<id>` in ASCII decimal.
pub fn baseline_key(id: u32) -> Vec<u8> {
    format!("baseline/{id}").into_bytes()
}

#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    pub feature_id: u32,
    /// Where it came from, e.g. `window 24h` or `parquet train.parquet`.
    pub source: String,
    pub created_ms: u64,
    /// Values summarized (nulls and non-finite numbers excluded).
    pub count: u64,
    pub shape: Shape,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Numbers {
        /// Inner bin edges, strictly ascending: bin i holds values in (edge[i-1], edge[i]].
        edges: Vec<f64>,
        /// Share of the baseline's values in each bin (edges + 1 of them).
        shares: Vec<f64>,
        /// Values at [`DECILES`].
        deciles: Vec<f64>,
        /// p99 - p1: the scale the quantile distance is measured in.
        spread: f64,
    },
    Categories {
        /// Up to [`MAX_CATEGORIES`] values and their shares, most frequent first.
        values: Vec<(String, f64)>,
        /// Share of every other value.
        other: f64,
    },
}

/// Whether a feature of this type has a distribution a baseline can summarize: numbers
/// (i64, f32, f64), vector norms, or categories (strings, bools).
pub fn kind_of(ty: FeatureType) -> Option<&'static str> {
    match ty {
        FeatureType::I64 | FeatureType::F32 | FeatureType::F64 | FeatureType::Vector(_) => {
            Some("numbers")
        }
        FeatureType::String | FeatureType::Bool => Some("categories"),
        _ => None,
    }
}

/// The share of a sketch's values at or below `x` (the sketch's own resolution: a value lands
/// with its DDSketch bin), by bisection on its quantiles.
pub fn rank(q: &Quantiles, x: f64) -> f64 {
    match (q.quantile(0.0), q.quantile(1.0)) {
        (Some(lo), _) if x < lo => return 0.0,
        (_, Some(hi)) if x >= hi => return 1.0,
        (None, _) | (_, None) => return 0.0,
        _ => {}
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        match q.quantile(mid) {
            Some(v) if v <= x => lo = mid,
            _ => hi = mid,
        }
    }
    lo
}

/// Shares of the bins cut at `edges`, from a sketch.
pub fn bin_shares(q: &Quantiles, edges: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(edges.len() + 1);
    let mut below = 0.0;
    for &e in edges {
        let r = rank(q, e).max(below);
        out.push(r - below);
        below = r;
    }
    out.push((1.0 - below).max(0.0));
    out
}

/// Accumulates values into the summaries a baseline is made of (for a baseline from a file).
#[derive(Default)]
pub struct Builder {
    raw: RawFeature,
    bucket: FeatureBucket,
}

impl Builder {
    pub fn add(&mut self, value: &Value) {
        self.raw.record(value, 1);
        if self.raw.values.len() >= 65_536 {
            self.fold();
        }
    }

    fn fold(&mut self) {
        self.bucket.absorb(&self.raw);
        self.raw.clear();
    }

    pub fn finish(mut self) -> FeatureBucket {
        self.fold();
        self.bucket
    }
}

impl Baseline {
    /// The baseline of `feature` from one bucket of its statistics (a live window, or a
    /// [`Builder`]'s); `Err` names why there is none (no values, a type without distribution).
    pub fn from_bucket(
        feature: &Feature,
        b: &FeatureBucket,
        source: String,
        created_ms: u64,
    ) -> Result<Baseline, String> {
        let kind = kind_of(feature.ty).ok_or_else(|| {
            format!(
                "feature '{}' is of type {}: only numbers, vectors (their norms), strings and bools have a distribution to compare",
                feature.name, feature.ty
            )
        })?;
        let mut source = source;
        while source.len() > MAX_SOURCE_BYTES {
            source.pop();
        }
        let empty = || {
            format!(
                "feature '{}' has no values to make a baseline of",
                feature.name
            )
        };
        let shape = if kind == "numbers" {
            let q = b
                .quantiles
                .as_deref()
                .filter(|q| q.count() > 0)
                .ok_or_else(empty)?;
            let deciles: Vec<f64> = DECILES
                .iter()
                .map(|&d| q.quantile(d).unwrap_or(0.0))
                .collect();
            let mut edges: Vec<f64> = Vec::with_capacity(MAX_EDGES);
            for &d in &deciles {
                if !matches!(edges.last(), Some(&l) if d <= l) {
                    edges.push(d);
                }
            }
            let spread =
                (q.quantile(0.99).unwrap_or(0.0) - q.quantile(0.01).unwrap_or(0.0)).max(0.0);
            Shape::Numbers {
                shares: bin_shares(q, &edges),
                edges,
                deciles,
                spread,
            }
        } else {
            let top = b
                .top
                .as_deref()
                .filter(|t| !t.entries.is_empty())
                .ok_or_else(empty)?;
            let total: u64 = b.count - b.nulls;
            if total == 0 {
                return Err(empty());
            }
            let values: Vec<(String, f64)> = top
                .top(MAX_CATEGORIES)
                .into_iter()
                .map(|(v, c)| (v, (c as f64 / total as f64).min(1.0)))
                .collect();
            let sum: f64 = values.iter().map(|v| v.1).sum();
            let scale = if sum > 1.0 { 1.0 / sum } else { 1.0 };
            let values: Vec<(String, f64)> =
                values.into_iter().map(|(v, s)| (v, s * scale)).collect();
            let other = (1.0 - values.iter().map(|v| v.1).sum::<f64>()).max(0.0);
            Shape::Categories { values, other }
        };
        let count = match &shape {
            Shape::Numbers { .. } => b.quantiles.as_ref().map_or(0, |q| q.count()),
            Shape::Categories { .. } => b.count - b.nulls,
        };
        Ok(Baseline {
            feature_id: feature.id,
            source,
            created_ms,
            count,
            shape,
        })
    }

    fn put(&self, out: &mut Vec<u8>) {
        put_varint(out, self.feature_id as u64);
        out.push(match self.shape {
            Shape::Numbers { .. } => 1,
            Shape::Categories { .. } => 2,
        });
        put_bytes(out, self.source.as_bytes());
        put_varint(out, self.created_ms);
        put_varint(out, self.count);
        let f = |out: &mut Vec<u8>, v: f64| out.extend_from_slice(&v.to_le_bytes());
        match &self.shape {
            Shape::Numbers {
                edges,
                shares,
                deciles,
                spread,
            } => {
                put_varint(out, edges.len() as u64);
                edges
                    .iter()
                    .chain(shares)
                    .chain(deciles)
                    .for_each(|&v| f(out, v));
                f(out, *spread);
            }
            Shape::Categories { values, other } => {
                put_varint(out, values.len() as u64);
                for (v, s) in values {
                    put_bytes(out, v.as_bytes());
                    f(out, *s);
                }
                f(out, *other);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Baseline, FeatureError> {
        let feature_id = r.varint()?;
        let feature_id = u32::try_from(feature_id).map_err(|_| r.err("feature id over u32"))?;
        let kind = r.u8()?;
        let source = r.string(MAX_SOURCE_BYTES, "source")?;
        let created_ms = r.varint()?;
        let count = r.varint()?;
        if count == 0 {
            return Err(r.err("a baseline of 0 values"));
        }
        let f = |r: &mut Reader<'_>| r.u64().map(f64::from_bits);
        let shape = match kind {
            1 => {
                let e = r.varint_max(MAX_EDGES, "edge count")?;
                if e == 0 {
                    return Err(r.err("a numeric baseline without an edge"));
                }
                let edges = (0..e).map(|_| f(r)).collect::<Result<Vec<_>, _>>()?;
                let shares = (0..=e).map(|_| f(r)).collect::<Result<Vec<_>, _>>()?;
                let deciles = (0..DECILES.len())
                    .map(|_| f(r))
                    .collect::<Result<Vec<_>, _>>()?;
                let spread = f(r)?;
                if !edges.iter().all(|v| v.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(r.err("bin edges are not finite and strictly ascending"));
                }
                if !deciles.iter().all(|v| v.is_finite()) || deciles.windows(2).any(|w| w[0] > w[1])
                {
                    return Err(r.err("deciles are not finite and ascending"));
                }
                if !(spread.is_finite() && spread >= 0.0) {
                    return Err(r.err("spread is not a finite number at least 0"));
                }
                check_shares(r, &shares)?;
                Shape::Numbers {
                    edges,
                    shares,
                    deciles,
                    spread,
                }
            }
            2 => {
                let c = r.varint_max(MAX_CATEGORIES, "category count")?;
                if c == 0 {
                    return Err(r.err("a categorical baseline without a category"));
                }
                let mut values = Vec::with_capacity(c);
                for _ in 0..c {
                    let v = r.string(MAX_CATEGORY_BYTES, "category")?;
                    values.push((v, f(r)?));
                }
                let other = f(r)?;
                let shares: Vec<f64> = values.iter().map(|v| v.1).chain([other]).collect();
                check_shares(r, &shares)?;
                Shape::Categories { values, other }
            }
            k => return Err(r.err(format!("unknown baseline kind {k}"))),
        };
        Ok(Baseline {
            feature_id,
            source,
            created_ms,
            count,
            shape,
        })
    }

    /// Checks that this baseline fits `feature` (its id and the kind of its type).
    pub fn check_fits(&self, feature: &Feature) -> Result<(), String> {
        let want = kind_of(feature.ty);
        let have = match self.shape {
            Shape::Numbers { .. } => "numbers",
            Shape::Categories { .. } => "categories",
        };
        if self.feature_id != feature.id || want != Some(have) {
            return Err(format!(
                "a baseline of {have} does not fit feature '{}' of type {}",
                feature.name, feature.ty
            ));
        }
        Ok(())
    }
}

fn check_shares(r: &Reader<'_>, shares: &[f64]) -> Result<(), FeatureError> {
    if !shares
        .iter()
        .all(|s| s.is_finite() && (0.0..=1.0).contains(s))
    {
        return Err(r.err("a share is not in 0..=1"));
    }
    let sum: f64 = shares.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(r.err(format!("shares add up to {sum}, not 1")));
    }
    Ok(())
}

/// Encodes a group's baselines (sorted by feature id here).
pub fn encode(group_id: u32, baselines: &[Baseline]) -> Vec<u8> {
    let mut sorted: Vec<&Baseline> = baselines.iter().collect();
    sorted.sort_by_key(|b| b.feature_id);
    let mut out = Vec::with_capacity(64 + baselines.len() * 200);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    put_varint(&mut out, group_id as u64);
    put_varint(&mut out, sorted.len() as u64);
    for b in sorted {
        b.put(&mut out);
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Decodes a record written by [`encode`] for group `group_id`; any inconsistency is
/// `Corrupt`.
pub fn decode(group_id: u32, bytes: &[u8]) -> Result<Vec<Baseline>, FeatureError> {
    if bytes.len() < 8 {
        return Err(FeatureError::corrupt(WHAT, "shorter than its checksum"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() != sum {
        return Err(FeatureError::corrupt(WHAT, "checksum mismatch"));
    }
    let mut r = Reader::new(body, WHAT);
    if r.take(4)? != MAGIC {
        return Err(r.err("bad magic"));
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(r.err(format!("unknown version {version}")));
    }
    let id = r.varint()?;
    if id != group_id as u64 {
        return Err(r.err(format!("group id {id}, expected {group_id}")));
    }
    let n = r.varint_max(crate::feature::MAX_FEATURES_PER_GROUP, "baseline count")?;
    let mut out: Vec<Baseline> = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let b = Baseline::read(&mut r)?;
        if out.last().is_some_and(|l| l.feature_id >= b.feature_id) {
            return Err(r.err("baselines are not in ascending feature id order"));
        }
        out.push(b);
    }
    if !r.is_empty() {
        return Err(r.err("trailing bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(ty: FeatureType) -> Feature {
        Feature {
            id: 2,
            name: "x".into(),
            ty,
            description: String::new(),
            owner: String::new(),
            tags: Vec::new(),
            deprecated: false,
            rules: Default::default(),
        }
    }

    #[test]
    fn baselines_round_trip_and_damage_is_refused() {
        let mut numbers = Builder::default();
        (0..1000).for_each(|i| numbers.add(&Value::F64(i as f64)));
        let n = Baseline::from_bucket(&feature(FeatureType::F64), &numbers.finish(), "t".into(), 5)
            .unwrap();
        let Shape::Numbers { edges, shares, .. } = &n.shape else {
            panic!("numbers")
        };
        assert_eq!(edges.len(), 9);
        for s in shares {
            assert!((s - 0.1).abs() < 0.02, "{shares:?}");
        }
        let mut cats = Builder::default();
        for i in 0..100 {
            cats.add(&Value::String(if i % 4 == 0 { "a" } else { "b" }.into()));
        }
        let mut f = feature(FeatureType::String);
        f.id = 7;
        let c = Baseline::from_bucket(&f, &cats.finish(), "t".into(), 5).unwrap();
        assert_eq!(
            c.shape,
            Shape::Categories {
                values: vec![("b".into(), 0.75), ("a".into(), 0.25)],
                other: 0.0
            }
        );
        let bytes = encode(3, &[c.clone(), n.clone()]);
        assert_eq!(decode(3, &bytes).unwrap(), vec![n, c]);
        assert!(decode(4, &bytes).is_err());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode(3, &bad).is_err(), "flip at {i}");
        }
        let err = Baseline::from_bucket(
            &feature(FeatureType::Bytes),
            &FeatureBucket::default(),
            "t".into(),
            5,
        )
        .unwrap_err();
        assert!(err.contains("only numbers"), "{err}");
        let err = Baseline::from_bucket(
            &feature(FeatureType::F64),
            &FeatureBucket::default(),
            "t".into(),
            5,
        )
        .unwrap_err();
        assert!(err.contains("no values"), "{err}");
    }
}
