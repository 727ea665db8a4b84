//! A store whose superblock was lost (its first 4 KiB read as zeros) must not be taken for a
//! blank device. Opening it used to format a new store over it: a new store id made every
//! block foreign, so every acknowledged record was silently gone (found by the fuzz target
//! `recovery_image`, whose patches zeroed the superblock). The open is refused instead, and
//! the device is left as it was.

use std::sync::Arc;

use quiver_engine::{Config, Durability, Engine, Error, WriteOptions};
use quiver_wal::device::{CrashMode, FaultDevice};
use quiver_wal::Device;

const BLOCK: u64 = 128 << 10;

fn config() -> Config {
    Config {
        write_block_bytes: BLOCK as u32,
        background: false,
        ..Config::memory(0)
    }
}

/// The image of a store holding one synced record, closed cleanly.
fn used_store() -> Vec<u8> {
    let dev = Arc::new(FaultDevice::new(16 * BLOCK, 7));
    let e = Engine::open_on_device(config(), Arc::clone(&dev) as Arc<dyn Device>).expect("open");
    let sync = WriteOptions {
        durability: Some(Durability::Sync),
        ..WriteOptions::default()
    };
    e.put(1, b"k", b"acknowledged", &sync).expect("put");
    e.close().expect("close");
    dev.crash(CrashMode::DropUnsynced)
}

fn open_image(image: Vec<u8>) -> (Arc<FaultDevice>, Result<Engine, Error>) {
    let dev = Arc::new(FaultDevice::from_image(image, 0));
    let e = Engine::open_on_device(config(), Arc::clone(&dev) as Arc<dyn Device>);
    (dev, e)
}

#[test]
fn a_zeroed_superblock_over_a_used_store_is_refused_not_formatted() {
    let mut image = used_store();
    image[..4096].fill(0);
    let (dev, opened) = open_image(image.clone());
    match opened {
        Err(Error::Wal(quiver_wal::Error::NotOurs(why))) => {
            assert!(why.contains("superblock was lost"), "{why}")
        }
        Err(other) => panic!("expected a refusal naming the lost superblock, got {other}"),
        Ok(e) => panic!(
            "a store with a zeroed superblock was opened as {:?}: its record reads {:?}",
            e.recovery_report().mode,
            e.get(1, b"k").map(|r| r.map(|r| r.value))
        ),
    }
    assert!(
        dev.crash(CrashMode::KeepUnsynced) == image,
        "the refused device was written to"
    );
}

#[test]
fn each_trace_of_a_store_is_enough_to_refuse() {
    // The marks slots alone (block 1's header erased) and block 1's header alone (marks
    // erased) each name the device as a store.
    for erase in [BLOCK as usize..BLOCK as usize + 64, 4096..3 * 4096] {
        let mut image = used_store();
        image[..4096].fill(0);
        image[erase.clone()].fill(0);
        let (_, opened) = open_image(image);
        assert!(
            matches!(opened, Err(Error::Wal(quiver_wal::Error::NotOurs(_)))),
            "opened with {erase:?} erased too"
        );
    }
}

#[test]
fn a_blank_device_is_still_formatted() {
    let (_, opened) = open_image(vec![0; 16 * BLOCK as usize]);
    let e = opened.expect("a blank device formats");
    assert_eq!(e.recovery_report().mode, "created");
}
