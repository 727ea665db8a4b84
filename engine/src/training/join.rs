//! The point-in-time join of one spine batch against the store's history.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::mode::TimeMode;
use super::spine::SpineBatch;
use crate::error::{Error, Result};
use crate::feature::{
    EntityKey, FeatureError, FeatureRef, FeatureValue, KeyType, MAX_ENTITIES_PER_GET,
    MAX_FEATURE_REFS,
};
use crate::history::AsOf;
use crate::store::Store;

/// Most threads one batch's reads are spread over.
pub const MAX_JOIN_THREADS: usize = 64;
/// Join threads per core by default.
const THREADS_PER_CORE: usize = 4;

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
}

/// The answers for one spine batch: per requested feature (in request order), one value per
/// row (in spine order), with the statuses of an online read (PRESENT, NULL, NOT_FOUND,
/// EXPIRED).
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub columns: Vec<Vec<FeatureValue>>,
}

/// One read of up to [`MAX_ENTITIES_PER_GET`] rows of one group.
struct Job {
    group: usize,
    rows: Vec<usize>,
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
        let mut columns = vec![vec![FeatureValue::not_found(); batch.len()]; self.features.len()];
        let jobs = self.jobs(batch);
        for (job, answers) in jobs.iter().zip(self.run(batch, &reads, &jobs)?) {
            let part = &self.groups[job.group];
            for (&row, values) in job.rows.iter().zip(answers) {
                for (&column, value) in part.columns.iter().zip(values) {
                    columns[column][row] = value;
                }
            }
        }
        Ok(Joined { columns })
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
                    key.to_key_bytes()
                        .map_err(|e| spine_row(row(), format!("group '{}': {e}", part.name)))?;
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

    /// Per group, the rows that have an entity, ordered so that the rows of one entity are
    /// adjacent (first appearance first), cut into reads of at most
    /// [`MAX_ENTITIES_PER_GET`] rows.
    fn jobs(&self, batch: &SpineBatch) -> Vec<Job> {
        let mut jobs = Vec::new();
        for (group, keys) in batch.keys.iter().enumerate() {
            let mut entity_of: HashMap<&EntityKey, usize> = HashMap::new();
            let mut rows_of: Vec<Vec<usize>> = Vec::new();
            for (row, key) in keys.iter().enumerate() {
                let Some(key) = key else { continue };
                let next = rows_of.len();
                let e = *entity_of.entry(key).or_insert(next);
                if e == next {
                    rows_of.push(Vec::new());
                }
                rows_of[e].push(row);
            }
            let mut rows = Vec::with_capacity(MAX_ENTITIES_PER_GET);
            for row in rows_of.into_iter().flatten() {
                rows.push(row);
                if rows.len() == MAX_ENTITIES_PER_GET {
                    let full =
                        std::mem::replace(&mut rows, Vec::with_capacity(MAX_ENTITIES_PER_GET));
                    jobs.push(Job { group, rows: full });
                }
            }
            if !rows.is_empty() {
                jobs.push(Job { group, rows });
            }
        }
        jobs
    }

    /// Runs the jobs on up to `self.threads` threads; answers in job order.
    fn run(
        &self,
        batch: &SpineBatch,
        reads: &[AsOf],
        jobs: &[Job],
    ) -> Result<Vec<Vec<Vec<FeatureValue>>>> {
        let one = |job: &Job| -> Result<Vec<Vec<FeatureValue>>> {
            let part = &self.groups[job.group];
            let keys = &batch.keys[job.group];
            let rows: Vec<(EntityKey, AsOf)> = job
                .rows
                .iter()
                .map(|&r| (keys[r].clone().expect("jobs hold rows with keys"), reads[r]))
                .collect();
            self.store.get_many_as_of(&rows, &part.refs)
        };
        let threads = self.threads.min(jobs.len());
        if threads <= 1 {
            return jobs.iter().map(one).collect();
        }
        let next = AtomicUsize::new(0);
        let mut results: Vec<Option<Result<Vec<Vec<FeatureValue>>>>> =
            (0..jobs.len()).map(|_| None).collect();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let j = next.fetch_add(1, Ordering::Relaxed);
                            let Some(job) = jobs.get(j) else { break };
                            done.push((j, one(job)));
                        }
                        done
                    })
                })
                .collect();
            for worker in workers {
                for (j, answer) in worker.join().expect("a join worker panicked") {
                    results[j] = Some(answer);
                }
            }
        });
        results
            .into_iter()
            .map(|r| r.expect("every job ran"))
            .collect()
    }
}

fn spine_row(row: u64, reason: String) -> Error {
    FeatureError::SpineRow { row, reason }.into()
}
