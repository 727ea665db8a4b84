//! The store's history operations: appending versions on put, as-of and range reads,
//! compaction, and removal with the entity. Layout and commit rules: [`super::codec`].

use std::collections::{BTreeMap, HashMap};

use parking_lot::MutexGuard;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::codec::{
    decode_directory, decode_segment, encode_directory, encode_segment, Directory, Head,
    HeadFields, SegmentInfo, Version, KIND_ABSENT, MAX_SEGMENTS,
};
use super::keys::{
    check_entity_key, directory_key, head_key, history_group, segment_key,
    MAX_HISTORY_ENTITY_KEY_BYTES,
};
use super::resolve::{answer, AsOf, Best};
use super::{SEAL_BYTES, SEAL_VERSIONS};
use crate::config::{Durability, WriteOptions};
use crate::engine::Record;
use crate::error::{Error, Result};
use crate::feature::read::ReadPlan;
use crate::feature::row::EncodedCells;
use crate::feature::{
    EntityKey, FeatureError, FeatureRef, FeatureValue, GroupSchema, Status, Value,
    MAX_ENTITIES_PER_GET,
};
use crate::store::Store;

/// A read that raced a writer's directory change is retried this many times.
const READ_ATTEMPTS: usize = 4;
/// Most versions one history read may return.
pub const MAX_HISTORY_READ_VERSIONS: usize = 100_000;

/// One version as a history read returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub feature: String,
    pub event_time_ms: u64,
    pub write_time_ms: u64,
    /// PRESENT, NULL, or NOT_FOUND for a version that removed the feature (a whole-row
    /// replace).
    pub status: Status,
    pub value: Value,
}

/// What a retention sweep (or a step of it) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub entities: u64,
    pub segments_removed: u64,
    /// Versions removed: by the window (beyond the anchor each feature keeps) and by the
    /// version count.
    pub versions_removed: u64,
}

impl CompactionReport {
    pub fn add(&mut self, other: &CompactionReport) {
        self.entities += other.entities;
        self.segments_removed += other.segments_removed;
        self.versions_removed += other.versions_removed;
    }
}

/// An entity's head and directory records, as read under its lock before a put (or by a
/// read).
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(super) head: Option<Record>,
    pub(super) dir: Option<Record>,
}

pub(super) fn buffered() -> WriteOptions {
    WriteOptions {
        durability: Some(Durability::Buffered),
        ttl_s: None,
    }
}

fn with(durability: Option<Durability>) -> WriteOptions {
    WriteOptions {
        durability,
        ttl_s: None,
    }
}

fn open_bytes(open: &[Version<'_>]) -> usize {
    open.iter().map(|v| v.payload.len() + 12).sum()
}

/// Whether a segment lies wholly before `horizon_ms` on both time axes.
pub(super) fn before(seg: &SegmentInfo, horizon_ms: u64) -> bool {
    seg.max_event_ms < horizon_ms && seg.max_write_ms < horizon_ms
}

pub(super) fn decode_dir(record: &Option<Record>) -> Result<Directory> {
    Ok(match record {
        Some(r) => decode_directory(&r.value)?,
        None => Directory::default(),
    })
}

/// An entity's history as one read saw it: the head and its committed segments.
pub(super) struct Seen<'a> {
    pub(super) head: Head<'a>,
    pub(super) committed: Vec<SegmentInfo>,
}

impl Store {
    pub(crate) fn history_lock(&self, group: u32, entity: &[u8]) -> MutexGuard<'_, ()> {
        let slot = xxh3_64_with_seed(entity, group as u64) as usize % self.history_locks.len();
        self.history_locks[slot].lock()
    }

    pub(super) fn read_head_and_dir(&self, hg: u32, entity: &[u8]) -> Result<Loaded> {
        let (hk, dk) = (head_key(entity), directory_key(entity));
        let mut records = self.engine.get_many(&[(hg, &hk[..]), (hg, &dk[..])])?;
        let dir = records.pop().expect("two answers");
        let head = records.pop().expect("two answers");
        Ok(Loaded { head, dir })
    }

    /// Reads an entity's history state before a put (caller holds its lock), cleaning up what
    /// an interrupted delete left, and refuses the put when the history is full.
    pub(crate) fn prepare_history(
        &self,
        schema: &GroupSchema,
        entity: &[u8],
        new_versions: usize,
    ) -> Result<Loaded> {
        check_entity_key(&schema.name, entity)?;
        let hg = history_group(schema.id);
        let mut loaded = self.read_head_and_dir(hg, entity)?;
        if loaded.head.is_none() && loaded.dir.is_some() {
            self.remove_history_records(hg, entity, &loaded, None, None)?;
            loaded.dir = None;
        }
        let Some(head) = &loaded.head else {
            return Ok(loaded);
        };
        let head = Head::decode(&head.value)?;
        let dir = decode_dir(&loaded.dir)?;
        let committed = dir
            .entries
            .iter()
            .filter(|e| e.segment < head.next_segment)
            .count();
        let seals = head.open.len() + new_versions >= SEAL_VERSIONS;
        if seals && committed + 2 > MAX_SEGMENTS {
            drop(head);
            self.retain_locked(schema, entity)?;
            let reloaded = self.read_head_and_dir(hg, entity)?;
            let dir = decode_dir(&reloaded.dir)?;
            if dir.entries.len() + 2 > MAX_SEGMENTS {
                return Err(FeatureError::HistoryFull {
                    group: schema.name.clone(),
                    max: MAX_SEGMENTS,
                }
                .into());
            }
            return Ok(reloaded);
        }
        Ok(loaded)
    }

    /// Appends a put's values, and an absent version for each feature a whole-row replace
    /// removed, to the entity's history (caller holds its lock; `loaded` from
    /// [`Store::prepare_history`]). The head is written last, with the put's durability: it
    /// commits the segment and directory written before it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append_history(
        &self,
        schema: &GroupSchema,
        entity: &[u8],
        loaded: Loaded,
        cells: &EncodedCells,
        removed: &[u32],
        write_time_ms: u64,
        durability: Option<Durability>,
    ) -> Result<()> {
        let hg = history_group(schema.id);
        let mut head = match &loaded.head {
            Some(r) => Head::decode(&r.value)?,
            None => Head::empty(),
        };
        let event_time_ms = cells.cells().map(|c| c.event_time_ms).next().unwrap_or(0);
        head.open.extend(cells.cells().map(|c| Version {
            feature: c.id,
            kind: c.kind,
            event_time_ms: c.event_time_ms,
            write_time_ms,
            payload: c.payload,
        }));
        head.open.extend(removed.iter().map(|&feature| Version {
            feature,
            kind: KIND_ABSENT,
            event_time_ms,
            write_time_ms,
            payload: &[],
        }));
        if head.open.len() < SEAL_VERSIONS && open_bytes(&head.open) < SEAL_BYTES {
            self.engine
                .put(hg, &head_key(entity), &head.encode(), &with(durability))?;
            return Ok(());
        }
        let mut dir = decode_dir(&loaded.dir)?;
        dir.entries.retain(|e| e.segment < head.next_segment);
        let open = std::mem::take(&mut head.open);
        self.append_segment(hg, entity, &mut head, &mut dir, &open)?;
        let horizon = schema.history.map_or(0, |p| p.horizon_ms(self.now_ms()));
        let (compacted, _) = self.compact_into(hg, entity, &mut head, &mut dir, horizon)?;
        self.commit(hg, entity, &mut head, &mut dir, durability)?;
        self.finish_compaction(hg, entity, &mut dir, &compacted)
    }

    /// Writes `versions` as the entity's next segment and lists it in `dir`. Readers see it
    /// once [`Store::commit`] writes the directory and the head.
    pub(super) fn append_segment(
        &self,
        hg: u32,
        entity: &[u8],
        head: &mut Head<'_>,
        dir: &mut Directory,
        versions: &[Version<'_>],
    ) -> Result<()> {
        let n = head.next_segment;
        self.engine.put(
            hg,
            &segment_key(entity, n),
            &encode_segment(versions),
            &buffered(),
        )?;
        dir.entries.push(SegmentInfo::of(n, versions));
        head.next_segment = n + 1;
        Ok(())
    }

    /// Writes the directory, then the head that commits it.
    pub(super) fn commit(
        &self,
        hg: u32,
        entity: &[u8],
        head: &mut Head<'_>,
        dir: &mut Directory,
        durability: Option<Durability>,
    ) -> Result<()> {
        dir.version = dir.version.wrapping_add(1);
        head.directory_version = dir.version;
        self.engine.put(
            hg,
            &directory_key(entity),
            &encode_directory(dir),
            &buffered(),
        )?;
        self.engine
            .put(hg, &head_key(entity), &head.encode(), &with(durability))?;
        Ok(())
    }

    /// Merges the committed segments that lie wholly before `horizon_ms` into one segment of
    /// anchors (per feature, the newest of their versions) when there are two or more. The new
    /// segment is written and listed; the old ones stay listed until the head committing the
    /// anchors is written ([`Store::finish_compaction`] removes them). Returns the old ones
    /// and the number of anchors.
    fn compact_into(
        &self,
        hg: u32,
        entity: &[u8],
        head: &mut Head<'_>,
        dir: &mut Directory,
        horizon_ms: u64,
    ) -> Result<(Vec<SegmentInfo>, usize)> {
        let old: Vec<SegmentInfo> = dir
            .entries
            .iter()
            .filter(|e| e.segment < head.next_segment && before(e, horizon_ms))
            .copied()
            .collect();
        if old.len() < 2 {
            return Ok((Vec::new(), 0));
        }
        let keys: Vec<Vec<u8>> = old.iter().map(|e| segment_key(entity, e.segment)).collect();
        let pairs: Vec<(u32, &[u8])> = keys.iter().map(|k| (hg, &k[..])).collect();
        let records = self.engine.get_many(&pairs)?;
        let mut anchors: BTreeMap<u32, Version<'_>> = BTreeMap::new();
        for (info, record) in old.iter().zip(&records) {
            let Some(record) = record else {
                if before(info, head.horizon_ms) {
                    continue; // deleted by an earlier compaction that a crash interrupted
                }
                return Err(missing_segment(info.segment));
            };
            for v in decode_segment(&record.value)? {
                let slot = anchors.entry(v.feature).or_insert(v);
                if v.order() >= slot.order() {
                    *slot = v;
                }
            }
        }
        let anchors: Vec<Version<'_>> = anchors.into_values().collect();
        if !anchors.is_empty() {
            self.append_segment(hg, entity, head, dir, &anchors)?;
        }
        head.horizon_ms = head.horizon_ms.max(horizon_ms);
        Ok((old, anchors.len()))
    }

    /// After the head committed a compaction: deletes the compacted segments, then lists
    /// them no more. A crash in between leaves listed segments that are missing, which
    /// readers skip because they lie before the horizon.
    fn finish_compaction(
        &self,
        hg: u32,
        entity: &[u8],
        dir: &mut Directory,
        compacted: &[SegmentInfo],
    ) -> Result<()> {
        if compacted.is_empty() {
            return Ok(());
        }
        for seg in compacted {
            self.engine
                .delete(hg, &segment_key(entity, seg.segment), &buffered())?;
        }
        dir.entries
            .retain(|e| !compacted.iter().any(|c| c.segment == e.segment));
        dir.version = dir.version.wrapping_add(1);
        self.engine.put(
            hg,
            &directory_key(entity),
            &encode_directory(dir),
            &buffered(),
        )?;
        Ok(())
    }

    /// Compacts one entity's history by its window now (caller holds its lock).
    pub(super) fn compact_locked(
        &self,
        schema: &GroupSchema,
        entity: &[u8],
    ) -> Result<CompactionReport> {
        let mut report = CompactionReport::default();
        let Some(policy) = schema.history else {
            return Ok(report);
        };
        let hg = history_group(schema.id);
        let loaded = self.read_head_and_dir(hg, entity)?;
        let Some(head_record) = &loaded.head else {
            return Ok(report);
        };
        let mut head = Head::decode(&head_record.value)?;
        let mut dir = decode_dir(&loaded.dir)?;
        dir.entries.retain(|e| e.segment < head.next_segment);
        let horizon = policy.horizon_ms(self.now_ms());
        let (compacted, anchors) = self.compact_into(hg, entity, &mut head, &mut dir, horizon)?;
        if compacted.is_empty() {
            return Ok(report);
        }
        self.commit(hg, entity, &mut head, &mut dir, None)?;
        self.finish_compaction(hg, entity, &mut dir, &compacted)?;
        report.segments_removed = compacted.len() as u64;
        report.versions_removed =
            compacted.iter().map(|s| s.count as u64).sum::<u64>() - anchors as u64;
        Ok(report)
    }

    /// Removes an entity's whole history (caller holds its lock): the head first, so that
    /// readers see no history at once, then the directory's segments and the directory.
    pub(crate) fn delete_history(
        &self,
        group: u32,
        entity: &[u8],
        durability: Option<Durability>,
    ) -> Result<()> {
        if entity.len() > MAX_HISTORY_ENTITY_KEY_BYTES {
            return Ok(());
        }
        let hg = history_group(group);
        let loaded = self.read_head_and_dir(hg, entity)?;
        let next = match &loaded.head {
            Some(r) => Some(Head::decode(&r.value)?.next_segment),
            None => None,
        };
        self.remove_history_records(hg, entity, &loaded, next, durability)
    }

    /// Deletes the head with `durability` (that is the delete's commit point: without a head
    /// the rest is ignored), then the segments and the directory.
    fn remove_history_records(
        &self,
        hg: u32,
        entity: &[u8],
        loaded: &Loaded,
        next_segment: Option<u32>,
        durability: Option<Durability>,
    ) -> Result<()> {
        if loaded.head.is_some() {
            self.engine
                .delete(hg, &head_key(entity), &with(durability))?;
        }
        let dir = &loaded.dir;
        let mut segments: Vec<u32> = decode_dir(dir)?.entries.iter().map(|e| e.segment).collect();
        // A seal or compaction that a crash interrupted may have left uncommitted segments.
        if let Some(next) = next_segment {
            segments.extend([next, next.saturating_add(1)]);
        }
        for segment in segments {
            self.engine
                .delete(hg, &segment_key(entity, segment), &buffered())?;
        }
        if dir.is_some() {
            self.engine
                .delete(hg, &directory_key(entity), &buffered())?;
        }
        Ok(())
    }

    /// Reads features of one entity as of `at` (see [`AsOf`]), with the statuses of an
    /// online read. Every group must keep history.
    pub fn get_as_of(
        &self,
        key: &EntityKey,
        features: &[FeatureRef],
        at: AsOf,
    ) -> Result<Vec<FeatureValue>> {
        let mut out = self.get_many_as_of(&[(key.clone(), at)], features)?;
        Ok(out.pop().expect("one answer per row"))
    }

    /// Reads the same features for many (entity, time) rows: every head and directory in one
    /// engine batch, then the segments they call for in a second one. Rows of one entity share
    /// the reads.
    pub fn get_many_as_of(
        &self,
        rows: &[(EntityKey, AsOf)],
        features: &[FeatureRef],
    ) -> Result<Vec<Vec<FeatureValue>>> {
        if rows.len() > MAX_ENTITIES_PER_GET {
            return Err(FeatureError::TooManyItems {
                what: "rows in one as-of read",
                count: rows.len(),
                max: MAX_ENTITIES_PER_GET,
            }
            .into());
        }
        let Some((first, _)) = rows.first() else {
            return Ok(Vec::new());
        };
        let plan = ReadPlan::new(&self.registry.read(), first.key_type(), features)?;
        let now = self.now_ms();
        for group in plan.groups() {
            let policy = group.history.ok_or_else(|| FeatureError::NoHistory {
                group: group.name.clone(),
            })?;
            for (_, at) in rows {
                check_horizon(group, at, policy.horizon_ms(now))?;
            }
        }
        let mut entity_index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut row_entity = Vec::with_capacity(rows.len());
        for (key, _) in rows {
            let bytes = self.checked_key(&plan, key)?;
            check_entity_key(&plan.groups()[0].name, &bytes)?;
            let next = entity_index.len();
            row_entity.push(*entity_index.entry(bytes.into_owned()).or_insert(next));
        }
        let mut entities = vec![Vec::new(); entity_index.len()];
        for (bytes, i) in entity_index {
            entities[i] = bytes;
        }
        for _ in 0..READ_ATTEMPTS {
            if let Some(out) = self.try_as_of(&plan, &entities, &row_entity, rows)? {
                return Ok(out);
            }
        }
        Err(Error::Moved {
            attempts: READ_ATTEMPTS,
        })
    }

    /// One attempt of [`Store::get_many_as_of`]; `None` when it raced a writer.
    fn try_as_of(
        &self,
        plan: &ReadPlan,
        entities: &[Vec<u8>],
        row_entity: &[usize],
        rows: &[(EntityKey, AsOf)],
    ) -> Result<Option<Vec<Vec<FeatureValue>>>> {
        let groups = plan.groups();
        let pair = |g: usize, e: usize| g * entities.len() + e;
        let loaded = self.load_pairs(plan, entities)?;
        let seen: Vec<Option<SeenState<'_>>> =
            loaded.iter().map(|l| l.seen()).collect::<Result<_>>()?;
        if seen.iter().flatten().any(|s| s.stale) {
            return Ok(None);
        }
        // Which segments each pair needs, over all its rows.
        let mut needed: BTreeMap<(usize, u32), SegmentInfo> = BTreeMap::new();
        for (g, group) in groups.iter().enumerate() {
            let ids = plan.wanted_ids(g);
            for ((_, at), &e) in rows.iter().zip(row_entity) {
                let Some(s) = &seen[pair(g, e)] else { continue };
                check_horizon(group, at, s.seen.head.horizon_ms)?;
                let mut best = Best::new(ids.clone());
                best.offer(&s.seen.head.open, at);
                let floor = best.floor_ms();
                for seg in s
                    .seen
                    .committed
                    .iter()
                    .filter(|seg| at.may_need(seg, floor))
                {
                    needed.insert((pair(g, e), seg.segment), *seg);
                }
            }
        }
        let keys: Vec<(u32, Vec<u8>)> = needed
            .keys()
            .map(|&(p, seg)| {
                let g = p / entities.len();
                let e = p % entities.len();
                (history_group(groups[g].id), segment_key(&entities[e], seg))
            })
            .collect();
        let pairs: Vec<(u32, &[u8])> = keys.iter().map(|(g, k)| (*g, &k[..])).collect();
        let records = if pairs.is_empty() {
            Vec::new()
        } else {
            self.engine.get_many(&pairs)?
        };
        let mut segments: HashMap<(usize, u32), Vec<Version<'_>>> = HashMap::new();
        for ((&(p, seg), info), record) in needed.iter().zip(&records) {
            match record {
                Some(r) => {
                    segments.insert((p, seg), decode_segment(&r.value)?);
                }
                None => {
                    let horizon = seen[p].as_ref().map_or(0, |s| s.seen.head.horizon_ms);
                    if !before(info, horizon) {
                        return Ok(None); // a compaction removed it after we read the head
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for ((_, at), &e) in rows.iter().zip(row_entity) {
            let mut answers = vec![FeatureValue::not_found(); plan.slots()];
            for (g, group) in groups.iter().enumerate() {
                let Some(s) = &seen[pair(g, e)] else { continue };
                let mut best = Best::new(plan.wanted_ids(g));
                best.offer(&s.seen.head.open, at);
                let floor = best.floor_ms();
                for seg in s
                    .seen
                    .committed
                    .iter()
                    .filter(|seg| at.may_need(seg, floor))
                {
                    if let Some(list) = segments.get(&(pair(g, e), seg.segment)) {
                        best.offer(list, at);
                    }
                }
                for (slot, id, ty) in plan.wanted(g) {
                    answers[slot] = answer(best.get(id), id, ty, group.ttl_s, at)?;
                }
            }
            out.push(answers);
        }
        Ok(Some(out))
    }

    /// Heads and directories of every (group, entity) pair, in one engine batch.
    pub(super) fn load_pairs(&self, plan: &ReadPlan, entities: &[Vec<u8>]) -> Result<Vec<Loaded>> {
        let mut keys: Vec<(u32, Vec<u8>)> =
            Vec::with_capacity(plan.groups().len() * entities.len() * 2);
        for group in plan.groups() {
            let hg = history_group(group.id);
            for e in entities {
                keys.push((hg, head_key(e)));
                keys.push((hg, directory_key(e)));
            }
        }
        let pairs: Vec<(u32, &[u8])> = keys.iter().map(|(g, k)| (*g, &k[..])).collect();
        let mut records = self.engine.get_many(&pairs)?.into_iter();
        let mut out = Vec::with_capacity(keys.len() / 2);
        while let (Some(head), Some(dir)) = (records.next(), records.next()) {
            out.push(Loaded { head, dir });
        }
        Ok(out)
    }

    /// Every version of `features` of one entity with an event time in `from_ms..=to_ms`
    /// (and, when given, written by `known_at_ms`), by event time, then write time. The range
    /// starts no earlier than the group's retention window.
    pub fn history(
        &self,
        group: &str,
        key: &EntityKey,
        features: &[&str],
        from_ms: u64,
        to_ms: u64,
        known_at_ms: Option<u64>,
    ) -> Result<Vec<HistoryEntry>> {
        let refs: Vec<FeatureRef> = features
            .iter()
            .map(|f| FeatureRef::new(group, *f))
            .collect();
        let plan = ReadPlan::new(&self.registry.read(), key.key_type(), &refs)?;
        let Some(schema) = plan.groups().first().cloned() else {
            return Ok(Vec::new());
        };
        let policy = schema.history.ok_or_else(|| FeatureError::NoHistory {
            group: schema.name.clone(),
        })?;
        // Versions before the retention window are not returned (compaction may have removed
        // some of them); every version inside it is.
        let from_ms = from_ms.max(policy.horizon_ms(self.now_ms()));
        let entity = self.checked_key(&plan, key)?.into_owned();
        check_entity_key(&schema.name, &entity)?;
        for _ in 0..READ_ATTEMPTS {
            if let Some(out) =
                self.try_history(&plan, &schema, &entity, from_ms..=to_ms, known_at_ms)?
            {
                return Ok(out);
            }
        }
        Err(Error::Moved {
            attempts: READ_ATTEMPTS,
        })
    }

    fn try_history(
        &self,
        plan: &ReadPlan,
        schema: &GroupSchema,
        entity: &[u8],
        range: std::ops::RangeInclusive<u64>,
        known_at_ms: Option<u64>,
    ) -> Result<Option<Vec<HistoryEntry>>> {
        let loaded = self
            .load_pairs(plan, std::slice::from_ref(&entity.to_vec()))?
            .pop()
            .expect("one pair");
        let Some(seen) = loaded.seen()? else {
            return Ok(Some(Vec::new()));
        };
        if seen.stale {
            return Ok(None);
        }
        let range = (*range.start()).max(seen.seen.head.horizon_ms)..=*range.end();
        let hg = history_group(schema.id);
        let overlapping: Vec<SegmentInfo> = seen
            .seen
            .committed
            .iter()
            .filter(|s| s.min_event_ms <= *range.end() && s.max_event_ms >= *range.start())
            .copied()
            .collect();
        let keys: Vec<Vec<u8>> = overlapping
            .iter()
            .map(|s| segment_key(entity, s.segment))
            .collect();
        let pairs: Vec<(u32, &[u8])> = keys.iter().map(|k| (hg, &k[..])).collect();
        let records = if pairs.is_empty() {
            Vec::new()
        } else {
            self.engine.get_many(&pairs)?
        };
        let mut versions: Vec<Version<'_>> = seen.seen.head.open.clone();
        for (info, record) in overlapping.iter().zip(&records) {
            match record {
                Some(r) => versions.extend(decode_segment(&r.value)?),
                None if before(info, seen.seen.head.horizon_ms) => {}
                None => return Ok(None),
            }
        }
        let ids = plan.wanted_ids(0);
        versions.retain(|v| {
            range.contains(&v.event_time_ms)
                && known_at_ms.is_none_or(|k| v.write_time_ms <= k)
                && ids.binary_search(&v.feature).is_ok()
        });
        versions.sort_by_key(|v| (v.order(), v.feature));
        versions.dedup();
        if versions.len() > MAX_HISTORY_READ_VERSIONS {
            return Err(FeatureError::TooManyItems {
                what: "versions in one history read (narrow the time range)",
                count: versions.len(),
                max: MAX_HISTORY_READ_VERSIONS,
            }
            .into());
        }
        versions
            .iter()
            .map(|v| history_entry(schema, v))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

pub(super) fn history_entry(schema: &GroupSchema, v: &Version<'_>) -> Result<HistoryEntry> {
    let feature = schema.feature_by_id(v.feature).ok_or_else(|| {
        FeatureError::corrupt("history", format!("unknown feature id {}", v.feature))
    })?;
    let at = AsOf::event_time(v.event_time_ms);
    let value = answer(Some(v), v.feature, feature.ty, None, &at)?;
    Ok(HistoryEntry {
        feature: feature.name.clone(),
        event_time_ms: v.event_time_ms,
        write_time_ms: v.write_time_ms,
        status: value.status,
        value: value.value,
    })
}

pub(super) fn missing_segment(segment: u32) -> Error {
    FeatureError::corrupt(
        "history",
        format!("segment {segment} is listed in the directory but missing"),
    )
    .into()
}

/// Refuses a read whose as-of or known-at time lies before `horizon_ms`.
pub(super) fn check_horizon(group: &GroupSchema, at: &AsOf, horizon_ms: u64) -> Result<()> {
    for (what, time_ms) in at.times() {
        if time_ms < horizon_ms {
            return Err(FeatureError::OutsideHistory {
                group: group.name.clone(),
                what,
                time_ms,
                horizon_ms,
            }
            .into());
        }
    }
    Ok(())
}

/// An entity's history as decoded from its head and directory records.
pub(super) struct SeenState<'a> {
    pub(super) seen: Seen<'a>,
    /// The directory is older than the head: the read raced a writer.
    pub(super) stale: bool,
}

/// What the head and directory records say of an entity's history before its versions are
/// decoded: the head's fixed fields, the committed segments, and whether the read raced a
/// writer.
pub(super) struct Outline {
    pub(super) head: HeadFields,
    pub(super) committed: Vec<SegmentInfo>,
    /// The directory is older than the head: the read raced a writer.
    pub(super) stale: bool,
}

impl Loaded {
    /// `None` when the entity has no history (no head: a directory without one is a leftover
    /// of an interrupted delete and is ignored).
    pub(super) fn outline(&self) -> Result<Option<Outline>> {
        let Some(head) = &self.head else {
            return Ok(None);
        };
        let head = HeadFields::decode(&head.value)?;
        let dir = decode_dir(&self.dir)?;
        let stale = dir.version < head.directory_version && self.dir.is_some()
            || (self.dir.is_none() && head.directory_version != 0);
        let committed = dir
            .entries
            .into_iter()
            .filter(|e| e.segment < head.next_segment)
            .collect();
        Ok(Some(Outline {
            head,
            committed,
            stale,
        }))
    }

    /// The outline and the head's open versions; `None` as for [`Loaded::outline`].
    pub(super) fn seen(&self) -> Result<Option<SeenState<'_>>> {
        let (Some(record), Some(outline)) = (&self.head, self.outline()?) else {
            return Ok(None);
        };
        Ok(Some(SeenState {
            seen: Seen {
                head: Head::decode(&record.value)?,
                committed: outline.committed,
            },
            stale: outline.stale,
        }))
    }
}
