//! Paged history reads: a long history handed out a bounded page at a time, each page resuming
//! just after the last version of the page before (the protocol's HISTORY operation and the
//! CLI's `history` and `export --history` read this way).
//!
//! A page reads the entity's head and directory, then only as many segments as it needs: the
//! segments overlapping the range are read in order of their oldest event time, and reading
//! stops once the versions found before the next unread segment's oldest event time fill the
//! page (no unread segment can hold a version that sorts before them).

use std::cmp::Ordering;

use super::codec::{decode_segment, SegmentInfo, Version};
use super::keys::{check_entity_key, entity_of_head, history_group, segment_key};
use super::store_ops::{before, history_entry, HistoryEntry, MAX_HISTORY_READ_VERSIONS};
use crate::engine::ScanCursor;
use crate::error::{Error, Result};
use crate::feature::read::ReadPlan;
use crate::feature::{EntityKey, FeatureError, FeatureRef, GroupSchema, MAX_SCAN_ITEMS};
use crate::store::Store;

/// A page that raced a writer's directory change is retried this many times.
const PAGE_ATTEMPTS: usize = 4;
/// Segments read per engine batch while a page fills.
const SEGMENTS_PER_BATCH: usize = 16;

/// Where a paged history read resumes: just after the `skip`-th version with exactly this
/// event time, write time and feature (versions sort by event time, write time, feature id,
/// then their stored bytes, so the position is stable while nothing is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub event_time_ms: u64,
    pub write_time_ms: u64,
    pub feature: u32,
    pub skip: u32,
}

impl HistoryCursor {
    fn key(&self) -> (u64, u64, u32) {
        (self.event_time_ms, self.write_time_ms, self.feature)
    }
}

/// Which versions a history read returns: event times in `from_ms..=to_ms` and, when
/// `known_at_ms` is set, written at or before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRange {
    pub from_ms: u64,
    pub to_ms: u64,
    pub known_at_ms: Option<u64>,
}

impl HistoryRange {
    /// Every version in the retention window.
    pub fn all() -> HistoryRange {
        HistoryRange {
            from_ms: 0,
            to_ms: u64::MAX,
            known_at_ms: None,
        }
    }
}

/// One page of a history read, in history order (event time, then write time).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// `positions[i]` resumes just after `entries[i]`.
    positions: Vec<HistoryCursor>,
    more: bool,
}

impl HistoryPage {
    /// Where the next page starts, or `None` when this page ends the range.
    pub fn next(&self) -> Option<HistoryCursor> {
        if !self.more {
            return None;
        }
        let last = self.positions.last().copied();
        assert!(last.is_some(), "a page with more to come holds a version");
        last
    }

    /// Keeps the first `n` entries (at least one); the rest come with the next page.
    pub fn truncate(&mut self, n: usize) {
        assert!(n >= 1, "a page keeps at least one version");
        if n < self.entries.len() {
            self.entries.truncate(n);
            self.positions.truncate(n);
            self.more = true;
        }
    }
}

/// A version copied out of the record it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    event_time_ms: u64,
    write_time_ms: u64,
    feature: u32,
    kind: u8,
    payload: Vec<u8>,
}

impl Found {
    fn of(v: &Version<'_>) -> Found {
        Found {
            event_time_ms: v.event_time_ms,
            write_time_ms: v.write_time_ms,
            feature: v.feature,
            kind: v.kind,
            payload: v.payload.to_vec(),
        }
    }

    fn key(&self) -> (u64, u64, u32) {
        (self.event_time_ms, self.write_time_ms, self.feature)
    }

    fn order(&self, other: &Found) -> Ordering {
        (self.key(), self.kind, &self.payload).cmp(&(other.key(), other.kind, &other.payload))
    }

    fn version(&self) -> Version<'_> {
        Version {
            feature: self.feature,
            kind: self.kind,
            event_time_ms: self.event_time_ms,
            write_time_ms: self.write_time_ms,
            payload: &self.payload,
        }
    }
}

/// What one page keeps of the versions it reads.
#[derive(Clone, Copy)]
struct Filter<'p> {
    ids: &'p [u32],
    range: HistoryRange,
    after: Option<HistoryCursor>,
}

impl Filter<'_> {
    fn keeps(&self, v: &Version<'_>) -> bool {
        (self.range.from_ms..=self.range.to_ms).contains(&v.event_time_ms)
            && self.range.known_at_ms.is_none_or(|k| v.write_time_ms <= k)
            && self.ids.binary_search(&v.feature).is_ok()
            && self
                .after
                .is_none_or(|c| (v.event_time_ms, v.write_time_ms, v.feature) >= c.key())
    }

    fn may_hold(&self, seg: &SegmentInfo) -> bool {
        seg.max_event_ms >= self.range.from_ms
            && seg.min_event_ms <= self.range.to_ms
            && self.range.known_at_ms.is_none_or(|k| seg.min_write_ms <= k)
    }
}

impl Store {
    /// One page of [`Store::history`]: at most `max_versions` (1..=100,000) versions of
    /// `features` of one entity, starting after `after` (`None`: at the start of the range).
    /// The range starts no earlier than the group's retention window.
    pub fn history_page(
        &self,
        group: &str,
        key: &EntityKey,
        features: &[&str],
        range: HistoryRange,
        after: Option<HistoryCursor>,
        max_versions: usize,
    ) -> Result<HistoryPage> {
        if max_versions == 0 || max_versions > MAX_HISTORY_READ_VERSIONS {
            return Err(FeatureError::TooManyItems {
                what: "versions in one history page (1 or more)",
                count: max_versions,
                max: MAX_HISTORY_READ_VERSIONS,
            }
            .into());
        }
        let refs: Vec<FeatureRef> = features
            .iter()
            .map(|f| FeatureRef::new(group, *f))
            .collect();
        let plan = ReadPlan::new(&self.registry.read(), key.key_type(), &refs)?;
        let Some(schema) = plan.groups().first().cloned() else {
            return Ok(HistoryPage {
                entries: Vec::new(),
                positions: Vec::new(),
                more: false,
            });
        };
        let policy = schema.history.ok_or_else(|| FeatureError::NoHistory {
            group: schema.name.clone(),
        })?;
        let range = HistoryRange {
            from_ms: range.from_ms.max(policy.horizon_ms(self.now_ms())),
            ..range
        };
        let entity = self.checked_key(&plan, key)?.into_owned();
        check_entity_key(&schema.name, &entity)?;
        let ids = plan.wanted_ids(0);
        let filter = Filter {
            ids: &ids,
            range,
            after,
        };
        for _ in 0..PAGE_ATTEMPTS {
            if let Some(page) = self.try_page(&plan, &schema, &entity, &filter, max_versions)? {
                return Ok(page);
            }
        }
        Err(Error::Moved {
            attempts: PAGE_ATTEMPTS,
        })
    }

    /// One attempt of [`Store::history_page`]; `None` when it raced a writer.
    fn try_page(
        &self,
        plan: &ReadPlan,
        schema: &GroupSchema,
        entity: &[u8],
        filter: &Filter<'_>,
        max_versions: usize,
    ) -> Result<Option<HistoryPage>> {
        let loaded = self
            .load_pairs(plan, std::slice::from_ref(&entity.to_vec()))?
            .pop()
            .expect("one pair");
        let Some(seen) = loaded.seen()? else {
            let page = build_page(schema, &mut Vec::new(), filter.after, None, max_versions)?;
            return Ok(Some(page));
        };
        if seen.stale {
            return Ok(None);
        }
        let horizon_ms = seen.seen.head.horizon_ms;
        let filter = Filter {
            range: HistoryRange {
                from_ms: filter.range.from_ms.max(horizon_ms),
                ..filter.range
            },
            ..*filter
        };
        let mut found: Vec<Found> = seen
            .seen
            .head
            .open
            .iter()
            .filter(|v| filter.keeps(v))
            .map(Found::of)
            .collect();
        let mut segments: Vec<SegmentInfo> = seen
            .seen
            .committed
            .iter()
            .filter(|s| filter.may_hold(s))
            .copied()
            .collect();
        segments.sort_by_key(|s| (s.min_event_ms, s.segment));
        let hg = history_group(schema.id);
        let skip = filter.after.map_or(0, |c| c.skip as usize);
        let mut read = 0;
        loop {
            let bound = segments.get(read).map(|s| s.min_event_ms);
            let settled = found
                .iter()
                .filter(|f| bound.is_none_or(|b| f.event_time_ms < b))
                .count();
            if bound.is_none() || settled >= max_versions + skip {
                let page = build_page(schema, &mut found, filter.after, bound, max_versions)?;
                // Short only when duplicates (left by an interrupted compaction) were dropped.
                if bound.is_none() || page.entries.len() >= max_versions {
                    return Ok(Some(page));
                }
            }
            let batch = &segments[read..(read + SEGMENTS_PER_BATCH).min(segments.len())];
            let keys: Vec<Vec<u8>> = batch
                .iter()
                .map(|s| segment_key(entity, s.segment))
                .collect();
            let pairs: Vec<(u32, &[u8])> = keys.iter().map(|k| (hg, &k[..])).collect();
            for (info, record) in batch.iter().zip(self.engine.get_many(&pairs)?) {
                match record {
                    Some(r) => found.extend(
                        decode_segment(&r.value)?
                            .iter()
                            .filter(|v| filter.keeps(v))
                            .map(Found::of),
                    ),
                    None if before(info, horizon_ms) => {}
                    None => return Ok(None), // a compaction removed it after we read the head
                }
            }
            read += batch.len();
        }
    }
}

/// Orders what a page found, drops what the cursor already handed out, and keeps the versions
/// that sort before `bound` (the oldest event time of the segments left unread), at most
/// `max_versions` of them.
fn build_page(
    schema: &GroupSchema,
    found: &mut Vec<Found>,
    after: Option<HistoryCursor>,
    bound: Option<u64>,
    max_versions: usize,
) -> Result<HistoryPage> {
    found.sort_by(Found::order);
    found.dedup();
    let mut run = 0u32;
    let mut run_key = after.map(|c| c.key());
    if let Some(c) = after {
        let at_cursor = found.iter().take_while(|f| f.key() == c.key()).count();
        found.drain(..at_cursor.min(c.skip as usize));
        run = c.skip;
    }
    let settled = found
        .iter()
        .take_while(|f| bound.is_none_or(|b| f.event_time_ms < b))
        .count();
    let keep = settled.min(max_versions);
    let mut entries = Vec::with_capacity(keep);
    let mut positions = Vec::with_capacity(keep);
    for f in &found[..keep] {
        if run_key == Some(f.key()) {
            run += 1;
        } else {
            run_key = Some(f.key());
            run = 1;
        }
        entries.push(history_entry(schema, &f.version())?);
        positions.push(HistoryCursor {
            event_time_ms: f.event_time_ms,
            write_time_ms: f.write_time_ms,
            feature: f.feature,
            skip: run,
        });
    }
    Ok(HistoryPage {
        entries,
        positions,
        more: keep > 0 && (keep < found.len() || bound.is_some()),
    })
}

impl Store {
    /// One chunk of the entities of `group` that have history (a scan of up to `max_records`
    /// history records from `cursor`; only heads name an entity, so a chunk may hold fewer
    /// keys, or none while the scan goes on). The returned cursor is `None` at the end. Like
    /// [`Store::scan`], entities written during the scan may or may not be listed.
    pub fn history_keys(
        &self,
        group: &str,
        cursor: ScanCursor,
        max_records: usize,
    ) -> Result<(Vec<EntityKey>, Option<ScanCursor>)> {
        if max_records == 0 || max_records > MAX_SCAN_ITEMS {
            return Err(FeatureError::TooManyItems {
                what: "records in one history key scan (1 or more)",
                count: max_records,
                max: MAX_SCAN_ITEMS,
            }
            .into());
        }
        let schema = self.describe_group(group)?;
        if schema.history.is_none() {
            return Err(FeatureError::NoHistory {
                group: schema.name.clone(),
            }
            .into());
        }
        let chunk = self
            .engine
            .scan(history_group(schema.id), cursor, max_records)?;
        let keys = chunk
            .records
            .iter()
            .filter_map(|(_, record)| entity_of_head(&record.key))
            .map(|entity| EntityKey::from_key_bytes(schema.key_type, entity))
            .collect::<std::result::Result<Vec<_>, FeatureError>>()?;
        Ok((keys, chunk.next))
    }
}
