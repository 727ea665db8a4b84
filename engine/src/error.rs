//! The engine's one error type.

use std::io;

/// Everything that can go wrong in the engine. Expected failures (bad input, a full device,
/// I/O errors, corruption) are variants here; a broken invariant panics instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("key of {len} bytes is outside the limit of 1 to {max} bytes")]
    KeySize { len: usize, max: usize },
    #[error("record of {len} bytes exceeds the {max}-byte limit")]
    RecordTooLarge { len: usize, max: usize },
    #[error("device full: {free_bytes} bytes free is under the floor of {floor_bytes} bytes; writes resume when space is reclaimed")]
    DeviceFull { free_bytes: u64, floor_bytes: u64 },
    #[error("the store refuses writes after an earlier I/O failure: {0}")]
    Failed(String),
    #[error("device of {bytes} bytes holds {blocks} write blocks of {block_bytes} bytes, over the limit of {max_blocks} blocks a record location can address ({max_bytes} bytes at this block size); use larger write blocks or a smaller device")]
    DeviceTooLarge {
        bytes: u64,
        blocks: u64,
        block_bytes: u64,
        max_blocks: u64,
        max_bytes: u64,
    },
    #[error("the store is closed")]
    Closed,
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("generation mismatch: expected {expected}, found {found}")]
    GenerationMismatch { expected: u32, found: u32 },
    #[error("record already exists")]
    AlreadyExists,
    #[error("the record kept moving (defragmentation) during {attempts} read attempts; retry")]
    Moved { attempts: usize },
    #[error("group {0} was dropped; its id is never reused")]
    GroupDropped(u32),
    #[error("record not found")]
    NotFound,
    /// The key's newest record is damaged on the device. It reads as CORRUPT (never as an older
    /// version) until it is rewritten or deleted.
    #[error("the record is damaged on the device ({detail}); it reads as CORRUPT until it is rewritten or deleted")]
    Corrupt { group: u32, detail: String },
    #[error(transparent)]
    Wal(#[from] quiver_wal::Error),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Feature(#[from] crate::feature::FeatureError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
