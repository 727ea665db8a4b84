//! Rebuilding the index from the device.
//!
//! Every frame carries an LSN (a store-wide write sequence; a defragmentation copy keeps its
//! original's), so the newest version of a key is the one with the highest LSN, wherever it
//! sits. Tombstones and expired records take part in that choice and then hide the key, which
//! is why a delete never comes back: the tombstone is kept on the device as long as any
//! older version might be (see `defrag.rs` for when it may go).
//!
//! Two ways in: load the index checkpoint and scan only the blocks written after it
//! (`checkpoint.rs`), or scan every block (this file). The scan reads several blocks per
//! submission so that the device streams at its sequential rate.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use quiver_index::{digest, identity, Digest, Entry, Index, Location};
use quiver_wal::format::{BlockHeader, Superblock, FLAG_RELOCATED, UNIT_BYTES};
use quiver_wal::scan::{BlockScanner, ScanEnd, ScanItem};
use quiver_wal::{AlignedBuf, Device, ReadOp};

use super::blocks::{Blocks, SEALED};
use super::stats::RecoveryReport;
use super::{now_s, DROPPED_GROUPS_KEY, SYSTEM_GROUP};
use crate::config::Config;
use crate::error::Result;

/// Blocks read per submission during a scan.
const READ_AHEAD_BLOCKS: usize = 8;

pub(crate) struct Recovered {
    pub next_lsn: u64,
    pub next_seq: u64,
    pub dropped: Vec<u32>,
    /// Dropped groups that may still have records on the device.
    pub dropped_with_records: Vec<u32>,
    pub report: RecoveryReport,
}

/// The newest version of one key seen so far.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Version {
    pub lsn: u64,
    pub loc: Location,
    pub group: u32,
    pub generation: u16,
    pub expiry_s: u32,
    pub last_update_s: u32,
    pub flags: u8,
}

impl Version {
    pub fn is_live(&self, now: u32, dropped: &[u32]) -> bool {
        self.flags & quiver_wal::format::FLAG_TOMBSTONE == 0
            && (self.expiry_s == 0 || self.expiry_s > now)
            && !dropped.contains(&self.group)
    }

    pub fn entry(&self) -> Entry {
        Entry {
            loc: self.loc,
            generation: self.generation,
            expiry_s: self.expiry_s,
            last_update_s: self.last_update_s,
        }
    }

    pub fn is_relocated(&self) -> bool {
        self.flags & FLAG_RELOCATED != 0
    }
}

/// Digests are already uniform hashes: the map uses their low bits instead of hashing again.
#[derive(Default, Clone, Copy)]
pub(crate) struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 ^= v as u64 ^ (v >> 64) as u64;
    }
}

pub(crate) type DigestMap<V> = HashMap<Digest, V, std::hash::BuildHasherDefault<DigestHasher>>;

/// What scanning some blocks found.
#[derive(Default)]
pub(crate) struct ScanState {
    pub versions: DigestMap<Version>,
    pub max_lsn: u64,
    pub max_seq: u64,
    /// Location of the newest dropped-groups record.
    pub dropped_loc: Option<(u64, Location)>,
}

pub(crate) fn recover(
    config: &Config,
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    index: &Index,
) -> Result<Recovered> {
    let started = Instant::now();
    let mut fallback = None;
    if let Some(path) = config.checkpoint_file() {
        match super::checkpoint::load(&path, device, sb, blocks, index) {
            Ok(Some(mut r)) => {
                r.report.elapsed_ms = started.elapsed().as_millis() as u64;
                return Ok(r);
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(checkpoint = %path.display(), reason = %why, "checkpoint unusable; scanning the whole device");
                fallback = Some(why);
                index.clear();
                reset_blocks(blocks);
            }
        }
    }
    let mut r = full_scan(device, sb, blocks, index)?;
    r.report.checkpoint_fallback = fallback;
    r.report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(r)
}

pub(crate) fn reset_blocks(blocks: &Blocks) {
    for m in blocks.meta.iter().skip(1) {
        m.state.store(super::blocks::FREE, Ordering::Release);
        m.live_bytes.store(0, Ordering::Release);
        m.min_lsn.store(u64::MAX, Ordering::Release);
        m.seq.store(0, Ordering::Release);
    }
}

fn full_scan(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    index: &Index,
) -> Result<Recovered> {
    let mut report = RecoveryReport {
        mode: "scan".into(),
        ..RecoveryReport::default()
    };
    let all: Vec<u32> = (1..blocks.count() as u32).collect();
    let mut state = ScanState::default();
    scan_blocks(device, sb, blocks, &all, &mut state, &mut report)?;
    if report.blocks_scanned == 0 {
        report.mode = "created".into();
    }
    let dropped = read_dropped(device, sb, blocks, &state)?;
    let now = now_s();
    for (d, v) in &state.versions {
        if v.is_live(now, &dropped) {
            index.insert(*d, v.entry());
        }
    }
    report.records_recovered = index.len() as u64;
    recompute_live(index, blocks);
    Ok(Recovered {
        next_lsn: state.max_lsn + 1,
        next_seq: state.max_seq + 1,
        dropped_with_records: Vec::new(),
        dropped,
        report,
    })
}

/// Reads `which` blocks (several per submission), sets their state from their headers, and
/// folds every verified frame into `state.versions`.
pub(crate) fn scan_blocks(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    which: &[u32],
    state: &mut ScanState,
    report: &mut RecoveryReport,
) -> Result<()> {
    let bb = sb.write_block_bytes as usize;
    let mut bufs: Vec<AlignedBuf> = (0..READ_AHEAD_BLOCKS)
        .map(|_| AlignedBuf::new(bb))
        .collect();
    for chunk in which.chunks(READ_AHEAD_BLOCKS) {
        let results = {
            let mut ops: Vec<ReadOp<'_>> = chunk
                .iter()
                .zip(bufs.iter_mut())
                .map(|(&b, buf)| ReadOp {
                    offset: b as u64 * bb as u64,
                    buf: &mut buf[..],
                })
                .collect();
            device.read_many(&mut ops)
        };
        for ((&b, buf), res) in chunk.iter().zip(&bufs).zip(results) {
            res?;
            report.bytes_scanned += bb as u64;
            scan_one(b, buf, sb, blocks, state, report);
        }
    }
    Ok(())
}

fn scan_one(
    b: u32,
    buf: &[u8],
    sb: &Superblock,
    blocks: &Blocks,
    state: &mut ScanState,
    report: &mut RecoveryReport,
) {
    let Some(h) = BlockHeader::decode(buf, b, sb.store_id as u64) else {
        return;
    };
    report.blocks_scanned += 1;
    let m = &blocks.meta[b as usize];
    m.seq.store(h.seq, Ordering::Release);
    m.kind.store(h.kind as u8, Ordering::Release);
    m.state.store(SEALED, Ordering::Release);
    state.max_seq = state.max_seq.max(h.seq);
    let mut min_lsn = u64::MAX;
    let mut scanner = BlockScanner::new(buf, b, h.seq);
    for item in scanner.by_ref() {
        match item {
            ScanItem::Record { offset, record } => {
                report.records_seen += 1;
                let hd = record.header;
                min_lsn = min_lsn.min(hd.lsn);
                state.max_lsn = state.max_lsn.max(hd.lsn);
                if hd.is_tombstone() {
                    report.tombstones_seen += 1;
                }
                let v = Version {
                    lsn: hd.lsn,
                    loc: super::frame_location(b, offset, hd.padded_len() as u32),
                    group: hd.group,
                    generation: hd.generation,
                    expiry_s: hd.expiry_s,
                    last_update_s: hd.last_update_s,
                    flags: hd.flags,
                };
                let d = identity(digest(hd.group, record.key));
                if hd.group == SYSTEM_GROUP
                    && record.key == DROPPED_GROUPS_KEY
                    && state.dropped_loc.is_none_or(|(lsn, _)| lsn < hd.lsn)
                {
                    state.dropped_loc = Some((hd.lsn, v.loc));
                }
                let newer = state
                    .versions
                    .get(&d)
                    .is_none_or(|old| old.lsn < v.lsn || (old.lsn == v.lsn && !v.is_relocated()));
                if newer {
                    state.versions.insert(d, v);
                }
            }
            ScanItem::Corrupt { offset, detail } => {
                report.corrupt_records += 1;
                report.damage.push((b, offset, detail));
            }
        }
    }
    let end = match scanner.end() {
        Some(ScanEnd::Clean { offset }) | Some(ScanEnd::Torn { offset }) => offset as u64,
        _ => sb.write_block_bytes as u64,
    };
    if let Some(ScanEnd::Torn { offset }) = scanner.end() {
        report.torn_tails += 1;
        report.damage.push((
            b,
            offset,
            "torn tail: bytes after the last valid frame".into(),
        ));
    }
    m.used_bytes.store(end, Ordering::Release);
    m.min_lsn.store(min_lsn, Ordering::Release);
}

/// The dropped-group list, read from the newest dropped-groups record found.
pub(crate) fn read_dropped(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    state: &ScanState,
) -> Result<Vec<u32>> {
    let Some((_, loc)) = state.dropped_loc else {
        return Ok(Vec::new());
    };
    read_dropped_at(device, sb, blocks, loc)
}

pub(crate) fn read_dropped_at(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    loc: Location,
) -> Result<Vec<u32>> {
    let bytes = read_frame(device, sb, loc)?;
    let offset = loc.offset_units * UNIT_BYTES as u32;
    let view = quiver_wal::format::decode_record(
        &bytes.0[bytes.1..],
        loc.block,
        offset,
        blocks.seq(loc.block),
    )?;
    Ok(view
        .value
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect())
}

/// Reads one frame's aligned range: (buffer, frame start within it).
pub(crate) fn read_frame(
    device: &dyn Device,
    sb: &Superblock,
    loc: Location,
) -> Result<(AlignedBuf, usize)> {
    use quiver_wal::buf::{align_down, align_up};
    let abs = loc.block as u64 * sb.write_block_bytes as u64
        + loc.offset_units as u64 * UNIT_BYTES as u64;
    let len = loc.len_units as usize * UNIT_BYTES;
    let start = align_down(abs as usize, quiver_wal::IO_ALIGN);
    let end = align_up(abs as usize + len, quiver_wal::IO_ALIGN);
    let mut buf = AlignedBuf::new(end - start);
    device.read_at(&mut buf, start as u64)?;
    Ok((buf, abs as usize - start))
}

/// Sets every block's live bytes from the index.
pub(crate) fn recompute_live(index: &Index, blocks: &Blocks) {
    for m in &blocks.meta {
        m.live_bytes.store(0, Ordering::Release);
    }
    index.for_each(|_, e| blocks.add_live(e.loc.block, e.loc.len_units * UNIT_BYTES as u32));
}
