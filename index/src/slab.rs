//! A partition's entries: a chunked slab of 32-byte slots with a free list.
//!
//! Slot `i` lives in chunk `i / CHUNK_SLOTS` at position `i % CHUNK_SLOTS`. Every chunk but the
//! last is full; the last one grows by doubling from [`FIRST_CHUNK_SLOTS`] to [`CHUNK_SLOTS`], so
//! growth copies at most half a chunk (4 KiB) and never moves the other entries, and unused
//! capacity stays under one chunk (8 KiB) per partition. Freed slots go on a free list threaded
//! through `Slot::next` and are reused before the slab grows; the slab never shrinks until its
//! partition is cleared.

use crate::entry::{Slot, NIL, VACANT};

/// Slots in a full chunk: 8 KiB of entries.
pub(crate) const CHUNK_SLOTS: usize = 256;
const CHUNK_SHIFT: u32 = CHUNK_SLOTS.trailing_zeros();
/// Capacity of a fresh chunk; doubled until it reaches [`CHUNK_SLOTS`].
pub(crate) const FIRST_CHUNK_SLOTS: usize = 16;
/// Most slots one partition can hold: slot numbers are `u32` and `NIL` is reserved.
pub(crate) const MAX_SLOTS: usize = NIL as usize;
const _: () = assert!(CHUNK_SLOTS.is_power_of_two() && FIRST_CHUNK_SLOTS.is_power_of_two());

pub(crate) struct Slab {
    chunks: Vec<Vec<Slot>>,
    free_head: u32,
    /// Heap bytes held, counted from capacities; refreshed whenever an allocation changes.
    heap_bytes: usize,
}

impl Slab {
    pub fn new() -> Slab {
        Slab {
            chunks: Vec::new(),
            free_head: NIL,
            heap_bytes: 0,
        }
    }

    /// Room in the chunk table for `slots` entries, so the table itself never reallocates
    /// before that.
    pub fn reserve_chunks_for(&mut self, slots: usize) {
        let chunks = slots.div_ceil(CHUNK_SLOTS);
        self.chunks
            .reserve_exact(chunks.saturating_sub(self.chunks.len()));
        self.heap_bytes = self.count_heap_bytes();
    }

    #[inline]
    pub fn get(&self, idx: u32) -> &Slot {
        let idx = idx as usize;
        &self.chunks[idx >> CHUNK_SHIFT][idx & (CHUNK_SLOTS - 1)]
    }

    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> &mut Slot {
        let idx = idx as usize;
        &mut self.chunks[idx >> CHUNK_SHIFT][idx & (CHUNK_SLOTS - 1)]
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
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| (i as u32, s))
    }

    /// Like [`Slab::iter`], with the slots writable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut Slot)> {
        self.chunks
            .iter_mut()
            .flatten()
            .enumerate()
            .map(|(i, s)| (i as u32, s))
    }

    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes
    }

    fn push(&mut self, slot: Slot) -> u32 {
        let needs_chunk = self.chunks.last().map_or(true, |c| c.len() == CHUNK_SLOTS);
        if needs_chunk {
            let used = self.chunks.len() * CHUNK_SLOTS;
            assert!(
                used < MAX_SLOTS,
                "partition holds {used} slots, the limit is {MAX_SLOTS}"
            );
            self.chunks.push(Vec::with_capacity(FIRST_CHUNK_SLOTS));
        }
        let last = self.chunks.len() - 1;
        let chunk = &mut self.chunks[last];
        let chunk_full = chunk.len() == chunk.capacity();
        if chunk_full {
            // Doubling stays within CHUNK_SLOTS: the capacity is a power of two below it.
            chunk.reserve_exact(chunk.capacity());
        }
        let idx = (last * CHUNK_SLOTS + chunk.len()) as u32;
        chunk.push(slot);
        debug_assert!(chunk.capacity() <= CHUNK_SLOTS);
        if needs_chunk || chunk_full {
            self.heap_bytes = self.count_heap_bytes();
        }
        idx
    }

    fn count_heap_bytes(&self) -> usize {
        let table = self.chunks.capacity() * std::mem::size_of::<Vec<Slot>>();
        let slots: usize = self.chunks.iter().map(Vec::capacity).sum();
        table + slots * std::mem::size_of::<Slot>()
    }

    #[cfg(test)]
    pub fn recount_heap_bytes(&self) -> usize {
        self.count_heap_bytes()
    }
}
