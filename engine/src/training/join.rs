//! The point-in-time join of one spine batch against the store's history.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::mode::TimeMode;
use super::spine::SpineBatch;
use crate::error::{Error, Result};
use crate::feature::{
    EntityKey, FeatureError, FeatureRef, FeatureValue, KeyType, MAX_FEATURE_REFS,
};
use crate::history::keys::{check_entity_key, head_key};
use crate::history::{
    history_group, AsOf, EntityRows, GroupRead, HistoryCache, DEFAULT_HISTORY_CACHE_BYTES,
};
use crate::store::Store;

/// Hashes entity keys for grouping a batch's rows, with one xxh3 call per key (SipHash's
/// resistance to chosen keys is not needed for a spine the caller supplies, and costs several
/// times more per key).
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Xxh3Builder = std::hash::BuildHasherDefault<KeyHasher>;

/// Most threads one batch's reads are spread over.
pub const MAX_JOIN_THREADS: usize = 64;
/// Join threads per core by default.
const THREADS_PER_CORE: usize = 4;
/// Entities one job of a batch reads together (a head and a directory read each, in one
/// engine batch, then the segments they need in another).
const JOB_ENTITIES: usize = 1024;

/// The features of one group a training set reads, and where their answers go.
#[derive(Debug, Clone)]
struct GroupPart {
    name: String,
    key_type: KeyType,
    refs: Vec<FeatureRef>,
    /// Output column of each of `refs`.
    columns: Vec<usize>,
    /// The group's history window, seconds.
    retention_s: u32,
}

/// A training-set builder over one store: which features, in which time mode. Hand it the
/// spine batch by batch with [`TrainingSet::join`].
pub struct TrainingSet<'s> {
    store: &'s Store,
    mode: TimeMode,
    features: Vec<FeatureRef>,
    groups: Vec<GroupPart>,
    threads: usize,
    cache: HistoryCache,
}

/// The answers for one spine batch: per requested feature (in request order), one value per
/// row (in spine order), with the statuses of an online read (PRESENT, NULL, NOT_FOUND,
/// EXPIRED).
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub columns: Vec<Vec<FeatureValue>>,
}

/// One read of up to [`JOB_ENTITIES`] entities of one group (with all their rows).
struct Job {
    group: usize,
    entities: std::ops::Range<usize>,
}

impl Store {
    /// A training-set builder for `features` (from one or more groups, each keeping history)
    /// in `mode`. Fails on an unknown group or feature, a group without history, or a feature
    /// named twice.
    pub fn training_set(&self, features: &[FeatureRef], mode: TimeMode) -> Result<TrainingSet<'_>> {
        if features.is_empty() || features.len() > MAX_FEATURE_REFS {
            return Err(FeatureError::TooManyItems {
                what: "features in one training set (1 or more)",
                count: features.len(),
                max: MAX_FEATURE_REFS,
            }
            .into());
        }
        let mut groups: Vec<GroupPart> = Vec::new();
        for (column, r) in features.iter().enumerate() {
            let schema = self.describe_group(&r.group)?;
            if schema.feature(&r.feature).is_none() {
                return Err(FeatureError::UnknownFeature {
                    group: r.group.clone(),
                    feature: r.feature.clone(),
                }
                .into());
            }
            let policy = schema.history.ok_or_else(|| FeatureError::NoHistory {
                group: schema.name.clone(),
            })?;
            if features[..column].contains(r) {
                return Err(FeatureError::DuplicateFeature {
                    group: r.group.clone(),
                    feature: r.feature.clone(),
                }
                .into());
            }
            let part = match groups.iter().position(|g| g.name == schema.name) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(GroupPart {
                        name: schema.name.clone(),
                        key_type: schema.key_type,
                        refs: Vec::new(),
                        columns: Vec::new(),
                        retention_s: policy.retention_s.unwrap_or(0),
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            part.refs.push(r.clone());
            part.columns.push(column);
        }
        // Reads mostly wait for the device: a few more threads than cores keep more of them
        // in flight.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(TrainingSet {
            store: self,
            mode,
            features: features.to_vec(),
            groups,
            threads: (cores * THREADS_PER_CORE).min(MAX_JOIN_THREADS),
            cache: HistoryCache::new(DEFAULT_HISTORY_CACHE_BYTES),
        })
    }
}

impl<'s> TrainingSet<'s> {
    /// The groups whose keys each spine batch carries, in the order of
    /// [`SpineBatch::keys`], with their key types.
    pub fn groups(&self) -> impl Iterator<Item = (&str, KeyType)> + '_ {
        self.groups.iter().map(|g| (g.name.as_str(), g.key_type))
    }

    pub fn features(&self) -> &[FeatureRef] {
        &self.features
    }

    pub fn mode(&self) -> TimeMode {
        self.mode
    }

    /// Spreads each batch's reads over at most `threads` threads (default: four per core).
    pub fn threads(mut self, threads: usize) -> TrainingSet<'s> {
        self.threads = threads.clamp(1, MAX_JOIN_THREADS);
        self
    }

    /// Keeps the entity histories this training set reads in `cache` (and answers from what
    /// it holds), instead of a cache of its own of
    /// [`DEFAULT_HISTORY_CACHE_BYTES`]: a caller that joins one spine batch by batch through
    /// several `TrainingSet`s passes them one cache, so that an entity's history is read once
    /// per spine while the cache holds it. A cache of budget 0 keeps nothing.
    pub fn with_cache(mut self, cache: HistoryCache) -> TrainingSet<'s> {
        self.cache = cache;
        self
    }

    pub fn cache(&self) -> &HistoryCache {
        &self.cache
    }

    /// Joins a stream of spine batches, one answer per batch, lazily.
    pub fn stream<'a, I>(&'a self, batches: I) -> impl Iterator<Item = Result<Joined>> + 'a
    where
        I: IntoIterator<Item = SpineBatch>,
        I::IntoIter: 'a,
    {
        batches.into_iter().map(move |batch| self.join(&batch))
    }

    /// The features of every row of `batch`, as of its time. Checks everything first: a
    /// refused batch names its spine row (wrong key type, a key too long, a time before a
    /// group's history window).
    pub fn join(&self, batch: &SpineBatch) -> Result<Joined> {
        batch.check_shape(self.groups.len(), self.mode.needs_known_at())?;
        let reads = self.reads(batch);
        self.check_rows(batch, &reads)?;
        let mut columns: Vec<Vec<FeatureValue>> = (0..self.features.len())
            .map(|_| {
                (0..batch.len())
                    .map(|_| FeatureValue::not_found())
                    .collect()
            })
            .collect();
        let plans = self.group_reads()?;
        // Each group's rows are grouped by entity on a thread of its own, and its entities
        // put in the order of their heads on the device: a job then reads entities whose
        // records lie close together, and its batch read makes their device reads as a few
        // longer ones.
        let entities: Vec<Entities<'_>> = std::thread::scope(|scope| {
            let workers: Vec<_> = batch
                .keys
                .iter()
                .zip(&plans)
                .map(|(keys, plan)| {
                    scope.spawn(move || {
                        let entities = Entities::of(keys);
                        let hg = history_group(plan.schema.id);
                        let heads: Vec<Vec<u8>> = (0..entities.len())
                            .map(|e| head_key(entities.get(e).0))
                            .collect();
                        let pairs: Vec<(u32, &[u8])> = heads.iter().map(|k| (hg, &k[..])).collect();
                        let order = self.store.engine.device_order(&pairs);
                        entities.sorted_by(&order)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("grouping a spine batch's rows panicked"))
                .collect()
        });
        let jobs = jobs(&entities);
        let out = Placed::new(&mut columns, batch.len());
        self.run(&plans, &entities, &reads, &jobs, |job, values| {
            let part = &self.groups[job.group];
            let mut values = values.into_iter();
            for e in job.entities.clone() {
                for &row in entities[job.group].get(e).1 {
                    for &column in &part.columns {
                        out.put(column, row, values.next().expect("one value per feature"));
                    }
                }
            }
        })?;
        Ok(Joined { columns })
    }

    /// Each group's features as the history reads want them, from the current schemas.
    fn group_reads(&self) -> Result<Vec<GroupRead>> {
        let registry = self.store.registry.read();
        self.groups
            .iter()
            .map(|part| {
                let entry = registry.group(&part.name)?;
                let wanted = part
                    .refs
                    .iter()
                    .map(|r| entry.feature(&r.feature).map(|f| (f.id, f.ty)))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(GroupRead::new(entry.schema.clone(), wanted))
            })
            .collect()
    }

    /// Each row's read.
    fn reads(&self, batch: &SpineBatch) -> Vec<AsOf> {
        let known = batch.known_at_ms.as_deref();
        batch
            .timestamps_ms
            .iter()
            .enumerate()
            .map(|(i, &t)| self.mode.as_of(t, known.map_or(t, |k| k[i])))
            .collect()
    }

    /// Key types, key sizes and history windows, per row, naming the first bad row.
    fn check_rows(&self, batch: &SpineBatch, reads: &[AsOf]) -> Result<()> {
        let now_ms = self.store.now_ms();
        for (part, keys) in self.groups.iter().zip(&batch.keys) {
            // A group bounded by version count alone (retention 0 here) has no window.
            let horizon_ms = match part.retention_s {
                0 => 0,
                r => now_ms.saturating_sub(r as u64 * 1000),
            };
            for (i, key) in keys.iter().enumerate() {
                let row = || batch.row_number(i);
                if let Some(key) = key {
                    if key.key_type() != part.key_type {
                        return Err(spine_row(
                            row(),
                            format!(
                                "entity key of type {} given for group '{}', whose key type is {}",
                                key.key_type(),
                                part.name,
                                part.key_type
                            ),
                        ));
                    }
                    // An i64 key is always 8 bytes: only other keys need their size checked.
                    if !matches!(key, EntityKey::I64(_)) {
                        let bytes = key
                            .to_key_bytes()
                            .map_err(|e| spine_row(row(), format!("group '{}': {e}", part.name)))?;
                        check_entity_key(&part.name, &bytes)
                            .map_err(|e| spine_row(row(), e.to_string()))?;
                    }
                }
                for (what, time_ms) in reads[i].times() {
                    if time_ms < horizon_ms {
                        return Err(spine_row(
                            row(),
                            format!(
                                "{what} {time_ms} ms is before the history window of group '{}' (it starts at {horizon_ms} ms, {} s before now)",
                                part.name, part.retention_s
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs the jobs on up to `self.threads` threads; each thread hands each of its jobs'
    /// answers to `place` itself (the jobs' rows are disjoint), so that placing them is spread
    /// over the threads and no answer waits for the calling thread. The first failed job's
    /// error is returned once every thread has stopped.
    fn run(
        &self,
        plans: &[GroupRead],
        entities: &[Entities<'_>],
        reads: &[AsOf],
        jobs: &[Job],
        place: impl Fn(&Job, Vec<FeatureValue>) + Sync,
    ) -> Result<()> {
        let one = |job: &Job| -> Result<()> {
            let rows: Vec<EntityRows<'_>> = job
                .entities
                .clone()
                .map(|e| {
                    let (entity, rows) = entities[job.group].get(e);
                    EntityRows { entity, rows }
                })
                .collect();
            let values = self
                .store
                .as_of_entities(&plans[job.group], &rows, reads, &self.cache)?;
            place(job, values);
            Ok(())
        };
        let threads = self.threads.min(jobs.len());
        if threads <= 1 {
            return jobs.iter().try_for_each(one);
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (next, failed, one) = (&next, &failed, &one);
                    scope.spawn(move || -> Result<()> {
                        loop {
                            let j = next.fetch_add(1, Ordering::Relaxed);
                            let Some(job) = jobs.get(j) else {
                                return Ok(());
                            };
                            if failed.load(Ordering::Relaxed) {
                                return Ok(());
                            }
                            one(job).inspect_err(|_| failed.store(true, Ordering::Relaxed))?;
                        }
                    })
                })
                .collect();
            let mut first_error = None;
            for w in workers {
                if let Err(e) = w.join().expect("a training-set join thread panicked") {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

/// The answer columns of one batch, written by the join's threads in place: each (column,
/// row) by exactly one job, so that no thread waits for another to place its answers.
struct Placed<'c> {
    columns: Vec<*mut FeatureValue>,
    rows: usize,
    _columns: std::marker::PhantomData<&'c mut [Vec<FeatureValue>]>,
}

// SAFETY: `Placed` hands out no references; `put` writes through the pointers, and its
// callers write each (column, row) from one thread only (see `put`), so sharing it between
// the join's threads makes no data race. The columns are borrowed mutably for `'c`, so
// nothing else reads or resizes them meanwhile.
unsafe impl Sync for Placed<'_> {}

impl<'c> Placed<'c> {
    /// `columns`, each `rows` long and holding only [`FeatureValue::not_found`] values.
    fn new(columns: &'c mut [Vec<FeatureValue>], rows: usize) -> Placed<'c> {
        assert!(columns.iter().all(|c| c.len() == rows));
        Placed {
            columns: columns.iter_mut().map(|c| c.as_mut_ptr()).collect(),
            rows,
            _columns: std::marker::PhantomData,
        }
    }

    /// Puts `value` at `row` of `column`. Each (column, row) is put at most once, from one
    /// thread: a column is one group's feature, a row belongs to at most one entity of that
    /// group ([`Entities::of`]), and an entity to one job, run by one thread.
    fn put(&self, column: usize, row: usize, value: FeatureValue) {
        assert!(row < self.rows, "row {row} of a batch of {}", self.rows);
        // SAFETY: `row` is in bounds (asserted) of a live column of `rows` values that only
        // this call writes (see above). The value replaced is a `not_found` answer, whose
        // `Value::Null` owns no memory, so overwriting it without dropping it leaks nothing.
        unsafe { self.columns[column].add(row).write(value) }
    }
}

/// The distinct entities of one key column and their rows, in order of first appearance:
/// entity `e`'s key bytes are `keys[e]`, its rows (in spine order) `rows[starts[e]..starts[e +
/// 1]]`.
struct Entities<'b> {
    keys: Vec<KeyBytes<'b>>,
    starts: Vec<usize>,
    rows: Vec<usize>,
}

/// An entity key's bytes, borrowed from the spine batch or, for an i64 key, held inline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyBytes<'b> {
    Borrowed(&'b [u8]),
    I64([u8; 8]),
}

impl KeyBytes<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            KeyBytes::Borrowed(b) => b,
            KeyBytes::I64(b) => b,
        }
    }
}

impl std::hash::Hash for KeyBytes<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.as_slice());
    }
}

impl<'b> Entities<'b> {
    /// Groups the rows of `keys` by entity (rows without a key belong to none).
    fn of(keys: &'b [Option<EntityKey>]) -> Entities<'b> {
        // Sized for a few rows per entity, so that it seldom grows while filled.
        let mut index: HashMap<KeyBytes<'b>, u32, Xxh3Builder> =
            HashMap::with_capacity_and_hasher(keys.len() / 4, Xxh3Builder::default());
        let mut list: Vec<KeyBytes<'b>> = Vec::new();
        let mut entity_of: Vec<u32> = Vec::with_capacity(keys.len());
        let mut counts: Vec<usize> = Vec::new();
        for key in keys {
            let Some(key) = key else {
                entity_of.push(u32::MAX);
                continue;
            };
            let bytes = match key {
                EntityKey::I64(v) => KeyBytes::I64(v.to_le_bytes()),
                EntityKey::String(s) => KeyBytes::Borrowed(s.as_bytes()),
                EntityKey::Bytes(b) => KeyBytes::Borrowed(b),
            };
            let e = *index.entry(bytes).or_insert_with(|| {
                list.push(bytes);
                counts.push(0);
                (list.len() - 1) as u32
            });
            counts[e as usize] += 1;
            entity_of.push(e);
        }
        let mut starts = Vec::with_capacity(list.len() + 1);
        let mut total = 0;
        starts.push(0);
        for c in &counts {
            total += c;
            starts.push(total);
        }
        // Fill each entity's slots in row order.
        let mut next: Vec<usize> = starts[..list.len()].to_vec();
        let mut rows = vec![0; total];
        for (row, &e) in entity_of.iter().enumerate() {
            if e != u32::MAX {
                rows[next[e as usize]] = row;
                next[e as usize] += 1;
            }
        }
        Entities {
            keys: list,
            starts,
            rows,
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    /// The same entities in ascending order of `by[e]` (ties in their current order).
    fn sorted_by(self, by: &[u64]) -> Entities<'b> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&e| by[e]);
        let mut keys = Vec::with_capacity(self.keys.len());
        let mut starts = Vec::with_capacity(self.starts.len());
        let mut rows = Vec::with_capacity(self.rows.len());
        starts.push(0);
        for e in order {
            keys.push(self.keys[e]);
            rows.extend_from_slice(self.get(e).1);
            starts.push(rows.len());
        }
        Entities { keys, starts, rows }
    }

    /// Entity `e`'s key bytes and rows.
    fn get(&self, e: usize) -> (&[u8], &[usize]) {
        (
            self.keys[e].as_slice(),
            &self.rows[self.starts[e]..self.starts[e + 1]],
        )
    }
}

/// Per group, its entities cut into reads of at most [`JOB_ENTITIES`] entities.
fn jobs(entities: &[Entities<'_>]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (group, list) in entities.iter().enumerate() {
        for start in (0..list.len()).step_by(JOB_ENTITIES) {
            jobs.push(Job {
                group,
                entities: start..(start + JOB_ENTITIES).min(list.len()),
            });
        }
    }
    jobs
}

fn spine_row(row: u64, reason: String) -> Error {
    FeatureError::SpineRow { row, reason }.into()
}
