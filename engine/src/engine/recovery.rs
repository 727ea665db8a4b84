//! Rebuilding the index from the device.
//!
//! Every frame carries an LSN (a store-wide write sequence; a defragmentation copy keeps its
//! original's), so the newest version of a key is the one with the highest LSN, wherever it
//! sits. Tombstones and expired records take part in that choice and then hide the key, which
//! is why a delete never comes back: the tombstone is kept on the device as long as any
//! older version might be (see `defrag.rs` for when it may go).
//!
//! Two ways in: load the index checkpoint and scan only the blocks written after it
//! (`checkpoint.rs`), or scan every block (this file).
//!
//! The scan is a pipeline: two threads read 8 MiB of blocks per submission, a few chunks
//! ahead, while one decoding thread per core verifies frames and folds them into a version
//! map sharded by digest. Once every block is in, the live versions go into the
//! index from all cores at once, each thread taking whole shards (so no two insert into the
//! same index partition), adding each record's bytes to its block's live count as it goes.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam::channel;
use parking_lot::Mutex;

use quiver_index::{digest, identity, Digest, Index, Location};
use quiver_wal::format::{BlockHeader, Superblock, FLAG_RELOCATED, UNIT_BYTES};
use quiver_wal::scan::{BlockScanner, ScanEnd, ScanItem};
use quiver_wal::{AlignedBuf, Device, ReadOp};

use super::blocks::{Blocks, SEALED};
use super::damage::{Candidate, DamagedKey};
use super::recovery_damage::Region;
use super::stats::RecoveryReport;
use super::{DROPPED_GROUPS_KEY, SYSTEM_GROUP};
use crate::config::Config;
use crate::error::Result;

/// Bytes read per submission during a scan (at least one block).
const READ_CHUNK_BYTES: usize = 8 << 20;
/// Chunks read ahead of the decoders, beyond one per decoder.
const READ_AHEAD_CHUNKS: usize = 2;
/// Threads submitting reads during a scan.
const READERS: usize = 2;
/// At most this many decoding threads.
const MAX_DECODERS: usize = 8;

pub(crate) struct Recovered {
    pub next_lsn: u64,
    pub next_seq: u64,
    pub dropped: Vec<u32>,
    /// Dropped groups that may still have records on the device.
    pub dropped_with_records: Vec<u32>,
    /// Keys whose newest frame is damaged (see `damage.rs`).
    pub damaged: Vec<DamagedKey>,
    /// Whether the durable damaged-key list must be rewritten.
    pub damage_changed: bool,
    pub report: RecoveryReport,
    /// The foreground block opened last, when this open scanned it: the writer may go on
    /// filling it (see `open.rs`).
    pub last_foreground: Option<u32>,
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

    pub fn entry(&self) -> quiver_index::Entry {
        quiver_index::Entry {
            loc: self.loc,
            generation: self.generation,
            expiry_s: self.expiry_s,
            last_update_s: self.last_update_s,
        }
    }

    pub fn is_relocated(&self) -> bool {
        self.flags & FLAG_RELOCATED != 0
    }

    /// Whether this version replaces `old`, a version of the same key: the higher LSN wins;
    /// at equal LSNs (a frame and its defragmentation copies) the original wins over a copy,
    /// and of two copies the one in the newer block. The order is total, so the outcome does
    /// not depend on the order in which the blocks were decoded.
    fn supersedes(&self, old: &Version, blocks: &Blocks) -> bool {
        if self.lsn != old.lsn {
            return self.lsn > old.lsn;
        }
        match (self.is_relocated(), old.is_relocated()) {
            (false, true) => true,
            (true, false) => false,
            _ => blocks.seq(self.loc.block) > blocks.seq(old.loc.block),
        }
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

/// Shards of the version map. A digest's shard is its top bits, the same bits that choose its
/// index partition, so shards map onto disjoint sets of partitions.
const VERSION_SHARD_BITS: u32 = 8;
const VERSION_SHARDS: usize = 1 << VERSION_SHARD_BITS;

/// The newest version of every key seen by a scan, sharded so that several decoding threads
/// can fold their frames in at once.
pub(crate) struct Versions {
    shards: Box<[Mutex<DigestMap<Version>>]>,
}

impl Default for Versions {
    fn default() -> Versions {
        Versions {
            shards: (0..VERSION_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Versions {
    fn shard_of(d: Digest) -> usize {
        (d >> (128 - VERSION_SHARD_BITS)) as usize
    }

    pub fn get(&self, d: Digest) -> Option<Version> {
        self.shards[Self::shard_of(d)].lock().get(&d).copied()
    }

    /// Visits every key's newest version, one shard at a time.
    pub fn for_each(&self, mut f: impl FnMut(Digest, &Version)) {
        for shard in self.shards.iter() {
            for (&d, v) in shard.lock().iter() {
                f(d, v);
            }
        }
    }

    /// Visits the shards from `threads` threads at once; `f` gets one shard's map at a time.
    fn par_for_each_shard(&self, threads: usize, f: impl Fn(&DigestMap<Version>) + Sync) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(shard) = self.shards.get(i) else {
                        return;
                    };
                    f(&shard.lock());
                });
            }
        });
    }

    /// Folds `pending` (all of one shard) in, keeping the newest version of each key.
    fn merge(&self, shard: usize, pending: &mut Vec<(Digest, Version)>, blocks: &Blocks) {
        let mut map = self.shards[shard].lock();
        for (d, v) in pending.drain(..) {
            match map.entry(d) {
                Entry::Vacant(slot) => {
                    slot.insert(v);
                }
                Entry::Occupied(mut slot) => {
                    if v.supersedes(slot.get(), blocks) {
                        slot.insert(v);
                    }
                }
            }
        }
    }
}

/// What scanning some blocks found.
#[derive(Default)]
pub(crate) struct ScanState {
    pub versions: Versions,
    pub max_lsn: u64,
    pub max_seq: u64,
    /// Location of the newest dropped-groups record.
    pub dropped_loc: Option<(u64, Location)>,
    /// (sequence, block) of the scanned foreground block with the highest sequence.
    pub last_foreground: Option<(u64, u32)>,
    /// Frames whose header holds but whose body does not, by the key their header names.
    pub damaged: Vec<Candidate>,
    /// Location of the newest damaged-keys record.
    pub damaged_loc: Option<(u64, Location)>,
}

pub(crate) fn recover(
    config: &Config,
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    index: &Index,
) -> Result<Recovered> {
    let started = Instant::now();
    let now = config.clock.now_s();
    let mut fallback = None;
    if let Some(path) = config.checkpoint_file() {
        match super::checkpoint::load(&path, device, sb, blocks, index, now) {
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
    let mut r = full_scan(device, sb, blocks, index, now)?;
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
    now: u32,
) -> Result<Recovered> {
    let mut report = RecoveryReport {
        mode: "scan".into(),
        ..RecoveryReport::default()
    };
    let all: Vec<u32> = (1..blocks.count() as u32).collect();
    let mut state = ScanState::default();
    let t0 = Instant::now();
    scan_blocks(device, sb, blocks, &all, &mut state, &mut report)?;
    let scanned_ms = t0.elapsed().as_millis() as u64;
    if report.blocks_scanned == 0 {
        report.mode = "created".into();
    }
    let dropped = read_dropped(device, sb, blocks, &state)?;
    let mut damage =
        super::recovery_damage::Weighing::start(device, sb, blocks, &state, &dropped, None)?;
    damage.see_versions(&state.versions);
    for m in &blocks.meta {
        m.live_bytes.store(0, Ordering::Release);
    }
    state.versions.par_for_each_shard(decoders(), |shard| {
        for (&d, v) in shard {
            if v.is_live(now, &dropped) {
                index.insert(d, v.entry());
                blocks.add_live(v.loc.block, v.loc.len_units * UNIT_BYTES as u32);
            }
        }
    });
    tracing::debug!(
        scanned_ms,
        index_built_ms = t0.elapsed().as_millis() as u64 - scanned_ms,
        "full scan"
    );
    let (damaged, damage_changed) = damage.finish(index, blocks, &mut report);
    report.records_recovered = index.len() as u64;
    Ok(Recovered {
        next_lsn: state.max_lsn + 1,
        next_seq: state.max_seq + 1,
        dropped_with_records: Vec::new(),
        dropped,
        damaged,
        damage_changed,
        report,
        last_foreground: state.last_foreground.map(|(_, b)| b),
    })
}

/// Decoding threads for a scan: one per core.
fn decoders() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_DECODERS)
}

/// One read submission's blocks and their buffers.
struct Chunk {
    which: Vec<u32>,
    bufs: Vec<AlignedBuf>,
}

/// What one decoding thread found; folded into the caller's state at the end.
#[derive(Default)]
struct DecoderOut {
    report: RecoveryReport,
    max_lsn: u64,
    max_seq: u64,
    dropped_loc: Option<(u64, Location)>,
    last_foreground: Option<(u64, u32)>,
    damaged: Vec<Candidate>,
    damaged_loc: Option<(u64, Location)>,
}

/// Reads `which` blocks, sets their state from their headers, and folds every verified frame
/// into `state.versions`. Reads run a few chunks ahead on this thread while the decoders
/// (one per core) verify and merge; see the module doc.
pub(crate) fn scan_blocks(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    which: &[u32],
    state: &mut ScanState,
    report: &mut RecoveryReport,
) -> Result<()> {
    if which.is_empty() {
        return Ok(());
    }
    let bb = sb.write_block_bytes as usize;
    // A short tail (a checkpoint's replay, often one block) gets buffers for what it reads,
    // not for a whole device's pipeline: an open per command must not zero 40 MiB each time.
    let per_chunk = (READ_CHUNK_BYTES / bb).max(1).min(which.len());
    let decoders = decoders().min(which.len().div_ceil(per_chunk));
    let (full_tx, full_rx) = channel::bounded::<Chunk>(decoders + READ_AHEAD_CHUNKS);
    let (free_tx, free_rx) = channel::unbounded::<Vec<AlignedBuf>>();
    let chunk_count = which.len().div_ceil(per_chunk);
    for _ in 0..(decoders + READ_AHEAD_CHUNKS + READERS).min(chunk_count + READERS) {
        let bufs = (0..per_chunk).map(|_| AlignedBuf::new(bb)).collect();
        free_tx.send(bufs).expect("receiver held here");
    }
    let versions = &state.versions;
    let next = AtomicUsize::new(0);
    let chunks: Vec<&[u32]> = which.chunks(per_chunk).collect();
    let (read_result, outs) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..decoders)
            .map(|_| {
                let (full_rx, free_tx) = (full_rx.clone(), free_tx.clone());
                s.spawn(move || {
                    let mut out = DecoderOut::default();
                    let mut pending: Vec<Vec<(Digest, Version)>> =
                        (0..VERSION_SHARDS).map(|_| Vec::new()).collect();
                    for chunk in full_rx {
                        for (&b, buf) in chunk.which.iter().zip(&chunk.bufs) {
                            out.report.bytes_scanned += bb as u64;
                            scan_one(b, buf, sb, blocks, &mut out, &mut pending);
                        }
                        // The buffers go back before the merge so the reader can go on.
                        let _ = free_tx.send(chunk.bufs);
                        for (shard, p) in pending.iter_mut().enumerate() {
                            if !p.is_empty() {
                                versions.merge(shard, p, blocks);
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        // Only the decoders hand buffers back: if they all stopped, the readers see it.
        drop(full_rx);
        drop(free_tx);
        // Two readers, so that one submission is always in flight while the other's blocks
        // are handed over.
        let readers: Vec<_> = (0..READERS.min(chunks.len()))
            .map(|_| {
                let (full_tx, free_rx) = (full_tx.clone(), free_rx.clone());
                let (next, chunks) = (&next, &chunks);
                s.spawn(move || -> Result<()> {
                    while let Some(ids) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let Ok(mut bufs) = free_rx.recv() else {
                            break;
                        };
                        let results = {
                            let mut ops: Vec<ReadOp<'_>> = ids
                                .iter()
                                .zip(bufs.iter_mut())
                                .map(|(&b, buf)| ReadOp {
                                    offset: b as u64 * bb as u64,
                                    buf: &mut buf[..],
                                })
                                .collect();
                            device.read_many(&mut ops)
                        };
                        for r in results {
                            // Stop the other reader too: the scan fails as a whole.
                            r.inspect_err(|_| next.store(chunks.len(), Ordering::Relaxed))?;
                        }
                        let chunk = Chunk {
                            which: ids.to_vec(),
                            bufs,
                        };
                        if full_tx.send(chunk).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        drop(free_rx);
        let read_result = readers
            .into_iter()
            .map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Result<Vec<()>>>()
            .map(|_| ());
        drop(full_tx);
        let outs: Vec<DecoderOut> = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        (read_result, outs)
    });
    read_result?;
    for out in outs {
        let r = out.report;
        report.blocks_scanned += r.blocks_scanned;
        report.bytes_scanned += r.bytes_scanned;
        report.records_seen += r.records_seen;
        report.tombstones_seen += r.tombstones_seen;
        report.corrupt_records += r.corrupt_records;
        report.torn_tails += r.torn_tails;
        report.damage.extend(r.damage);
        state.max_lsn = state.max_lsn.max(out.max_lsn);
        state.max_seq = state.max_seq.max(out.max_seq);
        state.last_foreground = state.last_foreground.max(out.last_foreground);
        if let Some((lsn, loc)) = out.dropped_loc {
            if state.dropped_loc.is_none_or(|(l, _)| l < lsn) {
                state.dropped_loc = Some((lsn, loc));
            }
        }
        if let Some((lsn, loc)) = out.damaged_loc {
            if state.damaged_loc.is_none_or(|(l, _)| l < lsn) {
                state.damaged_loc = Some((lsn, loc));
            }
        }
        state.damaged.extend(out.damaged);
    }
    report
        .damage
        .sort_by_key(|&(block, offset, _)| (block, offset));
    Ok(())
}

/// Decodes one block: sets its metadata and queues each verified frame for its shard.
fn scan_one(
    b: u32,
    buf: &[u8],
    sb: &Superblock,
    blocks: &Blocks,
    out: &mut DecoderOut,
    pending: &mut [Vec<(Digest, Version)>],
) {
    let Some(h) = block_header(buf, b, sb, &mut out.report) else {
        return;
    };
    let report = &mut out.report;
    report.blocks_scanned += 1;
    let m = &blocks.meta[b as usize];
    m.seq.store(h.seq, Ordering::Release);
    m.kind.store(h.kind as u8, Ordering::Release);
    m.state.store(SEALED, Ordering::Release);
    out.max_seq = out.max_seq.max(h.seq);
    if h.kind == quiver_wal::format::BlockKind::Foreground {
        out.last_foreground = out.last_foreground.max(Some((h.seq, b)));
    }
    let mut min_lsn = u64::MAX;
    // What the block's damaged headers are weighed against: the (offset, LSN) of each frame
    // whose header holds, and the groups seen. Damaged headers: (offset, length, tail).
    let mut lsns: Vec<(u32, u64)> = Vec::new();
    let mut groups: Vec<u32> = Vec::new();
    let mut regions: Vec<Region> = Vec::new();
    let mut scanner = BlockScanner::new(buf, b, h.seq);
    for item in scanner.by_ref() {
        match item {
            ScanItem::Record { offset, record } => {
                report.records_seen += 1;
                let hd = record.header;
                min_lsn = min_lsn.min(hd.lsn);
                lsns.push((offset, hd.lsn));
                if !groups.contains(&hd.group) {
                    groups.push(hd.group);
                }
                out.max_lsn = out.max_lsn.max(hd.lsn);
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
                if hd.group == SYSTEM_GROUP {
                    let newest = |at: &Option<(u64, Location)>| at.is_none_or(|(l, _)| l < hd.lsn);
                    if record.key == DROPPED_GROUPS_KEY && newest(&out.dropped_loc) {
                        out.dropped_loc = Some((hd.lsn, v.loc));
                    }
                    if record.key == super::damage::DAMAGED_KEYS_KEY && newest(&out.damaged_loc) {
                        out.damaged_loc = Some((hd.lsn, v.loc));
                    }
                }
                pending[Versions::shard_of(d)].push((d, v));
            }
            ScanItem::Corrupt {
                offset,
                detail,
                header,
                frame,
            } => {
                report.corrupt_records += 1;
                report.damage.push((b, offset, detail));
                match header {
                    Some(rh) => {
                        // The tombstone of its key must stay as long as the damaged frame does.
                        min_lsn = min_lsn.min(rh.lsn);
                        lsns.push((offset, rh.lsn));
                        let frame = &frame[..(rh.total_len as usize).min(frame.len())];
                        if let Some(c) = super::recovery_damage::candidate(b, offset, &rh, frame) {
                            out.damaged.push(c);
                        }
                    }
                    None => regions.push(Region {
                        offset,
                        len: frame.len(),
                        tail: false,
                    }),
                }
            }
        }
    }
    let mut end = match scanner.end() {
        Some(ScanEnd::Clean { offset }) | Some(ScanEnd::Torn { offset }) => offset as u64,
        _ => sb.write_block_bytes as u64,
    };
    if let Some(ScanEnd::Torn { offset }) = scanner.end() {
        regions.push(Region {
            offset,
            len: buf.len() - offset as usize,
            tail: true,
        });
    }
    let found = super::recovery_damage::damaged_headers(
        buf,
        b,
        (h.seq, h.kind),
        &regions,
        &groups,
        &mut lsns,
    );
    for c in found.candidates {
        min_lsn = min_lsn.min(c.key.lsn);
        out.damaged.push(c);
    }
    report.corrupt_records += found.uncounted;
    report
        .damage
        .extend(found.notes.into_iter().map(|(o, n)| (b, o, n)));
    match (scanner.end(), found.tail_end) {
        (Some(ScanEnd::Torn { .. }), Some(tail_end)) => end = tail_end as u64,
        (Some(ScanEnd::Torn { offset }), None) => {
            report.torn_tails += 1;
            report.damage.push((
                b,
                offset,
                "torn tail: bytes after the last valid frame".into(),
            ));
        }
        _ => {}
    }
    m.used_bytes.store(end, Ordering::Release);
    m.min_lsn.store(min_lsn, Ordering::Release);
}

/// The header of block `b`: decoded, or restored from one damaged byte (reported as damage).
/// `None`: the block holds no header of this store (free, never written, or damaged beyond
/// one byte), and recovery treats it as free.
pub(crate) fn block_header(
    buf: &[u8],
    b: u32,
    sb: &Superblock,
    report: &mut RecoveryReport,
) -> Option<BlockHeader> {
    if let Some(h) = BlockHeader::decode(buf, b, sb.store_id as u64) {
        return Some(h);
    }
    let r = quiver_wal::damage::repair_block_header(buf, b, sb.store_id as u64)?;
    report.damage.push((
        b,
        0,
        format!(
            "damaged block header (byte {}), restored from its checksum",
            r.byte
        ),
    ));
    Some(r.header)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn version(lsn: u64, block: u32, relocated: bool) -> Version {
        Version {
            lsn,
            loc: Location {
                block,
                offset_units: 4,
                len_units: 8,
            },
            group: 1,
            generation: 1,
            expiry_s: 0,
            last_update_s: 0,
            flags: if relocated { FLAG_RELOCATED } else { 0 },
        }
    }

    /// The scan decodes blocks on several threads in no fixed order, so the choice between two
    /// versions of a key must not depend on which came first.
    #[test]
    fn newest_version_does_not_depend_on_scan_order() {
        let blocks = Blocks::new(8, 1 << 20, 0, 0);
        for (b, seq) in [(1, 10), (2, 30), (3, 20)] {
            blocks.meta[b].seq.store(seq, Ordering::Release);
        }
        // Three defragmentation copies of one frame (LSN 5) and an older write.
        let candidates = [
            version(5, 1, true),
            version(5, 2, true),
            version(5, 3, true),
            version(4, 2, false),
            version(4, 3, true),
        ];
        let d: Digest = 0xabcd << 100;
        let mut outcomes = Vec::new();
        // Every order of the five candidates.
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        let mut permutations = vec![order.clone()];
        while next_permutation(&mut order) {
            permutations.push(order.clone());
        }
        assert_eq!(permutations.len(), 120);
        for order in permutations {
            let versions = Versions::default();
            for i in order {
                let mut pending = vec![(d, candidates[i])];
                versions.merge(Versions::shard_of(d), &mut pending, &blocks);
            }
            outcomes.push(versions.get(d).expect("merged").loc.block);
        }
        assert!(
            outcomes.iter().all(|&b| b == 2),
            "the copy in the newest block (2, sequence 30) wins in every order: {outcomes:?}"
        );

        // At equal LSNs the original beats its copies, and the newer block's copy the older's.
        let orig = version(5, 1, false);
        let (old_copy, new_copy) = (version(5, 3, true), version(5, 2, true));
        assert!(orig.supersedes(&new_copy, &blocks) && !new_copy.supersedes(&orig, &blocks));
        assert!(new_copy.supersedes(&old_copy, &blocks));
        assert!(!old_copy.supersedes(&new_copy, &blocks));
    }

    fn next_permutation(v: &mut [usize]) -> bool {
        let Some(i) = (1..v.len()).rev().find(|&i| v[i - 1] < v[i]) else {
            return false;
        };
        let j = (i..v.len())
            .rev()
            .find(|&j| v[j] > v[i - 1])
            .expect("exists");
        v.swap(i - 1, j);
        v[i..].reverse();
        true
    }
}
