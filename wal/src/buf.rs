//! Buffers aligned for O_DIRECT.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Alignment of every buffer, offset and length handed to a device: the largest logical block
/// size in use (4 KiB), so that O_DIRECT works on any device.
pub const IO_ALIGN: usize = 4096;

/// Buffers of at least this many bytes are mapped straight from the kernel rather than taken
/// from the allocator. glibc raises its mmap threshold to the size of every large block it
/// frees (up to 32 MiB), after which freed write-block buffers would stay in its heap; a
/// mapping goes back to the kernel when dropped whatever the allocator has seen. Mapped pages
/// are also zero without a memset.
const MAP_AT_BYTES: usize = 256 << 10;

/// A zeroed buffer whose start and length are multiples of [`IO_ALIGN`].
pub struct AlignedBuf {
    mem: Mem,
    len: usize,
}

enum Mem {
    Heap(NonNull<u8>),
    Mapped(memmap2::MmapMut),
}

// SAFETY: AlignedBuf owns its memory exclusively, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out &[u8], like a Vec<u8>.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes rounded up to [`IO_ALIGN`].
    pub fn new(len: usize) -> AlignedBuf {
        let len = align_up(len.max(1), IO_ALIGN);
        if len >= MAP_AT_BYTES {
            let map = memmap2::MmapMut::map_anon(len).unwrap_or_else(|e| {
                panic!("cannot map {len} bytes of anonymous memory for an I/O buffer: {e}")
            });
            return AlignedBuf {
                mem: Mem::Mapped(map),
                len,
            };
        }
        let layout = Layout::from_size_align(len, IO_ALIGN).expect("buffer layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuf {
            mem: Mem::Heap(ptr),
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.mem {
            // SAFETY: ptr is valid for len initialised (zeroed) bytes for the buffer's lifetime.
            Mem::Heap(ptr) => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), self.len) },
            Mem::Mapped(map) => &map[..self.len],
        }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.mem {
            // SAFETY: as in deref, and &mut self guarantees exclusive access.
            Mem::Heap(ptr) => unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), self.len) },
            Mem::Mapped(map) => &mut map[..self.len],
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if let Mem::Heap(ptr) = self.mem {
            let layout = Layout::from_size_align(self.len, IO_ALIGN).expect("buffer layout");
            // SAFETY: allocated in new() with this exact layout.
            unsafe { dealloc(ptr.as_ptr(), layout) }
        }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

pub fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

pub fn align_down(x: usize, a: usize) -> usize {
    x / a * a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        for (want, len) in [(5000, 8192), (MAP_AT_BYTES + 1, MAP_AT_BYTES + IO_ALIGN)] {
            let mut b = AlignedBuf::new(want);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_ptr() as usize % IO_ALIGN, 0);
            assert!(b.iter().all(|&x| x == 0));
            b[len - 1] = 7;
            assert_eq!(b[len - 1], 7);
        }
    }
}
