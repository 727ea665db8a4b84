//! The feature model: typed feature groups, their registry, and the record encoding.
//!
//! A feature group (like a Feast feature view) has a name, an entity key type, and ordered,
//! typed features; each group is one engine group, each entity one engine record (a [`Row`])
//! holding any subset of the group's features, every value with its own event time. The
//! registry of groups lives in the store itself, under the reserved engine group 0.
//!
//! Nothing here does I/O except through [`crate::store::Store`]; the codecs and the merge rule
//! work on bytes and are tested on their own.

pub(crate) mod bytes;
pub mod check;
mod error;
pub mod limits;
pub mod merge;
mod name;
pub mod options;
pub mod read;
pub mod registry;
pub mod row;
pub mod rules;
pub mod schema;
pub mod schema_codec;
pub mod slo;
pub mod types;

pub use check::check_value;
pub use error::FeatureError;
pub use limits::*;
pub use merge::{merge_row, MergeOutcome, WriteMode};
pub use name::check_name;
pub use options::{PutOptions, PutResult, ScanItem};
pub use row::{EncodedCells, RawCell, Row};
pub use rules::{Bound, FeatureRules, Range, RuleChecker, ViolationMode};
pub use schema::{Alter, Compression, Feature, FeatureSpec, GroupSchema, GroupSpec};
pub use schema_codec::RegistryIndex;
pub use slo::QualitySlo;
pub use types::{EntityKey, FeatureRef, FeatureType, FeatureValue, KeyType, Status, Value};
