//! Fault injection at the device: failed writes and syncs, a full device, torn writes and
//! flipped bits. The engine must stop accepting writes after a failed write or sync while
//! reads go on, open a damaged device, serve every intact record, never return a damaged one,
//! and count the damage in its recovery report.

use std::sync::Arc;

use quiver_engine::{Config, Durability, Engine, Error, WriteOptions};
use quiver_wal::device::{
    CrashMode, FaultDevice, FaultEffect, FaultOp, FaultPlan, FaultRule, FaultWhen, SplitMix64,
};
use quiver_wal::Device;

const DEVICE_BYTES: u64 = 4 << 20;
const BLOCK_BYTES: u64 = 128 << 10;

fn config() -> Config {
    Config {
        write_block_bytes: BLOCK_BYTES as u32,
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

fn sync() -> WriteOptions {
    WriteOptions {
        durability: Some(Durability::Sync),
        ttl_s: None,
    }
}

fn buffered() -> WriteOptions {
    WriteOptions {
        durability: Some(Durability::Buffered),
        ttl_s: None,
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

/// A value that names its key, so a misplaced or damaged one is recognisable.
fn value(i: u32, len: usize) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..len).map(|j| (i as usize * 7 + j) as u8));
    v
}

/// Opens a store on `dev`, writes `n` records durably and drops it without closing.
fn populate(dev: &Arc<FaultDevice>, n: u32, len: usize) {
    let e = open(dev);
    for i in 0..n {
        e.put(1, &key(i), &value(i, len), &buffered()).expect("put");
    }
    e.flush().expect("flush");
}

/// Every key of `0..n` reads back exactly as written (`value(i, len)`, whole), or (only for
/// keys in `may_be_damaged`) as absent or an error. Returns how many did not read back.
fn check_reads(e: &Engine, n: u32, len: usize, may_be_damaged: impl Fn(u32) -> bool) -> u32 {
    let mut lost = 0;
    for i in 0..n {
        match e.get(1, &key(i)) {
            Ok(Some(r)) => assert!(
                r.value == value(i, len),
                "key {i} came back as {} bytes that differ from the {} written",
                r.value.len(),
                len + 4
            ),
            Ok(None) | Err(_) if may_be_damaged(i) => lost += 1,
            other => panic!("intact key {i} read as {other:?}"),
        }
    }
    lost
}

#[test]
fn eio_on_write_fails_the_store_and_reads_go_on() {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 1));
    let e = open(&dev);
    for i in 0..50 {
        e.put(1, &key(i), &value(i, 100), &sync()).unwrap();
    }
    dev.set_plan(FaultPlan::new(1).with(FaultRule::once_after(
        FaultOp::Write,
        0,
        FaultEffect::Eio,
    )));
    let err = e.put(1, &key(50), &value(50, 100), &sync()).unwrap_err();
    assert!(matches!(err, Error::Failed(_)), "{err:?}");
    // The fault was one-shot, but the device state is unknown: the store stays failed.
    for opts in [sync(), buffered()] {
        assert!(matches!(
            e.put(1, &key(51), b"x", &opts),
            Err(Error::Failed(_))
        ));
    }
    assert!(matches!(
        e.delete(1, &key(0), &buffered()),
        Err(Error::Failed(_))
    ));
    assert!(e.stats().failed.is_some());
    assert_eq!(check_reads(&e, 50, 100, |_| false), 0, "reads keep working");
    drop(e);
    let reopened = Arc::new(FaultDevice::from_image(
        dev.crash(CrashMode::DropUnsynced),
        2,
    ));
    let e = open(&reopened);
    assert_eq!(
        check_reads(&e, 50, 100, |_| false),
        0,
        "every acknowledged sync write survives"
    );
    e.put(1, &key(60), b"writable again", &sync()).unwrap();
}

#[test]
fn eio_on_sync_fails_the_store_and_reads_go_on() {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 3));
    let e = open(&dev);
    for i in 0..20 {
        e.put(1, &key(i), &value(i, 300), &sync()).unwrap();
    }
    dev.set_plan(FaultPlan::new(3).with(FaultRule::once_after(FaultOp::Sync, 0, FaultEffect::Eio)));
    assert!(matches!(
        e.put(1, &key(20), &value(20, 300), &sync()),
        Err(Error::Failed(_))
    ));
    assert!(matches!(
        e.put(1, &key(21), b"x", &buffered()),
        Err(Error::Failed(_))
    ));
    assert_eq!(check_reads(&e, 20, 300, |_| false), 0);
    // The failed sync left the frame unsynced: a power loss may keep or drop it, nothing else.
    for mode in [CrashMode::DropUnsynced, CrashMode::KeepUnsynced] {
        let e = open(&Arc::new(FaultDevice::from_image(dev.crash(mode), 4)));
        assert_eq!(
            check_reads(&e, 21, 300, |i| i == 20),
            u32::from(mode == CrashMode::DropUnsynced)
        );
    }
}

#[test]
fn enospc_from_the_device_is_an_error_for_the_writer() {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 5));
    let e = open(&dev);
    e.put(1, &key(0), &value(0, 10), &sync()).unwrap();
    dev.set_plan(FaultPlan::new(5).with(FaultRule {
        op: FaultOp::Write,
        when: FaultWhen::AfterOps(0),
        effect: FaultEffect::NoSpace,
        times: None,
    }));
    let err = e.put(1, &key(1), &value(1, 10), &sync()).unwrap_err();
    assert!(
        matches!(err, Error::Failed(ref why) if why.contains("ENOSPC") || why.contains("No space")),
        "{err:?}"
    );
    assert_eq!(check_reads(&e, 1, 10, |_| false), 0);
    assert_eq!(dev.stats().injected_enospc, 1);
}

#[test]
fn a_full_device_refuses_writes_and_keeps_serving_reads() {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 6));
    let e = open(&dev);
    let mut n = 0;
    let err = loop {
        match e.put(1, &key(n), &value(n, 4000), &buffered()) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 10_000, "a 4 MiB device never filled");
    };
    assert!(matches!(err, Error::DeviceFull { .. }), "{err:?}");
    assert!(
        e.stats().failed.is_none(),
        "a full device is not a failed store"
    );
    let big = value(n + 1, 4000);
    assert!(matches!(
        e.put(1, b"another", &big, &sync()),
        Err(Error::DeviceFull { .. })
    ));
    assert_eq!(
        check_reads(&e, n, 4000, |_| false),
        0,
        "reads go on when full"
    );
    e.flush().expect("flush of what was accepted");
    // Nothing is dead, so defragmentation finds nothing to free: still full, still readable.
    assert_eq!(e.defragment(usize::MAX).unwrap(), 0);
    e.close().unwrap();
    let e = open(&Arc::new(FaultDevice::from_image(
        dev.crash(CrashMode::DropUnsynced),
        7,
    )));
    assert_eq!(
        check_reads(&e, n, 4000, |_| false),
        0,
        "every accepted write survives a reopen"
    );
}

#[test]
fn deleting_on_a_full_device_then_defragmenting_makes_room() {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 8));
    let e = open(&dev);
    let mut n = 0;
    while e.put(1, &key(n), &value(n, 4000), &buffered()).is_ok() {
        n += 1;
    }
    e.flush().unwrap();
    // Tombstones still fit in the open block until it is full; foreground writes never take
    // the reserved free blocks, so the deletes succeed up to some key and then fail.
    let mut deleted = 0;
    while deleted < n && e.delete(1, &key(deleted), &buffered()).is_ok() {
        deleted += 1;
    }
    assert!(deleted > 0, "no delete fitted in the open block");
    e.flush().unwrap();
    let freed = e.defragment(usize::MAX).unwrap();
    assert_eq!(
        check_reads(&e, n, 4000, |i| i < deleted),
        deleted,
        "exactly the deleted keys are gone"
    );
    if freed > 0 {
        e.put(1, b"after", b"room was made", &sync())
            .expect("writes resume once space is reclaimed");
    }
}

/// Frames of the last flush torn at every sector boundary: the engine opens, serves every
/// record written before, keeps or drops each record of the torn write whole, and counts the
/// tear in its report. What survives is what the fault model allows: the flush is one write
/// of which the first `keep_sectors` sectors land, so the buffered records that survive are a
/// prefix of them, every record lying wholly in the landed sectors among it, and none whose
/// value did not land.
#[test]
fn torn_last_write_at_every_sector() {
    let mut damaged_reports = 0;
    let mut survivors_seen = std::collections::BTreeSet::new();
    for keep_sectors in 0..=24 {
        let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, keep_sectors as u64));
        let e = open(&dev);
        for i in 0..40 {
            e.put(1, &key(i), &value(i, 200), &sync()).unwrap();
        }
        for i in 40..60 {
            e.put(1, &key(i), &value(i, 200), &buffered()).unwrap();
        }
        dev.set_plan(FaultPlan::new(9).with(FaultRule::once_after(
            FaultOp::Sync,
            0,
            FaultEffect::Eio,
        )));
        assert!(e.flush().is_err());
        let (must, may) = survivors_allowed(&dev, keep_sectors, 40..60);
        let image = dev.crash(CrashMode::TearLast { keep_sectors });
        drop(e);
        let e = open(&Arc::new(FaultDevice::from_image(image, 10)));
        assert_eq!(
            check_reads(&e, 40, 200, |_| false),
            0,
            "the records of the earlier syncs are intact"
        );
        let lost = check_reads(&e, 60, 200, |i| i >= 40);
        let survived = 20 - lost as usize;
        let prefix = (40..60)
            .take_while(|&i| e.get(1, &key(i)).is_ok_and(|r| r.is_some()))
            .count();
        assert_eq!(
            prefix, survived,
            "keep {keep_sectors} sectors: the surviving buffered records are not a prefix"
        );
        assert!(
            (must..=may).contains(&survived),
            "keep {keep_sectors} sectors: {survived} of the torn write's records survived; \
             the landed bytes allow {must} to {may}"
        );
        survivors_seen.insert(survived);
        let r = e.recovery_report();
        if r.torn_tails + r.corrupt_records > 0 {
            damaged_reports += 1;
            assert!(
                !r.damage.is_empty(),
                "damage counted but not located: {r:?}"
            );
        }
    }
    assert!(damaged_reports > 0, "no tear was ever reported");
    assert!(
        survivors_seen.len() > 2,
        "the tears never cut between records: survivors {survivors_seen:?}"
    );
}

/// For the one unsynced write on `dev` torn after `keep_sectors` sectors: how many of the
/// records `keys` (written in this order) must survive (each lies before the next one's value
/// in the landed bytes) and may survive (its value landed whole).
fn survivors_allowed(
    dev: &FaultDevice,
    keep_sectors: usize,
    keys: std::ops::Range<u32>,
) -> (usize, usize) {
    assert_eq!(dev.stats().unsynced_writes, 1, "the flush is one write");
    let written = dev.written_image();
    let durable = dev.crash(CrashMode::DropUnsynced);
    // The write is aligned: it starts on the page of the first byte it changed.
    let first_change = written
        .iter()
        .zip(&durable)
        .position(|(a, b)| a != b)
        .expect("the flush changed bytes");
    let landed_end = first_change / 4096 * 4096 + keep_sectors * 512;
    let spans: Vec<(usize, usize)> = keys
        .map(|i| {
            let v = value(i, 200);
            let at = written
                .windows(v.len())
                .position(|w| w == &v[..])
                .unwrap_or_else(|| panic!("key {i}'s value is not on the device"));
            (at, at + v.len())
        })
        .collect();
    let must = spans
        .windows(2)
        .take_while(|pair| pair[1].0 <= landed_end)
        .count();
    let may = spans.iter().take_while(|s| s.1 <= landed_end).count();
    (must, may)
}

/// Bits flipped at rest in one block: the engine opens, reads every record outside the damaged
/// frames, and reports each damaged frame instead of returning it.
#[test]
fn bit_flips_at_rest_are_caught_by_checksums() {
    let mut rng = SplitMix64::new(0xb17f);
    let mut flips_total = 0;
    let mut lost_total = 0;
    for round in 0..30u64 {
        let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, round));
        populate(&dev, 300, 150);
        let image = dev.crash(CrashMode::DropUnsynced);
        let dev = Arc::new(FaultDevice::from_image(image, round));
        // Damage the frames area of block 1 (the first data block), past its header.
        let start = BLOCK_BYTES + 64;
        let flips = 1 + rng.below(4) as usize;
        dev.flip_random_bits(start..start + 40_000, flips);
        flips_total += flips;
        let e = open(&dev);
        let lost = check_reads(&e, 300, 150, |_| true);
        let r = e.recovery_report();
        assert!(
            lost as usize <= flips * 2,
            "round {round}: {flips} flipped bits lost {lost} records"
        );
        if lost > 0 {
            assert!(
                r.corrupt_records + r.torn_tails > 0,
                "round {round}: records lost but no damage reported: {r:?}"
            );
        }
        lost_total += lost;
    }
    assert!(lost_total > 0, "{flips_total} flips never hit a record");
    eprintln!(
        "bit flips at rest: {flips_total} bits flipped, {lost_total} damaged records refused"
    );
}

/// Damage that happens while the store runs: the read that meets it fails with a checksum
/// error (never damaged data), and other records keep reading.
#[test]
fn damage_under_a_running_store_is_an_error_not_data() {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 12));
    let e = open(&dev);
    for i in 0..100 {
        e.put(1, &key(i), &value(i, 500), &buffered()).unwrap();
    }
    e.flush().unwrap();
    // Seal the block so that reads go to the device, not the writer's memory.
    let mut i = 100;
    while e.stats().blocks_used < 3 {
        e.put(1, &key(i), &value(i, 5000), &buffered()).unwrap();
        i += 1;
    }
    e.flush().unwrap();
    // Flip one bit in the middle of every 4 KiB of block 1.
    let mut pages = 0;
    for page in 0..32u64 {
        dev.flip_bit(BLOCK_BYTES + page * 4096 + 2048, 3);
        pages += 1;
    }
    let mut errors = 0;
    for k in 0..100 {
        match e.get(1, &key(k)) {
            Ok(Some(r)) => assert_eq!(r.value, value(k, 500), "key {k} returned damaged bytes"),
            Err(_) => errors += 1,
            Ok(None) => panic!("a damaged record read as absent rather than as an error"),
        }
    }
    assert!(
        errors > 0 && errors <= pages,
        "{errors} errors for {pages} flipped bits"
    );
    assert!(e.stats().corrupt_reads >= errors as u64);
}

#[test]
fn transient_read_flips_and_eio_are_errors_and_pass() {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 13));
    let e = open(&dev);
    let mut n = 0;
    while e.stats().blocks_used < 3 {
        e.put(1, &key(n), &value(n, 3000), &buffered()).unwrap();
        n += 1;
    }
    e.flush().unwrap();
    // Every device read comes back with one bit flipped somewhere in the aligned range it
    // covers: inside the frame it is caught, in the padding around it it is harmless.
    dev.set_plan(FaultPlan::new(13).with(FaultRule {
        op: FaultOp::Read,
        when: FaultWhen::AfterOps(0),
        effect: FaultEffect::FlipReadBit,
        times: None,
    }));
    let mut caught = 0;
    for i in 0..40 {
        match e.get(1, &key(i)) {
            Ok(Some(r)) => assert_eq!(r.value, value(i, 3000), "key {i} returned a flipped bit"),
            Ok(None) => panic!("key {i} read as absent"),
            Err(_) => caught += 1,
        }
    }
    assert!(caught > 0, "no flipped bit ever landed in a frame");
    dev.set_plan(FaultPlan::new(13).with(FaultRule::once_after(
        FaultOp::Read,
        0,
        FaultEffect::Eio,
    )));
    assert!(e.get(1, &key(0)).is_err(), "an EIO read is an error");
    assert_eq!(
        check_reads(&e, 40, 3000, |_| false),
        0,
        "and the next reads succeed"
    );
    assert!(
        e.stats().failed.is_none(),
        "read errors do not fail the store"
    );
    e.put(1, b"after", b"read errors", &sync()).unwrap();
    assert!(dev.stats().flipped_read_bits >= 40);
}

/// After a failed write the store is failed; a later flush must not report success (the
/// device state is unknown, and after a failed fsync the kernel may have dropped the pages).
#[test]
fn flush_after_a_failed_write_reports_the_failure() {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 15));
    let e = open(&dev);
    e.put(1, &key(0), &value(0, 100), &buffered()).unwrap();
    dev.set_plan(FaultPlan::new(15).with(FaultRule::once_after(
        FaultOp::Sync,
        0,
        FaultEffect::Eio,
    )));
    assert!(matches!(
        e.put(1, &key(1), &value(1, 100), &sync()),
        Err(Error::Failed(_))
    ));
    assert!(
        matches!(e.flush(), Err(Error::Failed(_))),
        "flush on a failed store succeeded"
    );
    assert!(e.close().is_err(), "close on a failed store succeeded");
}

/// Random EIO on reads during recovery: open fails with an error or succeeds; it never
/// panics and never serves wrong bytes.
#[test]
fn read_errors_during_recovery_are_errors() {
    let dev = Arc::new(FaultDevice::new(DEVICE_BYTES, 14));
    populate(&dev, 500, 700);
    let image = dev.crash(CrashMode::DropUnsynced);
    let mut refused = 0;
    for seed in 0..20 {
        let dev = Arc::new(FaultDevice::from_image(image.clone(), seed));
        dev.set_plan(FaultPlan::new(seed).with(FaultRule {
            op: FaultOp::Read,
            when: FaultWhen::Probability {
                per_million: 100_000,
            },
            effect: FaultEffect::Eio,
            times: Some(1),
        }));
        let d: Arc<dyn Device> = dev.clone();
        match Engine::open_on_device(config(), d) {
            Ok(e) => {
                dev.clear_faults();
                assert_eq!(check_reads(&e, 500, 700, |_| false), 0);
            }
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0, "no recovery read ever failed");
}
