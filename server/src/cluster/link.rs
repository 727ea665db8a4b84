//! A master's stream of writes to one replica: one TCP connection, frames sent in the order
//! they were queued, answers matched in that order. A writer thread sends; a reader thread per
//! connection receives. When the connection fails, every write awaiting its answer fails and
//! the next write opens a new connection.

use crate::protocol::{FrameHeader, StatusCode, HEADER_LEN};
use crossbeam::channel::{bounded, Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::{BufWriter, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Writes queued to one replica before further writes are refused.
pub const MAX_QUEUED_WRITES: usize = 65_536;
/// Largest answer frame accepted from a replica.
const MAX_ANSWER_BYTES: u32 = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The outcome of one replicated write: `Err` carries why it is not confirmed.
pub type Ack = Result<(), String>;

struct Outgoing {
    frame: Vec<u8>,
    ack: AckTx,
}

/// Where a write's outcome goes; the link's lag goes down once it is sent (or dropped).
struct AckTx {
    tx: Sender<Ack>,
    _answered: Answered,
}

impl AckTx {
    fn send(self, outcome: Ack) -> Result<(), crossbeam::channel::SendError<Ack>> {
        self.tx.send(outcome)
    }
}

/// Answers still owed by one connection, oldest first.
#[derive(Default)]
struct Pending {
    dead: bool,
    queue: VecDeque<(u64, AckTx)>,
}

/// The stream to replica `node` at peer address `addr`.
pub struct Link {
    pub node: u32,
    pub addr: String,
    tx: Sender<Outgoing>,
    /// Writes queued or sent and not answered yet: the replica's lag.
    unanswered: Arc<AtomicU64>,
}

/// Counts an answer (or a failure) of a queued write off the link's lag.
struct Answered(Arc<AtomicU64>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Link {
    pub fn start(node: u32, addr: String) -> std::io::Result<Arc<Link>> {
        let (tx, rx) = bounded(MAX_QUEUED_WRITES);
        let a = addr.clone();
        std::thread::Builder::new()
            .name(format!("quiver-link-{node}"))
            .spawn(move || send_loop(node, &a, rx))?;
        Ok(Arc::new(Link {
            node,
            addr,
            tx,
            unanswered: Arc::default(),
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
        self.unanswered.fetch_add(1, Ordering::Relaxed);
        let ack = AckTx {
            tx,
            _answered: Answered(self.unanswered.clone()),
        };
        match self.tx.try_send(Outgoing { frame, ack }) {
            Ok(()) => {}
            Err(TrySendError::Full(o)) => {
                let _ = o.ack.send(Err(format!(
                    "{MAX_QUEUED_WRITES} writes already queued to replica node {}",
                    self.node
                )));
            }
            Err(TrySendError::Disconnected(o)) => {
                let _ = o.ack.send(Err(format!(
                    "the stream to replica node {} stopped",
                    self.node
                )));
            }
        }
        rx
    }
}

struct Connection {
    out: BufWriter<TcpStream>,
    pending: Arc<Mutex<Pending>>,
}

fn connect(node: u32, addr: &str) -> Result<Connection, String> {
    let sock = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("peer address {addr} of replica node {node} does not resolve"))?;
    let stream = TcpStream::connect_timeout(&sock, CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot connect to replica node {node} at {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let reader = stream.try_clone().map_err(|e| e.to_string())?;
    let pending = Arc::new(Mutex::new(Pending::default()));
    let p = pending.clone();
    let what = format!("replica node {node} at {addr}");
    std::thread::Builder::new()
        .name(format!("quiver-link-{node}-rx"))
        .spawn(move || receive_loop(reader, &p, &what))
        .map_err(|e| e.to_string())?;
    Ok(Connection {
        out: BufWriter::with_capacity(256 << 10, stream),
        pending,
    })
}

fn send_loop(node: u32, addr: &str, rx: Receiver<Outgoing>) {
    let mut conn: Option<Connection> = None;
    let mut next_id: u64 = 1;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(1023));
        if conn.as_ref().is_some_and(|c| c.pending.lock().dead) {
            conn = None;
        }
        if conn.is_none() {
            match connect(node, addr) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    for o in batch {
                        let _ = o.ack.send(Err(e.clone()));
                    }
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let mut failed = None;
        for mut o in batch {
            let id = next_id;
            next_id += 1;
            o.frame[12..20].copy_from_slice(&id.to_le_bytes());
            {
                let mut p = c.pending.lock();
                if p.dead {
                    let _ = o
                        .ack
                        .send(Err(format!("connection to replica node {node} lost")));
                    continue;
                }
                p.queue.push_back((id, o.ack));
            }
            if let Err(e) = c.out.write_all(&o.frame) {
                failed = Some(e);
                break;
            }
        }
        if failed.is_none() {
            failed = c.out.flush().err();
        }
        if let Some(e) = failed {
            tracing::warn!(node, addr, error = %e, "replication stream failed");
            // The reader sees the shutdown and fails every write still owed an answer.
            let _ = c.out.get_ref().shutdown(Shutdown::Both);
            conn = None;
        }
    }
}

fn receive_loop(mut stream: TcpStream, pending: &Mutex<Pending>, what: &str) {
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
        let Some((id, ack)) = pending.lock().queue.pop_front() else {
            break format!("{what} answered a write that was not sent");
        };
        if id != h.request_id {
            break format!("{what} answered write {} before write {id}", h.request_id);
        }
        let outcome = if h.status == StatusCode::Ok as u16 {
            Ok(())
        } else {
            let status = StatusCode::from_u16(h.status).map_or("unknown status", |s| s.name());
            Err(format!(
                "{what} refused it: {status}: {}",
                String::from_utf8_lossy(&body)
            ))
        };
        let _ = ack.send(outcome);
    };
    let _ = stream.shutdown(Shutdown::Both);
    let mut p = pending.lock();
    p.dead = true;
    for (_, ack) in p.queue.drain(..) {
        let _ = ack.send(Err(why.clone()));
    }
}
