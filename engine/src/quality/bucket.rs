//! One time bucket of a group's statistics: per feature, what the values written in that time
//! looked like, and for the group, how many puts and which entities. Buckets merge, so the
//! buckets of several shards and several times add up to a window.

use crate::feature::Value;

use super::sketch::{
    Distinct, Moments, Quantiles, TopValues, DISTINCT_PRECISION, ENTITY_PRECISION,
};

/// The statistics of one feature's values in one bucket.
#[derive(Clone, Default)]
pub struct FeatureBucket {
    /// Values written, nulls included.
    pub count: u64,
    pub nulls: u64,
    /// NaN and infinities (written when the group allows them): counted, kept out of the
    /// moments and quantiles.
    pub non_finite: u64,
    /// Newest store time of a write, unix ms; 0 when none.
    pub last_write_ms: u64,
    /// Numbers (i64, f32, f64, bools as 0 and 1), or the L2 norms of vectors.
    pub numbers: Moments,
    pub quantiles: Option<Box<Quantiles>>,
    pub distinct: Option<Box<Distinct>>,
    /// Strings and bools ("true", "false").
    pub top: Option<Box<TopValues>>,
}

fn hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

impl FeatureBucket {
    #[inline]
    fn distinct(&mut self) -> &mut Distinct {
        self.distinct
            .get_or_insert_with(|| Box::new(Distinct::new(DISTINCT_PRECISION)))
    }

    #[inline]
    fn top(&mut self) -> &mut TopValues {
        self.top.get_or_insert_with(Box::default)
    }

    pub fn merge(&mut self, o: &FeatureBucket) {
        self.count += o.count;
        self.nulls += o.nulls;
        self.non_finite += o.non_finite;
        self.last_write_ms = self.last_write_ms.max(o.last_write_ms);
        self.numbers.merge(&o.numbers);
        if let Some(q) = &o.quantiles {
            self.quantiles.get_or_insert_with(Box::default).merge(q);
        }
        if let Some(d) = &o.distinct {
            // Every feature sketch has DISTINCT_PRECISION (checked when decoded).
            let _ = self.distinct().merge(d);
        }
        if let Some(t) = &o.top {
            self.top().merge(t);
        }
    }

    /// Adds a shard's raw pending values.
    pub fn absorb(&mut self, raw: &RawFeature) {
        self.count += raw.count;
        self.nulls += raw.nulls;
        self.non_finite += raw.non_finite;
        self.last_write_ms = self.last_write_ms.max(raw.last_write_ms);
        self.numbers.merge(&raw.numbers);
        if !raw.values.is_empty() {
            let q = self.quantiles.get_or_insert_with(Box::default);
            raw.values.iter().for_each(|&x| q.add(x));
        }
        if !raw.hashes.is_empty() {
            let d = self.distinct();
            raw.hashes.iter().for_each(|&h| d.add_hash(h));
        }
        if let Some(t) = &raw.top {
            if !t.entries.is_empty() {
                self.top().merge(t);
            }
        }
    }

    /// Heap bytes held (sketch bins, registers, top values).
    pub fn heap_bytes(&self) -> usize {
        self.quantiles.as_ref().map_or(0, |q| q.heap_bytes())
            + self.distinct.as_ref().map_or(0, |d| d.heap_bytes())
            + self.top.as_ref().map_or(0, |t| t.heap_bytes())
    }
}

/// A shard's pending values of one feature, kept raw until folded: the numbers and value
/// hashes go straight into the long-lived sketches of the window buckets then, so the write
/// path never builds (and grows) a sketch of its own. Buffers keep their capacity across folds.
#[derive(Clone, Default)]
pub struct RawFeature {
    pub count: u64,
    pub nulls: u64,
    pub non_finite: u64,
    pub last_write_ms: u64,
    pub numbers: Moments,
    pub values: Vec<f64>,
    pub hashes: Vec<u64>,
    pub top: Option<Box<TopValues>>,
}

impl RawFeature {
    #[inline]
    pub fn record(&mut self, value: &Value, now_ms: u64) {
        self.count += 1;
        self.last_write_ms = self.last_write_ms.max(now_ms);
        match value {
            Value::Null => self.nulls += 1,
            Value::Bool(b) => {
                self.top().add(if *b { "true" } else { "false" });
                self.hashes.push(*b as u64);
                self.number(*b as u8 as f64);
            }
            Value::I64(x) => {
                self.number(*x as f64);
                self.hashes.push(hash(&x.to_le_bytes()));
            }
            Value::F32(x) => {
                self.number(*x as f64);
                self.hashes.push(hash(&x.to_bits().to_le_bytes()));
            }
            Value::F64(x) => {
                self.number(*x);
                self.hashes.push(hash(&x.to_bits().to_le_bytes()));
            }
            Value::String(s) => {
                self.top().add(s);
                self.hashes.push(hash(s.as_bytes()));
            }
            Value::Bytes(b) => self.hashes.push(hash(b)),
            Value::Vector(v) => {
                let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
                self.number(norm);
            }
            Value::ListI64(_) | Value::ListF32(_) | Value::ListString(_) => {}
        }
    }

    #[inline]
    fn number(&mut self, x: f64) {
        if !x.is_finite() {
            self.non_finite += 1;
            return;
        }
        self.numbers.add(x);
        self.values.push(x);
    }

    #[inline]
    fn top(&mut self) -> &mut TopValues {
        self.top.get_or_insert_with(Box::default)
    }

    /// Empties the buffers, keeping their capacity.
    pub fn clear(&mut self) {
        let (values, hashes, top) = (
            std::mem::take(&mut self.values),
            std::mem::take(&mut self.hashes),
            self.top.take(),
        );
        *self = RawFeature {
            values,
            hashes,
            top,
            ..RawFeature::default()
        };
        self.values.clear();
        self.hashes.clear();
        if let Some(t) = &mut self.top {
            t.entries.clear();
        }
    }

    pub fn heap_bytes(&self) -> usize {
        (self.values.capacity() + self.hashes.capacity()) * 8
            + self.top.as_ref().map_or(0, |t| t.heap_bytes())
    }
}

/// A shard's pending puts, raw (see [`RawFeature`]).
#[derive(Clone, Default)]
pub struct RawBucket {
    pub puts: u64,
    pub last_write_ms: u64,
    pub entity_hashes: Vec<u64>,
    pub features: Vec<RawFeature>,
}

impl RawBucket {
    #[inline]
    pub fn record(&mut self, key: &[u8], values: &[(u32, &Value)], now_ms: u64) {
        self.puts += 1;
        self.last_write_ms = self.last_write_ms.max(now_ms);
        self.entity_hashes.push(hash(key));
        for &(id, value) in values {
            let i = id as usize;
            if self.features.len() <= i {
                self.features.resize_with(i + 1, RawFeature::default);
            }
            self.features[i].record(value, now_ms);
        }
    }

    pub fn clear(&mut self) {
        self.puts = 0;
        self.last_write_ms = 0;
        self.entity_hashes.clear();
        self.features.iter_mut().for_each(RawFeature::clear);
    }

    pub fn heap_bytes(&self) -> usize {
        self.entity_hashes.capacity() * 8
            + self
                .features
                .iter()
                .map(RawFeature::heap_bytes)
                .sum::<usize>()
    }
}

/// A group's statistics in one bucket.
#[derive(Clone)]
pub struct GroupBucket {
    /// Puts that wrote at least one value.
    pub puts: u64,
    pub last_write_ms: u64,
    /// Distinct entities written.
    pub entities: Distinct,
    /// By feature id.
    pub features: Vec<Option<FeatureBucket>>,
}

impl Default for GroupBucket {
    fn default() -> Self {
        GroupBucket {
            puts: 0,
            last_write_ms: 0,
            entities: Distinct::new(ENTITY_PRECISION),
            features: Vec::new(),
        }
    }
}

impl GroupBucket {
    /// Adds a shard's raw pending puts.
    pub fn absorb(&mut self, raw: &RawBucket) {
        self.puts += raw.puts;
        self.last_write_ms = self.last_write_ms.max(raw.last_write_ms);
        raw.entity_hashes
            .iter()
            .for_each(|&h| self.entities.add_hash(h));
        for (id, f) in raw.features.iter().enumerate() {
            if f.count > 0 {
                self.feature_mut(id as u32).absorb(f);
            }
        }
    }

    pub fn feature_mut(&mut self, id: u32) -> &mut FeatureBucket {
        let i = id as usize;
        if self.features.len() <= i {
            self.features.resize_with(i + 1, || None);
        }
        self.features[i].get_or_insert_with(FeatureBucket::default)
    }

    pub fn feature(&self, id: u32) -> Option<&FeatureBucket> {
        self.features.get(id as usize).and_then(Option::as_ref)
    }

    pub fn is_empty(&self) -> bool {
        self.puts == 0
    }

    pub fn merge(&mut self, o: &GroupBucket) {
        self.puts += o.puts;
        self.last_write_ms = self.last_write_ms.max(o.last_write_ms);
        // Every entity sketch has ENTITY_PRECISION (checked when decoded).
        let _ = self.entities.merge(&o.entities);
        for (id, f) in o.features.iter().enumerate() {
            if let Some(f) = f {
                self.feature_mut(id as u32).merge(f);
            }
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.entities.heap_bytes()
            + self
                .features
                .iter()
                .flatten()
                .map(|f| f.heap_bytes() + std::mem::size_of::<FeatureBucket>())
                .sum::<usize>()
    }
}
