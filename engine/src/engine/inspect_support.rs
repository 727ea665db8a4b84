//! The parts of recovery that offline inspection reuses.

use std::sync::atomic::Ordering;

use quiver_index::Index;
use quiver_wal::format::Superblock;
use quiver_wal::Device;

use super::blocks::{Blocks, SEALED};
use super::recovery::{read_dropped, recompute_live, scan_blocks, ScanState};
use super::stats::RecoveryReport;
use crate::error::Result;

pub(crate) struct ScannedBlock {
    pub block: u32,
    pub seq: u64,
    pub kind: u8,
    pub records: u64,
}

pub(crate) struct Scanned {
    pub report: RecoveryReport,
    pub blocks: Vec<ScannedBlock>,
    pub blocks_table: Blocks,
    pub live_records: u64,
}

/// Scans every block as a full recovery would, without opening a store.
pub(crate) fn scan_all(device: &dyn Device, sb: &Superblock) -> Result<Scanned> {
    let count = (sb.device_bytes / sb.write_block_bytes as u64) as usize;
    let blocks = Blocks::new(count, sb.write_block_bytes as u64, 0, 0);
    let mut report = RecoveryReport::default();
    let mut state = ScanState::default();
    let all: Vec<u32> = (1..count as u32).collect();
    scan_blocks(device, sb, &blocks, &all, &mut state, &mut report)?;
    let dropped = read_dropped(device, sb, &blocks, &state)?;
    let index = Index::new();
    // Inspection runs outside any store: it judges expiry by the system clock.
    let now = crate::clock::Clock::now_s(&crate::clock::SystemClock);
    let mut per_block = vec![0u64; count];
    state.versions.for_each(|d, v| {
        if v.is_live(now, &dropped) {
            index.insert(d, v.entry());
        }
        per_block[v.loc.block as usize] += 1;
    });
    recompute_live(&index, &blocks);
    let scanned = (1..count as u32)
        .filter(|&b| blocks.meta[b as usize].state.load(Ordering::Acquire) == SEALED)
        .map(|b| ScannedBlock {
            block: b,
            seq: blocks.meta[b as usize].seq.load(Ordering::Acquire),
            kind: blocks.meta[b as usize].kind.load(Ordering::Acquire),
            records: per_block[b as usize],
        })
        .collect();
    Ok(Scanned {
        report,
        blocks: scanned,
        live_records: index.len() as u64,
        blocks_table: blocks,
    })
}
