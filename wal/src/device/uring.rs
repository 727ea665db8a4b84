//! io_uring back end. Each thread that does I/O owns a small ring (created on first use), so
//! readers never contend on a shared submission queue; a call waits for every operation it
//! submitted before it returns, so a buffer is never released while the kernel owns it.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types, IoUring};

use super::{check_io, Device, ReadOp, WriteOp, MAX_IN_FLIGHT};
use crate::error::{Error, Result};

const RING_ENTRIES: u32 = MAX_IN_FLIGHT as u32;

thread_local! {
    static RING: RefCell<Option<IoUring>> = const { RefCell::new(None) };
}

/// Whether this kernel lets us create a ring (io_uring may be disabled by sysctl or seccomp).
pub fn uring_available() -> io::Result<()> {
    IoUring::new(2).map(|_| ())
}

pub struct UringDevice {
    file: File,
    capacity: u64,
}

impl UringDevice {
    pub fn new(file: File, capacity: u64) -> UringDevice {
        UringDevice { file, capacity }
    }

    /// Runs `entries` (user_data = index) with at most MAX_IN_FLIGHT in flight; returns each
    /// operation's raw result (bytes transferred or -errno).
    fn run(&self, entries: &[squeue::Entry]) -> io::Result<Vec<i32>> {
        RING.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(IoUring::new(RING_ENTRIES)?);
            }
            let ring = slot.as_mut().expect("ring created above");
            let result = drive(ring, entries);
            if result.is_err() {
                // Nothing of ours is in flight (drive only fails before any op was consumed, or
                // aborts); a fresh ring next time clears any unconsumed entries.
                *slot = None;
            }
            result
        })
    }
}

fn drive(ring: &mut IoUring, entries: &[squeue::Entry]) -> io::Result<Vec<i32>> {
    let mut results = vec![0i32; entries.len()];
    let mut next = 0;
    let mut in_flight = 0usize;
    while next < entries.len() || in_flight > 0 {
        while next < entries.len() && in_flight < MAX_IN_FLIGHT {
            // SAFETY: every buffer an entry points at is borrowed by our caller for the whole
            // call, and this loop does not return Ok until all pushed entries have completed.
            let pushed = unsafe { ring.submission().push(&entries[next]) };
            if pushed.is_err() {
                break;
            }
            next += 1;
            in_flight += 1;
        }
        loop {
            match ring.submit_and_wait(1) {
                Ok(_) => break,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    if in_flight > 0 && next > 0 {
                        // Some operations may already be in the kernel's hands with our
                        // buffers: returning would let those buffers be freed under it.
                        eprintln!(
                            "quiver: io_uring submit failed with I/O in flight: {e}; aborting"
                        );
                        std::process::abort();
                    }
                    return Err(e);
                }
            }
        }
        for cqe in ring.completion() {
            results[cqe.user_data() as usize] = cqe.result();
            in_flight -= 1;
        }
    }
    Ok(results)
}

fn check_result(op: &'static str, res: i32, offset: u64, len: usize) -> Result<()> {
    if res < 0 {
        return Err(Error::io(
            format!("io_uring {op} at offset {offset}"),
            io::Error::from_raw_os_error(-res),
        ));
    }
    if res as usize != len {
        return Err(Error::ShortIo {
            op,
            offset,
            done: res as usize,
            len,
        });
    }
    Ok(())
}

impl Device for UringDevice {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<Result<()>> {
        let fd = types::Fd(self.file.as_raw_fd());
        let mut checks: Vec<Result<()>> = Vec::with_capacity(ops.len());
        let mut entries = Vec::with_capacity(ops.len());
        let mut index = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter_mut().enumerate() {
            let check = check_io(op.buf.as_ptr(), op.buf.len(), op.offset, self.capacity);
            if check.is_ok() {
                let e = opcode::Read::new(fd, op.buf.as_mut_ptr(), op.buf.len() as u32)
                    .offset(op.offset)
                    .build()
                    .user_data(entries.len() as u64);
                entries.push(e);
                index.push(i);
            }
            checks.push(check);
        }
        match self.run(&entries) {
            Ok(results) => {
                for (k, res) in results.into_iter().enumerate() {
                    let i = index[k];
                    checks[i] = check_result("read", res, ops[i].offset, ops[i].buf.len());
                }
            }
            Err(e) => {
                for &i in &index {
                    checks[i] = Err(Error::io(
                        "io_uring submit",
                        io::Error::new(e.kind(), e.to_string()),
                    ));
                }
            }
        }
        checks
    }

    fn write_many(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        let fd = types::Fd(self.file.as_raw_fd());
        let mut entries = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            check_io(op.buf.as_ptr(), op.buf.len(), op.offset, self.capacity)?;
            entries.push(
                opcode::Write::new(fd, op.buf.as_ptr(), op.buf.len() as u32)
                    .offset(op.offset)
                    .build()
                    .user_data(i as u64),
            );
        }
        let results = self
            .run(&entries)
            .map_err(|e| Error::io("io_uring submit", e))?;
        for (op, res) in ops.iter().zip(results) {
            check_result("write", res, op.offset, op.buf.len())?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io("fdatasync", e))
    }

    fn backend(&self) -> &'static str {
        "io_uring"
    }
}
