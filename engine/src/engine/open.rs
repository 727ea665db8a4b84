//! Opening a store: the device, the superblock (formatting a new device), recovery, and the
//! background threads.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use quiver_index::Index;
use quiver_wal::device::{open_path, FileOptions, IoBackend};
use quiver_wal::format::{
    BlockKind, Superblock, BLOCK_MAGIC, MAX_WRITE_BLOCK_BYTES, MIN_WRITE_BLOCK_BYTES,
};
use quiver_wal::{AlignedBuf, Device, LogWriter, MemoryDevice, IO_ALIGN};

use super::blocks::{OPEN, SEALED};
use super::marks::{Marks, ReservingSource};
use super::stats::Counters;
use super::{Blocks, Engine, Inner, STRIPES};
use crate::config::{Config, DeviceConfig};
use crate::error::{Error, Result};

/// Fewest data blocks a device must hold: two for writers, two for defragmentation headroom.
const MIN_DATA_BLOCKS: u64 = 6;
/// Most write blocks a device may hold (block 0 included): a record's location names its
/// block in 24 bits (`Location::MAX_BLOCK`), so a block past it could not be addressed.
pub(crate) const MAX_BLOCKS: u64 = quiver_index::Location::MAX_BLOCK as u64 + 1;

/// Refuses a device of `bytes` cut into `block_bytes` blocks when the last block could not be
/// named by a location.
fn check_addressable(bytes: u64, block_bytes: u64) -> Result<()> {
    let blocks = bytes / block_bytes;
    if blocks > MAX_BLOCKS {
        return Err(Error::DeviceTooLarge {
            bytes,
            blocks,
            block_bytes,
            max_blocks: MAX_BLOCKS,
            max_bytes: MAX_BLOCKS * block_bytes,
        });
    }
    Ok(())
}

pub(crate) fn open(config: Config) -> Result<Engine> {
    config.validate()?;
    let device = open_device(&config)?;
    open_on(config, device)
}

/// Opens a store on a device the caller built (a fault injector in tests, say). The
/// checkpoint path, if any, still comes from the configuration.
pub(crate) fn open_on(config: Config, device: Arc<dyn Device>) -> Result<Engine> {
    config.validate()?;
    let sb = read_or_format(device.as_ref(), &config)?;
    let block_bytes = sb.write_block_bytes as u64;
    check_addressable(sb.device_bytes, block_bytes)?;
    let count = sb.device_bytes / block_bytes;
    let floor = ((count - 1) * config.min_free_pct as u64 / 100)
        .max(super::blocks::DEFRAG_RESERVE_BLOCKS as u64 + 1) as usize;
    let blocks = Arc::new(Blocks::new(
        count as usize,
        block_bytes,
        floor,
        config.post_write_cache_bytes,
    ));
    let index = Index::with_capacity(config.expected_records);
    let rec = super::recovery::recover(&config, device.as_ref(), &sb, &blocks, &index)?;
    blocks.rebuild_free_list();
    // Sequences and LSNs go on above anything ever handed out, seen by recovery or not.
    let marks = Arc::new(Marks::load(Arc::clone(&device), sb.store_id as u64)?);
    let (seq_floor, lsn_floor) = marks.floors();
    let next_seq = Arc::new(AtomicU64::new(rec.next_seq.max(seq_floor)));
    let source: Arc<dyn quiver_wal::BlockSource> = Arc::new(ReservingSource {
        blocks: Arc::clone(&blocks),
        marks: Arc::clone(&marks),
    });
    let writer = |kind| {
        LogWriter::new(
            Arc::clone(&device),
            Arc::clone(&source),
            sb.write_block_bytes,
            sb.store_id as u64,
            kind,
            Arc::clone(&next_seq),
        )
    };
    let inner = Arc::new(Inner {
        fg: writer(BlockKind::Foreground),
        dw: writer(BlockKind::Defrag).with_max_io_bytes(config.defrag_io_bytes as usize),
        config: Config {
            write_block_bytes: sb.write_block_bytes,
            ..config
        },
        device,
        index,
        blocks,
        next_lsn: AtomicU64::new(rec.next_lsn.max(lsn_floor)),
        next_seq: Arc::clone(&next_seq),
        marks,
        reclaim_before_writes: AtomicBool::new(false),
        stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        store_id: sb.store_id,
        dropped: RwLock::new(rec.dropped.iter().copied().collect::<HashSet<u32>>()),
        reclaim_pending: Mutex::new(rec.dropped_with_records),
        counters: Counters::default(),
        damage: super::damage::DamageSet::new(rec.damaged, rec.damage_changed),
        recovery: rec.report,
        shutdown: AtomicBool::new(false),
        checkpoint_lock: Mutex::new(()),
        scan_guard: RwLock::new(()),
        scan_lease_ms: AtomicU64::new(0),
        scan_moves: Default::default(),
    });
    if let Some(b) = rec.last_foreground {
        inner.resume_foreground(b)?;
    }
    // Reclaiming changes the store: wait for a write that needs it (a read-only run, say
    // `quiver get`, leaves the device as it found it).
    inner
        .reclaim_before_writes
        .store(inner.low_on_space(), Ordering::Release);
    let engine = Engine {
        workers: Mutex::new(Vec::new()),
        inner,
    };
    // Before defragmentation may free a damaged frame, the damage is on the device.
    engine.inner.persist_damage();
    if engine.inner.config.background {
        engine.start_workers();
    }
    Ok(engine)
}

fn open_device(config: &Config) -> Result<Arc<dyn Device>> {
    let backend = if config.io_uring {
        IoBackend::Uring
    } else {
        IoBackend::Psync
    };
    match &config.device {
        DeviceConfig::Memory { size_bytes } => Ok(Arc::new(MemoryDevice::new(
            *size_bytes / IO_ALIGN as u64 * IO_ALIGN as u64,
        ))),
        DeviceConfig::File { path, size_bytes } => Ok(open_path(
            path,
            &FileOptions {
                create_bytes: Some(*size_bytes),
                backend,
                direct: config.direct_io,
            },
        )?),
        DeviceConfig::BlockDevice { path } => Ok(open_path(
            path,
            &FileOptions {
                create_bytes: None,
                backend,
                direct: config.direct_io,
            },
        )?),
    }
}

/// Reads the superblock, or formats a device whose first 4 KiB are zeros and that holds no
/// trace of a store (see [`refuse_lost_superblock`]). A device holding anything else is
/// refused: it is not ours to overwrite.
fn read_or_format(device: &dyn Device, config: &Config) -> Result<Superblock> {
    let mut first = AlignedBuf::new(IO_ALIGN);
    device.read_at(&mut first, 0)?;
    match Superblock::decode(&first) {
        Ok(sb) => {
            if sb.device_bytes > device.capacity() {
                return Err(Error::Wal(quiver_wal::Error::NotOurs(format!(
                    "superblock says {} bytes but the device has {}",
                    sb.device_bytes,
                    device.capacity()
                ))));
            }
            let b = sb.write_block_bytes;
            if !(MIN_WRITE_BLOCK_BYTES..=MAX_WRITE_BLOCK_BYTES).contains(&b) || !b.is_power_of_two()
            {
                return Err(Error::Wal(quiver_wal::Error::NotOurs(format!(
                    "superblock names write blocks of {b} bytes, not a power of two from {MIN_WRITE_BLOCK_BYTES} to {MAX_WRITE_BLOCK_BYTES}"
                ))));
            }
            let version = quiver_wal::format::superblock_version(&first);
            if version < quiver_wal::format::FORMAT_VERSION {
                upgrade(device, &sb, version)?;
            }
            if sb.write_block_bytes != config.write_block_bytes {
                tracing::info!(
                    configured = config.write_block_bytes,
                    on_device = sb.write_block_bytes,
                    "using the write block size the device was formatted with"
                );
            }
            Ok(sb)
        }
        Err(quiver_wal::Error::NotOurs(why)) => {
            if first.iter().any(|&b| b != 0) {
                return Err(Error::Wal(quiver_wal::Error::NotOurs(format!(
                    "{why}; the device holds other data and is left untouched"
                ))));
            }
            refuse_lost_superblock(device)?;
            format(device, config)
        }
        Err(e) => Err(e.into()),
    }
}

/// A superblock of zeros over a device that still holds a store is a lost superblock (a
/// zeroed or unreadable first sector), not a blank device: formatting would give the device a
/// new store id and make every record on it unreachable. The marks of block 0 (at 4 and
/// 8 KiB) and the header of block 1 for every write block size (128 KiB..=8 MiB) are looked
/// at: any of them holding its magic refuses the open.
fn refuse_lost_superblock(device: &dyn Device) -> Result<()> {
    let marks = super::marks::SLOT_OFFSETS.map(|at| (at, super::marks::MAGIC, "marks slot"));
    let blocks = (MIN_WRITE_BLOCK_BYTES.trailing_zeros()..=MAX_WRITE_BLOCK_BYTES.trailing_zeros())
        .map(|shift| (1u64 << shift, &BLOCK_MAGIC, "write block header"));
    for (at, magic, what) in marks.into_iter().chain(blocks) {
        if at + IO_ALIGN as u64 > device.capacity() {
            continue;
        }
        let mut page = AlignedBuf::new(IO_ALIGN);
        device.read_at(&mut page, at)?;
        if page[..magic.len()] == magic[..] {
            return Err(Error::Wal(quiver_wal::Error::NotOurs(format!(
                "the superblock (the first 4 KiB) is zeros, but byte {at} holds a Quiver {what}: \
                 a store whose superblock was lost; refusing to format over it (restore the \
                 superblock from a copy, or wipe the device to start a new store)"
            ))));
        }
    }
    Ok(())
}

/// Rewrites an older format's superblock with the current version, so that a build that
/// cannot read the frames written from now on (version 2 frames carry a key tag where version
/// 1 had the value length) refuses the store instead of misreading it. Everything else on the
/// device stays as it is and is read as before.
fn upgrade(device: &dyn Device, sb: &Superblock, from: u32) -> Result<()> {
    let mut buf = AlignedBuf::new(IO_ALIGN);
    sb.encode(&mut buf);
    device.write_at(&buf, 0)?;
    device.sync()?;
    tracing::info!(
        from,
        to = quiver_wal::format::FORMAT_VERSION,
        "upgraded the store's format version"
    );
    Ok(())
}

fn format(device: &dyn Device, config: &Config) -> Result<Superblock> {
    let block_bytes = config.write_block_bytes as u64;
    let blocks = device.capacity() / block_bytes;
    check_addressable(device.capacity(), block_bytes)?;
    if blocks < MIN_DATA_BLOCKS + 1 {
        return Err(Error::Wal(quiver_wal::Error::DeviceTooSmall {
            bytes: device.capacity(),
            min: (MIN_DATA_BLOCKS + 1) * block_bytes,
            blocks: MIN_DATA_BLOCKS + 1,
            block_bytes: config.write_block_bytes,
        }));
    }
    let sb = Superblock {
        write_block_bytes: config.write_block_bytes,
        device_bytes: blocks * block_bytes,
        store_id: random_id(),
        created_ms: quiver_wal::writer::now_ms(),
    };
    let mut buf = AlignedBuf::new(IO_ALIGN);
    sb.encode(&mut buf);
    device.write_at(&buf, 0)?;
    device.sync()?;
    tracing::info!(
        bytes = sb.device_bytes,
        block_bytes,
        "formatted a new store"
    );
    Ok(sb)
}

fn random_id() -> u128 {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `len` bytes into the valid buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        let t = quiver_wal::writer::now_ms() as u128;
        return xxhash_rust::xxh3::xxh3_128(
            &[t.to_le_bytes(), (std::process::id() as u128).to_le_bytes()].concat(),
        );
    }
    u128::from_le_bytes(bytes)
}

impl Engine {
    fn start_workers(&self) {
        let flusher = Arc::clone(&self.inner);
        let maint = Arc::clone(&self.inner);
        let mut w = self.workers.lock();
        w.push(
            std::thread::Builder::new()
                .name("quiver-flush".into())
                .spawn(move || flusher.flush_loop())
                .expect("spawn flusher"),
        );
        w.push(
            std::thread::Builder::new()
                .name("quiver-maint".into())
                .spawn(move || maint.maintenance_loop())
                .expect("spawn maintenance"),
        );
    }
}

impl Inner {
    /// Hands the foreground block `b`, the one opened last, back to the foreground writer
    /// when it has room, so that a store opened and closed often (a process per command)
    /// fills its blocks instead of starting one per open. The block was scanned by this
    /// open, so its end is the end of its valid frames, and no frame of its sequence lies
    /// past it: appending there is what the run that opened it would have done.
    fn resume_foreground(&self, b: u32) -> Result<()> {
        use quiver_wal::buf::align_up;
        let m = &self.blocks.meta[b as usize];
        let fill = m.used_bytes.load(Ordering::Acquire) as usize;
        let bb = self.blocks.block_bytes as usize;
        let smallest_frame =
            quiver_wal::format::padded_frame_len(quiver_wal::format::RECORD_HEADER_BYTES + 1);
        if m.state.load(Ordering::Acquire) != SEALED || fill + smallest_frame > bb {
            return Ok(());
        }
        let mut buf = AlignedBuf::new(bb);
        let head = align_up(fill, IO_ALIGN);
        self.device
            .read_at(&mut buf[..head], b as u64 * bb as u64)?;
        buf[fill..head].fill(0);
        let seq = m.seq.load(Ordering::Acquire);
        self.fg.resume(b, seq, buf, fill)?;
        m.state.store(OPEN, Ordering::Release);
        tracing::debug!(block = b, seq, fill, "continuing the last foreground block");
        Ok(())
    }

    /// A run that found space short at open reclaims it (dropped groups, expired records,
    /// defragmentation) at its first write rather than refuse writes until the background
    /// worker gets to it: a short-lived process never runs that worker.
    pub(crate) fn reclaim_if_short(&self) {
        if !self.low_on_space() {
            return;
        }
        self.reclaim_dropped_groups();
        self.sweep_expired();
        match self.defrag_pass(usize::MAX) {
            Ok(freed) => tracing::info!(freed, "space was short at open; defragmented"),
            Err(e) => tracing::warn!(error = %e, "defragmentation at open stopped"),
        }
    }

    /// Puts buffered writes on the device at least every `flush_interval_ms`.
    fn flush_loop(&self) {
        let interval = Duration::from_millis(self.config.flush_interval_ms);
        while !self.sleep(interval) {
            for w in [&self.fg, &self.dw] {
                if let Err(e) = w.flush() {
                    let e = self.failed(e);
                    tracing::error!(error = %e, "background flush failed; the store refuses writes");
                }
            }
        }
    }

    /// Defragmentation, expiry, dropped-group reclaim and periodic checkpoints.
    fn maintenance_loop(&self) {
        let mut last_sweep = Instant::now();
        let mut last_ckpt = Instant::now();
        let tick = Duration::from_millis(50);
        let mut short_of_space = false;
        loop {
            // While space is short and the last pass freed blocks, go straight on.
            let stop = if short_of_space {
                self.shutdown.load(Ordering::Acquire)
            } else {
                self.sleep(tick)
            };
            if stop {
                return;
            }
            if self.fg.is_failed().is_some() {
                continue;
            }
            self.reclaim_dropped_groups();
            if last_sweep.elapsed()
                >= Duration::from_secs(self.config.expiry_sweep_interval_s.max(1))
            {
                self.sweep_expired();
                last_sweep = Instant::now();
            }
            short_of_space = match self.defrag_pass(usize::MAX) {
                Ok(freed) => freed > 0 && self.low_on_space(),
                Err(e) => {
                    tracing::warn!(error = %e, "defragmentation pass stopped");
                    false
                }
            };
            match self.evict_if_needed() {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "evicted the records closest to expiry"),
                Err(e) => tracing::warn!(error = %e, "eviction stopped"),
            }
            let every = self.config.checkpoint_interval_s;
            if every > 0 && last_ckpt.elapsed() >= Duration::from_secs(every) {
                if let Err(e) = self.checkpoint() {
                    tracing::warn!(error = %e, "periodic checkpoint failed");
                }
                last_ckpt = Instant::now();
            }
        }
    }

    /// Sleeps up to `d`; returns true when the store is shutting down.
    pub fn sleep(&self, d: Duration) -> bool {
        let mut g = self.blocks.wake.0.lock();
        if self.shutdown.load(Ordering::Acquire) {
            return true;
        }
        self.blocks.wake.1.wait_for(&mut g, d);
        self.shutdown.load(Ordering::Acquire)
    }
}
