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

/// Aligned buffers kept for reuse, so that a record read neither allocates nor zeroes a fresh
/// buffer (a memset of every read buffer showed in profiles). A buffer is zeroed once, when
/// first made; afterwards it holds whatever it last read, and every read fills the part it
/// uses. Sizes are classes of powers of two from [`IO_ALIGN`] to [`BufPool::MAX_CLASS_BYTES`];
/// larger buffers are made per call and not kept.
pub struct BufPool {
    classes: [Vec<AlignedBuf>; BufPool::CLASSES],
    /// Buffers kept per class.
    keep: usize,
}

impl BufPool {
    /// Largest buffer kept (a record of up to ~60 KiB on its pages).
    pub const MAX_CLASS_BYTES: usize = 64 << 10;
    const CLASSES: usize = 5;

    /// A pool that keeps at most `keep` buffers of each size class.
    pub const fn new(keep: usize) -> BufPool {
        BufPool {
            classes: [Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()],
            keep,
        }
    }

    /// A pool that keeps at most `keep` buffers of each size class, its lists reserved now
    /// (giving a buffer back never grows them).
    pub fn reserved(keep: usize) -> BufPool {
        BufPool {
            classes: std::array::from_fn(|_| Vec::with_capacity(keep)),
            keep,
        }
    }

    fn class(len: usize) -> Option<usize> {
        let pages = len.max(1).div_ceil(IO_ALIGN).next_power_of_two();
        let class = pages.trailing_zeros() as usize;
        (class < Self::CLASSES).then_some(class)
    }

    /// A buffer of at least `len` bytes (its length is `len` rounded up to its size class).
    pub fn take(&mut self, len: usize) -> AlignedBuf {
        match Self::class(len) {
            Some(c) => self.classes[c]
                .pop()
                .unwrap_or_else(|| AlignedBuf::new(IO_ALIGN << c)),
            None => AlignedBuf::new(len),
        }
    }

    /// Returns a buffer for reuse (dropped when its class is full or it is too large).
    pub fn give(&mut self, buf: AlignedBuf) {
        if let Some(c) = Self::class(buf.len()).filter(|&c| IO_ALIGN << c == buf.len()) {
            if self.classes[c].len() < self.keep {
                self.classes[c].push(buf);
            }
        }
    }
}

thread_local! {
    static READ_BUFS: std::cell::RefCell<BufPool> = const { std::cell::RefCell::new(BufPool::new(8)) };
}

/// Runs `f` with a buffer of at least `len` bytes from this thread's pool (see [`BufPool`]),
/// and puts the buffer back afterwards.
pub fn with_pooled_buf<R>(len: usize, f: impl FnOnce(&mut AlignedBuf) -> R) -> R {
    let mut buf = READ_BUFS.with(|p| p.borrow_mut().take(len));
    let out = f(&mut buf);
    READ_BUFS.with(|p| p.borrow_mut().give(buf));
    out
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

    #[test]
    fn pool_reuses_buffers_by_size_class() {
        let mut pool = BufPool::new(2);
        let a = pool.take(600);
        assert_eq!(a.len(), 4096);
        let b = pool.take(4097);
        assert_eq!(b.len(), 8192);
        let c = pool.take(3 * 4096);
        assert_eq!(c.len(), 16384, "rounded up to the next power of two pages");
        let big = pool.take(BufPool::MAX_CLASS_BYTES + 1);
        assert_eq!(big.len(), BufPool::MAX_CLASS_BYTES + IO_ALIGN);
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        pool.give(a);
        pool.give(b);
        pool.give(big);
        assert_eq!(pool.take(100).as_ptr(), pa, "the same 4 KiB buffer again");
        assert_eq!(pool.take(8000).as_ptr(), pb, "the same 8 KiB buffer again");
        // At most `keep` per class.
        for _ in 0..3 {
            pool.give(AlignedBuf::new(4096));
        }
        assert_eq!(pool.classes[0].len(), 2);
        // Nested use on one thread takes two different buffers.
        with_pooled_buf(4096, |x| {
            let px = x.as_ptr();
            with_pooled_buf(4096, |y| assert_ne!(px, y.as_ptr()));
        });
    }
}
