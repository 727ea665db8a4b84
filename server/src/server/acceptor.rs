//! The accept loop: admits connections under the connection limit and deals them out to
//! the workers round-robin.

use super::wake::EventFd;
use super::Shared;
use crate::protocol::{encode_error, StatusCode};
use crossbeam::channel::Sender;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::time::Duration;

pub const LISTENER: Token = Token(0);
pub const WAKER: Token = Token(1);
/// Also retries accept after a failure such as EMFILE, which no new event would announce.
const TICK: Duration = Duration::from_millis(200);

pub struct WorkerInbox {
    pub tx: Sender<std::net::TcpStream>,
    pub waker: Arc<EventFd>,
}

pub fn run(
    mut listener: TcpListener,
    mut poll: Poll,
    shared: Arc<Shared>,
    workers: Vec<WorkerInbox>,
) {
    if let Err(e) = poll
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
    {
        tracing::error!(error = %e, "cannot watch the listener; no connections will be accepted");
        return;
    }
    let mut events = Events::with_capacity(64);
    let mut next = 0usize;
    while !shared.shutdown.load(Acquire) {
        if let Err(e) = poll.poll(&mut events, Some(TICK)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!(error = %e, "acceptor poll failed");
                return;
            }
        }
        if shared.shutdown.load(Acquire) {
            break;
        }
        accept_all(&listener, &shared, &workers, &mut next);
    }
}

fn accept_all(listener: &TcpListener, shared: &Shared, workers: &[WorkerInbox], next: &mut usize) {
    let max = u64::from(shared.config.limits.max_connections);
    loop {
        let (mut stream, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                return;
            }
        };
        if shared.metrics.connections_open.load(Relaxed) >= max {
            shared.metrics.connections_refused.fetch_add(1, Relaxed);
            tracing::debug!(%peer, max, "connection refused at the max_connections limit");
            refuse(&mut stream, max);
            continue;
        }
        let _ = stream.set_nodelay(true);
        shared.metrics.connections_open.fetch_add(1, Relaxed);
        shared.metrics.connections_accepted.fetch_add(1, Relaxed);
        let inbox = &workers[*next % workers.len()];
        *next = next.wrapping_add(1);
        // SAFETY: the descriptor comes out of the mio stream, which gives up owning it.
        let stream = unsafe { std::net::TcpStream::from_raw_fd(stream.into_raw_fd()) };
        if inbox.tx.send(stream).is_ok() {
            inbox.waker.wake();
        } else {
            shared.metrics.connections_open.fetch_sub(1, Relaxed);
        }
    }
}

/// Best effort: a fresh socket's send buffer takes this small frame without blocking.
fn refuse(stream: &mut TcpStream, max: u64) {
    let mut frame = Vec::new();
    let msg = format!("connection refused: the server is at its max_connections limit of {max}");
    encode_error(&mut frame, 0, 0, StatusCode::LimitExceeded, &msg);
    let _ = stream.write(&frame);
}
