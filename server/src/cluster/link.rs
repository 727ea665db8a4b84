//! A master's stream of writes to one replica: one TCP connection at a time, frames sent in
//! the order they were queued, answers matched in that order. A writer thread sends; a reader
//! thread per connection receives.
//!
//! Every frame is kept until the replica answers it. When a connection fails, nothing is
//! failed: the writer connects again and sends every frame still unanswered, in order, before
//! any newer one, so a replica that was away for a moment (a broken connection, a stall
//! shorter than its lease) catches up from where it stopped, and the writes waiting for it
//! are confirmed, not refused. A replica applies a resent frame it had already applied (its
//! answer was lost) a second time, with the same effect: the resent frames are a suffix of
//! the stream, applied again in order, and a replicated write replaces only older event times,
//! deletes, copies and resets of a partition are repeatable. What waits for the replica is
//! bounded ([`MAX_UNANSWERED_WRITES`], [`MAX_UNANSWERED_BYTES`]): past either, every frame
//! waiting is given up (its write refused), as when the replica is gone for good.
//!
//! A write's outcome goes where its sender asked: to a channel, or to a callback run on the
//! thread that learns it (the reader, on an answer), so a master's engine thread need not wait
//! for its replicas. A frame not answered within the link's answer timeout (the lease TTL) has
//! its outcome given as a failure then, by a watchdog thread, whatever the writer and reader
//! are blocked on; the frame itself stays owed and is sent again on the next connection.

use crate::protocol::{FrameHeader, StatusCode, HEADER_LEN};
use crossbeam::channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::{BufWriter, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Writes queued to one replica and not yet taken by its writer thread.
pub const MAX_QUEUED_WRITES: usize = 65_536;
/// Writes sent (or waiting for a connection) and not answered, per replica: past it, all are
/// given up.
pub const MAX_UNANSWERED_WRITES: usize = 65_536;
/// Bytes of those writes, per replica.
pub const MAX_UNANSWERED_BYTES: usize = 64 << 20;
/// Largest answer frame accepted from a replica.
const MAX_ANSWER_BYTES: u32 = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the writer looks for a broken connection when no write arrives.
const TICK: Duration = Duration::from_millis(20);
/// Pause after a failed connection attempt, doubled up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(1);

/// The outcome of one replicated write: `Err` carries why it is not confirmed.
pub type Ack = Result<(), String>;

/// A callback given a write's outcome, on whichever thread learns it.
pub type OnAck = Box<dyn FnOnce(Ack) + Send>;

struct Outgoing {
    frame: Vec<u8>,
    ack: AckTx,
}

enum Sink {
    Channel(Sender<Ack>),
    Call(OnAck),
}

/// Where a write's outcome goes; the link's lag goes down once it is given. One dropped
/// without an outcome (a stream thread that panicked) gives a failure, so a write waiting
/// for it is refused rather than never answered.
struct AckTx {
    sink: Option<Sink>,
    _answered: Answered,
}

impl AckTx {
    fn send(mut self, outcome: Ack) {
        if let Some(sink) = self.sink.take() {
            give(sink, outcome);
        }
    }
}

impl Drop for AckTx {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            give(
                sink,
                Err("the replication stream dropped the write".to_string()),
            );
        }
    }
}

fn give(sink: Sink, outcome: Ack) {
    match sink {
        Sink::Channel(tx) => {
            let _ = tx.send(outcome);
        }
        Sink::Call(f) => f(outcome),
    }
}

/// A frame sent (or waiting for a connection) and not answered yet.
struct Unanswered {
    id: u64,
    frame: Arc<[u8]>,
    /// `None` once its outcome was given as a timeout: the frame stays owed.
    ack: Option<AckTx>,
    /// When the writer took it.
    queued: Instant,
}

/// The frames a replica owes answers for, oldest first, and the connection they are awaited
/// on.
#[derive(Default)]
struct Owed {
    frames: VecDeque<Unanswered>,
    bytes: usize,
    /// The connection whose answers are awaited: answers read from an older one are not
    /// matched.
    conn: u64,
    /// That connection failed: the writer connects again and sends every frame again.
    broken: bool,
    /// How many frames at the front had their outcome given as a timeout.
    timed_out: usize,
}

impl Owed {
    /// Fails every frame owed (they are not sent again) with `why`.
    fn give_up(&mut self, why: &str) -> Vec<(AckTx, Ack)> {
        self.bytes = 0;
        self.timed_out = 0;
        self.frames
            .drain(..)
            .filter_map(|u| u.ack)
            .map(|a| (a, Err(why.to_string())))
            .collect()
    }

    /// Takes the outcomes of frames queued before `before` that are still unanswered.
    fn time_out(&mut self, before: Instant, why: &str) -> Vec<(AckTx, Ack)> {
        let mut out = Vec::new();
        while let Some(u) = self.frames.get_mut(self.timed_out) {
            if u.queued >= before {
                break;
            }
            if let Some(a) = u.ack.take() {
                out.push((a, Err(why.to_string())));
            }
            self.timed_out += 1;
        }
        out
    }
}

/// Gives outcomes taken under the owed list's lock, after it was released (a callback may
/// take other locks).
fn deliver(outcomes: Vec<(AckTx, Ack)>) {
    for (ack, outcome) in outcomes {
        ack.send(outcome);
    }
}

/// The stream to replica `node` at peer address `addr`.
pub struct Link {
    pub node: u32,
    pub addr: String,
    tx: Sender<Outgoing>,
    /// Writes queued or sent and not answered yet: the replica's lag.
    unanswered: Arc<AtomicU64>,
    /// The current connection, shut down when the link is dropped, so that a writer blocked
    /// on a replica that reads nothing lets go (and with it the writes it holds).
    socket: Socket,
}

type Socket = Arc<Mutex<Option<TcpStream>>>;

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(s) = self.socket.lock().take() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A replica that reads nothing for this long (or the answer timeout, if longer) is taken
/// for a broken connection: its frames go again on the next one.
const MIN_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the watchdog looks for frames unanswered past the timeout.
const WATCH: Duration = Duration::from_millis(50);

/// Counts an answer (or a failure) of a queued write off the link's lag.
struct Answered(Arc<AtomicU64>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Link {
    /// Starts the stream; a frame unanswered for `answer_timeout` has its outcome given as a
    /// failure (it stays owed).
    pub fn start(node: u32, addr: String, answer_timeout: Duration) -> std::io::Result<Arc<Link>> {
        let (tx, rx) = bounded(MAX_QUEUED_WRITES);
        let a = addr.clone();
        let owed: Arc<Mutex<Owed>> = Arc::default();
        let watched = Arc::downgrade(&owed);
        let socket: Socket = Arc::default();
        let current = socket.clone();
        let write_timeout = answer_timeout.max(MIN_WRITE_TIMEOUT);
        std::thread::Builder::new()
            .name(format!("quiver-link-{node}"))
            .spawn(move || send_loop(node, &a, rx, owed, write_timeout, &current))?;
        let why = format!(
            "replica node {node} at {addr} did not answer within {} s",
            answer_timeout.as_secs_f64()
        );
        std::thread::Builder::new()
            .name(format!("quiver-link-{node}-wd"))
            .spawn(move || watch(&watched, answer_timeout, &why))?;
        Ok(Arc::new(Link {
            node,
            addr,
            tx,
            unanswered: Arc::default(),
            socket,
        }))
    }

    /// Writes queued or sent to the replica and not answered yet.
    pub fn unanswered(&self) -> u64 {
        self.unanswered.load(Ordering::Relaxed)
    }

    /// Queues one REPLICATE frame (request id patched in by the sender); the receiver yields
    /// its outcome.
    pub fn send(&self, frame: Vec<u8>) -> Receiver<Ack> {
        let (tx, rx) = bounded(1);
        self.queue(frame, Sink::Channel(tx));
        rx
    }

    /// Queues one REPLICATE frame; `on_ack` is given its outcome, on the thread that learns it
    /// (this one when the queue refuses the frame).
    pub fn send_then(&self, frame: Vec<u8>, on_ack: OnAck) {
        self.queue(frame, Sink::Call(on_ack));
    }

    fn queue(&self, frame: Vec<u8>, sink: Sink) {
        self.unanswered.fetch_add(1, Ordering::Relaxed);
        let ack = AckTx {
            sink: Some(sink),
            _answered: Answered(self.unanswered.clone()),
        };
        match self.tx.try_send(Outgoing { frame, ack }) {
            Ok(()) => {}
            Err(TrySendError::Full(o)) => o.ack.send(Err(format!(
                "{MAX_QUEUED_WRITES} writes already queued to replica node {}",
                self.node
            ))),
            Err(TrySendError::Disconnected(o)) => o.ack.send(Err(format!(
                "the stream to replica node {} stopped",
                self.node
            ))),
        }
    }
}

/// Gives the outcome of frames unanswered for `timeout` as `why`, until the stream is gone.
fn watch(owed: &Weak<Mutex<Owed>>, timeout: Duration, why: &str) {
    loop {
        std::thread::sleep(WATCH);
        let Some(owed) = owed.upgrade() else { return };
        let Some(before) = Instant::now().checked_sub(timeout) else {
            continue;
        };
        let outcomes = owed.lock().time_out(before, why);
        drop(owed);
        if !outcomes.is_empty() {
            tracing::warn!(
                count = outcomes.len(),
                "{why}: those writes are not acknowledged"
            );
        }
        deliver(outcomes);
    }
}

/// The writer's side of one connection.
struct Connection {
    id: u64,
    out: BufWriter<TcpStream>,
}

fn connect(
    node: u32,
    addr: &str,
    id: u64,
    owed: &Arc<Mutex<Owed>>,
    write_timeout: Duration,
    current: &Socket,
) -> Result<Connection, String> {
    let sock = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("peer address {addr} of replica node {node} does not resolve"))?;
    let stream = TcpStream::connect_timeout(&sock, CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot connect to replica node {node} at {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    // A replica that reads nothing for that long is treated as a broken connection: the
    // writer never blocks past it (the frames stay owed and go again on the next one).
    let _ = stream.set_write_timeout(Some(write_timeout));
    let reader = stream.try_clone().map_err(|e| e.to_string())?;
    *current.lock() = stream.try_clone().ok();
    {
        let mut o = owed.lock();
        o.conn = id;
        o.broken = false;
    }
    let o = owed.clone();
    let what = format!("replica node {node} at {addr}");
    std::thread::Builder::new()
        .name(format!("quiver-link-{node}-rx"))
        .spawn(move || receive_loop(reader, &o, id, &what))
        .map_err(|e| e.to_string())?;
    Ok(Connection {
        id,
        out: BufWriter::with_capacity(256 << 10, stream),
    })
}

/// Writes `frames` on `c`, then flushes; on failure the connection is marked broken (its
/// frames stay owed) and closed.
fn write_frames<'a>(
    c: &mut Connection,
    frames: impl IntoIterator<Item = &'a [u8]>,
    owed: &Mutex<Owed>,
    node: u32,
) -> bool {
    let mut failed = None;
    for f in frames {
        if let Err(e) = c.out.write_all(f) {
            failed = Some(e);
            break;
        }
    }
    let failed = failed.or_else(|| c.out.flush().err());
    let Some(e) = failed else {
        return true;
    };
    tracing::warn!(node, error = %e, "replication stream failed; unanswered writes go again on the next connection");
    // The reader sees the shutdown and stops; the frames stay owed.
    let _ = c.out.get_ref().shutdown(Shutdown::Both);
    let mut o = owed.lock();
    if o.conn == c.id {
        o.broken = true;
    }
    false
}

fn send_loop(
    node: u32,
    addr: &str,
    rx: Receiver<Outgoing>,
    owed: Arc<Mutex<Owed>>,
    write_timeout: Duration,
    current: &Socket,
) {
    let mut conn: Option<Connection> = None;
    let mut next_id: u64 = 1;
    let mut next_conn: u64 = 1;
    let mut retry = FIRST_RETRY;
    let mut next_attempt = Instant::now();
    loop {
        let mut batch: Vec<Outgoing> = match rx.recv_timeout(TICK) {
            Ok(first) => vec![first],
            Err(RecvTimeoutError::Timeout) => Vec::new(),
            Err(RecvTimeoutError::Disconnected) => {
                let outcomes = owed
                    .lock()
                    .give_up(&format!("the stream to replica node {node} stopped"));
                deliver(outcomes);
                // Ends the reader thread, which holds the socket's other handle.
                if let Some(c) = &conn {
                    let _ = c.out.get_ref().shutdown(Shutdown::Both);
                }
                return;
            }
        };
        batch.extend(rx.try_iter().take(1023));
        // Owed first, in order: each new frame joins the end of the owed list.
        let mut fresh: Vec<Arc<[u8]>> = Vec::with_capacity(batch.len());
        let mut refused = Vec::new();
        {
            let now = Instant::now();
            let mut o = owed.lock();
            for mut out in batch {
                let id = next_id;
                next_id += 1;
                out.frame[12..20].copy_from_slice(&id.to_le_bytes());
                if o.frames.len() >= MAX_UNANSWERED_WRITES
                    || o.bytes + out.frame.len() > MAX_UNANSWERED_BYTES
                {
                    let why = format!(
                        "replica node {node} at {addr} has not answered {} writes ({} bytes; \
                         the limits are {MAX_UNANSWERED_WRITES} writes and \
                         {MAX_UNANSWERED_BYTES} bytes): they are given up",
                        o.frames.len(),
                        o.bytes
                    );
                    tracing::warn!(node, addr, "{why}");
                    refused.extend(o.give_up(&why));
                    refused.push((out.ack, Err(why)));
                    fresh.clear();
                    continue;
                }
                let frame: Arc<[u8]> = out.frame.into();
                o.bytes += frame.len();
                fresh.push(frame.clone());
                o.frames.push_back(Unanswered {
                    id,
                    frame,
                    ack: Some(out.ack),
                    queued: now,
                });
            }
            if o.broken {
                conn = None;
            }
        }
        deliver(refused);
        if conn.is_none() {
            // Frames wait for the next connection, which sends every owed one.
            fresh.clear();
            let owes = !owed.lock().frames.is_empty();
            if !owes || Instant::now() < next_attempt {
                continue;
            }
            let id = next_conn;
            next_conn += 1;
            match connect(node, addr, id, &owed, write_timeout, current) {
                Ok(mut c) => {
                    retry = FIRST_RETRY;
                    let all: Vec<Arc<[u8]>> =
                        owed.lock().frames.iter().map(|u| u.frame.clone()).collect();
                    if write_frames(&mut c, all.iter().map(|f| &f[..]), &owed, node) {
                        conn = Some(c);
                    }
                }
                Err(e) => {
                    tracing::debug!(node, error = %e, "replica unreachable; writes wait for it");
                    next_attempt = Instant::now() + retry;
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
            continue;
        }
        let c = conn.as_mut().expect("checked above");
        if !fresh.is_empty() && !write_frames(c, fresh.iter().map(|f| &f[..]), &owed, node) {
            conn = None;
        }
    }
}

/// Matches connection `conn`'s answers with the owed frames, oldest first. When it fails, the
/// connection is marked broken (if still the current one) and the frames stay owed.
fn receive_loop(stream: TcpStream, owed: &Mutex<Owed>, conn: u64, what: &str) {
    // Buffered: the answers to a batch of frames arrive together and are read with one call.
    let mut stream = std::io::BufReader::with_capacity(64 << 10, stream);
    let why = loop {
        let mut head = [0u8; HEADER_LEN];
        if let Err(e) = stream.read_exact(&mut head) {
            break format!("connection to {what} lost: {e}");
        }
        let h = match FrameHeader::decode(&head, MAX_ANSWER_BYTES) {
            Ok(h) => h,
            Err(e) => break format!("{what} sent a bad frame: {e}"),
        };
        let mut body = vec![0u8; h.body_len as usize];
        if let Err(e) = stream.read_exact(&mut body) {
            break format!("connection to {what} lost: {e}");
        }
        let mut o = owed.lock();
        if o.conn != conn {
            break "a newer connection replaced this one".to_string();
        }
        let Some(front) = o.frames.front() else {
            break format!("{what} answered a write that was not sent");
        };
        if front.id != h.request_id {
            break format!(
                "{what} answered write {} before write {}",
                h.request_id, front.id
            );
        }
        let u = o.frames.pop_front().expect("checked above");
        o.bytes -= u.frame.len();
        o.timed_out = o.timed_out.saturating_sub(1);
        drop(o);
        let outcome = if h.status == StatusCode::Ok as u16 {
            Ok(())
        } else {
            let status = StatusCode::from_u16(h.status).map_or("unknown status", |s| s.name());
            Err(format!(
                "{what} refused it: {status}: {}",
                String::from_utf8_lossy(&body)
            ))
        };
        if let Some(ack) = u.ack {
            ack.send(outcome);
        }
    };
    tracing::debug!(reason = %why, "replication connection closed");
    let _ = stream.get_ref().shutdown(Shutdown::Both);
    let mut o = owed.lock();
    if o.conn == conn {
        o.broken = true;
    }
}
