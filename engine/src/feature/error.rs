//! Errors of the feature model.

use super::types::{FeatureType, KeyType};

/// Everything that can be wrong with a feature-model request or a stored schema/row.
/// Each variant names the group, the feature, what was expected and what was given, or the limit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureError {
    #[error("unknown feature group '{group}'")]
    UnknownGroup { group: String },
    #[error("unknown feature '{feature}' in group '{group}'")]
    UnknownFeature { group: String, feature: String },
    #[error("feature group '{group}' already exists")]
    GroupExists { group: String },
    #[error("feature '{feature}' already exists in group '{group}'")]
    FeatureExists { group: String, feature: String },
    #[error("feature '{feature}' appears more than once in one request to group '{group}'")]
    DuplicateFeature { group: String, feature: String },
    #[error("invalid {what} name '{name}': {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: String,
    },
    #[error("invalid tag '{tag}': {reason}")]
    InvalidTag { tag: String, reason: String },
    #[error("{what} has {count} tags, over the limit of {max}")]
    TooManyTags {
        what: String,
        count: usize,
        max: usize,
    },
    #[error("{what} is {len} bytes, over the limit of {max}")]
    TextTooLong {
        what: String,
        len: usize,
        max: usize,
    },
    #[error("feature '{feature}' of group '{group}' expects {expected}, got {got}")]
    TypeMismatch {
        group: String,
        feature: String,
        expected: FeatureType,
        got: String,
    },
    #[error("feature '{feature}' of group '{group}' expects a vector of dimension {expected}, got {got}")]
    VectorDimension {
        group: String,
        feature: String,
        expected: u32,
        got: usize,
    },
    #[error("invalid vector dimension {dim}: must be 1..={max}")]
    InvalidVectorDim { dim: u64, max: u32 },
    #[error("feature '{feature}' of group '{group}' got a non-finite number ({value}); the group does not allow NaN or infinity")]
    NonFinite {
        group: String,
        feature: String,
        value: String,
    },
    #[error(
        "value of feature '{feature}' of group '{group}' is {len} bytes, over the limit of {max}"
    )]
    ValueTooLarge {
        group: String,
        feature: String,
        len: usize,
        max: usize,
    },
    #[error("list of feature '{feature}' of group '{group}' has {len} elements, over the limit of {max}")]
    ListTooLong {
        group: String,
        feature: String,
        len: usize,
        max: usize,
    },
    #[error("group '{group}' would have {count} features, over the limit of {max}")]
    TooManyFeatures {
        group: String,
        count: usize,
        max: usize,
    },
    #[error("the store would have {count} feature groups, over the limit of {max}")]
    TooManyGroups { count: usize, max: usize },
    #[error("{what}: {count} given, over the limit of {max}")]
    TooManyItems {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("row of group '{group}' is {len} bytes, over the limit of {max}")]
    RowTooLarge {
        group: String,
        len: usize,
        max: usize,
    },
    #[error("schema of group '{group}' is {len} bytes, over the limit of {max}")]
    SchemaTooLarge {
        group: String,
        len: usize,
        max: usize,
    },
    #[error("feature '{feature}' of group '{group}' is {from}; its type cannot change to {to}: add a new feature instead")]
    TypeChangeRefused {
        group: String,
        feature: String,
        from: FeatureType,
        to: FeatureType,
    },
    #[error("feature '{feature}' of group '{group}' is deprecated and accepts no writes")]
    FeatureDeprecated { group: String, feature: String },
    #[error("entity key of type {got} given for group '{group}', whose key type is {expected}")]
    KeyTypeMismatch {
        group: String,
        expected: KeyType,
        got: KeyType,
    },
    #[error("entity key of {len} bytes is outside the limit of {min} to {max} bytes")]
    KeySize { len: usize, min: usize, max: usize },
    #[error("invalid feature reference '{text}': expected 'group:feature'")]
    InvalidFeatureRef { text: String },
    #[error("invalid feature type '{text}': expected bool, i64, f32, f64, string, bytes, f32[N], list<i64>, list<f32> or list<string>")]
    InvalidType { text: String },
    #[error("invalid key type '{text}': expected string, i64 or bytes")]
    InvalidKeyType { text: String },
    #[error("zstd level {level} is outside {min}..={max}")]
    InvalidCompressionLevel { level: i32, min: i32, max: i32 },
    #[error("TTL of {ttl_s} s is outside 1..={max} s")]
    InvalidTtl { ttl_s: u32, max: u32 },
    #[error("invalid baseline for group '{group}': {reason}")]
    InvalidBaseline { group: String, reason: String },
    #[error("invalid quality objective for group '{group}': {reason}")]
    InvalidSlo { group: String, reason: String },
    #[error("invalid history setting for group '{group}': {reason}")]
    InvalidHistory { group: String, reason: String },
    #[error(
        "group '{group}' keeps no history (enable it with a history setting on create or alter)"
    )]
    NoHistory { group: String },
    #[error("{what} {time_ms} ms is before the history horizon {horizon_ms} ms of group '{group}': older versions may have been reclaimed by its retention")]
    OutsideHistory {
        group: String,
        what: &'static str,
        time_ms: u64,
        horizon_ms: u64,
    },
    #[error("the history of one entity in group '{group}' reached its limit of {max} segments; shorten the group's history retention or version count")]
    HistoryFull { group: String, max: usize },
    #[error("entity key of {len} bytes exceeds the {max}-byte limit of groups with history (group '{group}')")]
    HistoryKeySize {
        group: String,
        len: usize,
        max: usize,
    },
    #[error("invalid rule for feature '{feature}' of group '{group}': {reason}")]
    InvalidRule {
        group: String,
        feature: String,
        reason: String,
    },
    #[error("feature '{feature}' of group '{group}' breaks rule {rule}: got {value}")]
    RuleViolation {
        group: String,
        feature: String,
        rule: String,
        value: String,
    },
    #[error("a put to group '{group}' must carry at least one value")]
    NoValues { group: String },
    #[error("schema version of group '{group}' reached its limit")]
    VersionLimit { group: String },
    #[error("invalid training-set spine: {reason}")]
    InvalidSpine { reason: String },
    #[error("spine row {row}: {reason}")]
    SpineRow { row: u64, reason: String },
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl FeatureError {
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> FeatureError {
        FeatureError::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}
