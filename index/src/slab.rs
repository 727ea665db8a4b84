//! A partition's entries: a chunked slab of 32-byte slots with a free list.
//!
//! Slot `i` lives in chunk `i / CHUNK_SLOTS` at position `i % CHUNK_SLOTS`. Full chunks are
//! fixed 8 KiB arrays reached through a table of thin pointers (8 bytes each, so a lookup's
//! chunk pointer sits in one or two cache lines that a batch can prefetch); the chunk being
//! filled, the tail, grows by doubling from [`FIRST_CHUNK_SLOTS`] to [`CHUNK_SLOTS`] and then
//! joins the table without being copied. Growth therefore copies at most half a chunk (4 KiB),
//! never moves the other entries, and leaves under one chunk (8 KiB) of unused capacity per
//! partition. Freed slots go on a free list threaded through `Slot::next` and are reused before
//! the slab grows; the slab never shrinks until its partition is cleared.

use crate::entry::{Slot, NIL, VACANT};

/// Slots in a full chunk: 8 KiB of entries.
pub(crate) const CHUNK_SLOTS: usize = 256;
const CHUNK_SHIFT: u32 = CHUNK_SLOTS.trailing_zeros();
/// Capacity of a fresh tail chunk; doubled until it reaches [`CHUNK_SLOTS`].
pub(crate) const FIRST_CHUNK_SLOTS: usize = 16;
/// Most slots one partition can hold: slot numbers are `u32` and `NIL` is reserved.
pub(crate) const MAX_SLOTS: usize = NIL as usize;
const _: () = assert!(CHUNK_SLOTS.is_power_of_two() && FIRST_CHUNK_SLOTS.is_power_of_two());

type Chunk = Box<[Slot; CHUNK_SLOTS]>;

pub(crate) struct Slab {
    /// Full chunks, in slot order.
    full: Vec<Chunk>,
    /// The chunk being filled: slots `full.len() * CHUNK_SLOTS ..`.
    tail: Vec<Slot>,
    free_head: u32,
    /// Heap bytes held, counted from capacities; refreshed whenever an allocation changes.
    heap_bytes: usize,
}

impl Slab {
    pub fn new() -> Slab {
        Slab {
            full: Vec::new(),
            tail: Vec::new(),
            free_head: NIL,
            heap_bytes: 0,
        }
    }

    /// Room in the chunk table for `slots` entries, so the table itself never reallocates
    /// before that.
    pub fn reserve_chunks_for(&mut self, slots: usize) {
        let chunks = slots / CHUNK_SLOTS;
        self.full
            .reserve_exact(chunks.saturating_sub(self.full.len()));
        self.heap_bytes = self.count_heap_bytes();
    }

    #[inline]
    pub fn get(&self, idx: u32) -> &Slot {
        let (chunk, pos) = split(idx);
        match self.full.get(chunk) {
            Some(c) => &c[pos],
            None => &self.tail[pos],
        }
    }

    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> &mut Slot {
        let (chunk, pos) = split(idx);
        match self.full.get_mut(chunk) {
            Some(c) => &mut c[pos],
            None => &mut self.tail[pos],
        }
    }

    /// The table of full-chunk pointers and its length, for prefetching.
    #[inline]
    pub fn chunk_table(&self) -> (*const Chunk, usize) {
        (self.full.as_ptr(), self.full.len())
    }

    /// Stores `slot`, reusing a freed slot when there is one; returns its number.
    pub fn alloc(&mut self, slot: Slot) -> u32 {
        if self.free_head != NIL {
            let idx = self.free_head;
            let freed = self.get_mut(idx);
            debug_assert!(freed.is_vacant());
            let next_free = freed.next;
            *freed = slot;
            self.free_head = next_free;
            return idx;
        }
        self.push(slot)
    }

    /// Puts slot `idx` on the free list. The caller has unlinked it from its chain.
    pub fn release(&mut self, idx: u32) {
        let free_head = self.free_head;
        let slot = self.get_mut(idx);
        debug_assert!(!slot.is_vacant());
        slot.loc = VACANT;
        slot.next = free_head;
        self.free_head = idx;
    }

    /// Every slot ever handed out, vacant ones included, with its number.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Slot)> {
        let full = self.full.iter().flat_map(|c| c.iter());
        full.chain(self.tail.iter())
            .enumerate()
            .map(|(i, s)| (i as u32, s))
    }

    /// Like [`Slab::iter`], with the slots writable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut Slot)> {
        let full = self.full.iter_mut().flat_map(|c| c.iter_mut());
        full.chain(self.tail.iter_mut())
            .enumerate()
            .map(|(i, s)| (i as u32, s))
    }

    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes
    }

    fn push(&mut self, slot: Slot) -> u32 {
        let used = self.full.len() * CHUNK_SLOTS + self.tail.len();
        assert!(
            used < MAX_SLOTS,
            "partition holds {used} slots, the limit is {MAX_SLOTS}"
        );
        if self.tail.len() == CHUNK_SLOTS {
            self.seal_tail();
        }
        let grows = self.tail.len() == self.tail.capacity();
        if grows {
            // Doubling stays within CHUNK_SLOTS: the capacity is a power of two below it.
            let more = self.tail.capacity().max(FIRST_CHUNK_SLOTS);
            self.tail.reserve_exact(more);
        }
        self.tail.push(slot);
        debug_assert!(self.tail.capacity() <= CHUNK_SLOTS);
        if grows {
            self.heap_bytes = self.count_heap_bytes();
        }
        used as u32
    }

    /// Moves the full tail into the chunk table; its buffer becomes the chunk as is.
    fn seal_tail(&mut self) {
        let tail = std::mem::take(&mut self.tail);
        debug_assert_eq!(tail.capacity(), CHUNK_SLOTS);
        let chunk: Chunk = tail
            .into_boxed_slice()
            .try_into()
            .expect("a full tail holds CHUNK_SLOTS slots");
        self.full.push(chunk);
    }

    fn count_heap_bytes(&self) -> usize {
        let table = self.full.capacity() * std::mem::size_of::<Chunk>();
        let chunks = self.full.len() * std::mem::size_of::<[Slot; CHUNK_SLOTS]>();
        table + chunks + self.tail.capacity() * std::mem::size_of::<Slot>()
    }

    #[cfg(test)]
    pub fn recount_heap_bytes(&self) -> usize {
        self.count_heap_bytes()
    }
}

#[inline]
fn split(idx: u32) -> (usize, usize) {
    let idx = idx as usize;
    (idx >> CHUNK_SHIFT, idx & (CHUNK_SLOTS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::DigestParts;
    use crate::entry::Entry;
    use crate::location::Location;

    fn slot(n: u32) -> Slot {
        let p = DigestParts {
            partition: 0,
            lo: u64::from(n),
            hi: 0,
        };
        let loc = Location::new(n, 0, 1).unwrap();
        Slot::new(
            p,
            Entry {
                loc,
                generation: 0,
                expiry_s: 0,
                last_update_s: 0,
            },
            NIL,
        )
    }

    #[test]
    fn slots_keep_their_numbers_across_chunks() {
        let mut slab = Slab::new();
        let n = 3 * CHUNK_SLOTS as u32 + 17;
        for i in 0..n {
            assert_eq!(slab.alloc(slot(i)), i);
            assert_eq!(slab.heap_bytes(), slab.recount_heap_bytes());
        }
        for i in 0..n {
            assert_eq!(slab.get(i).digest_lo, u64::from(i));
        }
        assert_eq!(slab.iter().count(), n as usize);
        assert!(slab.iter().all(|(i, s)| s.digest_lo == u64::from(i)));
        assert_eq!(slab.chunk_table().1, 3);
    }

    #[test]
    fn unused_capacity_stays_under_one_chunk() {
        let mut slab = Slab::new();
        for i in 0..(5 * CHUNK_SLOTS as u32 + 1) {
            slab.alloc(slot(i));
            let slots = slab.iter().count();
            let chunk_table = slab.full.capacity() * 8;
            let spare = slab.heap_bytes() - chunk_table - slots * 32;
            assert!(
                spare < CHUNK_SLOTS * 32,
                "{spare} spare bytes at {slots} slots"
            );
        }
    }

    #[test]
    fn freed_slots_are_reused_last_in_first_out() {
        let mut slab = Slab::new();
        for i in 0..40 {
            slab.alloc(slot(i));
        }
        slab.release(3);
        slab.release(30);
        assert!(slab.get(3).is_vacant());
        assert_eq!(slab.alloc(slot(100)), 30);
        assert_eq!(slab.alloc(slot(101)), 3);
        assert_eq!(slab.alloc(slot(102)), 40);
    }
}
