//! One partition's hash table: a bucket array of chain heads over a chunked slab.
//!
//! Bucket `b` holds the number of the first slot whose digest has `digest_lo & mask == b`;
//! slots chain through `Slot::next`. When the table holds more than [`MAX_LOAD`] entries per
//! bucket the bucket array doubles and every chain is rebuilt from the slab; that touches this
//! partition only, under its own write lock.

use crate::digest::DigestParts;
use crate::entry::{Entry, Slot, NIL};
use crate::location::Location;
use crate::prefetch::prefetch;
use crate::slab::{Slab, MAX_SLOTS};

/// Buckets in a fresh partition.
pub(crate) const MIN_BUCKETS: usize = 16;
/// Entries per bucket above which the bucket array doubles (so the load runs from 1 to 2).
pub(crate) const MAX_LOAD: usize = 2;
/// Chunk pointers in one cache line.
const CHUNK_POINTERS_PER_LINE: usize = 64 / std::mem::size_of::<usize>();
/// Largest bucket array: enough for [`MAX_SLOTS`] entries at the lowest load.
const MAX_BUCKETS: usize = 1 << 31;

pub(crate) struct Table {
    buckets: Box<[u32]>,
    slab: Slab,
    len: usize,
}

impl Table {
    pub fn new() -> Table {
        Table::with_expected(0)
    }

    /// A table sized so that `records` entries fit without rehashing.
    pub fn with_expected(records: usize) -> Table {
        let records = records.min(MAX_SLOTS);
        let buckets = records
            .div_ceil(MAX_LOAD)
            .next_power_of_two()
            .clamp(MIN_BUCKETS, MAX_BUCKETS);
        let mut slab = Slab::new();
        slab.reserve_chunks_for(records);
        Table {
            buckets: vec![NIL; buckets].into_boxed_slice(),
            slab,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Heap bytes held by the bucket array and the slab.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<u32>() + self.slab.heap_bytes()
    }

    #[inline]
    fn bucket_of(&self, lo: u64) -> usize {
        lo as usize & (self.buckets.len() - 1)
    }

    /// Starts loading what a probe for `lo` reads first: its chain head, and the chunk table
    /// that turns slot numbers into addresses (its first two cache lines, which cover every
    /// partition of up to 16 chunks, or about 16 million records in the whole index).
    #[inline]
    pub fn prefetch_probe(&self, lo: u64) {
        prefetch(&self.buckets[self.bucket_of(lo)]);
        let (chunk_table, chunks) = self.slab.chunk_table();
        if chunks > 0 {
            prefetch(chunk_table);
        }
        if chunks > CHUNK_POINTERS_PER_LINE {
            prefetch(chunk_table.wrapping_add(CHUNK_POINTERS_PER_LINE));
        }
    }

    #[inline]
    pub fn head(&self, lo: u64) -> u32 {
        self.buckets[self.bucket_of(lo)]
    }

    #[inline]
    pub fn slot(&self, idx: u32) -> &Slot {
        self.slab.get(idx)
    }

    /// The slot number holding `p`, if any.
    #[inline]
    fn find(&self, p: DigestParts) -> Option<u32> {
        let mut idx = self.head(p.lo);
        while idx != NIL {
            let slot = self.slab.get(idx);
            if slot.matches(p) {
                return Some(idx);
            }
            idx = slot.next;
        }
        None
    }

    #[inline]
    pub fn get(&self, p: DigestParts) -> Option<Entry> {
        self.find(p).map(|idx| self.slab.get(idx).entry())
    }

    /// Upserts; returns the entry it replaced.
    pub fn insert(&mut self, p: DigestParts, e: Entry) -> Option<Entry> {
        if let Some(idx) = self.find(p) {
            let slot = self.slab.get_mut(idx);
            let previous = slot.entry();
            slot.set_entry(e);
            return Some(previous);
        }
        if self.len >= self.buckets.len() * MAX_LOAD && self.buckets.len() < MAX_BUCKETS {
            self.grow();
        }
        let b = self.bucket_of(p.lo);
        self.buckets[b] = self.slab.alloc(Slot::new(p, e, self.buckets[b]));
        self.len += 1;
        None
    }

    pub fn remove(&mut self, p: DigestParts) -> Option<Entry> {
        self.remove_where(p, |_| true)
    }

    /// Removes the entry only if it still points at `expected`.
    pub fn remove_if_at(&mut self, p: DigestParts, expected: Location) -> Option<Entry> {
        let expected = expected.pack();
        self.remove_where(p, |slot| slot.loc == expected)
    }

    /// Replaces the location only if it is still `expected`.
    pub fn relocate(&mut self, p: DigestParts, expected: Location, new_loc: Location) -> bool {
        let Some(idx) = self.find(p) else {
            return false;
        };
        let slot = self.slab.get_mut(idx);
        if slot.loc != expected.pack() {
            return false;
        }
        let entry = Entry {
            loc: new_loc,
            ..slot.entry()
        };
        slot.set_entry(entry);
        true
    }

    /// Appends every live entry as (stored digest bits lo, hi, entry).
    pub fn collect(&self, out: &mut Vec<(u64, u16, Entry)>) {
        let live = self.slab.iter().filter(|(_, s)| !s.is_vacant());
        out.extend(live.map(|(_, s)| (s.digest_lo, s.digest_hi, s.entry())));
    }

    /// Drops every entry and gives back all memory beyond a fresh table.
    pub fn clear(&mut self) {
        *self = Table::new();
    }

    fn remove_where(
        &mut self,
        p: DigestParts,
        keep_going: impl Fn(&Slot) -> bool,
    ) -> Option<Entry> {
        let b = self.bucket_of(p.lo);
        let mut prev = NIL;
        let mut idx = self.buckets[b];
        while idx != NIL {
            let slot = self.slab.get(idx);
            if slot.matches(p) {
                if !keep_going(slot) {
                    return None;
                }
                let (entry, next) = (slot.entry(), slot.next);
                match prev {
                    NIL => self.buckets[b] = next,
                    _ => self.slab.get_mut(prev).next = next,
                }
                self.slab.release(idx);
                self.len -= 1;
                return Some(entry);
            }
            prev = idx;
            idx = slot.next;
        }
        None
    }

    /// Doubles the bucket array and relinks every live slot, walking the slab in order.
    fn grow(&mut self) {
        let buckets = self.buckets.len() * 2;
        let mask = buckets - 1;
        let mut heads = vec![NIL; buckets].into_boxed_slice();
        for (idx, slot) in self.slab.iter_mut().filter(|(_, s)| !s.is_vacant()) {
            let b = slot.digest_lo as usize & mask;
            slot.next = heads[b];
            heads[b] = idx;
        }
        self.buckets = heads;
    }

    #[cfg(test)]
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Walks every chain and the slab; panics if they disagree.
    #[cfg(test)]
    pub fn check(&self) {
        let mut chained = 0;
        for (b, &head) in self.buckets.iter().enumerate() {
            let mut idx = head;
            while idx != NIL {
                let slot = self.slab.get(idx);
                assert!(!slot.is_vacant(), "vacant slot {idx} in chain {b}");
                assert_eq!(
                    self.bucket_of(slot.digest_lo),
                    b,
                    "slot {idx} in the wrong chain"
                );
                chained += 1;
                idx = slot.next;
            }
        }
        let live = self.slab.iter().filter(|(_, s)| !s.is_vacant()).count();
        assert_eq!(chained, self.len);
        assert_eq!(live, self.len);
        assert_eq!(self.slab.heap_bytes(), self.slab.recount_heap_bytes());
    }
}
