//! What can still be told about a frame whose body fails its checksum: which key it held.
//!
//! A version 2 frame carries a 56-bit key tag in its checksummed header (see
//! [`crate::format`]). When the header holds, the tag names the key even though the body
//! does not, and when the key bytes themselves are intact the tag confirms them (a false
//! confirmation needs a 56-bit collision). A version 1 frame has no tag: its key is taken
//! from the key bytes as they are, unconfirmed.

use crate::format::{key_tag, RecordHeader, RECORD_HEADER_BYTES};

/// The key a damaged frame belonged to, as far as its intact header and bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DamagedKey<'a> {
    /// The key tag: from the header (version 2), else computed from the key bytes as read.
    pub tag: u64,
    /// The key bytes as read, when they lie within the bytes at hand.
    pub key: Option<&'a [u8]>,
    /// Whether `key` is confirmed: its tag equals the header's.
    pub key_confirmed: bool,
}

/// Identifies the key of a damaged frame from its intact `header` and the frame's bytes as
/// read (`frame` starts with the header; it may be cut short). `None`: a version 1 frame whose
/// key bytes are not at hand, so nothing names its key.
pub fn identify<'a>(header: &RecordHeader, frame: &'a [u8]) -> Option<DamagedKey<'a>> {
    let key = frame.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + header.key_len as usize);
    match header.key_tag {
        Some(tag) => {
            let key_confirmed = key.is_some_and(|k| key_tag(header.group, k) == tag);
            Some(DamagedKey {
                tag,
                key,
                key_confirmed,
            })
        }
        None => key.map(|k| DamagedKey {
            tag: key_tag(header.group, k),
            key: Some(k),
            key_confirmed: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{padded_frame_len, RecordInput};

    fn frame(key: &[u8], value: &[u8]) -> Vec<u8> {
        let r = RecordInput {
            lsn: 7,
            group: 3,
            key,
            value,
            flags: 0,
            generation: 1,
            expiry_s: 0,
            last_update_s: 0,
        };
        let mut b = vec![0u8; padded_frame_len(r.frame_len())];
        r.encode(1, &mut b);
        b
    }

    #[test]
    fn a_damaged_value_still_names_its_key() {
        let mut b = frame(b"user:42", &[5u8; 300]);
        b[RECORD_HEADER_BYTES + 100] ^= 0x40;
        let h = RecordHeader::decode(&b).expect("header intact");
        let k = identify(&h, &b).expect("identified");
        assert_eq!(k.tag, key_tag(3, b"user:42"));
        assert_eq!(k.key, Some(&b"user:42"[..]));
        assert!(k.key_confirmed);
    }

    #[test]
    fn a_damaged_key_keeps_the_tag_but_is_not_confirmed() {
        let mut b = frame(b"user:42", b"v");
        b[RECORD_HEADER_BYTES + 2] ^= 0x01;
        let h = RecordHeader::decode(&b).expect("header intact");
        let k = identify(&h, &b).expect("identified");
        assert_eq!(
            k.tag,
            key_tag(3, b"user:42"),
            "the header's tag names the key"
        );
        assert!(!k.key_confirmed);
        // Cut short before the key: the tag alone.
        let k = identify(&h, &b[..RECORD_HEADER_BYTES]).expect("tag");
        assert_eq!((k.key, k.key_confirmed), (None, false));
    }
}
