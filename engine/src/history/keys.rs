//! Where an entity's history lives in the engine: a group of its own per feature group, and
//! keys made of the entity key and a 4-byte suffix.

use crate::feature::FeatureError;
use crate::feature::MAX_KEY_BYTES;

/// The high bit of an engine group id marks a history group. Feature group ids stay below it
/// (the registry refuses to hand out more).
pub const HISTORY_GROUP_BIT: u32 = 1 << 31;
/// Suffix of the head record.
const HEAD_SUFFIX: u32 = u32::MAX;
/// Suffix of the directory record.
const DIRECTORY_SUFFIX: u32 = u32::MAX - 1;
/// Bytes the suffix adds to an entity key.
pub const SUFFIX_BYTES: usize = 4;
/// Longest entity key of a group that keeps history.
pub const MAX_HISTORY_ENTITY_KEY_BYTES: usize = MAX_KEY_BYTES - SUFFIX_BYTES;

/// The engine group holding the history of feature group `group`.
pub fn history_group(group: u32) -> u32 {
    assert!(
        group < HISTORY_GROUP_BIT,
        "feature group ids stay below 2^31"
    );
    group | HISTORY_GROUP_BIT
}

/// Checks that an entity key leaves room for the suffix.
pub fn check_entity_key(group: &str, key: &[u8]) -> Result<(), FeatureError> {
    if key.len() > MAX_HISTORY_ENTITY_KEY_BYTES {
        return Err(FeatureError::HistoryKeySize {
            group: group.to_string(),
            len: key.len(),
            max: MAX_HISTORY_ENTITY_KEY_BYTES,
        });
    }
    Ok(())
}

fn with_suffix(entity: &[u8], suffix: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(entity.len() + SUFFIX_BYTES);
    key.extend_from_slice(entity);
    key.extend_from_slice(&suffix.to_be_bytes());
    key
}

pub fn head_key(entity: &[u8]) -> Vec<u8> {
    with_suffix(entity, HEAD_SUFFIX)
}

pub fn directory_key(entity: &[u8]) -> Vec<u8> {
    with_suffix(entity, DIRECTORY_SUFFIX)
}

pub fn segment_key(entity: &[u8], segment: u32) -> Vec<u8> {
    assert!(
        segment < DIRECTORY_SUFFIX,
        "segment numbers stay below the reserved suffixes"
    );
    with_suffix(entity, segment)
}

/// The entity key of a head record's key, or `None` for a directory or segment key.
pub fn entity_of_head(key: &[u8]) -> Option<&[u8]> {
    let split = key.len().checked_sub(SUFFIX_BYTES)?;
    (key[split..] == HEAD_SUFFIX.to_be_bytes()).then_some(&key[..split])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_heads_are_recognised() {
        let e = b"user:1";
        let keys = [
            head_key(e),
            directory_key(e),
            segment_key(e, 0),
            segment_key(e, 7),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(entity_of_head(&keys[0]), Some(&e[..]));
        assert_eq!(entity_of_head(&keys[1]), None);
        assert_eq!(entity_of_head(&keys[3]), None);
        assert_eq!(history_group(5), 5 | HISTORY_GROUP_BIT);
        assert!(check_entity_key("g", &[0; MAX_HISTORY_ENTITY_KEY_BYTES]).is_ok());
        assert!(check_entity_key("g", &[0; MAX_HISTORY_ENTITY_KEY_BYTES + 1]).is_err());
    }
}
