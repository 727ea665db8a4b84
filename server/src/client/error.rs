//! Client errors: transport, protocol, and the server's own status codes.

use crate::protocol::{DecodeError, StatusCode};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with a non-OK status.
    #[error("server error {status}: {message}")]
    Server { status: StatusCode, message: String },
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out after {timeout_ms} ms waiting for {what}")]
    Timeout { what: &'static str, timeout_ms: u64 },
    #[error("malformed response from the server: {0}")]
    Protocol(#[from] DecodeError),
    #[error("response to request {request_id} has opcode 0x{got:02x}, expected 0x{expected:02x}")]
    UnexpectedResponse {
        request_id: u64,
        expected: u8,
        got: u8,
    },
    #[error("the connection was closed by the server")]
    Disconnected,
    #[error("could not connect to {addr} after {attempts} attempts: {last}")]
    Connect {
        addr: String,
        attempts: u32,
        last: String,
    },
    /// TLS could not be set up: a certificate refused, or one side not speaking TLS.
    #[error("TLS: {0}")]
    Tls(String),
    #[error("request of {len} bytes exceeds the server's {max}-byte frame limit")]
    RequestTooLarge { len: usize, max: u32 },
}

impl ClientError {
    /// The server's status code, when the server answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
