//! What defragmentation moved under the scans in progress, so that a scan spanning the moves
//! neither misses nor repeats a record.
//!
//! A scan walks the device in order and resumes at a cursor (a device position). A record
//! that defragmentation moves from ahead of a scan's cursor to behind it would never be seen,
//! and one moved from behind to ahead would be seen twice. Defragmentation normally pauses
//! while scans are active, but low space must win over a steady scanner: then it moves
//! records anyway, and for each scan of the record's group (known by the cursor its last chunk
//! handed out, within [`super::scan::SCAN_LEASE_MS`]) it notes the record to hand out with the
//! next chunk (moved behind) or the new location to skip (moved ahead). Chunks and moves
//! exclude each other (`Inner::scan_guard`), so a cursor never changes while a move is noted.

use std::collections::HashMap;

use parking_lot::Mutex;
use quiver_index::{Digest, Location};
use quiver_wal::format::UNIT_BYTES;

/// Most scans tracked at once; past it the oldest is forgotten (that scan may then miss or
/// repeat a record moved under it, as one that pauses longer than the lease).
pub(crate) const MAX_TRACKED_SCANS: usize = 1024;

/// The moves one scan still has to account for.
#[derive(Clone, Default)]
pub(crate) struct Pending {
    /// Records moved from ahead of the cursor to behind it: handed out by the next chunk.
    pub extra: Vec<Digest>,
    /// Records already handed out (or queued in `extra`) whose frame now lies ahead: skipped
    /// when the scan reaches that location (only if the frame there is still that record's).
    pub skip: HashMap<Location, Digest>,
}

struct Tracked {
    at_ms: u64,
    pending: Pending,
}

#[derive(Default)]
pub(crate) struct ScanMoves {
    /// By (group, cursor handed out).
    scans: Mutex<HashMap<(u32, u64), Tracked>>,
}

/// A location's device position, comparable with a cursor.
fn position(loc: Location) -> u64 {
    (loc.block as u64) << 32 | (loc.offset_units as u64 * UNIT_BYTES as u64)
}

impl ScanMoves {
    /// What was noted for the scan of `group` resuming at `cursor` (nothing for a new scan).
    /// The entry stays until its lease ends: a chunk asked for again (a retry) or another scan
    /// at the same cursor gets the same records.
    pub fn take(&self, group: u32, cursor: u64, now_ms: u64) -> Pending {
        let mut scans = self.scans.lock();
        scans.retain(|_, t| now_ms.saturating_sub(t.at_ms) < super::scan::SCAN_LEASE_MS);
        scans
            .get(&(group, cursor))
            .map_or_else(Pending::default, |t| t.pending.clone())
    }

    /// Tracks the scan of `group` that will resume at `cursor`, with what it still owes.
    pub fn track(&self, group: u32, cursor: u64, mut pending: Pending, now_ms: u64) {
        pending.skip.retain(|&loc, _| position(loc) >= cursor);
        let mut scans = self.scans.lock();
        if scans.len() >= MAX_TRACKED_SCANS {
            if let Some(oldest) = scans.iter().min_by_key(|(_, t)| t.at_ms).map(|(k, _)| *k) {
                scans.remove(&oldest);
            }
        }
        scans.insert(
            (group, cursor),
            Tracked {
                at_ms: now_ms,
                pending,
            },
        );
    }

    /// Defragmentation moved record `d` of `group` from `old` to `new`.
    pub fn moved(&self, group: u32, d: Digest, old: Location, new: Location) {
        let mut scans = self.scans.lock();
        for (&(g, cursor), t) in scans.iter_mut() {
            if g != group {
                continue;
            }
            let p = &mut t.pending;
            let (old_ahead, new_ahead) = (position(old) >= cursor, position(new) >= cursor);
            let seen = p.skip.remove(&old).is_some() || !old_ahead || p.extra.contains(&d);
            match (seen, new_ahead) {
                (true, true) => {
                    p.skip.insert(new, d);
                }
                (false, false) => p.extra.push(d),
                (true, false) | (false, true) => {}
            }
        }
    }
}
