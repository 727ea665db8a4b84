//! What a group keeps of its superseded values: a retention window of event time, a number of
//! versions per feature, or both.

use crate::feature::limits::MAX_TTL_S;
use crate::feature::FeatureError;

/// Longest history retention window, in seconds (10 years, the TTL limit).
pub const MAX_HISTORY_RETENTION_S: u32 = MAX_TTL_S;
/// Most superseded versions per feature and entity a group may ask to keep.
pub const MAX_HISTORY_VERSIONS: u32 = 100_000;

/// A group's history setting. At least one bound is set.
///
/// - `retention_s`: every version is kept while its event time is inside the retention window
///   (`now - retention_s` to now). Older versions are reclaimed, except, per feature, the newest
///   one written before the window began, so that every as-of read whose time (and known-at
///   time) lies inside the window stays exact. Reads before the window are refused.
/// - `max_versions`: per entity and feature, at most this many superseded versions are kept
///   besides the newest one (the value the online row serves), counted in history order (event
///   time, then write time); versions tied with the last one kept are kept with it. A version
///   the count removes is gone as though it had never been written: an as-of read that it would
///   have answered reads NOT_FOUND.
///
/// With both, a version is removed when either bound removes it (whichever removes more
/// wins). Retention runs in the background (see [`crate::history`]); until it reaches an entity,
/// its reads still see versions the bounds allow it to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    pub retention_s: Option<u32>,
    pub max_versions: Option<u32>,
}

impl HistoryPolicy {
    /// Keeps versions for `retention_s` seconds of event time.
    pub fn retention(retention_s: u32) -> HistoryPolicy {
        HistoryPolicy {
            retention_s: Some(retention_s),
            max_versions: None,
        }
    }

    /// Keeps at most `max_versions` superseded versions per feature and entity, of any age.
    pub fn versions(max_versions: u32) -> HistoryPolicy {
        HistoryPolicy {
            retention_s: None,
            max_versions: Some(max_versions),
        }
    }

    /// This setting with the version count bound set to `max_versions`.
    pub fn with_max_versions(self, max_versions: u32) -> HistoryPolicy {
        HistoryPolicy {
            max_versions: Some(max_versions),
            ..self
        }
    }

    /// Checks both bounds against their limits, and that one is set.
    pub fn check(&self, group: &str) -> Result<(), FeatureError> {
        let invalid = |reason: String| {
            Err(FeatureError::InvalidHistory {
                group: group.to_string(),
                reason,
            })
        };
        if let Some(r) = self.retention_s {
            if r == 0 || r > MAX_HISTORY_RETENTION_S {
                return invalid(format!(
                    "retention of {r} s is outside 1..={MAX_HISTORY_RETENTION_S} s"
                ));
            }
        }
        if let Some(n) = self.max_versions {
            if n == 0 || n > MAX_HISTORY_VERSIONS {
                return invalid(format!(
                    "max_versions of {n} is outside 1..={MAX_HISTORY_VERSIONS} superseded versions \
                     per feature (turn history off to keep none)"
                ));
            }
        }
        if self.retention_s.is_none() && self.max_versions.is_none() {
            return invalid("neither a retention window nor a version count is set".into());
        }
        Ok(())
    }

    /// The start of the window at wall time `now_ms`: the oldest as-of (and known-at) time,
    /// in ms, that reads answer (0 without a window).
    pub fn horizon_ms(&self, now_ms: u64) -> u64 {
        match self.retention_s {
            Some(r) => now_ms.saturating_sub(r as u64 * 1000),
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        assert!(HistoryPolicy::retention(86_400).check("g").is_ok());
        assert!(HistoryPolicy::retention(0).check("g").is_err());
        let err = HistoryPolicy::retention(MAX_HISTORY_RETENTION_S + 1)
            .check("g")
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside 1..=315360000 s"), "{err}");
        assert_eq!(HistoryPolicy::retention(10).horizon_ms(60_000), 50_000);
        assert_eq!(HistoryPolicy::retention(10).horizon_ms(5_000), 0);
        assert_eq!(HistoryPolicy::versions(3).horizon_ms(60_000), 0);
        assert!(HistoryPolicy::versions(1).check("g").is_ok());
        assert!(HistoryPolicy::retention(5)
            .with_max_versions(MAX_HISTORY_VERSIONS)
            .check("g")
            .is_ok());
        let zero = HistoryPolicy::versions(0)
            .check("g")
            .unwrap_err()
            .to_string();
        assert!(
            zero.contains("max_versions of 0 is outside 1..=100000"),
            "{zero}"
        );
        assert!(HistoryPolicy::versions(MAX_HISTORY_VERSIONS + 1)
            .check("g")
            .is_err());
        let none = HistoryPolicy {
            retention_s: None,
            max_versions: None,
        };
        assert!(none.check("g").unwrap_err().to_string().contains("neither"));
    }
}
