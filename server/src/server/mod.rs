//! The event-driven server: one event loop per core (io_uring, or epoll where the kernel
//! lacks what the io_uring loop needs), and a bounded pool of engine threads for the calls
//! that may block. No thread is ever created per connection.

mod acceptor;
mod auth;
pub(crate) mod authorize;
mod byte_pool;
mod commit;
mod conn;
mod dispatch;
mod executor;
mod frames;
mod gets;
mod history;
mod http;
mod job;
mod metrics;
mod output;
mod ring;
mod stats;
mod status_map;
mod training;
mod wake;
mod worker;

pub use auth::token_matches;
pub use metrics::{LatencySummary, Metrics};
pub use status_map::engine_error;

use crate::config::{IoMode, ServerConfig};
use crossbeam::channel::unbounded;
use executor::{EnginePool, Mailbox};
use mio::{Poll, Waker};
use quiver_engine::Store;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use wake::EventFd;

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
    /// The listener's TLS configuration (`None`: plaintext).
    pub tls: Option<crate::tls::ServerTls>,
    /// Users, roles, the audit log and the failed-login limit.
    pub security: crate::security::Security,
    pub shutdown: AtomicBool,
    /// The event loops serving connections.
    pub event_loop: EventLoop,
    /// Cluster mode: the partition map, routing checks and replication (`None`: one node).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// A running server. Dropping it without [`ServerHandle::shutdown`] leaves threads running.
pub struct ServerHandle {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    /// The epoll loops' accepting thread (the io_uring loops accept on their own).
    acceptor: Option<Acceptor>,
    loops: Vec<(JoinHandle<()>, Arc<EventFd>)>,
    pool: EnginePool,
    http: Option<JoinHandle<()>>,
    /// The HTTP/JSON API (`--http`).
    api: Option<crate::http::HttpApi>,
    io: EventLoop,
}

/// Which event loops serve the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventLoop {
    /// One io_uring per loop for sockets and device reads; GETs served on the loop.
    Uring,
    /// mio (epoll) loops, an accepting thread, and every engine call in the pool.
    Epoll,
}

impl EventLoop {
    pub fn name(self) -> &'static str {
        match self {
            EventLoop::Uring => "io_uring",
            EventLoop::Epoll => "epoll",
        }
    }
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

fn new_shared(
    config: ServerConfig,
    store: Arc<Store>,
    event_loop: EventLoop,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> std::io::Result<Arc<Shared>> {
    let audit = crate::security::Audit::new(config.audit_log.clone())
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open the audit log: {e}")))?;
    let security = crate::security::Security::open(
        store.clone(),
        config.auth_token.clone(),
        config.admin_password.as_deref(),
        audit,
    )
    .map_err(std::io::Error::other)?;
    let tls = match &config.tls {
        Some(files) => Some(crate::tls::ServerTls::load(files.clone()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("TLS: {e}"))
        })?),
        None => None,
    };
    Ok(Arc::new(Shared {
        config,
        store,
        metrics: Metrics::default(),
        tls,
        security,
        shutdown: AtomicBool::new(false),
        event_loop,
        cluster,
    }))
}

/// Binds the listener (and the metrics endpoint, if configured) and starts every thread: the
/// io_uring loops where the kernel has what they need (see `ring::check`), the epoll loops
/// otherwise or when configured.
pub fn start(config: ServerConfig, store: Arc<Store>) -> std::io::Result<ServerHandle> {
    let listener = std::net::TcpListener::bind(config.listen)?;
    widen_backlog(&listener);
    let local_addr = listener.local_addr()?;
    let cluster = join_cluster(&config, &store, local_addr)?;
    let metrics_listen = config.metrics;
    let mut running = None;
    if config.io == IoMode::Uring {
        match ring::check() {
            Ok(()) => match start_ring(&listener, config.clone(), store.clone(), cluster.clone()) {
                Ok(r) => running = Some(r),
                Err(e) => tracing::warn!(
                    error = %e,
                    "io_uring event loops failed to start; serving with epoll loops and the engine pool"
                ),
            },
            Err(why) => tracing::warn!(
                reason = %why,
                "io_uring event loops unavailable; serving with epoll loops and the engine pool"
            ),
        }
    }
    let (shared, acceptor, loops, pool, io) = match running {
        Some((shared, loops, pool)) => (shared, None, loops, pool, EventLoop::Uring),
        None => {
            let (shared, acceptor, loops, pool) = start_epoll(listener, config, store, cluster)?;
            (shared, Some(acceptor), loops, pool, EventLoop::Epoll)
        }
    };
    let (metrics_addr, http) = match metrics_listen {
        Some(addr) => {
            let (bound, handle) = http::start(addr, shared.clone())?;
            (Some(bound), Some(handle))
        }
        None => (None, None),
    };
    let api = match shared.config.http {
        Some(addr) => Some(crate::http::start(addr, shared.clone())?),
        None => None,
    };
    Ok(ServerHandle {
        local_addr,
        metrics_addr,
        shared,
        acceptor,
        loops,
        pool,
        http,
        api,
        io,
    })
}

/// Cluster mode: registers this node in etcd and starts the membership and peer threads
/// before any connection is served.
fn join_cluster(
    config: &ServerConfig,
    store: &Arc<Store>,
    local_addr: SocketAddr,
) -> std::io::Result<Option<Arc<crate::cluster::Cluster>>> {
    let Some(cc) = &config.cluster else {
        return Ok(None);
    };
    let cluster = crate::cluster::Cluster::new(
        cc.clone(),
        store.clone(),
        config.durability,
        config.limits.max_frame_bytes,
    )
    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    cluster.start(local_addr).map_err(std::io::Error::other)?;
    Ok(Some(cluster))
}

type Loops = Vec<(JoinHandle<()>, Arc<EventFd>)>;
/// The epoll loops' accepting thread and its waker.
type Acceptor = (JoinHandle<()>, Arc<Waker>);

/// The io_uring loops: the first accepts (blocking listener: io_uring waits on it) and deals
/// connections out. Each loop builds its ring on its own thread and reports back; if any
/// fails, all stop and the caller falls back.
fn start_ring(
    listener: &std::net::TcpListener,
    config: ServerConfig,
    store: Arc<Store>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> std::io::Result<(Arc<Shared>, Loops, EnginePool)> {
    let listener = Arc::new(listener.try_clone()?);
    listener.set_nonblocking(false)?;
    let n = config.workers.max(1);
    let shared = new_shared(config, store, EventLoop::Uring, cluster)?;
    let mut wakes = Vec::with_capacity(n);
    let mut mailboxes = Vec::with_capacity(n);
    let mut inboxes = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let wake = Arc::new(EventFd::new(false)?);
        let (conn_tx, conn_rx) = unbounded();
        let (done_tx, done_rx) = unbounded();
        mailboxes.push(Mailbox {
            tx: done_tx,
            waker: wake.clone(),
        });
        inboxes.push(ring::Inbox {
            tx: conn_tx,
            wake: wake.clone(),
        });
        receivers.push((conn_rx, done_rx));
        wakes.push(wake);
    }
    let pool = EnginePool::start(shared.clone(), Arc::new(mailboxes))?;
    let inboxes = Arc::new(inboxes);
    let (ready_tx, ready_rx) = unbounded::<Result<(), String>>();
    let mut loops = Vec::with_capacity(n);
    for (id, (new_conns, completions)) in receivers.into_iter().enumerate() {
        let setup = ring::LoopSetup {
            id,
            wake: wakes[id].clone(),
            new_conns,
            completions,
            listener: (id == 0).then(|| listener.clone()),
            inboxes: inboxes.clone(),
        };
        let (s, tx, ready) = (shared.clone(), pool.sender(), ready_tx.clone());
        let handle = spawn(
            format!("quiver-loop-{id}"),
            move || match ring::RingLoop::new(setup, s, tx) {
                Ok(l) => {
                    let _ = ready.send(Ok(()));
                    l.run();
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                }
            },
        )?;
        loops.push((handle, wakes[id].clone()));
    }
    let mut failure = None;
    for _ in 0..n {
        if let Ok(Err(e)) | Err(e) = ready_rx.recv().map_err(|e| e.to_string()) {
            failure.get_or_insert(e);
        }
    }
    if let Some(e) = failure {
        shared.shutdown.store(true, Ordering::Release);
        for (handle, wake) in loops {
            wake.wake();
            let _ = handle.join();
        }
        pool.stop();
        return Err(std::io::Error::other(e));
    }
    Ok((shared, loops, pool))
}

/// The epoll loops, their accepting thread, and the engine pool that serves every request.
fn start_epoll(
    listener: std::net::TcpListener,
    config: ServerConfig,
    store: Arc<Store>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> std::io::Result<(Arc<Shared>, Acceptor, Loops, EnginePool)> {
    listener.set_nonblocking(true)?;
    let listener = mio::net::TcpListener::from_std(listener);
    let n_workers = config.workers.max(1);
    let shared = new_shared(config, store, EventLoop::Epoll, cluster)?;
    let mut setups = Vec::with_capacity(n_workers);
    let mut mailboxes = Vec::with_capacity(n_workers);
    let mut inboxes = Vec::with_capacity(n_workers);
    for id in 0..n_workers {
        let poll = Poll::new()?;
        let waker = Arc::new(EventFd::new(true)?);
        poll.registry().register(
            &mut mio::unix::SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&*waker)),
            worker::WAKER,
            mio::Interest::READABLE,
        )?;
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
    Ok((shared, (acceptor, accept_waker), workers, pool))
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the HTTP/JSON API listens (`--http`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(|a| a.local_addr())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Whether the listeners speak TLS.
    pub fn tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// Reads the TLS certificate, key and client CA files again (SIGHUP): new connections
    /// use them, open ones keep their sessions. Also reopens the audit log file.
    pub fn reload(&self) -> Result<(), String> {
        if let Err(e) = self.shared.security.audit.reopen() {
            tracing::error!(error = %e, "cannot reopen the audit log");
        }
        match &self.shared.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// The event loops serving connections (io_uring unless unavailable or configured off).
    pub fn event_loop(&self) -> EventLoop {
        self.io
    }

    /// Stops accepting, lets workers finish in-flight requests and write their responses
    /// (bounded by a grace period), stops the engine pool, and hands back the store so the
    /// caller can close it (flush + checkpoint).
    pub fn shutdown(self) -> Arc<Store> {
        if let Some(cluster) = &self.shared.cluster {
            // Leaves the cluster first: the survivors take this node's partitions at once.
            cluster.stop();
        }
        self.shared.shutdown.store(true, Ordering::Release);
        if let Some(api) = self.api {
            api.stop();
        }
        if let Some((handle, waker)) = self.acceptor {
            let _ = waker.wake();
            let _ = handle.join();
        }
        for (_, wake) in &self.loops {
            wake.wake();
        }
        for (handle, _) in self.loops {
            let _ = handle.join();
        }
        self.pool.stop();
        if let Some(h) = self.http {
            let _ = h.join();
        }
        self.shared.store.clone()
    }
}
