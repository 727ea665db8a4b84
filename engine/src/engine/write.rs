//! The write path: put, delete and read-modify-write under the key's stripe lock.

use std::sync::atomic::Ordering;

use quiver_index::{digest, Digest, Entry};
use quiver_wal::format::{RecordInput, FLAG_TOMBSTONE, UNIT_BYTES};
use quiver_wal::Pos;

use super::{Inner, Modify, Record, SYSTEM_GROUP};
use crate::config::{Durability, WriteOptions};
use crate::error::{Error, Result};

impl Inner {
    pub fn modify<T>(
        &self,
        group: u32,
        key: &[u8],
        opts: &WriteOptions,
        f: impl FnOnce(Option<&Record>) -> Result<Modify<T>>,
    ) -> Result<T> {
        self.modify_inner(group, key, opts, f).map(|(out, _)| out)
    }

    /// As `modify`; also returns the generation of the key after the call (0 when absent).
    pub fn modify_inner<T>(
        &self,
        group: u32,
        key: &[u8],
        opts: &WriteOptions,
        f: impl FnOnce(Option<&Record>) -> Result<Modify<T>>,
    ) -> Result<(T, u16)> {
        self.check_write(group, key)?;
        let d = digest(group, key);
        let (out, generation, pos) = {
            let _key_lock = self.stripe(d).lock();
            let old = self.index.get(d);
            let damaged = self.damage.check(d).is_some();
            let current = match old {
                Some(_) if damaged => None,
                Some(e) if !Self::is_expired(&e, self.now_s()) && !self.is_dropped(group) => {
                    // A damaged record is replaced as if absent: its value is lost.
                    match self.load(group, key, d, e) {
                        Err(Error::Corrupt { .. }) => None,
                        other => other?,
                    }
                }
                _ => None,
            };
            let damaged = damaged || self.damage.contains(d);
            match f(current.as_ref())? {
                Modify::Put { value, ttl_s, out } => {
                    self.check_value(key, &value)?;
                    let (generation, pos) = self.append(group, key, d, &value, 0, ttl_s, old)?;
                    self.damage.clear(d);
                    self.counters.puts.fetch_add(1, Ordering::Relaxed);
                    (out, generation, Some(pos))
                }
                Modify::Delete { out } if old.is_some() || damaged => {
                    let (_, pos) = self.append(group, key, d, &[], FLAG_TOMBSTONE, None, old)?;
                    self.damage.clear(d);
                    self.counters.deletes.fetch_add(1, Ordering::Relaxed);
                    (out, 0, Some(pos))
                }
                Modify::Delete { out } => (out, 0, None),
                Modify::Keep { out } => (out, current.map_or(0, |r| r.generation), None),
            }
        };
        self.persist_damage();
        self.wait_if_sync(opts, pos)?;
        Ok((out, generation))
    }

    /// A blind write: unlike `modify`, it never reads the current record (an overwrite costs
    /// no device read). Returns the new generation.
    pub fn put(&self, group: u32, key: &[u8], value: &[u8], opts: &WriteOptions) -> Result<u16> {
        self.check_write(group, key)?;
        self.check_value(key, value)?;
        let d = digest(group, key);
        let (generation, pos) = {
            let _key_lock = self.stripe(d).lock();
            let old = self.index.get(d);
            let placed = self.append(group, key, d, value, 0, opts.ttl_s, old)?;
            self.damage.clear(d);
            placed
        };
        self.persist_damage();
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.wait_if_sync(opts, Some(pos))?;
        Ok(generation)
    }

    /// Deletes a live (present, unexpired) or damaged key with a tombstone; returns whether it
    /// was. Like `put`, it decides from the index (and the damaged keys) alone.
    pub fn delete(&self, group: u32, key: &[u8], opts: &WriteOptions) -> Result<bool> {
        self.delete_if(group, key, opts, |_| true)
    }

    /// As `delete`, only if the live entry also passes `still` (checked under the key's
    /// lock): eviction deletes the version it chose, never a newer one.
    pub fn delete_if(
        &self,
        group: u32,
        key: &[u8],
        opts: &WriteOptions,
        still: impl FnOnce(&Entry) -> bool,
    ) -> Result<bool> {
        self.check_write(group, key)?;
        let d = digest(group, key);
        let pos = {
            let _key_lock = self.stripe(d).lock();
            let old = self.index.get(d);
            let live = match old {
                Some(e) if !Self::is_expired(&e, self.now_s()) => still(&e),
                _ => false,
            };
            // A damaged key kept out of the index is deleted too (its tombstone ends the damage).
            if live || (old.is_none() && self.damage.contains(d)) {
                let pos = self
                    .append(group, key, d, &[], FLAG_TOMBSTONE, None, old)?
                    .1;
                self.damage.clear(d);
                Some(pos)
            } else {
                None
            }
        };
        self.persist_damage();
        if pos.is_some() {
            self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        }
        self.wait_if_sync(opts, pos)?;
        Ok(pos.is_some())
    }

    /// The checks every write makes before it takes the key's lock.
    fn check_write(&self, group: u32, key: &[u8]) -> Result<()> {
        Self::check_key(key)?;
        self.check_group(group)?;
        self.check_writable()?;
        if self.is_dropped(group) {
            return Err(Error::GroupDropped(group));
        }
        if self.reclaim_before_writes.swap(false, Ordering::AcqRel) {
            self.reclaim_if_short();
        }
        Ok(())
    }

    fn wait_if_sync(&self, opts: &WriteOptions, pos: Option<Pos>) -> Result<()> {
        match pos {
            Some(pos) if opts.durability.unwrap_or(self.config.durability) == Durability::Sync => {
                self.fg.wait_durable(pos).map_err(|e| self.failed(e))
            }
            _ => Ok(()),
        }
    }

    /// A value must be within `max_record_bytes`, and its frame must fit in a write block.
    fn check_value(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let frame_room =
            self.fg.max_frame_bytes() - quiver_wal::format::RECORD_HEADER_BYTES - key.len();
        let max = (self.config.max_record_bytes as usize).min(frame_room / 16 * 16);
        if value.len() > max {
            return Err(Error::RecordTooLarge {
                len: value.len(),
                max,
            });
        }
        Ok(())
    }

    pub fn check_writable(&self) -> Result<()> {
        if self.shutdown.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if let Some(why) = self.fg.is_failed().or_else(|| self.dw.is_failed()) {
            return Err(Error::Failed(why));
        }
        Ok(())
    }

    /// Fails the store after a write or sync error anywhere (either writer, defragmentation's
    /// erase): both writers refuse everything from now on, since the device state is unknown
    /// and, with buffered I/O, this error may have been the only report of dropped pages (a
    /// later sync of the other writer would succeed).
    pub fn failed(&self, e: quiver_wal::Error) -> Error {
        let why = match e {
            quiver_wal::Error::WriterFailed(why) => why,
            other => other.to_string(),
        };
        self.fg.fail(&why);
        self.dw.fail(&why);
        Error::Failed(why)
    }

    /// Appends a frame for `key` (the caller holds its stripe lock) and points the index at
    /// it (or removes the key for a tombstone), keeping live bytes exact.
    #[allow(clippy::too_many_arguments)]
    fn append(
        &self,
        group: u32,
        key: &[u8],
        d: Digest,
        value: &[u8],
        flags: u8,
        ttl_s: Option<u32>,
        old: Option<Entry>,
    ) -> Result<(u16, Pos)> {
        let now = self.now_s();
        let generation = old.map_or(1, |e| e.generation.wrapping_add(1));
        let expiry_s = match ttl_s {
            Some(t) if t > 0 => now.saturating_add(t),
            _ => 0,
        };
        let lsn = self.next_lsn.fetch_add(1, Ordering::SeqCst);
        self.marks.reserve_lsn(lsn).map_err(|e| self.failed(e))?;
        let rec = RecordInput {
            lsn,
            group,
            key,
            value,
            flags,
            generation,
            expiry_s,
            last_update_s: now,
        };
        let (placed, ()) = self
            .fg
            .append(&rec, |_| ())
            .map_err(|e| self.write_error(e))?;
        self.blocks
            .note_frame(placed.block, lsn, placed.offset + placed.padded_len);
        let tombstone = flags & FLAG_TOMBSTONE != 0;
        if tombstone {
            self.index.remove(d);
            self.blocks.add_marker(placed.block, placed.padded_len, lsn);
        } else {
            let loc = super::frame_location(placed.block, placed.offset, placed.padded_len);
            let entry = Entry {
                loc,
                generation,
                expiry_s,
                last_update_s: now,
            };
            self.index.insert(d, entry);
            self.blocks.add_live(placed.block, placed.padded_len);
        }
        if let Some(o) = old {
            self.blocks
                .sub_live(o.loc.block, o.loc.len_units * UNIT_BYTES as u32);
        }
        self.counters
            .bytes_appended
            .fetch_add(placed.padded_len as u64, Ordering::Relaxed);
        Ok((generation, placed.pos))
    }

    fn write_error(&self, e: quiver_wal::Error) -> Error {
        match e {
            quiver_wal::Error::NoFreeBlock => Error::DeviceFull {
                free_bytes: self.blocks.free_count() as u64 * self.blocks.block_bytes,
                floor_bytes: self.blocks.floor_blocks as u64 * self.blocks.block_bytes,
            },
            quiver_wal::Error::WriterFailed(why) => Error::Failed(why),
            other => Error::Wal(other),
        }
    }

    /// Records a dropped group durably, hides its records at once, and queues the reclaim.
    pub fn drop_group(&self, group: u32) -> Result<()> {
        self.check_group(group)?;
        let list: Vec<u32> = {
            let mut dropped = self.dropped.write();
            if !dropped.insert(group) {
                return Ok(());
            }
            let mut v: Vec<u32> = dropped.iter().copied().collect();
            v.sort_unstable();
            v
        };
        let value: Vec<u8> = list.iter().flat_map(|g| g.to_le_bytes()).collect();
        self.write_system(super::DROPPED_GROUPS_KEY, &value)?;
        self.reclaim_pending.lock().push(group);
        self.wake_workers();
        Ok(())
    }

    /// Writes the damaged-key list when it changed (see `damage.rs`). Called with no key lock
    /// held. A failure is logged and retried at the next change: the damage stays marked in
    /// memory, and damaged frames with intact headers are found again by a scan.
    pub fn persist_damage(&self) {
        if let Err(e) = self.try_persist_damage() {
            tracing::warn!(error = %e, "could not write the damaged-key list");
        }
    }

    /// As `persist_damage`, returning the failure (the list stays to be written).
    pub fn try_persist_damage(&self) -> Result<()> {
        let Some((_in_order, list)) = self.damage.take_dirty() else {
            return Ok(());
        };
        self.write_system(super::damage::DAMAGED_KEYS_KEY, &list)
            .inspect_err(|_| self.damage.set_dirty())
    }

    /// Writes one of the engine's own records, durably.
    fn write_system(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_writable()?;
        let d = digest(SYSTEM_GROUP, key);
        let pos = {
            let _key_lock = self.stripe(d).lock();
            let old = self.index.get(d);
            self.append(SYSTEM_GROUP, key, d, value, 0, None, old)?.1
        };
        self.fg.wait_durable(pos).map_err(|e| self.failed(e))
    }

    pub fn wake_workers(&self) {
        self.blocks.wake_maintenance();
    }
}
