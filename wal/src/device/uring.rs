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
        with_ring(|ring| drive(ring, entries))
    }

    /// One read, without the batch path's allocations: the point read of every get.
    fn read_one(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_io(buf.as_ptr(), buf.len(), offset, self.capacity)?;
        let fd = types::Fd(self.file.as_raw_fd());
        let mut done = 0;
        for _ in 0..MAX_ROUNDS {
            let rest = &mut buf[done..];
            let at = offset + done as u64;
            let entry = opcode::Read::new(fd, rest.as_mut_ptr(), rest.len() as u32)
                .offset(at)
                .build()
                .user_data(0);
            let res = with_ring(|ring| drive_one(ring, &entry))
                .map_err(|e| Error::io("io_uring submit", e))?;
            match res {
                r if r < 0 => {
                    return Err(Error::io(
                        format!("io_uring read at offset {at}"),
                        io::Error::from_raw_os_error(-r),
                    ))
                }
                r if r == 0 || r as usize > rest.len() => break,
                r => done += r as usize,
            }
            if done == buf.len() {
                return Ok(());
            }
        }
        Err(Error::ShortIo {
            op: "read",
            offset,
            done,
            len: buf.len(),
        })
    }
}

/// Runs `f` on this thread's ring (created on first use).
fn with_ring<R>(f: impl FnOnce(&mut IoUring) -> io::Result<R>) -> io::Result<R> {
    RING.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(IoUring::new(RING_ENTRIES)?);
        }
        let ring = slot.as_mut().expect("ring created above");
        let result = f(ring);
        if result.is_err() {
            // Nothing of ours is in flight (drive only fails before any op was consumed, or
            // aborts); a fresh ring next time clears any unconsumed entries.
            *slot = None;
        }
        result
    })
}

/// Submits one entry and waits for its completion; returns its raw result.
fn drive_one(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<i32> {
    // SAFETY: the buffer the entry points at is borrowed by our caller for the whole call,
    // and this function does not return Ok before the entry has completed.
    unsafe { ring.submission().push(entry) }
        .map_err(|_| io::Error::other("io_uring submission queue full"))?;
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
                ) =>
            {
                continue
            }
            Err(e) => {
                // The entry may already be in the kernel's hands with our buffer.
                eprintln!("quiver: io_uring submit failed with I/O in flight: {e}; aborting");
                std::process::abort();
            }
        }
        if let Some(cqe) = ring.completion().next() {
            return Ok(cqe.result());
        }
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

/// Most rounds a batch is resubmitted for what short transfers left over. Every round moves
/// at least one byte of each unfinished transfer, so this only bounds a device that keeps
/// answering with tiny pieces.
const MAX_ROUNDS: usize = 64;

/// One read or write and how much of it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Transfer {
    offset: u64,
    len: usize,
    done: usize,
}

impl Transfer {
    fn new(offset: u64, len: usize) -> Transfer {
        Transfer {
            offset,
            len,
            done: 0,
        }
    }
}

/// Runs `transfers` to the end, as the pread/pwrite loop does: `submit` gets the indices of
/// the unfinished ones and returns the raw result of each (bytes moved or -errno), and a
/// transfer that moved fewer bytes than it asked for is submitted again for the rest, from
/// where it stopped. A transfer fails on an error, on a result of 0 (the end of the file:
/// no progress is possible) and after [`MAX_ROUNDS`] rounds. One result per transfer.
fn transfer_all(
    op: &'static str,
    transfers: &mut [Transfer],
    mut submit: impl FnMut(&[Transfer], &[usize]) -> io::Result<Vec<i32>>,
) -> Vec<Result<()>> {
    let mut results: Vec<Result<()>> = transfers.iter().map(|_| Ok(())).collect();
    let mut pending: Vec<usize> = (0..transfers.len()).collect();
    for _ in 0..MAX_ROUNDS {
        pending.retain(|&i| results[i].is_ok() && transfers[i].done < transfers[i].len);
        if pending.is_empty() {
            return results;
        }
        let raw = match submit(transfers, &pending) {
            Ok(raw) => raw,
            Err(e) => {
                for &i in &pending {
                    results[i] = Err(Error::io(
                        "io_uring submit",
                        io::Error::new(e.kind(), e.to_string()),
                    ));
                }
                return results;
            }
        };
        for (&i, res) in pending.iter().zip(raw) {
            let t = &mut transfers[i];
            let at = t.offset + t.done as u64;
            results[i] = match res {
                r if r < 0 => Err(Error::io(
                    format!("io_uring {op} at offset {at}"),
                    io::Error::from_raw_os_error(-r),
                )),
                r if r == 0 || r as usize > t.len - t.done => Err(Error::ShortIo {
                    op,
                    offset: t.offset,
                    done: t.done,
                    len: t.len,
                }),
                r => {
                    t.done += r as usize;
                    Ok(())
                }
            };
        }
    }
    for i in 0..transfers.len() {
        let t = transfers[i];
        if results[i].is_ok() && t.done < t.len {
            results[i] = Err(Error::ShortIo {
                op,
                offset: t.offset,
                done: t.done,
                len: t.len,
            });
        }
    }
    results
}

impl Device for UringDevice {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<Result<()>> {
        let fd = types::Fd(self.file.as_raw_fd());
        let mut checks: Vec<Result<()>> = Vec::with_capacity(ops.len());
        let mut transfers = Vec::with_capacity(ops.len());
        let mut index = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let check = check_io(op.buf.as_ptr(), op.buf.len(), op.offset, self.capacity);
            if check.is_ok() {
                transfers.push(Transfer::new(op.offset, op.buf.len()));
                index.push(i);
            }
            checks.push(check);
        }
        let results = transfer_all("read", &mut transfers, |transfers, pending| {
            let entries: Vec<squeue::Entry> = pending
                .iter()
                .enumerate()
                .map(|(k, &t)| {
                    let (tr, buf) = (transfers[t], &mut ops[index[t]].buf[transfers[t].done..]);
                    opcode::Read::new(fd, buf.as_mut_ptr(), buf.len() as u32)
                        .offset(tr.offset + tr.done as u64)
                        .build()
                        .user_data(k as u64)
                })
                .collect();
            self.run(&entries)
        });
        for (k, res) in results.into_iter().enumerate() {
            checks[index[k]] = res;
        }
        checks
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.read_one(buf, offset)
    }

    fn ring_read_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn write_many(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        let fd = types::Fd(self.file.as_raw_fd());
        let mut transfers = Vec::with_capacity(ops.len());
        for op in ops {
            check_io(op.buf.as_ptr(), op.buf.len(), op.offset, self.capacity)?;
            transfers.push(Transfer::new(op.offset, op.buf.len()));
        }
        let results = transfer_all("write", &mut transfers, |transfers, pending| {
            let entries: Vec<squeue::Entry> = pending
                .iter()
                .enumerate()
                .map(|(k, &t)| {
                    let (tr, buf) = (transfers[t], &ops[t].buf[transfers[t].done..]);
                    opcode::Write::new(fd, buf.as_ptr(), buf.len() as u32)
                        .offset(tr.offset + tr.done as u64)
                        .build()
                        .user_data(k as u64)
                })
                .collect();
            self.run(&entries)
        });
        results.into_iter().collect()
    }

    fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io("fdatasync", e))
    }

    fn backend(&self) -> &'static str {
        "io_uring"
    }

    fn direct_io(&self) -> bool {
        super::file::opened_direct(&self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each round of a fake kernel was asked: (device offset, bytes) per transfer.
    type Rounds = Vec<Vec<(u64, usize)>>;

    /// A fake kernel over `disk` that moves at most `piece` bytes of each read per call, as a
    /// device may when a transfer is cut short; returns what was asked, round by round.
    fn read_in_pieces(
        disk: &[u8],
        bufs: &mut [Vec<u8>],
        transfers: &mut [Transfer],
        piece: usize,
    ) -> (Vec<Result<()>>, Rounds) {
        let mut rounds = Vec::new();
        let results = transfer_all("read", transfers, |transfers, pending| {
            let mut asked = Vec::new();
            let raw = pending
                .iter()
                .map(|&i| {
                    let t = transfers[i];
                    let at = t.offset as usize + t.done;
                    asked.push((at as u64, t.len - t.done));
                    let n = piece.min(t.len - t.done).min(disk.len().saturating_sub(at));
                    bufs[i][t.done..t.done + n].copy_from_slice(&disk[at..at + n]);
                    n as i32
                })
                .collect();
            rounds.push(asked);
            Ok(raw)
        });
        (results, rounds)
    }

    #[test]
    fn short_transfers_are_continued_from_where_they_stopped() {
        let disk: Vec<u8> = (0..64 << 10).map(|i| (i % 251) as u8).collect();
        let mut transfers = vec![Transfer::new(4096, 8192), Transfer::new(32768, 4096)];
        let mut bufs = vec![vec![0u8; 8192], vec![0u8; 4096]];
        let (results, rounds) = read_in_pieces(&disk, &mut bufs, &mut transfers, 3000);
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        assert_eq!(&bufs[0][..], &disk[4096..4096 + 8192]);
        assert_eq!(&bufs[1][..], &disk[32768..32768 + 4096]);
        // Each round asks again for the rest of what is unfinished, from where it stopped.
        assert_eq!(
            rounds,
            vec![
                vec![(4096, 8192), (32768, 4096)],
                vec![(7096, 5192), (35768, 1096)],
                vec![(10096, 2192)],
            ]
        );
    }

    #[test]
    fn no_progress_or_an_error_ends_a_transfer_with_an_error() {
        let disk = vec![7u8; 10_000];
        // The second read reaches past the end of the (fake) file: the continuation gets 0.
        let mut transfers = vec![Transfer::new(0, 4096), Transfer::new(8192, 4096)];
        let mut bufs = vec![vec![0u8; 4096], vec![0u8; 4096]];
        let (results, _) = read_in_pieces(&disk, &mut bufs, &mut transfers, 4096);
        assert!(results[0].is_ok());
        match &results[1] {
            Err(Error::ShortIo {
                op: "read",
                offset: 8192,
                done: 1808,
                len: 4096,
            }) => {}
            other => panic!("expected a short read naming 1808 of 4096 bytes: {other:?}"),
        }
        let mut transfers = vec![Transfer::new(0, 4096)];
        let results = transfer_all("write", &mut transfers, |_, _| Ok(vec![-libc::EIO]));
        let err = results[0].as_ref().unwrap_err().to_string();
        assert!(err.contains("io_uring write at offset 0"), "{err}");
    }

    /// A file shorter than the reads asked of it: io_uring returns what the file holds, the
    /// continuation meets the end of the file, and the read fails naming how much it got.
    #[test]
    fn a_read_past_the_end_of_a_file_is_an_error_naming_the_bytes_read() {
        if let Err(e) = uring_available() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "io_uring unavailable in CI (CI=true): {e}"
            );
            eprintln!("io_uring unavailable here ({e}); skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        std::fs::write(&path, vec![9u8; 6144]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let dev = UringDevice::new(file, 8192);
        let mut buf = crate::AlignedBuf::new(8192);
        match dev.read_at(&mut buf, 0) {
            Err(Error::ShortIo {
                done: 6144,
                len: 8192,
                ..
            }) => {}
            other => panic!("expected a short read of 6144 of 8192 bytes: {other:?}"),
        }
        assert!(buf[..6144].iter().all(|&b| b == 9));
    }
}
