//! The read path: one index probe, then the record from the writer's open block, the
//! post-write cache, or one device read.

use std::sync::atomic::Ordering;

use quiver_index::{digest, Digest, Entry, Location};
use quiver_wal::buf::{align_down, align_up};
use quiver_wal::format::{decode_record, RecordView, UNIT_BYTES};
use quiver_wal::{AlignedBuf, ReadOp, IO_ALIGN};

use super::{Inner, Record};
use crate::error::{Error, Result};

/// A frame read from memory or the device: `bytes[start..]` begins with the frame.
pub(crate) struct Frame {
    bytes: FrameBytes,
    start: usize,
}

enum FrameBytes {
    Heap(Vec<u8>),
    Aligned(AlignedBuf),
}

impl Frame {
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            FrameBytes::Heap(v) => &v[self.start..],
            FrameBytes::Aligned(b) => &b[self.start..],
        }
    }
}

/// How many times a read retries when its record moved underneath it (defragmentation).
const MOVED_RETRIES: usize = 8;

impl Inner {
    pub fn get(&self, group: u32, key: &[u8]) -> Result<Option<Record>> {
        Self::check_key(key)?;
        if self.is_dropped(group) {
            return Ok(None);
        }
        let d = digest(group, key);
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        self.refuse_damaged(d)?;
        let got = match self.index.get(d) {
            Some(e) if !Self::is_expired(&e, self.now_s()) => self.load(group, key, d, e),
            _ => Ok(None),
        };
        self.persist_damage();
        got
    }

    /// A key marked damaged reads as CORRUPT, whatever the index holds for it.
    fn refuse_damaged(&self, d: Digest) -> Result<()> {
        match self.damage.check(d) {
            Some(k) => {
                self.counters.damaged_reads.fetch_add(1, Ordering::Relaxed);
                Err(k.error())
            }
            None => Ok(()),
        }
    }

    /// Reads the record `e` points at, verifying it is `key`'s. When it moved meanwhile
    /// (defragmentation freed its block), follows the index again.
    ///
    /// The frame is checked against the block's sequence as it was before the read: a block
    /// freed and reused under the read (perhaps with this key written at the same place
    /// again) shows as a changed sequence or a changed index entry, and the read starts over
    /// from the index. Only a frame that fails its checks while neither changed is damage.
    pub fn load(&self, group: u32, key: &[u8], d: Digest, mut e: Entry) -> Result<Option<Record>> {
        for _ in 0..MOVED_RETRIES {
            let seq = self.blocks.seq(e.loc.block);
            let frame = self
                .read_frame_from_memory(e.loc)
                .map_or_else(|| self.read_frame_from_device(e.loc), Ok);
            let verdict = frame.and_then(|f| self.verify_in(group, key, e, seq, f.bytes()));
            match verdict {
                Ok(Some(rec)) => {
                    self.damage.read_verified(d);
                    return Ok(Some(rec));
                }
                Ok(None) | Err(_) => {
                    let reused = self.blocks.seq(e.loc.block) != seq;
                    match self.index.get(d) {
                        Some(now) if now != e || reused => {
                            e = now;
                            continue;
                        }
                        None => return Ok(None),
                        Some(_) => {
                            // Same entry, same use of the block: not a race with a move or a
                            // reuse, damage.
                            if verdict.is_err() {
                                self.counters.corrupt_reads.fetch_add(1, Ordering::Relaxed);
                            }
                            return match verdict {
                                Err(Error::Wal(quiver_wal::Error::Corrupt { .. })) => {
                                    self.confirm_damage(group, key, d, e, seq)
                                }
                                other => other,
                            };
                        }
                    }
                }
            }
        }
        Err(Error::Moved {
            attempts: MOVED_RETRIES,
        })
    }

    /// The frame `e` points at failed its checks. Reads it from the device once more (the
    /// first read may have been damaged on its way); failing again, the key is marked
    /// damaged and reads as CORRUPT from now on, until it is rewritten or deleted.
    fn confirm_damage(
        &self,
        group: u32,
        key: &[u8],
        d: Digest,
        e: Entry,
        seq: u64,
    ) -> Result<Option<Record>> {
        let frame = self.read_frame_from_device(e.loc)?;
        let offset = e.loc.offset_units * UNIT_BYTES as u32;
        match self.verify_in(group, key, e, seq, frame.bytes()) {
            Err(Error::Wal(quiver_wal::Error::Corrupt { .. })) => {}
            other => return other,
        }
        if self.blocks.seq(e.loc.block) != seq || self.index.get(d) != Some(e) {
            // The block was reused or the key moved meanwhile: not damage, read it again.
            return match self.index.get(d) {
                Some(now) => self.load(group, key, d, now),
                None => Ok(None),
            };
        }
        let lsn = quiver_wal::format::RecordHeader::decode(frame.bytes()).map_or(0, |h| h.lsn);
        let k = self.damage.mark(super::damage::DamagedKey {
            group,
            tag: quiver_wal::format::key_tag_of_digest(d),
            lsn,
            block: e.loc.block,
            offset,
            key: Some(key.to_vec()),
            found_by_read: true,
        });
        tracing::warn!(key = %k.describe(), "damaged key found by a read: reads as CORRUPT until rewritten or deleted");
        self.counters.damaged_reads.fetch_add(1, Ordering::Relaxed);
        Err(k.error())
    }

    /// Checks a frame: checksums, enclosing block, and that it is this key's record (a
    /// digest collision in the index reads as absent).
    fn verify(&self, group: u32, key: &[u8], e: Entry, bytes: &[u8]) -> Result<Option<Record>> {
        self.verify_in(group, key, e, self.blocks.seq(e.loc.block), bytes)
    }

    /// [`Inner::verify`] against the block sequence `seq`.
    fn verify_in(
        &self,
        group: u32,
        key: &[u8],
        e: Entry,
        seq: u64,
        bytes: &[u8],
    ) -> Result<Option<Record>> {
        let offset = e.loc.offset_units * UNIT_BYTES as u32;
        let view: RecordView<'_> = decode_record(bytes, e.loc.block, offset, seq)?;
        if view.header.group != group || view.key != key || view.header.is_tombstone() {
            return Ok(None);
        }
        Ok(Some(Record {
            key: view.key.to_vec(),
            value: view.value.to_vec(),
            generation: view.header.generation,
            expiry_s: view.header.expiry_s,
            last_update_s: view.header.last_update_s,
        }))
    }

    pub fn read_frame_from_memory(&self, loc: Location) -> Option<Frame> {
        let offset = loc.offset_units * UNIT_BYTES as u32;
        let len = loc.len_units * UNIT_BYTES as u32;
        let mut v = Vec::new();
        // Only an open block (or one sealed but not yet fully written, which stays OPEN until
        // then) can be in a writer's hands: other reads skip the writers' locks.
        let in_writer = self.blocks.state(loc.block) == super::blocks::OPEN;
        if in_writer
            && (self.fg.read_pending(loc.block, offset, len, &mut v)
                || self.dw.read_pending(loc.block, offset, len, &mut v))
        {
            self.counters.memory_reads.fetch_add(1, Ordering::Relaxed);
            return Some(Frame {
                bytes: FrameBytes::Heap(v),
                start: 0,
            });
        }
        let buf = self.blocks.cached(loc.block)?;
        let range = offset as usize..(offset + len) as usize;
        self.counters.memory_reads.fetch_add(1, Ordering::Relaxed);
        Some(Frame {
            bytes: FrameBytes::Heap(buf[range].to_vec()),
            start: 0,
        })
    }

    /// The aligned device range holding a frame: (device offset, length, frame start in it).
    fn device_range(&self, loc: Location) -> (u64, usize, usize) {
        let abs = loc.block as u64 * self.blocks.block_bytes
            + (loc.offset_units as u64 * UNIT_BYTES as u64);
        let len = loc.len_units as usize * UNIT_BYTES;
        let start = align_down(abs as usize, IO_ALIGN) as u64;
        let end = align_up(abs as usize + len, IO_ALIGN) as u64;
        (start, (end - start) as usize, (abs - start) as usize)
    }

    pub fn read_frame_from_device(&self, loc: Location) -> Result<Frame> {
        let (offset, len, start) = self.device_range(loc);
        let mut buf = AlignedBuf::new(len);
        self.device.read_at(&mut buf, offset)?;
        self.counters.device_reads.fetch_add(1, Ordering::Relaxed);
        Ok(Frame {
            bytes: FrameBytes::Aligned(buf),
            start,
        })
    }

    /// As `get_each`, failing as a whole when any key fails.
    pub fn get_many(&self, keys: &[(u32, &[u8])]) -> Result<Vec<Option<Record>>> {
        self.get_each(keys)?.into_iter().collect()
    }

    /// Batch read: index probes prefetched together, memory hits served at once, and every
    /// device read submitted in one batch. Each key gets its own answer: a damaged key's is
    /// [`Error::Corrupt`]; the call as a whole fails only for bad arguments.
    pub fn get_each(&self, keys: &[(u32, &[u8])]) -> Result<Vec<Result<Option<Record>>>> {
        let out = self.get_each_inner(keys);
        self.persist_damage();
        out
    }

    fn get_each_inner(&self, keys: &[(u32, &[u8])]) -> Result<Vec<Result<Option<Record>>>> {
        for (_, key) in keys {
            Self::check_key(key)?;
        }
        self.counters
            .gets
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        let digests: Vec<Digest> = keys.iter().map(|&(g, k)| digest(g, k)).collect();
        let mut entries = Vec::with_capacity(keys.len());
        self.index.get_many(&digests, &mut entries);
        let now = self.now_s();
        let mut out: Vec<Result<Option<Record>>> = (0..keys.len()).map(|_| Ok(None)).collect();
        let mut pending: Vec<(usize, Entry, AlignedBuf, u64, usize)> = Vec::new();
        for (i, (&(group, key), entry)) in keys.iter().zip(&entries).enumerate() {
            if self.is_dropped(group) {
                continue;
            }
            if let Err(e) = self.refuse_damaged(digests[i]) {
                out[i] = Err(e);
                continue;
            }
            let Some(e) = entry.filter(|e| !Self::is_expired(e, now)) else {
                continue;
            };
            match self.read_frame_from_memory(e.loc) {
                Some(f) => out[i] = self.verify_or_reload(group, key, digests[i], e, Ok(f)),
                None => {
                    let (offset, len, start) = self.device_range(e.loc);
                    pending.push((i, e, AlignedBuf::new(len), offset, start));
                }
            }
        }
        if pending.is_empty() {
            return Ok(out);
        }
        let results = {
            let mut ops: Vec<ReadOp<'_>> = pending
                .iter_mut()
                .map(|(_, _, buf, offset, _)| ReadOp {
                    offset: *offset,
                    buf: &mut buf[..],
                })
                .collect();
            self.device.read_many(&mut ops)
        };
        self.counters
            .device_reads
            .fetch_add(pending.len() as u64, Ordering::Relaxed);
        for ((i, e, buf, _, start), res) in pending.into_iter().zip(results) {
            let (group, key) = keys[i];
            let frame = res.map(|()| Frame {
                bytes: FrameBytes::Aligned(buf),
                start,
            });
            out[i] = self.verify_or_reload(group, key, digests[i], e, frame.map_err(Error::from));
        }
        Ok(out)
    }

    fn verify_or_reload(
        &self,
        group: u32,
        key: &[u8],
        d: Digest,
        e: Entry,
        frame: Result<Frame>,
    ) -> Result<Option<Record>> {
        match frame.and_then(|f| self.verify(group, key, e, f.bytes())) {
            Ok(Some(r)) => {
                self.damage.read_verified(d);
                Ok(Some(r))
            }
            _ => self.load(group, key, d, e),
        }
    }
}
