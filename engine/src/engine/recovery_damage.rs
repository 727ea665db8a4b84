//! Recovery's side of damaged keys: turning the damaged frames a scan found, and the durable
//! damaged-key list, into the set of keys that read as CORRUPT (see `damage.rs`).

use quiver_index::{digest, identity, Index, Location};
use quiver_wal::format::{decode_record, RecordHeader, Superblock, UNIT_BYTES};
use quiver_wal::Device;

use super::blocks::Blocks;
use super::damage::{
    decode_list, Candidate, DamagedKey, Resolver, DAMAGED_KEYS_KEY, DAMAGED_KEYS_NAMED,
};
use super::recovery::{read_frame, ScanState, Versions};
use super::stats::RecoveryReport;
use super::SYSTEM_GROUP;
use crate::error::Result;

/// The damage candidate for a frame whose header holds but whose body does not: `None` when
/// nothing names its key (a version 1 frame cut short before its key bytes).
pub(crate) fn candidate(
    block: u32,
    offset: u32,
    h: &RecordHeader,
    frame: &[u8],
) -> Option<Candidate> {
    let k = quiver_wal::damage::identify(h, frame)?;
    Some(Candidate {
        key: DamagedKey {
            group: h.group,
            tag: k.tag,
            lsn: h.lsn,
            block,
            offset,
            key: k.key.filter(|_| k.key_confirmed).map(<[u8]>::to_vec),
            found_by_read: false,
        },
        torn_like: torn_like(offset, h, frame),
    })
}

/// Device sectors: the unit a torn write lands or loses whole.
const SECTOR_BYTES: usize = 512;

/// Whether the frame looks like a write cut short by a power loss: from a sector boundary
/// inside its body to its end, every byte is zero (sectors that never landed, on an area that
/// was zeros: a new data file, or the zero padding an earlier flush of the same page wrote).
/// Such a write was never acknowledged as durable, so the previous version is the right
/// answer. A flipped bit does not look like that (unless the value itself ends in zeros
/// across a sector boundary); sectors that kept older nonzero bytes are taken for damage.
fn torn_like(offset: u32, h: &RecordHeader, frame: &[u8]) -> bool {
    let total = (h.total_len as usize).min(frame.len());
    let Some(last) = frame[..total].iter().rposition(|&b| b != 0) else {
        return true;
    };
    let boundary = (offset as usize + last + 1).next_multiple_of(SECTOR_BYTES) - offset as usize;
    boundary < h.total_len as usize
}

/// Weighs what a scan found against the versions it found.
pub(crate) struct Weighing {
    resolver: Resolver,
    /// The durable list as it was on the device.
    persisted: Vec<DamagedKey>,
    crash_tails: u64,
}

impl Weighing {
    /// Collects the candidates: the scan's damaged frames (but not writes cut short by a power
    /// loss, see `torn_like`) and the durable list at `persisted_at` (else the newest one the
    /// scan found). The decision depends on the frame's bytes alone, so every later open makes
    /// the same one.
    pub fn start(
        device: &dyn Device,
        sb: &Superblock,
        blocks: &Blocks,
        state: &ScanState,
        dropped: &[u32],
        persisted_at: Option<Location>,
    ) -> Result<Weighing> {
        let mut w = Weighing {
            resolver: Resolver::default(),
            persisted: Vec::new(),
            crash_tails: 0,
        };
        for c in &state.damaged {
            if c.torn_like {
                w.crash_tails += 1;
            } else {
                w.resolver.add(c.key.clone());
            }
        }
        if let Some(loc) = persisted_at.or(state.damaged_loc.map(|(_, loc)| loc)) {
            w.persisted = read_list(device, sb, blocks, loc);
            for k in &w.persisted {
                w.resolver.add(k.clone());
            }
        }
        w.resolver.forget_groups(dropped);
        Ok(w)
    }

    /// Every version a scan kept (the newest intact one of each key).
    pub fn see_versions(&mut self, versions: &Versions) {
        if self.resolver.is_empty() {
            return;
        }
        versions.for_each(|d, v| {
            if self.resolver.wants(d) {
                self.resolver.see(d, Some(v.lsn));
            }
        });
    }

    /// The index entries (loaded from a checkpoint) of tags not yet outweighed: their LSNs
    /// are read from the device.
    pub fn see_index(
        &mut self,
        device: &dyn Device,
        sb: &Superblock,
        blocks: &Blocks,
        index: &Index,
    ) {
        if self.resolver.is_empty() {
            return;
        }
        let mut unsettled = Vec::new();
        index.for_each(|d, e| {
            if self.resolver.unsettled(d) {
                unsettled.push((d, e.loc));
            }
        });
        for (d, loc) in unsettled {
            self.resolver.see(d, frame_lsn(device, sb, blocks, loc));
        }
    }

    /// Keeps refused versions out of the index, fills in the report and logs the first
    /// damaged keys. Returns the damaged keys and whether the durable list must be rewritten.
    pub fn finish(
        self,
        index: &Index,
        blocks: &Blocks,
        report: &mut RecoveryReport,
    ) -> (Vec<DamagedKey>, bool) {
        let (damaged, refused) = self.resolver.finish();
        for d in refused {
            if let Some(e) = index.remove(d) {
                blocks.sub_live(e.loc.block, e.loc.len_units * UNIT_BYTES as u32);
            }
        }
        report.crash_tail_frames = self.crash_tails;
        report.damaged_keys = damaged.len() as u64;
        report.damaged_key_names = damaged
            .iter()
            .take(DAMAGED_KEYS_NAMED)
            .map(DamagedKey::describe)
            .collect();
        for name in &report.damaged_key_names {
            tracing::warn!(key = %name, "damaged key: reads as CORRUPT until rewritten or deleted");
        }
        if damaged.len() > DAMAGED_KEYS_NAMED {
            tracing::warn!(
                more = damaged.len() - DAMAGED_KEYS_NAMED,
                "further damaged keys not named"
            );
        }
        let plain = |v: &[DamagedKey]| {
            let mut v: Vec<_> = v
                .iter()
                .map(|k| (k.tag, k.group, k.lsn, k.block, k.offset))
                .collect();
            v.sort_unstable();
            v
        };
        let changed = plain(&damaged) != plain(&self.persisted);
        (damaged, changed)
    }
}

/// The durable damaged-key list at `loc`. A list that cannot be read is reported and taken as
/// empty: the damaged frames with intact headers are found again by the scan.
fn read_list(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    loc: Location,
) -> Vec<DamagedKey> {
    let read = || -> Result<Vec<DamagedKey>> {
        let (buf, start) = read_frame(device, sb, loc)?;
        let offset = loc.offset_units * UNIT_BYTES as u32;
        let view = decode_record(&buf[start..], loc.block, offset, blocks.seq(loc.block))?;
        decode_list(view.value)
    };
    read().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the damaged-key list is unreadable; keys it named may read older versions");
        Vec::new()
    })
}

/// Where the index (loaded from a checkpoint) says the durable list is.
pub(crate) fn list_in_index(index: &Index) -> Option<Location> {
    index
        .get(identity(digest(SYSTEM_GROUP, DAMAGED_KEYS_KEY)))
        .map(|e| e.loc)
}

/// The LSN of the frame at `loc`; `None` when it fails its checks.
pub(crate) fn frame_lsn(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    loc: Location,
) -> Option<u64> {
    let (buf, start) = read_frame(device, sb, loc).ok()?;
    let offset = loc.offset_units * UNIT_BYTES as u32;
    decode_record(&buf[start..], loc.block, offset, blocks.seq(loc.block))
        .ok()
        .map(|v| v.header.lsn)
}
