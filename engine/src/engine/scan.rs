//! Scanning the current records of one group, in device order.
//!
//! A scan walks the blocks in use and returns each frame of the group that the index still
//! points at. Defragmentation never moves records under a chunk, and it pauses while scans are
//! active (a chunk within the last `SCAN_LEASE_MS`) unless space is short; then the records it
//! moves under a scan are handed out by the scan's next chunk or skipped where they land
//! (`scan_moves.rs`), so a record that no one writes during the scan is returned exactly once. A record written or deleted while a scan runs may be returned
//! in its old state, its new state, both, or not at all; so may any record when a scan pauses
//! longer than the lease between chunks.

use quiver_index::digest;
use quiver_wal::format::{decode_record, RecordView, BLOCK_HEADER_BYTES, UNIT_BYTES};
use quiver_wal::scan::{BlockScanner, ScanItem};

use super::blocks::{DEFRAG, OPEN, SEALED};
use super::scan_moves::Pending;
use super::{Inner, Record};
use crate::error::Result;

/// Where a scan resumes: block index in the high 32 bits, byte offset in the low 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanCursor(pub u64);

impl ScanCursor {
    pub const START: ScanCursor = ScanCursor(1 << 32);
}

/// One chunk of a scan; `next` is `None` when the scan is complete.
#[derive(Clone, Debug)]
pub struct ScanChunk {
    pub records: Vec<(u32, Record)>,
    pub next: Option<ScanCursor>,
}

/// How long after a scan chunk defragmentation stays paused.
pub const SCAN_LEASE_MS: u64 = 10_000;

/// Most records one chunk may carry.
pub const MAX_SCAN_CHUNK: usize = 100_000;

impl Inner {
    pub fn scan(&self, group: u32, cursor: ScanCursor, max_records: usize) -> Result<ScanChunk> {
        self.scan_with(group, cursor, max_records, true)
    }

    /// A scan chunk; `lease`: hold defragmentation off for `SCAN_LEASE_MS` after it.
    pub fn scan_with(
        &self,
        group: u32,
        cursor: ScanCursor,
        max_records: usize,
        lease: bool,
    ) -> Result<ScanChunk> {
        self.check_group(group)?;
        let max = max_records.clamp(1, MAX_SCAN_CHUNK);
        let _no_moves = self.scan_guard.read();
        let now_ms = quiver_wal::writer::now_ms();
        if lease {
            self.scan_lease_ms
                .store(now_ms, std::sync::atomic::Ordering::Release);
        }
        let mut pending = self.scan_moves.take(group, cursor.0, now_ms);
        let mut records = Vec::new();
        let start_block = ((cursor.0 >> 32) as u32).max(1);
        let mut start_offset = (cursor.0 as u32).max(BLOCK_HEADER_BYTES as u32);
        if self.is_dropped(group) {
            return Ok(ScanChunk {
                records,
                next: None,
            });
        }
        let now = self.now_s();
        self.hand_out_moved(group, &mut pending, &mut records, max, now)?;
        for b in start_block..self.blocks.count() as u32 {
            if !matches!(self.blocks.state(b), OPEN | SEALED | DEFRAG) {
                start_offset = BLOCK_HEADER_BYTES as u32;
                continue;
            }
            let bytes = self.block_bytes_of(b)?;
            let seq = self.blocks.seq(b);
            for item in BlockScanner::new(&bytes, b, seq) {
                let ScanItem::Record { offset, record } = item else {
                    continue;
                };
                if offset < start_offset
                    || record.header.group != group
                    || record.header.is_tombstone()
                {
                    continue;
                }
                if records.len() == max {
                    let next = (b as u64) << 32 | offset as u64;
                    self.scan_moves.track(group, next, pending, now_ms);
                    return Ok(ScanChunk {
                        records,
                        next: Some(ScanCursor(next)),
                    });
                }
                let loc = super::frame_location(b, offset, record.header.padded_len() as u32);
                let d = digest(group, record.key);
                if pending.skip.get(&loc) == Some(&d) {
                    continue;
                }
                let current = self
                    .index
                    .get(d)
                    .is_some_and(|e| e.loc == loc && !Self::is_expired(&e, now));
                if current {
                    records.push((group, to_record(&record)));
                }
            }
            start_offset = BLOCK_HEADER_BYTES as u32;
        }
        Ok(ScanChunk {
            records,
            next: None,
        })
    }

    /// Hands out the records defragmentation moved from ahead of this scan to behind it
    /// (see `scan_moves.rs`), at most up to `max` records in the chunk; the rest wait for the
    /// next chunk. Each one's frame is skipped if the scan reaches it later.
    fn hand_out_moved(
        &self,
        group: u32,
        pending: &mut Pending,
        records: &mut Vec<(u32, Record)>,
        max: usize,
        now: u32,
    ) -> Result<()> {
        let room = max.saturating_sub(records.len()).min(pending.extra.len());
        for d in pending.extra.drain(..room).collect::<Vec<_>>() {
            let Some(e) = self.index.get(d).filter(|e| !Self::is_expired(e, now)) else {
                continue;
            };
            let frame = match self.read_frame_from_memory(e.loc) {
                Some(f) => f,
                None => self.read_frame_from_device(e.loc)?,
            };
            let offset = e.loc.offset_units * UNIT_BYTES as u32;
            let seq = self.blocks.seq(e.loc.block);
            let view = decode_record(frame.bytes(), e.loc.block, offset, seq)?;
            if view.header.group == group && !view.header.is_tombstone() {
                records.push((group, to_record(&view)));
                pending.skip.insert(e.loc, d);
            }
        }
        Ok(())
    }
}

fn to_record(r: &RecordView<'_>) -> Record {
    Record {
        key: r.key.to_vec(),
        value: r.value.to_vec(),
        generation: r.header.generation,
        expiry_s: r.header.expiry_s,
        last_update_s: r.header.last_update_s,
    }
}
