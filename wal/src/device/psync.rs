//! Plain pread/pwrite: the fallback where io_uring is unavailable.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::{check_io, Device, ReadOp, WriteOp};
use crate::error::{Error, Result};

pub struct PsyncDevice {
    file: File,
    capacity: u64,
}

impl PsyncDevice {
    pub fn new(file: File, capacity: u64) -> PsyncDevice {
        PsyncDevice { file, capacity }
    }
}

impl Device for PsyncDevice {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<Result<()>> {
        ops.iter_mut()
            .map(|op| {
                check_io(op.buf.as_ptr(), op.buf.len(), op.offset, self.capacity)?;
                self.file
                    .read_exact_at(op.buf, op.offset)
                    .map_err(|e| Error::io(format!("pread at {}", op.offset), e))
            })
            .collect()
    }

    fn write_many(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        for op in ops {
            check_io(op.buf.as_ptr(), op.buf.len(), op.offset, self.capacity)?;
            self.file
                .write_all_at(op.buf, op.offset)
                .map_err(|e| Error::io(format!("pwrite at {}", op.offset), e))?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io("fdatasync", e))
    }

    fn backend(&self) -> &'static str {
        "psync"
    }

    fn direct_io(&self) -> bool {
        super::file::opened_direct(&self.file)
    }
}
