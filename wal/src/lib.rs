//! Quiver's log: the only place data is written.
//!
//! This crate owns the devices (io_uring with O_DIRECT, pread/pwrite, memory), the byte
//! layout of the superblock, write blocks and record frames, and the scanner that recovery
//! uses to walk a block. It never interprets record values and never decides what is live:
//! that is the engine's job. It must never hand out a record whose checksums do not hold.

pub mod buf;
pub mod damage;
pub mod device;
pub mod error;
pub mod format;
pub mod scan;
pub mod writer;

pub use buf::{with_pooled_buf, AlignedBuf, BufPool, IO_ALIGN};
pub use device::{Device, FileOptions, IoBackend, MemoryDevice, ReadOp, WriteOp};
pub use error::{Error, Result};
pub use writer::{Appended, BlockSource, LogWriter, Pos};
