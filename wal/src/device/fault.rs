//! A fault-injecting device in RAM, for tests.
//!
//! It keeps two images apart: what was written (what reads see, like a page cache) and what
//! was made durable by [`Device::sync`]. A simulated power loss ([`FaultDevice::crash`])
//! returns the durable image with the unsynced writes dropped, kept, torn at a 512-byte sector
//! boundary, or each of them chosen at random; [`FaultDevice::power_loss`] also resets the
//! device to that image so that it can be reopened. Reads, writes and syncs fail with EIO or
//! ENOSPC at chosen moments (after N operations of a kind, with a probability, or on a range
//! of offsets), reads can return a flipped bit, and bits can be flipped at rest. Every random
//! choice comes from one seeded [`SplitMix64`], so a failure replays exactly from its seed.
//!
//! Counting: each [`ReadOp`] of a `read_many` is one read; each `write_many` call is one
//! write; each `sync` call is one sync. [`FaultOp::Persist`] counts every write and sync
//! together with the steps of files kept beside the device (a checkpoint's write, sync,
//! rename and directory sync, reported through [`FaultDevice::file_step`]), so that one rule
//! cuts the power at the N-th step of any stream: the writers, the defragmentation erase, or
//! the checkpoint.

use std::io;
use std::ops::Range;

use parking_lot::Mutex;

use super::{check_io, Device, ReadOp, WriteOp};
use crate::error::{Error, Result};

/// The unit a torn write keeps or loses: a disk sector.
pub const SECTOR_BYTES: usize = 512;
/// Most unsynced writes the device remembers; past it the oldest is made durable (a real
/// cache cannot hold unbounded dirty data either).
pub const MAX_UNSYNCED_WRITES: usize = 4096;
/// Most rules one plan may carry.
pub const MAX_FAULT_RULES: usize = 64;

/// A small, fast, seedable generator (Steele et al., SplitMix64): the device's only source of
/// randomness, so that a seed replays every fault.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `per_million` / 1,000,000.
    pub fn chance(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < per_million as u64
    }
}

/// Which kind of operation a rule watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultOp {
    Read,
    Write,
    Sync,
    /// Any write, any sync, and any file step ([`FaultDevice::file_step`]), counted together.
    Persist,
}

/// When a rule fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultWhen {
    /// On every operation of its kind after the first `n` (counted from when the plan was set).
    AfterOps(u64),
    /// On each operation of its kind with probability `per_million` / 1,000,000.
    Probability { per_million: u32 },
    /// On every operation of its kind that touches this byte range of the device.
    Touching(Range<u64>),
}

/// What a firing rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultEffect {
    /// The operation fails with EIO and changes nothing.
    Eio,
    /// The operation fails with ENOSPC and changes nothing.
    NoSpace,
    /// Reads only: the read succeeds but one random bit of its buffer is flipped.
    FlipReadBit,
    /// Writes, syncs and file steps: the power fails. A write lands its first sectors (a
    /// random count, possibly none) unsynced; a sync makes nothing durable; a file step does
    /// not happen. The call fails with EIO and the device is dead afterwards: every later
    /// operation fails with EIO until [`FaultDevice::power_loss`]. (Reads: plain EIO.)
    PowerCut,
}

/// One fault: an operation kind, a trigger, an effect, and how many times it may fire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRule {
    pub op: FaultOp,
    pub when: FaultWhen,
    pub effect: FaultEffect,
    /// `None`: fires every time its trigger holds; `Some(n)`: at most `n` times.
    pub times: Option<u64>,
}

impl FaultRule {
    /// Fails the `(n + 1)`-th operation of kind `op` once with `effect`.
    pub fn once_after(op: FaultOp, n: u64, effect: FaultEffect) -> FaultRule {
        FaultRule {
            op,
            when: FaultWhen::AfterOps(n),
            effect,
            times: Some(1),
        }
    }
}

/// A set of fault rules and the seed of every random choice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    pub seed: u64,
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    pub fn new(seed: u64) -> FaultPlan {
        FaultPlan {
            seed,
            rules: Vec::new(),
        }
    }

    pub fn with(mut self, rule: FaultRule) -> FaultPlan {
        self.rules.push(rule);
        self
    }
}

/// What happens to the unsynced writes at a power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// All are lost: the image is exactly what was synced.
    DropUnsynced,
    /// All land (the cache was written back just before the power went).
    KeepUnsynced,
    /// All but the last land; the last keeps only its first `keep_sectors` 512-byte sectors.
    TearLast { keep_sectors: usize },
    /// All but the last land; the last loses its first `lose_sectors` 512-byte sectors and the
    /// rest of it lands (a device may put a request's sectors on the media in any order): the
    /// shape that loses a new block's header while frames after it survive.
    TearLastFront { lose_sectors: usize },
    /// Each, in order, lands whole, is lost, or is torn at a random sector, chosen from the
    /// device's seed.
    Random,
}

/// Counts of what the device did and what it injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub reads: u64,
    pub writes: u64,
    pub syncs: u64,
    pub injected_eio: u64,
    pub injected_enospc: u64,
    pub flipped_read_bits: u64,
    pub power_cuts: u64,
    /// File steps reported through [`FaultDevice::file_step`] (refused ones included).
    pub file_steps: u64,
    pub bits_flipped_at_rest: u64,
    pub crashes: u64,
    /// Unsynced writes pending right now.
    pub unsynced_writes: u64,
}

struct Pending {
    offset: u64,
    bytes: Vec<u8>,
}

struct Armed {
    rule: FaultRule,
    fired: u64,
}

struct State {
    written: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Pending>,
    rules: Vec<Armed>,
    rng: SplitMix64,
    dead: bool,
    counts: [u64; 4],
    stats: FaultStats,
}

/// An in-memory device that separates written from durable bytes and injects faults.
pub struct FaultDevice {
    state: Mutex<State>,
    capacity: u64,
}

fn eio(what: &str) -> Error {
    Error::io(
        format!("fault device: injected EIO on {what}"),
        io::Error::from_raw_os_error(libc::EIO),
    )
}

fn enospc(what: &str) -> Error {
    Error::io(
        format!("fault device: injected ENOSPC on {what}"),
        io::Error::from_raw_os_error(libc::ENOSPC),
    )
}

fn op_index(op: FaultOp) -> usize {
    match op {
        FaultOp::Read => 0,
        FaultOp::Write => 1,
        FaultOp::Sync => 2,
        FaultOp::Persist => 3,
    }
}

impl FaultDevice {
    /// A zeroed device of `capacity` bytes (rounded down to 4 KiB).
    pub fn new(capacity: u64, seed: u64) -> FaultDevice {
        let capacity = capacity / crate::IO_ALIGN as u64 * crate::IO_ALIGN as u64;
        FaultDevice::from_image(vec![0; capacity as usize], seed)
    }

    /// A device whose written and durable contents are `image` (its length is the capacity,
    /// rounded down to 4 KiB).
    pub fn from_image(mut image: Vec<u8>, seed: u64) -> FaultDevice {
        image.truncate(image.len() / crate::IO_ALIGN * crate::IO_ALIGN);
        let capacity = image.len() as u64;
        FaultDevice {
            state: Mutex::new(State {
                written: image.clone(),
                durable: image,
                unsynced: Vec::new(),
                rules: Vec::new(),
                rng: SplitMix64::new(seed),
                dead: false,
                counts: [0; 4],
                stats: FaultStats::default(),
            }),
            capacity,
        }
    }

    /// Replaces the fault rules, restarts the operation counts and reseeds the generator.
    /// Panics on more than [`MAX_FAULT_RULES`] rules (a test bug, not an input).
    pub fn set_plan(&self, plan: FaultPlan) {
        assert!(
            plan.rules.len() <= MAX_FAULT_RULES,
            "at most {MAX_FAULT_RULES} fault rules"
        );
        let mut st = self.state.lock();
        st.rng = SplitMix64::new(plan.seed);
        st.counts = [0; 4];
        st.rules = plan
            .rules
            .into_iter()
            .map(|rule| Armed { rule, fired: 0 })
            .collect();
    }

    /// Removes every fault rule (a dead device stays dead until a power loss).
    pub fn clear_faults(&self) {
        self.state.lock().rules.clear();
    }

    pub fn stats(&self) -> FaultStats {
        let st = self.state.lock();
        FaultStats {
            unsynced_writes: st.unsynced.len() as u64,
            ..st.stats
        }
    }

    /// The bytes a reader sees now (written, synced or not).
    pub fn written_image(&self) -> Vec<u8> {
        self.state.lock().written.clone()
    }

    /// The image a power loss now would leave with `mode`. The device itself is unchanged.
    pub fn crash(&self, mode: CrashMode) -> Vec<u8> {
        let mut st = self.state.lock();
        st.stats.crashes += 1;
        crash_image(&mut st, mode)
    }

    /// A power loss: the device becomes the image `mode` leaves (written = durable = image),
    /// unsynced writes are gone, the device is alive again, and the rules are kept.
    pub fn power_loss(&self, mode: CrashMode) -> Vec<u8> {
        let mut st = self.state.lock();
        st.stats.crashes += 1;
        let image = crash_image(&mut st, mode);
        st.written.copy_from_slice(&image);
        st.durable.copy_from_slice(&image);
        st.unsynced.clear();
        st.dead = false;
        image
    }

    /// Reports one step of writing a file kept beside the device (`what` names it for the
    /// error): it counts as a [`FaultOp::Persist`] operation, fails with EIO on a dead device,
    /// and a firing rule refuses it (a [`FaultEffect::PowerCut`] also kills the device). The
    /// caller performs the step only when this returns `Ok`.
    pub fn file_step(&self, what: &str) -> Result<()> {
        let mut st = self.state.lock();
        st.stats.file_steps += 1;
        if st.dead {
            st.stats.injected_eio += 1;
            return Err(eio(&format!("{what} after a power cut")));
        }
        match st.check(FaultOp::Persist, None) {
            Some(FaultEffect::PowerCut) => {
                kill(&mut st);
                Err(eio(&format!("{what}: power cut")))
            }
            Some(e @ FaultEffect::NoSpace) => {
                st.count_error(e);
                Err(enospc(what))
            }
            Some(e @ FaultEffect::Eio) => {
                st.count_error(e);
                Err(eio(what))
            }
            Some(FaultEffect::FlipReadBit) | None => Ok(()),
        }
    }

    /// Whether the power is off (a [`FaultEffect::PowerCut`] fired since the last power loss).
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// Flips bit `bit` (0..8) of the byte at `offset`, written and durable alike (damage at
    /// rest). Panics when `offset` is beyond the device (a test bug).
    pub fn flip_bit(&self, offset: u64, bit: u8) {
        let mut st = self.state.lock();
        let mask = 1u8 << (bit % 8);
        st.written[offset as usize] ^= mask;
        st.durable[offset as usize] ^= mask;
        st.stats.bits_flipped_at_rest += 1;
    }

    /// Flips `count` random bits inside `range` (from the seed); returns (offset, bit) of each.
    pub fn flip_random_bits(&self, range: Range<u64>, count: usize) -> Vec<(u64, u8)> {
        assert!(
            range.start < range.end && range.end <= self.capacity,
            "range within the device"
        );
        let picks: Vec<(u64, u8)> = {
            let mut st = self.state.lock();
            (0..count)
                .map(|_| {
                    let off = range.start + st.rng.below(range.end - range.start);
                    (off, st.rng.below(8) as u8)
                })
                .collect()
        };
        for &(off, bit) in &picks {
            self.flip_bit(off, bit);
        }
        picks
    }
}

impl State {
    /// Decides whether an operation of kind `op` touching `range` fails, and how.
    fn check(&mut self, op: FaultOp, range: Option<Range<u64>>) -> Option<FaultEffect> {
        let i = op_index(op);
        let n = self.counts[i];
        self.counts[i] += 1;
        let mut hit = None;
        for a in self.rules.iter_mut().filter(|a| a.rule.op == op) {
            if a.rule.times.is_some_and(|t| a.fired >= t) {
                continue;
            }
            let fires = match &a.rule.when {
                FaultWhen::AfterOps(k) => n >= *k,
                FaultWhen::Probability { per_million } => self.rng.chance(*per_million),
                FaultWhen::Touching(r) => range
                    .as_ref()
                    .is_some_and(|x| x.start < r.end && r.start < x.end),
            };
            if fires && hit.is_none() {
                a.fired += 1;
                hit = Some(a.rule.effect);
            }
        }
        hit
    }

    fn count_error(&mut self, effect: FaultEffect) {
        match effect {
            FaultEffect::NoSpace => self.stats.injected_enospc += 1,
            _ => self.stats.injected_eio += 1,
        }
    }

    fn apply_write(&mut self, offset: u64, bytes: &[u8]) {
        let start = offset as usize;
        self.written[start..start + bytes.len()].copy_from_slice(bytes);
        if self.unsynced.len() == MAX_UNSYNCED_WRITES {
            let oldest = self.unsynced.remove(0);
            let s = oldest.offset as usize;
            self.durable[s..s + oldest.bytes.len()].copy_from_slice(&oldest.bytes);
        }
        self.unsynced.push(Pending {
            offset,
            bytes: bytes.to_vec(),
        });
    }
}

fn crash_image(st: &mut State, mode: CrashMode) -> Vec<u8> {
    let mut image = st.durable.clone();
    let last = st.unsynced.len().saturating_sub(1);
    for (i, p) in st.unsynced.iter().enumerate() {
        let len = p.bytes.len();
        // The part of the write that lands: bytes `from..keep` of it.
        let (from, keep) = match mode {
            CrashMode::DropUnsynced => (0, 0),
            CrashMode::KeepUnsynced => (0, len),
            CrashMode::TearLast { keep_sectors } if i == last => {
                (0, (keep_sectors * SECTOR_BYTES).min(len))
            }
            CrashMode::TearLastFront { lose_sectors } if i == last => {
                ((lose_sectors * SECTOR_BYTES).min(len), len)
            }
            CrashMode::TearLast { .. } | CrashMode::TearLastFront { .. } => (0, len),
            CrashMode::Random => {
                let sectors = len / SECTOR_BYTES;
                match st.rng.below(3) {
                    0 => (0, 0),
                    1 => (0, len),
                    _ => (0, st.rng.below(sectors as u64 + 1) as usize * SECTOR_BYTES),
                }
            }
        };
        let s = p.offset as usize;
        image[s + from..s + keep].copy_from_slice(&p.bytes[from..keep]);
    }
    image
}

impl Device for FaultDevice {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<Result<()>> {
        let mut st = self.state.lock();
        ops.iter_mut()
            .map(|op| {
                check_io(op.buf.as_ptr(), op.buf.len(), op.offset, self.capacity)?;
                st.stats.reads += 1;
                if st.dead {
                    st.stats.injected_eio += 1;
                    return Err(eio("read of a dead device"));
                }
                let range = op.offset..op.offset + op.buf.len() as u64;
                let effect = st.check(FaultOp::Read, Some(range));
                match effect {
                    Some(FaultEffect::Eio) | Some(FaultEffect::PowerCut) => {
                        st.count_error(FaultEffect::Eio);
                        return Err(eio(&format!("read at {}", op.offset)));
                    }
                    Some(FaultEffect::NoSpace) => {
                        st.count_error(FaultEffect::NoSpace);
                        return Err(enospc(&format!("read at {}", op.offset)));
                    }
                    _ => {}
                }
                let start = op.offset as usize;
                op.buf
                    .copy_from_slice(&st.written[start..start + op.buf.len()]);
                if effect == Some(FaultEffect::FlipReadBit) {
                    let bit = st.rng.below(op.buf.len() as u64 * 8);
                    op.buf[(bit / 8) as usize] ^= 1 << (bit % 8);
                    st.stats.flipped_read_bits += 1;
                }
                Ok(())
            })
            .collect()
    }

    fn write_many(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        for op in ops {
            check_io(op.buf.as_ptr(), op.buf.len(), op.offset, self.capacity)?;
        }
        let mut st = self.state.lock();
        st.stats.writes += 1;
        if st.dead {
            st.stats.injected_eio += 1;
            return Err(eio("write to a dead device"));
        }
        let touched = ops.iter().map(|o| o.offset).min().unwrap_or(0)
            ..ops
                .iter()
                .map(|o| o.offset + o.buf.len() as u64)
                .max()
                .unwrap_or(0);
        let write = st.check(FaultOp::Write, Some(touched.clone()));
        let persist = st.check(FaultOp::Persist, Some(touched));
        match write.or(persist) {
            Some(FaultEffect::PowerCut) => {
                power_cut(&mut st, ops);
                Err(eio("write: power cut"))
            }
            Some(e @ FaultEffect::NoSpace) => {
                st.count_error(e);
                Err(enospc("write"))
            }
            Some(e @ FaultEffect::Eio) => {
                st.count_error(e);
                Err(eio("write"))
            }
            Some(FaultEffect::FlipReadBit) | None => {
                for op in ops {
                    st.apply_write(op.offset, op.buf);
                }
                Ok(())
            }
        }
    }

    fn sync(&self) -> Result<()> {
        let mut st = self.state.lock();
        st.stats.syncs += 1;
        if st.dead {
            st.stats.injected_eio += 1;
            return Err(eio("sync of a dead device"));
        }
        let sync = st.check(FaultOp::Sync, None);
        let persist = st.check(FaultOp::Persist, None);
        match sync.or(persist) {
            Some(e @ FaultEffect::NoSpace) => {
                st.count_error(e);
                return Err(enospc("sync"));
            }
            Some(FaultEffect::PowerCut) => {
                kill(&mut st);
                return Err(eio("sync: power cut"));
            }
            Some(FaultEffect::Eio) => {
                st.count_error(FaultEffect::Eio);
                return Err(eio("sync"));
            }
            Some(FaultEffect::FlipReadBit) | None => {}
        }
        let pending = std::mem::take(&mut st.unsynced);
        for p in pending {
            let s = p.offset as usize;
            st.durable[s..s + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "fault"
    }
}

/// Lands a random number of leading sectors of the write (in op order), then kills the device.
fn power_cut(st: &mut State, ops: &[WriteOp<'_>]) {
    let total: usize = ops.iter().map(|o| o.buf.len()).sum();
    let mut keep = st.rng.below((total / SECTOR_BYTES) as u64 + 1) as usize * SECTOR_BYTES;
    for op in ops {
        let n = keep.min(op.buf.len());
        if n > 0 {
            st.apply_write(op.offset, &op.buf[..n]);
        }
        keep -= n;
    }
    kill(st);
}

/// The power goes: every later operation fails until a power loss resets the device.
fn kill(st: &mut State) {
    st.dead = true;
    st.stats.power_cuts += 1;
    st.stats.injected_eio += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::AlignedBuf;

    fn filled(len: usize, byte: u8) -> AlignedBuf {
        let mut b = AlignedBuf::new(len);
        b.fill(byte);
        b
    }

    fn read(dev: &FaultDevice, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut b = AlignedBuf::new(len);
        dev.read_at(&mut b, offset)?;
        Ok(b.to_vec())
    }

    #[test]
    fn unsynced_writes_are_read_but_lost_at_power_loss() {
        let dev = FaultDevice::new(1 << 20, 1);
        dev.write_at(&filled(4096, 1), 0).unwrap();
        dev.sync().unwrap();
        dev.write_at(&filled(4096, 2), 4096).unwrap();
        assert_eq!(
            read(&dev, 4096, 4096).unwrap(),
            vec![2; 4096],
            "reads see unsynced writes"
        );
        assert_eq!(dev.stats().unsynced_writes, 1);
        let kept = dev.crash(CrashMode::KeepUnsynced);
        assert_eq!(&kept[4096..8192], &[2; 4096][..]);
        let image = dev.power_loss(CrashMode::DropUnsynced);
        assert_eq!(&image[..4096], &[1; 4096][..]);
        assert_eq!(&image[4096..8192], &[0; 4096][..]);
        assert_eq!(
            read(&dev, 4096, 4096).unwrap(),
            vec![0; 4096],
            "the device is reset to the image"
        );
        assert_eq!(dev.stats().unsynced_writes, 0);
    }

    #[test]
    fn torn_last_write_keeps_whole_sectors() {
        let dev = FaultDevice::new(1 << 20, 1);
        dev.write_at(&filled(4096, 3), 0).unwrap();
        dev.write_at(&filled(8192, 4), 8192).unwrap();
        let image = dev.crash(CrashMode::TearLast { keep_sectors: 3 });
        assert_eq!(
            &image[..4096],
            &[3; 4096][..],
            "earlier unsynced writes land"
        );
        assert_eq!(&image[8192..8192 + 3 * 512], &[4; 1536][..]);
        assert!(
            image[8192 + 3 * 512..16384].iter().all(|&b| b == 0),
            "the rest of the torn write is lost"
        );
    }

    #[test]
    fn random_crash_replays_from_the_seed() {
        let run = |seed| {
            let dev = FaultDevice::new(1 << 20, seed);
            for i in 0..32u64 {
                dev.write_at(&filled(8192, i as u8 + 1), i * 8192).unwrap();
            }
            dev.crash(CrashMode::Random)
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8), "different seeds, different crashes");
        let image = run(7);
        // Every byte is either the write's or the old zero, and sectors are never split.
        for sector in image.chunks(SECTOR_BYTES) {
            assert!(sector.iter().all(|&b| b == sector[0]), "a sector was split");
        }
    }

    #[test]
    fn eio_after_n_writes_once() {
        let dev = FaultDevice::new(1 << 20, 1);
        dev.set_plan(FaultPlan::new(5).with(FaultRule::once_after(
            FaultOp::Write,
            2,
            FaultEffect::Eio,
        )));
        let buf = filled(4096, 9);
        dev.write_at(&buf, 0).unwrap();
        dev.write_at(&buf, 4096).unwrap();
        let err = dev.write_at(&buf, 8192).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(libc::EIO)),
            "{err}"
        );
        assert_eq!(
            read(&dev, 8192, 4096).unwrap(),
            vec![0; 4096],
            "a failed write changes nothing"
        );
        dev.write_at(&buf, 8192).unwrap();
        assert_eq!(dev.stats().injected_eio, 1);
    }

    #[test]
    fn enospc_and_failing_sync() {
        let dev = FaultDevice::new(1 << 20, 1);
        dev.set_plan(
            FaultPlan::new(1)
                .with(FaultRule {
                    op: FaultOp::Write,
                    when: FaultWhen::AfterOps(0),
                    effect: FaultEffect::NoSpace,
                    times: Some(1),
                })
                .with(FaultRule::once_after(FaultOp::Sync, 0, FaultEffect::Eio)),
        );
        let err = dev.write_at(&filled(4096, 1), 0).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
        );
        dev.write_at(&filled(4096, 1), 0).unwrap();
        assert!(dev.sync().is_err());
        assert_eq!(
            dev.crash(CrashMode::DropUnsynced)[0],
            0,
            "a failed sync made nothing durable"
        );
        dev.sync().unwrap();
        assert_eq!(dev.crash(CrashMode::DropUnsynced)[0], 1);
        let s = dev.stats();
        assert_eq!((s.injected_enospc, s.injected_eio), (1, 1));
    }

    #[test]
    fn probability_faults_replay_from_the_seed() {
        let run = |seed| {
            let dev = FaultDevice::new(1 << 20, 0);
            dev.set_plan(FaultPlan::new(seed).with(FaultRule {
                op: FaultOp::Read,
                when: FaultWhen::Probability {
                    per_million: 250_000,
                },
                effect: FaultEffect::Eio,
                times: None,
            }));
            (0..400)
                .map(|i| read(&dev, (i % 256) * 4096, 4096).is_ok())
                .collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42));
        let failed = a.iter().filter(|ok| !**ok).count();
        assert!(
            (50..150).contains(&failed),
            "{failed} of 400 reads failed at p = 0.25"
        );
    }

    #[test]
    fn range_faults_and_read_bit_flips() {
        let dev = FaultDevice::new(1 << 20, 3);
        dev.write_at(&filled(16384, 0xaa), 0).unwrap();
        dev.set_plan(
            FaultPlan::new(3)
                .with(FaultRule {
                    op: FaultOp::Read,
                    when: FaultWhen::Touching(8192..8193),
                    effect: FaultEffect::Eio,
                    times: None,
                })
                .with(FaultRule::once_after(
                    FaultOp::Read,
                    0,
                    FaultEffect::FlipReadBit,
                )),
        );
        let flipped = read(&dev, 0, 4096).unwrap();
        let diff: u32 = flipped.iter().map(|&b| (b ^ 0xaa).count_ones()).sum();
        assert_eq!(diff, 1, "exactly one bit flipped in the read");
        assert_eq!(
            read(&dev, 0, 4096).unwrap(),
            vec![0xaa; 4096],
            "the flip was transient"
        );
        assert!(read(&dev, 8192, 4096).is_err());
        assert!(read(&dev, 4096, 4096).is_ok());
        assert!(
            read(&dev, 4096, 8192).is_err(),
            "a read overlapping the bad range fails"
        );
    }

    #[test]
    fn bit_flips_at_rest_reach_both_images() {
        let dev = FaultDevice::new(1 << 20, 3);
        dev.flip_bit(100, 2);
        assert_eq!(read(&dev, 0, 4096).unwrap()[100], 4);
        assert_eq!(dev.crash(CrashMode::DropUnsynced)[100], 4);
        let picks = dev.flip_random_bits(4096..8192, 5);
        assert_eq!(picks.len(), 5);
        assert!(picks
            .iter()
            .all(|&(o, b)| (4096..8192).contains(&o) && b < 8));
        assert_eq!(dev.stats().bits_flipped_at_rest, 6);
    }

    #[test]
    fn power_cut_lands_a_prefix_and_kills_the_device() {
        let dev = FaultDevice::new(1 << 20, 11);
        dev.set_plan(FaultPlan::new(11).with(FaultRule::once_after(
            FaultOp::Write,
            0,
            FaultEffect::PowerCut,
        )));
        assert!(dev.write_at(&filled(65536, 5), 0).is_err());
        assert!(dev.sync().is_err(), "a dead device fails every sync");
        assert!(read(&dev, 0, 4096).is_err(), "and every read");
        let image = dev.crash(CrashMode::KeepUnsynced);
        let landed = image.iter().take_while(|&&b| b == 5).count();
        assert_eq!(landed % SECTOR_BYTES, 0);
        assert!(
            image[landed..65536].iter().all(|&b| b == 0),
            "only a prefix landed"
        );
        dev.power_loss(CrashMode::DropUnsynced);
        assert!(
            read(&dev, 0, 4096).is_ok(),
            "alive after the power comes back"
        );
        assert_eq!(dev.stats().power_cuts, 1);
    }

    #[test]
    fn persist_cut_counts_writes_syncs_and_file_steps_together() {
        // Steps: write (0), sync (1), file step (2), write (3). Cut at each in turn.
        let run = |n: u64| {
            let dev = FaultDevice::new(1 << 20, 5);
            dev.set_plan(FaultPlan::new(5).with(FaultRule::once_after(
                FaultOp::Persist,
                n,
                FaultEffect::PowerCut,
            )));
            let results = [
                dev.write_at(&filled(4096, 1), 0).is_ok(),
                dev.sync().is_ok(),
                dev.file_step("checkpoint rename").is_ok(),
                dev.write_at(&filled(4096, 2), 4096).is_ok(),
            ];
            (results, dev)
        };
        for n in 0..4u64 {
            let (results, dev) = run(n);
            let expect: Vec<bool> = (0..4).map(|i| i < n).collect();
            assert_eq!(results.to_vec(), expect, "cut at step {n}");
            assert!(dev.is_dead());
            assert_eq!(dev.stats().power_cuts, 1);
            assert_eq!(dev.stats().file_steps, 1);
            let durable = dev.crash(CrashMode::DropUnsynced);
            assert_eq!(durable[0], if n >= 2 { 1 } else { 0 }, "cut at step {n}");
        }
        let (results, dev) = run(4);
        assert_eq!(results, [true; 4], "no fifth step, no cut");
        assert!(!dev.is_dead());
    }

    #[test]
    fn misaligned_io_is_an_error() {
        let dev = FaultDevice::new(1 << 20, 1);
        let mut b = AlignedBuf::new(4096);
        assert!(matches!(
            dev.read_at(&mut b, 100),
            Err(Error::Misaligned { .. })
        ));
        assert!(matches!(
            dev.write_at(&b, 1 << 20),
            Err(Error::OutOfRange { .. })
        ));
    }
}
