//! Devices: where write blocks live. One trait, interchangeable back ends: io_uring with
//! O_DIRECT, plain pread/pwrite, and memory.

mod fault;
mod file;
mod memory;
mod psync;
mod uring;

pub use fault::{
    CrashMode, FaultDevice, FaultEffect, FaultOp, FaultPlan, FaultRule, FaultStats, FaultWhen,
    SplitMix64,
};
pub use file::{open_path, FileOptions, IoBackend};
pub use memory::MemoryDevice;
pub use psync::PsyncDevice;
pub use uring::UringDevice;

use crate::buf::IO_ALIGN;
use crate::error::{Error, Result};

/// Upper bound on operations one device call keeps in flight.
pub const MAX_IN_FLIGHT: usize = 128;

/// One read of a batch: fills `buf` from `offset`.
pub struct ReadOp<'a> {
    pub offset: u64,
    pub buf: &'a mut [u8],
}

/// One write of a batch.
pub struct WriteOp<'a> {
    pub offset: u64,
    pub buf: &'a [u8],
}

/// A block-addressed store of bytes. Offsets, lengths and buffer addresses are multiples of
/// [`IO_ALIGN`] (checked), so every back end accepts what O_DIRECT accepts.
pub trait Device: Send + Sync {
    /// Usable bytes.
    fn capacity(&self) -> u64;
    /// Reads each op; one result per op, in order. All ops are in flight together (bounded by
    /// [`MAX_IN_FLIGHT`]) on back ends that can do so.
    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<Result<()>>;
    /// Writes every op; the first error wins. Not durable until [`Device::sync`].
    fn write_many(&self, ops: &[WriteOp<'_>]) -> Result<()>;
    /// Makes every completed write durable (fdatasync; a flush of the device's cache).
    fn sync(&self) -> Result<()>;
    /// A short name of the back end, for logs and stats.
    fn backend(&self) -> &'static str;
    /// Whether I/O bypasses the page cache (O_DIRECT), as the device was actually opened: a
    /// file device asked for O_DIRECT falls back to buffered I/O where the filesystem refuses it.
    fn direct_io(&self) -> bool {
        false
    }

    /// The file a caller may read with its own io_uring (`IORING_OP_READ` at the offsets and
    /// lengths this trait accepts), for back ends whose reads are exactly that: an event loop
    /// then submits record reads on its own ring instead of blocking in [`Device::read_at`].
    /// `None` for back ends that must be called.
    fn ring_read_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// Whether a read is a copy from memory that never waits for a device, so a caller may
    /// make it from an event loop.
    fn reads_from_memory(&self) -> bool {
        false
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let mut ops = [ReadOp { offset, buf }];
        self.read_many(&mut ops).pop().expect("one result per op")
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.write_many(&[WriteOp { offset, buf }])
    }
}

/// Checks one I/O's alignment and range.
pub(crate) fn check_io(ptr: *const u8, len: usize, offset: u64, capacity: u64) -> Result<()> {
    if !offset.is_multiple_of(IO_ALIGN as u64) {
        return Err(Error::Misaligned {
            what: "offset",
            offset,
            align: IO_ALIGN,
        });
    }
    if !len.is_multiple_of(IO_ALIGN) || !(ptr as usize).is_multiple_of(IO_ALIGN) {
        return Err(Error::Misaligned {
            what: "buffer",
            offset,
            align: IO_ALIGN,
        });
    }
    if offset
        .checked_add(len as u64)
        .is_none_or(|end| end > capacity)
    {
        return Err(Error::OutOfRange {
            offset,
            len,
            capacity,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::AlignedBuf;

    fn exercise(dev: &dyn Device) {
        let mut w = AlignedBuf::new(8192);
        for (i, b) in w.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        dev.write_at(&w, 4096).unwrap();
        dev.sync().unwrap();
        let mut a = AlignedBuf::new(4096);
        let mut b = AlignedBuf::new(4096);
        let res = dev.read_many(&mut [
            ReadOp {
                offset: 4096,
                buf: &mut a,
            },
            ReadOp {
                offset: 8192,
                buf: &mut b,
            },
        ]);
        assert!(res.iter().all(|r| r.is_ok()));
        assert_eq!(&a[..], &w[..4096]);
        assert_eq!(&b[..], &w[4096..]);
        // Misaligned and out-of-range I/O are errors, not panics.
        assert!(matches!(
            dev.read_at(&mut a, 100),
            Err(Error::Misaligned { .. })
        ));
        assert!(matches!(
            dev.read_at(&mut a, dev.capacity()),
            Err(Error::OutOfRange { .. })
        ));
    }

    #[test]
    fn memory_device() {
        exercise(&MemoryDevice::new(1 << 20));
    }

    /// In CI (`CI=true`) the back end asked for must be the one in use: a kernel that refuses
    /// io_uring or a filesystem that refuses O_DIRECT fails the run instead of quietly testing
    /// the fallback. Elsewhere the fallback is tested and said so.
    #[test]
    fn file_devices() {
        let in_ci = std::env::var("CI").as_deref() == Ok("true");
        let dir = tempfile::tempdir().unwrap();
        for (backend, name) in [(IoBackend::Uring, "io_uring"), (IoBackend::Psync, "psync")] {
            let path = dir.path().join(format!("{backend:?}.db"));
            let opts = FileOptions {
                create_bytes: Some(1 << 20),
                backend,
                direct: true,
            };
            let dev = open_path(&path, &opts).unwrap();
            let used = (dev.backend(), dev.direct_io());
            if used != (name, true) {
                assert!(
                    !in_ci,
                    "asked for {name} with O_DIRECT, got {used:?} (CI=true)"
                );
                eprintln!("file_devices: asked for {name} with O_DIRECT, testing {used:?}");
            }
            exercise(dev.as_ref());
        }
        let buffered = FileOptions {
            create_bytes: Some(1 << 20),
            backend: IoBackend::Psync,
            direct: false,
        };
        let dev = open_path(&dir.path().join("buffered.db"), &buffered).unwrap();
        assert!(!dev.direct_io(), "opened without O_DIRECT");
        exercise(dev.as_ref());
    }
}
