//! One TCP connection: framing, buffered writes, timeouts, the handshake.

use super::{ClientConfig, ClientError, Result};
use crate::protocol::{
    decode_response, encode_request_flags, FrameHeader, HandshakeInfo, Request, Response,
    FLAG_CORRUPT_STATUS, HEADER_LEN, PROTOCOL_VERSION,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Requests are written once this many bytes are queued.
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// Frame limit assumed while reading the handshake response.
const HANDSHAKE_MAX_BODY: u32 = 1 << 20;

/// The byte stream under the frames: plain TCP, or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => &s.sock,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// Bytes one socket read asks for.
const READ_CHUNK_BYTES: usize = 64 * 1024;

pub struct Connection {
    addr: String,
    stream: Transport,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    rpos: usize,
    /// What a socket read lands in before it is appended to `rbuf` (made once: a fresh
    /// 64 KiB array per read cost a memset of 64 KiB per response).
    chunk: Box<[u8]>,
    max_body: u32,
    io_timeout: Option<Duration>,
}

fn io_err(
    addr: &str,
    what: &'static str,
    timeout: Option<Duration>,
    e: std::io::Error,
) -> ClientError {
    if e.kind() == ErrorKind::InvalidData
        && e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
    {
        return ClientError::Tls(e.to_string());
    }
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => ClientError::Timeout {
            what,
            timeout_ms: timeout.map_or(0, |t| t.as_millis() as u64),
        },
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            ClientError::Disconnected
        }
        _ => ClientError::Io {
            addr: addr.to_owned(),
            source: e,
        },
    }
}

impl Connection {
    pub fn open_with_retries(
        addr: &str,
        config: &ClientConfig,
    ) -> Result<(Connection, HandshakeInfo)> {
        let attempts = config.reconnect_attempts.max(1);
        let mut backoff = config.reconnect_backoff;
        let mut last = String::new();
        for attempt in 0..attempts {
            match Connection::open(addr, config) {
                Ok(pair) => return Ok(pair),
                // A refused handshake will be refused again: do not retry it.
                Err(e @ (ClientError::Server { .. } | ClientError::Tls(_))) => return Err(e),
                Err(e) => last = e.to_string(),
            }
            if attempt + 1 < attempts {
                std::thread::sleep(backoff);
                backoff = backoff.saturating_mul(2);
            }
        }
        Err(ClientError::Connect {
            addr: addr.to_owned(),
            attempts,
            last,
        })
    }

    fn open(addr: &str, config: &ClientConfig) -> Result<(Connection, HandshakeInfo)> {
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| ClientError::Io {
                addr: addr.to_owned(),
                source: e,
            })?
            .next()
            .ok_or_else(|| ClientError::Io {
                addr: addr.to_owned(),
                source: ErrorKind::NotFound.into(),
            })?;
        let stream = TcpStream::connect_timeout(&sock, config.connect_timeout)
            .map_err(|e| io_err(addr, "connect", Some(config.connect_timeout), e))?;
        let setup = |s: &TcpStream| -> std::io::Result<()> {
            s.set_nodelay(true)?;
            s.set_read_timeout(config.io_timeout)?;
            s.set_write_timeout(config.io_timeout)
        };
        setup(&stream).map_err(|e| io_err(addr, "socket setup", None, e))?;
        let stream = match &config.tls {
            None => Transport::Plain(stream),
            Some(tls) => {
                let name = crate::tls::server_name(addr).map_err(ClientError::Tls)?;
                let session = rustls::ClientConnection::new(tls.clone(), name)
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                Transport::Tls(Box::new(rustls::StreamOwned::new(session, stream)))
            }
        };
        let mut conn = Connection {
            addr: addr.to_owned(),
            stream,
            wbuf: Vec::with_capacity(WRITE_BATCH_BYTES),
            rbuf: Vec::with_capacity(64 * 1024),
            rpos: 0,
            chunk: vec![0u8; READ_CHUNK_BYTES].into_boxed_slice(),
            max_body: HANDSHAKE_MAX_BODY,
            io_timeout: config.io_timeout,
        };
        let token = config.auth_token.clone().unwrap_or_default();
        conn.queue(
            0,
            &Request::Handshake {
                version: PROTOCOL_VERSION.into(),
                token,
            },
            HANDSHAKE_MAX_BODY,
            0,
        )?;
        conn.flush()?;
        let info = match conn.read_response()? {
            (_, Response::Handshake(info)) => info,
            (_, Response::Error { status, message }) => {
                return Err(ClientError::Server { status, message })
            }
            (id, _) => {
                return Err(ClientError::UnexpectedResponse {
                    request_id: id,
                    expected: 1,
                    got: 0,
                })
            }
        };
        conn.max_body = info.max_frame_bytes;
        Ok((conn, info))
    }

    /// Queues one request; `read_flags` are added to the header of a GET, GET_MANY,
    /// GET_AS_OF or HISTORY.
    pub fn queue(
        &mut self,
        id: u64,
        request: &Request,
        max_body: u32,
        read_flags: u16,
    ) -> Result<()> {
        let start = self.wbuf.len();
        // This client decodes the feature status CORRUPT, so it asks for it.
        let flags = match request {
            Request::Get { .. } | Request::GetMany { .. } => FLAG_CORRUPT_STATUS | read_flags,
            Request::GetAsOf(_) | Request::History(_) => read_flags,
            _ => 0,
        };
        encode_request_flags(id, request, flags, &mut self.wbuf);
        let len = self.wbuf.len() - start - HEADER_LEN;
        if len > max_body as usize {
            self.wbuf.truncate(start);
            return Err(ClientError::RequestTooLarge { len, max: max_body });
        }
        if self.wbuf.len() >= WRITE_BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// True when the server has closed the connection (e.g. the idle timeout) and nothing is
    /// left to read: a cheap check before reusing a quiet connection.
    pub fn closed_by_peer(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut byte = 0u8;
        // SAFETY: recv writes at most 1 byte into `byte`, which outlives the call; MSG_PEEK
        // leaves the socket's data in place and MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::recv(
                self.stream.tcp().as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n == 0 && self.rpos == self.rbuf.len()
    }

    pub fn flush(&mut self) -> Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let r = self.stream.write_all(&self.wbuf);
        self.wbuf.clear();
        r.map_err(|e| io_err(&self.addr, "write", self.io_timeout, e))
    }

    fn fill(&mut self, need: usize) -> Result<()> {
        if self.rpos > 0 && self.rbuf.len() - self.rpos < need {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        while self.rbuf.len() - self.rpos < need {
            match self.stream.read(&mut self.chunk) {
                Ok(0) => return Err(ClientError::Disconnected),
                Ok(n) => self.rbuf.extend_from_slice(&self.chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(&self.addr, "a response", self.io_timeout, e)),
            }
        }
        Ok(())
    }

    /// Reads one response frame.
    pub fn read_response(&mut self) -> Result<(u64, Response)> {
        self.fill(HEADER_LEN)?;
        let head: [u8; HEADER_LEN] = self.rbuf[self.rpos..self.rpos + HEADER_LEN]
            .try_into()
            .expect("fill() made HEADER_LEN bytes available");
        if matches!(self.stream, Transport::Plain(_)) && crate::tls::looks_like_tls_record(&head) {
            return Err(ClientError::Tls(format!(
                "{} answered with a TLS record: it speaks TLS, connect with TLS (--tls, --ca)",
                self.addr
            )));
        }
        let header = FrameHeader::decode(&head, self.max_body)?;
        let total = HEADER_LEN + header.body_len as usize;
        self.fill(total)?;
        let body = &self.rbuf[self.rpos + HEADER_LEN..self.rpos + total];
        let response = decode_response(&header, body)?;
        self.rpos += total;
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        }
        Ok((header.request_id, response))
    }
}
