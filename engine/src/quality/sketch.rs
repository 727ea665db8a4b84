//! The mergeable summaries a statistics bucket is made of: moments (count, mean, variance,
//! min, max), a DDSketch for quantiles, a HyperLogLog for distinct counts, and a bounded
//! top-values table. Every one merges with another of its kind, so buckets of different shards
//! and times add up to a window.

use std::hash::{BuildHasher, Hasher};

use hyperloglogplus::{HyperLogLog, HyperLogLogPF};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config as DdConfig, DDSketch};

/// Relative accuracy of the quantile sketches: a quantile q is answered within 1% of the true
/// value at q (DDSketch's guarantee; values within 1e-9 of zero count as zero).
pub const QUANTILE_RELATIVE_ACCURACY: f64 = 0.01;
/// Bins per sign of one quantile sketch (8 bytes each): past it the lowest bins collapse.
pub const QUANTILE_MAX_BINS: u32 = 2048;
/// HyperLogLog precision of a feature's distinct count: 2^10 registers, standard error
/// 1.04 / sqrt(1024) = 3.25%.
pub const DISTINCT_PRECISION: u8 = 10;
/// HyperLogLog precision of a group's updated-entity count: 2^12 registers, 1.6%.
pub const ENTITY_PRECISION: u8 = 12;
/// Entries a top-values table keeps (SpaceSaving: a value more frequent than 1/64 of the
/// values is always in the table, counts overestimate by at most `count / 64`).
pub const TOP_CAPACITY: usize = 64;
/// Bytes of a string kept as a top value; longer strings are cut at a char boundary.
pub const TOP_VALUE_MAX_BYTES: usize = 64;

/// Count, mean, M2 (Welford), min and max of numbers; merges exactly (Chan et al.).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Moments {
    #[inline]
    pub fn add(&mut self, x: f64) {
        if self.count == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
    }

    pub fn merge(&mut self, o: &Moments) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *o;
            return;
        }
        let n = self.count + o.count;
        let d = o.mean - self.mean;
        self.mean += d * o.count as f64 / n as f64;
        self.m2 += o.m2 + d * d * self.count as f64 * o.count as f64 / n as f64;
        self.count = n;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// Population standard deviation.
    pub fn stddev(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).max(0.0).sqrt()
        }
    }
}

/// Quantiles of numbers (DDSketch, relative accuracy [`QUANTILE_RELATIVE_ACCURACY`]).
#[derive(Clone)]
pub struct Quantiles(DDSketch);

impl Default for Quantiles {
    fn default() -> Self {
        Quantiles(DDSketch::new(quantile_config()))
    }
}

fn quantile_config() -> DdConfig {
    DdConfig::new(QUANTILE_RELATIVE_ACCURACY, QUANTILE_MAX_BINS, 1e-9)
}

impl Quantiles {
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.0.add(x);
    }

    pub fn merge(&mut self, o: &Quantiles) {
        // Every sketch has the one configuration, so the merge cannot fail.
        self.0
            .merge(&o.0)
            .expect("quantile sketches share one configuration");
    }

    pub fn count(&self) -> u64 {
        self.0.count() as u64
    }

    /// The value at quantile `q` in 0..=1, None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q).ok().flatten()
    }

    /// DataDog's DDSketch binary encoding (the one its Java library reads and writes).
    pub fn encode(&self) -> Vec<u8> {
        self.0.to_java_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Quantiles, String> {
        let sketch = DDSketch::from_java_bytes(bytes).map_err(|e| format!("{e:?}"))?;
        // The decoder gives the default bin limit and the gamma it read: a merge into one of
        // ours refuses a sketch of another accuracy, so every sketch keeps one configuration.
        let mut q = Quantiles::default();
        q.0.merge(&sketch)
            .map_err(|_| "quantile sketch of another accuracy".to_string())?;
        Ok(q)
    }

    /// Heap bytes of the sketch's bins (8 per bin).
    pub fn heap_bytes(&self) -> usize {
        self.0.length() * 8
    }
}

// The decoder restores sketches with a limit of 2048 bins: ours must be the same.
const _: () = assert!(QUANTILE_MAX_BINS == 2048);

/// Builds hashers that pass a value's own 64-bit hash through: values are hashed once with
/// xxh3 before they reach the HyperLogLog.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct PassThrough;

#[derive(Default)]
pub struct PassHasher(u64);

impl Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64(bytes);
    }
    fn write_u64(&mut self, v: u64) {
        // The low 32 bits choose the register and its rank: mix them from the whole value.
        self.0 = v ^ (v >> 32);
    }
}

impl BuildHasher for PassThrough {
    type Hasher = PassHasher;
    fn build_hasher(&self) -> PassHasher {
        PassHasher::default()
    }
}

/// Approximate distinct count (HyperLogLog, Flajolet et al.).
#[derive(Clone, Serialize, Deserialize)]
pub struct Distinct {
    precision: u8,
    hll: HyperLogLogPF<u64, PassThrough>,
}

impl Distinct {
    pub fn new(precision: u8) -> Distinct {
        Distinct {
            precision,
            hll: HyperLogLogPF::new(precision, PassThrough).expect("precision in 4..=16"),
        }
    }

    /// Adds a value by its 64-bit hash.
    #[inline]
    pub fn add_hash(&mut self, hash: u64) {
        self.hll.insert(&hash);
    }

    pub fn merge(&mut self, o: &Distinct) -> Result<(), String> {
        if self.precision != o.precision {
            return Err(format!(
                "distinct counts of precision {} and {}",
                self.precision, o.precision
            ));
        }
        self.hll
            .merge(&o.hll)
            .map_err(|e| format!("distinct counts of different precision: {e:?}"))
    }

    pub fn estimate(&self) -> f64 {
        // `count` caches nothing in this variant but takes `&mut`.
        self.hll.clone().count()
    }

    pub fn precision(&self) -> u8 {
        self.precision
    }

    /// Bytes of the registers (5 bits each, 6 to a u32 word).
    pub fn heap_bytes(&self) -> usize {
        let registers = 1usize << self.precision();
        registers.div_ceil(REGISTERS_PER_WORD) * 4
    }

    /// CBOR (RFC 8949) of the sketch's serde form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    pub fn decode(bytes: &[u8], precision: u8) -> Result<Distinct, String> {
        // The shape is checked before the sketch is built: a register count that disagrees
        // with the precision would make a merge index past the registers.
        let shape: DistinctShape = ciborium::from_reader(bytes).map_err(|e| e.to_string())?;
        let registers = 1usize << precision;
        let h = &shape.hll;
        if shape.precision != precision || h.precision != precision {
            return Err(format!(
                "distinct count of precision {}, expected {precision}",
                shape.precision
            ));
        }
        if h.count != registers
            || h.registers.count != registers
            || h.registers.buf.len() != registers.div_ceil(REGISTERS_PER_WORD)
        {
            return Err(format!(
                "distinct count with {} registers in {} words, expected {registers}",
                h.registers.count,
                h.registers.buf.len()
            ));
        }
        let d: Distinct = ciborium::from_reader(bytes).map_err(|e| e.to_string())?;
        let mut fresh = Distinct::new(precision);
        fresh.hll.merge(&d.hll).map_err(|e| format!("{e:?}"))?;
        Ok(fresh)
    }
}

/// Registers of 5 bits, 6 per u32 word (hyperloglogplus' HyperLogLogPF).
const REGISTERS_PER_WORD: usize = 6;

/// The serde form of [`Distinct`], read first to check its sizes.
#[derive(Deserialize)]
struct DistinctShape {
    precision: u8,
    hll: HllShape,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct HllShape {
    builder: PassThrough,
    count: usize,
    precision: u8,
    registers: RegistersShape,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct RegistersShape {
    buf: Vec<u32>,
    count: usize,
    zeros: usize,
}

/// The most frequent values, SpaceSaving (Metwally et al.): at most [`TOP_CAPACITY`] entries;
/// a new value when full replaces the least counted one and inherits its count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopValues {
    pub entries: Vec<(String, u64)>,
}

impl TopValues {
    #[inline]
    pub fn add(&mut self, value: &str) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == value) {
            e.1 += 1;
            return;
        }
        let value = cut(value);
        if self.entries.len() < TOP_CAPACITY {
            self.entries.push((value, 1));
            return;
        }
        let min = (0..self.entries.len())
            .min_by_key(|&i| self.entries[i].1)
            .expect("full table");
        let count = self.entries[min].1 + 1;
        self.entries[min] = (value, count);
    }

    pub fn merge(&mut self, o: &TopValues) {
        for (v, c) in &o.entries {
            match self.entries.iter_mut().find(|e| &e.0 == v) {
                Some(e) => e.1 += c,
                None => self.entries.push((v.clone(), *c)),
            }
        }
        self.entries
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        self.entries.truncate(TOP_CAPACITY);
    }

    /// The `n` most counted, most first (ties by value).
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut e = self.entries.clone();
        e.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        e.truncate(n);
        e
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|(v, _)| v.capacity() + 32)
            .sum::<usize>()
    }
}

fn cut(value: &str) -> String {
    if value.len() <= TOP_VALUE_MAX_BYTES {
        return value.to_string();
    }
    let mut end = TOP_VALUE_MAX_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_merge_equals_one_pass() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1013) as f64 - 300.5)
            .collect();
        let mut all = Moments::default();
        xs.iter().for_each(|&x| all.add(x));
        let (mut a, mut b) = (Moments::default(), Moments::default());
        xs[..333].iter().for_each(|&x| a.add(x));
        xs[333..].iter().for_each(|&x| b.add(x));
        a.merge(&b);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert_eq!(a.count, 1000);
        assert!((a.mean - mean).abs() < 1e-9 && (all.mean - mean).abs() < 1e-9);
        assert!((a.stddev() - var.sqrt()).abs() < 1e-9);
        assert_eq!((a.min, a.max), (-300.5, 711.5));
    }

    #[test]
    fn quantiles_survive_encoding() {
        let mut q = Quantiles::default();
        (1..=10_000).for_each(|i| q.add(i as f64 - 5000.0));
        let back = Quantiles::decode(&q.encode()).unwrap();
        for p in [0.01, 0.5, 0.99] {
            assert_eq!(q.quantile(p), back.quantile(p));
        }
        let mut merged = Quantiles::default();
        merged.merge(&back);
        assert_eq!(merged.count(), 10_000);
        assert!(Quantiles::decode(&[0xff, 0x01]).is_err());
    }

    #[test]
    fn distinct_survives_encoding_and_checks_precision() {
        let mut d = Distinct::new(DISTINCT_PRECISION);
        (0..5000u64).for_each(|i| d.add_hash(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes())));
        let back = Distinct::decode(&d.encode(), DISTINCT_PRECISION).unwrap();
        assert_eq!(back.estimate(), d.estimate());
        assert!((d.estimate() - 5000.0).abs() < 5000.0 * 0.1);
        assert!(Distinct::decode(&d.encode(), ENTITY_PRECISION).is_err());
        assert!(Distinct::decode(b"\x01\x02", DISTINCT_PRECISION).is_err());
    }

    #[test]
    fn top_values_keep_the_frequent_ones() {
        let mut t = TopValues::default();
        for i in 0..10_000 {
            t.add(if i % 3 == 0 { "hot" } else { "cold" });
            t.add(&format!("rare{i}"));
        }
        let top = t.top(2);
        assert_eq!(top[0].0, "cold");
        assert_eq!(top[1].0, "hot");
        assert!(t.entries.len() <= TOP_CAPACITY);
        t.add(&"x".repeat(100));
        assert!(t.entries.iter().all(|e| e.0.len() <= TOP_VALUE_MAX_BYTES));
    }
}
