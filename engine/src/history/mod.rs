//! Feature history: every version a group's puts write, kept for a retention window, so that
//! reads can ask what a feature was as of a past time (and as known at a past time), and
//! training sets can be built with point-in-time correctness from the same store that serves.
//!
//! ## Layout
//!
//! A feature group that keeps history (`GroupSchema::history`) gets a second engine group,
//! [`keys::history_group`] (its id with the high bit set). Per entity it holds three kinds of
//! records, all ordinary engine records (so recovery, checkpoints, defragmentation and the
//! crash rules of the engine apply to them unchanged):
//!
//! - the **head**: the versions written since the last seal (at most [`SEAL_VERSIONS`] or
//!   about [`SEAL_BYTES`]), the next segment number, the directory version and the horizon;
//! - the **directory**: per sealed segment its number and its event/write-time ranges;
//! - **segments**: sealed lists of versions, written once (and deleted by compaction).
//!
//! RAM per entity is the index entries of these records, so it grows with the number of
//! segments (one per `SEAL_VERSIONS` versions), never with each version. Byte layouts are in
//! [`codec`] and `docs/FORMAT.md`.
//!
//! ## Writes
//!
//! A put to a group with history appends one version per value (its event time, and its write
//! time: when the store took it, or the time a backfill gives) to the head, under a per-entity
//! lock that also covers the online write, so history and the online row see one order. Late
//! events are appended like any other: history orders versions by event time, then write time,
//! and keeps them all; the online row still keeps only the newest. A whole-row replace also
//! appends an "absent" version for each feature it removed.
//!
//! ## Reads
//!
//! An as-of read ([`AsOf`]) reads the head and the directory of every entity it needs in one
//! batch, then only the segments whose ranges could hold a better version, in a second batch.
//! A read of a recent time costs the head and directory reads (issued together); an old time
//! adds the segments that cover it. History reads come a bounded page at a time
//! ([`HistoryPage`], resumed by a [`HistoryCursor`]); [`crate::Store::history_keys`] lists the
//! entities that have history.
//!
//! ## Retention, deletes, drops
//!
//! When a head seals, segments wholly before the window (event and write time before
//! `now - retention`) are compacted into one segment holding, per feature, only the newest of
//! their versions (the "anchor"), and deleted; the head's horizon moves to the window's start.
//! Every read at or after the horizon is unchanged by this. Reads before the window are refused
//! with [`crate::feature::FeatureError::OutsideHistory`]. `Store::compact_history` runs the same
//! compaction for entities that no longer receive writes. A delete of an entity removes its
//! online row and its whole history; dropping a group drops its history group.

mod batch;
pub mod codec;
pub mod keys;
mod page;
pub mod policy;
pub mod resolve;
pub(crate) mod retention;
mod store_ops;
mod sweep;

pub(crate) use batch::{EntityRows, GroupRead};
pub use batch::{HistoryCache, HistoryCacheStats, DEFAULT_HISTORY_CACHE_BYTES};
pub use codec::{Version, KIND_ABSENT, MAX_SEGMENTS};
pub use keys::{history_group, HISTORY_GROUP_BIT, MAX_HISTORY_ENTITY_KEY_BYTES};
pub use page::{HistoryCursor, HistoryPage, HistoryRange};
pub use policy::{HistoryPolicy, MAX_HISTORY_RETENTION_S, MAX_HISTORY_VERSIONS};
pub use resolve::AsOf;
pub use retention::{RetentionCursor, RetentionStats};
pub use store_ops::{CompactionReport, HistoryEntry, MAX_HISTORY_READ_VERSIONS};

/// A head seals its open versions into a segment once it holds this many.
pub const SEAL_VERSIONS: usize = 64;
/// ... or once their payloads reach this many bytes.
pub const SEAL_BYTES: usize = 4096;
