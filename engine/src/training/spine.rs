//! One batch of a spine, as the caller hands it to [`super::TrainingSet::join`].

use crate::feature::{EntityKey, FeatureError};

/// Most rows one batch may hold (the caller streams a larger spine in batches).
pub const MAX_SPINE_BATCH_ROWS: usize = 1_000_000;

/// Rows of a spine: column-major, every column as long as `timestamps_ms`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpineBatch {
    /// How many spine rows came before this batch: errors name rows by their 1-based number
    /// in the whole spine.
    pub first_row: u64,
    /// Each row's timestamp, unix ms: features are read as of it.
    pub timestamps_ms: Vec<u64>,
    /// Per group of [`super::TrainingSet::groups`], in that order, each row's entity key;
    /// `None` when the row has no entity of that group (its features read NOT_FOUND).
    pub keys: Vec<Vec<Option<EntityKey>>>,
    /// Each row's known-at time, unix ms: required in [`super::TimeMode::KnownAt`], refused
    /// otherwise.
    pub known_at_ms: Option<Vec<u64>>,
}

impl SpineBatch {
    pub fn len(&self) -> usize {
        self.timestamps_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps_ms.is_empty()
    }

    /// Appends `next`, the rows that follow this batch's in the spine (same columns).
    pub fn append(&mut self, next: SpineBatch) {
        debug_assert_eq!(self.first_row + self.len() as u64, next.first_row);
        self.timestamps_ms.extend(next.timestamps_ms);
        for (keys, more) in self.keys.iter_mut().zip(next.keys) {
            keys.extend(more);
        }
        if let (Some(known), Some(more)) = (&mut self.known_at_ms, next.known_at_ms) {
            known.extend(more);
        }
    }

    /// The 1-based number of row `index` of this batch in the whole spine.
    pub fn row_number(&self, index: usize) -> u64 {
        self.first_row + index as u64 + 1
    }

    /// Checks the batch's shape: its size, and every column as long as the timestamps.
    pub(crate) fn check_shape(
        &self,
        groups: usize,
        needs_known_at: bool,
    ) -> Result<(), FeatureError> {
        let rows = self.len();
        if rows > MAX_SPINE_BATCH_ROWS {
            return Err(FeatureError::TooManyItems {
                what: "rows in one spine batch",
                count: rows,
                max: MAX_SPINE_BATCH_ROWS,
            });
        }
        let shape = |reason: String| FeatureError::InvalidSpine { reason };
        if self.keys.len() != groups {
            return Err(shape(format!(
                "{} key columns given for {groups} feature groups",
                self.keys.len()
            )));
        }
        if let Some(column) = self.keys.iter().position(|k| k.len() != rows) {
            return Err(shape(format!(
                "key column {} has {} rows, the timestamps {rows}",
                column + 1,
                self.keys[column].len()
            )));
        }
        match (&self.known_at_ms, needs_known_at) {
            (Some(k), true) if k.len() != rows => Err(shape(format!(
                "the known-at column has {} rows, the timestamps {rows}",
                k.len()
            ))),
            (None, true) => Err(shape(
                "the known-at mode needs a known-at time for every row".to_string(),
            )),
            (Some(_), false) => Err(shape(
                "known-at times were given, but the mode is not known-at".to_string(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rows: usize) -> SpineBatch {
        SpineBatch {
            first_row: 10,
            timestamps_ms: vec![1; rows],
            keys: vec![vec![Some(EntityKey::I64(1)); rows]],
            known_at_ms: None,
        }
    }

    #[test]
    fn shapes_are_checked() {
        assert!(batch(3).check_shape(1, false).is_ok());
        assert_eq!(batch(3).row_number(0), 11);
        let err = batch(3).check_shape(2, false).unwrap_err().to_string();
        assert!(
            err.contains("1 key columns given for 2 feature groups"),
            "{err}"
        );
        let mut short = batch(3);
        short.keys[0].pop();
        let err = short.check_shape(1, false).unwrap_err().to_string();
        assert!(
            err.contains("key column 1 has 2 rows, the timestamps 3"),
            "{err}"
        );
        let err = batch(3).check_shape(1, true).unwrap_err().to_string();
        assert!(err.contains("needs a known-at time"), "{err}");
        let mut known = batch(3);
        known.known_at_ms = Some(vec![1; 3]);
        assert!(known.check_shape(1, true).is_ok());
        assert!(known.check_shape(1, false).is_err());
        let err = batch(MAX_SPINE_BATCH_ROWS + 1)
            .check_shape(1, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("over the limit of 1000000"), "{err}");
    }
}
