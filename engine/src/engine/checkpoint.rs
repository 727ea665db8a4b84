//! The index checkpoint: a file next to the data that lets a restart skip the full scan.
//!
//! ## Format
//! Little-endian; the file is written to `<path>.tmp`, fsynced and renamed over `<path>`.
//! ```text
//! header (72 bytes)
//!   0  8  magic "QVRCKPT1"
//!   8  4  format version (2)
//!  12  4  write_block_bytes
//!  16 16  store id
//!  32  8  next LSN
//!  40  8  replay-from sequence S: blocks with sequence >= S are scanned on load
//!  48  4  block records
//!  52  4  dropped groups
//!  56  8  index entries
//!  64  8  walk LSN: every key current with an LSN below it is in the file
//! block records (25 bytes each): block u32, seq u64, kind u8, used_bytes u32, min_lsn u64
//! dropped groups: u32 each
//! index entries (34 bytes each): digest identity u128, location u64 (block 24 bits |
//!   offset units 20 | length units 18, as the index packs it), generation u16, expiry_s u32,
//!   last_update_s u32
//! trailer: xxh3-64 of every byte before it (8 bytes)
//! ```
//!
//! Consistency without stopping writers: S is taken before the index is walked, so every
//! write that races with the walk lands in a block with sequence >= S and is replayed on load;
//! both writers are flushed after the walk, so every entry the file holds points at a durable
//! frame. On load, the newest version of each key replayed from the tail wins over the
//! checkpoint's entry by LSN (see `apply_tail`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use quiver_index::{Entry, Index, Location};
use quiver_wal::format::{decode_record, key_tag_of_digest, Superblock, UNIT_BYTES};
use quiver_wal::{AlignedBuf, Device, ReadOp, IO_ALIGN};
use xxhash_rust::xxh3::Xxh3Default;

use super::blocks::{Blocks, DEFRAG, OPEN, SEALED};
use super::damage::{Candidate, DamagedKey};
use super::recovery::{
    read_dropped_at, recompute_live, scan_blocks, Recovered, ScanState, Version,
};
use super::stats::RecoveryReport;
use super::Inner;
use crate::error::{Error, Result};
use crate::file_step::FileStep;

const MAGIC: &[u8; 8] = b"QVRCKPT1";
const VERSION: u32 = 2;
const HEADER_BYTES: usize = 72;
const BLOCK_RECORD_BYTES: usize = 25;
const ENTRY_BYTES: usize = 34;

impl Inner {
    /// Writes a checkpoint of the index (see the module doc for why it is consistent).
    pub fn checkpoint(&self) -> Result<()> {
        let Some(path) = self.config.checkpoint_file() else {
            return Ok(());
        };
        let _one_at_a_time = self.checkpoint_lock.lock();
        let replay_from = [self.fg.open_seq(), self.dw.open_seq()]
            .into_iter()
            .flatten()
            .chain(self.fg.pending_blocks().into_iter().map(|(_, s)| s))
            .chain(self.dw.pending_blocks().into_iter().map(|(_, s)| s))
            .min()
            .unwrap_or_else(|| self.next_seq.load(Ordering::SeqCst));
        // Every write that took its LSN before `walk_lsn` has reached the index once each
        // stripe lock has been taken and released (LSN and index update happen under it).
        let walk_lsn = self.next_lsn.load(Ordering::SeqCst);
        for stripe in &self.stripes {
            drop(stripe.lock());
        }
        let blocks = self.block_records();
        let dropped: Vec<u32> = self.dropped.read().iter().copied().collect();
        let tmp = tmp_path(&path);
        self.file_step(FileStep::Write, &tmp)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let entries_at = HEADER_BYTES + blocks.len() * BLOCK_RECORD_BYTES + dropped.len() * 4;
        w.write_all(&vec![0u8; entries_at])
            .map_err(|e| io_err(&tmp, e))?;
        let mut count = 0u64;
        let mut failed = None;
        let mut rec = [0u8; ENTRY_BYTES];
        self.index.for_each(|d, e| {
            encode_entry(d, &e, &mut rec);
            if failed.is_none() {
                if let Err(err) = w.write_all(&rec) {
                    failed = Some(err);
                }
            }
            count += 1;
        });
        if let Some(e) = failed {
            return Err(io_err(&tmp, e));
        }
        let next_lsn = self.next_lsn.load(Ordering::SeqCst);
        // Every entry written above now points at a durable frame.
        self.fg.flush().map_err(|e| self.failed(e))?;
        self.dw.flush().map_err(|e| self.failed(e))?;
        let mut file = w.into_inner().map_err(|e| io_err(&tmp, e.into_error()))?;
        let head = self.encode_head([replay_from, next_lsn, walk_lsn], &blocks, &dropped, count);
        self.file_step(FileStep::Sync, &tmp)?;
        rewrite_head_and_seal(&mut file, &head, &tmp)?;
        self.file_step(FileStep::Rename, &path)?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.file_step(FileStep::SyncDir, dir)?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err(dir, e))?;
        }
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(entries = count, replay_from, "checkpoint written");
        Ok(())
    }

    /// Reports `step` to the configured hook; its refusal fails the checkpoint.
    fn file_step(&self, step: FileStep, path: &Path) -> Result<()> {
        match &self.config.file_step_hook {
            Some(hook) => (hook.0)(step, path).map_err(|e| io_err(path, e)),
            None => Ok(()),
        }
    }

    fn block_records(&self) -> Vec<(u32, u64, u8, u32, u64)> {
        self.blocks
            .meta
            .iter()
            .enumerate()
            .filter(|(_, m)| matches!(m.state.load(Ordering::Acquire), SEALED | DEFRAG))
            .map(|(b, m)| {
                (
                    b as u32,
                    m.seq.load(Ordering::Acquire),
                    m.kind.load(Ordering::Acquire),
                    m.used_bytes.load(Ordering::Acquire) as u32,
                    m.min_lsn.load(Ordering::Acquire),
                )
            })
            .collect()
    }

    fn encode_head(
        &self,
        [replay_from, next_lsn, walk_lsn]: [u64; 3],
        blocks: &[(u32, u64, u8, u32, u64)],
        dropped: &[u32],
        count: u64,
    ) -> Vec<u8> {
        let mut h = Vec::with_capacity(HEADER_BYTES + blocks.len() * BLOCK_RECORD_BYTES);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&VERSION.to_le_bytes());
        h.extend_from_slice(&self.config.write_block_bytes.to_le_bytes());
        h.extend_from_slice(&self.store_id.to_le_bytes());
        h.extend_from_slice(&next_lsn.to_le_bytes());
        h.extend_from_slice(&replay_from.to_le_bytes());
        h.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
        h.extend_from_slice(&(dropped.len() as u32).to_le_bytes());
        h.extend_from_slice(&count.to_le_bytes());
        h.extend_from_slice(&walk_lsn.to_le_bytes());
        for &(b, seq, kind, used, min_lsn) in blocks {
            h.extend_from_slice(&b.to_le_bytes());
            h.extend_from_slice(&seq.to_le_bytes());
            h.push(kind);
            h.extend_from_slice(&used.to_le_bytes());
            h.extend_from_slice(&min_lsn.to_le_bytes());
        }
        for g in dropped {
            h.extend_from_slice(&g.to_le_bytes());
        }
        h
    }
}

fn encode_entry(d: u128, e: &Entry, out: &mut [u8; ENTRY_BYTES]) {
    out[0..16].copy_from_slice(&d.to_le_bytes());
    out[16..24].copy_from_slice(&e.loc.pack().to_le_bytes());
    out[24..26].copy_from_slice(&e.generation.to_le_bytes());
    out[26..30].copy_from_slice(&e.expiry_s.to_le_bytes());
    out[30..34].copy_from_slice(&e.last_update_s.to_le_bytes());
}

fn decode_entry(b: &[u8]) -> (u128, Entry) {
    let d = u128::from_le_bytes(b[0..16].try_into().expect("16 bytes"));
    let loc = Location::unpack(u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")));
    let e = Entry {
        loc,
        generation: u16::from_le_bytes(b[24..26].try_into().expect("2 bytes")),
        expiry_s: u32::from_le_bytes(b[26..30].try_into().expect("4 bytes")),
        last_update_s: u32::from_le_bytes(b[30..34].try_into().expect("4 bytes")),
    };
    (d, e)
}

/// Writes the real head over the zeros reserved for it and appends the checksum trailer.
fn rewrite_head_and_seal(file: &mut File, head: &[u8], path: &Path) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0)).map_err(|e| io_err(path, e))?;
    file.write_all(head).map_err(|e| io_err(path, e))?;
    // Checksum the final bytes as they are in the file.
    file.seek(SeekFrom::Start(0)).map_err(|e| io_err(path, e))?;
    let mut sum = Xxh3Default::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
    }
    file.seek(SeekFrom::End(0)).map_err(|e| io_err(path, e))?;
    file.write_all(&sum.digest().to_le_bytes())
        .map_err(|e| io_err(path, e))?;
    file.sync_all().map_err(|e| io_err(path, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("checkpoint {}: {e}", path.display()),
    ))
}

/// A checkpoint's decoded head.
struct Head {
    next_lsn: u64,
    /// Every key current with an LSN below this is in the checkpoint.
    walk_lsn: u64,
    replay_from: u64,
    blocks: HashMap<u32, (u64, u8, u32, u64)>,
    dropped: Vec<u32>,
    entries_at: usize,
    count: usize,
}

fn decode_head(bytes: &[u8], sb: &Superblock) -> std::result::Result<Head, String> {
    if bytes.len() < HEADER_BYTES + 8 || &bytes[0..8] != MAGIC {
        return Err("not a checkpoint (wrong magic or too short)".into());
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 8);
    let want = u64::from_le_bytes(trailer.try_into().expect("8 bytes"));
    let got = xxhash_rust::xxh3::xxh3_64(body);
    if got != want {
        return Err(format!(
            "checksum mismatch (got {got:#018x}, expected {want:#018x}): torn or corrupt"
        ));
    }
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    if u32_at(8) != VERSION {
        return Err(format!("format version {} is not {VERSION}", u32_at(8)));
    }
    if u32_at(12) != sb.write_block_bytes
        || u128::from_le_bytes(body[16..32].try_into().expect("16")) != sb.store_id
    {
        return Err("belongs to another store".into());
    }
    let nblocks = u32_at(48) as usize;
    let ndropped = u32_at(52) as usize;
    let count = u64_at(56) as usize;
    let entries_at = HEADER_BYTES + nblocks * BLOCK_RECORD_BYTES + ndropped * 4;
    if entries_at.checked_add(count.saturating_mul(ENTRY_BYTES)) != Some(body.len()) {
        return Err("lengths do not add up".into());
    }
    let mut blocks = HashMap::with_capacity(nblocks);
    for i in 0..nblocks {
        let at = HEADER_BYTES + i * BLOCK_RECORD_BYTES;
        blocks.insert(
            u32_at(at),
            (
                u64_at(at + 4),
                body[at + 12],
                u32_at(at + 13),
                u64_at(at + 17),
            ),
        );
    }
    let dropped_at = HEADER_BYTES + nblocks * BLOCK_RECORD_BYTES;
    let dropped = (0..ndropped).map(|i| u32_at(dropped_at + i * 4)).collect();
    Ok(Head {
        next_lsn: u64_at(32),
        walk_lsn: u64_at(64),
        replay_from: u64_at(40),
        blocks,
        dropped,
        entries_at,
        count,
    })
}

/// Loads a checkpoint and replays the blocks written after it. `Ok(None)`: there is none.
/// `Err(reason)`: unusable (the caller scans the whole device and says why).
pub(crate) fn load(
    path: &Path,
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    index: &Index,
    now: u32,
) -> std::result::Result<Option<Recovered>, String> {
    let mut bytes = Vec::new();
    match OpenOptions::new().read(true).open(path) {
        Ok(mut f) => f
            .read_to_end(&mut bytes)
            .map_err(|e| format!("read failed: {e}"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("open failed: {e}")),
    };
    let head = decode_head(&bytes, sb)?;
    let mut report = RecoveryReport {
        mode: "checkpoint".into(),
        ..RecoveryReport::default()
    };
    let tail =
        classify_blocks(device, sb, blocks, &head, &mut report).map_err(|e| e.to_string())?;
    for i in 0..head.count {
        let at = head.entries_at + i * ENTRY_BYTES;
        let (d, e) = decode_entry(&bytes[at..at + ENTRY_BYTES]);
        if e.expiry_s == 0 || e.expiry_s > now {
            index.insert(d, e);
        }
    }
    drop(bytes);
    let mut state = ScanState::default();
    scan_blocks(device, sb, blocks, &tail, &mut state, &mut report).map_err(|e| e.to_string())?;
    let mut dropped = head.dropped.clone();
    if let Some((_, loc)) = state.dropped_loc {
        dropped = read_dropped_at(device, sb, blocks, loc).map_err(|e| e.to_string())?;
    }
    let lost = apply_tail(device, sb, blocks, index, &state, &head, &dropped, now)
        .map_err(|e| e.to_string())?;
    state.damaged.extend(lost);
    drop_stale(index, blocks, &state, &head);
    let (damaged, damage_changed) =
        weigh_damage(device, sb, blocks, index, &state, &dropped, &mut report)
            .map_err(|e| e.to_string())?;
    recompute_live(index, blocks);
    report.records_recovered = index.len() as u64;
    Ok(Some(Recovered {
        next_lsn: head.next_lsn.max(state.max_lsn + 1),
        next_seq: head
            .replay_from
            .max(state.max_seq + 1)
            .max(max_seq(blocks) + 1),
        dropped_with_records: dropped.clone(),
        dropped,
        damaged,
        damage_changed,
        report,
        // Tail blocks were opened after every block the checkpoint vouches for.
        last_foreground: state.last_foreground.map(|(_, b)| b),
    }))
}

/// Damaged frames in the replayed tail, and the durable list, against the loaded index.
fn weigh_damage(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    index: &Index,
    state: &ScanState,
    dropped: &[u32],
    report: &mut RecoveryReport,
) -> Result<(Vec<super::damage::DamagedKey>, bool)> {
    use super::recovery_damage::{list_in_index, Weighing};
    let mut w = Weighing::start(device, sb, blocks, state, dropped, list_in_index(index))?;
    w.see_versions(&state.versions);
    w.see_index(device, sb, blocks, index);
    Ok(w.finish(index, blocks, report))
}

fn max_seq(blocks: &Blocks) -> u64 {
    blocks
        .meta
        .iter()
        .map(|m| m.seq.load(Ordering::Acquire))
        .max()
        .unwrap_or(0)
}

/// Reads every block header: blocks older than the checkpoint take its record of them; blocks
/// at or after its replay point are returned to be scanned.
fn classify_blocks(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    head: &Head,
    report: &mut RecoveryReport,
) -> Result<Vec<u32>> {
    let bb = sb.write_block_bytes as u64;
    let all: Vec<u32> = (1..blocks.count() as u32).collect();
    let mut tail = Vec::new();
    let mut bufs: Vec<AlignedBuf> = (0..64).map(|_| AlignedBuf::new(IO_ALIGN)).collect();
    for chunk in all.chunks(64) {
        let results = {
            let mut ops: Vec<ReadOp<'_>> = chunk
                .iter()
                .zip(bufs.iter_mut())
                .map(|(&b, buf)| ReadOp {
                    offset: b as u64 * bb,
                    buf: &mut buf[..],
                })
                .collect();
            device.read_many(&mut ops)
        };
        for ((&b, buf), res) in chunk.iter().zip(&bufs).zip(results) {
            res?;
            // A tail block's repaired header is reported by its scan.
            let mut repaired = RecoveryReport::default();
            let Some(h) = super::recovery::block_header(buf, b, sb, &mut repaired) else {
                continue;
            };
            match head.blocks.get(&b) {
                Some(&(seq, kind, used, min_lsn)) if seq == h.seq && h.seq < head.replay_from => {
                    let m = &blocks.meta[b as usize];
                    m.seq.store(seq, Ordering::Release);
                    m.kind.store(kind, Ordering::Release);
                    m.used_bytes.store(used as u64, Ordering::Release);
                    m.min_lsn.store(min_lsn, Ordering::Release);
                    m.state.store(SEALED, Ordering::Release);
                    report.damage.extend(repaired.damage);
                }
                _ if h.seq >= head.replay_from => tail.push(b),
                _ => {
                    return Err(Error::Config(format!(
                        "block {b} (sequence {}) is older than the checkpoint but not in it",
                        h.seq
                    )))
                }
            }
        }
    }
    Ok(tail)
}

/// Folds the replayed tail into the loaded index: the newest version by LSN wins.
///
/// Every key current at the walk with an LSN below `walk_lsn` is in the file, so a version in
/// the tail with an LSN below it is not newer than the file's entry for its key, whatever the
/// scan found: when the file has no entry, the key had been deleted (its tombstone may be the
/// frame the scan could not read); when the file's entry points into the tail at another
/// frame, that frame was the key's newer version and the scan could not read it (damage). The
/// older version must not win in either case: the first reads as deleted, the second is
/// returned as a damaged key, which reads CORRUPT (its entry is then dropped as unbacked).
/// Defragmentation copies keep their original's LSN and are weighed by it: a copy beats an
/// entry into a block older than the tail only when the entry's frame is older, or gone with
/// its block (moved by defragmentation after the walk); when that frame is there but damaged,
/// the copy must be at least as new as the frame's header says, else the key is damaged.
#[allow(clippy::too_many_arguments)]
fn apply_tail(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    index: &Index,
    state: &ScanState,
    head: &Head,
    dropped: &[u32],
    now: u32,
) -> Result<Vec<Candidate>> {
    let mut lost = Vec::new();
    state.versions.for_each(|d, v| {
        let after_walk = v.lsn >= head.walk_lsn;
        let wins = match index.get(d) {
            // Absent from the checkpoint: only a write after the walk is new; an older frame
            // is of a key deleted or expired before it.
            None => after_walk,
            Some(e) if e.loc == v.loc => true,
            Some(e) if blocks.seq(e.loc.block) >= head.replay_from => {
                if !after_walk && !v.is_relocated() {
                    lost.push(Candidate {
                        key: DamagedKey {
                            group: v.group,
                            tag: key_tag_of_digest(d),
                            // Newer than the version found, which must not win.
                            lsn: v.lsn + 1,
                            block: e.loc.block,
                            offset: e.loc.offset_units * UNIT_BYTES as u32,
                            key: None,
                            found_by_read: false,
                        },
                        torn_like: false,
                        lsn_exact: false,
                    });
                }
                after_walk || v.is_relocated()
            }
            // A fresh write in the tail is newer than anything older than the tail.
            Some(_) if !v.is_relocated() => true,
            // A defragmentation copy may be older than the checkpoint's entry: compare LSNs.
            Some(e) => match lsn_at(device, sb, blocks, e.loc) {
                Some(lsn) => lsn <= v.lsn,
                // The entry's block is still the use the checkpoint recorded, so its frame is
                // there but damaged: the copy wins only if it is at least as new as that
                // frame's header says, else the key is damaged.
                None if still_recorded(blocks, head, e.loc.block) => {
                    let damaged_lsn = header_lsn_at(device, sb, blocks, e.loc);
                    let wins = damaged_lsn.is_some_and(|lsn| lsn <= v.lsn);
                    if !wins {
                        lost.push(Candidate {
                            key: DamagedKey {
                                group: v.group,
                                tag: key_tag_of_digest(d),
                                lsn: damaged_lsn.unwrap_or(v.lsn + 1),
                                block: e.loc.block,
                                offset: e.loc.offset_units * UNIT_BYTES as u32,
                                key: None,
                                found_by_read: false,
                            },
                            torn_like: false,
                            lsn_exact: damaged_lsn.is_some(),
                        });
                    }
                    wins
                }
                // The entry's block was freed since (its frame moved): the copy is current.
                None => true,
            },
        };
        if wins {
            apply(index, d, v, now, dropped);
        }
    });
    Ok(lost)
}

fn apply(index: &Index, d: u128, v: &Version, now: u32, dropped: &[u32]) {
    if v.is_live(now, dropped) {
        index.insert(d, v.entry());
    } else {
        index.remove(d);
    }
}

/// Whether block `b` is sealed as the use of it the checkpoint recorded (not replayed).
fn still_recorded(blocks: &Blocks, head: &Head, b: u32) -> bool {
    blocks.state(b) == SEALED
        && blocks.seq(b) < head.replay_from
        && head
            .blocks
            .get(&b)
            .is_some_and(|&(seq, ..)| seq == blocks.seq(b))
}

/// The LSN in the header of the frame at `loc` when its header holds (or is restored from one
/// damaged byte), whatever its body.
fn header_lsn_at(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    loc: Location,
) -> Option<u64> {
    let (buf, start) = super::recovery::read_frame(device, sb, loc).ok()?;
    let seq = blocks.seq(loc.block);
    let frame = &buf[start..];
    quiver_wal::format::RecordHeader::decode(frame)
        .filter(|h| h.block_seq == seq)
        .or_else(|| quiver_wal::damage::repair_record_header(frame, seq).map(|r| r.header))
        .map(|h| h.lsn)
}

fn lsn_at(device: &dyn Device, sb: &Superblock, blocks: &Blocks, loc: Location) -> Option<u64> {
    let (buf, start) = super::recovery::read_frame(device, sb, loc).ok()?;
    let offset = loc.offset_units * UNIT_BYTES as u32;
    decode_record(&buf[start..], loc.block, offset, blocks.seq(loc.block))
        .ok()
        .map(|v| v.header.lsn)
}

/// Drops entries the device no longer backs: those pointing into blocks freed since the
/// checkpoint, and those pointing into a block reused since (its sequence is now in the tail)
/// at a frame the tail scan did not find for that key. Such a key was deleted or expired and
/// its tombstone legitimately dropped once no older frame remained on the device.
///
/// An entry into a tail block that is still the use the checkpoint saw (see `same_use`) at a
/// frame the scan did not find is kept: that frame is there, durable since the checkpoint, but
/// damaged, and a read of it answers CORRUPT (and marks the key damaged durably) instead of
/// the key reading as absent.
fn drop_stale(index: &Index, blocks: &Blocks, state: &ScanState, head: &Head) {
    let mut stale = Vec::new();
    index.for_each(|d, e| {
        let in_use = matches!(blocks.state(e.loc.block), SEALED | OPEN | DEFRAG);
        let backed = in_use
            && (blocks.seq(e.loc.block) < head.replay_from
                || state.versions.get(d).is_some_and(|v| v.loc == e.loc)
                || (state.versions.get(d).is_none() && same_use(blocks, head, e.loc.block)));
        if !backed {
            stale.push((d, e.loc));
        }
    });
    for (d, loc) in stale {
        index.remove_if_at(d, loc);
    }
}

/// Whether tail block `b` is the use of it the checkpoint saw, not one begun after it: a
/// foreground block holding a write made before the walk (every write of a block begun later
/// took its LSN after the walk), and not recorded by the checkpoint with another sequence.
fn same_use(blocks: &Blocks, head: &Head, b: u32) -> bool {
    let m = &blocks.meta[b as usize];
    m.kind.load(Ordering::Acquire) == quiver_wal::format::BlockKind::Foreground as u8
        && m.min_lsn.load(Ordering::Acquire) < head.walk_lsn
        && head
            .blocks
            .get(&b)
            .is_none_or(|&(seq, ..)| seq == blocks.seq(b))
}
