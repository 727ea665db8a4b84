//! Defragmentation meets a block holding damaged frames that no read has found yet (the store
//! was opened from its checkpoint, which does not replay that block): the newest version of a
//! live key, and the tombstone of a deleted key, each with an older version of the key in a
//! block that stays. Defragmentation cannot copy a damaged frame, and freeing its block erases
//! the only evidence of the damage; it must not leave the older version to win the next open.
//! After damage, defragmentation and a restart (from the checkpoint, and by a full scan, with
//! and without a clean close), every live target reads CORRUPT and every deleted one reads
//! absent or CORRUPT: never its older value.

use std::path::Path;
use std::sync::Arc;

use quiver_engine::{Config, Engine, Error, WriteOptions};
use quiver_wal::device::FaultDevice;
use quiver_wal::format::{BlockHeader, Superblock, RECORD_HEADER_BYTES};
use quiver_wal::scan::{BlockScanner, ScanItem};
use quiver_wal::Device;

const DEVICE_BYTES: u64 = 8 << 20;
const BLOCK_BYTES: u64 = 128 << 10;
const GROUP: u32 = 1;
/// Keys whose newest frame is damaged: even ones live, odd ones deleted.
const TARGETS: u32 = 24;
/// Keys that keep the block of the targets' older versions in use.
const COLD: u32 = 400;
/// Keys overwritten until the block of the damaged frames is mostly dead.
const CHURN: u32 = 500;

fn config(checkpoint: Option<&Path>) -> Config {
    Config {
        write_block_bytes: BLOCK_BYTES as u32,
        post_write_cache_bytes: 0,
        defrag_pause_ms: 0,
        checkpoint_interval_s: 0,
        checkpoint_path: checkpoint.map(Path::to_path_buf),
        background: false,
        ..Config::memory(DEVICE_BYTES)
    }
}

fn open(image: Vec<u8>, checkpoint: Option<&Path>) -> (Arc<FaultDevice>, Engine) {
    let dev = Arc::new(FaultDevice::from_image(image, 5));
    let d: Arc<dyn Device> = dev.clone();
    let e = Engine::open_on_device(config(checkpoint), d).expect("open");
    (dev, e)
}

fn key(prefix: &str, i: u32) -> Vec<u8> {
    format!("{prefix}{i}").into_bytes()
}

fn value(version: u32, i: u32) -> Vec<u8> {
    let mut v = format!("v{version}-{i}-").into_bytes();
    v.resize(300, b'a' + (i % 26) as u8);
    v
}

fn deleted(i: u32) -> bool {
    i % 2 == 1
}

/// Older versions of the targets among cold keys; then the targets' newest frames (version 2
/// or a tombstone) among churn keys; then more churn, so that their block is sealed before
/// the checkpoint written at close.
fn populate(checkpoint: &Path) -> Vec<u8> {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 1));
    let d: Arc<dyn Device> = dev.clone();
    let e = Engine::open_on_device(config(Some(checkpoint)), d).expect("open");
    let w = WriteOptions::default();
    for i in 0..TARGETS {
        e.put(GROUP, &key("t", i), &value(1, i), &w).unwrap();
    }
    for i in 0..COLD {
        e.put(GROUP, &key("cold", i), &value(1, i), &w).unwrap();
    }
    for i in 0..CHURN {
        e.put(GROUP, &key("churn", i), &value(1, i), &w).unwrap();
        if i % 20 == 0 && i / 20 < TARGETS {
            let t = i / 20;
            if deleted(t) {
                assert!(e.delete(GROUP, &key("t", t), &w).unwrap());
            } else {
                e.put(GROUP, &key("t", t), &value(2, t), &w).unwrap();
            }
        }
    }
    for i in 0..CHURN {
        e.put(GROUP, &key("churn", i), &value(2, i), &w).unwrap();
    }
    e.close().expect("close");
    dev.written_image()
}

/// (absolute offset, total length, block) of the newest frame of each target.
fn newest_target_frames(image: &[u8]) -> Vec<(u64, u64, u32)> {
    let sb = Superblock::decode(image).unwrap();
    let bb = sb.write_block_bytes as usize;
    let mut newest: Vec<Option<(u64, u64, u64, u32)>> = vec![None; TARGETS as usize];
    for b in 1..(image.len() / bb) as u32 {
        let block = &image[b as usize * bb..(b as usize + 1) * bb];
        let Some(h) = BlockHeader::decode(block, b, sb.store_id as u64) else {
            continue;
        };
        for item in BlockScanner::new(block, b, h.seq) {
            let ScanItem::Record { offset, record } = item else {
                continue;
            };
            let Some(t) = (0..TARGETS).find(|&t| record.key == key("t", t)) else {
                continue;
            };
            let lsn = record.header.lsn;
            let slot = &mut newest[t as usize];
            if slot.is_none_or(|(l, ..)| l < lsn) {
                let abs = b as u64 * bb as u64 + offset as u64;
                *slot = Some((lsn, abs, record.header.total_len as u64, b));
            }
        }
    }
    newest
        .into_iter()
        .map(|f| {
            let (_, abs, len, b) = f.expect("every target has frames");
            (abs, len, b)
        })
        .collect()
}

/// What each target must read: CORRUPT for a live one; absent or CORRUPT for a deleted one;
/// never its older value. Untouched keys read exactly.
fn check(e: &Engine, what: &str) {
    for t in 0..TARGETS {
        match e.get(GROUP, &key("t", t)) {
            Err(Error::Corrupt { .. }) => {}
            Ok(None) if deleted(t) => {}
            Ok(Some(r)) if r.value == value(1, t) => {
                panic!(
                    "{what}: target {t} served its OLDER value (deleted: {})",
                    deleted(t)
                )
            }
            other => panic!("{what}: target {t} (deleted: {}): {other:?}", deleted(t)),
        }
    }
    for i in (0..COLD).step_by(37) {
        let got = e.get(GROUP, &key("cold", i)).unwrap().expect("cold key");
        assert_eq!(got.value, value(1, i), "{what}: cold key {i}");
    }
    for i in (0..CHURN).step_by(41) {
        let got = e.get(GROUP, &key("churn", i)).unwrap().expect("churn key");
        assert_eq!(got.value, value(3, i), "{what}: churn key {i}");
    }
}

#[test]
fn damage_found_by_no_read_survives_defragmentation_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("q.ckpt");
    let mut image = populate(&ckpt);
    let aimed = newest_target_frames(&image);
    for &(abs, len, _) in &aimed {
        // A flipped bit in the body (the key bytes of a tombstone): the header holds.
        let at = abs + RECORD_HEADER_BYTES as u64 + (len - RECORD_HEADER_BYTES as u64) / 2;
        image[at as usize] ^= 0x10;
    }
    let (dev, e) = open(image, Some(&ckpt));
    assert_eq!(e.recovery_report().mode, "checkpoint");
    assert_eq!(
        e.recovery_report().corrupt_records,
        0,
        "the damaged frames sit in blocks the checkpoint vouches for: no scan saw them"
    );
    // No read of a target: the damage is still unknown when defragmentation meets it.
    let w = WriteOptions::default();
    for i in 0..CHURN {
        e.put(GROUP, &key("churn", i), &value(3, i), &w).unwrap();
    }
    e.flush().unwrap();
    assert!(
        e.defragment(usize::MAX).unwrap() > 0,
        "nothing was defragmented"
    );
    let image_now = dev.written_image();
    let sb = Superblock::decode(&image_now).unwrap();
    let freed = aimed
        .iter()
        .filter(|&&(_, _, b)| {
            let start = b as usize * BLOCK_BYTES as usize;
            let header = &image_now[start..start + BLOCK_BYTES as usize];
            BlockHeader::decode(header, b, sb.store_id as u64).is_none()
        })
        .count();
    assert_eq!(
        freed,
        aimed.len(),
        "defragmentation freed the blocks of every damaged frame"
    );
    check(&e, "after defragmentation");
    // A crash now: a full scan of what is on the device.
    let (_, scanned) = open(dev.written_image(), None);
    check(&scanned, "full scan after defragmentation and a crash");
    drop(scanned);
    // A clean close, then both open modes.
    e.close().unwrap();
    let image = dev.written_image();
    let (_, e) = open(image.clone(), Some(&ckpt));
    assert_eq!(e.recovery_report().mode, "checkpoint");
    check(&e, "checkpoint open after defragmentation");
    drop(e);
    let (_, e) = open(image, None);
    check(&e, "full scan after defragmentation");
}
