//! The io_uring event loop: one thread per core, each owning its connections and its GETs'
//! device reads on one ring. Multishot accept (on the first loop, which deals connections out
//! to the others) and multishot receive into a shared ring of provided buffers; sends, device
//! reads and the loop's eventfd on the same ring; completions handled in place, every
//! submission of a turn made by one `io_uring_enter`. A GET never leaves the loop (its device
//! reads go to the ring with everybody else's of the turn); every other request goes to the
//! engine pool, because it may block (a sync commit, a defragmentation pause, a scan), and
//! comes back through the loop's mailbox and eventfd.
//!
//! A TLS connection's receive completions go through its rustls session, whose plaintext is
//! parsed like any other connection's; its responses are sealed into records in its send
//! buffer, which is handed to the kernel like a plaintext one.
//!
//! A buffer handed to the kernel (a send's bytes, a device read's buffer, the provided receive
//! buffers, the eventfd's 8 bytes) stays owned by the loop until its completion arrives, even
//! for a connection already closed: a connection's slot is freed only once no operation of it
//! is in flight, and the loop ends only once every operation completed.

mod probe;
mod recv_bufs;
mod token;

pub use probe::check;

use super::byte_pool::BytePool;
use super::conn::Conn;
use super::dispatch::{answer_busy, Dispatch, GetRoute};
use super::executor::{record_completion, submit, Completion, Envelope};
use super::frames::{handle_frames, idle_trimmed};
use super::gets::{DivertedGet, FinishedGet, LoopGets, ReadRequest, MAX_FULL_SEND_BUFS};
use super::job::Job;
use super::wake::EventFd;
use super::Shared;
use crate::protocol::{encode_error, StatusCode};
use crossbeam::channel::{Receiver, Sender};
use io_uring::types::{CancelBuilder, Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use quiver_wal::{AlignedBuf, BufPool};
use recv_bufs::{RecvBufs, RECV_GROUP};
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use token::{next_generation, pack, unpack, Kind};

/// How often deadlines are checked, and the longest a loop sleeps.
const TICK: Duration = Duration::from_millis(100);
/// How long a shutting-down loop waits for in-flight requests and unwritten responses.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a stopping loop waits for the kernel to give back its buffers.
const TEARDOWN_WAIT: Duration = Duration::from_secs(10);
/// Submission queue entries (the completion queue is four times larger; the kernel keeps
/// overflowing completions rather than dropping them).
const RING_ENTRIES: u32 = 1024;
/// Device reads a loop keeps in flight; more wait in the outbox for the next turns.
const MAX_DEVICE_READS: usize = 512;
/// Rounds a device read is continued when it transfers fewer bytes than asked.
const MAX_READ_ROUNDS: u8 = 8;
/// Capacity a connection's send buffer may keep after its bytes went out (GETs served by the
/// pool; a loop that serves them lends pooled send buffers instead).
const SEND_BUF_KEEP_BYTES: usize = 64 << 10;
/// Sealed TLS records one send carries at most (rustls seals at most 16 KiB of plaintext per
/// record; a larger queue goes out over several sends).
const TLS_SEND_BYTES: usize = 256 << 10;
/// Aligned read buffers kept per size class: as many as reads in flight.
const READ_BUFS_KEPT: usize = MAX_DEVICE_READS;

/// Where a loop receives connections dealt out by the accepting loop.
pub struct Inbox {
    pub tx: Sender<TcpStream>,
    pub wake: Arc<EventFd>,
}

/// What a loop thread starts from.
pub struct LoopSetup {
    pub id: usize,
    pub wake: Arc<EventFd>,
    pub new_conns: Receiver<TcpStream>,
    pub completions: Receiver<Completion>,
    /// The accepting loop's listener.
    pub listener: Option<Arc<TcpListener>>,
    /// Every loop's inbox, by loop id (the accepting loop deals connections out).
    pub inboxes: Arc<Vec<Inbox>>,
}

/// One connection and the state of its operations on the ring.
struct Slot {
    conn: Conn,
    generation: u32,
    recv_armed: bool,
    recv_cancelled: bool,
    /// The bytes of the send in flight (or of the last one); `out[out_pos..]` unconfirmed.
    out: Vec<u8>,
    out_pos: usize,
    send_in_flight: bool,
    send_cancelled: bool,
    /// The peer closed its side.
    eof: bool,
    /// Close as soon as no operation is in flight (an error, the idle timeout, the end of a
    /// graceful close).
    abort: bool,
    dirty: bool,
}

/// A device read in flight.
struct InflightRead {
    req: ReadRequest,
    buf: AlignedBuf,
    done: usize,
    rounds: u8,
}

pub struct RingLoop {
    /// Declared first so that it is dropped first: the kernel lets go of every buffer below
    /// (and of the registered receive buffers) before they are freed.
    ring: IoUring,
    recv_bufs: RecvBufs,
    id: usize,
    shared: Arc<Shared>,
    dispatch: Dispatch,
    wake: Arc<EventFd>,
    wake_buf: Box<u64>,
    wake_armed: bool,
    new_conns: Receiver<TcpStream>,
    completions: Receiver<Completion>,
    listener: Option<Arc<TcpListener>>,
    accept_armed: bool,
    accept_retry_at: Option<Instant>,
    inboxes: Arc<Vec<Inbox>>,
    next_inbox: usize,
    slots: Vec<Option<Slot>>,
    generations: Vec<u32>,
    free_slots: Vec<u32>,
    open: usize,
    /// Connections to bring up to date this turn, and the list the next turn's go into while
    /// this one's are driven (both reserved for every slot, so marking one never allocates).
    dirty: Vec<u32>,
    dirty_spare: Vec<u32>,
    read_fd: Option<RawFd>,
    /// The data file is registered with the ring (index 0): its reads skip the kernel's
    /// per-operation descriptor lookup.
    read_fd_fixed: bool,
    reads: Vec<Option<InflightRead>>,
    free_reads: Vec<u32>,
    reads_in_flight: usize,
    read_bufs: BufPool,
    /// Operations whose last completion has not arrived.
    in_flight: usize,
    cqes: Vec<(u64, i32, u32)>,
}

fn conn_id(index: u32, generation: u32) -> u64 {
    (generation as u64) << 32 | index as u64
}

/// A ring for one loop thread: deferred task work with a single issuer where the kernel has
/// them (6.1), cooperative task work (5.19) otherwise.
fn build_ring() -> io::Result<IoUring> {
    let cq = RING_ENTRIES * 4;
    IoUring::builder()
        .setup_cqsize(cq)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(RING_ENTRIES)
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(cq)
                .setup_coop_taskrun()
                .build(RING_ENTRIES)
        })
        .or_else(|_| IoUring::builder().setup_cqsize(cq).build(RING_ENTRIES))
}

/// Queues `entry`, first handing queued entries to the kernel when the queue is full.
///
/// # Safety
/// Every buffer `entry` points at must stay valid, and unmoved, until its completion (the
/// last one, for a multishot operation) has been reaped.
unsafe fn push(ring: &mut IoUring, in_flight: &mut usize, entry: &squeue::Entry) {
    loop {
        // SAFETY: the caller's promise covers the entry's buffers.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            *in_flight += 1;
            return;
        }
        if let Err(e) = ring.submit() {
            if !matches!(
                e.raw_os_error(),
                Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
            ) {
                // The queued entries may already be the kernel's; nothing can be released.
                eprintln!("quiverd: io_uring submit failed: {e}; aborting");
                std::process::abort();
            }
        }
    }
}

impl RingLoop {
    /// Builds the loop's ring on the calling thread (the loop's own: the ring allows one
    /// submitting thread).
    pub fn new(setup: LoopSetup, shared: Arc<Shared>, pool: Sender<Envelope>) -> io::Result<Self> {
        let ring = build_ring()?;
        let recv_bufs = RecvBufs::register(&ring)?;
        let engine = shared.store.engine();
        let read_fd = engine.ring_read_fd();
        let read_fd_fixed = match read_fd {
            Some(fd) => match ring.submitter().register_files(&[fd]) {
                Ok(()) => true,
                Err(e) => {
                    if setup.id == 0 {
                        tracing::info!(error = %e, "cannot register the data file with the ring; reads name its descriptor");
                    }
                    false
                }
            },
            None => false,
        };
        let gets = if read_fd.is_some() || engine.reads_from_memory() {
            GetRoute::Loop(Box::new(LoopGets::new(shared.clone())))
        } else {
            GetRoute::Pool
        };
        if setup.id == 0 {
            tracing::info!(
                gets_on_loop = matches!(gets, GetRoute::Loop(_)),
                recv_buffer_bytes = recv_bufs.mapped_bytes(),
                pooled_buffer_bytes = gets_pooled_bytes(&gets),
                "io_uring event loops: one ring per loop for sockets and device reads"
            );
        }
        let dispatch = Dispatch::new(setup.id, shared.clone(), pool, gets);
        let reads_reserved = if read_fd.is_some() {
            MAX_DEVICE_READS
        } else {
            0
        };
        Ok(RingLoop {
            ring,
            recv_bufs,
            id: setup.id,
            shared,
            dispatch,
            wake: setup.wake,
            wake_buf: Box::new(0),
            wake_armed: false,
            new_conns: setup.new_conns,
            completions: setup.completions,
            listener: setup.listener,
            accept_armed: false,
            accept_retry_at: None,
            inboxes: setup.inboxes,
            next_inbox: 0,
            slots: Vec::new(),
            generations: Vec::new(),
            free_slots: Vec::new(),
            open: 0,
            dirty: Vec::new(),
            dirty_spare: Vec::new(),
            read_fd,
            read_fd_fixed,
            reads: Vec::with_capacity(reads_reserved),
            free_reads: Vec::with_capacity(reads_reserved),
            reads_in_flight: 0,
            read_bufs: BufPool::reserved(if reads_reserved > 0 {
                READ_BUFS_KEPT
            } else {
                0
            }),
            in_flight: 0,
            // The completion queue's size: one turn reaps at most that many.
            cqes: Vec::with_capacity(RING_ENTRIES as usize * 4),
        })
    }

    pub fn run(mut self) {
        let mut last_sweep = Instant::now();
        let mut shutdown_at: Option<Instant> = None;
        self.arm_wake();
        self.arm_accept();
        loop {
            let wait = self
                .dirty
                .is_empty()
                .then(|| TICK.saturating_sub(last_sweep.elapsed()));
            if let Err(e) = self.enter(wait) {
                tracing::error!(error = %e, "io_uring wait failed; closing this loop's connections");
                break;
            }
            self.reap();
            self.settle();
            if last_sweep.elapsed() >= TICK {
                last_sweep = Instant::now();
                self.sweep(last_sweep);
                self.settle();
            }
            if self.shared.shutdown.load(Acquire) {
                let at = *shutdown_at.get_or_insert_with(|| {
                    self.begin_shutdown();
                    Instant::now()
                });
                self.settle();
                if self.open == 0 || at.elapsed() > SHUTDOWN_GRACE {
                    break;
                }
            }
        }
        if !self.teardown() {
            // The kernel may still write into buffers of the loop: never free them.
            std::mem::forget(self);
        }
    }

    /// Submits the turn's entries and, when `wait` is given, waits up to it for a completion.
    fn enter(&mut self, wait: Option<Duration>) -> io::Result<()> {
        let result = match wait {
            None => self.ring.submit().map(drop),
            Some(d) => {
                let ts = Timespec::new().sec(d.as_secs()).nsec(d.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args).map(drop)
            }
        };
        match result {
            Err(e)
                if !matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Err(e)
            }
            _ => Ok(()),
        }
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(user_data, res, flags) in &cqes {
            self.on_completion(user_data, res, flags);
        }
        self.cqes = cqes;
    }

    fn on_completion(&mut self, user_data: u64, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            self.in_flight -= 1;
        }
        let Some((kind, generation, index)) = unpack(user_data) else {
            return;
        };
        match kind {
            Kind::Accept => self.on_accept(res, more),
            Kind::Recv => self.on_recv(index, generation, res, flags, more),
            Kind::Send => self.on_send(index, generation, res),
            Kind::Read => self.on_read(index, res),
            Kind::Wake => self.wake_armed = false,
            Kind::Cancel => {}
        }
    }

    /// Applies completions, resumes and closes connections, sends output and submits device
    /// reads, until nothing more can be done without new completions.
    fn settle(&mut self) {
        // Bounded so that a steady stream of completions cannot starve the ring.
        for _ in 0..4 {
            self.adopt_new();
            self.drain_completions();
            self.process_dirty();
            self.flush_pool_gets();
            self.submit_reads();
            if self.dirty.is_empty() && self.completions.is_empty() {
                break;
            }
        }
        if let GetRoute::Loop(gets) = &mut self.dispatch.gets {
            gets.flush_samples();
            if std::mem::take(&mut gets.damage_found) {
                let env = Envelope {
                    worker: self.id,
                    job: Job::PersistReadDamage,
                };
                if submit(&self.dispatch.pool, env).is_err() {
                    gets.damage_found = true;
                }
            }
        }
        self.arm_wake();
        if !self.accept_armed
            && self.accept_retry_at.is_none_or(|t| Instant::now() >= t)
            && !self.shared.shutdown.load(Acquire)
        {
            self.arm_accept();
        }
    }

    // ---------------------------------------------------------------- accepting

    fn arm_accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let entry = opcode::AcceptMulti::new(Fd(listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(pack(Kind::Accept, 0, 0));
        // SAFETY: an accept points at no buffer of ours.
        unsafe { push(&mut self.ring, &mut self.in_flight, &entry) };
        self.accept_armed = true;
        self.accept_retry_at = None;
    }

    fn on_accept(&mut self, res: i32, more: bool) {
        if !more {
            self.accept_armed = false;
        }
        if res < 0 {
            if res != -libc::ECANCELED {
                let e = io::Error::from_raw_os_error(-res);
                tracing::warn!(error = %e, "accept failed");
                // Retried at the next tick (EMFILE, for one, announces nothing when it clears).
                self.accept_retry_at = Some(Instant::now() + TICK);
            }
            return;
        }
        // SAFETY: a successful accept hands us a new descriptor that nothing else owns.
        let mut stream = unsafe { TcpStream::from_raw_fd(res) };
        let metrics = &self.shared.metrics;
        if self.shared.shutdown.load(Acquire) {
            return;
        }
        let max = u64::from(self.shared.config.limits.max_connections);
        if metrics.connections_open.load(Relaxed) >= max {
            metrics.connections_refused.fetch_add(1, Relaxed);
            tracing::debug!(max, "connection refused at the max_connections limit");
            refuse(&mut stream, max);
            return;
        }
        let _ = stream.set_nodelay(true);
        metrics.connections_open.fetch_add(1, Relaxed);
        metrics.connections_accepted.fetch_add(1, Relaxed);
        let target = self.next_inbox % self.inboxes.len();
        self.next_inbox = self.next_inbox.wrapping_add(1);
        if target == self.id {
            return self.adopt(stream);
        }
        let inbox = &self.inboxes[target];
        if inbox.tx.send(stream).is_ok() {
            inbox.wake.wake();
        } else {
            metrics.connections_open.fetch_sub(1, Relaxed);
        }
    }

    fn adopt_new(&mut self) {
        while let Ok(stream) = self.new_conns.try_recv() {
            if self.shared.shutdown.load(Acquire) {
                self.shared.metrics.connections_open.fetch_sub(1, Relaxed);
                continue;
            }
            self.adopt(stream);
        }
    }

    fn adopt(&mut self, stream: TcpStream) {
        let mut conn = Conn::new(stream, Instant::now());
        conn.full.reserve_exact(MAX_FULL_SEND_BUFS);
        if let Some(tls) = &self.shared.tls {
            // The configuration of the moment: a reload (SIGHUP) reaches new connections,
            // open ones keep the session they started with.
            match rustls::ServerConnection::new(tls.config()) {
                Ok(session) => conn.tls = Some(Box::new(session)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a TLS session");
                    self.shared.metrics.connections_open.fetch_sub(1, Relaxed);
                    return;
                }
            }
        }
        let index = self.free_slots.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            (self.slots.len() - 1) as u32
        });
        // Every slot may be dirty at once: reserved here, at connection set-up.
        for list in [&mut self.dirty, &mut self.dirty_spare] {
            list.reserve(self.slots.len().saturating_sub(list.len()));
        }
        self.slots[index as usize] = Some(Slot {
            conn,
            generation: self.generations[index as usize],
            recv_armed: false,
            recv_cancelled: false,
            out: Vec::new(),
            out_pos: 0,
            send_in_flight: false,
            send_cancelled: false,
            eof: false,
            abort: false,
            dirty: false,
        });
        self.open += 1;
        self.mark_dirty(index);
    }

    // ---------------------------------------------------------------- connections

    /// The slot of connection `id` (as dispatch and the pool name it).
    fn slot_of(&mut self, id: u64) -> Option<(u32, &mut Slot)> {
        let index = id as u32;
        let slot = slot_in(&mut self.slots, index, (id >> 32) as u32)?;
        Some((index, slot))
    }

    fn mark_dirty(&mut self, index: u32) {
        if let Some(Some(slot)) = self.slots.get_mut(index as usize) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(index);
            }
        }
    }

    fn on_recv(&mut self, index: u32, generation: u32, res: i32, flags: u32, more: bool) {
        let bid = cqueue::buffer_select(flags);
        let Some(slot) = slot_in(&mut self.slots, index, generation) else {
            // Never happens (a slot is freed only with nothing in flight); keep the buffer.
            if let Some(bid) = bid {
                self.recv_bufs.give_back(bid);
            }
            return;
        };
        if !more {
            slot.recv_armed = false;
            slot.recv_cancelled = false;
        }
        match res {
            n if n > 0 => {
                let bid = bid.expect("a receive with bytes names its buffer");
                let id = conn_id(index, slot.generation);
                let data = self.recv_bufs.bytes(bid, n as usize);
                if slot.conn.tls.is_some() {
                    feed_sealed(&mut self.dispatch, id, slot, data);
                } else {
                    feed(&mut self.dispatch, id, slot, data);
                }
                self.recv_bufs.give_back(bid);
            }
            0 => slot.eof = true,
            e if e == -libc::ENOBUFS || e == -libc::ECANCELED => {}
            _ => slot.abort = true,
        }
        self.mark_dirty(index);
    }

    fn on_send(&mut self, index: u32, generation: u32, res: i32) {
        let Some(slot) = slot_in(&mut self.slots, index, generation) else {
            return;
        };
        slot.send_in_flight = false;
        slot.send_cancelled = false;
        if res < 0 {
            slot.abort = true;
            slot.out_pos = slot.out.len();
        } else {
            slot.out_pos = (slot.out_pos + res as usize).min(slot.out.len());
        }
        if slot.out_pos == slot.out.len() {
            slot.out.clear();
            slot.out_pos = 0;
            match send_pool(&mut self.dispatch) {
                // A plaintext connection holds no send buffer once its bytes are sent.
                Some(pool) if slot.conn.tls.is_none() => pool.give(std::mem::take(&mut slot.out)),
                _ if slot.out.capacity() > SEND_BUF_KEEP_BYTES => slot.out = Vec::new(),
                _ => {}
            }
        }
        slot.conn.sending = slot.out.len() - slot.out_pos;
        self.mark_dirty(index);
    }

    fn process_dirty(&mut self) {
        let spare = std::mem::take(&mut self.dirty_spare);
        let mut dirty = std::mem::replace(&mut self.dirty, spare);
        for &index in &dirty {
            if let Some(Some(slot)) = self.slots.get_mut(index as usize) {
                slot.dirty = false;
                self.drive(index);
            }
        }
        dirty.clear();
        self.dirty_spare = dirty;
    }

    /// Brings one connection up to date: resumes it when under its limits again, sends its
    /// output, (re)arms or stops its receive, and closes it when done.
    fn drive(&mut self, index: u32) {
        let limits = self.shared.config.limits.clone();
        let Some(slot) = self.slots[index as usize].as_mut() else {
            return;
        };
        let id = conn_id(index, slot.generation);
        if !slot.abort {
            let conn = &mut slot.conn;
            let over = conn.login_pending
                || conn.inflight >= limits.max_inflight_per_connection
                || conn.queued_output() as u64 >= limits.max_output_bytes_per_connection;
            if conn.paused && !conn.closing && !over {
                conn.paused = false;
                parse_buffered(&mut self.dispatch, id, conn);
            }
            // A half-closed client still gets an answer to every whole frame it sent.
            if slot.eof && !conn.paused {
                conn.closing = true;
            }
            if conn.closing {
                give_carry(&mut self.dispatch, std::mem::take(&mut conn.rbuf));
            }
            if conn.finished() && !slot.send_in_flight {
                slot.abort = true;
            }
        }
        if !slot.send_in_flight && !slot.abort && slot.out_pos == slot.out.len() {
            let pool = send_pool(&mut self.dispatch);
            if slot.conn.tls.is_some() {
                // TLS: the plaintext queue is sealed into records in the send buffer (no
                // send is in flight, so the kernel holds none of its bytes).
                slot.out.clear();
                slot.out_pos = 0;
                if slot.conn.seal_into(&mut slot.out, TLS_SEND_BYTES).is_err() {
                    slot.abort = true;
                }
                if let Some(pool) = pool {
                    pool.give_if_empty(&mut slot.conn.wbuf);
                }
            } else if let Some(next) = next_output(&mut slot.conn) {
                let sent = std::mem::replace(&mut slot.out, next);
                slot.out_pos = 0;
                match pool {
                    Some(pool) => pool.give(sent),
                    None => {
                        // Without a pool, the sent buffer is the next one filled.
                        slot.conn.wbuf = sent;
                        slot.conn.wbuf.clear();
                    }
                }
            }
        }
        if !slot.send_in_flight && !slot.abort {
            if slot.out_pos < slot.out.len() {
                let bytes = &slot.out[slot.out_pos..];
                let entry = opcode::Send::new(
                    Fd(slot.conn.stream.as_raw_fd()),
                    bytes.as_ptr(),
                    bytes.len() as u32,
                )
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(pack(Kind::Send, slot.generation, index));
                // SAFETY: `out` is neither touched nor dropped while the send is in flight:
                // new output goes to `conn.wbuf`, and the slot is freed only once no operation
                // of it is in flight.
                unsafe { push(&mut self.ring, &mut self.in_flight, &entry) };
                slot.send_in_flight = true;
            }
            slot.conn.sending = slot.out.len() - slot.out_pos;
        }
        slot.conn.output.set_queued(slot.conn.queued_output());
        let want_recv = !slot.abort && !slot.conn.closing && !slot.conn.paused && !slot.eof;
        if want_recv && !slot.recv_armed {
            let entry = opcode::RecvMulti::new(Fd(slot.conn.stream.as_raw_fd()), RECV_GROUP)
                .build()
                .user_data(pack(Kind::Recv, slot.generation, index));
            // SAFETY: a receive writes only into the provided buffers, registered for the
            // life of the ring.
            unsafe { push(&mut self.ring, &mut self.in_flight, &entry) };
            slot.recv_armed = true;
        }
        if !want_recv && slot.recv_armed && !slot.recv_cancelled {
            slot.recv_cancelled = true;
            let target = pack(Kind::Recv, slot.generation, index);
            cancel(&mut self.ring, &mut self.in_flight, target);
        }
        if slot.abort {
            if slot.send_in_flight && !slot.send_cancelled {
                slot.send_cancelled = true;
                let target = pack(Kind::Send, slot.generation, index);
                cancel(&mut self.ring, &mut self.in_flight, target);
            }
            if !slot.recv_armed && !slot.send_in_flight {
                self.free(index);
            }
        }
    }

    /// Frees a slot with nothing in flight: closes the socket.
    fn free(&mut self, index: u32) {
        let slot = self.slots[index as usize]
            .take()
            .expect("freeing a live slot");
        debug_assert!(!slot.recv_armed && !slot.send_in_flight);
        let Slot { mut conn, out, .. } = slot;
        if let Some(pool) = send_pool(&mut self.dispatch) {
            pool.give(out);
            pool.give(std::mem::take(&mut conn.wbuf));
            conn.full.drain(..).for_each(|b| pool.give(b));
        }
        give_carry(&mut self.dispatch, std::mem::take(&mut conn.rbuf));
        drop(conn);
        let g = &mut self.generations[index as usize];
        *g = next_generation(*g);
        self.free_slots.push(index);
        self.open -= 1;
        self.shared.metrics.connections_open.fetch_sub(1, Relaxed);
    }

    fn drain_completions(&mut self) {
        while let Ok(c) = self.completions.try_recv() {
            record_completion(&self.shared, &c);
            if let Some((index, slot)) = self.slot_of(c.conn) {
                slot.conn.take_completion(c);
                self.mark_dirty(index);
            }
        }
    }

    /// GETs of a loop whose device must be called (neither its own ring nor memory) go to
    /// the pool, as under the epoll loop.
    fn flush_pool_gets(&mut self) {
        let mut refused = Vec::new();
        self.dispatch.flush_gets(|t| refused.push(t));
        for t in refused {
            let shared = self.shared.clone();
            if let Some((index, slot)) = self.slot_of(t.conn) {
                answer_busy(&shared, &mut slot.conn, &t);
                self.mark_dirty(index);
            }
        }
    }

    // ---------------------------------------------------------------- device reads

    fn submit_reads(&mut self) {
        let GetRoute::Loop(gets) = &mut self.dispatch.gets else {
            return;
        };
        let Some(fd) = self.read_fd else {
            return;
        };
        let room = MAX_DEVICE_READS.saturating_sub(self.reads_in_flight);
        let take = gets.outbox.len().min(room);
        self.shared
            .metrics
            .loop_device_reads
            .fetch_add(take as u64, Relaxed);
        for req in gets.outbox.drain(..take) {
            let index = self.free_reads.pop().unwrap_or_else(|| {
                self.reads.push(None);
                (self.reads.len() - 1) as u32
            });
            let read = InflightRead {
                req,
                buf: self.read_bufs.take(req.len),
                done: 0,
                rounds: 0,
            };
            self.reads[index as usize] = Some(read);
            self.reads_in_flight += 1;
            submit_read(
                &mut self.ring,
                &mut self.in_flight,
                &mut self.reads,
                (fd, self.read_fd_fixed),
                index,
            );
        }
    }

    fn on_read(&mut self, index: u32, res: i32) {
        let mut read = self.reads[index as usize]
            .take()
            .expect("a device read completes once");
        let len = read.req.len;
        let at = read.req.offset + read.done as u64;
        if res > 0 && read.done + (res as usize) < len && read.rounds < MAX_READ_ROUNDS {
            // A short transfer: read the rest from where it stopped.
            read.done += res as usize;
            read.rounds += 1;
            self.reads[index as usize] = Some(read);
            let fd = self.read_fd.expect("reads are submitted with a descriptor");
            return submit_read(
                &mut self.ring,
                &mut self.in_flight,
                &mut self.reads,
                (fd, self.read_fd_fixed),
                index,
            );
        }
        self.free_reads.push(index);
        self.reads_in_flight -= 1;
        let bytes: quiver_engine::Result<&[u8]> = if res < 0 {
            Err(quiver_wal::Error::Io {
                what: format!("io_uring read at offset {at}"),
                source: io::Error::from_raw_os_error(-res),
            }
            .into())
        } else if read.done + res as usize == len {
            Ok(&read.buf[..len])
        } else {
            Err(quiver_wal::Error::ShortIo {
                op: "read",
                offset: read.req.offset,
                done: read.done + res as usize,
                len,
            }
            .into())
        };
        let GetRoute::Loop(gets) = &mut self.dispatch.gets else {
            unreachable!("device reads are made only for the loop's own GETs");
        };
        let finished = gets.complete_read(read.req, bytes);
        self.read_bufs.give(read.buf);
        if let Some(f) = finished {
            self.answer(f);
        }
    }

    fn answer(&mut self, mut f: FinishedGet) {
        let GetRoute::Loop(gets) = &mut self.dispatch.gets else {
            return;
        };
        let conn = f.target.conn;
        let index = conn as u32;
        let Some(slot) = slot_in(&mut self.slots, index, (conn >> 32) as u32) else {
            return;
        };
        slot.conn.inflight = slot.conn.inflight.saturating_sub(1);
        if let Some(key) = gets.diverted(&mut f.target) {
            let d = DivertedGet {
                target: f.target,
                key,
            };
            self.dispatch.divert_get(&mut slot.conn, d);
        } else {
            gets.answer(&mut slot.conn, f);
        }
        self.mark_dirty(index);
    }

    // ---------------------------------------------------------------- wake-ups, deadlines

    fn arm_wake(&mut self) {
        if self.wake_armed {
            return;
        }
        let buf: *mut u64 = &mut *self.wake_buf;
        let entry = opcode::Read::new(Fd(self.wake.as_raw_fd()), buf.cast(), 8)
            .build()
            .user_data(pack(Kind::Wake, 0, 0));
        // SAFETY: the 8-byte box lives as long as the loop, which ends only once every
        // operation completed.
        unsafe { push(&mut self.ring, &mut self.in_flight, &entry) };
        self.wake_armed = true;
    }

    /// Enforces the frame deadline (slow clients) and the idle timeout.
    fn sweep(&mut self, now: Instant) {
        let limits = self.shared.config.limits.clone();
        let deadline = Duration::from_millis(limits.frame_deadline_ms);
        let idle = Duration::from_millis(limits.idle_timeout_ms);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            let conn = &mut slot.conn;
            if slot.abort || conn.closing {
                touch(&mut self.dirty, &mut slot.dirty, index as u32);
                continue;
            }
            if conn
                .frame_started
                .is_some_and(|t| now.duration_since(t) > deadline)
            {
                self.shared
                    .metrics
                    .connections_timed_out
                    .fetch_add(1, Relaxed);
                let msg = format!(
                    "frame not completed within the frame_deadline_ms limit of {} ms",
                    limits.frame_deadline_ms
                );
                conn.push_error(0, 0, StatusCode::LimitExceeded, &msg);
                conn.closing = true;
                conn.rbuf.clear();
                touch(&mut self.dirty, &mut slot.dirty, index as u32);
            } else if conn.inflight == 0
                && conn.queued_output() == 0
                && now.duration_since(conn.last_activity) > idle
            {
                self.shared
                    .metrics
                    .connections_timed_out
                    .fetch_add(1, Relaxed);
                slot.abort = true;
                touch(&mut self.dirty, &mut slot.dirty, index as u32);
            }
        }
    }

    fn begin_shutdown(&mut self) {
        for index in 0..self.slots.len() as u32 {
            if let Some(slot) = self.slots[index as usize].as_mut() {
                slot.conn.closing = true;
                slot.conn.rbuf.clear();
                self.mark_dirty(index);
            }
        }
        if self.accept_armed {
            cancel(
                &mut self.ring,
                &mut self.in_flight,
                pack(Kind::Accept, 0, 0),
            );
        }
    }

    /// Closes every connection and waits until the kernel has given back every buffer;
    /// false when it did not within [`TEARDOWN_WAIT`].
    fn teardown(&mut self) -> bool {
        for slot in self.slots.iter_mut().flatten() {
            slot.abort = true;
        }
        let entry = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(pack(Kind::Cancel, 0, 0));
        // SAFETY: a cancel points at no buffer of ours.
        unsafe { push(&mut self.ring, &mut self.in_flight, &entry) };
        let until = Instant::now() + TEARDOWN_WAIT;
        while self.in_flight > 0 && Instant::now() < until {
            if self.enter(Some(TICK)).is_err() {
                break;
            }
            self.reap();
            let dirty = std::mem::take(&mut self.dirty);
            for index in dirty {
                if let Some(Some(slot)) = self.slots.get_mut(index as usize) {
                    slot.dirty = false;
                    if !slot.recv_armed && !slot.send_in_flight {
                        self.free(index);
                    }
                }
            }
        }
        for index in 0..self.slots.len() as u32 {
            if self.slots[index as usize].is_some() {
                let slot = self.slots[index as usize].as_mut().expect("checked");
                if slot.recv_armed || slot.send_in_flight {
                    continue;
                }
                self.free(index);
            }
        }
        if self.in_flight > 0 {
            tracing::error!(
                in_flight = self.in_flight,
                "io_uring operations still in flight at shutdown; their buffers are leaked"
            );
            return false;
        }
        true
    }
}

/// Marks a slot dirty (the list is reserved for every slot).
fn touch(dirty: &mut Vec<u32>, slot_dirty: &mut bool, index: u32) {
    if !*slot_dirty {
        *slot_dirty = true;
        dirty.push(index);
    }
}

fn slot_in(slots: &mut [Option<Slot>], index: u32, generation: u32) -> Option<&mut Slot> {
    slots
        .get_mut(index as usize)?
        .as_mut()
        .filter(|s| s.generation == generation)
}

/// Cancels the operation packed as `target` (its own completion says nothing we need).
fn cancel(ring: &mut IoUring, in_flight: &mut usize, target: u64) {
    let entry = opcode::AsyncCancel::new(target)
        .build()
        .user_data(pack(Kind::Cancel, 0, 0));
    // SAFETY: a cancel points at no buffer of ours.
    unsafe { push(ring, in_flight, &entry) };
}

fn submit_read(
    ring: &mut IoUring,
    in_flight: &mut usize,
    reads: &mut [Option<InflightRead>],
    (fd, fixed): (RawFd, bool),
    index: u32,
) {
    let read = reads[index as usize].as_mut().expect("a read to submit");
    let rest = &mut read.buf[read.done..read.req.len];
    let (ptr, len) = (rest.as_mut_ptr(), rest.len() as u32);
    let entry = if fixed {
        opcode::Read::new(Fixed(0), ptr, len)
    } else {
        opcode::Read::new(Fd(fd), ptr, len)
    };
    let entry = entry
        .offset(read.req.offset + read.done as u64)
        .build()
        .user_data(pack(Kind::Read, 0, index));
    // SAFETY: the buffer stays in `reads` (its heap memory never moves) until this read's
    // completion takes it out, and the loop ends only once every operation completed.
    unsafe { push(ring, in_flight, &entry) };
}

/// Received bytes for a connection: parsed in place when nothing is buffered before them
/// (the usual case: whole frames, no copy), else appended to its read buffer.
fn feed(dispatch: &mut Dispatch, id: u64, slot: &mut Slot, data: &[u8]) {
    let conn = &mut slot.conn;
    if conn.closing || slot.abort {
        return;
    }
    let now = Instant::now();
    conn.last_activity = now;
    if conn.paused || !conn.rbuf.is_empty() {
        carry(dispatch, conn, data);
        if !conn.paused {
            parse_buffered(dispatch, id, conn);
        }
        return;
    }
    let parsed = handle_frames(dispatch, id, conn, data);
    if !conn.closing && parsed.consumed < data.len() {
        carry(dispatch, conn, &data[parsed.consumed..]);
    }
    conn.paused |= parsed.paused;
    conn.after_parse(parsed.paused, parsed.completed, now);
}

/// Received TLS records for a connection: rustls opens them into its read buffer, whose
/// whole frames are then handled as a plaintext connection's are.
fn feed_sealed(dispatch: &mut Dispatch, id: u64, slot: &mut Slot, data: &[u8]) {
    let conn = &mut slot.conn;
    if conn.closing || slot.abort {
        return;
    }
    conn.last_activity = Instant::now();
    if conn.rbuf.capacity() == 0 {
        conn.rbuf = take_carry(dispatch);
    }
    match conn.take_tls_bytes(data) {
        Err(e) => {
            tracing::debug!(error = %e, "TLS records unreadable; closing");
            slot.abort = true;
        }
        Ok(0) => {}
        Ok(_) if conn.paused || conn.closing => {}
        Ok(_) => parse_buffered(dispatch, id, conn),
    }
}

/// Handles the whole frames of a connection's read buffer.
fn parse_buffered(dispatch: &mut Dispatch, id: u64, conn: &mut Conn) {
    let mut buf = std::mem::take(&mut conn.rbuf);
    let parsed = handle_frames(dispatch, id, conn, &buf);
    buf.drain(..parsed.consumed);
    match carry_pool(dispatch) {
        // An emptied carry buffer goes back to the loop's pool.
        Some(pool) if buf.is_empty() => pool.give(buf),
        _ => conn.rbuf = idle_trimmed(buf),
    }
    conn.paused |= parsed.paused;
    conn.after_parse(parsed.paused, parsed.completed, Instant::now());
}

/// Bytes of send and carry buffers a loop reserves when it starts.
fn gets_pooled_bytes(gets: &GetRoute) -> usize {
    match gets {
        GetRoute::Loop(g) => g.sends.reserved_bytes() + g.carries.reserved_bytes(),
        GetRoute::Pool => 0,
    }
}

/// The loop's send buffers, when it serves GETs itself.
fn send_pool(dispatch: &mut Dispatch) -> Option<&mut BytePool> {
    match &mut dispatch.gets {
        GetRoute::Loop(gets) => Some(&mut gets.sends),
        GetRoute::Pool => None,
    }
}

/// The loop's carry buffers, when it serves GETs itself.
fn carry_pool(dispatch: &mut Dispatch) -> Option<&mut BytePool> {
    match &mut dispatch.gets {
        GetRoute::Loop(gets) => Some(&mut gets.carries),
        GetRoute::Pool => None,
    }
}

fn take_carry(dispatch: &mut Dispatch) -> Vec<u8> {
    carry_pool(dispatch).map_or_else(Vec::new, BytePool::take)
}

fn give_carry(dispatch: &mut Dispatch, buf: Vec<u8>) {
    if let Some(pool) = carry_pool(dispatch) {
        pool.give(buf);
    }
}

/// Appends received bytes that cannot be parsed yet to the connection's read buffer (a
/// pooled carry buffer when it has none).
fn carry(dispatch: &mut Dispatch, conn: &mut Conn, data: &[u8]) {
    if conn.rbuf.capacity() == 0 {
        conn.rbuf = take_carry(dispatch);
    }
    conn.rbuf.extend_from_slice(data);
}

/// The connection's next bytes to send: its oldest filled send buffer, else the one being
/// filled.
fn next_output(conn: &mut Conn) -> Option<Vec<u8>> {
    if let Some(buf) = conn.full.pop_front() {
        conn.full_bytes -= buf.len();
        return Some(buf);
    }
    (!conn.wbuf.is_empty()).then(|| std::mem::take(&mut conn.wbuf))
}

/// Best effort: a fresh socket's send buffer takes this small frame without blocking.
fn refuse(stream: &mut TcpStream, max: u64) {
    let mut frame = Vec::new();
    let msg = format!("connection refused: the server is at its max_connections limit of {max}");
    encode_error(&mut frame, 0, 0, StatusCode::LimitExceeded, &msg);
    let _ = stream.set_nonblocking(true);
    let _ = stream.write(&frame);
}
