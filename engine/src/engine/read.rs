//! The read path: one index probe, then the record from the writer's open block, the
//! post-write cache, or one device read.

use std::sync::atomic::Ordering;

use quiver_index::{digest, Digest, Entry, Location};
use quiver_wal::buf::{align_down, align_up};
use quiver_wal::format::{decode_record, RecordView, UNIT_BYTES};
use quiver_wal::{with_pooled_buf, AlignedBuf, BufPool, ReadOp, IO_ALIGN};

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

/// One step of a record read: done, or waiting for one device read.
///
/// A read is split so that a caller with an event loop can make the device read itself, on its
/// own io_uring ([`quiver_wal::Device::ring_read_fd`]), without blocking: [`Inner::begin_read`]
/// probes the index and serves a record held in memory; a record on the device comes back as
/// a [`DeviceRead`] naming the aligned range to read, and [`Inner::finish_read`] verifies what
/// was read. A record that moved meanwhile (defragmentation) is followed through the index
/// again, which may ask for another device read; so does a frame that fails its checks (it
/// is read once more before its key is marked damaged). The blocking read path is the same
/// steps with the device read made in place.
pub enum ReadStep {
    Done(Result<Option<Record>>),
    Device(DeviceRead),
}

/// A device read a record read waits for: `len` bytes at device offset `offset` (both
/// multiples of [`IO_ALIGN`]) into a buffer aligned to [`IO_ALIGN`].
#[derive(Clone, Debug)]
pub struct DeviceRead {
    pub offset: u64,
    pub len: usize,
    /// Where the frame starts in the range read.
    start: usize,
    d: Digest,
    e: Entry,
    /// The block's sequence before the read.
    seq: u64,
    /// Reads so far that found the record moved.
    attempt: usize,
    /// The frame failed its checks once; this read confirms the damage.
    confirming: bool,
}

impl Inner {
    pub fn get(&self, group: u32, key: &[u8]) -> Result<Option<Record>> {
        let got = self.read_blocking(group, key, self.begin_read(group, key));
        self.persist_damage();
        got
    }

    /// Runs a read to its end, making its device reads in place.
    fn read_blocking(&self, group: u32, key: &[u8], mut step: ReadStep) -> Result<Option<Record>> {
        loop {
            match step {
                ReadStep::Done(r) => return r,
                ReadStep::Device(dr) => step = self.read_device_now(group, key, dr),
            }
        }
    }

    fn read_device_now(&self, group: u32, key: &[u8], dr: DeviceRead) -> ReadStep {
        with_pooled_buf(dr.len, |buf| {
            let buf = &mut buf[..dr.len];
            let read = self.device.read_at(buf, dr.offset);
            self.counters.device_reads.fetch_add(1, Ordering::Relaxed);
            self.finish_read(group, key, dr, read.map(|()| &buf[..]).map_err(Error::from))
        })
    }

    /// The first step of a read of `key` in `group` (see [`ReadStep`]).
    pub fn begin_read(&self, group: u32, key: &[u8]) -> ReadStep {
        if let Err(e) = Self::check_key(key) {
            return ReadStep::Done(Err(e));
        }
        if self.is_dropped(group) {
            return ReadStep::Done(Ok(None));
        }
        let d = digest(group, key);
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.refuse_damaged(d) {
            return ReadStep::Done(Err(e));
        }
        match self.index.get(d) {
            Some(e) if !Self::is_expired(&e, self.now_s()) => self.step(group, key, d, e, 0),
            _ => ReadStep::Done(Ok(None)),
        }
    }

    /// The next step after the device read `dr` asked for: `read` holds the `dr.len` bytes
    /// read, or the read's error.
    pub fn finish_read(
        &self,
        group: u32,
        key: &[u8],
        dr: DeviceRead,
        read: Result<&[u8]>,
    ) -> ReadStep {
        let (verdict, frame) = match read {
            Ok(b) => {
                let frame = &b[dr.start..];
                (self.verify_in(group, key, dr.e, dr.seq, frame), frame)
            }
            Err(e) => (Err(e), &[][..]),
        };
        if !dr.confirming {
            return self.judge(group, key, dr.d, dr.e, dr.seq, dr.attempt, verdict);
        }
        match verdict {
            Err(Error::Wal(quiver_wal::Error::Corrupt { .. })) => {}
            other => return ReadStep::Done(other),
        }
        let (d, e, seq) = (dr.d, dr.e, dr.seq);
        if self.blocks.seq(e.loc.block) != seq || self.index.get(d) != Some(e) {
            // The block was reused or the key moved meanwhile: not damage, read it again.
            return match self.index.get(d) {
                Some(now) => self.step(group, key, d, now, dr.attempt + 1),
                None => ReadStep::Done(Ok(None)),
            };
        }
        ReadStep::Done(Err(self.mark_read_damage(group, key, d, e, frame)))
    }

    /// Reads the record `e` points at from memory, or asks for its device read.
    fn step(&self, group: u32, key: &[u8], d: Digest, e: Entry, attempt: usize) -> ReadStep {
        if attempt >= MOVED_RETRIES {
            return ReadStep::Done(Err(Error::Moved {
                attempts: MOVED_RETRIES,
            }));
        }
        let seq = self.blocks.seq(e.loc.block);
        match self.with_frame_in_memory(e.loc, |bytes| self.verify_in(group, key, e, seq, bytes)) {
            Some(verdict) => self.judge(group, key, d, e, seq, attempt, verdict),
            None => {
                let (offset, len, start) = self.device_range(e.loc);
                ReadStep::Device(DeviceRead {
                    offset,
                    len,
                    start,
                    d,
                    e,
                    seq,
                    attempt,
                    confirming: false,
                })
            }
        }
    }

    /// What a verified (or failed) frame means. The frame was checked against the block's
    /// sequence as it was before the read: a block freed and reused under the read (perhaps
    /// with this key written at the same place again) shows as a changed sequence or a changed
    /// index entry, and the read starts over from the index. Only a frame that fails its checks
    /// while neither changed is damage, confirmed by a second read from the device.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        group: u32,
        key: &[u8],
        d: Digest,
        e: Entry,
        seq: u64,
        attempt: usize,
        verdict: Result<Option<Record>>,
    ) -> ReadStep {
        if let Ok(Some(rec)) = verdict {
            self.damage.read_verified(d);
            return ReadStep::Done(Ok(Some(rec)));
        }
        let reused = self.blocks.seq(e.loc.block) != seq;
        match self.index.get(d) {
            Some(now) if now != e || reused => self.step(group, key, d, now, attempt + 1),
            None => ReadStep::Done(Ok(None)),
            Some(_) => {
                // Same entry, same use of the block: not a race with a move or a reuse.
                if verdict.is_err() {
                    self.counters.corrupt_reads.fetch_add(1, Ordering::Relaxed);
                }
                match verdict {
                    Err(Error::Wal(quiver_wal::Error::Corrupt { .. })) => {
                        let (offset, len, start) = self.device_range(e.loc);
                        ReadStep::Device(DeviceRead {
                            offset,
                            len,
                            start,
                            d,
                            e,
                            seq,
                            attempt,
                            confirming: true,
                        })
                    }
                    other => ReadStep::Done(other),
                }
            }
        }
    }

    /// Reads the record `e` points at, verifying it is `key`'s. When it moved meanwhile
    /// (defragmentation freed its block), follows the index again.
    pub fn load(&self, group: u32, key: &[u8], d: Digest, e: Entry) -> Result<Option<Record>> {
        self.read_blocking(group, key, self.step(group, key, d, e, 0))
    }

    /// A key whose frame failed its checks twice, the index and the block unchanged: marks it
    /// damaged, so that it reads as CORRUPT from now on, until it is rewritten or deleted.
    fn mark_read_damage(&self, group: u32, key: &[u8], d: Digest, e: Entry, frame: &[u8]) -> Error {
        let offset = e.loc.offset_units * UNIT_BYTES as u32;
        // The damaged frame's LSN, from its header (restored when one byte of it is damaged).
        // A header beyond repair: the next LSN, which is newer than every version of the key
        // on the device (the index pointed at its newest) and not newer than any rewrite to
        // come, so that a later full scan weighs the damage right against both.
        let seq = self.blocks.seq(e.loc.block);
        let lsn = quiver_wal::format::RecordHeader::decode(frame)
            .filter(|h| h.block_seq == seq)
            .or_else(|| quiver_wal::damage::repair_record_header(frame, seq).map(|r| r.header))
            .map_or_else(|| self.next_lsn.load(Ordering::SeqCst), |h| h.lsn);
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
        k.error()
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

    /// Checks a frame against the block sequence `seq`: checksums, enclosing block, and
    /// that it is this key's record (a digest collision in the index reads as absent).
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

    /// Runs `f` on the frame at `loc` when it is in memory: in a writer's open or
    /// sealed-but-unwritten block (copied out under the writer's lock into a buffer this
    /// thread reuses), or in the post-write cache (read in place).
    fn with_frame_in_memory<R>(&self, loc: Location, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let offset = loc.offset_units * UNIT_BYTES as u32;
        let len = loc.len_units * UNIT_BYTES as u32;
        // Only an open block (or one sealed but not yet fully written, which stays OPEN until
        // then) can be in a writer's hands: other reads skip the writers' locks.
        if self.blocks.state(loc.block) == super::blocks::OPEN {
            let mut copy = PENDING_COPY.with(|c| std::mem::take(&mut *c.borrow_mut()));
            copy.clear();
            let found = self.fg.read_pending(loc.block, offset, len, &mut copy)
                || self.dw.read_pending(loc.block, offset, len, &mut copy);
            if found {
                self.counters.memory_reads.fetch_add(1, Ordering::Relaxed);
                let out = f(&copy);
                keep_pending_copy(copy);
                return Some(out);
            }
            keep_pending_copy(copy);
        }
        self.with_cached_frame(loc, offset, len, f)
    }

    fn with_cached_frame<R>(
        &self,
        loc: Location,
        offset: u32,
        len: u32,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let buf = self.blocks.cached(loc.block)?;
        self.counters.memory_reads.fetch_add(1, Ordering::Relaxed);
        Some(f(&buf[offset as usize..(offset + len) as usize]))
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
        let mut pending: Vec<(usize, DeviceRead)> = Vec::new();
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
            match self.step(group, key, digests[i], e, 0) {
                ReadStep::Done(r) => out[i] = r,
                ReadStep::Device(dr) => pending.push((i, dr)),
            }
        }
        for chunk in pending.chunks(MAX_BATCH_READS) {
            self.read_pending(keys, chunk, &mut out);
        }
        Ok(out)
    }

    /// Makes the device reads of `pending` in one batch and finishes their records.
    fn read_pending(
        &self,
        keys: &[(u32, &[u8])],
        pending: &[(usize, DeviceRead)],
        out: &mut [Result<Option<Record>>],
    ) {
        let mut bufs: Vec<AlignedBuf> = BATCH_BUFS.with(|p| {
            let mut pool = p.borrow_mut();
            pending.iter().map(|(_, dr)| pool.take(dr.len)).collect()
        });
        let results = {
            let mut ops: Vec<ReadOp<'_>> = pending
                .iter()
                .zip(bufs.iter_mut())
                .map(|((_, dr), buf)| ReadOp {
                    offset: dr.offset,
                    buf: &mut buf[..dr.len],
                })
                .collect();
            self.device.read_many(&mut ops)
        };
        self.counters
            .device_reads
            .fetch_add(pending.len() as u64, Ordering::Relaxed);
        for (((i, dr), buf), res) in pending.iter().zip(&bufs).zip(results) {
            let (group, key) = keys[*i];
            let len = dr.len;
            let read = res.map(|()| &buf[..len]).map_err(Error::from);
            let step = self.finish_read(group, key, dr.clone(), read);
            out[*i] = self.read_blocking(group, key, step);
        }
        BATCH_BUFS.with(|p| {
            let mut pool = p.borrow_mut();
            bufs.drain(..).for_each(|b| pool.give(b));
        });
    }
}

/// Most device reads one batch read makes at once: its buffers are held together, so this
/// bounds a batch's memory (about 4-8 KiB a read) whatever the number of keys.
const MAX_BATCH_READS: usize = 1024;

/// Largest copy of a frame from a writer's block a thread keeps for its next memory read.
const PENDING_COPY_KEEP_BYTES: usize = 64 << 10;

fn keep_pending_copy(copy: Vec<u8>) {
    if copy.capacity() <= PENDING_COPY_KEEP_BYTES {
        PENDING_COPY.with(|c| *c.borrow_mut() = copy);
    }
}

thread_local! {
    /// A thread's buffer for frames copied out of a writer's block.
    static PENDING_COPY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A thread's buffers for the device reads of a batch (up to one batch's worth kept).
    static BATCH_BUFS: std::cell::RefCell<BufPool> =
        const { std::cell::RefCell::new(BufPool::new(quiver_wal::device::MAX_IN_FLIGHT)) };
}
