//! High-water marks of block sequences and LSNs, kept in block 0, so that neither is ever
//! handed out twice, across any number of crashes.
//!
//! Recovery learns the last sequence and LSN from the blocks it finds. A block whose first
//! write was torn (its header sector lost while later sectors landed) is not found: it reads
//! as free, and its frames' sequence and LSNs are unknown. Handing that sequence out again, to
//! the same block, would make its old frames valid frames of the new use (with LSNs above
//! newer writes) as soon as a later crash exposed them. So every sequence and LSN is below a
//! limit made durable before it is used, and an open starts above the last durable limit.
//!
//! ## Format
//! Two slots in block 0, each alone in its 4 KiB page, at bytes 4096 and 8192; the current
//! one is the valid slot with the higher generation (a torn write of one leaves the other):
//! ```text
//!  0  8  magic "QVRMARKS"
//!  8  4  version (1)
//! 12  4  zero
//! 16  8  generation: +1 per write
//! 24  8  store id, low 64 bits
//! 32  8  sequence limit: every block sequence handed out is below it
//! 40  8  LSN limit: every LSN handed out is below it
//! 48  8  xxh3-64 of bytes 0..48
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use quiver_wal::{AlignedBuf, Device, IO_ALIGN};

use xxhash_rust::xxh3::xxh3_64;

use quiver_wal::format::BlockKind;
use quiver_wal::{BlockSource, Result};

use super::blocks::Blocks;

pub(crate) const MAGIC: &[u8; 8] = b"QVRMARKS";
const VERSION: u32 = 1;
const SLOT_BYTES: usize = 56;
/// Where the two slots live in block 0 (the superblock is in the first page).
pub(crate) const SLOT_OFFSETS: [u64; 2] = [IO_ALIGN as u64, 2 * IO_ALIGN as u64];
/// Block sequences reserved per durable write of the marks: an open after a crash starts
/// this far above the last one.
const SEQ_STEP: u64 = 1 << 20;
/// LSNs reserved per durable write of the marks.
const LSN_STEP: u64 = 1 << 30;

/// The current slot's values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    pub generation: u64,
    pub seq: u64,
    pub lsn: u64,
}

impl Limits {
    fn encode(&self, store_id_lo: u64, out: &mut [u8]) {
        out[..SLOT_BYTES].fill(0);
        out[0..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&self.generation.to_le_bytes());
        out[24..32].copy_from_slice(&store_id_lo.to_le_bytes());
        out[32..40].copy_from_slice(&self.seq.to_le_bytes());
        out[40..48].copy_from_slice(&self.lsn.to_le_bytes());
        let sum = xxh3_64(&out[0..48]);
        out[48..56].copy_from_slice(&sum.to_le_bytes());
    }

    /// `None` for a slot never written, torn, or of another store.
    fn decode(b: &[u8], store_id_lo: u64) -> Option<Limits> {
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let ok = b.len() >= SLOT_BYTES
            && &b[0..8] == MAGIC
            && b[8..12] == VERSION.to_le_bytes()
            && xxh3_64(&b[0..48]) == u64_at(48)
            && u64_at(24) == store_id_lo;
        ok.then(|| Limits {
            generation: u64_at(16),
            seq: u64_at(32),
            lsn: u64_at(40),
        })
    }
}

/// The durable limits and what this run has reserved under them.
pub(crate) struct Marks {
    device: Arc<dyn Device>,
    store_id_lo: u64,
    /// The slot last written (or read); held while a new one is written.
    current: Mutex<Limits>,
    seq_limit: AtomicU64,
    lsn_limit: AtomicU64,
    /// This run wrote the marks (a clean close then records where it stopped).
    raised: AtomicBool,
}

impl Marks {
    /// Reads the current limits from block 0; zeros when no slot is valid (a new store, or one
    /// written before the marks existed). Nothing is written until something is reserved.
    pub fn load(device: Arc<dyn Device>, store_id_lo: u64) -> Result<Marks> {
        let mut best = Limits::default();
        let mut page = AlignedBuf::new(IO_ALIGN);
        for offset in SLOT_OFFSETS {
            device.read_at(&mut page, offset)?;
            if let Some(l) = Limits::decode(&page, store_id_lo) {
                if l.generation >= best.generation {
                    best = l;
                }
            }
        }
        Ok(Marks {
            device,
            store_id_lo,
            current: Mutex::new(best),
            seq_limit: AtomicU64::new(best.seq),
            lsn_limit: AtomicU64::new(best.lsn),
            raised: AtomicBool::new(false),
        })
    }

    /// The durable limits as loaded: an open starts its sequences and LSNs at or above them.
    pub fn floors(&self) -> (u64, u64) {
        let c = *self.current.lock();
        (c.seq, c.lsn)
    }

    /// Returns once a limit above block sequence `seq` is durable.
    pub fn reserve_seq(&self, seq: u64) -> Result<()> {
        if seq < self.seq_limit.load(Ordering::Acquire) {
            return Ok(());
        }
        self.raise(seq + 1, 0)
    }

    /// Returns once a limit above `lsn` is durable.
    pub fn reserve_lsn(&self, lsn: u64) -> Result<()> {
        if lsn < self.lsn_limit.load(Ordering::Acquire) {
            return Ok(());
        }
        self.raise(0, lsn + 1)
    }

    /// Writes limits at least `seq` and `lsn` (plus a step, so that this is rare) and syncs.
    fn raise(&self, seq: u64, lsn: u64) -> Result<()> {
        let mut cur = self.current.lock();
        let (have_seq, have_lsn) = (
            self.seq_limit.load(Ordering::Acquire),
            self.lsn_limit.load(Ordering::Acquire),
        );
        if seq <= have_seq && lsn <= have_lsn {
            return Ok(());
        }
        let next = Limits {
            generation: cur.generation + 1,
            seq: have_seq.max(seq.saturating_add(SEQ_STEP)),
            lsn: have_lsn.max(lsn.saturating_add(LSN_STEP)),
        };
        self.write(&next)?;
        *cur = next;
        self.seq_limit.store(next.seq, Ordering::Release);
        self.lsn_limit.store(next.lsn, Ordering::Release);
        self.raised.store(true, Ordering::Release);
        Ok(())
    }

    /// At a clean close, after the last write is durable: records exactly where this run's
    /// sequences and LSNs stopped, so that the next open goes on from there instead of
    /// jumping a step. Nothing may be reserved after it.
    pub fn settle(&self, next_seq: u64, next_lsn: u64) -> Result<()> {
        if !self.raised.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut cur = self.current.lock();
        let next = Limits {
            generation: cur.generation + 1,
            seq: next_seq,
            lsn: next_lsn,
        };
        self.write(&next)?;
        *cur = next;
        Ok(())
    }

    /// Writes `l` into the slot its generation picks, and syncs.
    fn write(&self, l: &Limits) -> Result<()> {
        let mut page = AlignedBuf::new(IO_ALIGN);
        l.encode(self.store_id_lo, &mut page);
        let offset = SLOT_OFFSETS[(l.generation % 2) as usize];
        self.device.write_at(&page, offset)?;
        self.device.sync()?;
        Ok(())
    }
}

/// The writers' block source: the block table, with every new sequence reserved first.
pub(crate) struct ReservingSource {
    pub blocks: Arc<Blocks>,
    pub marks: Arc<Marks>,
}

impl BlockSource for ReservingSource {
    fn take_free(&self, kind: BlockKind, freeing: bool) -> Option<u32> {
        self.blocks.take_free(kind, freeing)
    }
    fn reserve_seq(&self, seq: u64) -> Result<()> {
        self.marks.reserve_seq(seq)
    }
    fn opened(&self, block: u32, seq: u64, kind: BlockKind) {
        self.blocks.opened(block, seq, kind)
    }
    fn sealed(&self, block: u32, seq: u64, used_bytes: u32, bytes: Arc<AlignedBuf>) {
        self.blocks.sealed(block, seq, used_bytes, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_wal::device::{CrashMode, FaultDevice, FaultEffect, FaultOp, FaultPlan, FaultRule};

    fn device() -> Arc<FaultDevice> {
        Arc::new(FaultDevice::new(1 << 20, 5))
    }

    #[test]
    fn a_reservation_is_durable_before_it_is_used_and_survives_a_torn_rewrite() {
        let dev = device();
        let marks = Marks::load(Arc::clone(&dev) as Arc<dyn Device>, 9).unwrap();
        assert_eq!(marks.floors(), (0, 0), "a new store has no marks");
        marks.reserve_seq(5).unwrap();
        marks.reserve_lsn(70).unwrap();
        // Both reservations are durable: a power loss dropping everything unsynced keeps them.
        dev.power_loss(CrashMode::DropUnsynced);
        let again = Marks::load(Arc::clone(&dev) as Arc<dyn Device>, 9).unwrap();
        let (seq, lsn) = again.floors();
        assert!(seq > 5 && lsn > 70, "{seq} {lsn}");
        // A rewrite whose sync never happens and whose write is lost leaves the other slot.
        dev.set_plan(FaultPlan::new(1).with(FaultRule::once_after(
            FaultOp::Sync,
            0,
            FaultEffect::Eio,
        )));
        assert!(again.reserve_seq(seq + 3).is_err());
        dev.clear_faults();
        dev.power_loss(CrashMode::TearLast { keep_sectors: 0 });
        let third = Marks::load(Arc::clone(&dev) as Arc<dyn Device>, 9).unwrap();
        assert_eq!(third.floors(), (seq, lsn));
        // Another store's marks are not ours.
        let other = Marks::load(Arc::clone(&dev) as Arc<dyn Device>, 10).unwrap();
        assert_eq!(other.floors(), (0, 0));
    }

    #[test]
    fn settle_records_where_a_clean_run_stopped() {
        let dev = device();
        let marks = Marks::load(Arc::clone(&dev) as Arc<dyn Device>, 9).unwrap();
        marks.settle(3, 4).unwrap();
        assert_eq!(
            dev.stats().writes,
            0,
            "a run that reserved nothing writes nothing"
        );
        marks.reserve_seq(3).unwrap();
        marks.settle(4, 9).unwrap();
        let again = Marks::load(dev as Arc<dyn Device>, 9).unwrap();
        assert_eq!(again.floors(), (4, 9));
    }
}
