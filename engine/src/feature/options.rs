//! Options and results of store operations.

pub use super::merge::WriteMode;
use super::types::{EntityKey, FeatureValue};

/// Result of one put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutResult {
    /// Values written (new, or newer than or as new as the stored one).
    pub written: u32,
    /// Values skipped because the stored value has a newer event time.
    pub skipped_stale: u32,
    /// The record's generation after the put (unchanged when nothing was written).
    pub generation: u16,
}

/// One row of a scan: the entity and the values its row holds, by feature name.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanItem {
    pub key: EntityKey,
    pub values: Vec<(String, FeatureValue)>,
}
