//! A hook on the steps of writing the files kept beside the device (the index checkpoint), so
//! that a test's fault model can cut the power between any two of them, counted together with
//! the device's writes and syncs (see `quiver_wal::device::FaultDevice::file_step`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// One step of writing a file beside the device, reported before it is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStep {
    /// Creating and writing the temporary file.
    Write,
    /// Finishing the temporary file and fsyncing it.
    Sync,
    /// Renaming the temporary file over the live one.
    Rename,
    /// Fsyncing the directory, which makes the rename durable.
    SyncDir,
}

/// The hook's function.
pub type FileStepFn = dyn Fn(FileStep, &Path) -> std::io::Result<()> + Send + Sync;

/// Called with each [`FileStep`] and the path it touches; an error refuses the step (and fails
/// the operation that took it). `None` in the config: every step is taken.
#[derive(Clone)]
pub struct FileStepHook(pub Arc<FileStepFn>);

impl FileStepHook {
    pub fn new(f: impl Fn(FileStep, &Path) -> std::io::Result<()> + Send + Sync + 'static) -> Self {
        FileStepHook(Arc::new(f))
    }
}

impl fmt::Debug for FileStepHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileStepHook")
    }
}
