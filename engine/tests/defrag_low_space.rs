//! Defragmentation on a device that writers have filled to the floor: the copies of one batch
//! may need more than the free blocks left. What was completely copied must still be freed,
//! and the batches must fit the free space, so that reclamation never wedges.

use quiver_engine::{Config, Engine, Error, WriteOptions};

const BLOCK_BYTES: u32 = 128 << 10;
const VALUE_BYTES: usize = 4000;

fn config() -> Config {
    Config {
        write_block_bytes: BLOCK_BYTES,
        post_write_cache_bytes: 0,
        defrag_pause_ms: 0,
        checkpoint_interval_s: 0,
        background: false,
        ..Config::memory(4 << 20)
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

fn value(i: u32, version: u8) -> Vec<u8> {
    let mut v = vec![version; VALUE_BYTES];
    v[..4].copy_from_slice(&i.to_le_bytes());
    v
}

#[test]
fn a_batch_larger_than_the_free_space_still_frees_blocks() {
    let e = Engine::open(config()).unwrap();
    let w = WriteOptions::default();
    // 20 blocks of records, then overwrites of two keys in five until the writers hit the
    // floor: the first 20 blocks are about 60% live, three blocks are free, and a batch of 8
    // such blocks needs about 5 blocks of copies.
    const KEYS: u32 = 640;
    let mut versions = vec![1u8; KEYS as usize];
    for i in 0..KEYS {
        e.put(1, &key(i), &value(i, 1), &w).unwrap();
    }
    let order = (0..KEYS)
        .filter(|i| i % 5 < 2)
        .chain((0..KEYS).filter(|i| i % 5 == 2));
    let full = order
        .into_iter()
        .find_map(|i| match e.put(1, &key(i), &value(i, 2), &w) {
            Ok(_) => {
                versions[i as usize] = 2;
                None
            }
            Err(err) => Some(err),
        });
    assert!(
        matches!(full, Some(Error::DeviceFull { .. })),
        "the writers did not reach the floor: {full:?}"
    );
    e.flush().unwrap();
    let free_before = e.stats().blocks_free;
    for _ in 0..4 {
        // An error (device full mid-batch) is allowed; freeing nothing is not.
        let _ = e.defragment(usize::MAX);
    }
    let s = e.stats();
    assert!(
        s.defrag_blocks_freed > 0 && s.blocks_free > free_before,
        "defragmentation is wedged: {} blocks freed, {} free before, {} after",
        s.defrag_blocks_freed,
        free_before,
        s.blocks_free
    );
    for i in 0..KEYS {
        let got = e.get(1, &key(i)).unwrap().map(|r| r.value);
        assert_eq!(got, Some(value(i, versions[i as usize])), "key {i}");
    }
    e.put(1, b"room again", &value(0, 3), &w)
        .expect("a write after defragmentation made room");
}
