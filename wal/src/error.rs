//! The log's one error type.

use std::io;

/// Errors of the log and its devices. Corruption is an expected error, never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("I/O error on {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("short {op} at offset {offset}: {done} of {len} bytes")]
    ShortIo {
        op: &'static str,
        offset: u64,
        done: usize,
        len: usize,
    },
    #[error("{what} at offset {offset} is not aligned to {align} bytes")]
    Misaligned {
        what: &'static str,
        offset: u64,
        align: usize,
    },
    #[error("range {offset}+{len} is beyond the end of the {capacity}-byte device")]
    OutOfRange {
        offset: u64,
        len: usize,
        capacity: u64,
    },
    #[error("not a Quiver device: {0}")]
    NotOurs(String),
    #[error("device format version {found} is newer than this build supports ({supported})")]
    NewerFormat { found: u32, supported: u32 },
    #[error("device of {bytes} bytes is too small: at least {min} bytes are needed ({blocks} write blocks of {block_bytes})")]
    DeviceTooSmall {
        bytes: u64,
        min: u64,
        blocks: u64,
        block_bytes: u32,
    },
    #[error("corrupt {what} at block {block} offset {offset}: {detail}")]
    Corrupt {
        what: &'static str,
        block: u32,
        offset: u32,
        detail: String,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("no free write block")]
    NoFreeBlock,
    #[error("the log refuses writes after an earlier I/O failure: {0}")]
    WriterFailed(String),
    #[error("injected fault: {0}")]
    Injected(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
