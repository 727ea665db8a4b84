//! The loop's receive buffers: one ring of provided buffers (`IORING_REGISTER_PBUF_RING`)
//! shared by all its connections. A multishot receive takes a buffer only when bytes arrive,
//! so an idle connection holds no receive memory however many there are; the loop hands each
//! buffer back as soon as it has parsed (or copied) what it holds.

use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

/// Buffer group id of the loop's receive buffers (one group per ring).
pub const RECV_GROUP: u16 = 0;
/// Buffers in the ring (a power of two).
pub const RECV_BUFS: u16 = 256;
/// Bytes per buffer: a receive brings at most this much, so a loop turns to its other
/// connections after each.
pub const RECV_BUF_BYTES: usize = 16 << 10;

pub struct RecvBufs {
    /// The ring of buffer descriptors the kernel takes from (page aligned, as it must be).
    entries: memmap2::MmapMut,
    /// The buffers themselves (written by the kernel; read only through `data_ptr`, a buffer
    /// at a time, once its completion hands it to us).
    data: memmap2::MmapMut,
    data_ptr: *mut u8,
    /// Our count of buffers handed to the kernel (the ring's tail).
    tail: u16,
}

impl RecvBufs {
    /// Maps the buffers and registers them with `ring`.
    pub fn register(ring: &IoUring) -> io::Result<RecvBufs> {
        let ring_bytes = RECV_BUFS as usize * std::mem::size_of::<BufRingEntry>();
        let entries = memmap2::MmapMut::map_anon(ring_bytes)?;
        let mut data = memmap2::MmapMut::map_anon(RECV_BUFS as usize * RECV_BUF_BYTES)?;
        let data_ptr = data.as_mut_ptr();
        let mut bufs = RecvBufs {
            entries,
            data,
            data_ptr,
            tail: 0,
        };
        // SAFETY: the descriptor ring is a page-aligned mapping of RECV_BUFS entries that lives
        // as long as this struct; the loop drops it only after the ring itself (see
        // `RingLoop`'s field order), so it stays valid while registered.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.entries.as_ptr() as u64,
                RECV_BUFS,
                RECV_GROUP,
                0,
            )?;
        }
        for bid in 0..RECV_BUFS {
            bufs.push(bid);
        }
        bufs.publish();
        Ok(bufs)
    }

    fn base(&mut self) -> *mut BufRingEntry {
        self.entries.as_mut_ptr().cast()
    }

    /// Queues buffer `bid` for the kernel (visible after [`RecvBufs::publish`]).
    fn push(&mut self, bid: u16) {
        let mask = RECV_BUFS - 1;
        let addr = self.data_ptr as u64 + bid as u64 * RECV_BUF_BYTES as u64;
        let slot = (self.tail & mask) as usize;
        // SAFETY: slot < RECV_BUFS, inside the mapping; the kernel reads only entries between
        // its head and the published tail, and this one is past the tail until published.
        let entry = unsafe { &mut *self.base().add(slot) };
        entry.set_addr(addr);
        entry.set_len(RECV_BUF_BYTES as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the pushed buffers visible to the kernel.
    fn publish(&mut self) {
        let base = self.base();
        // SAFETY: the tail field overlays the first entry's reserved field, which the kernel
        // reads atomically; we store it atomically with release ordering so that the entries
        // written before are visible first.
        unsafe {
            let tail = BufRingEntry::tail(base) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The `len` bytes the kernel received into buffer `bid`.
    pub fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < RECV_BUFS, "buffer id {bid} out of range");
        // SAFETY: the buffer lies inside the mapping, and the kernel is done with it: its
        // completion handed it to us and it goes back only through `give_back`, which takes
        // `&mut self` and so cannot run while this borrow lives.
        unsafe {
            std::slice::from_raw_parts(
                self.data_ptr.add(bid as usize * RECV_BUF_BYTES),
                len.min(RECV_BUF_BYTES),
            )
        }
    }

    /// Bytes of receive memory the loop holds (for the logs).
    pub fn mapped_bytes(&self) -> usize {
        self.data.len()
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn give_back(&mut self, bid: u16) {
        assert!(bid < RECV_BUFS, "buffer id {bid} out of range");
        self.push(bid);
        self.publish();
    }
}
