//! Damaged keys: keys whose newest frame fails its checksum. Such a key reads as CORRUPT (an
//! [`Error::Corrupt`]) until it is rewritten or deleted; an older version of it is never
//! served as current, whichever way the store was opened.
//!
//! How a damaged frame is tied to its key: a version 2 frame carries a 56-bit key tag (the low
//! bits of the index digest of (group, key)) in its checksummed header, so a frame whose header
//! holds but whose body does not still names its key (`quiver_wal::damage`). Recovery collects
//! these frames as candidates, then [`Resolver`] compares each with the versions it found: a
//! key whose newest intact version is older than a damaged frame of the same tag is damaged
//! (its older version is kept out of the index), and a damaged frame newer than every intact
//! version of its tag is a damaged key too (it may have had no older version at all). A tag
//! shared by two keys (a 56-bit collision) can only make the innocent key read CORRUPT as
//! well, never let an older version through: every key of the tag older than the damaged
//! frame is refused.
//!
//! Damage found by a read (a frame the index points at fails its checksum twice) is marked the
//! same way. The set is kept durably in an engine record (`damaged-keys`, group 2^32-1), written
//! when damage is found or cleared, so that it survives the damaged frame itself: a block that
//! defragmentation frees, or a header damaged after a read found it, would otherwise let the
//! older version win the next full scan.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use quiver_index::Digest;
use quiver_wal::format::key_tag_of_digest;

use crate::error::{Error, Result};

/// How many damaged keys the recovery log, the report and `quiver inspect` name.
pub const DAMAGED_KEYS_NAMED: usize = 20;
/// Most damaged keys the durable list holds (28 bytes each, 448 KiB at most). Keys beyond it
/// still read CORRUPT while the store runs, and again after a reopen when their frame's
/// header is intact.
pub const MAX_PERSISTED_DAMAGED_KEYS: usize = 16_384;
const PERSISTED_ENTRY_BYTES: usize = 28;
/// Key of the engine record that holds the damaged-key list.
pub(crate) const DAMAGED_KEYS_KEY: &[u8] = b"damaged-keys";

/// One damaged key: its tag, and where its damaged frame was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedKey {
    pub group: u32,
    /// The key tag (low 56 bits of the index digest of (group, key)).
    pub tag: u64,
    /// LSN of the damaged frame. Where its header is beyond repair, a bound: above every
    /// version of the key the damaged frame outranks, and not above a later rewrite.
    pub lsn: u64,
    pub block: u32,
    /// Byte offset of the damaged frame in its block.
    pub offset: u32,
    /// The key bytes, when the damaged frame's tag confirmed them.
    pub key: Option<Vec<u8>>,
    /// Found by a read rather than by recovery: reads still go to the device (the damage may
    /// have been in the transfer, not at rest), and the first read that verifies clears it.
    pub found_by_read: bool,
}

impl DamagedKey {
    /// "group 3 key 'k545' (tag 0x…, LSN 77, block 4 offset 4160)".
    pub fn describe(&self) -> String {
        let key = match &self.key {
            Some(k) => format!("key {}", printable(k)),
            None => "key unknown".to_string(),
        };
        format!(
            "group {} {key} (tag {:#016x}, LSN {}, block {} offset {})",
            self.group, self.tag, self.lsn, self.block, self.offset
        )
    }

    pub(crate) fn error(&self) -> Error {
        Error::Corrupt {
            group: self.group,
            detail: self.describe(),
        }
    }
}

fn printable(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("'{s}'"),
        _ => k.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// The damaged keys of an open store, by tag.
#[derive(Default)]
pub(crate) struct DamageSet {
    keys: RwLock<HashMap<u64, DamagedKey>>,
    len: AtomicUsize,
    /// Set when the set changed since the durable list was last written.
    dirty: AtomicBool,
    /// Held while the durable list is written, so that writes land in the set's order.
    persist: Mutex<()>,
}

impl DamageSet {
    pub fn new(keys: Vec<DamagedKey>, dirty: bool) -> DamageSet {
        let map: HashMap<u64, DamagedKey> = keys.into_iter().map(|k| (k.tag, k)).collect();
        DamageSet {
            len: AtomicUsize::new(map.len()),
            keys: RwLock::new(map),
            dirty: AtomicBool::new(dirty),
            persist: Mutex::new(()),
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// The damage recorded for the key of digest `d` that decides its reads without a device
    /// read (found by recovery). One atomic load when there is none.
    pub fn check(&self, d: Digest) -> Option<DamagedKey> {
        if self.len() == 0 {
            return None;
        }
        self.keys
            .read()
            .get(&key_tag_of_digest(d))
            .filter(|k| !k.found_by_read)
            .cloned()
    }

    /// Any damage recorded for the key of digest `d`.
    pub fn contains(&self, d: Digest) -> bool {
        self.contains_tag(key_tag_of_digest(d))
    }

    /// Any damage recorded for key tag `tag`.
    pub fn contains_tag(&self, tag: u64) -> bool {
        self.len() > 0 && self.keys.read().contains_key(&tag)
    }

    /// A read of the key of digest `d` verified: damage a read found was in the transfer.
    pub fn read_verified(&self, d: Digest) {
        if self.len() == 0 {
            return;
        }
        let tag = key_tag_of_digest(d);
        if self.keys.read().get(&tag).is_none_or(|k| !k.found_by_read) {
            return;
        }
        let mut keys = self.keys.write();
        if keys.get(&tag).is_some_and(|k| k.found_by_read) {
            keys.remove(&tag);
            self.len.store(keys.len(), Ordering::Release);
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Marks a key damaged (a read found its frame failing). Returns the entry now recorded.
    pub fn mark(&self, k: DamagedKey) -> DamagedKey {
        let mut keys = self.keys.write();
        let kept = keys.entry(k.tag).or_insert(k).clone();
        self.len.store(keys.len(), Ordering::Release);
        self.dirty.store(true, Ordering::Release);
        kept
    }

    /// Marks a key damaged whose damaged frame is about to go (defragmentation frees its
    /// block): it reads CORRUPT without a device read from now on, also when a read had found
    /// the damage first (its entry is kept, with the higher LSN).
    pub fn mark_settled(&self, k: DamagedKey) {
        let mut keys = self.keys.write();
        keys.entry(k.tag)
            .and_modify(|old| {
                old.found_by_read = false;
                if k.lsn > old.lsn {
                    old.lsn = k.lsn;
                }
                if old.key.is_none() {
                    old.key = k.key.clone();
                }
            })
            .or_insert(k);
        self.len.store(keys.len(), Ordering::Release);
        self.dirty.store(true, Ordering::Release);
    }

    /// The key of digest `d` was rewritten or deleted: it is no longer damaged.
    pub fn clear(&self, d: Digest) {
        if self.len() == 0 {
            return;
        }
        let mut keys = self.keys.write();
        if keys.remove(&key_tag_of_digest(d)).is_some() {
            self.len.store(keys.len(), Ordering::Release);
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Every damaged key, by group then tag.
    pub fn list(&self) -> Vec<DamagedKey> {
        let mut v: Vec<DamagedKey> = self.keys.read().values().cloned().collect();
        v.sort_by_key(|k| (k.group, k.tag));
        v
    }

    /// Whether the set changed since it was last written.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// When the set changed since the last call, the durable list to write now (the caller
    /// holds the returned guard until the write is durable).
    pub fn take_dirty(&self) -> Option<(parking_lot::MutexGuard<'_, ()>, Vec<u8>)> {
        if !self.dirty.load(Ordering::Acquire) {
            return None;
        }
        let guard = self.persist.lock();
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some((guard, encode_list(&self.list())))
    }

    /// A write of the durable list failed: try again next time.
    pub fn set_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

/// The durable list: per key, tag u64, group u32, LSN u64, block u32, offset u32 (28 bytes,
/// little-endian), at most [`MAX_PERSISTED_DAMAGED_KEYS`] of them. Key bytes are not kept.
pub(crate) fn encode_list(keys: &[DamagedKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len().min(MAX_PERSISTED_DAMAGED_KEYS) * 28);
    for k in keys.iter().take(MAX_PERSISTED_DAMAGED_KEYS) {
        out.extend_from_slice(&k.tag.to_le_bytes());
        out.extend_from_slice(&k.group.to_le_bytes());
        out.extend_from_slice(&k.lsn.to_le_bytes());
        out.extend_from_slice(&k.block.to_le_bytes());
        out.extend_from_slice(&k.offset.to_le_bytes());
    }
    out
}

pub(crate) fn decode_list(b: &[u8]) -> Result<Vec<DamagedKey>> {
    if !b.len().is_multiple_of(PERSISTED_ENTRY_BYTES)
        || b.len() / PERSISTED_ENTRY_BYTES > MAX_PERSISTED_DAMAGED_KEYS
    {
        return Err(Error::Corrupt {
            group: super::SYSTEM_GROUP,
            detail: format!(
                "damaged-key list of {} bytes is not a whole number of {PERSISTED_ENTRY_BYTES}-byte entries up to {MAX_PERSISTED_DAMAGED_KEYS}",
                b.len()
            ),
        });
    }
    let u32_at = |e: &[u8], at: usize| u32::from_le_bytes(e[at..at + 4].try_into().expect("4"));
    let u64_at = |e: &[u8], at: usize| u64::from_le_bytes(e[at..at + 8].try_into().expect("8"));
    Ok(b.chunks_exact(PERSISTED_ENTRY_BYTES)
        .map(|e| DamagedKey {
            tag: u64_at(e, 0),
            group: u32_at(e, 8),
            lsn: u64_at(e, 12),
            block: u32_at(e, 20),
            offset: u32_at(e, 24),
            key: None,
            found_by_read: false,
        })
        .collect())
}

/// A damaged frame found by a scan, before it is weighed against the versions found.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub key: DamagedKey,
    /// It looks like a write cut short by a power loss (zeros from a sector boundary on):
    /// a write never acknowledged as durable, not damage.
    pub torn_like: bool,
    /// `key.lsn` is the frame's own (from its header, intact or restored), not a bound.
    pub lsn_exact: bool,
}

/// Weighs damage candidates against the intact versions of their tags (see the module doc).
#[derive(Default)]
pub(crate) struct Resolver {
    /// Per tag: the newest damaged frame, whether an intact version at least as new exists,
    /// and whether an older one does.
    cands: HashMap<u64, (DamagedKey, bool, bool)>,
    /// Keys whose newest intact version is older than a damaged frame: kept out of the index.
    refused: Vec<Digest>,
}

impl Resolver {
    pub fn add(&mut self, k: DamagedKey) {
        match self.cands.get_mut(&k.tag) {
            Some((old, _, _)) if old.lsn >= k.lsn => {
                if old.key.is_none() {
                    old.key = k.key.filter(|_| old.lsn == k.lsn);
                }
            }
            _ => {
                self.cands.insert(k.tag, (k, false, false));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cands.is_empty()
    }

    /// Drops candidates of groups that no longer exist.
    pub fn forget_groups(&mut self, dropped: &[u32]) {
        self.cands
            .retain(|_, (k, _, _)| !dropped.contains(&k.group));
    }

    /// Whether the key of `d` has a candidate not yet outweighed by a newer intact version.
    pub fn unsettled(&self, d: Digest) -> bool {
        self.cands
            .get(&key_tag_of_digest(d))
            .is_some_and(|(_, newer, _)| !*newer)
    }

    pub fn wants(&self, d: Digest) -> bool {
        !self.cands.is_empty() && self.cands.contains_key(&key_tag_of_digest(d))
    }

    /// An intact version of the key of `d`, with its LSN (`None`: its frame is damaged too).
    pub fn see(&mut self, d: Digest, lsn: Option<u64>) {
        let Some((k, newer, older)) = self.cands.get_mut(&key_tag_of_digest(d)) else {
            return;
        };
        match lsn {
            Some(lsn) if lsn >= k.lsn => *newer = true,
            _ => {
                *older = true;
                self.refused.push(d);
            }
        }
    }

    /// The damaged keys, and the keys whose (older) versions must be kept out of the index.
    pub fn finish(self) -> (Vec<DamagedKey>, Vec<Digest>) {
        let mut damaged: Vec<DamagedKey> = self
            .cands
            .into_values()
            .filter(|(_, newer, older)| *older || !*newer)
            .map(|(k, _, _)| k)
            .collect();
        damaged.sort_by_key(|k| (k.group, k.tag));
        (damaged, self.refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dk(tag: u64, lsn: u64) -> DamagedKey {
        DamagedKey {
            group: 1,
            tag,
            lsn,
            block: 2,
            offset: 64,
            key: None,
            found_by_read: false,
        }
    }

    /// A digest whose tag is `tag`, told apart from others by its high bits.
    fn digest(tag: u64, high: u64) -> Digest {
        (u128::from(high) << 64) | u128::from(tag)
    }

    #[test]
    fn a_newer_intact_version_outweighs_the_damage_and_an_older_one_is_refused() {
        let mut r = Resolver::default();
        r.add(dk(7, 10));
        r.add(dk(8, 10));
        r.add(dk(9, 10));
        r.see(digest(7, 1), Some(12)); // rewritten after the damage
        r.see(digest(8, 1), Some(5)); // only an older version left: refused
        let (damaged, refused) = r.finish();
        let tags: Vec<u64> = damaged.iter().map(|k| k.tag).collect();
        assert_eq!(tags, vec![8, 9], "9 has no intact version at all");
        assert_eq!(refused, vec![digest(8, 1)]);
    }

    #[test]
    fn a_tag_collision_never_lets_an_older_version_through() {
        let mut r = Resolver::default();
        r.add(dk(7, 10));
        r.see(digest(7, 1), Some(20)); // another key with the same tag, newer
        r.see(digest(7, 2), Some(3)); // the damaged key's older version
        let (damaged, refused) = r.finish();
        assert_eq!(damaged.len(), 1, "the tag stays damaged");
        assert_eq!(refused, vec![digest(7, 2)]);
    }

    #[test]
    fn the_newest_damaged_frame_of_a_tag_counts() {
        let mut r = Resolver::default();
        r.add(dk(7, 4));
        r.add(dk(7, 10));
        r.add(dk(7, 6));
        r.see(digest(7, 1), Some(8));
        assert_eq!(r.finish().0[0].lsn, 10);
    }

    #[test]
    fn the_durable_list_round_trips_and_refuses_odd_lengths() {
        let keys = vec![dk(1, 2), dk(u64::MAX >> 8, u64::MAX)];
        assert_eq!(decode_list(&encode_list(&keys)).unwrap(), keys);
        assert!(decode_list(&[0u8; 27]).is_err());
    }

    #[test]
    fn set_marks_checks_and_clears_by_tag() {
        let set = DamageSet::new(Vec::new(), false);
        assert!(set.check(digest(5, 1)).is_none());
        assert!(set.take_dirty().is_none());
        set.mark(dk(5, 3));
        assert_eq!(set.check(digest(5, 9)).map(|k| k.lsn), Some(3));
        assert!(set.take_dirty().is_some());
        assert!(set.take_dirty().is_none());
        set.clear(digest(5, 1));
        assert_eq!(set.len(), 0);
        assert!(set.take_dirty().is_some(), "clearing is written too");
    }
}
