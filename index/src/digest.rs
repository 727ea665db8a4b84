//! The 128-bit digest that names a record, and how the index splits it.

use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// A record's name in the index: xxh3-128 of (group id, key).
pub type Digest = u128;

/// Number of partitions; a power of two selected by the top digest bits.
pub const PARTITIONS: usize = 1 << PARTITION_BITS;
/// Digest bits that select the partition (the top ones).
pub const PARTITION_BITS: u32 = 12;
/// Digest bits stored in each entry (the low ones).
pub const STORED_BITS: u32 = 80;
/// Bits that tell two digests apart inside the index: stored plus partition bits.
pub const IDENTITY_BITS: u32 = STORED_BITS + PARTITION_BITS;
const _: () = assert!(IDENTITY_BITS >= 88);

/// The digest bits the index neither stores nor uses to choose a partition.
const UNUSED_MASK: u128 = ((1u128 << (128 - PARTITION_BITS)) - 1) & !((1u128 << STORED_BITS) - 1);

/// Keys up to this length are hashed from one stack buffer in a single xxh3 call.
const STACK_KEY_BYTES: usize = 252;

/// xxh3-128 over `group_id` (u32 little-endian) followed by the key bytes.
pub fn digest(group_id: u32, key: &[u8]) -> Digest {
    if key.len() <= STACK_KEY_BYTES {
        let mut buf = [0u8; 4 + STACK_KEY_BYTES];
        buf[..4].copy_from_slice(&group_id.to_le_bytes());
        buf[4..4 + key.len()].copy_from_slice(key);
        return xxh3_128(&buf[..4 + key.len()]);
    }
    let mut hasher = Xxh3::new();
    hasher.update(&group_id.to_le_bytes());
    hasher.update(key);
    hasher.digest128()
}

/// The part of `d` the index keeps: two digests with the same identity are the same entry.
///
/// [`crate::Index::for_each`] yields identities, and every index operation treats a digest and
/// its identity alike.
#[inline]
pub fn identity(d: Digest) -> Digest {
    d & !UNUSED_MASK
}

/// A digest split into the pieces the index uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DigestParts {
    /// Which partition holds the entry.
    pub partition: usize,
    /// Stored bits 0-63; the low bits also pick the bucket inside the partition.
    pub lo: u64,
    /// Stored bits 64-79.
    pub hi: u16,
}

impl DigestParts {
    #[inline]
    pub fn of(d: Digest) -> DigestParts {
        DigestParts {
            partition: (d >> (128 - PARTITION_BITS)) as usize,
            lo: d as u64,
            hi: (d >> 64) as u16,
        }
    }

    /// Rebuilds the identity of the digest these parts came from.
    #[inline]
    pub fn identity(partition: usize, lo: u64, hi: u16) -> Digest {
        ((partition as u128) << (128 - PARTITION_BITS)) | (u128::from(hi) << 64) | u128::from(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_xxh3_of_group_then_key() {
        let mut bytes = 7u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"user:42");
        assert_eq!(digest(7, b"user:42"), xxh3_128(&bytes));
        assert_ne!(digest(7, b"user:42"), digest(8, b"user:42"));
    }

    #[test]
    fn long_keys_hash_the_same_as_one_shot() {
        for len in [
            0,
            1,
            STACK_KEY_BYTES - 1,
            STACK_KEY_BYTES,
            STACK_KEY_BYTES + 1,
            5000,
        ] {
            let key: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut bytes = 3u32.to_le_bytes().to_vec();
            bytes.extend_from_slice(&key);
            assert_eq!(digest(3, &key), xxh3_128(&bytes), "key of {len} bytes");
        }
    }

    #[test]
    fn parts_round_trip_to_the_identity() {
        let d = digest(1, b"k");
        let p = DigestParts::of(d);
        assert!(p.partition < PARTITIONS);
        assert_eq!(DigestParts::identity(p.partition, p.lo, p.hi), identity(d));
        assert_eq!(
            identity(d).count_ones() + (d & UNUSED_MASK).count_ones(),
            d.count_ones()
        );
        assert_eq!(UNUSED_MASK.count_ones(), 128 - IDENTITY_BITS);
    }
}
