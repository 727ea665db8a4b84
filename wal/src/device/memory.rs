//! A device in RAM, for tests and memory-only stores.

use parking_lot::RwLock;

use super::{check_io, Device, ReadOp, WriteOp};
use crate::error::Result;

pub struct MemoryDevice {
    bytes: RwLock<Vec<u8>>,
    capacity: u64,
}

impl MemoryDevice {
    pub fn new(capacity: u64) -> MemoryDevice {
        // vec![0; n] is backed by zeroed pages the kernel maps lazily.
        MemoryDevice {
            bytes: RwLock::new(vec![0; capacity as usize]),
            capacity,
        }
    }
}

impl Device for MemoryDevice {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<Result<()>> {
        let bytes = self.bytes.read();
        ops.iter_mut()
            .map(|op| {
                check_io(op.buf.as_ptr(), op.buf.len(), op.offset, self.capacity)?;
                let start = op.offset as usize;
                op.buf.copy_from_slice(&bytes[start..start + op.buf.len()]);
                Ok(())
            })
            .collect()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_io(buf.as_ptr(), buf.len(), offset, self.capacity)?;
        let start = offset as usize;
        buf.copy_from_slice(&self.bytes.read()[start..start + buf.len()]);
        Ok(())
    }

    fn reads_from_memory(&self) -> bool {
        true
    }

    fn write_many(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        let mut bytes = self.bytes.write();
        for op in ops {
            check_io(op.buf.as_ptr(), op.buf.len(), op.offset, self.capacity)?;
            let start = op.offset as usize;
            bytes[start..start + op.buf.len()].copy_from_slice(op.buf);
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
