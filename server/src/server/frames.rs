//! Splitting a connection's received bytes into frames and handing each to dispatch, under
//! the connection's flow-control limits: the same for both event loops.

use super::conn::{next_frame, Conn, NextFrame};
use super::dispatch::{decode_status, Dispatch};
use super::MAX_PRE_HANDSHAKE_FRAME_BYTES;
use crate::protocol::{DecodeError, HEADER_LEN};
use std::sync::atomic::Ordering::Relaxed;

/// Capacity a read buffer holding part of a frame may keep after a larger peak.
const RBUF_KEEP_BYTES: usize = 64 * 1024;

/// A read buffer after its whole frames were handled: an empty one is freed (an idle
/// connection holds no read memory), and one left holding a small partial frame after a
/// large one gives back the rest of its peak capacity.
pub fn idle_trimmed(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.is_empty() {
        return Vec::new();
    }
    if buf.capacity() > RBUF_KEEP_BYTES && buf.len() * 4 < buf.capacity() {
        buf.shrink_to(buf.len().max(RBUF_KEEP_BYTES));
    }
    buf
}

/// What [`handle_frames`] did with a buffer.
pub struct Parsed {
    /// Bytes consumed from the front (whole frames; everything once the stream broke).
    pub consumed: usize,
    /// It stopped at a flow-control limit (requests in flight or queued output).
    pub paused: bool,
    /// At least one whole frame was handled.
    pub completed: bool,
}

/// Handles every complete frame at the front of `buf` (which starts at a frame boundary)
/// until the connection closes or reaches a flow-control limit.
pub fn handle_frames(dispatch: &mut Dispatch, id: u64, conn: &mut Conn, buf: &[u8]) -> Parsed {
    let shared = dispatch.shared.clone();
    let limits = &shared.config.limits;
    let mut parsed = Parsed {
        consumed: 0,
        paused: false,
        completed: false,
    };
    conn.batch_engine_bytes = 0;
    while !conn.closing {
        if conn.login_pending {
            parsed.paused = true;
            break;
        }
        let admitted_output = conn.queued_output().saturating_sub(conn.batch_engine_bytes);
        if conn.inflight >= limits.max_inflight_per_connection
            || admitted_output as u64 >= limits.max_output_bytes_per_connection
        {
            parsed.paused = true;
            break;
        }
        let max_body = if conn.handshaken {
            limits.max_frame_bytes
        } else {
            MAX_PRE_HANDSHAKE_FRAME_BYTES
        };
        let pos = parsed.consumed;
        match next_frame(&buf[pos..], max_body) {
            NextFrame::Complete(h, end) => {
                let body = &buf[pos + HEADER_LEN..pos + end];
                dispatch.on_frame(id, conn, h, body);
                parsed.consumed += end;
                parsed.completed = true;
            }
            NextFrame::Incomplete => break,
            NextFrame::Broken(e, request_id) => {
                shared.metrics.frames_malformed.fetch_add(1, Relaxed);
                let status = decode_status(&e);
                let message = match e {
                    DecodeError::FrameTooLarge { len, max } if !conn.handshaken => format!(
                        "frame body of {len} bytes before HANDSHAKE exceeds the {max}-byte \
                         limit for frames before a successful handshake"
                    ),
                    e => e.to_string(),
                };
                conn.push_error(0, request_id, status, &message);
                conn.closing = true;
                parsed.consumed = buf.len();
            }
        }
    }
    parsed
}
