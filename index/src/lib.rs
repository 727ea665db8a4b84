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
//! - **Slab.** A partition's entries live in a chunked slab of 32-byte slots: chunks of 256 slots (8 KiB), every chunk full but the last, which
//!   doubles from 16 slots. Growth never copies more than half a chunk, the others never move,
//!   and unused capacity stays under one chunk per partition. Removed slots go on a free list
//!   threaded through the slot's `next` field and are reused first.
//! - **Buckets.** A power-of-two array of `u32` chain heads indexed by the low digest bits;
//!   slots chain through their `u32 next`. When entries exceed twice the buckets the array
//!   doubles and the chains are rebuilt by one sequential pass over the partition's slab (a few
//!   thousand slots at 10 million records), so the load factor stays between 1 and 2 and a hit
//!   reads 1.5 slots on average.
//! - **Slot.** 32 bytes, `#[repr(C)]`: the location packed into one `u64` (block 24 bits,
//!   offset 20, length 18, see [`Location`]), 80 digest bits in 10 bytes, generation (2),
//!   expiry (4), last update (4) and the chain link (4).
//! - **Batch lookups.** [`Index::get_many`] probes 16 digests in lockstep rounds with prefetch
//!   hints, so their DRAM loads overlap instead of queueing one after the other.
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
//! - Slab slack: the last chunk of each partition is part full; with doubling from 16 slots its
//!   waste averages about 45 slots of 32 bytes per partition: ~0.6 bytes per record.
//! - Buckets: 2048 heads of 4 bytes per partition (load 1.19): 3.4 bytes per record. At worst,
//!   just after a doubling, 4 bytes per record.
//! - Chunk tables and the partition array: 4096 x (128 + ~16 x 24) bytes, ~0.2 bytes per record.
//!
//! Total: about 36 bytes per record, at most 37 anywhere near 10 million, against the budget of
//! 40. [`Index::memory_bytes`] counts all of it from allocated capacities.

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
