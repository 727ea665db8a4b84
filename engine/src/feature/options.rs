//! Options and results of store operations.

pub use super::merge::WriteMode;
use super::types::{EntityKey, FeatureValue};
use crate::config::Durability;

/// Result of one put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutResult {
    /// Values written (new, or newer than or as new as the stored one).
    pub written: u32,
    /// Values skipped because the stored value has a newer event time.
    pub skipped_stale: u32,
    /// The record's generation after the put (unchanged when nothing was written).
    pub generation: u16,
    /// Values left out because they broke a rule of their feature, in a group whose
    /// violation mode is `Drop` (always 0 otherwise: such a put is refused instead).
    pub dropped: u32,
}

/// One row of a scan: the entity and the values its row holds, by feature name.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanItem {
    pub key: EntityKey,
    pub values: Vec<(String, FeatureValue)>,
}

/// Options of one put. `Default`: merge, no generation check, the group's TTL, the store's
/// durability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub mode: WriteMode,
    /// Compare-and-set: the put fails with `Error::GenerationMismatch` unless the row's current
    /// generation is this (0 for an absent row).
    pub expected_generation: Option<u16>,
    /// Record TTL for this write; `None`: the group's TTL.
    pub ttl_s: Option<u32>,
    pub durability: Option<Durability>,
    /// When the store learned these values, in Unix ms, for groups that keep history: `None`
    /// is now; a backfill of history whose arrival times are known sets it.
    pub write_time_ms: Option<u64>,
}
