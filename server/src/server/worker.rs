//! A network worker: one mio event loop serving many connections. It parses frames, answers
//! cheap requests inline, hands engine work to the pool, and writes completions back.

use super::conn::{next_frame, Conn, NextFrame};
use super::dispatch::{decode_status, Dispatch, PendingGets};
use super::executor::{submit, Completion, Envelope};
use super::job::Job;
use super::{Shared, MAX_PRE_HANDSHAKE_FRAME_BYTES};
use crate::protocol::{DecodeError, StatusCode, HEADER_LEN};
use crossbeam::channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const WAKER: Token = Token(0);
/// How often deadlines are checked, and the longest a worker sleeps.
const TICK: Duration = Duration::from_millis(100);
/// Bytes read from one connection before the worker serves the others.
const READ_BUDGET: usize = 1 << 20;
const SCRATCH_BYTES: usize = 256 * 1024;
/// Capacity a read buffer holding part of a frame may keep after a larger peak.
const RBUF_KEEP_BYTES: usize = 64 * 1024;
/// How long a shutting-down worker waits for in-flight requests and unwritten responses.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct WorkerSetup {
    pub id: usize,
    pub poll: Poll,
    pub waker: Arc<Waker>,
    pub new_conns: Receiver<TcpStream>,
    pub completions: Receiver<Completion>,
}

pub struct Worker {
    poll: Poll,
    new_conns: Receiver<TcpStream>,
    completions: Receiver<Completion>,
    shared: Arc<Shared>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    dispatch: Dispatch,
    /// Connections with output to write or reading to resume, this pass.
    dirty: Vec<u64>,
    /// Connections that still had bytes to read when their budget ran out.
    again: Vec<u64>,
    scratch: Vec<u8>,
}

impl Worker {
    pub fn new(setup: WorkerSetup, shared: Arc<Shared>, pool: Sender<Envelope>) -> Worker {
        let dispatch = Dispatch {
            worker: setup.id,
            shared: shared.clone(),
            pool,
            pending: HashMap::new(),
        };
        Worker {
            poll: setup.poll,
            new_conns: setup.new_conns,
            completions: setup.completions,
            shared,
            conns: HashMap::new(),
            next_conn: 1,
            dispatch,
            dirty: Vec::new(),
            again: Vec::new(),
            scratch: vec![0; SCRATCH_BYTES],
        }
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut last_sweep = Instant::now();
        let mut shutdown_at: Option<Instant> = None;
        loop {
            let timeout = if self.again.is_empty() && self.dirty.is_empty() {
                TICK
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "worker poll failed; closing its connections");
                    break;
                }
            }
            self.handle_events(&events);
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
                if self.conns.is_empty() || at.elapsed() > SHUTDOWN_GRACE {
                    break;
                }
            }
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        ids.into_iter().for_each(|id| self.close(id));
    }

    fn handle_events(&mut self, events: &Events) {
        for ev in events.iter() {
            if ev.token() == WAKER {
                self.accept_new();
                continue;
            }
            let id = ev.token().0 as u64;
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.drive_read(id);
            }
            if ev.is_writable() {
                self.dirty.push(id);
            }
        }
        for id in std::mem::take(&mut self.again) {
            self.drive_read(id);
        }
    }

    /// Applies completions, writes output, resumes paused readers, and sends batched GETs,
    /// until nothing more can be done without new events.
    fn settle(&mut self) {
        // Bounded so that a steady stream of completions cannot starve socket events.
        for _ in 0..4 {
            self.drain_completions();
            self.process_dirty();
            self.flush_gets();
            if self.dirty.is_empty() && self.completions.is_empty() {
                break;
            }
        }
    }

    fn accept_new(&mut self) {
        while let Ok(mut stream) = self.new_conns.try_recv() {
            let id = self.next_conn;
            self.next_conn += 1;
            let registered = self.poll.registry().register(
                &mut stream,
                Token(id as usize),
                Interest::READABLE | Interest::WRITABLE,
            );
            if self.shared.shutdown.load(Acquire) || registered.is_err() {
                self.shared.metrics.connections_open.fetch_sub(1, Relaxed);
                continue;
            }
            self.conns.insert(id, Conn::new(stream, Instant::now()));
        }
    }

    fn drain_completions(&mut self) {
        while let Ok(c) = self.completions.try_recv() {
            self.record(&c);
            let Some(conn) = self.conns.get_mut(&c.conn) else {
                continue;
            };
            conn.inflight = conn.inflight.saturating_sub(c.finished.len() as u32);
            conn.output.take_built(c.out.len());
            if conn.wbuf.is_empty() {
                conn.wbuf = c.out;
            } else {
                conn.wbuf.extend_from_slice(&c.out);
            }
            conn.output.set_queued(conn.queued_output());
            self.dirty.push(c.conn);
        }
    }

    fn record(&self, c: &Completion) {
        let now = Instant::now();
        let mut run_start = 0;
        for i in 1..=c.finished.len() {
            if i == c.finished.len() || c.finished[i].0 != c.finished[run_start].0 {
                let samples: Vec<(u64, bool)> = c.finished[run_start..i]
                    .iter()
                    .map(|(_, start, failed)| {
                        (now.duration_since(*start).as_micros() as u64, *failed)
                    })
                    .collect();
                self.shared
                    .metrics
                    .record(c.finished[run_start].0, &samples);
                run_start = i;
            }
        }
    }

    fn over_limits(&self, conn: &Conn) -> bool {
        let l = &self.shared.config.limits;
        conn.inflight >= l.max_inflight_per_connection
            || conn.queued_output() as u64 >= l.max_output_bytes_per_connection
    }

    fn process_dirty(&mut self) {
        let mut resumed = std::collections::HashSet::new();
        let mut again = Vec::new();
        while let Some(id) = self.dirty.pop() {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if conn.write_some().is_err() || conn.finished() {
                self.close(id);
                continue;
            }
            conn.output.set_queued(conn.queued_output());
            // A connection paused by flow control may have whole frames buffered and bytes
            // waiting in the socket that no new event will announce: resume it here, once
            // per pass, when it is under its limits again.
            let conn = &self.conns[&id];
            if conn.paused && !conn.closing && !self.over_limits(conn) {
                if !resumed.insert(id) {
                    // Already resumed in this pass and paused again: come back to it in the
                    // next pass, or nothing may ever wake it (its frames are buffered).
                    again.push(id);
                    continue;
                }
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.paused = false;
                }
                self.drive_read(id);
            }
        }
        again.dedup();
        self.dirty.extend(again);
    }

    /// Parses buffered frames and reads more until the socket would block, the connection
    /// is paused by flow control, or its read budget is spent.
    fn drive_read(&mut self, id: u64) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.closing {
                conn.rbuf.clear();
                self.dirty.push(id);
                return;
            }
            let before = conn.wbuf.len();
            self.parse_frames(id);
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.wbuf.len() != before || conn.closing {
                self.dirty.push(id);
            }
            if conn.closing {
                return;
            }
            if self.over_limits(&self.conns[&id]) {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.paused = true;
                }
                return;
            }
            let conn = self.conns.get_mut(&id).expect("checked above");
            match conn.read_some(&mut self.scratch, budget) {
                Ok((n, eof, would_block)) => {
                    if n > 0 {
                        conn.last_activity = Instant::now();
                    }
                    if eof {
                        self.parse_frames(id);
                        // A half-closed client still gets an answer to every whole frame it
                        // sent: while flow control holds frames back, the connection stays
                        // open (paused) and sees the end of stream again when it resumes.
                        if let Some(conn) = self.conns.get_mut(&id) {
                            conn.closing |= !conn.paused;
                        }
                        self.dirty.push(id);
                        return;
                    }
                    if would_block && n == 0 {
                        return;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.parse_frames(id);
                        self.again.push(id);
                        self.dirty.push(id);
                        return;
                    }
                }
                Err(_) => return self.close(id),
            }
        }
    }

    /// Handles every complete frame at the front of the connection's read buffer.
    fn parse_frames(&mut self, id: u64) {
        let limits = self.shared.config.limits.clone();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let buf = std::mem::take(&mut conn.rbuf);
        let mut pos = 0;
        let mut completed = false;
        let mut paused = false;
        while !conn.closing {
            if conn.inflight >= limits.max_inflight_per_connection
                || conn.queued_output() as u64 >= limits.max_output_bytes_per_connection
            {
                paused = true;
                break;
            }
            let max_body = if conn.handshaken {
                limits.max_frame_bytes
            } else {
                MAX_PRE_HANDSHAKE_FRAME_BYTES
            };
            match next_frame(&buf[pos..], max_body) {
                NextFrame::Complete(h, end) => {
                    let body = &buf[pos + HEADER_LEN..pos + end];
                    self.dispatch.on_frame(id, conn, h, body);
                    pos += end;
                    completed = true;
                }
                NextFrame::Incomplete => break,
                NextFrame::Broken(e, request_id) => {
                    self.shared.metrics.frames_malformed.fetch_add(1, Relaxed);
                    let status = decode_status(&e);
                    let message = match e {
                        DecodeError::FrameTooLarge { len, max } if !conn.handshaken => format!(
                            "frame body of {len} bytes before HANDSHAKE exceeds the {max}-byte \
                             limit for frames before a successful handshake"
                        ),
                        e => e.to_string(),
                    };
                    conn.push_error(0, request_id, status, &message);
                    conn.closing = true;
                    pos = buf.len();
                }
            }
        }
        let mut buf = buf;
        buf.drain(..pos);
        conn.rbuf = idle_trimmed(buf);
        conn.paused |= paused;
        // The slow-client clock runs only while a partial frame waits for its remaining bytes.
        if paused || conn.rbuf.is_empty() {
            conn.frame_started = None;
        } else if completed || conn.frame_started.is_none() {
            conn.frame_started = Some(Instant::now());
        }
    }

    /// Sends this pass's GETs to the engine pool, one job per reference list and batch limit.
    fn flush_gets(&mut self) {
        let max = self.shared.config.limits.max_batch_keys as usize;
        let pending: Vec<PendingGets> = self.dispatch.pending.drain().map(|(_, p)| p).collect();
        for PendingGets {
            features,
            mut items,
        } in pending
        {
            while !items.is_empty() {
                let rest = items.split_off(items.len().min(max));
                let job = Job::Gets {
                    features: features.clone(),
                    items,
                };
                items = rest;
                if let Err(env) = submit(
                    &self.dispatch.pool,
                    Envelope {
                        worker: self.dispatch.worker,
                        job,
                    },
                ) {
                    self.answer_busy(env.job);
                }
            }
        }
    }

    fn answer_busy(&mut self, job: Job) {
        let msg = format!(
            "engine queue full ({} jobs); retry later",
            self.shared.config.engine_queue
        );
        for t in job.targets() {
            self.shared.metrics.busy_rejections.fetch_add(1, Relaxed);
            self.shared
                .metrics
                .record(t.opcode, &[(t.start.elapsed().as_micros() as u64, true)]);
            if let Some(conn) = self.conns.get_mut(&t.conn) {
                conn.inflight = conn.inflight.saturating_sub(1);
                conn.push_error(t.opcode as u8, t.request_id, StatusCode::Busy, &msg);
                self.dirty.push(t.conn);
            }
        }
    }

    /// Enforces the frame deadline (slow clients) and the idle timeout.
    fn sweep(&mut self, now: Instant) {
        let limits = &self.shared.config.limits;
        let deadline = Duration::from_millis(limits.frame_deadline_ms);
        let idle = Duration::from_millis(limits.idle_timeout_ms);
        let mut idle_ids = Vec::new();
        for (id, conn) in self.conns.iter_mut() {
            if conn.closing {
                self.dirty.push(*id);
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
                self.dirty.push(*id);
            } else if conn.inflight == 0
                && conn.queued_output() == 0
                && now.duration_since(conn.last_activity) > idle
            {
                idle_ids.push(*id);
            }
        }
        for id in idle_ids {
            self.shared
                .metrics
                .connections_timed_out
                .fetch_add(1, Relaxed);
            self.close(id);
        }
    }

    fn begin_shutdown(&mut self) {
        for (id, conn) in self.conns.iter_mut() {
            conn.closing = true;
            conn.rbuf.clear();
            self.dirty.push(*id);
        }
    }

    fn close(&mut self, id: u64) {
        if let Some(mut conn) = self.conns.remove(&id) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.shared.metrics.connections_open.fetch_sub(1, Relaxed);
        }
    }
}

/// A read buffer after its whole frames were handled: an empty one is freed (an idle
/// connection holds no read memory), and one left holding a small partial frame after a
/// large one gives back the rest of its peak capacity.
fn idle_trimmed(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.is_empty() {
        return Vec::new();
    }
    if buf.capacity() > RBUF_KEEP_BYTES && buf.len() * 4 < buf.capacity() {
        buf.shrink_to(buf.len().max(RBUF_KEEP_BYTES));
    }
    buf
}
