//! The block table: the state and live-byte count of every write block, the free list, and
//! the post-write cache of recently sealed blocks.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};
use quiver_wal::format::BlockKind;
use quiver_wal::{AlignedBuf, BlockSource};

/// Block states, stored as u8.
pub(crate) const FREE: u8 = 0;
pub(crate) const OPEN: u8 = 1;
pub(crate) const SEALED: u8 = 2;
/// Block 0: the superblock.
pub(crate) const RESERVED: u8 = 3;
/// Being defragmented: not a candidate again, not free yet.
pub(crate) const DEFRAG: u8 = 4;

/// Free blocks only defragmentation may take: it always has somewhere to copy to.
pub(crate) const DEFRAG_RESERVE_BLOCKS: usize = 2;

pub(crate) struct BlockMeta {
    pub state: AtomicU8,
    pub kind: AtomicU8,
    pub seq: AtomicU64,
    /// Bytes of frames the index points at (current records).
    pub live_bytes: AtomicI64,
    /// Bytes of tombstones written since the block was opened: deletes, and the markers
    /// defragmentation keeps. Worth copying only while one of them is still needed (see
    /// [`Blocks::kept_bytes`]). Not persisted: after a restart they count as dead frames, and
    /// defragmentation sorts them out once.
    pub marker_bytes: AtomicI64,
    /// Largest LSN of the tombstones counted in `marker_bytes` (0 when none).
    pub max_marker_lsn: AtomicU64,
    /// Bytes of frames written (the block's fill), header included.
    pub used_bytes: AtomicU64,
    /// Smallest LSN of any frame in the block (u64::MAX when none).
    pub min_lsn: AtomicU64,
}

pub(crate) struct Blocks {
    pub block_bytes: u64,
    pub meta: Vec<BlockMeta>,
    free: Mutex<VecDeque<u32>>,
    /// Foreground writers may not take the last `floor_blocks` free blocks.
    pub floor_blocks: usize,
    cache: RwLock<Cache>,
    /// Wakes the maintenance thread: on shutdown, on a dropped group, and when a foreground
    /// writer takes a block below the low-water mark.
    pub wake: (Mutex<()>, Condvar),
}

struct Cache {
    max_bytes: u64,
    bytes: u64,
    order: VecDeque<u32>,
    map: HashMap<u32, Arc<AlignedBuf>>,
}

impl Blocks {
    pub fn new(count: usize, block_bytes: u64, floor_blocks: usize, cache_bytes: u64) -> Blocks {
        let meta = (0..count)
            .map(|i| BlockMeta {
                state: AtomicU8::new(if i == 0 { RESERVED } else { FREE }),
                kind: AtomicU8::new(0),
                seq: AtomicU64::new(0),
                live_bytes: AtomicI64::new(0),
                marker_bytes: AtomicI64::new(0),
                max_marker_lsn: AtomicU64::new(0),
                used_bytes: AtomicU64::new(0),
                min_lsn: AtomicU64::new(u64::MAX),
            })
            .collect();
        Blocks {
            block_bytes,
            meta,
            free: Mutex::new(VecDeque::new()),
            floor_blocks,
            wake: (Mutex::new(()), Condvar::new()),
            cache: RwLock::new(Cache {
                max_bytes: cache_bytes,
                bytes: 0,
                order: VecDeque::new(),
                map: HashMap::new(),
            }),
        }
    }

    pub fn count(&self) -> usize {
        self.meta.len()
    }

    /// Rebuilds the free list from the states (after recovery).
    pub fn rebuild_free_list(&self) {
        let mut free = self.free.lock();
        free.clear();
        free.extend(
            (1..self.meta.len() as u32)
                .filter(|&b| self.meta[b as usize].state.load(Ordering::Acquire) == FREE),
        );
    }

    pub fn free_count(&self) -> usize {
        self.free.lock().len()
    }

    /// Returns a block to the free list (its header is already erased on the device).
    pub fn release(&self, block: u32) {
        let m = &self.meta[block as usize];
        m.live_bytes.store(0, Ordering::Release);
        m.marker_bytes.store(0, Ordering::Release);
        m.max_marker_lsn.store(0, Ordering::Release);
        m.used_bytes.store(0, Ordering::Release);
        m.min_lsn.store(u64::MAX, Ordering::Release);
        m.seq.store(0, Ordering::Release);
        m.state.store(FREE, Ordering::Release);
        self.cache_remove(block);
        self.free.lock().push_back(block);
    }

    pub fn add_live(&self, block: u32, bytes: u32) {
        self.meta[block as usize]
            .live_bytes
            .fetch_add(bytes as i64, Ordering::AcqRel);
    }

    pub fn sub_live(&self, block: u32, bytes: u32) {
        self.meta[block as usize]
            .live_bytes
            .fetch_sub(bytes as i64, Ordering::AcqRel);
    }

    /// Counts a tombstone with `lsn` written into `block` (after its [`Blocks::note_frame`]).
    pub fn add_marker(&self, block: u32, bytes: u32, lsn: u64) {
        let m = &self.meta[block as usize];
        m.marker_bytes.fetch_add(bytes as i64, Ordering::AcqRel);
        m.max_marker_lsn.fetch_max(lsn, Ordering::AcqRel);
    }

    /// Notes a frame with `lsn` that ends at byte `end` of `block`, before it counts as live
    /// or as a marker (so that a block's dead bytes are never under-counted).
    pub fn note_frame(&self, block: u32, lsn: u64, end: u32) {
        let m = &self.meta[block as usize];
        m.min_lsn.fetch_min(lsn, Ordering::AcqRel);
        m.used_bytes.fetch_max(end as u64, Ordering::AcqRel);
    }

    pub fn seq(&self, block: u32) -> u64 {
        self.meta[block as usize].seq.load(Ordering::Acquire)
    }

    pub fn state(&self, block: u32) -> u8 {
        self.meta[block as usize].state.load(Ordering::Acquire)
    }

    pub fn cached(&self, block: u32) -> Option<Arc<AlignedBuf>> {
        self.cache.read().map.get(&block).cloned()
    }

    fn cache_remove(&self, block: u32) {
        let mut c = self.cache.write();
        if let Some(buf) = c.map.remove(&block) {
            c.bytes -= buf.len() as u64;
            c.order.retain(|&b| b != block);
        }
    }

    fn cache_insert(&self, block: u32, buf: Arc<AlignedBuf>) {
        let mut c = self.cache.write();
        if c.max_bytes < buf.len() as u64 {
            return;
        }
        c.bytes += buf.len() as u64;
        if let Some(old) = c.map.insert(block, buf) {
            c.bytes -= old.len() as u64;
            c.order.retain(|&b| b != block);
        }
        c.order.push_back(block);
        while c.bytes > c.max_bytes {
            let Some(victim) = c.order.pop_front() else {
                break;
            };
            if let Some(buf) = c.map.remove(&victim) {
                c.bytes -= buf.len() as u64;
            }
        }
    }

    /// Whether `m` is in use and may hold a superseded version of some key: frames that are
    /// neither live nor counted markers (overwritten, deleted, expired or dropped records,
    /// and after a restart any tombstone). A block of live records and markers holds none.
    fn may_hide_older(m: &BlockMeta) -> bool {
        if !matches!(m.state.load(Ordering::Acquire), OPEN | SEALED | DEFRAG) {
            return false;
        }
        let frames = m.used_bytes.load(Ordering::Acquire) as i64
            - quiver_wal::format::BLOCK_HEADER_BYTES as i64;
        let counted = m.live_bytes.load(Ordering::Acquire) + m.marker_bytes.load(Ordering::Acquire);
        frames > counted
    }

    /// The two smallest `(min_lsn, block)` over blocks that may hide an older version.
    fn oldest_hiding(&self) -> [(u64, u32); 2] {
        let mut two = [(u64::MAX, u32::MAX); 2];
        for (i, m) in self.meta.iter().enumerate() {
            if !Self::may_hide_older(m) {
                continue;
            }
            let c = (m.min_lsn.load(Ordering::Acquire), i as u32);
            if c < two[0] {
                two = [c, two[0]];
            } else if c < two[1] {
                two[1] = c;
            }
        }
        two
    }

    /// Smallest `min_lsn` over the blocks other than `except` that may hide an older version
    /// of some key. A marker (a tombstone, or the newest frame of a key that expired) with a
    /// smaller LSN is no longer needed: any older version of its key would sit in one of
    /// them. A block of live records only (a cold block) never holds markers back.
    pub fn oldest_hiding_lsn_except(&self, except: u32) -> u64 {
        Self::except(self.oldest_hiding(), except)
    }

    fn except(two: [(u64, u32); 2], block: u32) -> u64 {
        if two[0].1 == block {
            two[1].0
        } else {
            two[0].0
        }
    }

    /// Bytes defragmenting `block` would copy: its live records, and its markers while one of
    /// them may still be needed (a block of markers no longer needed copies nothing, so it
    /// becomes a candidate and is freed).
    pub fn kept_bytes(&self, block: u32) -> i64 {
        Self::kept_with(
            &self.meta[block as usize],
            self.oldest_hiding_lsn_except(block),
        )
    }

    fn kept_with(m: &BlockMeta, oldest_hiding_elsewhere: u64) -> i64 {
        let live = m.live_bytes.load(Ordering::Acquire);
        if m.max_marker_lsn.load(Ordering::Acquire) < oldest_hiding_elsewhere {
            return live;
        }
        live + m.marker_bytes.load(Ordering::Acquire)
    }

    /// Free blocks under which defragmentation runs short of space: the write floor plus a
    /// margin of 2% of the device, at least one batch. See `Inner::low_on_space`.
    pub fn low_water(&self) -> usize {
        let margin = (self.count() / 50).max(super::defrag::DEFRAG_BATCH_BLOCKS);
        self.floor_blocks + margin
    }

    pub fn wake_maintenance(&self) {
        let _g = self.wake.0.lock();
        self.wake.1.notify_all();
    }

    /// Sealed blocks whose kept bytes ([`Blocks::kept_bytes`]) are under `lwm_pct` of a
    /// block, emptiest first.
    pub fn defrag_candidates(&self, lwm_pct: u8, max: usize) -> Vec<u32> {
        let limit = self.block_bytes as i64 * lwm_pct as i64 / 100;
        let hiding = self.oldest_hiding();
        let mut c: Vec<(i64, u32)> = self
            .meta
            .iter()
            .enumerate()
            .filter(|(_, m)| m.state.load(Ordering::Acquire) == SEALED)
            .map(|(i, m)| (Self::kept_with(m, Self::except(hiding, i as u32)), i as u32))
            .filter(|&(live, _)| live < limit)
            .collect();
        c.sort_unstable();
        c.into_iter().take(max).map(|(_, b)| b).collect()
    }

    pub fn used_blocks(&self) -> usize {
        self.meta
            .iter()
            .filter(|m| matches!(m.state.load(Ordering::Acquire), OPEN | SEALED | DEFRAG))
            .count()
    }

    pub fn live_bytes(&self) -> u64 {
        self.meta
            .iter()
            .map(|m| m.live_bytes.load(Ordering::Acquire).max(0) as u64)
            .sum()
    }
}

impl BlockSource for Blocks {
    fn take_free(&self, kind: BlockKind, freeing: bool) -> Option<u32> {
        let mut free = self.free.lock();
        let reserve = match (kind, freeing) {
            (BlockKind::Foreground, false) => self.floor_blocks,
            (BlockKind::Foreground, true) => DEFRAG_RESERVE_BLOCKS,
            (BlockKind::Defrag, _) => 0,
        };
        if free.len() <= reserve {
            return None;
        }
        let b = free.pop_front()?;
        self.meta[b as usize].state.store(OPEN, Ordering::Release);
        if kind == BlockKind::Foreground && free.len() < self.low_water() {
            // Writers are eating into the margin: defragment now, not at the next tick.
            drop(free);
            self.wake_maintenance();
        }
        Some(b)
    }

    fn opened(&self, block: u32, seq: u64, kind: BlockKind) {
        let m = &self.meta[block as usize];
        m.seq.store(seq, Ordering::Release);
        m.kind.store(kind as u8, Ordering::Release);
        m.min_lsn.store(u64::MAX, Ordering::Release);
        m.used_bytes.store(
            quiver_wal::format::BLOCK_HEADER_BYTES as u64,
            Ordering::Release,
        );
        m.state.store(OPEN, Ordering::Release);
    }

    fn sealed(&self, block: u32, seq: u64, used_bytes: u32, bytes: Arc<AlignedBuf>) {
        let m = &self.meta[block as usize];
        if m.seq.load(Ordering::Acquire) != seq {
            return;
        }
        m.used_bytes.store(used_bytes as u64, Ordering::Release);
        self.cache_insert(block, bytes);
        let _ = m
            .state
            .compare_exchange(OPEN, SEALED, Ordering::AcqRel, Ordering::Acquire);
    }
}
