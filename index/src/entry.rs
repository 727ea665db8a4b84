//! What the index says about a record, and the 32-byte slot that stores it.

use crate::digest::DigestParts;
use crate::location::Location;

/// What the index knows about one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where the record lives on the device.
    pub loc: Location,
    /// Bumped by the engine on each write; wraps.
    pub generation: u16,
    /// Unix seconds after which the record is expired; 0 = never expires.
    pub expiry_s: u32,
    /// Unix seconds of the last write.
    pub last_update_s: u32,
}

/// Marks a slot on the free list; never produced by [`Location::pack`].
pub(crate) const VACANT: u64 = u64::MAX;
/// End of a chain or of the free list.
pub(crate) const NIL: u32 = u32::MAX;

/// One entry as stored in a partition's slab.
///
/// ## Format
///
/// | offset | size | field           |
/// | ------ | ---- | --------------- |
/// | 0      | 8    | `loc`: packed [`Location`], or `VACANT` for a free slot |
/// | 8      | 8    | `digest_lo`: digest bits 0-63 |
/// | 16     | 2    | `digest_hi`: digest bits 64-79 |
/// | 18     | 2    | `generation`    |
/// | 20     | 4    | `expiry_s`      |
/// | 24     | 4    | `last_update_s` |
/// | 28     | 4    | `next`: next slot in the bucket chain (or free list), `NIL` at the end |
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Slot {
    pub loc: u64,
    pub digest_lo: u64,
    pub digest_hi: u16,
    pub generation: u16,
    pub expiry_s: u32,
    pub last_update_s: u32,
    pub next: u32,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 32);
const _: () = assert!(std::mem::align_of::<Slot>() == 8);

impl Slot {
    /// Builds the slot for `e` under the digest parts `p`, at the head of a chain whose rest is `next`.
    #[inline]
    pub fn new(p: DigestParts, e: Entry, next: u32) -> Slot {
        let loc = e.loc.pack();
        Slot {
            loc,
            digest_lo: p.lo,
            digest_hi: p.hi,
            generation: e.generation,
            expiry_s: e.expiry_s,
            last_update_s: e.last_update_s,
            next,
        }
    }

    #[inline]
    pub fn matches(&self, p: DigestParts) -> bool {
        self.digest_lo == p.lo && self.digest_hi == p.hi
    }

    #[inline]
    pub fn is_vacant(&self) -> bool {
        self.loc == VACANT
    }

    /// Overwrites everything but the digest and the chain link.
    #[inline]
    pub fn set_entry(&mut self, e: Entry) {
        let loc = e.loc.pack();
        self.loc = loc;
        self.generation = e.generation;
        self.expiry_s = e.expiry_s;
        self.last_update_s = e.last_update_s;
    }

    #[inline]
    pub fn entry(&self) -> Entry {
        debug_assert!(!self.is_vacant());
        Entry {
            loc: Location::unpack(self.loc),
            generation: self.generation,
            expiry_s: self.expiry_s,
            last_update_s: self.last_update_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::digest;

    #[test]
    fn slot_keeps_the_entry_and_the_stored_digest_bits() {
        let p = DigestParts::of(digest(9, b"key"));
        let e = Entry {
            loc: Location::new(Location::MAX_BLOCK, 17, 3).unwrap(),
            generation: u16::MAX,
            expiry_s: 1_900_000_000,
            last_update_s: 1_700_000_000,
        };
        let slot = Slot::new(p, e, 5);
        assert_eq!(slot.entry(), e);
        assert!(slot.matches(p));
        assert!(!slot.is_vacant());
        assert_eq!(slot.next, 5);
        let other = DigestParts { hi: p.hi ^ 1, ..p };
        assert!(!slot.matches(other));
    }

    #[test]
    fn vacant_never_equals_a_packed_location() {
        let max = Location::new(
            Location::MAX_BLOCK,
            Location::MAX_OFFSET_UNITS,
            Location::MAX_LEN_UNITS,
        )
        .unwrap();
        assert_ne!(max.pack(), VACANT);
    }
}
