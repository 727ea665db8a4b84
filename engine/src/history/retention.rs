//! Retention: the sweep that enforces every history group's bounds (its window and its version
//! count) over all of its entities, run in the background by the store's own thread and on
//! demand by [`Store::compact_history`].
//!
//! A sweep walks the history groups by id and each one's records in device order, a bounded
//! step at a time ([`crate::Config::history_retention_batch`] records, then a pause), and trims
//! each entity whose head it meets under the entity's lock, so a writer waits for at most one
//! entity. Its scans do not hold defragmentation off; an entity that defragmentation moves
//! past a step's cursor is trimmed by the next sweep. Every step ends with a flush: what a
//! step reports removed stays removed across crashes.
//!
//! Trimming by version count ([`Store::trim_locked`]) never rewrites a segment in place: the
//! versions a segment keeps are first written as a new segment, committed by the head with
//! the head's own trimmed open list; then one directory write lists the old segment no more
//! (from that write on, readers no longer see the versions removed), and the old segment is
//! deleted. A crash between the two leaves both listed, with the same versions twice, which
//! readers and the next sweep treat as one.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::codec::{encode_directory, Head, SegmentInfo, Version, MAX_SEGMENTS};
use super::keys::{directory_key, entity_of_head, history_group, segment_key};
use super::store_ops::{before, buffered, decode_dir, missing_segment, CompactionReport};
use crate::engine::ScanCursor;
use crate::error::Result;
use crate::feature::GroupSchema;
use crate::store::Store;

/// Where a sweep resumes: the history group's feature group id and the scan position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionCursor {
    pub group: u32,
    pub scan: ScanCursor,
}

impl RetentionCursor {
    pub const START: RetentionCursor = RetentionCursor {
        group: 0,
        scan: ScanCursor::START,
    };
}

/// What retention has done since the store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionStats {
    /// Sweeps completed (background and on demand).
    pub sweeps: u64,
    /// Entity histories looked at.
    pub entities_checked: u64,
    /// Versions removed by the window (beyond the anchors kept) and by the version count.
    pub versions_removed: u64,
    /// Segment records deleted.
    pub segments_removed: u64,
    /// Steps that failed (the sweep stops and the next one starts over).
    pub errors: u64,
    /// Unix ms when the last sweep ended; 0 = none yet.
    pub last_sweep_end_ms: u64,
    /// How long the last sweep took, ms.
    pub last_sweep_ms: u64,
}

/// Retention counters and the background thread's stop signal, shared with that thread.
#[derive(Default)]
pub(crate) struct RetentionState {
    sweeps: AtomicU64,
    entities_checked: AtomicU64,
    versions_removed: AtomicU64,
    segments_removed: AtomicU64,
    errors: AtomicU64,
    last_sweep_end_ms: AtomicU64,
    last_sweep_ms: AtomicU64,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl RetentionState {
    fn add(&self, r: &CompactionReport) {
        self.entities_checked
            .fetch_add(r.entities, Ordering::Relaxed);
        self.versions_removed
            .fetch_add(r.versions_removed, Ordering::Relaxed);
        self.segments_removed
            .fetch_add(r.segments_removed, Ordering::Relaxed);
    }

    fn swept(&self, end_ms: u64, took: Duration) {
        self.last_sweep_ms
            .store(took.as_millis() as u64, Ordering::Relaxed);
        self.last_sweep_end_ms.store(end_ms, Ordering::Relaxed);
        self.sweeps.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn snapshot(&self) -> RetentionStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RetentionStats {
            sweeps: self.sweeps.load(Ordering::Acquire),
            entities_checked: get(&self.entities_checked),
            versions_removed: get(&self.versions_removed),
            segments_removed: get(&self.segments_removed),
            errors: get(&self.errors),
            last_sweep_end_ms: get(&self.last_sweep_end_ms),
            last_sweep_ms: get(&self.last_sweep_ms),
        }
    }

    /// Waits up to `d`; true when the store is closing.
    fn wait(&self, d: Duration) -> bool {
        let mut stop = self.stop.lock();
        if !*stop {
            self.wake.wait_for(&mut stop, d);
        }
        *stop
    }

    fn stop(&self) {
        *self.stop.lock() = true;
        self.wake.notify_all();
    }
}

/// The store's retention thread; dropping it stops the thread and waits for it (it finishes
/// the entity it is trimming).
pub(crate) struct RetentionTask {
    state: Arc<RetentionState>,
    thread: Option<JoinHandle<()>>,
}

impl RetentionTask {
    pub(crate) fn none(state: Arc<RetentionState>) -> RetentionTask {
        RetentionTask {
            state,
            thread: None,
        }
    }

    /// Starts the thread on a second handle of `store` when the configuration asks for it.
    pub(crate) fn start(store: &Store) -> RetentionTask {
        let state = Arc::clone(&store.retention);
        let config = &store.engine.inner.config;
        if !config.background || config.history_retention_interval_s == 0 {
            return RetentionTask::none(state);
        }
        let interval = Duration::from_secs(config.history_retention_interval_s);
        let view = store.handle();
        let thread = std::thread::Builder::new()
            .name("quiver-retention".into())
            .spawn(move || {
                let state = Arc::clone(&view.retention);
                while !state.wait(interval) {
                    if let Err(e) = view.sweep_history(true) {
                        state.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "history retention sweep stopped");
                    }
                }
            })
            .expect("spawn retention");
        RetentionTask {
            state,
            thread: Some(thread),
        }
    }
}

impl Drop for RetentionTask {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.state.stop();
            let _ = thread.join();
        }
    }
}

/// Identity of a version, to tell copies of one version apart from distinct versions.
type VersionKey<'a> = (u32, u8, u64, u64, &'a [u8]);

fn key_of<'a>(v: &Version<'a>) -> VersionKey<'a> {
    (
        v.feature,
        v.kind,
        v.event_time_ms,
        v.write_time_ms,
        v.payload,
    )
}

/// Per feature, the order below which versions are removed so that at most `keep` superseded
/// versions remain besides the newest (ties with the last one kept stay). Copies count once.
fn cuts<'a>(
    versions: impl Iterator<Item = &'a Version<'a>>,
    keep: u32,
) -> HashMap<u32, (u64, u64)> {
    let mut seen = HashSet::new();
    let mut orders: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
    for v in versions {
        if seen.insert(key_of(v)) {
            orders.entry(v.feature).or_default().push(v.order());
        }
    }
    let keep = keep as usize + 1;
    orders
        .into_iter()
        .filter(|(_, o)| o.len() > keep)
        .map(|(feature, mut o)| {
            o.sort_unstable_by(|a, b| b.cmp(a));
            (feature, o[keep - 1])
        })
        .collect()
}

impl Store {
    /// What retention has done since the store opened.
    pub fn retention_stats(&self) -> RetentionStats {
        self.retention.snapshot()
    }

    /// Runs one whole retention sweep now over every entity of every group that keeps
    /// history: the window's compaction and the version count (see
    /// [`super::HistoryPolicy`]). Writes compact by the window as they seal; this reaches
    /// entities that no longer receive writes, and is the only place versions are removed by
    /// count. Durable when it returns.
    pub fn compact_history(&self) -> Result<CompactionReport> {
        self.sweep_history(false)
    }

    /// A whole sweep, a step at a time; `pausing`: wait the configured pause between steps
    /// (and give up when the store closes).
    fn sweep_history(&self, pausing: bool) -> Result<CompactionReport> {
        let started = Instant::now();
        let config = &self.engine.inner.config;
        let (batch, pause) = (
            config.history_retention_batch as usize,
            Duration::from_millis(config.history_retention_pause_ms),
        );
        let mut cursor = RetentionCursor::START;
        let mut total = CompactionReport::default();
        loop {
            let (report, next) = self.retention_step(cursor, batch)?;
            total.add(&report);
            let Some(next) = next else { break };
            cursor = next;
            if pausing && self.retention.wait(pause) {
                return Ok(total);
            }
        }
        self.retention.swept(self.now_ms(), started.elapsed());
        Ok(total)
    }

    /// One bounded step of a sweep from `cursor`: scans at most `max_records` history records
    /// of one group and trims the entities whose heads are among them, then flushes. Returns
    /// what it did and where the sweep goes on (`None`: the sweep is complete).
    pub fn retention_step(
        &self,
        cursor: RetentionCursor,
        max_records: usize,
    ) -> Result<(CompactionReport, Option<RetentionCursor>)> {
        let groups: Vec<_> = self
            .list_groups(None)
            .into_iter()
            .filter(|g| g.history.is_some() && g.id >= cursor.group)
            .collect();
        let Some(schema) = groups.first() else {
            return Ok((CompactionReport::default(), None));
        };
        let scan = if schema.id == cursor.group {
            cursor.scan
        } else {
            ScanCursor::START
        };
        let chunk = self
            .engine
            .sweep(history_group(schema.id), scan, max_records)?;
        let mut report = CompactionReport::default();
        for (_, record) in &chunk.records {
            let Some(entity) = entity_of_head(&record.key) else {
                continue;
            };
            let _lock = self.history_lock(schema.id, entity);
            report.add(&self.retain_locked(schema, entity)?);
        }
        self.engine.flush()?;
        self.retention.add(&report);
        let next = match (chunk.next, groups.get(1)) {
            (Some(scan), _) => Some(RetentionCursor {
                group: schema.id,
                scan,
            }),
            (None, Some(later)) => Some(RetentionCursor {
                group: later.id,
                scan: ScanCursor::START,
            }),
            (None, None) => None,
        };
        Ok((report, next))
    }

    /// Enforces both of a group's bounds on one entity (caller holds its lock).
    pub(crate) fn retain_locked(
        &self,
        schema: &GroupSchema,
        entity: &[u8],
    ) -> Result<CompactionReport> {
        let mut report = CompactionReport {
            entities: 1,
            ..CompactionReport::default()
        };
        let Some(policy) = schema.history else {
            return Ok(report);
        };
        if policy.retention_s.is_some() {
            report.add(&self.compact_locked(schema, entity)?);
        }
        if let Some(keep) = policy.max_versions {
            report.add(&self.trim_locked(schema, entity, keep)?);
        }
        Ok(report)
    }

    /// Removes the versions beyond `keep` superseded ones per feature from one entity's
    /// history (caller holds its lock). See the module comment for the order of writes.
    fn trim_locked(
        &self,
        schema: &GroupSchema,
        entity: &[u8],
        keep: u32,
    ) -> Result<CompactionReport> {
        let mut report = CompactionReport::default();
        let hg = history_group(schema.id);
        let loaded = self.read_head_and_dir(hg, entity)?;
        let Some(head_record) = &loaded.head else {
            return Ok(report);
        };
        let mut head = Head::decode(&head_record.value)?;
        let mut dir = decode_dir(&loaded.dir)?;
        dir.entries.retain(|e| e.segment < head.next_segment);
        let stored: u64 =
            dir.entries.iter().map(|e| e.count as u64).sum::<u64>() + head.open.len() as u64;
        if stored <= keep as u64 + 1 {
            return Ok(report); // no feature can have more
        }
        let keys: Vec<Vec<u8>> = dir
            .entries
            .iter()
            .map(|e| segment_key(entity, e.segment))
            .collect();
        let pairs: Vec<(u32, &[u8])> = keys.iter().map(|k| (hg, &k[..])).collect();
        let records = if pairs.is_empty() {
            Vec::new()
        } else {
            self.engine.get_many(&pairs)?
        };
        let mut lists: Vec<(SegmentInfo, Vec<Version<'_>>)> = Vec::new();
        for (info, record) in dir.entries.iter().zip(&records) {
            match record {
                Some(r) => lists.push((*info, super::codec::decode_segment(&r.value)?)),
                // Left by a window compaction that a crash interrupted: its anchors answer.
                None if before(info, head.horizon_ms) => {}
                None => return Err(missing_segment(info.segment)),
            }
        }
        let cut = cuts(
            head.open.iter().chain(lists.iter().flat_map(|(_, l)| l)),
            keep,
        );
        let removed = |v: &Version<'_>| cut.get(&v.feature).is_some_and(|c| v.order() < *c);
        let mut gone: HashSet<VersionKey<'_>> = HashSet::new();
        let open_before = head.open.len();
        for v in head.open.iter().filter(|v| removed(v)) {
            gone.insert(key_of(v));
        }
        head.open.retain(|v| !removed(v));
        // Versions that segments keeping all of theirs already hold are not copied again.
        let mut held: HashSet<VersionKey<'_>> = HashSet::new();
        for (_, list) in lists.iter().filter(|(_, l)| !l.iter().any(removed)) {
            held.extend(list.iter().map(key_of));
        }
        let mut replaced = Vec::new();
        let mut written = false;
        for (info, list) in lists.iter().filter(|(_, l)| l.iter().any(removed)) {
            if dir.entries.len() + 1 > MAX_SEGMENTS {
                break; // the rest waits for the next sweep, once these are gone
            }
            gone.extend(list.iter().filter(|v| removed(v)).map(key_of));
            let kept: Vec<Version<'_>> = list
                .iter()
                .filter(|v| !removed(v) && held.insert(key_of(v)))
                .copied()
                .collect();
            if !kept.is_empty() {
                self.append_segment(hg, entity, &mut head, &mut dir, &kept)?;
                written = true;
            }
            replaced.push(info.segment);
        }
        if written || head.open.len() != open_before {
            self.commit(hg, entity, &mut head, &mut dir, None)?;
        }
        if !replaced.is_empty() {
            dir.entries.retain(|e| !replaced.contains(&e.segment));
            dir.version = dir.version.wrapping_add(1);
            self.engine.put(
                hg,
                &directory_key(entity),
                &encode_directory(&dir),
                &buffered(),
            )?;
            for segment in &replaced {
                self.engine
                    .delete(hg, &segment_key(entity, *segment), &buffered())?;
            }
        }
        report.versions_removed = gone.len() as u64;
        report.segments_removed = replaced.len() as u64;
        Ok(report)
    }
}
