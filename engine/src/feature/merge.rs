//! The write rule: how a put's values combine with the stored row. Pure (bytes in, bytes out)
//! so it is testable without an engine; the store runs it inside `Engine::modify`.

use super::error::FeatureError;
use super::limits::MAX_ROW_BYTES;
use super::row::{EncodedCells, RawCell, Row};
use super::schema::Compression;
use crate::Error;

/// How a put treats the stored row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Per feature, the newest event time wins: an incoming value older than the stored one is
    /// skipped (on equal event times the incoming value wins). Features not in the put keep
    /// their stored values.
    #[default]
    Merge,
    /// The row becomes exactly the put's values, whatever was stored.
    ReplaceRow,
    /// Fails with `Error::AlreadyExists` if the row exists.
    CreateOnly,
    /// Fails with `Error::NotFound` if the row does not exist; otherwise like `Merge`.
    UpdateOnly,
}

/// What a put does to one row.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// The new row, or `None` when nothing changes (every incoming value was stale).
    pub row: Option<Vec<u8>>,
    pub written: u32,
    pub skipped_stale: u32,
}

/// Applies `incoming` to the stored row `existing` (None: absent) under `mode`.
pub fn merge_row(
    group: &str,
    existing: Option<&[u8]>,
    incoming: &EncodedCells,
    mode: WriteMode,
    compression: Compression,
) -> Result<MergeOutcome, Error> {
    let existing = match (mode, existing) {
        (WriteMode::CreateOnly, Some(_)) => return Err(Error::AlreadyExists),
        (WriteMode::UpdateOnly, None) => return Err(Error::NotFound),
        (WriteMode::ReplaceRow | WriteMode::CreateOnly, _) => None,
        (WriteMode::Merge | WriteMode::UpdateOnly, existing) => existing,
    };
    let new: Vec<RawCell<'_>> = incoming.cells().collect();
    let Some(row) = existing else {
        let row = encode_checked(group, &new, compression)?;
        return Ok(MergeOutcome {
            row: Some(row),
            written: new.len() as u32,
            skipped_stale: 0,
        });
    };
    let body = Row::body(row)?;
    let old = Row::cells(&body)?;
    let (cells, written, skipped_stale) = merge_cells(&old, &new);
    let row = if written == 0 {
        None
    } else {
        Some(encode_checked(group, &cells, compression)?)
    };
    Ok(MergeOutcome {
        row,
        written,
        skipped_stale,
    })
}

fn encode_checked(
    group: &str,
    cells: &[RawCell<'_>],
    compression: Compression,
) -> Result<Vec<u8>, Error> {
    let row = Row::encode(cells, compression);
    let body_len = Row::body_len(&row);
    if body_len > MAX_ROW_BYTES {
        return Err(FeatureError::RowTooLarge {
            group: group.to_string(),
            len: body_len,
            max: MAX_ROW_BYTES,
        }
        .into());
    }
    Ok(row)
}

/// Merges two id-sorted cell lists; returns the merged cells, how many incoming cells were
/// taken and how many were skipped as stale.
pub fn merge_cells<'a>(old: &[RawCell<'a>], new: &[RawCell<'a>]) -> (Vec<RawCell<'a>>, u32, u32) {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let (mut written, mut skipped) = (0u32, 0u32);
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let take_old = j == new.len() || (i < old.len() && old[i].id < new[j].id);
        if take_old {
            out.push(old[i]);
            i += 1;
        } else if i < old.len() && old[i].id == new[j].id {
            if new[j].event_time_ms >= old[i].event_time_ms {
                out.push(new[j]);
                written += 1;
            } else {
                out.push(old[i]);
                skipped += 1;
            }
            i += 1;
            j += 1;
        } else {
            out.push(new[j]);
            written += 1;
            j += 1;
        }
    }
    (out, written, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::types::{FeatureType, Value};

    fn put(
        existing: Option<&[u8]>,
        time: u64,
        values: &[(u32, i64)],
        mode: WriteMode,
    ) -> Result<MergeOutcome, Error> {
        let values: Vec<(u32, Value)> = values.iter().map(|&(id, v)| (id, Value::I64(v))).collect();
        let enc = EncodedCells::new(time, values.iter().map(|(id, v)| (*id, v)));
        merge_row("g", existing, &enc, mode, Compression::None)
    }

    fn read(row: &[u8]) -> Vec<(u32, i64, u64)> {
        let body = Row::body(row).unwrap();
        Row::cells(&body)
            .unwrap()
            .iter()
            .map(|c| match c.value(FeatureType::I64).unwrap() {
                Value::I64(v) => (c.id, v, c.event_time_ms),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn newest_event_time_wins_per_feature() {
        let r1 = put(None, 100, &[(0, 1), (1, 1)], WriteMode::Merge).unwrap();
        assert_eq!((r1.written, r1.skipped_stale), (2, 0));
        let row1 = r1.row.unwrap();
        let r2 = put(Some(&row1), 50, &[(0, 2), (2, 2)], WriteMode::Merge).unwrap();
        assert_eq!((r2.written, r2.skipped_stale), (1, 1));
        let row2 = r2.row.unwrap();
        assert_eq!(read(&row2), vec![(0, 1, 100), (1, 1, 100), (2, 2, 50)]);
        let r3 = put(Some(&row2), 100, &[(1, 3)], WriteMode::Merge).unwrap();
        assert_eq!(
            read(&r3.row.unwrap()),
            vec![(0, 1, 100), (1, 3, 100), (2, 2, 50)],
            "equal time: incoming wins"
        );
        let r4 = put(Some(&row2), 10, &[(0, 9), (1, 9)], WriteMode::Merge).unwrap();
        assert_eq!((r4.row, r4.written, r4.skipped_stale), (None, 0, 2));
    }

    #[test]
    fn modes() {
        let row = put(None, 100, &[(0, 1), (1, 1)], WriteMode::Merge)
            .unwrap()
            .row
            .unwrap();
        let replaced = put(Some(&row), 5, &[(3, 7)], WriteMode::ReplaceRow).unwrap();
        assert_eq!(read(&replaced.row.unwrap()), vec![(3, 7, 5)]);
        assert!(matches!(
            put(Some(&row), 5, &[(3, 7)], WriteMode::CreateOnly),
            Err(Error::AlreadyExists)
        ));
        assert!(put(None, 5, &[(3, 7)], WriteMode::CreateOnly)
            .unwrap()
            .row
            .is_some());
        assert!(matches!(
            put(None, 5, &[(3, 7)], WriteMode::UpdateOnly),
            Err(Error::NotFound)
        ));
        let updated = put(Some(&row), 5, &[(0, 7), (3, 7)], WriteMode::UpdateOnly).unwrap();
        assert_eq!((updated.written, updated.skipped_stale), (1, 1));
    }

    #[test]
    fn corrupt_stored_row_is_an_error() {
        assert!(matches!(
            put(Some(&[1, 0, 5]), 1, &[(0, 1)], WriteMode::Merge),
            Err(Error::Feature(FeatureError::Corrupt { .. }))
        ));
        assert!(put(Some(&[1, 0, 5]), 1, &[(0, 1)], WriteMode::ReplaceRow).is_ok());
    }
}
