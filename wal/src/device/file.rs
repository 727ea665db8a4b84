//! Opening a file or block device as a [`Device`].

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use super::{uring::uring_available, Device, PsyncDevice, UringDevice};
use crate::buf::IO_ALIGN;
use crate::error::{Error, Result};

/// Which system interface carries the I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring, falling back to pread/pwrite (with a log line) where the kernel refuses it.
    Uring,
    /// pread/pwrite.
    Psync,
}

#[derive(Clone, Debug)]
pub struct FileOptions {
    /// For a regular file that does not exist yet: create and preallocate this many bytes.
    pub create_bytes: Option<u64>,
    pub backend: IoBackend,
    /// O_DIRECT (bypass the page cache). Filesystems that refuse it (tmpfs) fall back to
    /// buffered I/O with a log line.
    pub direct: bool,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            create_bytes: None,
            backend: IoBackend::Uring,
            direct: true,
        }
    }
}

/// Opens (or creates) a regular file or a block device.
pub fn open_path(path: &Path, opts: &FileOptions) -> Result<Arc<dyn Device>> {
    let exists = path.exists();
    if !exists {
        let bytes = opts.create_bytes.ok_or_else(|| {
            Error::Config(format!(
                "{} does not exist and no size was given to create it",
                path.display()
            ))
        })?;
        create_file(path, bytes)?;
    }
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    let is_block = meta.file_type().is_block_device();
    if !is_block && !meta.is_file() {
        return Err(Error::Config(format!(
            "{} is neither a regular file nor a block device",
            path.display()
        )));
    }
    let file = open_file(path, opts.direct)?;
    let capacity = if is_block {
        block_device_bytes(&file, path)?
    } else {
        meta.len()
    };
    let capacity = capacity / IO_ALIGN as u64 * IO_ALIGN as u64;
    let device: Arc<dyn Device> = match opts.backend {
        IoBackend::Uring => match uring_available() {
            Ok(()) => Arc::new(UringDevice::new(file, capacity)),
            Err(e) => {
                tracing::warn!(error = %e, "io_uring unavailable; using pread/pwrite");
                Arc::new(PsyncDevice::new(file, capacity))
            }
        },
        IoBackend::Psync => Arc::new(PsyncDevice::new(file, capacity)),
    };
    Ok(device)
}

fn create_file(path: &Path, bytes: u64) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    let bytes = bytes / IO_ALIGN as u64 * IO_ALIGN as u64;
    // Preallocate so that later writes never fail for lack of space on the filesystem.
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on an fd we own; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, bytes as libc::off_t) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            let _ = std::fs::remove_file(path);
            return Err(Error::io(
                format!("preallocate {bytes} bytes for {}", path.display()),
                err,
            ));
        }
        file.set_len(bytes)
            .map_err(|e| Error::io(format!("size {}", path.display()), e))?;
    }
    if let Err(e) = zero_fill(path, bytes) {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    file.sync_all()
        .map_err(|e| Error::io(format!("sync {}", path.display()), e))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Writes zeros over a new file once. Preallocated space is "unwritten" to the filesystem:
/// the first write into each part of it changes the file's metadata, so every flush of the
/// log would also commit a journal transaction (on ext4 that halves the fdatasync rate).
/// Zeroing at creation pays that once, sequentially, and the log's flushes are plain data.
fn zero_fill(path: &Path, bytes: u64) -> Result<()> {
    const CHUNK: usize = 8 << 20;
    const REPORT_EVERY: u64 = 4 << 30;
    let file = open_file(path, true)?;
    let zeros = crate::buf::AlignedBuf::new(CHUNK);
    let started = std::time::Instant::now();
    let mut at = 0u64;
    while at < bytes {
        let n = (bytes - at).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| Error::io(format!("zero {} at {at}", path.display()), e))?;
        at += n as u64;
        if at.is_multiple_of(REPORT_EVERY) && at < bytes {
            tracing::info!(path = %path.display(), done_gib = at >> 30, total_gib = bytes >> 30, "zeroing the new data file");
        }
    }
    tracing::debug!(path = %path.display(), bytes, ms = started.elapsed().as_millis() as u64, "new data file zeroed");
    Ok(())
}

fn open_file(path: &Path, direct: bool) -> Result<File> {
    let open = |flags: i32| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open(path)
    };
    if direct {
        match open(libc::O_DIRECT) {
            Ok(f) => return Ok(f),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::warn!(path = %path.display(), "O_DIRECT refused by the filesystem; using buffered I/O");
            }
            Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
        }
    }
    open(0).map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// Whether `file` was opened with O_DIRECT (read back from the kernel, not remembered).
pub(crate) fn opened_direct(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFL on an fd we own reads its status flags; no memory is passed.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_DIRECT != 0
}

fn block_device_bytes(file: &File, path: &Path) -> Result<u64> {
    use std::os::fd::AsRawFd;
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    let mut bytes: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid and aligned.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, &mut bytes as *mut u64) };
    if rc != 0 {
        return Err(Error::io(
            format!("size of block device {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(bytes)
}
