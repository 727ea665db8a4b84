//! The HTTP/JSON API of `quiverd` (`--http ADDR`, off by default; docs/HTTP.md).
//!
//! hyper (HTTP/1.1) on a small tokio runtime of its own: `http_threads` threads serve the
//! sockets, and every engine call runs on the runtime's blocking pool (at most
//! `engine_threads` threads), so neither a device read nor a slow client holds up the binary
//! protocol's event loops, which never see these connections. The same credentials (the
//! server's token, or a user's password: see [`caller`]), the same per-group permissions,
//! the same limits and the same status names as the binary protocol; every answer is JSON.

mod caller;
mod error;
mod feast;
mod groups;
mod metrics;
mod online;
mod request;
mod resolve;
mod values;
mod write;

pub use error::ApiError;
pub use metrics::{Endpoint, HttpMetrics};

use crate::protocol::Permission;
use crate::protocol::StatusCode;
use crate::server::Shared;
use caller::Session;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

/// Largest request head (request line and headers); larger ones are answered 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long shutdown waits for requests in progress before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

type Answer = Response<Full<Bytes>>;

/// The running HTTP API.
pub struct HttpApi {
    local_addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    serving: tokio::task::JoinHandle<()>,
}

/// Binds `addr` and starts serving.
pub fn start(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<HttpApi> {
    let config = &shared.config;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.http_threads.max(1))
        .max_blocking_threads(config.engine_threads.max(1))
        .thread_name("quiver-http")
        .enable_all()
        .build()?;
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let serving = {
        let _guard = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        runtime.spawn(serve(listener, shared, stopped))
    };
    Ok(HttpApi {
        local_addr,
        runtime,
        stop,
        serving,
    })
}

impl HttpApi {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets requests in progress finish (at most [`SHUTDOWN_GRACE`]), closes
    /// every connection, and stops the runtime's threads.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let serving = self.serving;
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(SHUTDOWN_GRACE * 2, serving).await });
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(
        shared.config.limits.max_connections as usize,
    ));
    let header_timeout = Duration::from_millis(shared.config.limits.frame_deadline_ms);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors, most likely: wait instead of spinning.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse_connection(stream, shared.config.limits.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let s = shared.clone();
        // With TLS, the handshake must end within the header deadline too.
        let tls = shared
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.config()));
        tokio::spawn(async move {
            let result = match tls {
                None => {
                    serve_connection(TokioIo::new(stream), s, peer, header_timeout, watcher).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let io = TokioIo::new(tls);
                            serve_connection(io, s, peer, header_timeout, watcher).await
                        }
                        Ok(Err(e)) => Err(format!("TLS handshake refused: {e}")),
                        Err(_) => Err("TLS handshake not finished in time".to_string()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "http connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("http requests still running after the shutdown grace period; closing them");
    }
}

/// Serves one connection's requests (plaintext or TLS) until it closes or the server stops.
async fn serve_connection<I>(
    io: TokioIo<I>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let session = Arc::new(Session::default());
    let service = hyper::service::service_fn(move |req| {
        let (s, session) = (shared.clone(), session.clone());
        async move { Ok::<_, Infallible>(answer(req, s, peer, session).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    watcher.watch(conn).await.map_err(|e| e.to_string())
}

/// A connection over `max_connections`: a 503 and close.
fn refuse_connection(stream: tokio::net::TcpStream, max: u32) {
    let err = ApiError::new(
        StatusCode::Busy,
        format!("the server has max_connections ({max}) HTTP connections open; retry later"),
    );
    let body = err.body();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.try_write(&[head.as_bytes(), &body].concat());
}

fn json(http: u16, body: Vec<u8>) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() =
        hyper::StatusCode::from_u16(http).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn failure(e: &ApiError) -> Answer {
    let mut r = json(e.http, e.body());
    if e.http == 401 {
        let h = r.headers_mut();
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"quiver\", charset=\"UTF-8\""),
        );
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

async fn answer(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    session: Arc<Session>,
) -> Answer {
    let started = Instant::now();
    let endpoint = Endpoint::of(req.uri().path());
    let answer = match route(req, &shared, peer, &session).await {
        Ok(r) => r,
        Err(e) => failure(&e),
    };
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    shared
        .metrics
        .http
        .record(endpoint, answer.status().as_u16(), micros);
    answer
}

async fn route(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    peer: SocketAddr,
    session: &Arc<Session>,
) -> Result<Answer, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if path == "/health" {
        return health(shared, &method);
    }
    let mut caller = caller::identify(req.headers(), shared, Some(peer), session).await?;
    let limits = shared.config.limits.clone();
    match (&method, path.as_str()) {
        (&Method::POST, "/get-online-features") => {
            let body = read_body(req, shared).await?;
            engine(shared, move |s| {
                let op = "http_get_online_features";
                let mut may_read = |g: &str| caller.may(&s.security, Permission::Read, g, op);
                online::get_online_features(&s.store, &limits, &body, &mut may_read)
            })
            .await
        }
        (&Method::POST, "/write-to-online-store") => {
            let body = read_body(req, shared).await?;
            engine(shared, move |s| {
                let op = "http_write_to_online_store";
                let mut may_write = |g: &str| caller.may(&s.security, Permission::Write, g, op);
                write::write_to_online_store(&s.store, &limits, &body, &mut may_write)
            })
            .await
        }
        (&Method::GET, "/groups") => {
            let tag = query_param(req.uri().query(), "tag");
            engine(shared, move |s| {
                let mut shown = |name: &str, tags: &[String]| caller.lists(&s.security, name, tags);
                Ok(groups::list(&s.store, tag.as_deref(), &mut shown))
            })
            .await
        }
        (&Method::GET, p) if p.starts_with("/groups/") => {
            let name = p["/groups/".len()..].to_owned();
            engine(shared, move |s| {
                let op = "http_group_describe";
                let mut may_see =
                    |name: &str, tags: &[String]| caller.may_describe(&s.security, name, tags, op);
                groups::describe(&s.store, &name, &mut may_see)
            })
            .await
        }
        (_, "/get-online-features" | "/write-to-online-store" | "/groups") => Err(ApiError {
            http: 405,
            ..ApiError::invalid(format!("{method} is not served on {path}"))
        }),
        _ => Err(ApiError::new(
            StatusCode::UnknownOpcode,
            format!(
                "no endpoint {method} {path}; served: POST /get-online-features, POST \
                 /write-to-online-store, GET /groups, GET /groups/{{name}}, GET /health"
            ),
        )),
    }
}

fn health(shared: &Shared, method: &Method) -> Result<Answer, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError {
            http: 405,
            ..ApiError::invalid(format!("{method} is not served on /health"))
        });
    }
    if shared.shutdown.load(Ordering::Acquire) {
        return Err(ApiError::new(
            StatusCode::ShuttingDown,
            "the server is shutting down",
        ));
    }
    Ok(json(200, br#"{"status":"SERVING"}"#.to_vec()))
}

/// The request body, at most `max_frame_bytes` (413 above it), complete within
/// `frame_deadline_ms` (408 after it).
async fn read_body(req: Request<Incoming>, shared: &Shared) -> Result<Vec<u8>, ApiError> {
    let limits = &shared.config.limits;
    let max = limits.max_frame_bytes as usize;
    let too_large = |len: String| {
        ApiError::too_large(format!(
            "request body of {len} bytes exceeds the max_frame_bytes limit of {max}"
        ))
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > max as u64) {
        return Err(too_large(len.to_string()));
    }
    let deadline = Duration::from_millis(limits.frame_deadline_ms);
    let body = Limited::new(req.into_body(), max);
    match tokio::time::timeout(deadline, body.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(too_large(format!("more than {max}")))
        }
        Ok(Err(e)) => Err(ApiError::invalid(format!(
            "the request body could not be read: {e}"
        ))),
        Err(_) => Err(ApiError {
            http: 408,
            ..ApiError::limit(format!(
                "the request body was not complete within the frame_deadline_ms limit of {} ms",
                limits.frame_deadline_ms
            ))
        }),
    }
}

/// Runs an engine call on the blocking pool and answers its JSON (or its error).
async fn engine(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> Result<Vec<u8>, ApiError> + Send + 'static,
) -> Result<Answer, ApiError> {
    let s = shared.clone();
    match tokio::task::spawn_blocking(move || f(&s)).await {
        Ok(Ok(body)) => Ok(json(200, body)),
        Ok(Err(e)) => Err(e),
        Err(e) => {
            tracing::error!(error = %e, "http engine call panicked; answering INTERNAL");
            Err(ApiError::new(
                StatusCode::Internal,
                format!("internal error: {e}"),
            ))
        }
    }
}

/// The value of `name` in a query string (no percent-decoding: tags and names are ASCII).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
