//! The index: 4096 partitions, each a hash table behind its own reader-writer lock.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

use crate::digest::{Digest, DigestParts, PARTITIONS};
use crate::entry::Entry;
use crate::location::Location;
use crate::partition::Table;

/// One partition. Aligned to a cache line so that two partitions' locks never share one.
#[repr(align(64))]
pub(crate) struct Partition {
    pub table: RwLock<Table>,
    /// Mirrors of the table's length and heap bytes, stored under the write lock so that
    /// [`Index::len`] and [`Index::memory_bytes`] need no lock.
    len: AtomicUsize,
    heap_bytes: AtomicUsize,
}

impl Partition {
    fn new(expected_records: usize) -> Partition {
        let table = Table::with_expected(expected_records);
        let heap_bytes = AtomicUsize::new(table.heap_bytes());
        Partition {
            table: RwLock::new(table),
            len: AtomicUsize::new(0),
            heap_bytes,
        }
    }

    fn publish(&self, table: &Table) {
        self.len.store(table.len(), Ordering::Relaxed);
        self.heap_bytes.store(table.heap_bytes(), Ordering::Relaxed);
    }
}

/// The primary index: digest -> [`Entry`]. See the crate documentation for the layout.
pub struct Index {
    pub(crate) partitions: Box<[Partition]>,
}

impl Default for Index {
    fn default() -> Index {
        Index::new()
    }
}

impl Index {
    /// An empty index of 4096 partitions.
    pub fn new() -> Index {
        Index::with_capacity(0)
    }

    /// An index presized so that about `records` entries fit without any partition rehashing.
    pub fn with_capacity(records: usize) -> Index {
        let per_partition = records / PARTITIONS;
        // Partition sizes spread like a Poisson count; four standard deviations covers them.
        let spread = 4 * (per_partition as f64).sqrt() as usize;
        let expected = if records == 0 {
            0
        } else {
            per_partition + spread
        };
        let partitions = (0..PARTITIONS).map(|_| Partition::new(expected)).collect();
        Index { partitions }
    }

    /// The entry for `d`, if any. Takes the partition's read lock for one probe.
    #[inline]
    pub fn get(&self, d: Digest) -> Option<Entry> {
        let p = DigestParts::of(d);
        self.partitions[p.partition].table.read().get(p)
    }

    /// Upserts; returns the entry it replaced.
    pub fn insert(&self, d: Digest, e: Entry) -> Option<Entry> {
        self.write(d, |table, p| table.insert(p, e))
    }

    /// Removes the entry for `d`; returns it.
    pub fn remove(&self, d: Digest) -> Option<Entry> {
        self.write(d, |table, p| table.remove(p))
    }

    /// Compare-and-set on the location (used by defragmentation): replaces the entry's location
    /// only if it is still `expected`; returns whether it did.
    pub fn relocate(&self, d: Digest, expected: Location, new_loc: Location) -> bool {
        self.write(d, |table, p| table.relocate(p, expected, new_loc))
    }

    /// Removes only if the entry still points at `expected` (expiry / group drop reclaim).
    pub fn remove_if_at(&self, d: Digest, expected: Location) -> Option<Entry> {
        self.write(d, |table, p| table.remove_if_at(p, expected))
    }

    /// Number of entries. Read without locks: exact when no writer runs at the same time.
    pub fn len(&self) -> usize {
        self.partitions
            .iter()
            .map(|p| p.len.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether [`Index::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of RAM the index holds: the partition array, every bucket array, every slab chunk
    /// and chunk table, counted from their allocated capacities. Allocator bookkeeping (about
    /// 16 bytes per allocation, one allocation per 8 KiB chunk) is not included.
    pub fn memory_bytes(&self) -> usize {
        let heap: usize = self
            .partitions
            .iter()
            .map(|p| p.heap_bytes.load(Ordering::Relaxed))
            .sum();
        std::mem::size_of_val::<[Partition]>(&self.partitions) + heap
    }

    /// Visits every entry, one partition at a time. A partition's entries are copied out under
    /// its read lock and `f` runs after the lock is released, so `f` may call back into the
    /// index (for instance [`Index::remove_if_at`]). The digest passed to `f` is the entry's
    /// identity (see [`crate::identity`]): the bits the index does not store are zero.
    pub fn for_each(&self, mut f: impl FnMut(Digest, Entry)) {
        let mut buf = Vec::new();
        for (i, partition) in self.partitions.iter().enumerate() {
            buf.clear();
            partition.table.read().collect(&mut buf);
            for &(lo, hi, e) in &buf {
                f(DigestParts::identity(i, lo, hi), e);
            }
        }
    }

    /// Removes every entry and gives back the memory, one partition at a time.
    pub fn clear(&self) {
        for partition in self.partitions.iter() {
            let mut table = partition.table.write();
            table.clear();
            partition.publish(&table);
        }
    }

    fn write<R>(&self, d: Digest, op: impl FnOnce(&mut Table, DigestParts) -> R) -> R {
        let p = DigestParts::of(d);
        let partition = &self.partitions[p.partition];
        let mut table = partition.table.write();
        let result = op(&mut table, p);
        partition.publish(&table);
        result
    }

    /// Checks every partition's chains against its slab.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        for partition in self.partitions.iter() {
            let table = partition.table.read();
            table.check();
            assert_eq!(partition.len.load(Ordering::Relaxed), table.len());
        }
    }
}

#[cfg(test)]
mod tests;
