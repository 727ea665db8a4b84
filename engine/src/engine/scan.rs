//! Scanning the current records of one group, in device order.
//!
//! A scan walks the blocks in use and returns each frame of the group that the index still
//! points at. Defragmentation never moves records under a chunk, and it pauses while scans are
//! active (a chunk within the last `SCAN_LEASE_MS`), so a record that no one writes during the
//! scan is returned exactly once. A record written or deleted while a scan runs may be returned
//! in its old state, its new state, both, or not at all; so may any record when a scan pauses
//! longer than the lease between chunks.

use quiver_index::digest;
use quiver_wal::format::BLOCK_HEADER_BYTES;
use quiver_wal::scan::{BlockScanner, ScanItem};

use super::blocks::{DEFRAG, OPEN, SEALED};
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
        self.check_group(group)?;
        let max = max_records.clamp(1, MAX_SCAN_CHUNK);
        let _no_moves = self.scan_guard.read();
        self.scan_lease_ms.store(
            quiver_wal::writer::now_ms(),
            std::sync::atomic::Ordering::Release,
        );
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
                    return Ok(ScanChunk {
                        records,
                        next: Some(ScanCursor((b as u64) << 32 | offset as u64)),
                    });
                }
                let loc = super::frame_location(b, offset, record.header.padded_len() as u32);
                let current = self
                    .index
                    .get(digest(group, record.key))
                    .is_some_and(|e| e.loc == loc && !Self::is_expired(&e, now));
                if current {
                    records.push((
                        group,
                        Record {
                            key: record.key.to_vec(),
                            value: record.value.to_vec(),
                            generation: record.header.generation,
                            expiry_s: record.header.expiry_s,
                            last_update_s: record.header.last_update_s,
                        },
                    ));
                }
            }
            start_offset = BLOCK_HEADER_BYTES as u32;
        }
        Ok(ScanChunk {
            records,
            next: None,
        })
    }
}
