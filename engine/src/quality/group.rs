//! A group's live statistics: sharded pending buckets on the write path, folded into the
//! group's windows by whichever put fills one, crosses a bucket boundary, or by a reader.
//!
//! A put locks only its thread's shard (uncontended unless more threads than shards write
//! one group); the windows' lock is taken once per [`FOLD_VALUES`] values or bucket change.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use std::sync::Arc;

use crate::feature::Value;

use super::baseline::Baseline;

use super::bucket::RawBucket;
use super::window::{Ring, Totals, FINEST_BUCKET_MS, WINDOWS};

/// Shards of pending statistics per group.
pub const SHARDS: usize = 8;
/// Values a shard accumulates before it folds them into the windows.
pub const FOLD_VALUES: u64 = 4096;

/// A put's values, accumulated in one shard until folded.
#[derive(Default)]
struct Pending {
    /// Index of the finest bucket (time / FINEST_BUCKET_MS) the values belong to.
    index: u64,
    values: u64,
    bucket: RawBucket,
}

/// The windows and totals of one group.
#[derive(Clone)]
pub struct Windows {
    pub rings: Vec<Ring>,
    pub totals: Totals,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            rings: WINDOWS.iter().map(|&w| Ring::new(w)).collect(),
            totals: Totals::default(),
        }
    }
}

impl Windows {
    fn fold(&mut self, index: u64, raw: &RawBucket) {
        let time_ms = index * FINEST_BUCKET_MS;
        for ring in &mut self.rings {
            ring.absorb(time_ms, raw);
        }
        self.totals.absorb(raw);
    }

    pub fn heap_bytes(&self) -> usize {
        self.rings.iter().map(Ring::heap_bytes).sum::<usize>() + self.totals.features.len() * 24
    }
}

pub struct GroupStats {
    shards: Box<[Mutex<Pending>]>,
    windows: Mutex<Windows>,
    /// Puts recorded since the statistics were made or loaded; [`GroupStats::unsaved`]
    /// compares it with `saved`, so that a save writes only groups that changed.
    recorded: AtomicU64,
    /// `recorded` as of the last save (or load).
    saved: AtomicU64,
    /// The group's baselines, as stored in `baseline/<id>` (kept here so that reports, the
    /// metrics among them, never read the device).
    baselines: parking_lot::RwLock<Arc<Vec<Baseline>>>,
}

impl std::fmt::Debug for GroupStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupStats")
    }
}

impl Default for GroupStats {
    fn default() -> Self {
        GroupStats {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Pending::default()))
                .collect(),
            windows: Mutex::new(Windows::default()),
            recorded: AtomicU64::new(0),
            saved: AtomicU64::new(0),
            baselines: Default::default(),
        }
    }
}

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl GroupStats {
    pub fn with_windows(windows: Windows) -> GroupStats {
        GroupStats {
            windows: Mutex::new(windows),
            ..GroupStats::default()
        }
    }

    /// Records one put's accepted values for entity `key`, written at `now_ms`.
    #[inline]
    pub fn record(&self, key: &[u8], values: &[(u32, &Value)], now_ms: u64) {
        let index = now_ms / FINEST_BUCKET_MS;
        let shard = SHARD.with(|s| *s);
        let mut pending = self.shards[shard].lock();
        self.recorded.fetch_add(1, Ordering::Relaxed);
        if pending.values > 0 && pending.index != index {
            self.fold(&mut pending);
        }
        pending.index = index;
        pending.values += values.len() as u64 + 1;
        pending.bucket.record(key, values, now_ms);
        if pending.values >= FOLD_VALUES {
            self.fold(&mut pending);
        }
    }

    fn fold(&self, pending: &mut Pending) {
        self.windows.lock().fold(pending.index, &pending.bucket);
        pending.bucket.clear();
        pending.values = 0;
    }

    /// Folds every shard, then answers a copy of the windows.
    pub fn snapshot(&self) -> Windows {
        for shard in self.shards.iter() {
            let mut pending = shard.lock();
            if pending.values > 0 {
                self.fold(&mut pending);
            }
        }
        self.windows.lock().clone()
    }

    /// When something was recorded since the last save: the mark to pass to
    /// [`GroupStats::mark_saved`] once the snapshot taken after this call is saved.
    /// Windows rolling with the clock change nothing saved (buckets are kept by time).
    pub fn unsaved(&self) -> Option<u64> {
        let recorded = self.recorded.load(Ordering::Acquire);
        (recorded != self.saved.load(Ordering::Acquire)).then_some(recorded)
    }

    /// Records that everything up to `mark` (from [`GroupStats::unsaved`]) is saved. A put
    /// recorded after the mark was taken keeps the group unsaved.
    pub fn mark_saved(&self, mark: u64) {
        self.saved.store(mark, Ordering::Release);
    }

    /// The group's baselines.
    pub fn baselines(&self) -> Arc<Vec<Baseline>> {
        Arc::clone(&self.baselines.read())
    }

    /// Replaces the group's baselines (after they are stored, or when loaded).
    pub fn set_baselines(&self, all: Vec<Baseline>) {
        *self.baselines.write() = Arc::new(all);
    }

    /// Heap bytes of the windows and of the pending shards.
    pub fn heap_bytes(&self) -> usize {
        let pending: usize = self
            .shards
            .iter()
            .map(|s| s.lock().bucket.heap_bytes())
            .sum();
        pending + self.windows.lock().heap_bytes()
    }
}
