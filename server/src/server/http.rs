//! A minimal HTTP/1.1 endpoint serving `GET /metrics` in Prometheus text format.
//! One thread, one request per connection, bounded request size and read time.

use super::stats::prometheus_text;
use super::Shared;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Request heads over this size are refused with 431.
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at the shutdown flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

pub fn start(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let handle = std::thread::Builder::new()
        .name("quiver-metrics".into())
        .spawn(move || {
            while !shared.shutdown.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(e) = serve(stream, &shared) {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(ACCEPT_POLL)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        std::thread::sleep(ACCEPT_POLL);
                    }
                }
            }
        })?;
    Ok((local, handle))
}

fn read_head(stream: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD_BYTES {
            return Ok(None);
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(Some(head))
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    match &shared.tls {
        None => respond(stream, shared),
        Some(tls) => {
            let session =
                rustls::ServerConnection::new(tls.config()).map_err(std::io::Error::other)?;
            let mut tls_stream = rustls::StreamOwned::new(session, stream);
            respond(&mut tls_stream, shared)?;
            tls_stream.conn.send_close_notify();
            tls_stream.flush()
        }
    }
}

fn respond(mut stream: impl Read + Write, shared: &Shared) -> std::io::Result<()> {
    let (status, body) = match read_head(&mut stream)? {
        None => (
            "431 Request Header Fields Too Large",
            String::from("request head over 8 KiB\n"),
        ),
        Some(head) if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET / ") => {
            ("200 OK", prometheus_text(shared))
        }
        Some(_) => (
            "404 Not Found",
            String::from("only GET /metrics is served\n"),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())
}
