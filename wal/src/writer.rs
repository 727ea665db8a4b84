//! The log writer: appends record frames into an open write block in memory and makes them
//! durable, one device write and one flush shared by every writer waiting (group commit).
//!
//! Durability levels:
//! - `Buffered`: [`LogWriter::append`] returns once the frame is in the open block in memory;
//!   a background flush (every `flush_interval_ms`) puts it on the device and flushes the device
//!   cache. A crash loses at most the writes of the last interval, never an older one.
//! - `Sync`: the caller also waits in [`LogWriter::wait_durable`]. The first waiter to find no
//!   flush running becomes the leader and writes everything appended so far (its own frame and
//!   everybody else's) with one write per dirty range and one fdatasync; the others wait for that
//!   flush and return together.
//!
//! After a failed write or flush the writer refuses every further append (the device state
//! is unknown), and every waiter gets the error.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::buf::{align_down, align_up, AlignedBuf, IO_ALIGN};
use crate::device::{Device, WriteOp};
use crate::error::{Error, Result};
use crate::format::{padded_frame_len, BlockHeader, BlockKind, RecordInput, BLOCK_HEADER_BYTES};

/// Where the writer gets blocks from, and whom it tells about them.
pub trait BlockSource: Send + Sync {
    /// A free block to open, or `None` when there is none for this kind of writer. A
    /// tombstone (`freeing`) may dig deeper into the reserve than other foreground writes,
    /// since deletes are how space comes back.
    fn take_free(&self, kind: BlockKind, freeing: bool) -> Option<u32>;
    /// Called with each new block sequence before any byte carrying it is written: a source
    /// that must never hand out a sequence twice (across crashes too) makes it durable here.
    /// An error fails the writer.
    fn reserve_seq(&self, _seq: u64) -> Result<()> {
        Ok(())
    }
    /// A block was opened with sequence `seq`.
    fn opened(&self, block: u32, seq: u64, kind: BlockKind);
    /// A sealed block is now completely on the device; its final bytes are handed over (the
    /// engine keeps recent ones as its post-write cache).
    fn sealed(&self, block: u32, seq: u64, used_bytes: u32, bytes: Arc<AlignedBuf>);
}

/// A position in the log: (block sequence, byte offset). Totally ordered.
pub type Pos = (u64, u32);

/// Where an appended frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub block: u32,
    pub seq: u64,
    pub offset: u32,
    pub padded_len: u32,
    pub pos: Pos,
}

struct OpenBlock {
    block: u32,
    seq: u64,
    buf: AlignedBuf,
    fill: usize,
    /// Bytes before this are on the device (a multiple of IO_ALIGN).
    written: usize,
}

struct SealedBlock {
    block: u32,
    seq: u64,
    buf: Arc<AlignedBuf>,
    fill: usize,
    written: usize,
}

impl State {
    /// Moves the open block, if any, to the sealed blocks awaiting their final write.
    fn seal_open(&mut self) {
        if let Some(old) = self.open.take() {
            self.sealed.push_back(SealedBlock {
                block: old.block,
                seq: old.seq,
                buf: Arc::new(old.buf),
                fill: old.fill,
                written: old.written,
            });
        }
    }
}

struct State {
    open: Option<OpenBlock>,
    sealed: VecDeque<SealedBlock>,
    appended: Pos,
    durable: Pos,
    failed: Option<String>,
    /// A flush holds the I/O lock and has not finished.
    leading: bool,
    /// What the running flush will make durable, once it has captured.
    flushing: Option<Pos>,
    /// Flushes finished; the parity picks the condvar of the next one to finish.
    flush_gen: u64,
}

/// Counters of one writer.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriterStats {
    pub flushes: u64,
    pub bytes_written: u64,
    pub frames: u64,
}

pub struct LogWriter {
    device: Arc<dyn Device>,
    source: Arc<dyn BlockSource>,
    block_bytes: usize,
    store_id_lo: u64,
    kind: BlockKind,
    next_seq: Arc<AtomicU64>,
    state: Mutex<State>,
    /// Waiters of the flush numbered `flush_gen` wait on `flushed[flush_gen % 2]`; those that
    /// only the flush after it can cover wait on the other one (see `wait_durable_inner`).
    flushed: [Condvar; 2],
    io: Mutex<()>,
    flushes: AtomicU64,
    bytes_written: AtomicU64,
    frames: AtomicU64,
    /// Threads inside `wait_durable`.
    waiting: AtomicUsize,
    /// Largest single write; 0 = whole ranges, all in flight at once. See [`LogWriter::with_max_io_bytes`].
    max_io_bytes: usize,
}

/// Longest a group-commit leader waits for other writers to append before it flushes.
const GATHER_WINDOW: Duration = Duration::from_micros(200);
/// A waiter re-checks the state at least this often, whatever it was told.
const MISSED_WAKEUP_BOUND: Duration = Duration::from_millis(20);

impl LogWriter {
    pub fn new(
        device: Arc<dyn Device>,
        source: Arc<dyn BlockSource>,
        block_bytes: u32,
        store_id_lo: u64,
        kind: BlockKind,
        next_seq: Arc<AtomicU64>,
    ) -> LogWriter {
        LogWriter {
            device,
            source,
            block_bytes: block_bytes as usize,
            store_id_lo,
            kind,
            next_seq,
            state: Mutex::new(State {
                open: None,
                sealed: VecDeque::new(),
                appended: (0, 0),
                durable: (0, 0),
                failed: None,
                leading: false,
                flushing: None,
                flush_gen: 0,
            }),
            flushed: [Condvar::new(), Condvar::new()],
            io: Mutex::new(()),
            flushes: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            max_io_bytes: 0,
        }
    }

    /// Writes in pieces of at most `bytes` (a multiple of [`IO_ALIGN`]), one at a time, so
    /// that a background writer never puts a long transfer in front of foreground reads in
    /// the device's queue. 0 = whole ranges, all in flight together (the default).
    pub fn with_max_io_bytes(mut self, bytes: usize) -> LogWriter {
        self.max_io_bytes = bytes.next_multiple_of(IO_ALIGN);
        self
    }

    /// The largest frame (padded) that fits in one block.
    pub fn max_frame_bytes(&self) -> usize {
        self.block_bytes - BLOCK_HEADER_BYTES
    }

    /// Appends one frame to the open block (opening a new block when it does not fit).
    /// `on_placed` runs under the writer's lock with the frame's place, before any reader can
    /// be served the block from the device: the engine updates its index there.
    pub fn append<T>(
        &self,
        rec: &RecordInput<'_>,
        on_placed: impl FnOnce(&Appended) -> T,
    ) -> Result<(Appended, T)> {
        let padded = padded_frame_len(rec.frame_len());
        if padded > self.max_frame_bytes() {
            return Err(Error::Config(format!(
                "frame of {padded} bytes does not fit in a {}-byte write block",
                self.block_bytes
            )));
        }
        let mut st = self.state.lock();
        if let Some(why) = &st.failed {
            return Err(Error::WriterFailed(why.clone()));
        }
        let needs_new = st
            .open
            .as_ref()
            .is_none_or(|o| o.fill + padded > self.block_bytes);
        if needs_new {
            self.roll(&mut st, rec.flags & crate::format::FLAG_TOMBSTONE != 0)?;
        }
        let open = st.open.as_mut().expect("a block is open after roll");
        rec.encode(open.seq, &mut open.buf[open.fill..open.fill + padded]);
        let placed = Appended {
            block: open.block,
            seq: open.seq,
            offset: open.fill as u32,
            padded_len: padded as u32,
            pos: (open.seq, (open.fill + padded) as u32),
        };
        open.fill += padded;
        st.appended = placed.pos;
        self.frames.fetch_add(1, Ordering::Relaxed);
        let out = on_placed(&placed);
        Ok((placed, out))
    }

    /// Seals the open block (if any) and opens a fresh one.
    fn roll(&self, st: &mut State, freeing: bool) -> Result<()> {
        let block = self
            .source
            .take_free(self.kind, freeing)
            .ok_or(Error::NoFreeBlock)?;
        st.seal_open();
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.source.reserve_seq(seq) {
            let why = format!("reserving block sequence {seq}: {e}");
            st.failed = Some(why.clone());
            return Err(Error::WriterFailed(why));
        }
        let mut buf = AlignedBuf::new(self.block_bytes);
        BlockHeader {
            block,
            seq,
            store_id_lo: self.store_id_lo,
            kind: self.kind,
            created_ms: now_ms(),
        }
        .encode(&mut buf);
        self.source.opened(block, seq, self.kind);
        st.open = Some(OpenBlock {
            block,
            seq,
            buf,
            fill: BLOCK_HEADER_BYTES,
            written: 0,
        });
        Ok(())
    }

    /// Continues a block an earlier run left partly filled: `bytes` is the whole block as it
    /// is on the device up to `fill` (the end of its valid frames, a multiple of 16) and zeros
    /// after it. Appends go on at `fill` with the block's own sequence; the first flush
    /// rewrites the page holding `fill` from its start, with the bytes already on the device
    /// in front of `fill`, so a torn rewrite leaves those as they were. Only before the first
    /// append (the writer holds no block).
    pub fn resume(&self, block: u32, seq: u64, bytes: AlignedBuf, fill: usize) -> Result<()> {
        if bytes.len() != self.block_bytes || fill > self.block_bytes || fill < BLOCK_HEADER_BYTES {
            return Err(Error::Config(format!(
                "cannot resume block {block} at {fill} with {} of {} bytes",
                bytes.len(),
                self.block_bytes
            )));
        }
        let mut st = self.state.lock();
        assert!(
            st.open.is_none() && st.sealed.is_empty(),
            "a block is resumed only by a writer that holds none"
        );
        st.open = Some(OpenBlock {
            block,
            seq,
            buf: bytes,
            fill,
            written: align_down(fill, IO_ALIGN),
        });
        st.appended = (seq, fill as u32);
        st.durable = (seq, fill as u32);
        Ok(())
    }

    /// Copies `len` bytes at `offset` of `block` if the block is still in the writer's hands
    /// (open, or sealed and not yet fully written).
    pub fn read_pending(&self, block: u32, offset: u32, len: u32, out: &mut Vec<u8>) -> bool {
        let st = self.state.lock();
        let range = offset as usize..(offset + len) as usize;
        if let Some(o) = st.open.as_ref().filter(|o| o.block == block) {
            out.extend_from_slice(&o.buf[range]);
            return true;
        }
        if let Some(s) = st.sealed.iter().find(|s| s.block == block) {
            out.extend_from_slice(&s.buf[range]);
            return true;
        }
        false
    }

    /// The blocks the writer holds (open or sealed-unwritten), with their sequence numbers.
    pub fn pending_blocks(&self) -> Vec<(u32, u64)> {
        let st = self.state.lock();
        st.open
            .iter()
            .map(|o| (o.block, o.seq))
            .chain(st.sealed.iter().map(|s| (s.block, s.seq)))
            .collect()
    }

    /// Whether sealed blocks wait for their final write (they become defragmentation
    /// candidates only after it).
    pub fn has_sealed(&self) -> bool {
        !self.state.lock().sealed.is_empty()
    }

    /// Sequence of the open block, if one is open.
    pub fn open_seq(&self) -> Option<u64> {
        self.state.lock().open.as_ref().map(|o| o.seq)
    }

    /// Seals the open block so that a following flush hands it to the block source.
    pub fn seal(&self) {
        let mut st = self.state.lock();
        st.seal_open();
    }

    pub fn appended(&self) -> Pos {
        self.state.lock().appended
    }

    pub fn is_failed(&self) -> Option<String> {
        self.state.lock().failed.clone()
    }

    /// Fails the writer from outside (an I/O error elsewhere on the same device): every later
    /// append, flush and waiter gets `why`, as after a failed flush of its own. The first
    /// reason stays.
    pub fn fail(&self, why: &str) {
        let mut st = self.state.lock();
        if st.failed.is_none() {
            st.failed = Some(why.to_string());
        }
        drop(st);
        for cv in &self.flushed {
            cv.notify_all();
        }
    }

    /// Blocks until everything up to `pos` is durable, leading a flush if none is running.
    pub fn wait_durable(&self, pos: Pos) -> Result<()> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let result = self.wait_durable_inner(pos);
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        result
    }

    /// Group commit without a thundering herd: a flush's end wakes the waiters it covered
    /// and one waiter to lead the next flush, never the rest. A waiter that the running flush
    /// covers (it has not captured yet, or captured at or past `pos`) waits on that flush's
    /// condvar; one appended after the capture waits on the next flush's, whose leader is
    /// handed over by `notify_one`. The timed wait only bounds the cost of a missed wake-up.
    fn wait_durable_inner(&self, pos: Pos) -> Result<()> {
        let mut st = self.state.lock();
        loop {
            if let Some(why) = &st.failed {
                return Err(Error::WriterFailed(why.clone()));
            }
            if st.durable >= pos {
                return Ok(());
            }
            if let Some(io) = self.io.try_lock() {
                drop(st);
                self.gather();
                self.flush_locked(&io)?;
                st = self.state.lock();
                continue;
            }
            if !st.leading {
                // The I/O lock is between two flushes: it is about to be free or taken.
                drop(st);
                std::thread::yield_now();
                st = self.state.lock();
                continue;
            }
            let covered = st.flushing.is_none_or(|target| target >= pos);
            let which = (st.flush_gen + u64::from(!covered)) % 2;
            self.flushed[which as usize].wait_for(&mut st, MISSED_WAKEUP_BOUND);
        }
    }

    /// A leader with company lets the other writers (often just woken by the previous flush)
    /// append before it captures, so that one flush carries many writes: it yields the CPU
    /// until appends stop arriving or the window closes.
    fn gather(&self) {
        if self.waiting.load(Ordering::Acquire) <= 1 {
            return;
        }
        let deadline = Instant::now() + GATHER_WINDOW;
        let mut last = self.appended();
        loop {
            std::thread::yield_now();
            let now = self.appended();
            if now == last || Instant::now() >= deadline {
                return;
            }
            last = now;
        }
    }

    /// Writes everything appended so far and flushes the device.
    pub fn flush(&self) -> Result<()> {
        let io = self.io.lock();
        self.flush_locked(&io)
    }

    fn flush_locked(&self, _io: &parking_lot::MutexGuard<'_, ()>) -> Result<()> {
        {
            let mut st = self.state.lock();
            if let Some(why) = &st.failed {
                return Err(Error::WriterFailed(why.clone()));
            }
            st.leading = true;
        }
        let (jobs, target) = self.capture();
        let result = self.write_jobs(&jobs);
        let mut st = self.state.lock();
        st.leading = false;
        st.flushing = None;
        let gen = st.flush_gen;
        st.flush_gen += 1;
        match result {
            Ok(()) => {
                st.durable = st.durable.max(target);
                let mut done = Vec::new();
                for job in &jobs {
                    match job.sealed.as_ref() {
                        Some(buf) => {
                            if let Some(i) = st.sealed.iter().position(|s| s.seq == job.seq) {
                                let s = st.sealed.remove(i).expect("index in range");
                                done.push((s.block, s.seq, s.fill as u32, Arc::clone(buf)));
                            }
                        }
                        None => {
                            if let Some(o) = st.open.as_mut().filter(|o| o.seq == job.seq) {
                                o.written = o.written.max(align_down(job.fill, IO_ALIGN));
                            } else if let Some(s) = st.sealed.iter_mut().find(|s| s.seq == job.seq)
                            {
                                s.written = s.written.max(align_down(job.fill, IO_ALIGN));
                            }
                        }
                    }
                }
                drop(st);
                for (block, seq, fill, buf) in done {
                    self.source.sealed(block, seq, fill, buf);
                }
                self.flushes.fetch_add(1, Ordering::Relaxed);
                self.flushed[(gen % 2) as usize].notify_all();
                self.flushed[((gen + 1) % 2) as usize].notify_one();
                Ok(())
            }
            Err(e) => {
                st.failed = Some(e.to_string());
                drop(st);
                for cv in &self.flushed {
                    cv.notify_all();
                }
                Err(e)
            }
        }
    }

    /// Takes what must be written: the unwritten tails of sealed blocks (shared buffers) and a
    /// copy of the open block's dirty pages (it keeps changing under later appends).
    fn capture(&self) -> (Vec<Job>, Pos) {
        let mut st = self.state.lock();
        st.flushing = Some(st.appended);
        let mut jobs = Vec::new();
        for s in &st.sealed {
            jobs.push(Job {
                block: s.block,
                seq: s.seq,
                from: s.written,
                to: align_up(s.fill, IO_ALIGN),
                fill: s.fill,
                sealed: Some(Arc::clone(&s.buf)),
                copy: None,
            });
        }
        if let Some(o) = st.open.as_ref().filter(|o| o.fill > o.written) {
            let to = align_up(o.fill, IO_ALIGN);
            let mut copy = AlignedBuf::new(to - o.written);
            copy.copy_from_slice(&o.buf[o.written..to]);
            jobs.push(Job {
                block: o.block,
                seq: o.seq,
                from: o.written,
                to,
                fill: o.fill,
                sealed: None,
                copy: Some(copy),
            });
        }
        (jobs, st.appended)
    }

    fn write_jobs(&self, jobs: &[Job]) -> Result<()> {
        let mut ops = Vec::with_capacity(jobs.len());
        let mut bytes = 0u64;
        for job in jobs {
            if job.to <= job.from {
                continue;
            }
            let base = job.block as u64 * self.block_bytes as u64;
            let buf: &[u8] = match (&job.sealed, &job.copy) {
                (Some(b), _) => &b[job.from..job.to],
                (None, Some(c)) => &c[..],
                (None, None) => unreachable!("a job carries bytes"),
            };
            bytes += buf.len() as u64;
            ops.push(WriteOp {
                offset: base + job.from as u64,
                buf,
            });
        }
        if self.max_io_bytes == 0 {
            if !ops.is_empty() {
                self.device.write_many(&ops)?;
            }
        } else {
            for op in &ops {
                for (i, piece) in op.buf.chunks(self.max_io_bytes).enumerate() {
                    let offset = op.offset + (i * self.max_io_bytes) as u64;
                    self.device.write_at(piece, offset)?;
                }
            }
        }
        self.device.sync()?;
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            flushes: self.flushes.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
        }
    }
}

struct Job {
    block: u32,
    seq: u64,
    from: usize,
    to: usize,
    fill: usize,
    sealed: Option<Arc<AlignedBuf>>,
    copy: Option<AlignedBuf>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{
        CrashMode, FaultDevice, FaultEffect, FaultOp, FaultPlan, FaultRule, FaultWhen,
        MemoryDevice, ReadOp,
    };
    use crate::scan::{BlockScanner, ScanItem};

    const BLOCK: u32 = 128 << 10;
    const STORE_ID: u64 = 7;

    /// Hands out blocks 1, 2, 3... and forgets what is sealed.
    struct Free(Mutex<Vec<u32>>);

    impl BlockSource for Free {
        fn take_free(&self, _kind: BlockKind, _freeing: bool) -> Option<u32> {
            self.0.lock().pop()
        }
        fn opened(&self, _block: u32, _seq: u64, _kind: BlockKind) {}
        fn sealed(&self, _block: u32, _seq: u64, _used: u32, _bytes: Arc<AlignedBuf>) {}
    }

    /// A writer over `dev` with blocks 1..`blocks` free.
    fn writer_on(dev: Arc<dyn Device>, blocks: u32, kind: BlockKind) -> LogWriter {
        let free = Arc::new(Free(Mutex::new((1..blocks).rev().collect())));
        LogWriter::new(
            dev,
            free,
            BLOCK,
            STORE_ID,
            kind,
            Arc::new(AtomicU64::new(1)),
        )
    }

    fn record<'a>(lsn: u64, key: &'a [u8], value: &'a [u8]) -> RecordInput<'a> {
        RecordInput {
            lsn,
            group: 1,
            key,
            value,
            flags: 0,
            generation: 1,
            expiry_s: 0,
            last_update_s: 0,
        }
    }

    /// (LSN, value) of every frame in a device image of `blocks` blocks; panics on a corrupt
    /// frame.
    fn frames_in(image: &[u8], blocks: u32) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for b in 1..blocks {
            let block = &image[b as usize * BLOCK as usize..(b as usize + 1) * BLOCK as usize];
            let Some(h) = BlockHeader::decode(block, b, STORE_ID) else {
                continue;
            };
            for item in BlockScanner::new(block, b, h.seq) {
                match item {
                    ScanItem::Record { record, .. } => {
                        out.push((record.header.lsn, record.value.to_vec()))
                    }
                    ScanItem::Corrupt { detail, .. } => panic!("corrupt frame: {detail}"),
                }
            }
        }
        out
    }

    /// A memory device that remembers the largest write it was given and the most writes
    /// submitted together.
    struct Watched {
        inner: MemoryDevice,
        largest: AtomicUsize,
        most_at_once: AtomicUsize,
    }

    impl Device for Watched {
        fn capacity(&self) -> u64 {
            self.inner.capacity()
        }
        fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<Result<()>> {
            self.inner.read_many(ops)
        }
        fn write_many(&self, ops: &[WriteOp<'_>]) -> Result<()> {
            for op in ops {
                self.largest.fetch_max(op.buf.len(), Ordering::Relaxed);
            }
            self.most_at_once.fetch_max(ops.len(), Ordering::Relaxed);
            self.inner.write_many(ops)
        }
        fn sync(&self) -> Result<()> {
            self.inner.sync()
        }
        fn backend(&self) -> &'static str {
            "watched"
        }
    }

    /// A device whose flush takes as long as a quick real fdatasync.
    struct SlowSync(Arc<FaultDevice>);

    impl Device for SlowSync {
        fn capacity(&self) -> u64 {
            self.0.capacity()
        }
        fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<Result<()>> {
            self.0.read_many(ops)
        }
        fn write_many(&self, ops: &[WriteOp<'_>]) -> Result<()> {
            self.0.write_many(ops)
        }
        fn sync(&self) -> Result<()> {
            std::thread::sleep(Duration::from_micros(300));
            self.0.sync()
        }
        fn backend(&self) -> &'static str {
            "slow-sync"
        }
    }

    /// Writes 3.5 blocks of frames and returns what the device holds, with the watcher.
    fn write_log(max_io: usize) -> (Vec<u8>, Arc<Watched>) {
        let dev = Arc::new(Watched {
            inner: MemoryDevice::new(8 * BLOCK as u64),
            largest: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
        });
        let w = writer_on(Arc::clone(&dev) as Arc<dyn Device>, 8, BlockKind::Defrag)
            .with_max_io_bytes(max_io);
        let value = [0x5au8; 900];
        let frames = (BLOCK as usize * 7 / 2) / padded_frame_len(64 + 8 + value.len());
        for i in 0..frames as u64 {
            w.append(&record(i, &i.to_le_bytes(), &value), |_| ())
                .expect("append");
        }
        w.flush().expect("flush");
        let mut buf = AlignedBuf::new(8 * BLOCK as usize);
        dev.read_at(&mut buf, 0).expect("read back");
        (buf.to_vec(), dev)
    }

    #[test]
    fn writes_in_pieces_land_the_same_bytes() {
        let (whole, whole_dev) = write_log(0);
        let (pieces, piece_dev) = write_log(8 << 10);
        assert!(whole_dev.largest.load(Ordering::Relaxed) > 8 << 10);
        assert_eq!(piece_dev.largest.load(Ordering::Relaxed), 8 << 10);
        assert_eq!(piece_dev.most_at_once.load(Ordering::Relaxed), 1);
        // Blocks carry their creation time: compare the frames, not the headers.
        let (a, b) = (frames_in(&whole, 8), frames_in(&pieces, 8));
        assert!(a.len() > 400, "{} frames", a.len());
        assert_eq!(a, b);
    }

    /// Many writers wait for durability at once: every wait returns, every frame is on the
    /// device afterwards, and flushes carry several writes each. A wait that is never woken
    /// (a leader releasing the I/O lock after its last notify, with no leader after it) fails
    /// the test after 60 s instead of hanging it.
    #[test]
    fn concurrent_sync_writers_all_become_durable() {
        const THREADS: u64 = 16;
        const EACH: u64 = 300;
        let dev = Arc::new(FaultDevice::new(64 * BLOCK as u64, 1));
        let w = Arc::new(writer_on(
            Arc::new(SlowSync(Arc::clone(&dev))),
            64,
            BlockKind::Foreground,
        ));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        for t in 0..THREADS {
            let (w, done_tx) = (Arc::clone(&w), done_tx.clone());
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let lsn = t * EACH + i;
                    let (key, value) = (lsn.to_le_bytes(), [t as u8; 200]);
                    let (placed, ()) = w
                        .append(&record(lsn, &key, &value), |_| ())
                        .expect("append");
                    w.wait_durable(placed.pos).expect("durable");
                }
                let _ = done_tx.send(t);
            });
        }
        for _ in 0..THREADS {
            done_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a writer is stuck waiting for a flush nobody leads");
        }
        // Only what was synced survives a power cut: every acknowledged frame must be there.
        let image = dev.crash(CrashMode::DropUnsynced);
        let mut lsns: Vec<u64> = frames_in(&image, 64).into_iter().map(|f| f.0).collect();
        lsns.sort_unstable();
        assert_eq!(lsns, (0..THREADS * EACH).collect::<Vec<_>>());
        let flushes = w.stats().flushes;
        assert!(
            flushes < THREADS * EACH,
            "{flushes} flushes for {} acknowledged writes",
            THREADS * EACH
        );
    }

    /// A sync that fails wakes every waiter with the error; none hangs.
    #[test]
    fn a_failed_sync_fails_every_waiter() {
        let dev = Arc::new(FaultDevice::new(16 * BLOCK as u64, 2));
        let w = writer_on(
            Arc::clone(&dev) as Arc<dyn Device>,
            16,
            BlockKind::Foreground,
        );
        dev.set_plan(FaultPlan::new(3).with(FaultRule {
            op: FaultOp::Sync,
            when: FaultWhen::AfterOps(5),
            effect: FaultEffect::Eio,
            times: None,
        }));
        let outcomes: Vec<std::result::Result<u64, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u64)
                .map(|t| {
                    let w = &w;
                    s.spawn(move || {
                        for i in 0..1000u64 {
                            let lsn = t * 1000 + i;
                            let key = lsn.to_le_bytes();
                            let placed = w
                                .append(&record(lsn, &key, &[1u8; 100]), |_| ())
                                .map_err(|e| e.to_string())?
                                .0;
                            w.wait_durable(placed.pos).map_err(|e| e.to_string())?;
                        }
                        Ok(1000)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        assert!(
            outcomes.iter().all(|o| o.is_err()),
            "every writer sees the failure: {outcomes:?}"
        );
    }

    /// A writer failed from outside refuses appends, flushes and waiters, and keeps the first
    /// reason.
    #[test]
    fn a_writer_failed_from_outside_refuses_everything() {
        let dev = Arc::new(FaultDevice::new(16 * BLOCK as u64, 4));
        let w = writer_on(
            Arc::clone(&dev) as Arc<dyn Device>,
            16,
            BlockKind::Foreground,
        );
        let key = 1u64.to_le_bytes();
        let placed = w.append(&record(1, &key, &[1u8; 100]), |_| ()).unwrap().0;
        w.fail("erase failed");
        w.fail("second reason");
        assert_eq!(w.is_failed().as_deref(), Some("erase failed"));
        assert!(matches!(
            w.wait_durable(placed.pos),
            Err(Error::WriterFailed(_))
        ));
        assert!(matches!(w.flush(), Err(Error::WriterFailed(_))));
        assert!(matches!(
            w.append(&record(2, &key, &[2u8; 100]), |_| ()),
            Err(Error::WriterFailed(_))
        ));
        assert_eq!(
            dev.stats().syncs,
            0,
            "nothing reached the device after the failure"
        );
    }
}
