//! A block's first write torn so that its header sector is lost while later sectors land:
//! the block reads as free, and its frames must never count again, however the block is
//! reused. Before block sequences were reserved durably, recovery gave the next block the lost
//! block's sequence again; when it was the same block, its old frames past the new fill were
//! valid frames of the new use after the next crash, and their LSNs (which recovery had not
//! seen either) beat newer acknowledged writes: old data came back.

use std::sync::Arc;

use quiver_engine::{Config, Durability, Engine, WriteOptions};
use quiver_wal::device::{CrashMode, FaultDevice, FaultEffect, FaultOp, FaultPlan, FaultRule};
use quiver_wal::Device;

const BLOCK: u64 = 128 << 10;
/// Values of exactly this size make 1 KiB frames with 8-byte keys: 127 fill a block.
const FILLER_BYTES: usize = 1024 - 64 - 8;
const K: &[u8] = b"key-K000";

fn config() -> Config {
    Config {
        write_block_bytes: BLOCK as u32,
        background: false,
        ..Config::memory(0)
    }
}

fn open(dev: &Arc<FaultDevice>) -> Engine {
    Engine::open_on_device(config(), Arc::clone(dev) as Arc<dyn Device>).expect("open")
}

fn filler(i: u32) -> Vec<u8> {
    format!("f{i:07}").into_bytes()
}

/// Flushes `e` with the power going out between the device write and its sync: the write
/// is on the device but not durable, and the power loss leaves what `mode` says of it.
fn power_cut_at_next_sync(e: &Engine, dev: &FaultDevice, mode: CrashMode) {
    dev.set_plan(FaultPlan::new(1).with(FaultRule::once_after(FaultOp::Sync, 0, FaultEffect::Eio)));
    assert!(e.flush().is_err(), "the flush's sync failed");
    dev.clear_faults();
    dev.power_loss(mode);
}

#[test]
fn frames_of_a_block_whose_header_was_torn_away_never_come_back() {
    let dev = Arc::new(FaultDevice::new(16 * BLOCK, 153));
    let sync = WriteOptions {
        durability: Some(Durability::Sync),
        ..WriteOptions::default()
    };
    let buffered = WriteOptions::default();
    {
        // Block 1: K's first version, then fillers up to the block's end, all durable.
        let e = open(&dev);
        e.put(1, K, b"v1", &sync).unwrap();
        for i in 0..126 {
            e.put(1, &filler(i), &[0xab; FILLER_BYTES], &buffered)
                .unwrap();
        }
        e.flush().unwrap();
        // The next block: fillers, then K overwritten (in the block's third page), then one
        // flush whose write loses its first sector, the block's header.
        for i in 126..134 {
            e.put(1, &filler(i), &[0xcd; FILLER_BYTES], &buffered)
                .unwrap();
        }
        e.put(1, K, b"stale", &buffered).unwrap();
        for i in 134..140 {
            e.put(1, &filler(i), &[0xef; FILLER_BYTES], &buffered)
                .unwrap();
        }
        power_cut_at_next_sync(&e, &dev, CrashMode::TearLastFront { lose_sectors: 1 });
    }
    {
        // K is overwritten and acknowledged as durable. Then a large buffered write whose
        // header lands but whose body does not: recovery skips it, into whatever lies past it.
        let e = open(&dev);
        assert_eq!(e.get(1, K).unwrap().unwrap().value, b"v1");
        e.put(1, K, b"fresh", &sync).unwrap();
        e.put(1, b"key-Q000", &[0x51; 5000], &buffered).unwrap();
        power_cut_at_next_sync(&e, &dev, CrashMode::TearLast { keep_sectors: 1 });
    }
    let e = open(&dev);
    let got = e
        .get(1, K)
        .unwrap()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned());
    assert_eq!(
        got.as_deref(),
        Some("fresh"),
        "K holds its acknowledged value, not the frame of the torn block"
    );
    // Fillers 0..=126 fill block 1 after K's 80-byte frame; 127.. went into the torn block.
    for i in 127..140 {
        if let Some(r) = e.get(1, &filler(i)).unwrap() {
            panic!(
                "filler {i} of the torn block came back ({} bytes)",
                r.value.len()
            );
        }
    }
}
