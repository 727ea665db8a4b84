//! Batch reads make the device reads of records that lie close together as one read, and that
//! changes nothing a caller can see but the number of reads: every key reads back as written,
//! and a failed read of a shared range fails only the records inside the failed pages, exactly
//! as lone reads would.

use std::sync::Arc;

use quiver_engine::{Config, Durability, Engine, WriteOptions};
use quiver_wal::device::{FaultDevice, FaultEffect, FaultOp, FaultPlan, FaultRule, FaultWhen};
use quiver_wal::Device;

const DEVICE_BYTES: u64 = 4 << 20;
const PAGE: u64 = 4096;
/// Records written: more than two write blocks' worth, so that the first block is sealed
/// and its records are read from the device.
const RECORDS: u32 = 1500;
/// The records read back: the first ones written, in the first block.
const READ: u32 = 300;
const VALUE_BYTES: usize = 200;

fn config() -> Config {
    Config {
        write_block_bytes: 128 << 10,
        post_write_cache_bytes: 0,
        defrag_pause_ms: 0,
        checkpoint_interval_s: 0,
        background: false,
        ..Config::memory(DEVICE_BYTES)
    }
}

fn open(dev: &Arc<FaultDevice>) -> Engine {
    let d: Arc<dyn Device> = dev.clone();
    Engine::open_on_device(config(), d).expect("open")
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..VALUE_BYTES).map(|j| (i as usize * 7 + j) as u8));
    v
}

/// A device holding `RECORDS` small records written one after another, and a fresh engine
/// on it (nothing of them in memory: every read goes to the device).
fn written() -> (Arc<FaultDevice>, Engine) {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 1));
    {
        let e = open(&dev);
        let w = WriteOptions {
            durability: Some(Durability::Buffered),
            ttl_s: None,
        };
        for i in 0..RECORDS {
            e.put(1, &key(i), &value(i), &w).expect("put");
        }
        e.flush().expect("flush");
    }
    let e = open(&dev);
    (dev, e)
}

#[test]
fn neighbours_are_read_together_and_read_back_whole() {
    let (_dev, e) = written();
    let keys: Vec<Vec<u8>> = (0..READ).map(key).collect();
    let req: Vec<(u32, &[u8])> = keys.iter().map(|k| (1, &k[..])).collect();
    let before = e.stats().device_reads;
    let got = e.get_many(&req).expect("get_many");
    let reads = e.stats().device_reads - before;
    for (i, r) in got.iter().enumerate() {
        let r = r.as_ref().unwrap_or_else(|| panic!("key {i} is missing"));
        assert_eq!(r.value, value(i as u32), "key {i}");
    }
    // ~220-byte records: more than a dozen share each 4 KiB page, so one read per record
    // would be 300 reads; the whole batch spans about 70 KiB.
    assert!(reads > 0, "the records were read from the device");
    assert!(
        reads * 10 <= u64::from(READ),
        "{reads} device reads for {READ} neighbouring records"
    );
}

#[test]
fn a_failed_shared_read_fails_only_the_records_of_the_failed_pages() {
    let (dev, e) = written();
    let keys: Vec<Vec<u8>> = (0..READ).map(key).collect();
    let req: Vec<(u32, &[u8])> = keys.iter().map(|k| (1, &k[..])).collect();
    let mut pages_with_failures = 0;
    let mut failed_keys = 0;
    for page in 0..DEVICE_BYTES / PAGE / 8 {
        let range = page * PAGE..(page + 1) * PAGE;
        dev.set_plan(FaultPlan::new(2).with(FaultRule {
            op: FaultOp::Read,
            when: FaultWhen::Touching(range.clone()),
            effect: FaultEffect::Eio,
            times: None,
        }));
        let alone: Vec<bool> = keys.iter().map(|k| e.get(1, k).is_ok()).collect();
        let batch: Vec<bool> = e
            .get_each(&req)
            .expect("get_each")
            .iter()
            .map(|r| r.is_ok())
            .collect();
        assert_eq!(
            batch, alone,
            "with reads of {range:?} failing, the batch answered other keys than lone reads"
        );
        let failed = alone.iter().filter(|ok| !**ok).count();
        if failed > 0 {
            assert!(failed < keys.len(), "one page held every record");
            pages_with_failures += 1;
            failed_keys += failed;
        }
        dev.clear_faults();
    }
    assert!(pages_with_failures > 1, "the faults missed the records");
    // Every record sits on one page or two: each failed at least once, none failed more than
    // twice over all the pages.
    assert!(failed_keys >= READ as usize && failed_keys <= 2 * READ as usize);
    for (i, k) in keys.iter().enumerate() {
        let got = e.get(1, k).expect("reads again once the faults are gone");
        assert_eq!(got.map(|r| r.value), Some(value(i as u32)));
    }
}
