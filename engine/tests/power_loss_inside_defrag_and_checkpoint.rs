//! Power loss at every step of a defragmentation batch and of a checkpoint.
//!
//! A scenario is set up the same way each time; then the fault device cuts the power at the
//! N-th write or sync of any stream (the writers, the defragmentation copies, the header
//! erase, and the steps of the checkpoint file: write, sync, rename, directory sync), for
//! every N until the operation completes without reaching a cut. Each cut is followed by a
//! crash that drops, keeps or randomly tears the unsynced writes, and the checkpoint file is
//! left as a power loss could leave it: a rename whose directory was not yet synced may or
//! may not have happened, and a renamed file that was never fsynced is torn. The reopened
//! store must then hold, for each key, a value the model allows: exactly the last value when
//! everything was durable before the operation (defragmentation), the last durable value or
//! the buffered one written after it (checkpoint). Never a lost, resurrected or foreign value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use quiver_engine::{Config, Durability, Engine, FileStep, FileStepHook, WriteOptions};
use quiver_wal::device::{
    CrashMode, FaultDevice, FaultEffect, FaultOp, FaultPlan, FaultRule, SplitMix64,
};
use quiver_wal::Device;

const GROUP: u32 = 1;
const DEVICE_BYTES: u64 = 4 << 20;
const BLOCK_BYTES: u32 = 128 << 10;
/// More steps than any scenario here takes; reaching it means the sweep never ended.
const MAX_STEPS: u64 = 400;
/// Crashes tried at each cut: drop, keep, and this many random tearings.
const RANDOM_CRASHES: u64 = 3;

/// Per key, the values recovery may show (`None`: absent).
type Allowed = BTreeMap<Vec<u8>, Vec<Option<Vec<u8>>>>;

/// What the checkpoint file's directory entry and contents would be after a power loss.
#[derive(Default)]
struct CheckpointFile {
    /// The temporary file was fsynced since it was last (re)written.
    tmp_synced: bool,
    /// A rename whose directory sync has not happened: the file it replaced (`None`: there
    /// was none), and whether the renamed file had been fsynced.
    unsynced_rename: Option<(Option<Vec<u8>>, bool)>,
}

impl CheckpointFile {
    fn step(&mut self, step: FileStep, path: &Path) {
        match step {
            FileStep::Write => self.tmp_synced = false,
            FileStep::Sync => self.tmp_synced = true,
            FileStep::Rename => {
                self.unsynced_rename = Some((std::fs::read(path).ok(), self.tmp_synced));
            }
            FileStep::SyncDir => self.unsynced_rename = None,
        }
    }

    /// Leaves `path` as the power loss would: `pick` chooses between the old and new entry
    /// when the rename was not yet durable.
    fn power_loss(&self, path: &Path, pick: u64) {
        let Some((old, synced)) = &self.unsynced_rename else {
            return;
        };
        if pick.is_multiple_of(2) {
            match old {
                Some(bytes) => std::fs::write(path, bytes).expect("restore old checkpoint"),
                None => std::fs::remove_file(path).expect("remove new checkpoint"),
            }
        } else if !synced {
            let len = std::fs::metadata(path).expect("checkpoint").len();
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            f.set_len(len / 2).expect("tear checkpoint");
        }
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:03}").into_bytes()
}

/// Value of write `round` to key `i`: names both, so a misplaced value is recognisable.
fn value(i: u32, round: u32, len: usize) -> Vec<u8> {
    let mut v = format!("{i}/{round}/").into_bytes();
    v.extend((0..len).map(|j| (i as usize * 31 + round as usize * 7 + j) as u8));
    v
}

fn opts(durability: Durability) -> WriteOptions {
    WriteOptions {
        durability: Some(durability),
        ttl_s: None,
    }
}

struct Run {
    dir: tempfile::TempDir,
    device: Arc<FaultDevice>,
    file: Arc<Mutex<CheckpointFile>>,
    engine: Engine,
}

impl Run {
    fn checkpoint_path(dir: &Path) -> PathBuf {
        dir.join("store.ckpt")
    }

    fn config(dir: &Path) -> Config {
        Config {
            write_block_bytes: BLOCK_BYTES,
            durability: Durability::Buffered,
            flush_interval_ms: 60_000,
            post_write_cache_bytes: 0,
            defrag_pause_ms: 0,
            defrag_nice: 0,
            checkpoint_interval_s: 0,
            checkpoint_path: Some(Run::checkpoint_path(dir)),
            background: false,
            ..Config::memory(DEVICE_BYTES)
        }
    }

    fn new() -> Run {
        let dir = tempfile::tempdir().expect("tempdir");
        let device = Arc::new(FaultDevice::new(DEVICE_BYTES, 1));
        let file = Arc::new(Mutex::new(CheckpointFile::default()));
        let (dev, model) = (device.clone(), file.clone());
        let hook = FileStepHook::new(move |step, path| {
            dev.file_step(&format!("checkpoint {step:?}"))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            model.lock().step(step, path);
            Ok(())
        });
        let config = Config {
            file_step_hook: Some(hook),
            ..Run::config(dir.path())
        };
        let d: Arc<dyn Device> = device.clone();
        let engine = Engine::open_on_device(config, d).expect("open");
        Run {
            dir,
            device,
            file,
            engine,
        }
    }

    fn put(&self, i: u32, round: u32, len: usize, d: Durability) -> Vec<u8> {
        let v = value(i, round, len);
        self.engine.put(GROUP, &key(i), &v, &opts(d)).expect("put");
        v
    }

    /// Crashes with `mode` (and `pick` for the checkpoint file), reopens without faults and
    /// checks every key against `allowed`.
    fn crash_and_check(&self, mode: CrashMode, pick: u64, allowed: &Allowed, what: &str) {
        let image = self.device.crash(mode);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Run::checkpoint_path(dir.path());
        if let Ok(bytes) = std::fs::read(Run::checkpoint_path(self.dir.path())) {
            std::fs::write(&path, bytes).expect("copy checkpoint");
        }
        self.file.lock().power_loss(&path, pick);
        let d: Arc<dyn Device> = Arc::new(FaultDevice::from_image(image, pick));
        let e = Engine::open_on_device(Run::config(dir.path()), d)
            .unwrap_or_else(|err| panic!("{what}: reopen failed: {err}"));
        for (k, values) in allowed {
            let got = e
                .get(GROUP, k)
                .unwrap_or_else(|err| panic!("{what}: get failed: {err}"))
                .map(|r| r.value);
            assert!(
                values.contains(&got),
                "{what}: key {} reads {:?}, allowed {:?} (crash {mode:?}, recovery {})",
                String::from_utf8_lossy(k),
                got.as_ref()
                    .map(|v| String::from_utf8_lossy(&v[..8.min(v.len())])),
                values
                    .iter()
                    .map(|v| v
                        .as_ref()
                        .map(|v| String::from_utf8_lossy(&v[..8]).into_owned()))
                    .collect::<Vec<_>>(),
                e.recovery_report().mode,
            );
        }
        let _ = e.get(GROUP, b"never written").expect("get");
    }
}

/// Runs `setup` then `op` with the power cut at step N, for every N until `op` finishes
/// before the cut; after each cut, checks recovery under several crash modes. Returns the
/// number of steps `op` took and what it returned when it was not cut.
fn sweep(
    name: &str,
    setup: impl Fn(&Run) -> Allowed,
    op: impl Fn(&Engine) -> usize,
) -> (u64, usize) {
    for n in 0..MAX_STEPS {
        let run = Run::new();
        let allowed = setup(&run);
        run.device
            .set_plan(FaultPlan::new(n).with(FaultRule::once_after(
                FaultOp::Persist,
                n,
                FaultEffect::PowerCut,
            )));
        let done = op(&run.engine);
        if !run.device.is_dead() {
            // No cut: the operation took n steps. Its result must be right too.
            run.crash_and_check(CrashMode::DropUnsynced, 1, &allowed, name);
            eprintln!("{name}: power cut at each of {n} steps");
            return (n, done);
        }
        let mut modes = vec![CrashMode::DropUnsynced, CrashMode::KeepUnsynced];
        modes.extend((0..RANDOM_CRASHES).map(|_| CrashMode::Random));
        let mut rng = SplitMix64::new(n);
        for mode in modes {
            let pick = rng.next_u64();
            let what = format!("{name}, power cut at step {n}");
            run.crash_and_check(mode, pick, &allowed, &what);
        }
    }
    panic!("{name}: still cutting the power after {MAX_STEPS} steps");
}

/// Three rounds of overwrites of 16 keys (and deletes of four of them), all flushed: every
/// block but the last is mostly dead. `checkpoint`: a checkpoint is written afterwards, so
/// that recovery starts from it rather than from a full scan.
fn defrag_setup(run: &Run, checkpoint: bool) -> Allowed {
    let mut allowed = Allowed::new();
    for round in 0..4 {
        for i in 0..16 {
            let v = run.put(i, round, 7000, Durability::Buffered);
            allowed.insert(key(i), vec![Some(v)]);
        }
    }
    for i in 12..16 {
        run.engine
            .delete(GROUP, &key(i), &opts(Durability::Buffered))
            .expect("delete");
        allowed.insert(key(i), vec![None]);
    }
    run.engine.flush().expect("flush");
    if checkpoint {
        run.engine.checkpoint().expect("checkpoint");
    }
    allowed
}

fn defragment(e: &Engine) -> usize {
    e.defragment(usize::MAX).unwrap_or(0)
}

#[test]
fn power_cut_at_every_step_of_defragmentation_with_scan_recovery() {
    let (steps, freed) = sweep("defrag (scan)", |r| defrag_setup(r, false), defragment);
    // Copies, their sync, the erase and its sync at the least.
    assert!(steps >= 4, "defragmentation took only {steps} steps");
    assert!(freed >= 2, "defragmentation freed only {freed} blocks");
}

#[test]
fn power_cut_at_every_step_of_defragmentation_with_checkpoint_recovery() {
    let (steps, freed) = sweep("defrag (checkpoint)", |r| defrag_setup(r, true), defragment);
    assert!(steps >= 4, "defragmentation took only {steps} steps");
    assert!(freed >= 2, "defragmentation freed only {freed} blocks");
}

/// Values made durable in blocks the checkpoint will not replay, then newer values and
/// deletes of some keys still buffered when the checkpoint walks the index: its entries point
/// at frames that only its own flushes make durable.
fn checkpoint_setup(run: &Run) -> Allowed {
    let mut allowed = Allowed::new();
    for i in 0..16 {
        let v = run.put(i, 0, 6000, Durability::Buffered);
        allowed.insert(key(i), vec![Some(v)]);
    }
    // Filler that seals the blocks holding the first values.
    for i in 100..140 {
        let v = run.put(i, 0, 8000, Durability::Buffered);
        allowed.insert(key(i), vec![Some(v)]);
    }
    run.engine.flush().expect("flush");
    run.engine.checkpoint().expect("first checkpoint");
    for i in 0..8 {
        let v = run.put(i, 1, 500, Durability::Buffered);
        allowed.get_mut(&key(i)).expect("written").push(Some(v));
    }
    for i in 8..10 {
        run.engine
            .delete(GROUP, &key(i), &opts(Durability::Buffered))
            .expect("delete");
        allowed.get_mut(&key(i)).expect("written").push(None);
    }
    allowed
}

#[test]
fn power_cut_at_every_step_of_a_checkpoint() {
    let (steps, written) = sweep("checkpoint", checkpoint_setup, |e| {
        usize::from(e.checkpoint().is_ok())
    });
    assert_eq!(written, 1, "the checkpoint failed without a fault");
    // Writer flush and sync, then write, sync, rename and directory sync of the file.
    assert!(steps >= 6, "the checkpoint took only {steps} steps");
}
