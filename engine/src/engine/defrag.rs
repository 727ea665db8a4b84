//! Background space reclaim: defragmentation of mostly-dead blocks, the expiry sweep, and
//! the reclaim of dropped groups.
//!
//! Hazards, and the order that prevents each:
//! - A block is freed before the copies of its live records are durable: the defrag writer
//!   is flushed (written and fdatasynced) before the block's header is erased.
//! - A block is freed while the write that superseded one of its frames (a newer version or
//!   a tombstone, appended but still buffered) is not yet durable: a crash would then lose
//!   both. The foreground log is made durable up to the scan before the header is erased.
//! - A freed block's old frames are replayed by a full scan: the header is erased and the
//!   erasure flushed before the block goes back on the free list; a reused block gets a new
//!   sequence number, and frames of an earlier use carry the old one and are ignored.
//! - A deleted or expired key comes back because its tombstone went away while an older
//!   version still sits in another block: when a block holding a dead marker (a tombstone,
//!   or the newest version of a key that expired or was deleted) is defragmented, a tombstone
//!   with the same LSN is written again unless no other block in use that may hide an older
//!   version (it holds frames that are neither live nor counted tombstones) has a frame with a
//!   lower LSN. Blocks of live records only (cold data) hold nothing back; the accounting a
//!   block's dead bytes come from is finished by every write in flight before it is judged
//!   (each holds its key's lock until then). Tombstones count apart from dead frames, and a
//!   block's tombstones count as worth copying only while one may still be needed: blocks of
//!   tombstones no longer needed become candidates and go.
//! - A batch wedges at a full device: batches are sized to the free blocks, and when the
//!   copies still run out of space, the blocks already copied are freed (in the order above).
//! - A failed write or sync of the copies or of the erase is taken for success elsewhere (with
//!   buffered I/O an EIO is reported once): any such error fails the store (`Inner::failed`).
//! - A foreground write races with a copy: the copy is made under the key's stripe lock and
//!   only if the index still points at the old frame; the index is switched with a
//!   compare-and-set on the location.
//! - A damaged frame cannot be copied, and freeing its block erases the only trace of the
//!   damage, so that the next open would serve the key's older version (or bring a deleted
//!   key back): before a block with damaged frames is freed, every key the index still points
//!   into it at is marked damaged (it reads CORRUPT), and every damaged frame that may hide an
//!   older version elsewhere is kept, as a tombstone at its LSN when its header names its key
//!   and LSN, else as a damaged key; the damaged-key list is durable before the erase.

use std::sync::atomic::Ordering;
use std::time::Duration;

use quiver_index::{digest, identity, Digest, Entry, Location};
use quiver_wal::format::{
    key_tag_of_digest, BlockKind, RecordInput, RecordView, FLAG_RELOCATED, FLAG_TOMBSTONE,
    UNIT_BYTES,
};
use quiver_wal::scan::{BlockScanner, ScanEnd, ScanItem};
use quiver_wal::{AlignedBuf, WriteOp, IO_ALIGN};

use super::blocks::{DEFRAG, OPEN, SEALED};

/// Blocks defragmented between two rounds of flushes.
pub(crate) const DEFRAG_BATCH_BLOCKS: usize = 8;
/// Threshold used while free space is low.
const LOW_SPACE_LWM_PCT: u8 = 90;
use super::Inner;
use crate::error::Result;

impl Inner {
    /// Defragments blocks under the threshold, emptiest first, a batch at a time (one set of
    /// flushes per batch), pausing between batches. The copying runs on a thread of its own
    /// at the configured niceness, whoever asks for it.
    pub fn defrag_pass(&self, max_blocks: usize) -> Result<usize> {
        // Sealed blocks still in the writer's hands are not candidates yet: hand them over.
        if self.fg.has_sealed() {
            self.fg.flush().map_err(|e| self.failed(e))?;
        }
        // Only the blocks that qualify now: blocks this pass writes wait for the next one.
        let candidates = self
            .blocks
            .defrag_candidates(self.effective_lwm_pct(), max_blocks);
        let nice = self.config.defrag_nice;
        if candidates.is_empty() || nice == 0 {
            return self.defrag_these(&candidates);
        }
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("quiver-defrag".into())
                .spawn_scoped(s, || {
                    lower_priority(nice);
                    self.defrag_these(&candidates)
                })
                .map_err(crate::Error::Io)?
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Defragments `candidates` (emptiest first) in batches, each sized to the free space.
    fn defrag_these(&self, candidates: &[u32]) -> Result<usize> {
        let configured = self.blocks.block_bytes as i64 * self.config.defrag_lwm_pct as i64 / 100;
        let mut freed = 0;
        let mut rest = candidates;
        while !rest.is_empty() {
            // Blocks above the configured threshold are taken only while space is short: each
            // one costs more copying than it frees, so stop as soon as space is back. The
            // candidates come emptiest first, so every later one is above it too.
            let low = self.low_on_space();
            let take = self.batch_len(rest, |b| low || self.blocks.kept_bytes(b) < configured);
            let (batch, later) = rest.split_at(take);
            rest = later;
            if batch.is_empty() {
                break;
            }
            let lease = self.scan_lease_ms.load(Ordering::Acquire);
            let scanning =
                quiver_wal::writer::now_ms().saturating_sub(lease) < super::scan::SCAN_LEASE_MS;
            // Scans hold defragmentation off, but never while space is short: then the moves
            // are noted for them instead (`scan_moves.rs`).
            if self.shutdown.load(Ordering::Acquire) || (scanning && !low) {
                break;
            }
            let claimed: Vec<u32> = batch
                .iter()
                .copied()
                .filter(|&b| {
                    self.blocks.meta[b as usize]
                        .state
                        .compare_exchange(SEALED, DEFRAG, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                })
                .collect();
            let (done, result) = self.defrag_blocks(&claimed);
            for &b in &claimed[done..] {
                let m = &self.blocks.meta[b as usize];
                let _ =
                    m.state
                        .compare_exchange(DEFRAG, SEALED, Ordering::AcqRel, Ordering::Acquire);
            }
            freed += done;
            match result {
                // Space ran out mid-batch, but what was fully copied is free now: go on with
                // a batch sized to the new free space.
                Err(crate::Error::DeviceFull { .. }) if done > 0 => continue,
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            // No throttle while writers may be waiting for space.
            if self.config.defrag_pause_ms > 0
                && !self.low_on_space()
                && self.sleep(Duration::from_millis(self.config.defrag_pause_ms))
            {
                break;
            }
        }
        Ok(freed)
    }

    /// How many of `candidates` the next batch takes: at most [`DEFRAG_BATCH_BLOCKS`], only
    /// while `wanted`, and only as many as the free blocks can take the copies of (at least
    /// one: the defragmentation writer's open block may have room).
    fn batch_len(&self, candidates: &[u32], wanted: impl Fn(u32) -> bool) -> usize {
        let room = self.blocks.free_count() as i64
            * (self.blocks.block_bytes - quiver_wal::format::BLOCK_HEADER_BYTES as u64) as i64;
        let mut copies = 0;
        let mut n = 0;
        for &b in candidates.iter().take(DEFRAG_BATCH_BLOCKS) {
            copies += self.blocks.kept_bytes(b).max(0);
            if !wanted(b) || (n > 0 && copies > room) {
                break;
            }
            n += 1;
        }
        n
    }

    /// The threshold in force: the configured one while space is plentiful; when free blocks
    /// run low, any block under [`LOW_SPACE_LWM_PCT`] qualifies (emptiest first), so that a
    /// store filled past the threshold's reach still reclaims space.
    fn effective_lwm_pct(&self) -> u8 {
        if self.low_on_space() {
            self.config.defrag_lwm_pct.max(LOW_SPACE_LWM_PCT)
        } else {
            self.config.defrag_lwm_pct
        }
    }

    /// Whether free blocks are down to the low-water mark: the write floor plus a margin of
    /// 2% of the device (at least one batch). Every free block held back idle raises the live
    /// share of the blocks in use, and with it the write amplification of a full store
    /// (under uniform overwrites at 80% fill, a greedy cleaner that keeps 5% of the device
    /// free copies ~3.2 bytes per byte written, 10% free ~4.4; `scripts/wa-model.py`), so
    /// the margin is only what the writers consume between two maintenance ticks.
    pub fn low_on_space(&self) -> bool {
        self.blocks.free_count() < self.blocks.low_water()
    }

    /// Whole bytes of a block: from a writer, the post-write cache, or the device (in one
    /// read).
    pub fn block_bytes_of(&self, b: u32) -> Result<Vec<u8>> {
        self.read_block(b, self.blocks.block_bytes as usize)
    }

    /// Like [`Inner::block_bytes_of`], but device reads go in `piece`-byte reads one at a
    /// time.
    fn read_block(&self, b: u32, piece: usize) -> Result<Vec<u8>> {
        let bb = self.blocks.block_bytes as u32;
        let mut v = Vec::new();
        if self.fg.read_pending(b, 0, bb, &mut v) || self.dw.read_pending(b, 0, bb, &mut v) {
            return Ok(v);
        }
        if let Some(buf) = self.blocks.cached(b) {
            return Ok(buf.to_vec());
        }
        let mut buf = AlignedBuf::new(bb as usize);
        for (i, part) in buf.chunks_mut(piece).enumerate() {
            self.device
                .read_at(part, b as u64 * bb as u64 + (i * piece) as u64)?;
        }
        Ok(buf.to_vec())
    }

    /// Defragmentation's read size.
    fn defrag_piece(&self) -> usize {
        match self.config.defrag_io_bytes as usize {
            0 => self.blocks.block_bytes as usize,
            n => n,
        }
    }

    /// Copies what is still needed out of `blocks`, in order, and frees each block copied
    /// completely: returns how many (a prefix of `blocks`) and the error that stopped the
    /// copying, if any. When the free blocks run out mid-batch, the blocks already copied are
    /// still freed, so the next batch has room (a batch that gave everything back would wedge
    /// at a full device).
    fn defrag_blocks(&self, blocks: &[u32]) -> (usize, Result<()>) {
        if blocks.is_empty() {
            return (0, Ok(()));
        }
        // Sealed blocks never change, so they are read before scans are held off; whether
        // each frame is still current is decided under the key's lock.
        let piece = self.defrag_piece();
        let contents: Result<Vec<Vec<u8>>> =
            blocks.iter().map(|&b| self.read_block(b, piece)).collect();
        let contents = match contents {
            Ok(c) => c,
            Err(e) => return (0, Err(e)),
        };
        let (done, copying) = self.copy_out(blocks, &contents);
        if let Err(e) = &copying {
            if !matches!(e, crate::Error::DeviceFull { .. }) || done == 0 {
                return (0, copying);
            }
        }
        // Damage found in these blocks outlives them only on the device.
        if let Err(e) = self.try_persist_damage() {
            return (0, Err(e));
        }
        match self.free_copied(&blocks[..done]) {
            Ok(()) => (done, copying),
            Err(e) => (0, Err(e)),
        }
    }

    /// Copies the live records and needed markers of each block in turn; returns how many
    /// blocks were copied completely and the error that stopped the next one.
    fn copy_out(&self, blocks: &[u32], contents: &[Vec<u8>]) -> (usize, Result<()>) {
        let _no_scan_chunk = self.scan_guard.write();
        let now = self.now_s();
        // A write holds its key's lock from placing its frame until the blocks' accounting is
        // done (the version it superseded counts as dead): wait for those in flight, so that
        // the accounting covers every frame of these sealed blocks before markers are judged.
        for stripe in &self.stripes {
            drop(stripe.lock());
        }
        for (i, (&b, bytes)) in blocks.iter().zip(contents).enumerate() {
            let seq = self.blocks.seq(b);
            let oldest_elsewhere = self.blocks.oldest_hiding_lsn_except(b);
            let mut damaged = false;
            let mut scanner = BlockScanner::new(bytes, b, seq);
            for item in scanner.by_ref() {
                let ScanItem::Record { offset, record } = item else {
                    damaged = true;
                    continue;
                };
                if let Err(e) = self.defrag_record(b, offset, &record, oldest_elsewhere, now) {
                    return (i, Err(e));
                }
            }
            damaged |= matches!(scanner.end(), Some(ScanEnd::Torn { .. }));
            if damaged {
                if let Err(e) = self.keep_damage(b, bytes, seq, oldest_elsewhere) {
                    return (i, Err(e));
                }
            }
        }
        (blocks.len(), Ok(()))
    }

    /// Keeps the damage in block `b` (its intact frames already copied) from going with it:
    /// see the module doc. Runs only for blocks whose scan met bytes that are no valid frame.
    fn keep_damage(&self, b: u32, bytes: &[u8], seq: u64, oldest_elsewhere: u64) -> Result<()> {
        let kind = match self.blocks.meta[b as usize].kind.load(Ordering::Acquire) {
            k if k == BlockKind::Defrag as u8 => BlockKind::Defrag,
            _ => BlockKind::Foreground,
        };
        let (mut found, groups) = super::recovery_damage::block_damage(bytes, b, seq, kind);
        // Writes cut short by a power loss were never acknowledged: not damage (as recovery).
        found.retain(|c| !c.torn_like);
        let tags: std::collections::HashSet<u64> = found.iter().map(|c| c.key.tag).collect();
        let mut stranded: Vec<(Digest, Entry)> = Vec::new();
        let mut tags_in_index = std::collections::HashSet::new();
        self.index.for_each(|d, e| {
            if e.loc.block == b {
                stranded.push((d, e));
            } else if tags.contains(&key_tag_of_digest(d)) {
                tags_in_index.insert(key_tag_of_digest(d));
            }
        });
        for (d, e) in stranded {
            self.strand(b, d, e, &found, &groups);
        }
        for c in &found {
            let k = &c.key;
            // A newer version of the key lives elsewhere, or its damage is recorded already;
            // or no older frame of it can exist: the frame may go.
            if tags_in_index.contains(&k.tag)
                || self.damage.contains_tag(k.tag)
                || oldest_elsewhere > k.lsn
                || k.group == super::SYSTEM_GROUP
            {
                continue;
            }
            match (&k.key, c.lsn_exact) {
                (Some(key), true) => {
                    let _key_lock = self.stripe(digest(k.group, key)).lock();
                    self.write_marker(k.lsn, k.group, key, 0, 0)?;
                }
                _ => self.damage.mark_settled(k.clone()),
            }
        }
        Ok(())
    }

    /// The index still points into block `b` at a frame that could not be copied: the key's
    /// newest version is damaged. It leaves the index and reads CORRUPT.
    fn strand(
        &self,
        b: u32,
        d: Digest,
        e: Entry,
        found: &[super::damage::Candidate],
        groups: &[u32],
    ) {
        let offset = e.loc.offset_units * UNIT_BYTES as u32;
        let _key_lock = self.stripe(d).lock();
        if self.index.remove_if_at(d, e.loc).is_none() {
            return;
        }
        self.blocks.sub_live(b, e.loc.len_units * UNIT_BYTES as u32);
        if d == identity(digest(super::SYSTEM_GROUP, super::damage::DAMAGED_KEYS_KEY)) {
            // Written again from memory before the block goes.
            self.damage.set_dirty();
            return;
        }
        let c = found
            .iter()
            .find(|c| c.key.block == b && c.key.offset == offset);
        let k = super::damage::DamagedKey {
            // A header beyond repair: the group of the block's intact frames.
            group: c.map_or(groups.first().copied().unwrap_or(0), |c| c.key.group),
            tag: key_tag_of_digest(d),
            // Else the next LSN: newer than every version of the key on the device.
            lsn: c.map_or_else(|| self.next_lsn.load(Ordering::SeqCst), |c| c.key.lsn),
            block: b,
            offset,
            key: c.and_then(|c| c.key.key.clone()),
            found_by_read: false,
        };
        tracing::warn!(key = %k.describe(), "damaged key found by defragmentation: reads as CORRUPT until rewritten or deleted");
        self.damage.mark_settled(k);
    }

    /// Makes the copies out of `blocks` durable, then erases and frees the blocks.
    fn free_copied(&self, blocks: &[u32]) -> Result<()> {
        // Whatever made these blocks' other frames dead (newer versions, tombstones) must be
        // durable before they are the only trace, and so must the copies; then the old
        // blocks' headers go, durably; then reuse.
        let superseded_by = self.fg.appended();
        self.fg
            .wait_durable(superseded_by)
            .map_err(|e| self.failed(e))?;
        self.dw.flush().map_err(|e| self.failed(e))?;
        let zeros = AlignedBuf::new(IO_ALIGN);
        let erase: Vec<WriteOp<'_>> = blocks
            .iter()
            .map(|&b| WriteOp {
                offset: b as u64 * self.blocks.block_bytes,
                buf: &zeros,
            })
            .collect();
        self.device
            .write_many(&erase)
            .and_then(|()| self.device.sync())
            .map_err(|e| self.failed(e))?;
        for &b in blocks {
            self.blocks.release(b);
        }
        self.counters
            .defrag_blocks_freed
            .fetch_add(blocks.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn defrag_record(
        &self,
        b: u32,
        offset: u32,
        r: &RecordView<'_>,
        oldest_elsewhere: u64,
        now: u32,
    ) -> Result<()> {
        let h = r.header;
        let d = digest(h.group, r.key);
        let loc = super::frame_location(b, offset, h.padded_len() as u32);
        let _key_lock = self.stripe(d).lock();
        match self.index.get(d) {
            Some(e) if e.loc == loc => {
                let dead = Self::is_expired(&e, now) || self.is_dropped(h.group);
                if dead {
                    if self.index.remove_if_at(d, loc).is_some() {
                        self.blocks.sub_live(b, loc.len_units * UNIT_BYTES as u32);
                    }
                    return self.keep_marker(r, oldest_elsewhere);
                }
                let copy = RecordInput {
                    lsn: h.lsn,
                    group: h.group,
                    key: r.key,
                    value: r.value,
                    flags: h.flags | FLAG_RELOCATED,
                    generation: h.generation,
                    expiry_s: h.expiry_s,
                    last_update_s: h.last_update_s,
                };
                let (placed, ()) = self
                    .dw
                    .append(&copy, |_| ())
                    .map_err(|e| self.defrag_error(e))?;
                self.blocks
                    .note_frame(placed.block, h.lsn, placed.offset + placed.padded_len);
                let new_loc = super::frame_location(placed.block, placed.offset, placed.padded_len);
                let moved = self.index.relocate(d, loc, new_loc);
                assert!(
                    moved,
                    "index moved under the key lock during defragmentation"
                );
                self.scan_moves.moved(h.group, d, loc, new_loc);
                self.blocks.add_live(placed.block, placed.padded_len);
                self.blocks.sub_live(b, loc.len_units * UNIT_BYTES as u32);
                self.counters
                    .defrag_records_moved
                    .fetch_add(1, Ordering::Relaxed);
                self.counters
                    .defrag_bytes_moved
                    .fetch_add(placed.padded_len as u64, Ordering::Relaxed);
                Ok(())
            }
            // A newer version lives elsewhere: this frame is garbage.
            Some(_) => Ok(()),
            // Maybe the newest version of a deleted or expired key.
            None => self.keep_marker(r, oldest_elsewhere),
        }
    }

    /// Rewrites a dead marker as a tombstone unless no older frame can exist anywhere.
    fn keep_marker(&self, r: &RecordView<'_>, oldest_elsewhere: u64) -> Result<()> {
        let h = r.header;
        if oldest_elsewhere > h.lsn || h.group == super::SYSTEM_GROUP {
            self.counters
                .tombstones_dropped
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.write_marker(h.lsn, h.group, r.key, h.generation, h.last_update_s)
    }

    /// Writes a tombstone of `key` at `lsn` into the defragmentation writer.
    fn write_marker(
        &self,
        lsn: u64,
        group: u32,
        key: &[u8],
        generation: u16,
        last_update_s: u32,
    ) -> Result<()> {
        let marker = RecordInput {
            lsn,
            group,
            key,
            value: &[],
            flags: FLAG_TOMBSTONE | FLAG_RELOCATED,
            generation,
            expiry_s: 0,
            last_update_s,
        };
        let (placed, ()) = self
            .dw
            .append(&marker, |_| ())
            .map_err(|e| self.defrag_error(e))?;
        self.blocks
            .note_frame(placed.block, lsn, placed.offset + placed.padded_len);
        self.blocks.add_marker(placed.block, placed.padded_len, lsn);
        self.counters
            .tombstones_kept
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn defrag_error(&self, e: quiver_wal::Error) -> crate::Error {
        match e {
            quiver_wal::Error::NoFreeBlock => crate::Error::DeviceFull {
                free_bytes: 0,
                floor_bytes: 0,
            },
            other => self.failed(other),
        }
    }

    /// Drops expired records from the index (their space then counts as dead).
    pub fn sweep_expired(&self) -> usize {
        let now = self.now_s();
        let mut expired = Vec::new();
        self.index.for_each(|d, e| {
            if Self::is_expired(&e, now) {
                expired.push((d, e.loc));
            }
        });
        let mut n = 0;
        for (d, loc) in expired {
            // The stripe is chosen by the digest's low bits, which the index keeps.
            let _key_lock = self.stripe(d).lock();
            if self.index.remove_if_at(d, loc).is_some() {
                self.blocks
                    .sub_live(loc.block, loc.len_units * UNIT_BYTES as u32);
                n += 1;
            }
        }
        self.counters
            .expired_swept
            .fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Removes the index entries of dropped groups by walking the blocks in use.
    pub fn reclaim_dropped_groups(&self) {
        let groups: Vec<u32> = std::mem::take(&mut *self.reclaim_pending.lock());
        if groups.is_empty() {
            return;
        }
        for b in 1..self.blocks.count() as u32 {
            if !matches!(self.blocks.state(b), OPEN | SEALED | DEFRAG) {
                continue;
            }
            let Ok(bytes) = self.read_block(b, self.defrag_piece()) else {
                self.reclaim_pending.lock().extend(&groups);
                return;
            };
            let seq = self.blocks.seq(b);
            for item in BlockScanner::new(&bytes, b, seq) {
                let ScanItem::Record { offset, record } = item else {
                    continue;
                };
                if !groups.contains(&record.header.group) {
                    continue;
                }
                let d = identity(digest(record.header.group, record.key));
                let loc = super::frame_location(b, offset, record.header.padded_len() as u32);
                let _key_lock = self.stripe(d).lock();
                if self.index.remove_if_at(d, loc).is_some() {
                    self.blocks.sub_live(b, loc.len_units * UNIT_BYTES as u32);
                }
            }
        }
        self.counters
            .groups_reclaimed
            .fetch_add(groups.len() as u64, Ordering::Relaxed);
    }
}

/// Most records one eviction round deletes.
const MAX_EVICT_PER_ROUND: usize = 100_000;

impl Inner {
    /// Above the high-water mark, deletes the records closest to expiry (tombstones, so they
    /// stay gone after a restart) until the live bytes drop by the excess. Returns how many.
    pub fn evict_if_needed(&self) -> Result<usize> {
        let hwm = self.config.evict_high_water_pct as u64;
        let total = self.blocks.count() as u64 - 1;
        let used = self.blocks.used_blocks() as u64;
        if hwm == 0 || used * 100 <= total * hwm {
            return Ok(0);
        }
        let excess = (used * 100 - total * hwm) * self.blocks.block_bytes / 100;
        let mut candidates: Vec<(u32, u128, Location)> = Vec::new();
        self.index.for_each(|d, e| {
            if e.expiry_s != 0 {
                candidates.push((e.expiry_s, d, e.loc));
            }
        });
        candidates.sort_unstable_by_key(|c| c.0);
        let mut freed = 0u64;
        let mut evicted = 0;
        for (_, _, loc) in candidates.into_iter().take(MAX_EVICT_PER_ROUND) {
            if freed >= excess {
                break;
            }
            let frame = match self.read_frame_from_memory(loc) {
                Some(f) => f,
                None => self.read_frame_from_device(loc)?,
            };
            let offset = loc.offset_units * UNIT_BYTES as u32;
            let Ok(view) = quiver_wal::format::decode_record(
                frame.bytes(),
                loc.block,
                offset,
                self.blocks.seq(loc.block),
            ) else {
                continue;
            };
            // A newer write of the key is not the version chosen here, and stays; a dropped
            // group's records go with its reclaim.
            let chosen = |e: &quiver_index::Entry| e.loc == loc;
            let opts = crate::WriteOptions::default();
            let existed = match self.delete_if(view.header.group, view.key, &opts, chosen) {
                Err(crate::Error::GroupDropped(_)) => false,
                other => other?,
            };
            if existed {
                freed += loc.len_units as u64 * UNIT_BYTES as u64;
                evicted += 1;
            }
        }
        self.counters
            .evicted
            .fetch_add(evicted as u64, Ordering::Relaxed);
        Ok(evicted)
    }
}

/// Raises the calling thread's niceness to `nice` (Linux schedules threads one by one). A
/// failure only leaves the thread at its priority, so it is logged, not returned.
fn lower_priority(nice: u8) {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice as libc::c_int)
    };
    if rc != 0 {
        tracing::debug!(nice, error = %std::io::Error::last_os_error(), "could not lower the defragmentation thread's priority");
    }
}

#[cfg(test)]
#[path = "defrag_tests.rs"]
mod tests;
