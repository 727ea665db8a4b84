//! Windows of statistics: rings of time buckets. A value lands in the bucket of its write
//! time; a window is the merge of the buckets that are not older than its span, so a window
//! rolls over bucket by bucket as the clock moves.

use super::bucket::{GroupBucket, RawBucket};
use super::sketch::{Distinct, ENTITY_PRECISION};

/// A named span of time kept as a ring of `slots` buckets of `bucket_ms` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    pub name: &'static str,
    pub bucket_ms: u64,
    pub slots: usize,
}

impl WindowSpec {
    pub fn span_ms(&self) -> u64 {
        self.bucket_ms * self.slots as u64
    }
}

/// The windows every group keeps: the last hour in 5-minute buckets, the last day in hourly
/// buckets. A window covers its span up to one bucket less (the oldest bucket drops out
/// whole).
pub const WINDOWS: [WindowSpec; 2] = [
    WindowSpec {
        name: "1h",
        bucket_ms: 5 * 60 * 1000,
        slots: 12,
    },
    WindowSpec {
        name: "24h",
        bucket_ms: 60 * 60 * 1000,
        slots: 24,
    },
];

/// The bucket width that pending statistics are cut at: every window's bucket is a multiple.
pub const FINEST_BUCKET_MS: u64 = 5 * 60 * 1000;

const _: () = assert!(WINDOWS[0].bucket_ms == FINEST_BUCKET_MS);
const _: () =
    assert!(WINDOWS[1].bucket_ms / FINEST_BUCKET_MS * FINEST_BUCKET_MS == WINDOWS[1].bucket_ms);

/// One window's ring: slot `i` holds the bucket whose index (time / bucket_ms) is congruent
/// to `i`, with that index, or nothing.
#[derive(Clone)]
pub struct Ring {
    pub spec: WindowSpec,
    pub slots: Vec<Option<(u64, GroupBucket)>>,
}

impl Ring {
    pub fn new(spec: WindowSpec) -> Ring {
        Ring {
            spec,
            slots: vec![None; spec.slots],
        }
    }

    /// Adds `bucket`, written at `time_ms`, to the bucket of that time. A time older than the
    /// ring's span is dropped (it is in no window any more).
    pub fn add(&mut self, time_ms: u64, bucket: &GroupBucket) {
        let index = time_ms / self.spec.bucket_ms;
        let slot = &mut self.slots[(index % self.spec.slots as u64) as usize];
        match slot {
            Some((i, b)) if *i == index => b.merge(bucket),
            Some((i, _)) if *i > index => {}
            _ => *slot = Some((index, bucket.clone())),
        }
    }

    /// Adds a shard's raw pending puts, written at `time_ms`, to the bucket of that time (see
    /// [`Ring::add`]).
    pub fn absorb(&mut self, time_ms: u64, raw: &RawBucket) {
        let index = time_ms / self.spec.bucket_ms;
        let slot = &mut self.slots[(index % self.spec.slots as u64) as usize];
        match slot {
            Some((i, _)) if *i > index => {}
            Some((i, b)) if *i == index => b.absorb(raw),
            _ => {
                let mut b = GroupBucket::default();
                b.absorb(raw);
                *slot = Some((index, b));
            }
        }
    }

    /// The buckets inside the window at `now_ms`: index in (now - slots, now].
    pub fn live(&self, now_ms: u64) -> impl Iterator<Item = &(u64, GroupBucket)> {
        let now = now_ms / self.spec.bucket_ms;
        let oldest = (now + 1).saturating_sub(self.spec.slots as u64);
        self.slots
            .iter()
            .flatten()
            .filter(move |(i, _)| *i >= oldest && *i <= now)
    }

    /// The merge of the buckets inside the window at `now_ms`.
    pub fn window(&self, now_ms: u64) -> GroupBucket {
        let mut out = GroupBucket::default();
        for (_, b) in self.live(now_ms) {
            out.merge(b);
        }
        out
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|(_, b)| b.heap_bytes())
            .sum()
    }
}

/// Since the group's statistics began: counts and the newest write, per feature, and the
/// entities ever written.
#[derive(Clone)]
pub struct Totals {
    pub puts: u64,
    pub last_write_ms: u64,
    /// By feature id: (values, nulls, newest write ms).
    pub features: Vec<(u64, u64, u64)>,
    pub entities: Distinct,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            puts: 0,
            last_write_ms: 0,
            features: Vec::new(),
            entities: Distinct::new(ENTITY_PRECISION),
        }
    }
}

impl PartialEq for Totals {
    fn eq(&self, o: &Totals) -> bool {
        (self.puts, self.last_write_ms, &self.features) == (o.puts, o.last_write_ms, &o.features)
            && self.entities.encode() == o.entities.encode()
    }
}

impl std::fmt::Debug for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totals")
            .field("puts", &self.puts)
            .field("last_write_ms", &self.last_write_ms)
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

impl Totals {
    pub fn absorb(&mut self, raw: &RawBucket) {
        raw.entity_hashes
            .iter()
            .for_each(|&h| self.entities.add_hash(h));
        self.puts += raw.puts;
        self.last_write_ms = self.last_write_ms.max(raw.last_write_ms);
        if self.features.len() < raw.features.len() {
            self.features.resize(raw.features.len(), (0, 0, 0));
        }
        for (t, f) in self.features.iter_mut().zip(&raw.features) {
            t.0 += f.count;
            t.1 += f.nulls;
            t.2 = t.2.max(f.last_write_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::Value;

    fn bucket(n: u64) -> GroupBucket {
        let mut raw = crate::quality::bucket::RawBucket::default();
        for i in 0..n {
            raw.record(&i.to_le_bytes(), &[(0, &Value::F64(i as f64))], 1);
        }
        let mut b = GroupBucket::default();
        b.absorb(&raw);
        b
    }

    #[test]
    fn buckets_leave_the_window_as_time_moves() {
        let mut ring = Ring::new(WINDOWS[0]);
        let m5 = FINEST_BUCKET_MS;
        ring.add(0, &bucket(1));
        ring.add(m5, &bucket(2));
        ring.add(11 * m5, &bucket(4));
        assert_eq!(ring.window(11 * m5).puts, 7);
        // At 12 buckets, the first one (index 0) has left the window.
        assert_eq!(ring.window(12 * m5).puts, 6);
        // A bucket written into slot 0 again replaces the old one of index 0.
        ring.add(12 * m5, &bucket(8));
        assert_eq!(ring.window(12 * m5).puts, 14);
        assert_eq!(ring.window(23 * m5).puts, 8);
        assert_eq!(ring.window(24 * m5).puts, 0);
        // A write too old for the ring changes nothing.
        ring.add(0, &bucket(16));
        assert_eq!(ring.window(12 * m5).puts, 14);
    }
}
