//! What a group keeps of its superseded values: a retention window of event time.

use crate::feature::limits::MAX_TTL_S;
use crate::feature::FeatureError;

/// Longest history retention window, in seconds (10 years, the TTL limit).
pub const MAX_HISTORY_RETENTION_S: u32 = MAX_TTL_S;

/// A group's history setting: every version is kept while its event time is inside the
/// retention window (`now - retention_s` to now).
///
/// Older versions are reclaimed by compaction (see [`crate::history`]), except, per feature,
/// the newest one written before the window began, so that every as-of read whose time (and
/// known-at time) lies inside the window stays exact. Reads before the window are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    pub retention_s: u32,
}

impl HistoryPolicy {
    /// Keeps versions for `retention_s` seconds of event time.
    pub fn retention(retention_s: u32) -> HistoryPolicy {
        HistoryPolicy { retention_s }
    }

    /// Checks the window against its limit.
    pub fn check(&self, group: &str) -> Result<(), FeatureError> {
        let r = self.retention_s;
        if r == 0 || r > MAX_HISTORY_RETENTION_S {
            return Err(FeatureError::InvalidHistory {
                group: group.to_string(),
                reason: format!("retention of {r} s is outside 1..={MAX_HISTORY_RETENTION_S} s"),
            });
        }
        Ok(())
    }

    /// The start of the window at wall time `now_ms`: the oldest as-of (and known-at) time,
    /// in ms, that reads answer.
    pub fn horizon_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.retention_s as u64 * 1000)
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
    }
}
