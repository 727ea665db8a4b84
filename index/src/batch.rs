//! Batch lookups that keep many probes in flight.
//!
//! A lone lookup is a chain of dependent loads (bucket head, then slot, then the next slot);
//! each one that misses the cache costs a DRAM round trip. A batch works on up to [`BATCH`]
//! digests at once in rounds: prefetch every partition's lock and take the locks; prefetch
//! every bucket head and chunk table; read the heads and prefetch every first slot; then walk
//! the chains one step per round, prefetching each next slot. The loads of one round are
//! independent, so the memory system overlaps them.
//!
//! The batch holds the read locks of all its partitions while it runs. They are taken in
//! ascending partition order, each once: writers hold a single lock and readers climb in one
//! direction, so no cycle of waiting can form.

use parking_lot::RwLockReadGuard;

use crate::digest::{Digest, DigestParts};
use crate::entry::{Entry, NIL};
use crate::index::Index;
use crate::partition::Table;
use crate::prefetch::prefetch;

/// Digests looked up together: enough loads in flight to cover DRAM latency, few enough locks.
pub const BATCH: usize = 16;

impl Index {
    /// Looks up many digests, prefetching several probes at once. `out` is cleared and then
    /// holds one result per digest, in input order.
    pub fn get_many(&self, ds: &[Digest], out: &mut Vec<Option<Entry>>) {
        out.clear();
        out.reserve(ds.len());
        for group in ds.chunks(BATCH) {
            let results = self.get_group(group);
            out.extend_from_slice(&results[..group.len()]);
        }
    }

    fn get_group(&self, ds: &[Digest]) -> [Option<Entry>; BATCH] {
        let n = ds.len();
        assert!(
            n <= BATCH,
            "a group of {n} digests exceeds the batch of {BATCH}"
        );
        let parts: [DigestParts; BATCH] =
            std::array::from_fn(|i| DigestParts::of(ds[i.min(n - 1)]));
        for p in &parts[..n] {
            // The locks are taken one after the other; bring their lines in together first.
            prefetch(&self.partitions[p.partition]);
        }
        let mut guards: [Option<RwLockReadGuard<'_, Table>>; BATCH] = std::array::from_fn(|_| None);
        let table_of = self.lock_in_order(&parts[..n], &mut guards);
        let table = |i: usize| {
            guards[table_of[i] as usize]
                .as_deref()
                .expect("locked above")
        };

        for (i, p) in parts[..n].iter().enumerate() {
            table(i).prefetch_probe(p.lo);
        }
        let mut cursor = [NIL; BATCH];
        for i in 0..n {
            cursor[i] = table(i).head(parts[i].lo);
            if cursor[i] != NIL {
                prefetch(table(i).slot(cursor[i]));
            }
        }
        let mut results = [None; BATCH];
        let mut walking = true;
        while walking {
            walking = false;
            for i in 0..n {
                if cursor[i] == NIL {
                    continue;
                }
                let slot = table(i).slot(cursor[i]);
                if slot.matches(parts[i]) {
                    results[i] = Some(slot.entry());
                    cursor[i] = NIL;
                    continue;
                }
                cursor[i] = slot.next;
                if cursor[i] != NIL {
                    prefetch(table(i).slot(cursor[i]));
                    walking = true;
                }
            }
        }
        results
    }

    /// Read-locks each distinct partition of `parts` in ascending order; returns, for each
    /// digest, which guard covers it.
    fn lock_in_order<'a>(
        &'a self,
        parts: &[DigestParts],
        guards: &mut [Option<RwLockReadGuard<'a, Table>>; BATCH],
    ) -> [u8; BATCH] {
        let mut order: [u8; BATCH] = std::array::from_fn(|i| i as u8);
        order[..parts.len()].sort_unstable_by_key(|&i| parts[i as usize].partition);
        let mut table_of = [0u8; BATCH];
        let mut held = 0;
        let mut last = usize::MAX;
        for &i in &order[..parts.len()] {
            let partition = parts[i as usize].partition;
            if partition != last {
                guards[held] = Some(self.partitions[partition].table.read());
                held += 1;
                last = partition;
            }
            table_of[i as usize] = (held - 1) as u8;
        }
        table_of
    }
}
