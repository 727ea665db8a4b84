//! The read path: one index probe, then the record from the writer's open block, the
//! post-write cache, or one device read.

use std::cell::RefCell;
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

/// Records a thread keeps for reuse (see [`SPARE_RECORDS`]).
const MAX_SPARE_RECORDS: usize = 1024;

thread_local! {
    /// Records given back with [`crate::Engine::recycle`]: the next reads of the same thread
    /// refill their key and value buffers instead of allocating new ones, so that an event
    /// loop's reads allocate nothing once warm. A thread that never gives records back keeps
    /// this empty.
    static SPARE_RECORDS: RefCell<Vec<Record>> = const { RefCell::new(Vec::new()) };
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
        let mut rec = SPARE_RECORDS
            .with(|s| s.borrow_mut().pop())
            .unwrap_or_else(|| Record {
                key: Vec::new(),
                value: Vec::new(),
                generation: 0,
                expiry_s: 0,
                last_update_s: 0,
            });
        rec.key.clear();
        rec.key.extend_from_slice(view.key);
        rec.value.clear();
        rec.value.extend_from_slice(view.value);
        rec.generation = view.header.generation;
        rec.expiry_s = view.header.expiry_s;
        rec.last_update_s = view.header.last_update_s;
        Ok(Some(rec))
    }

    /// Keeps `record`'s buffers for this thread's next reads (see [`SPARE_RECORDS`]).
    pub fn recycle(record: Record) {
        SPARE_RECORDS.with(|s| {
            let mut spare = s.borrow_mut();
            if spare.len() < MAX_SPARE_RECORDS {
                spare.push(record);
            }
        });
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

    pub fn device_order(&self, keys: &[(u32, &[u8])]) -> Vec<u64> {
        let digests: Vec<Digest> = keys.iter().map(|&(g, k)| digest(g, k)).collect();
        let mut entries = Vec::with_capacity(keys.len());
        self.index.get_many(&digests, &mut entries);
        entries
            .iter()
            .map(|e| {
                e.map_or(u64::MAX, |e| {
                    e.loc.block as u64 * self.blocks.block_bytes
                        + e.loc.offset_units as u64 * UNIT_BYTES as u64
                })
            })
            .collect()
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

    /// Makes the device reads of `pending` in one batch and finishes their records. Reads
    /// that lie close together on the device are made as one ([`coalesce`]); when such a
    /// shared read fails, its records are read again one by one, so that an error stays the
    /// error of the record it belongs to.
    fn read_pending(
        &self,
        keys: &[(u32, &[u8])],
        pending: &[(usize, DeviceRead)],
        out: &mut [Result<Option<Record>>],
    ) {
        let mut order: Vec<usize> = (0..pending.len()).collect();
        order.sort_unstable_by_key(|&i| pending[i].1.offset);
        let spans = coalesce(
            order
                .iter()
                .map(|&i| (pending[i].1.offset, pending[i].1.len)),
        );
        let mut bufs: Vec<AlignedBuf> = BATCH_BUFS.with(|p| {
            let mut pool = p.borrow_mut();
            spans.iter().map(|s| pool.take(s.len)).collect()
        });
        let results = {
            let mut ops: Vec<ReadOp<'_>> = spans
                .iter()
                .zip(bufs.iter_mut())
                .map(|(s, buf)| ReadOp {
                    offset: s.offset,
                    buf: &mut buf[..s.len],
                })
                .collect();
            self.device.read_many(&mut ops)
        };
        self.counters
            .device_reads
            .fetch_add(spans.len() as u64, Ordering::Relaxed);
        for ((span, buf), res) in spans.iter().zip(&bufs).zip(results) {
            let members = &order[span.members.clone()];
            match res {
                Ok(()) => {
                    for &m in members {
                        let (i, dr) = &pending[m];
                        let (group, key) = keys[*i];
                        let at = (dr.offset - span.offset) as usize;
                        let step =
                            self.finish_read(group, key, dr.clone(), Ok(&buf[at..][..dr.len]));
                        out[*i] = self.read_blocking(group, key, step);
                    }
                }
                Err(e) if members.len() == 1 => {
                    let (i, dr) = &pending[members[0]];
                    let (group, key) = keys[*i];
                    let step = self.finish_read(group, key, dr.clone(), Err(Error::from(e)));
                    out[*i] = self.read_blocking(group, key, step);
                }
                Err(_) => {
                    for &m in members {
                        let (i, dr) = &pending[m];
                        let (group, key) = keys[*i];
                        out[*i] = self.read_blocking(group, key, ReadStep::Device(dr.clone()));
                    }
                }
            }
        }
        BATCH_BUFS.with(|p| {
            let mut pool = p.borrow_mut();
            bufs.drain(..).for_each(|b| pool.give(b));
        });
    }
}

/// Reads of one batch at most this many bytes apart on the device are made as one read: the
/// bytes between them cost the device less time than another I/O would (at its top rate of
/// about 100k 4 KiB reads/s against a few GB/s), and the kernel far less CPU.
pub(crate) const COALESCE_GAP_BYTES: u64 = 16 << 10;
/// Longest read that serves several records (the largest buffer the read pool keeps).
pub(crate) const MAX_COALESCED_BYTES: u64 = BufPool::MAX_CLASS_BYTES as u64;

/// One device read of a batch: `len` bytes at `offset`, serving the batch's reads at
/// `members` of its order by offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub offset: u64,
    pub len: usize,
    pub members: std::ops::Range<usize>,
}

/// Groups reads `(offset, len)`, sorted by offset, into spans: a read joins the span before
/// it when it starts at most [`COALESCE_GAP_BYTES`] after that span's end and the span stays
/// within [`MAX_COALESCED_BYTES`]; a read longer than that is a span of its own. Offsets and
/// lengths are multiples of the I/O alignment, so the spans are too.
pub(crate) fn coalesce(sorted: impl IntoIterator<Item = (u64, usize)>) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for (n, (offset, len)) in sorted.into_iter().enumerate() {
        let end = offset + len as u64;
        if let Some(s) = spans.last_mut() {
            let s_end = s.offset + s.len as u64;
            debug_assert!(offset >= s.offset, "reads sorted by offset");
            if offset <= s_end + COALESCE_GAP_BYTES
                && end.max(s_end) - s.offset <= MAX_COALESCED_BYTES
            {
                s.len = (end.max(s_end) - s.offset) as usize;
                s.members.end = n + 1;
                continue;
            }
        }
        spans.push(Span {
            offset,
            len,
            members: n..n + 1,
        });
    }
    spans
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

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = IO_ALIGN as u64;

    fn members(spans: &[Span]) -> Vec<(u64, usize, Vec<usize>)> {
        spans
            .iter()
            .map(|s| (s.offset, s.len, s.members.clone().collect()))
            .collect()
    }

    #[test]
    fn close_reads_share_one_read() {
        // Same page twice, the next page, a page 16 KiB further: one read of 7 pages.
        let reads = [(0, 4096), (0, 4096), (PAGE, 4096), (6 * PAGE, 4096)];
        let spans = coalesce(reads);
        assert_eq!(members(&spans), vec![(0, 7 * 4096, vec![0, 1, 2, 3])]);
    }

    #[test]
    fn far_reads_stay_apart() {
        let gap = COALESCE_GAP_BYTES + PAGE;
        let reads = [(0, 4096), (PAGE + gap, 4096), (2 * PAGE + 2 * gap, 8192)];
        let spans = coalesce(reads);
        assert_eq!(spans.len(), 3);
        for (s, (offset, len)) in spans.iter().zip(reads) {
            assert_eq!((s.offset, s.len), (offset, len));
        }
    }

    #[test]
    fn a_span_never_exceeds_its_limit() {
        // 40 reads of a page every other page: 80 pages, more than one span may hold.
        let reads: Vec<(u64, usize)> = (0..40).map(|i| (2 * i * PAGE, 4096)).collect();
        let spans = coalesce(reads.iter().copied());
        assert!(spans.len() > 1);
        let mut next = 0;
        for s in &spans {
            assert!(s.len as u64 <= MAX_COALESCED_BYTES, "{s:?}");
            assert_eq!(s.members.start, next, "members are consecutive");
            next = s.members.end;
            for m in s.members.clone() {
                let (offset, len) = reads[m];
                assert!(offset >= s.offset && offset + len as u64 <= s.offset + s.len as u64);
            }
        }
        assert_eq!(next, reads.len());
        // A read longer than the limit is a span of its own.
        let big = (MAX_COALESCED_BYTES + PAGE) as usize;
        let spans = coalesce([(0, 4096), (PAGE, big), (PAGE + big as u64, 4096)]);
        assert_eq!(spans.len(), 3);
    }
}
