//! Quiver's embeddable storage engine.
//!
//! A primary hash index in RAM (`quiver-index`) points at records written log-structured into
//! large write blocks on a device (`quiver-wal`). This crate ties them together: the write
//! path with named durability, reads that cost at most one device I/O, recovery, background
//! defragmentation, expiry and checkpoints, and on top the typed feature model. It must never
//! return a record whose checksum fails, lose an acknowledged `sync` write, or bring back a
//! deleted or expired record.

pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod feature;
pub mod file_step;
pub mod history;
pub mod inspect;
pub mod pending_get;
pub mod quality;
pub mod store;
pub mod training;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, DeviceConfig, Durability, WriteOptions};
pub use engine::{
    DamagedKey, DeviceRead, Engine, Modify, ReadStep, Record, RecoveryReport, ScanChunk,
    ScanCursor, Stats, MAX_KEY_BYTES,
};
pub use error::{Error, Result};
pub use file_step::{FileStep, FileStepHook};
pub use pending_get::PendingGet;
pub use store::Store;
