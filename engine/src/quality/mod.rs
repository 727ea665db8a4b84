//! Data quality beyond the rules checked at write: live statistics of every feature, kept on
//! the write path in time windows and saved in the store.
//!
//! - [`sketch`]: the mergeable summaries (moments, DDSketch quantiles, HyperLogLog distinct
//!   counts, top values);
//! - [`bucket`]: one time bucket of a group's statistics;
//! - [`window`]: rings of buckets (the last hour, the last day);
//! - [`group`]: the sharded write path and the group's windows;
//! - [`codec`]: the saved form (docs/FORMAT.md);
//! - [`report`]: what `quiver stats` shows;
//! - [`saver`]: the thread that saves them, and loading them back at open;
//! - [`baseline`], [`drift`]: saved distributions of features and the live windows against
//!   them.

pub mod baseline;
mod baselines;
pub mod bucket;
pub mod codec;
pub mod drift;
pub mod group;
pub mod report;
pub mod saver;
pub mod sketch;
pub mod window;

pub use baseline::{Baseline, Shape};
pub use drift::WindowDrift;
pub use group::GroupStats;
pub use report::{
    FeatureDrift, FeatureStatsReport, FeatureWindowReport, GroupStatsReport, GroupWindowReport,
    NumberStats,
};

/// Engine key (in the registry's engine group) of group `id`'s saved statistics:
/// `stats/<id>` in ASCII decimal.
pub fn stats_key(id: u32) -> Vec<u8> {
    format!("stats/{id}").into_bytes()
}
