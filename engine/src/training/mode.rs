//! How a training set chooses, per spine row, which version of a feature it sees.

use crate::history::AsOf;

/// The time axes of a training set's point-in-time join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeMode {
    /// Event time only (Feast's default): the newest version whose event time is at or before
    /// the row's timestamp, however late it was written. Late data and backfills written after
    /// the row's time are seen.
    EventTime,
    /// What the online store served at the row's timestamp: among the versions written at or
    /// before it, the newest by event time (as the online row keeps), with the TTL counted from
    /// the row's timestamp. Written-later data is never seen.
    AsServed,
    /// As of the row's timestamp by event time, among the versions written at or before the
    /// row's own known-at time (a spine column).
    KnownAt,
}

impl TimeMode {
    /// The read one spine row makes. `known_at_ms` is used in [`TimeMode::KnownAt`] only.
    pub fn as_of(self, timestamp_ms: u64, known_at_ms: u64) -> AsOf {
        match self {
            TimeMode::EventTime => AsOf::event_time(timestamp_ms),
            TimeMode::AsServed => AsOf::as_served(timestamp_ms),
            TimeMode::KnownAt => AsOf::known_at(timestamp_ms, known_at_ms),
        }
    }

    /// Whether rows must carry a known-at time.
    pub fn needs_known_at(self) -> bool {
        self == TimeMode::KnownAt
    }

    /// The name used on the command line and the wire: `event`, `as-served`, `known-at`.
    pub fn name(self) -> &'static str {
        match self {
            TimeMode::EventTime => "event",
            TimeMode::AsServed => "as-served",
            TimeMode::KnownAt => "known-at",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_reads_its_axes() {
        assert_eq!(TimeMode::EventTime.as_of(10, 99), AsOf::event_time(10));
        assert_eq!(TimeMode::AsServed.as_of(10, 99), AsOf::as_served(10));
        assert_eq!(TimeMode::KnownAt.as_of(10, 99), AsOf::known_at(10, 99));
        assert!(TimeMode::KnownAt.needs_known_at());
        assert!(!TimeMode::AsServed.needs_known_at());
    }
}
