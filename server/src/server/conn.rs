//! One client connection: its buffers, flow-control state and deadlines.

use super::output::OutputGauge;
use crate::protocol::{encode_error, DecodeError, FrameHeader, StatusCode, HEADER_LEN};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

/// Capacity the plaintext queue of a TLS connection keeps once sealed (the io_uring loop
/// encodes its GET responses into it, turn after turn).
const SEALED_WBUF_KEEP_BYTES: usize = 64 << 10;

/// The result of looking at the front of a read buffer.
pub enum NextFrame {
    /// A whole frame: its header, and the end of its body in the buffer.
    Complete(FrameHeader, usize),
    /// More bytes are needed.
    Incomplete,
    /// The stream can no longer be split into frames; the request id is a best guess.
    Broken(DecodeError, u64),
}

/// Splits the next frame off `buf` (which starts at a frame boundary).
pub fn next_frame(buf: &[u8], max_body: u32) -> NextFrame {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return NextFrame::Incomplete;
    };
    match FrameHeader::decode(head, max_body) {
        Ok(h) => {
            let end = HEADER_LEN + h.body_len as usize;
            if buf.len() >= end {
                NextFrame::Complete(h, end)
            } else {
                NextFrame::Incomplete
            }
        }
        Err(e) => {
            let mut id = [0u8; 8];
            id.copy_from_slice(&head[12..20]);
            NextFrame::Broken(e, u64::from_le_bytes(id))
        }
    }
}

pub struct Conn {
    /// Non-blocking under the epoll loop; the io_uring loop only hands its descriptor to the
    /// kernel.
    pub stream: TcpStream,
    /// Received bytes not yet parsed; always starts at a frame boundary.
    pub rbuf: Vec<u8>,
    /// Response bytes; `wbuf[wpos..]` is still to be written.
    pub wbuf: Vec<u8>,
    /// The io_uring loop's filled send buffers waiting for the send in flight to end, oldest
    /// first (their bytes come before `wbuf`'s); `full_bytes` bytes in all. Its capacity is
    /// reserved when the loop adopts the connection and never grows.
    pub full: VecDeque<Vec<u8>>,
    pub full_bytes: usize,
    pub wpos: usize,
    /// Response bytes already handed to the kernel and not yet confirmed sent (the io_uring
    /// loop's send in flight; always 0 under the epoll loop).
    pub sending: usize,
    /// Requests handed to the engine pool (or waiting for the device) and not yet answered.
    pub inflight: u32,
    /// Bytes of engine responses the io_uring loop encoded while parsing the current batch
    /// of frames (GETs served from memory at once). Like the responses of requests handed to
    /// the pool, they do not stop the admission of the batch's later frames; those are
    /// answered BUSY at execution when the output is over its limit (docs/PROTOCOL.md).
    pub batch_engine_bytes: usize,
    pub handshaken: bool,
    /// The TLS session when the listener speaks TLS: `rbuf` and `wbuf` then hold plaintext,
    /// and the socket carries TLS records (written by rustls under the epoll loop, sealed
    /// into the send buffer under the io_uring loop).
    pub tls: Option<Box<rustls::ServerConnection>>,
    /// TLS records refused: a last alert (or a plaintext error frame) is being sent before
    /// the connection closes.
    pub tls_failed: bool,
    /// TLS bytes received so far (the first ones tell a plaintext client apart).
    pub tls_bytes_seen: u64,
    /// A password login is being checked on an engine thread: no frame is parsed (nor more
    /// bytes read) until its answer arrives.
    pub login_pending: bool,
    /// Who the handshake identified (`None` before it).
    pub access: Option<crate::security::Access>,
    /// Stop reading and close once the queued responses are written and nothing is in flight.
    pub closing: bool,
    /// Reading stopped at a flow-control limit (in-flight requests or queued output).
    pub paused: bool,
    pub last_activity: Instant,
    /// When the first byte of the frame now being received arrived.
    pub frame_started: Option<Instant>,
    /// Unsent response bytes, shared with the engine threads building this connection's
    /// responses.
    pub output: Arc<OutputGauge>,
}

/// What a write pass found.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteState {
    Drained,
    Blocked,
}

impl Conn {
    pub fn new(stream: TcpStream, now: Instant) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            full: VecDeque::new(),
            full_bytes: 0,
            wpos: 0,
            sending: 0,
            inflight: 0,
            batch_engine_bytes: 0,
            handshaken: false,
            tls: None,
            tls_failed: false,
            tls_bytes_seen: 0,
            login_pending: false,
            access: None,
            closing: false,
            paused: false,
            last_activity: now,
            frame_started: None,
            output: Arc::default(),
        }
    }

    pub fn queued_output(&self) -> usize {
        let tls_pending = self.tls.as_ref().is_some_and(|t| t.wants_write());
        self.wbuf.len() - self.wpos + self.full_bytes + self.sending + usize::from(tls_pending)
    }

    /// Restarts or stops the slow-client clock after frames were parsed: it runs only while a
    /// partial frame waits for its remaining bytes.
    pub fn after_parse(&mut self, paused: bool, completed: bool, now: Instant) {
        if paused || self.rbuf.is_empty() {
            self.frame_started = None;
        } else if completed || self.frame_started.is_none() {
            self.frame_started = Some(now);
        }
    }

    pub fn push_error(&mut self, opcode: u8, request_id: u64, status: StatusCode, message: &str) {
        encode_error(&mut self.wbuf, opcode, request_id, status, message);
    }

    /// Reads what the socket has, up to `budget` bytes, into `rbuf` through `scratch`.
    /// Returns (bytes read, peer closed, would block).
    pub fn read_some(
        &mut self,
        scratch: &mut [u8],
        budget: usize,
    ) -> std::io::Result<(usize, bool, bool)> {
        if self.tls.is_some() {
            return self.read_tls(scratch, budget);
        }
        let mut total = 0;
        while total < budget {
            match (&self.stream).read(scratch) {
                Ok(0) => return Ok((total, true, false)),
                Ok(n) => {
                    self.rbuf.extend_from_slice(&scratch[..n]);
                    total += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok((total, false, true)),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok((total, false, false))
    }

    /// Writes queued responses until the socket would block or the queue is empty.
    pub fn write_some(&mut self) -> std::io::Result<WriteState> {
        if self.tls.is_some() {
            return self.write_tls();
        }
        while self.wpos < self.wbuf.len() {
            match (&self.stream).write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(WriteState::Blocked),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        // Nothing left to write: free the buffer, so that an idle connection holds no write
        // memory whatever the size of its last responses (the next completion's buffer is
        // taken over whole, without a copy).
        self.wbuf = Vec::new();
        self.wpos = 0;
        Ok(WriteState::Drained)
    }

    /// `read_some` under TLS: records from the socket go through rustls; the plaintext they
    /// carry is appended to `rbuf` (counted against `budget`).
    fn read_tls(
        &mut self,
        scratch: &mut [u8],
        budget: usize,
    ) -> std::io::Result<(usize, bool, bool)> {
        let mut total = 0;
        while total < budget && self.tls.is_some() && !self.tls_failed {
            let n = match (&self.stream).read(scratch) {
                Ok(0) => return Ok((total, true, false)),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok((total, false, true)),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += self.take_tls_bytes(&scratch[..n])?;
        }
        Ok((total, false, false))
    }

    /// Bytes received from the socket of a TLS connection (both event loops): their
    /// plaintext is appended to `rbuf`; returns its length. A first flight that opens with
    /// this protocol's frame magic is a plaintext client: it is told so in its own protocol
    /// (the error frame goes out unencrypted) and the connection closes.
    pub fn take_tls_bytes(&mut self, raw: &[u8]) -> std::io::Result<usize> {
        if self.tls_failed || self.tls.is_none() {
            return Ok(0);
        }
        if self.tls_bytes_seen == 0 && crate::tls::looks_like_plaintext_frame(raw) {
            self.tls = None;
            self.tls_failed = true;
            self.closing = true;
            self.push_error(
                0,
                0,
                StatusCode::BadFrame,
                "this port speaks TLS: connect with TLS (--tls, --ca)",
            );
            return Ok(0);
        }
        self.feed_tls(raw)
    }

    /// Hands received records to rustls and moves the plaintext into `rbuf`.
    fn feed_tls(&mut self, mut raw: &[u8]) -> std::io::Result<usize> {
        let tls = self.tls.as_mut().expect("feed_tls under TLS only");
        self.tls_bytes_seen += raw.len() as u64;
        let mut plain = 0;
        while !raw.is_empty() {
            if tls.read_tls(&mut raw)? == 0 {
                return Err(std::io::Error::other("TLS took no bytes"));
            }
            let state = match tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // rustls queued an alert for the peer: send it, then close.
                    self.tls_failed = true;
                    self.closing = true;
                    tracing::debug!(error = %e, "TLS refused");
                    return Ok(plain);
                }
            };
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = self.rbuf.len();
                self.rbuf.resize(start + n, 0);
                tls.reader().read_exact(&mut self.rbuf[start..])?;
                plain += n;
            }
        }
        Ok(plain)
    }

    /// `write_some` under TLS: queued plaintext goes into rustls, its records to the socket.
    fn write_tls(&mut self) -> std::io::Result<WriteState> {
        let tls = match self.tls.as_mut() {
            Some(t) => t,
            None => return self.write_some(),
        };
        loop {
            let mut fed = 0;
            if self.wpos < self.wbuf.len() && !self.tls_failed {
                fed = tls.writer().write(&self.wbuf[self.wpos..])?;
                self.wpos += fed;
            }
            if tls.wants_write() {
                match tls.write_tls(&mut &self.stream) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(WriteState::Blocked),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            if self.wpos >= self.wbuf.len() || self.tls_failed {
                break;
            }
            if fed == 0 {
                // rustls holds plaintext until its handshake ends; the bytes that end it
                // arrive as a read event, which writes again.
                return Ok(WriteState::Blocked);
            }
        }
        self.wbuf = Vec::new();
        self.wpos = 0;
        Ok(WriteState::Drained)
    }

    /// Under TLS (the io_uring loop): queued plaintext goes into rustls, and the records it
    /// makes (handshake, responses, a last alert) are appended to `out` until it holds about
    /// `max` bytes. Plaintext fed whole leaves `wbuf` empty; what rustls does not take yet
    /// (its handshake has not ended, or `out` is full) stays queued in `wbuf[wpos..]`.
    pub fn seal_into(&mut self, out: &mut Vec<u8>, max: usize) -> std::io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        if self.tls_failed {
            // Nothing more is said over a refused session but its alert.
            self.wbuf.clear();
            self.wpos = 0;
        }
        loop {
            let mut fed = 0;
            if self.wpos < self.wbuf.len() && out.len() < max {
                fed = tls.writer().write(&self.wbuf[self.wpos..])?;
                self.wpos += fed;
            }
            while tls.wants_write() && out.len() < max {
                tls.write_tls(out)?;
            }
            if self.wpos >= self.wbuf.len() || fed == 0 || out.len() >= max {
                break;
            }
        }
        if self.wpos >= self.wbuf.len() {
            if self.wbuf.capacity() > SEALED_WBUF_KEEP_BYTES {
                self.wbuf = Vec::new();
            }
            self.wbuf.clear();
            self.wpos = 0;
        }
        Ok(())
    }

    /// True once a closing connection has nothing left to deliver.
    pub fn finished(&self) -> bool {
        self.closing && self.inflight == 0 && self.queued_output() == 0
    }
}
