//! The feature model: typed feature groups, the registry, the record encoding.

/// Errors of the feature model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureError {}
