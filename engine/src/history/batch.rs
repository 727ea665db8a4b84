//! As-of reads of many rows of one group, entity by entity (the read path of training sets):
//! each entity's head, directory and needed segments are read once for all of its rows, or
//! taken from a [`HistoryCache`] that earlier batches of the same spine filled, and all of its
//! rows are answered by one pass over its versions ([`super::sweep`]).
//!
//! A cached entity is answered from the records as they were when they were read: all rows of
//! an entity see one state of its history while it stays in the cache, and writes made after
//! that are not seen by those rows. Segments are immutable once committed; a segment fetched
//! later for a cached head is checked against the head's directory entry (count and time
//! ranges), and an entity whose records disagree is read afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::codec::{decode_segment, decode_segment_into, HeadFields, SegmentInfo, Version};
use super::keys::{directory_key, head_key, history_group, segment_key};
use super::resolve::{answer, AsOf, Best};
use super::store_ops::{before, check_horizon, Loaded, SeenState};
use super::sweep;
use crate::engine::Record;
use crate::error::{Error, Result};
use crate::feature::{FeatureType, FeatureValue, GroupSchema};
use crate::store::Store;

/// A read that raced a writer is retried this many times per entity.
const READ_ATTEMPTS: usize = 4;
/// Bytes a cached entity is counted for beyond its records' keys and values.
const ENTRY_OVERHEAD_BYTES: usize = 160;
/// Default budget of a [`HistoryCache`].
pub const DEFAULT_HISTORY_CACHE_BYTES: usize = 256 << 20;

/// One entity's history records as one read saw them: head, directory, and the committed
/// segments read so far (`None`: listed, missing, and before the horizon).
#[derive(Debug)]
struct Cached {
    loaded: Loaded,
    segments: Vec<(u32, Option<Record>)>,
}

impl Cached {
    fn bytes(&self) -> usize {
        let record = |r: &Option<Record>| r.as_ref().map_or(0, |r| r.key.len() + r.value.len());
        ENTRY_OVERHEAD_BYTES
            + record(&self.loaded.head)
            + record(&self.loaded.dir)
            + self
                .segments
                .iter()
                .map(|(_, r)| 48 + record(r))
                .sum::<usize>()
    }

    fn segment(&self, n: u32) -> Option<&Option<Record>> {
        self.segments.iter().find(|(s, _)| *s == n).map(|(_, r)| r)
    }
}

/// Entity histories read by a training set, kept so that the later batches of one spine
/// answer their rows without reading the device again. Bounded by a byte budget (the
/// records' bytes plus a fixed overhead per entity); the entities cached first are evicted
/// first. Cloning gives another handle to the same cache.
#[derive(Clone)]
pub struct HistoryCache {
    inner: Arc<Mutex<CacheInner>>,
    budget_bytes: usize,
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<(u32, Vec<u8>), (Arc<Cached>, u64)>,
    /// Insertion order: (key, the insertion's number); stale numbers are skipped.
    order: VecDeque<((u32, Vec<u8>), u64)>,
    bytes: usize,
    inserted: u64,
    hits: u64,
    misses: u64,
}

/// What a [`HistoryCache`] holds and how often it answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryCacheStats {
    pub entities: usize,
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

impl HistoryCache {
    /// A cache of at most `budget_bytes` (0: nothing is kept).
    pub fn new(budget_bytes: usize) -> HistoryCache {
        HistoryCache {
            inner: Arc::new(Mutex::new(CacheInner::default())),
            budget_bytes,
        }
    }

    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    pub fn stats(&self) -> HistoryCacheStats {
        let c = self.inner.lock();
        HistoryCacheStats {
            entities: c.map.len(),
            bytes: c.bytes,
            hits: c.hits,
            misses: c.misses,
        }
    }

    fn lookup(&self, hg: u32, entities: &[&[u8]]) -> Vec<Option<Arc<Cached>>> {
        let mut c = self.inner.lock();
        let mut key = (hg, Vec::new());
        entities
            .iter()
            .map(|e| {
                key.1.clear();
                key.1.extend_from_slice(e);
                let found = c.map.get(&key).map(|(v, _)| v.clone());
                match found {
                    Some(_) => c.hits += 1,
                    None => c.misses += 1,
                }
                found
            })
            .collect()
    }

    fn insert(&self, hg: u32, items: Vec<(Vec<u8>, Arc<Cached>)>) {
        if self.budget_bytes == 0 {
            return;
        }
        let mut c = self.inner.lock();
        for (entity, cached) in items {
            let size = cached.bytes();
            if size > self.budget_bytes {
                continue;
            }
            c.inserted += 1;
            let n = c.inserted;
            let key = (hg, entity);
            if let Some((old, _)) = c.map.insert(key.clone(), (cached, n)) {
                c.bytes -= old.bytes();
            }
            c.bytes += size;
            c.order.push_back((key, n));
            while c.bytes > self.budget_bytes {
                let Some((key, n)) = c.order.pop_front() else {
                    break;
                };
                if c.map.get(&key).is_some_and(|(_, m)| *m == n) {
                    let (old, _) = c.map.remove(&key).expect("just seen");
                    c.bytes -= old.bytes();
                }
            }
        }
    }
}

impl std::fmt::Debug for HistoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryCache")
            .field("budget_bytes", &self.budget_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The features one group's rows read: (feature id, type) in answer order, and the distinct
/// ids ascending.
#[derive(Debug, Clone)]
pub(crate) struct GroupRead {
    pub schema: Arc<GroupSchema>,
    pub wanted: Vec<(u32, FeatureType)>,
    pub ids: Vec<u32>,
}

impl GroupRead {
    pub fn new(schema: Arc<GroupSchema>, wanted: Vec<(u32, FeatureType)>) -> GroupRead {
        let mut ids: Vec<u32> = wanted.iter().map(|w| w.0).collect();
        ids.sort_unstable();
        ids.dedup();
        GroupRead {
            schema,
            wanted,
            ids,
        }
    }
}

/// One entity of a batch and its rows (indices into the batch's reads).
pub(crate) struct EntityRows<'a> {
    pub entity: &'a [u8],
    pub rows: &'a [usize],
}

/// An entity's records after this call's reads: where they came from and whether they must
/// be read again.
struct Slot {
    cached: Option<Arc<Cached>>,
    /// Read or extended by this call: to be put into the cache.
    fresh: bool,
    retry: bool,
}

impl Store {
    /// Answers every row of `entities` as of its read in `reads`: per entity in order, per row
    /// in order, one value per feature of `group.wanted`. The caller checked the keys and the
    /// rows' times against the retention window.
    pub(crate) fn as_of_entities(
        &self,
        group: &GroupRead,
        entities: &[EntityRows<'_>],
        reads: &[AsOf],
        cache: &HistoryCache,
    ) -> Result<Vec<FeatureValue>> {
        let hg = history_group(group.schema.id);
        let names: Vec<&[u8]> = entities.iter().map(|e| e.entity).collect();
        let mut slots: Vec<Slot> = cache
            .lookup(hg, &names)
            .into_iter()
            .map(|cached| Slot {
                cached,
                fresh: false,
                retry: false,
            })
            .collect();
        for attempt in 0..READ_ATTEMPTS {
            let todo: Vec<usize> = (0..slots.len())
                .filter(|&i| slots[i].retry || slots[i].cached.is_none())
                .collect();
            self.load_heads(hg, &names, &todo, &mut slots)?;
            self.load_segments(group, hg, entities, reads, &mut slots)?;
            if !slots.iter().any(|s| s.retry) {
                break;
            }
            if attempt + 1 == READ_ATTEMPTS {
                return Err(Error::Moved {
                    attempts: READ_ATTEMPTS,
                });
            }
        }
        let mut out = Vec::with_capacity(
            entities.iter().map(|e| e.rows.len()).sum::<usize>() * group.wanted.len(),
        );
        let mut fresh = Vec::new();
        for (e, slot) in entities.iter().zip(slots) {
            let cached = slot.cached.expect("every entity was read");
            answer_entity(group, &cached, e.rows, reads, &mut out)?;
            if slot.fresh {
                fresh.push((e.entity.to_vec(), cached));
            }
        }
        cache.insert(hg, fresh);
        Ok(out)
    }

    /// Reads the heads and directories of `todo` in one engine batch.
    fn load_heads(
        &self,
        hg: u32,
        names: &[&[u8]],
        todo: &[usize],
        slots: &mut [Slot],
    ) -> Result<()> {
        if todo.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = todo
            .iter()
            .flat_map(|&i| [head_key(names[i]), directory_key(names[i])])
            .collect();
        let pairs: Vec<(u32, &[u8])> = keys.iter().map(|k| (hg, &k[..])).collect();
        let mut records = self.engine.get_many(&pairs)?.into_iter();
        for &i in todo {
            let (head, dir) = (records.next().flatten(), records.next().flatten());
            slots[i] = Slot {
                cached: Some(Arc::new(Cached {
                    loaded: Loaded { head, dir },
                    segments: Vec::new(),
                })),
                fresh: true,
                retry: false,
            };
        }
        Ok(())
    }

    /// Reads, in one engine batch, the segments the rows need that the entities' records do
    /// not hold yet. Marks an entity for another read when its head raced a writer or a
    /// segment does not match its directory entry.
    fn load_segments(
        &self,
        group: &GroupRead,
        hg: u32,
        entities: &[EntityRows<'_>],
        reads: &[AsOf],
        slots: &mut [Slot],
    ) -> Result<()> {
        let mut wanted: Vec<(usize, SegmentInfo)> = Vec::new();
        let mut horizons = vec![0u64; entities.len()];
        for (i, (e, slot)) in entities.iter().zip(slots.iter_mut()).enumerate() {
            let cached = slot.cached.clone().expect("heads are loaded");
            // The head's open versions are decoded only when a segment may be fetched: most
            // entities have none, or have them all in the cache already.
            let Some(outline) = cached.loaded.outline()? else {
                continue;
            };
            if outline.stale {
                slot.retry = true;
                continue;
            }
            horizons[i] = outline.head.horizon_ms;
            if outline
                .committed
                .iter()
                .all(|seg| cached.segment(seg.segment).is_some())
            {
                check_horizons(group, e.rows, reads, outline.head.horizon_ms)?;
                continue;
            }
            let Some(state) = cached.loaded.seen()? else {
                continue;
            };
            let first = wanted.len();
            needed_segments(group, &state, e.rows, reads, |seg| {
                if cached.segment(seg.segment).is_none()
                    && !wanted[first..].iter().any(|w| w.1 == *seg)
                {
                    wanted.push((i, *seg));
                }
            })?;
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = wanted
            .iter()
            .map(|(i, seg)| segment_key(entities[*i].entity, seg.segment))
            .collect();
        let pairs: Vec<(u32, &[u8])> = keys.iter().map(|k| (hg, &k[..])).collect();
        let records = self.engine.get_many(&pairs)?;
        let mut added: HashMap<usize, Vec<(u32, Option<Record>)>> = HashMap::new();
        for ((i, info), record) in wanted.into_iter().zip(records) {
            if slots[i].retry {
                continue;
            }
            let good = match &record {
                Some(r) => SegmentInfo::of(info.segment, &decode_segment(&r.value)?) == info,
                None => before(&info, horizons[i]),
            };
            if good {
                added.entry(i).or_default().push((info.segment, record));
            } else {
                slots[i].retry = true; // compacted or rewritten after the head was read
            }
        }
        for (i, segments) in added {
            let slot = &mut slots[i];
            if slot.retry {
                continue;
            }
            let old = slot.cached.take().expect("loaded");
            let mut merged = match Arc::try_unwrap(old) {
                Ok(c) => c,
                Err(shared) => Cached {
                    loaded: shared.loaded.clone(),
                    segments: shared.segments.clone(),
                },
            };
            merged.segments.extend(segments);
            slot.cached = Some(Arc::new(merged));
            slot.fresh = true;
        }
        Ok(())
    }
}

/// Checks every row of `rows` against an entity's history horizon.
fn check_horizons(
    group: &GroupRead,
    rows: &[usize],
    reads: &[AsOf],
    horizon_ms: u64,
) -> Result<()> {
    rows.iter()
        .try_for_each(|&r| check_horizon(&group.schema, &reads[r], horizon_ms))
}

/// Checks every row of `rows` against the horizon and calls `each` with every committed
/// segment some row may need (possibly twice).
fn needed_segments(
    group: &GroupRead,
    state: &SeenState<'_>,
    rows: &[usize],
    reads: &[AsOf],
    mut each: impl FnMut(&SegmentInfo),
) -> Result<()> {
    check_horizons(group, rows, reads, state.seen.head.horizon_ms)?;
    let mut best = Best::new(group.ids.clone());
    for &r in rows {
        let at = &reads[r];
        best.clear();
        best.offer(&state.seen.head.open, at);
        let floor = best.floor_ms();
        for seg in state
            .seen
            .committed
            .iter()
            .filter(|s| at.may_need(s, floor))
        {
            each(seg);
        }
    }
    Ok(())
}

/// Appends the answers of `rows` of one entity to `out` (per row, one value per wanted
/// feature). The versions offered are the head's and every segment read for the entity: a
/// superset of what each row needs, which changes no answer (each row takes the best version
/// it sees among all of them).
fn answer_entity(
    group: &GroupRead,
    cached: &Cached,
    rows: &[usize],
    reads: &[AsOf],
    out: &mut Vec<FeatureValue>,
) -> Result<()> {
    let start = out.len();
    out.resize(
        start + rows.len() * group.wanted.len(),
        FeatureValue::not_found(),
    );
    let (Some(head), Some(outline)) = (&cached.loaded.head, cached.loaded.outline()?) else {
        return Ok(());
    };
    let wanted = |feature: u32| group.ids.binary_search(&feature).is_ok();
    let mut versions: Vec<Version<'_>> = Vec::new();
    HeadFields::decode_open_into(&head.value, wanted, &mut versions)?;
    // Head first, then the segments in directory order: the order `get_many_as_of` offers
    // them in, which decides between versions of equal (event, write) order.
    for seg in &outline.committed {
        if let Some(Some(r)) = cached.segment(seg.segment) {
            decode_segment_into(&r.value, wanted, &mut versions)?;
        }
    }
    let ttl = group.schema.ttl_s;
    let mut fill = |row: usize, found: &[Option<Version<'_>>]| -> Result<()> {
        let at = &reads[rows[row]];
        let base = start + row * group.wanted.len();
        for (k, &(id, ty)) in group.wanted.iter().enumerate() {
            let i = group.ids.binary_search(&id).expect("wanted ids are listed");
            out[base + k] = answer(found[i].as_ref(), id, ty, ttl, at)?;
        }
        Ok(())
    };
    match sweep::Axis::of(rows.iter().map(|&r| &reads[r])) {
        Some(axis) if rows.len() >= sweep::MIN_ROWS => {
            let bests = sweep::sweep(axis, &group.ids, &versions, rows, reads);
            for (row, found) in bests.chunks_exact(group.ids.len()).enumerate() {
                fill(row, found)?;
            }
        }
        _ => {
            let mut best = Best::new(group.ids.clone());
            for (row, &r) in rows.iter().enumerate() {
                best.clear();
                best.offer(&versions, &reads[r]);
                fill(row, best.found())?;
            }
        }
    }
    Ok(())
}
