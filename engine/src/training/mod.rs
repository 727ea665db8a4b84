//! Training sets: the point-in-time join of an entity "spine" (rows of entity keys and a
//! timestamp, e.g. the moments labels were observed) against the feature history the store
//! keeps, so that each row gets the feature values a model could have seen at its time and
//! never a later one.
//!
//! The API is streaming and knows nothing of files: the caller hands [`TrainingSet::join`] the
//! spine in batches ([`SpineBatch`]: per group a column of keys, a column of timestamps, and in
//! [`TimeMode::KnownAt`] a column of known-at times) and gets back, per batch, one column of
//! feature values with their statuses per requested feature ([`Joined`]). Memory is bounded
//! by the batch the caller chose, whatever the spine's size. File formats (Parquet, CSV) live
//! in the tools crate, which drives this API.
//!
//! ## How a batch is read
//!
//! Per group, the batch's rows are ordered by entity (first appearance) and cut into reads of
//! at most [`crate::feature::MAX_ENTITIES_PER_GET`] rows, so that the rows of one entity share
//! one read of its history head and directory ([`crate::store::Store::get_many_as_of`]: one
//! engine batch of heads and directories, then one of the segments the rows' times call for).
//! Reads run on up to [`TrainingSet::threads`] threads; results are put back in spine order.
//!
//! ## Time modes
//!
//! See [`TimeMode`]: event time only (Feast's `get_historical_features`), "as served" (what the
//! online store returned at the row's timestamp), or known-at from a spine column. In every
//! mode the group's TTL counts back from the row's timestamp: an older value is EXPIRED (null).

mod join;
mod mode;
mod spine;

pub use join::{Joined, TrainingSet};
pub use mode::TimeMode;
pub use spine::{SpineBatch, MAX_SPINE_BATCH_ROWS};
