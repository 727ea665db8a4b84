//! A network worker: one mio event loop serving many connections. It parses frames, answers
//! cheap requests inline, hands engine work to the pool, and writes completions back.

use super::conn::Conn;
use super::dispatch::{answer_busy, Dispatch, GetRoute};
use super::executor::{record_completion, Completion, Envelope};
use super::frames::{handle_frames, idle_trimmed};
use super::wake::EventFd;
use super::Shared;
use crate::protocol::StatusCode;
use crossbeam::channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const WAKER: Token = Token(0);
/// How often deadlines are checked, and the longest a worker sleeps.
const TICK: Duration = Duration::from_millis(100);
/// Bytes read from one connection before the worker serves the others.
const READ_BUDGET: usize = 1 << 20;
const SCRATCH_BYTES: usize = 256 * 1024;
/// How long a shutting-down worker waits for in-flight requests and unwritten responses.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct WorkerSetup {
    pub id: usize,
    pub poll: Poll,
    pub waker: Arc<EventFd>,
    pub new_conns: Receiver<TcpStream>,
    pub completions: Receiver<Completion>,
}

pub struct Worker {
    poll: Poll,
    waker: Arc<EventFd>,
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
        let dispatch = Dispatch::new(setup.id, shared.clone(), pool, GetRoute::Pool);
        Worker {
            poll: setup.poll,
            waker: setup.waker,
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
                self.waker.drain();
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
        while let Ok(stream) = self.new_conns.try_recv() {
            let id = self.next_conn;
            self.next_conn += 1;
            let registered = self.poll.registry().register(
                &mut SourceFd(&stream.as_raw_fd()),
                Token(id as usize),
                Interest::READABLE | Interest::WRITABLE,
            );
            if self.shared.shutdown.load(Acquire) || registered.is_err() {
                self.shared.metrics.connections_open.fetch_sub(1, Relaxed);
                continue;
            }
            let mut conn = Conn::new(stream, Instant::now());
            if let Some(tls) = &self.shared.tls {
                match rustls::ServerConnection::new(tls.config()) {
                    Ok(session) => conn.tls = Some(Box::new(session)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start a TLS session");
                        let _ = self
                            .poll
                            .registry()
                            .deregister(&mut SourceFd(&conn.stream.as_raw_fd()));
                        self.shared.metrics.connections_open.fetch_sub(1, Relaxed);
                        continue;
                    }
                }
            }
            self.conns.insert(id, conn);
        }
    }

    fn drain_completions(&mut self) {
        while let Ok(c) = self.completions.try_recv() {
            record_completion(&self.shared, &c);
            let Some(conn) = self.conns.get_mut(&c.conn) else {
                continue;
            };
            let id = c.conn;
            conn.take_completion(c);
            self.dirty.push(id);
        }
    }

    fn over_limits(&self, conn: &Conn) -> bool {
        let l = &self.shared.config.limits;
        conn.login_pending
            || conn.inflight >= l.max_inflight_per_connection
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
                    if conn.tls.as_ref().is_some_and(|t| t.wants_write()) || conn.tls_failed {
                        self.dirty.push(id);
                    }
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
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let mut buf = std::mem::take(&mut conn.rbuf);
        let parsed = handle_frames(&mut self.dispatch, id, conn, &buf);
        buf.drain(..parsed.consumed);
        conn.rbuf = idle_trimmed(buf);
        conn.paused |= parsed.paused;
        conn.after_parse(parsed.paused, parsed.completed, Instant::now());
    }

    /// Sends this pass's GETs to the engine pool.
    fn flush_gets(&mut self) {
        let mut refused = Vec::new();
        self.dispatch.flush_gets(|t| refused.push(t));
        for t in refused {
            if let Some(conn) = self.conns.get_mut(&t.conn) {
                answer_busy(&self.shared, conn, &t);
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
        if let Some(conn) = self.conns.remove(&id) {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&conn.stream.as_raw_fd()));
            self.shared.metrics.connections_open.fetch_sub(1, Relaxed);
        }
    }
}
