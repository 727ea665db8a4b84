//! Byte buffers an io_uring loop lends to its connections: the send buffers its GET answers
//! are encoded into, and the carry buffers that hold a frame split between two receives.
//!
//! A connection holds a buffer only while it has bytes in it, so an idle connection holds
//! none, however many there are; the buffers are allocated once, when the loop starts, so
//! that a busy connection never grows one in steady state. When more connections need a
//! buffer at once than the pool holds, the pool allocates one more (and keeps it once it
//! comes back, up to the pool's size): that is the only allocation, and it is counted.

/// A fixed number of byte buffers of one capacity.
pub struct BytePool {
    bufs: Vec<Vec<u8>>,
    /// Buffers kept at most (the pool's size).
    count: usize,
    buf_bytes: usize,
    /// Buffers allocated because the pool was empty.
    pub misses: u64,
}

impl BytePool {
    /// A pool of `count` buffers of `buf_bytes` each, allocated now.
    pub fn new(count: usize, buf_bytes: usize) -> BytePool {
        let mut bufs = Vec::with_capacity(count);
        bufs.extend((0..count).map(|_| Vec::with_capacity(buf_bytes)));
        BytePool {
            bufs,
            count,
            buf_bytes,
            misses: 0,
        }
    }

    /// Bytes the pool holds when full.
    pub fn reserved_bytes(&self) -> usize {
        self.count * self.buf_bytes
    }

    /// An empty buffer of at least `buf_bytes` capacity.
    pub fn take(&mut self) -> Vec<u8> {
        self.bufs.pop().unwrap_or_else(|| {
            self.misses += 1;
            Vec::with_capacity(self.buf_bytes)
        })
    }

    /// Takes a buffer back (emptied). One of another capacity than the pool's (a buffer
    /// grown past it by a large answer, or one the connection got elsewhere) is freed, as is
    /// one the full pool has no room for.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == self.buf_bytes && self.bufs.len() < self.count {
            buf.clear();
            self.bufs.push(buf);
        }
    }

    /// Gives `buf` back when it holds nothing (leaving an unallocated buffer in its place).
    pub fn give_if_empty(&mut self, buf: &mut Vec<u8>) {
        if buf.is_empty() && buf.capacity() > 0 {
            self.give(std::mem::take(buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_go_round_without_new_allocations() {
        let mut pool = BytePool::new(2, 1024);
        let a = pool.take();
        let b = pool.take();
        assert_eq!((a.capacity(), b.capacity(), pool.misses), (1024, 1024, 0));
        let c = pool.take();
        assert_eq!(pool.misses, 1, "an empty pool allocates, and counts it");
        pool.give(a);
        pool.give(b);
        pool.give(c);
        assert_eq!(pool.bufs.len(), 2, "never more than its size");
        let mut grown = pool.take();
        grown.extend_from_slice(&[0; 2000]);
        pool.give(grown);
        assert_eq!(pool.bufs.len(), 1, "a grown buffer is freed, not kept");
        let mut held = vec![1u8];
        pool.give_if_empty(&mut held);
        assert_eq!(held, vec![1u8], "a buffer with bytes stays with its holder");
    }
}
