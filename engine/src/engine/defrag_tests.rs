//! Defragmentation at a full device, below the public API: a batch that runs out of free
//! blocks, and the sizing of batches to the free space.

use super::*;
use crate::config::{Config, WriteOptions};
use crate::engine::Engine;
use crate::Error;

const VALUE_BYTES: usize = 4000;

/// 20 blocks of records, then overwrites of two keys in five until the writers reach the
/// floor: the first blocks are about 60% live and three blocks are free.
fn full_store() -> Engine {
    let e = Engine::open(Config {
        write_block_bytes: 128 << 10,
        post_write_cache_bytes: 0,
        defrag_pause_ms: 0,
        checkpoint_interval_s: 0,
        background: false,
        ..Config::memory(4 << 20)
    })
    .unwrap();
    let w = WriteOptions::default();
    for i in 0..640u32 {
        e.put(1, &i.to_le_bytes(), &[1; VALUE_BYTES], &w).unwrap();
    }
    for i in (0..640u32).filter(|i| i % 5 < 2) {
        match e.put(1, &i.to_le_bytes(), &[2; VALUE_BYTES], &w) {
            Ok(_) => {}
            Err(Error::DeviceFull { .. }) => break,
            Err(other) => panic!("{other}"),
        }
    }
    e.flush().unwrap();
    e
}

fn claim(inner: &Inner, blocks: &[u32]) {
    for &b in blocks {
        let state = &inner.blocks.meta[b as usize].state;
        assert!(state
            .compare_exchange(SEALED, DEFRAG, Ordering::AcqRel, Ordering::Acquire)
            .is_ok());
    }
}

/// A batch whose copies need more than the free blocks: the blocks copied before the space
/// ran out are freed (not handed back), the rest are left for later.
#[test]
fn a_batch_that_runs_out_of_space_frees_what_it_copied() {
    let e = full_store();
    let inner = &e.inner;
    let free_before = inner.blocks.free_count();
    let batch = inner.blocks.defrag_candidates(90, DEFRAG_BATCH_BLOCKS);
    assert_eq!(batch.len(), DEFRAG_BATCH_BLOCKS);
    claim(inner, &batch);
    let (done, result) = inner.defrag_blocks(&batch);
    assert!(
        matches!(result, Err(Error::DeviceFull { .. })),
        "the batch fit after all: {result:?}"
    );
    assert!(done > 0, "nothing freed from a batch that copied blocks");
    for &b in &batch[..done] {
        assert_eq!(inner.blocks.state(b), super::super::blocks::FREE);
    }
    assert!(inner.blocks.free_count() > 0);
    assert!(inner.blocks.free_count() + done > free_before);
}

/// The next batch takes only as many blocks as the free ones can hold the copies of.
#[test]
fn batches_are_sized_to_the_free_space() {
    let e = full_store();
    let inner = &e.inner;
    let candidates = inner.blocks.defrag_candidates(90, usize::MAX);
    let n = inner.batch_len(&candidates, |_| true);
    let copies: i64 = candidates[..n]
        .iter()
        .map(|&b| inner.blocks.kept_bytes(b))
        .sum();
    let room = inner.blocks.free_count() as i64 * inner.blocks.block_bytes as i64;
    assert!((1..DEFRAG_BATCH_BLOCKS).contains(&n), "batch of {n}");
    assert!(
        copies <= room,
        "{copies} bytes of copies for {room} bytes free"
    );
}
