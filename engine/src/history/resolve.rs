//! Which stored version answers an as-of read. Pure: versions in, feature values out.

use super::codec::{SegmentInfo, Version, KIND_ABSENT};
use crate::feature::row::{RawCell, KIND_NULL};
use crate::feature::{FeatureError, FeatureType, FeatureValue, Status, Value};

/// When a read looks, on both time axes.
///
/// A version is visible when its event time is at or before `event_limit_ms` and it was
/// written at or before `known_at_ms` (when set). Among the visible versions of a feature the
/// one with the newest event time wins, and on equal event times the later write (a
/// correction). A group's TTL (max age) counts back from `ttl_reference_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOf {
    pub event_limit_ms: u64,
    pub known_at_ms: Option<u64>,
    pub ttl_reference_ms: u64,
}

impl AsOf {
    /// Point in time by event time only (Feast's `get_historical_features`): the newest value
    /// whose event time is at or before `time_ms`, however late it arrived.
    pub fn event_time(time_ms: u64) -> AsOf {
        AsOf {
            event_limit_ms: time_ms,
            known_at_ms: None,
            ttl_reference_ms: time_ms,
        }
    }

    /// Bitemporal: as of event time `time_ms`, among the versions the store had been written
    /// by `known_at_ms`.
    pub fn known_at(time_ms: u64, known_at_ms: u64) -> AsOf {
        AsOf {
            known_at_ms: Some(known_at_ms),
            ..AsOf::event_time(time_ms)
        }
    }

    /// What the online store served at wall time `time_ms`: the newest event time among the
    /// versions written by then (an event time after `time_ms` included, as online reads do),
    /// with the TTL counted from `time_ms`.
    pub fn as_served(time_ms: u64) -> AsOf {
        AsOf {
            event_limit_ms: u64::MAX,
            known_at_ms: Some(time_ms),
            ttl_reference_ms: time_ms,
        }
    }

    pub fn sees(&self, v: &Version<'_>) -> bool {
        v.event_time_ms <= self.event_limit_ms
            && self.known_at_ms.is_none_or(|k| v.write_time_ms <= k)
    }

    /// Whether a sealed segment may hold a version this read sees that beats one with event
    /// time `floor_ms` (`None`: nothing found yet for some wanted feature).
    pub fn may_need(&self, seg: &SegmentInfo, floor_ms: Option<u64>) -> bool {
        seg.min_event_ms <= self.event_limit_ms
            && self.known_at_ms.is_none_or(|k| seg.min_write_ms <= k)
            && floor_ms.is_none_or(|f| seg.max_event_ms >= f)
    }

    /// The times a read is checked against a group's retention horizon.
    pub fn times(&self) -> [(&'static str, u64); 2] {
        let event = self.event_limit_ms.min(self.ttl_reference_ms);
        [
            ("as-of time", event),
            ("known-at time", self.known_at_ms.unwrap_or(u64::MAX)),
        ]
    }
}

/// The best visible version of each wanted feature (ids sorted ascending, no duplicates).
#[derive(Debug)]
pub struct Best<'a> {
    wanted: Vec<u32>,
    found: Vec<Option<Version<'a>>>,
}

impl<'a> Best<'a> {
    pub fn new(wanted: Vec<u32>) -> Best<'a> {
        debug_assert!(wanted.windows(2).all(|w| w[0] < w[1]));
        let found = vec![None; wanted.len()];
        Best { wanted, found }
    }

    /// Considers every version of `list` that `at` sees.
    pub fn offer(&mut self, list: &[Version<'a>], at: &AsOf) {
        for v in list {
            let Ok(i) = self.wanted.binary_search(&v.feature) else {
                continue;
            };
            if at.sees(v) && self.found[i].is_none_or(|b| v.order() >= b.order()) {
                self.found[i] = Some(*v);
            }
        }
    }

    /// The oldest event time among the best versions; `None` while a feature has none.
    pub fn floor_ms(&self) -> Option<u64> {
        self.found
            .iter()
            .map(|v| v.map(|v| v.event_time_ms))
            .try_fold(u64::MAX, |acc, t| t.map(|t| acc.min(t)))
    }

    /// Forgets the versions found, to answer another read of the same features.
    pub fn clear(&mut self) {
        self.found.fill(None);
    }

    /// The best version of each wanted feature, in the (ascending) order of the ids given to
    /// [`Best::new`].
    pub fn found(&self) -> &[Option<Version<'a>>] {
        &self.found
    }

    pub fn get(&self, feature: u32) -> Option<&Version<'a>> {
        let i = self.wanted.binary_search(&feature).ok()?;
        self.found[i].as_ref()
    }
}

/// The answer a read gives from `best`, with the same statuses as an online read: NOT_FOUND
/// (no version, or the feature was removed), EXPIRED (older than the TTL at the reference
/// time), NULL, or PRESENT.
pub fn answer(
    best: Option<&Version<'_>>,
    feature: u32,
    ty: FeatureType,
    ttl_s: Option<u32>,
    at: &AsOf,
) -> Result<FeatureValue, FeatureError> {
    let Some(v) = best.filter(|v| v.kind != KIND_ABSENT) else {
        return Ok(FeatureValue::not_found());
    };
    let age_ms = at.ttl_reference_ms.saturating_sub(v.event_time_ms);
    let (status, value) = if ttl_s.is_some_and(|ttl| age_ms > ttl as u64 * 1000) {
        (Status::Expired, Value::Null)
    } else if v.kind == KIND_NULL {
        (Status::Null, Value::Null)
    } else {
        let cell = RawCell {
            id: feature,
            kind: v.kind,
            event_time_ms: v.event_time_ms,
            payload: v.payload,
        };
        (Status::Present, cell.value(ty)?)
    };
    Ok(FeatureValue {
        status,
        value,
        event_time_ms: v.event_time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(feature: u32, event: u64, write: u64, payload: &[u8]) -> Version<'_> {
        Version {
            feature,
            kind: FeatureType::I64.tag(),
            event_time_ms: event,
            write_time_ms: write,
            payload,
        }
    }

    fn value(best: &Best<'_>, feature: u32, ttl: Option<u32>, at: &AsOf) -> FeatureValue {
        answer(best.get(feature), feature, FeatureType::I64, ttl, at).unwrap()
    }

    #[test]
    fn newest_visible_event_wins_and_corrections_win_ties() {
        let (one, two, three) = (1i64.to_le_bytes(), 2i64.to_le_bytes(), 3i64.to_le_bytes());
        // Written in this order: e=100 at w=1000, a late e=50 at w=2000, a correction of
        // e=100 at w=3000.
        let list = [
            v(0, 100, 1000, &one),
            v(0, 50, 2000, &two),
            v(0, 100, 3000, &three),
        ];
        let read = |at: AsOf| {
            let mut best = Best::new(vec![0]);
            best.offer(&list, &at);
            value(&best, 0, None, &at)
        };
        assert_eq!(read(AsOf::event_time(99)).value, Value::I64(2));
        assert_eq!(read(AsOf::event_time(100)).value, Value::I64(3));
        assert_eq!(read(AsOf::event_time(49)).status, Status::NotFound);
        assert_eq!(read(AsOf::known_at(100, 1500)).value, Value::I64(1));
        assert_eq!(read(AsOf::known_at(60, 1500)).status, Status::NotFound);
        assert_eq!(read(AsOf::known_at(60, 2000)).value, Value::I64(2));
        assert_eq!(read(AsOf::as_served(1500)).value, Value::I64(1));
        assert_eq!(read(AsOf::as_served(2500)).value, Value::I64(1));
        assert_eq!(read(AsOf::as_served(3000)).value, Value::I64(3));
        assert_eq!(read(AsOf::as_served(999)).status, Status::NotFound);
    }

    #[test]
    fn ttl_counts_from_the_reference_time_and_absent_reads_not_found() {
        let one = 1i64.to_le_bytes();
        let list = [
            v(0, 1_000, 1, &one),
            v(1, 1_000, 1, &one),
            Version {
                kind: KIND_ABSENT,
                payload: &[],
                ..v(1, 2_000, 2, &[])
            },
            Version {
                kind: KIND_NULL,
                payload: &[],
                ..v(2, 1_000, 1, &[])
            },
        ];
        let mut best = Best::new(vec![0, 1, 2, 3]);
        let at = AsOf::event_time(5_000);
        best.offer(&list, &at);
        assert_eq!(value(&best, 0, Some(4), &at).status, Status::Present);
        assert_eq!(value(&best, 0, Some(3), &at).status, Status::Expired);
        assert_eq!(value(&best, 0, Some(3), &at).event_time_ms, 1_000);
        assert_eq!(value(&best, 1, None, &at).status, Status::NotFound);
        assert_eq!(value(&best, 2, None, &at).status, Status::Null);
        assert_eq!(value(&best, 3, None, &at).status, Status::NotFound);
        assert_eq!(best.floor_ms(), None, "feature 3 has no version");
    }

    #[test]
    fn segments_are_needed_only_when_they_can_hold_a_better_version() {
        let seg = SegmentInfo {
            segment: 0,
            count: 2,
            min_event_ms: 100,
            max_event_ms: 200,
            min_write_ms: 1_000,
            max_write_ms: 2_000,
        };
        assert!(AsOf::event_time(150).may_need(&seg, None));
        assert!(!AsOf::event_time(99).may_need(&seg, None));
        assert!(AsOf::event_time(500).may_need(&seg, Some(200)));
        assert!(!AsOf::event_time(500).may_need(&seg, Some(201)));
        assert!(!AsOf::known_at(500, 999).may_need(&seg, None));
        assert!(AsOf::as_served(1_000).may_need(&seg, None));
    }
}
