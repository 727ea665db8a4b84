//! The event-driven server: an acceptor, a fixed set of network workers (mio), and a
//! bounded pool of engine threads. No thread is ever created per connection.

mod acceptor;
mod auth;
mod conn;
mod dispatch;
mod executor;
mod http;
mod job;
mod metrics;
mod output;
mod stats;
mod status_map;
mod worker;

pub use auth::token_matches;
pub use metrics::{LatencySummary, Metrics};
pub use status_map::engine_error;

use crate::config::ServerConfig;
use crossbeam::channel::unbounded;
use executor::{EnginePool, Mailbox};
use mio::{Poll, Waker};
use quiver_engine::Store;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Longest auth token accepted in configuration and in a handshake.
pub const MAX_TOKEN_BYTES: usize = 1024;
/// Largest body of a connection's frames before its handshake succeeds. A handshake body is
/// a u16 version and a token of at most [`MAX_TOKEN_BYTES`] (1,030 bytes), so a client that
/// has not identified itself can make the server buffer at most this much, not
/// `max_frame_bytes`.
pub const MAX_PRE_HANDSHAKE_FRAME_BYTES: u32 = 4096;
const _: () = assert!(2 + 4 + MAX_TOKEN_BYTES <= MAX_PRE_HANDSHAKE_FRAME_BYTES as usize);

/// State every thread of the server reads.
pub struct Shared {
    pub config: ServerConfig,
    pub store: Arc<Store>,
    pub metrics: Metrics,
    pub shutdown: AtomicBool,
}

/// A running server. Dropping it without [`ServerHandle::shutdown`] leaves threads running.
pub struct ServerHandle {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    acceptor: (JoinHandle<()>, Arc<Waker>),
    workers: Vec<(JoinHandle<()>, Arc<Waker>)>,
    pool: EnginePool,
    http: Option<JoinHandle<()>>,
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
}

/// The standard library listens with a backlog of 128; a burst of connections beyond it would
/// wait for SYN retransmits (a second or more). Linux lets `listen` be called again to raise it
/// (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

fn widen_backlog(listener: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: listen(2) on a socket we own and that is already bound and listening.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "could not raise the listen backlog");
    }
}

/// Binds the listener (and the metrics endpoint, if configured) and starts every thread.
pub fn start(config: ServerConfig, store: Arc<Store>) -> std::io::Result<ServerHandle> {
    let std_listener = std::net::TcpListener::bind(config.listen)?;
    widen_backlog(&std_listener);
    std_listener.set_nonblocking(true)?;
    let local_addr = std_listener.local_addr()?;
    let listener = mio::net::TcpListener::from_std(std_listener);
    let n_workers = config.workers.max(1);
    let metrics_listen = config.metrics;
    let shared = Arc::new(Shared {
        config,
        store,
        metrics: Metrics::default(),
        shutdown: AtomicBool::new(false),
    });

    let mut setups = Vec::with_capacity(n_workers);
    let mut mailboxes = Vec::with_capacity(n_workers);
    let mut inboxes = Vec::with_capacity(n_workers);
    for id in 0..n_workers {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), worker::WAKER)?);
        let (conn_tx, conn_rx) = unbounded();
        let (done_tx, done_rx) = unbounded();
        mailboxes.push(Mailbox {
            tx: done_tx,
            waker: waker.clone(),
        });
        inboxes.push(acceptor::WorkerInbox {
            tx: conn_tx,
            waker: waker.clone(),
        });
        setups.push(worker::WorkerSetup {
            id,
            poll,
            waker,
            new_conns: conn_rx,
            completions: done_rx,
        });
    }
    let pool = EnginePool::start(shared.clone(), Arc::new(mailboxes))?;
    let mut workers = Vec::with_capacity(n_workers);
    for setup in setups {
        let waker = setup.waker.clone();
        let w = worker::Worker::new(setup, shared.clone(), pool.sender());
        workers.push((
            spawn(format!("quiver-net-{}", workers.len()), move || w.run())?,
            waker,
        ));
    }
    let accept_poll = Poll::new()?;
    let accept_waker = Arc::new(Waker::new(accept_poll.registry(), acceptor::WAKER)?);
    let s = shared.clone();
    let acceptor = spawn("quiver-accept".into(), move || {
        acceptor::run(listener, accept_poll, s, inboxes)
    })?;
    let (metrics_addr, http) = match metrics_listen {
        Some(addr) => {
            let (bound, handle) = http::start(addr, shared.clone())?;
            (Some(bound), Some(handle))
        }
        None => (None, None),
    };
    Ok(ServerHandle {
        local_addr,
        metrics_addr,
        shared,
        acceptor: (acceptor, accept_waker),
        workers,
        pool,
        http,
    })
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Stops accepting, lets workers finish in-flight requests and write their responses
    /// (bounded by a grace period), stops the engine pool, and hands back the store so the
    /// caller can close it (flush + checkpoint).
    pub fn shutdown(self) -> Arc<Store> {
        self.shared.shutdown.store(true, Ordering::Release);
        let _ = self.acceptor.1.wake();
        let _ = self.acceptor.0.join();
        for (_, waker) in &self.workers {
            let _ = waker.wake();
        }
        for (handle, _) in self.workers {
            let _ = handle.join();
        }
        self.pool.stop();
        if let Some(h) = self.http {
            let _ = h.join();
        }
        self.shared.store.clone()
    }
}
