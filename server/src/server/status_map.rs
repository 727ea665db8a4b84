//! Engine errors to wire status codes.

use crate::protocol::StatusCode;
use quiver_engine::feature::FeatureError;
use quiver_engine::Error;

/// The status code and message a client sees for an engine error.
pub fn engine_error(err: &Error) -> (StatusCode, String) {
    let status = match err {
        Error::KeySize { .. } | Error::RecordTooLarge { .. } => StatusCode::LimitExceeded,
        Error::DeviceFull { .. } => StatusCode::DeviceFull,
        Error::Failed(_) | Error::Io(_) | Error::Wal(_) => StatusCode::StoreFailed,
        Error::Closed => StatusCode::ShuttingDown,
        Error::Config(_) => StatusCode::InvalidArgument,
        Error::GenerationMismatch { .. } => StatusCode::GenerationMismatch,
        Error::AlreadyExists => StatusCode::AlreadyExists,
        Error::NotFound => StatusCode::NotFound,
        Error::GroupDropped(_) => StatusCode::UnknownGroup,
        Error::Feature(f) => feature_error(f),
        _ => StatusCode::StoreFailed,
    };
    (status, err.to_string())
}

fn feature_error(err: &FeatureError) -> StatusCode {
    use FeatureError as F;
    match err {
        F::UnknownGroup { .. } => StatusCode::UnknownGroup,
        F::UnknownFeature { .. } => StatusCode::UnknownFeature,
        F::GroupExists { .. } => StatusCode::GroupExists,
        F::TypeMismatch { .. }
        | F::VectorDimension { .. }
        | F::NonFinite { .. }
        | F::KeyTypeMismatch { .. } => StatusCode::TypeMismatch,
        F::ValueTooLarge { .. }
        | F::ListTooLong { .. }
        | F::TooManyFeatures { .. }
        | F::TooManyGroups { .. }
        | F::TooManyItems { .. }
        | F::TooManyTags { .. }
        | F::TextTooLong { .. }
        | F::RowTooLarge { .. }
        | F::SchemaTooLarge { .. }
        | F::KeySize { .. }
        | F::HistoryKeySize { .. }
        | F::HistoryFull { .. }
        | F::VersionLimit { .. } => StatusCode::LimitExceeded,
        F::Corrupt { .. } => StatusCode::StoreFailed,
        // Invalid names, tags, types, TTLs, history settings, refused type changes, deprecated
        // features, reads of groups without history or before their history window, ...
        _ => StatusCode::InvalidArgument,
    }
}
