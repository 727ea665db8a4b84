//! The harness's error types: setup errors end the run with exit code 2, target errors are
//! counted per operation.
use std::io;
use std::path::PathBuf;

/// An error that stops a benchmark before or after measuring (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A flag value or combination of flags that the harness refuses.
    #[error("{0}")]
    Usage(String),
    /// The target could not be reached or opened.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The load phase failed before the measurement started.
    #[error("load phase failed after {loaded} of {records} records: {reason}")]
    Load {
        loaded: u64,
        records: u64,
        reason: String,
    },
    /// A report file could not be written.
    #[error("cannot write the {what} report to {}: {source}", path.display())]
    Output {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// An error from one target: a connection that failed, or an operation the target refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// Connecting to a network target failed.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// An I/O error on an open connection.
    #[error("{addr}: {reason}")]
    Io { addr: String, reason: String },
    /// The peer sent something the client cannot parse, or exceeded a limit.
    #[error("{addr}: protocol error: {reason}")]
    Protocol { addr: String, reason: String },
    /// The in-process engine refused to open or to set up the benchmark's group.
    #[error("embedded store {path}: {reason}")]
    Embedded { path: String, reason: String },
    /// A bad `--target` value.
    #[error("bad --target '{spec}': {reason}")]
    Spec { spec: String, reason: String },
}

impl TargetError {
    /// Builds a connect error whose reason reads like "connection refused".
    pub fn connect(addr: &str, err: &io::Error) -> TargetError {
        TargetError::Connect {
            addr: addr.to_string(),
            reason: io_reason(err),
        }
    }

    /// Builds an I/O error on an open connection.
    pub fn io(addr: &str, err: &io::Error) -> TargetError {
        TargetError::Io {
            addr: addr.to_string(),
            reason: io_reason(err),
        }
    }
}

/// A short lower-case reason for an I/O error, without the "(os error N)" suffix.
pub fn io_reason(err: &io::Error) -> String {
    let text = match err.kind() {
        io::ErrorKind::ConnectionRefused => return "connection refused".to_string(),
        io::ErrorKind::ConnectionReset => return "connection reset by peer".to_string(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => return "timed out".to_string(),
        io::ErrorKind::UnexpectedEof => return "connection closed by peer".to_string(),
        io::ErrorKind::AddrNotAvailable => return "address not available".to_string(),
        _ => err.to_string(),
    };
    let trimmed = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => trimmed.to_string(),
    }
}
