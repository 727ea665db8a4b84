//! Quiver's primary index in RAM: it maps the digest of (feature group, entity key) to where the
//! record lives on the device, with the record's generation, expiry and last-update time.
//!
//! It must never grow past its memory budget of 40 bytes per record (Aerospike spends 64), never
//! stall every writer to grow (growth is per partition), never block a lookup on another
//! partition's writer, and never claim to know a key: it stores 92 bits of identity per entry,
//! so a hit is a strong hint that the engine confirms against the full digest and key stored in
//! the record itself.
//!
//! # Layout
//!
//! - **Partitions.** 4096 partitions chosen by the top 12 digest bits, each a hash table behind
//!   its own `parking_lot::RwLock`, on its own cache line. A writer locks one partition; growing
//!   a partition's table happens under that lock only, so it never stalls the others.
//! - **Slab.** A partition's entries live in a chunked slab of 32-byte slots: full chunks of
//!   256 slots (8 KiB) reached through a table of 8-byte pointers, plus one tail chunk that
//!   doubles from 16 slots and joins the table, uncopied, when full. Growth copies at most half
//!   a chunk, never moves other entries, and leaves under one chunk of unused capacity per
//!   partition. Removed slots go on a free list threaded through the slot's `next` field and
//!   are reused first; a partition's slab only shrinks when the index is cleared.
//! - **Buckets.** A power-of-two array of `u32` chain heads indexed by the low digest bits;
//!   slots chain through their `u32 next`. When entries exceed twice the buckets the array
//!   doubles and the chains are rebuilt by one sequential pass over the partition's slab (a few
//!   thousand slots at 10 million records), so the load factor stays between 1 and 2 and a hit
//!   reads about 1.5 slots. Open addressing over the slots themselves would save the bucket
//!   array but needs a load factor well below 1, which costs more than the 2-4 bytes of heads.
//! - **Slot.** 32 bytes, `#[repr(C)]`: the location packed into one `u64` (block 24 bits,
//!   offset 20, length 18, see [`Location`]), 80 digest bits in 10 bytes, generation (2),
//!   expiry (4), last update (4) and the chain link (4).
//! - **Batch lookups.** [`Index::get_many`] probes [`BATCH`] digests in lockstep rounds with
//!   prefetch hints, so their DRAM loads overlap instead of queueing one after the other.
//!
//! Huge pages are not requested. Every allocation here is at most 8 KiB except the bucket
//! arrays, so `madvise(MADV_HUGEPAGE)` would need an arena of our own; on the development
//! machine 16 prefetched random loads over 400 MiB took 21-25 ns each with 4 KiB pages and
//! 15-18 ns with huge pages, a gain that does not yet pay for that arena.
//!
//! # Digest identity and collisions
//!
//! A [`Digest`] is xxh3-128 of the group id (u32 little-endian) and the key. The index keeps 92
//! of its 128 bits: the 12 partition bits (implied by where the entry lives) and the low 80 bits
//! (stored). Two digests that agree on those 92 bits are the same entry to the index
//! ([`identity`] gives the kept bits; [`Index::for_each`] yields identities).
//!
//! With `n` records and 92 random bits:
//! - the chance that any two stored records share an identity is about `n² / 2^93`:
//!   1.0e-14 at 10 million records, 1.0e-10 at 1 billion;
//! - the chance that one lookup of an absent key falsely hits is `n / 2^92`: 2.0e-21 at
//!   10 million, 2.0e-19 at 1 billion.
//!
//! A false hit on read is caught by the engine, which checks the full digest and key stored in
//! the record. Two live records sharing an identity would overwrite each other's index entry;
//! at the probabilities above that is far rarer than undetected device errors.
//!
//! # Memory budget at 10 million records
//!
//! 10,000,000 / 4096 = 2441 records per partition on average.
//! - Slots: 32 bytes each.
//! - Slab slack: only the tail chunk has spare room, at most half its capacity; it averages
//!   about 60 slots per partition: ~0.8 bytes per record.
//! - Buckets: 2048 heads of 4 bytes per partition (load 1.19): 3.4 bytes per record; just
//!   after a doubling, at worst, 4 bytes per record.
//! - Chunk-pointer tables (~128 bytes) and the partition array (128 bytes per partition):
//!   ~0.1 bytes per record.
//!
//! Total: about 36.2 bytes per record, against the budget of 40. Measured by
//! `examples/index_ram.rs`: 36.23 by [`Index::memory_bytes`] and 37.3 by the process RSS, which
//! also counts what the allocator keeps: its per-allocation headers and the outgrown bucket
//! arrays and tail buffers it holds for reuse rather than returning to the system.

#![warn(missing_docs)]

mod batch;
mod digest;
mod entry;
mod error;
mod index;
mod location;
mod partition;
mod prefetch;
mod slab;

pub use batch::BATCH;
pub use digest::{
    digest, identity, Digest, IDENTITY_BITS, PARTITIONS, PARTITION_BITS, STORED_BITS,
};
pub use entry::Entry;
pub use error::IndexError;
pub use index::Index;
pub use location::Location;
