//! What can still be told about a damaged frame: which key it held.
//!
//! A version 2 frame carries a 56-bit key tag in its checksummed header (see
//! [`crate::format`]). When the header holds, the tag names the key even though the body
//! does not, and when the key bytes themselves are intact the tag confirms them (a false
//! confirmation needs a 56-bit collision). A version 1 frame has no tag: its key is taken
//! from the key bytes as they are, unconfirmed.
//!
//! A header with one damaged byte is restored from its own checksum
//! ([`repair_record_header`], [`repair_block_header`]). One damaged in more bytes still names
//! its key when the key bytes and most of the tag hold ([`find_identity`]).

use crate::format::{
    key_tag, BlockHeader, RecordHeader, BLOCK_HEADER_BYTES, FLAG_KEY_TAG, MAX_KEY_BYTES,
    RECORD_HEADER_BYTES, RECORD_MAGIC,
};
use xxhash_rust::xxh3::xxh3_64;

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

/// A header restored from one damaged byte: the header, and which byte was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repaired<T> {
    pub header: T,
    pub byte: usize,
}

/// Tries every other value of every byte of the 64-byte `header` and returns the first that
/// `decode` accepts. Both headers carry a 64-bit checksum of their first 56 bytes, so a wrong
/// substitution passes only by a checksum collision (about 16,000 tries against 2^64): one
/// damaged byte is corrected, and damage to two or more bytes is not (it is not guessed at).
fn repair_one_byte<T>(header: &[u8], decode: impl Fn(&[u8]) -> Option<T>) -> Option<Repaired<T>> {
    let mut h = [0u8; 64];
    h.copy_from_slice(header.get(..64)?);
    for byte in 0..h.len() {
        let was = h[byte];
        for v in (0..=u8::MAX).filter(|&v| v != was) {
            h[byte] = v;
            if let Some(header) = decode(&h) {
                return Some(Repaired { header, byte });
            }
        }
        h[byte] = was;
    }
    None
}

/// How many of the 4 bytes of a record frame's magic `h` starts with: any other bytes are
/// not worth a repair or a search (and are skipped at once).
fn magic_bytes_held(h: &[u8]) -> usize {
    h[..4]
        .iter()
        .zip(RECORD_MAGIC.to_le_bytes())
        .filter(|(a, b)| **a == *b)
        .count()
}

fn checksum_fails(h: &[u8]) -> bool {
    let stored = u64::from_le_bytes(h[56..64].try_into().expect("8 bytes"));
    xxh3_64(&h[0..56]) != stored
}

/// The header of a record frame of the block with sequence `block_seq` whose header holds one
/// damaged byte (its checksum fails), restored; `None` when the bytes are no such header
/// (zeros, a valid header, a frame of another use of the block, or more than one damaged
/// byte). A restored header names its key (by its tag) and LSN as an intact one does.
pub fn repair_record_header(b: &[u8], block_seq: u64) -> Option<Repaired<RecordHeader>> {
    let h = b.get(..RECORD_HEADER_BYTES)?;
    if magic_bytes_held(h) < 3 || !checksum_fails(h) {
        return None;
    }
    repair_one_byte(h, |h| {
        RecordHeader::decode(h).filter(|r| r.block_seq == block_seq)
    })
}

/// The header of write block `block` of the store `store_id_lo` with one damaged byte,
/// restored; `None` when the bytes are no such header (an erased or never written block, a
/// valid header, another store's, or more than one damaged byte).
pub fn repair_block_header(
    b: &[u8],
    block: u32,
    store_id_lo: u64,
) -> Option<Repaired<BlockHeader>> {
    let h = b.get(..BLOCK_HEADER_BYTES)?;
    if h.iter().all(|&x| x == 0) || !checksum_fails(h) {
        return None;
    }
    repair_one_byte(h, |h| BlockHeader::decode(h, block, store_id_lo))
}

/// Of the 7 bytes of a damaged header's key tag, how many must still equal those of the tag
/// computed from a candidate group and key for the frame to be taken for that key's (a
/// chance match of 5 given bytes is about 2^-40 per try).
const TAG_BYTES_THAT_MUST_HOLD: usize = 5;

/// The key a record frame whose header is damaged in more than one byte held, found from what
/// the header and the key bytes still say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub group: u32,
    pub key_len: usize,
    /// The tag of (group, key), computed from the key bytes.
    pub tag: u64,
    /// The whole header, when restoring the identity fields (and at most one more byte)
    /// made its checksum hold: then the LSN and flags are known too.
    pub header: Option<RecordHeader>,
}

fn tag_bytes(h: &[u8]) -> [u8; 7] {
    [h[44], h[45], h[46], h[47], h[34], h[35], h[31]]
}

fn write_identity(h: &mut [u8; 64], block_seq: u64, group: u32, key_len: usize, tag: u64) {
    h[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    h[8..16].copy_from_slice(&block_seq.to_le_bytes());
    h[24..28].copy_from_slice(&group.to_le_bytes());
    h[28..30].copy_from_slice(&(key_len as u16).to_le_bytes());
    h[30] |= FLAG_KEY_TAG;
    h[31] = (tag >> 48) as u8;
    h[34..36].copy_from_slice(&((tag >> 32) as u16).to_le_bytes());
    h[44..48].copy_from_slice(&(tag as u32).to_le_bytes());
}

/// The key of a version 2 frame at the start of `region` (the bytes from the frame to the
/// next valid frame of its block, sequence `block_seq`) whose header is damaged beyond one
/// byte (a valid header of another sequence is not: it is an earlier use's frame): a group (the header's own, else one of `groups`) and a key length (the header's own,
/// else any that fits) such that the tag of (group, key bytes) equals the header's tag in at
/// least 5 of its 7 bytes (and 2 of the 4 magic bytes still hold). The key bytes must be
/// intact (they are the body's first bytes). With
/// the key found, the fields it fixes are written back and the header checked again (and
/// repaired if one other byte is wrong), which restores the LSN when it holds. `None`: nothing
/// names a key (a version 1 frame, or the tag and key bytes damaged too).
pub fn find_identity(region: &[u8], block_seq: u64, groups: &[u32]) -> Option<Identity> {
    let raw: [u8; 64] = region.get(..RECORD_HEADER_BYTES)?.try_into().ok()?;
    if magic_bytes_held(&raw) < 2 {
        return None;
    }
    // A whole, valid header of another sequence is a frame of an earlier use of the block,
    // showing where this use's write never reached the device (a crash lost its sectors):
    // not damage, and not this use's frame.
    if RecordHeader::decode(&raw).is_some_and(|h| h.block_seq != block_seq) {
        return None;
    }
    let room = region.len() - RECORD_HEADER_BYTES;
    let raw_tag = tag_bytes(&raw);
    let raw_group = u32::from_le_bytes(raw[24..28].try_into().expect("4 bytes"));
    let raw_len = u16::from_le_bytes(raw[28..30].try_into().expect("2 bytes")) as usize;
    let mut group_order = vec![raw_group];
    group_order.extend(groups.iter().filter(|&&g| g != raw_group));
    let max_len = room.min(MAX_KEY_BYTES);
    let lens = std::iter::once(raw_len)
        .filter(|&l| (1..=max_len).contains(&l))
        .chain((1..=max_len).filter(|&l| l != raw_len));
    let lens: Vec<usize> = lens.collect();
    for &group in &group_order {
        for &len in &lens {
            let key = &region[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len];
            let tag = key_tag(group, key);
            let mut h = [0u8; 64];
            h[..].copy_from_slice(&raw);
            write_identity(&mut h, block_seq, group, len, tag);
            let held = tag_bytes(&h)
                .iter()
                .zip(&raw_tag)
                .filter(|(a, b)| a == b)
                .count();
            if held < TAG_BYTES_THAT_MUST_HOLD {
                continue;
            }
            let header = RecordHeader::decode(&h)
                .filter(|r| r.block_seq == block_seq)
                .or_else(|| {
                    repair_one_byte(&h, |h| {
                        RecordHeader::decode(h).filter(|r| {
                            r.block_seq == block_seq
                                && r.group == group
                                && r.key_len as usize == len
                                && r.key_tag == Some(tag)
                        })
                    })
                    .map(|r| r.header)
                });
            return Some(Identity {
                group,
                key_len: len,
                tag,
                header,
            });
        }
    }
    None
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

    #[test]
    fn one_damaged_header_byte_is_repaired_and_two_are_not() {
        let b = frame(b"user:42", &[5u8; 300]);
        let intact = RecordHeader::decode(&b).unwrap();
        assert_eq!(repair_record_header(&b, 1), None, "nothing to repair");
        for at in 0..RECORD_HEADER_BYTES {
            let mut d = b.clone();
            d[at] ^= 0x5a;
            let r = repair_record_header(&d, 1).unwrap_or_else(|| panic!("byte {at}"));
            assert_eq!((r.header, r.byte), (intact, at));
            assert_eq!(
                repair_record_header(&d, 2),
                None,
                "another use of the block"
            );
        }
        let mut two = b.clone();
        two[17] ^= 1;
        two[40] ^= 1;
        assert_eq!(repair_record_header(&two, 1), None);
        assert_eq!(repair_record_header(&[0u8; 64], 1), None);
    }

    #[test]
    fn one_damaged_block_header_byte_is_repaired() {
        use crate::format::BlockKind;
        let h = BlockHeader {
            block: 3,
            seq: 9,
            store_id_lo: 77,
            kind: BlockKind::Foreground,
            created_ms: 5,
        };
        let mut b = vec![0u8; BLOCK_HEADER_BYTES];
        h.encode(&mut b);
        assert_eq!(repair_block_header(&b, 3, 77), None);
        for at in 0..BLOCK_HEADER_BYTES {
            let mut d = b.clone();
            d[at] ^= 0x81;
            let r = repair_block_header(&d, 3, 77).unwrap_or_else(|| panic!("byte {at}"));
            assert_eq!((r.header, r.byte), (h, at));
            assert_eq!(
                repair_block_header(&d, 3, 78),
                None,
                "another store's block"
            );
        }
        let mut erased = vec![0u8; BLOCK_HEADER_BYTES];
        erased[20] = 1;
        assert_eq!(repair_block_header(&erased, 3, 77), None);
    }

    #[test]
    fn a_header_damaged_in_several_bytes_still_names_its_key() {
        let b = frame(b"user:42", &[5u8; 300]);
        let intact = RecordHeader::decode(&b).unwrap();
        let tag = key_tag(3, b"user:42");
        // Group and key length damaged: found, and the header restored whole.
        let mut d = b.clone();
        d[25] ^= 0x10;
        d[28] ^= 0x03;
        assert_eq!(repair_record_header(&d, 1), None, "two bytes");
        let id = find_identity(&d, 1, &[3]).expect("identified");
        assert_eq!((id.group, id.key_len, id.tag), (3, 7, tag));
        assert_eq!(id.header, Some(intact));
        // Two tag bytes restored from the key; the LSN and the expiry stay damaged: the key
        // is found, the LSN is not known.
        let mut d = b.clone();
        d[44] ^= 0x01;
        d[35] ^= 0x80;
        d[18] ^= 0x40;
        d[38] ^= 0x02;
        let id = find_identity(&d, 1, &[]).expect("identified");
        assert_eq!((id.group, id.key_len, id.tag, id.header), (3, 7, tag, None));
        // The LSN and one more byte: restored from the known identity plus one repair.
        let mut d = b.clone();
        d[18] ^= 0x40;
        d[29] ^= 0x01;
        assert_eq!(find_identity(&d, 1, &[]).unwrap().header, Some(intact));
        // Key bytes damaged as well as the tag: nothing names the key.
        let mut d = b.clone();
        d[44] ^= 0x01;
        d[45] ^= 0x01;
        d[46] ^= 0x01;
        d[RECORD_HEADER_BYTES] ^= 0x01;
        assert_eq!(find_identity(&d, 1, &[3]), None);
    }

    #[test]
    fn an_earlier_use_of_the_block_is_not_damage() {
        // A whole frame written in sequence 1, read where the block is now in sequence 2 (a
        // crash lost this use's sectors over it): no key is named, so no damage is made up.
        let b = frame(b"user:42", &[5u8; 300]);
        assert_eq!(RecordHeader::decode(&b).map(|h| h.block_seq), Some(1));
        assert_eq!(repair_record_header(&b, 2), None);
        assert_eq!(find_identity(&b, 2, &[3]), None);
        // The same frame in its own sequence is intact, and damaged in two bytes it is named.
        assert_eq!(
            find_identity(&b, 1, &[3]).unwrap().tag,
            key_tag(3, b"user:42")
        );
        let mut d = b.clone();
        d[25] ^= 0x10;
        d[28] ^= 0x03;
        assert!(
            find_identity(&d, 2, &[3]).is_some(),
            "damage in this use is still found"
        );
    }
}
