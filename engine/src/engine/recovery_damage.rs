//! Recovery's side of damaged keys: turning the damaged frames a scan found, and the durable
//! damaged-key list, into the set of keys that read as CORRUPT (see `damage.rs`).

use quiver_index::{digest, identity, Index, Location};
use quiver_wal::format::{
    decode_record, RecordHeader, Superblock, RECORD_HEADER_BYTES, UNIT_BYTES,
};
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
        lsn_exact: true,
    })
}

/// Bytes of a block that hold no valid frame: a damaged header (up to the next valid frame),
/// or the block's tail after its last valid frame.
pub(crate) struct Region {
    pub offset: u32,
    pub len: usize,
    /// The tail: bytes after the last valid frame, which may also be a write cut short by a
    /// crash or an earlier use of the block.
    pub tail: bool,
}

/// What [`damaged_headers`] found.
#[derive(Default)]
pub(crate) struct HeadersFound {
    pub candidates: Vec<Candidate>,
    /// (offset, what) of each damaged header restored or whose key was found.
    pub notes: Vec<(u32, String)>,
    /// Damaged frames the scanner did not count: those after the first of a region, and
    /// those in the tail.
    pub uncounted: u64,
    /// Where the block's data ends when its tail held damaged frames.
    pub tail_end: Option<u32>,
}

/// Walks the regions of a block that hold no valid frame for frames whose header is damaged,
/// so that the keys of those frames are damaged keys rather than forgotten (which would let an
/// older version win).
///
/// - A header with one damaged byte is restored from its checksum
///   (`quiver_wal::damage::repair_record_header`): its key, LSN and length are known, and the
///   walk goes on after it. Tried in every region, the tail included (a crash never damages
///   exactly one byte of a header, and an earlier use's frames carry another sequence).
/// - A header damaged in more bytes, inside the block's data only (not the tail), still names
///   its key when the key bytes and 5 of the 7 tag bytes hold
///   (`quiver_wal::damage::find_identity`; `groups`: those of the block's intact frames). Its
///   LSN is the header's when restoring the identity restored the header; else a bound: in a
///   foreground block the writes of one key are appended in LSN order (they are made under
///   its lock), so its older versions lie before the frame and its newer ones after it, and
///   the LSN after the largest before it (or, for the block's first frame, the smallest after
///   it) separates them; a defragmentation block's copies keep their LSNs in any order, so
///   there it is the LSN after the block's largest.
///
/// `lsns` ((offset, LSN) of the frames whose header holds) gains the restored ones.
pub(crate) fn damaged_headers(
    buf: &[u8],
    b: u32,
    (seq, kind): (u64, quiver_wal::format::BlockKind),
    regions: &[Region],
    groups: &[u32],
    lsns: &mut Vec<(u32, u64)>,
) -> HeadersFound {
    use quiver_wal::damage::{find_identity, repair_record_header};
    let mut found = HeadersFound::default();
    // Offsets not explained by a restored header, for the search: (offset, end of its region,
    // start of its region).
    let mut unexplained: Vec<(u32, usize, u32)> = Vec::new();
    for r in regions {
        let end = r.offset as usize + r.len;
        let mut at = r.offset as usize;
        while at + RECORD_HEADER_BYTES <= end {
            let bytes = &buf[at..end];
            if r.tail && bytes[..RECORD_HEADER_BYTES].iter().all(|&x| x == 0) {
                break;
            }
            match repair_record_header(bytes, seq) {
                Some(rep) => {
                    let h = rep.header;
                    lsns.push((at as u32, h.lsn));
                    let frame = &bytes[..(h.total_len as usize).min(bytes.len())];
                    found.candidates.extend(candidate(b, at as u32, &h, frame));
                    found.notes.push((
                        at as u32,
                        format!(
                            "damaged frame header: byte {} restored from its checksum (LSN {})",
                            rep.byte, h.lsn
                        ),
                    ));
                    found.uncounted += u64::from(at != r.offset as usize || r.tail);
                    at += h.padded_len();
                    if r.tail {
                        found.tail_end = Some(at.min(buf.len()) as u32);
                    }
                }
                None => {
                    if !r.tail {
                        unexplained.push((at as u32, end, r.offset));
                    }
                    at += UNIT_BYTES;
                }
            }
        }
    }
    lsns.sort_unstable();
    let mut searched_to = 0;
    for (at, end, start) in unexplained {
        if (at as usize) < searched_to {
            continue;
        }
        let Some(id) = find_identity(&buf[at as usize..end], seq, groups) else {
            continue;
        };
        let lsn = match id.header {
            Some(h) => h.lsn,
            None if kind == quiver_wal::format::BlockKind::Defrag => {
                match lsns.iter().map(|&(_, l)| l).max() {
                    Some(l) => l + 1,
                    None => continue,
                }
            }
            None => match lsns.iter().filter(|&&(o, _)| o < at).map(|&(_, l)| l).max() {
                Some(l) => l + 1,
                None => match lsns.iter().map(|&(_, l)| l).min() {
                    Some(l) => l,
                    None => continue,
                },
            },
        };
        let key = &buf[at as usize + RECORD_HEADER_BYTES..][..id.key_len];
        found.notes.push((
            at,
            format!(
                "damaged frame header: its key found from its tag and key bytes{}",
                match id.header {
                    Some(_) => ", and the header restored",
                    None => ", its LSN bounded by its neighbours",
                }
            ),
        ));
        found.candidates.push(Candidate {
            key: DamagedKey {
                group: id.group,
                tag: id.tag,
                lsn,
                block: b,
                offset: at,
                key: Some(key.to_vec()),
                found_by_read: false,
            },
            torn_like: false,
            lsn_exact: id.header.is_some(),
        });
        found.uncounted += u64::from(at != start);
        // Its own bytes hold no other frame's header.
        searched_to = at as usize + RECORD_HEADER_BYTES + id.key_len;
    }
    found
}

/// The damaged frames of one block whose key can be named, and the groups of its intact
/// frames, as a scan finds them (`recovery.rs`): defragmentation weighs them before it frees
/// the block, which erases the only trace of the damage on the device.
pub(crate) fn block_damage(
    buf: &[u8],
    b: u32,
    seq: u64,
    kind: quiver_wal::format::BlockKind,
) -> (Vec<Candidate>, Vec<u32>) {
    use quiver_wal::scan::{BlockScanner, ScanEnd, ScanItem};
    let mut lsns: Vec<(u32, u64)> = Vec::new();
    let mut groups: Vec<u32> = Vec::new();
    let mut regions: Vec<Region> = Vec::new();
    let mut out = Vec::new();
    let mut scanner = BlockScanner::new(buf, b, seq);
    for item in scanner.by_ref() {
        match item {
            ScanItem::Record { offset, record } => {
                lsns.push((offset, record.header.lsn));
                if !groups.contains(&record.header.group) {
                    groups.push(record.header.group);
                }
            }
            ScanItem::Corrupt {
                offset,
                header: Some(rh),
                frame,
                ..
            } => {
                lsns.push((offset, rh.lsn));
                let frame = &frame[..(rh.total_len as usize).min(frame.len())];
                out.extend(candidate(b, offset, &rh, frame));
            }
            ScanItem::Corrupt {
                offset,
                header: None,
                frame,
                ..
            } => regions.push(Region {
                offset,
                len: frame.len(),
                tail: false,
            }),
        }
    }
    if let Some(ScanEnd::Torn { offset }) = scanner.end() {
        regions.push(Region {
            offset,
            len: buf.len() - offset as usize,
            tail: true,
        });
    }
    let found = damaged_headers(buf, b, (seq, kind), &regions, &groups, &mut lsns);
    out.extend(found.candidates);
    (out, groups)
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
