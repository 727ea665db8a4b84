//! The crate's one error type.

/// What can go wrong when talking to the index.
///
/// The index itself has no failing operations: lookups and updates always succeed. Errors only
/// come from values that cross into it, checked against the limits of the packed layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// A [`crate::Location`] field does not fit in its packed width.
    #[error("location {field} {value} exceeds the limit {max}")]
    LocationOutOfRange {
        /// Which field: `block`, `offset_units` or `len_units`.
        field: &'static str,
        /// The value that was asked for.
        value: u32,
        /// The largest value the field can hold.
        max: u32,
    },
}
