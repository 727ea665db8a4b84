//! Kills a real writer process with SIGKILL, reopens the store and checks that every
//! acknowledged `sync` write is there with its latest value and that no deleted key came back.
//! The child is this same test binary, started in writer mode.
//!
//! Kills land at random moments (up to past the first periodic checkpoint), in the middle of a
//! periodic checkpoint (the parent kills the moment the checkpoint's `.tmp` file appears; it
//! landed there if the file is still there afterwards), and while defragmentation moves
//! records (the child reports each batch it sees moving). A targeted kill that did not land
//! by its deadline is a fallback kill; more than half of them failing fails the run. Every
//! cycle must have acknowledged puts and deletes after its restart.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_engine::{Config, Durability, Engine, WriteOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const THREADS: u64 = 4;
const KEYS_PER_THREAD: u64 = 300;
const CYCLES: u64 = 20;
const GROUP: u32 = 9;

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Put(u64, Vec<u8>),
    Delete(u64),
}

/// The deterministic operation sequence of one writer thread in one cycle.
fn ops(cycle: u64, thread: u64, n: usize) -> impl Iterator<Item = Op> {
    let mut rng = StdRng::seed_from_u64(cycle * 1000 + thread);
    (0..n).map(move |i| {
        let key = thread * KEYS_PER_THREAD + rng.gen_range(0..KEYS_PER_THREAD);
        if rng.gen_bool(0.2) {
            Op::Delete(key)
        } else {
            let len = rng.gen_range(16..3000);
            let mut v = format!("c{cycle}t{thread}i{i}:").into_bytes();
            v.resize(len, (i % 251) as u8);
            Op::Put(key, v)
        }
    })
}

fn config(path: &std::path::Path) -> Config {
    Config {
        write_block_bytes: 128 << 10,
        durability: Durability::Sync,
        checkpoint_interval_s: 1,
        defrag_pause_ms: 0,
        ..Config::file(path, 24 << 20)
    }
}

const OPS_PER_CYCLE: usize = 200_000;
/// How long a targeted kill waits for its moment before killing anyway (a fallback).
const TARGET_DEADLINE: Duration = Duration::from_secs(6);
/// Poll period of the parent watching for the checkpoint's `.tmp` file.
const TMP_POLL: Duration = Duration::from_micros(200);
/// Poll period of the child's defragmentation monitor.
const DEFRAG_POLL: Duration = Duration::from_millis(2);

/// Where a cycle's kill is meant to land.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    /// This many ms after the first acknowledged put and delete: from before the first periodic
    /// checkpoint (1 s) to past it.
    AfterMs(u64),
    /// While a periodic checkpoint is being written.
    Checkpoint,
    /// While defragmentation moves records.
    Defrag,
}

fn plan(cycle: u64, rng: &mut StdRng) -> Target {
    match cycle % 4 {
        0 | 2 => Target::AfterMs(rng.gen_range(100..1600)),
        1 => Target::Checkpoint,
        _ => Target::Defrag,
    }
}

/// Writer mode: runs only when the parent sets QUIVER_CRASH_CHILD.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var("QUIVER_CRASH_CHILD") else {
        return;
    };
    let cycle: u64 = std::env::var("QUIVER_CRASH_CYCLE")
        .unwrap()
        .parse()
        .unwrap();
    let engine = std::sync::Arc::new(Engine::open(config(path.as_ref())).unwrap());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let w = WriteOptions::default();
                for (i, op) in ops(cycle, t, OPS_PER_CYCLE).enumerate() {
                    let (done, kind) = match op {
                        Op::Put(k, v) => (
                            engine.put(GROUP, &k.to_le_bytes(), &v, &w).map(|_| ()),
                            "put",
                        ),
                        Op::Delete(k) => (
                            engine.delete(GROUP, &k.to_le_bytes(), &w).map(|_| ()),
                            "delete",
                        ),
                    };
                    match done {
                        Ok(()) => println!("ack {t} {i} {kind}"),
                        Err(e) => {
                            // The parent fails the cycle: a write refused is no progress.
                            println!("refused {t} {i} {e}");
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    // Reports each poll in which defragmentation moved records: the parent's cue.
    let monitor = engine.clone();
    std::thread::spawn(move || {
        let mut moved = monitor.stats().defrag_records_moved;
        loop {
            std::thread::sleep(DEFRAG_POLL);
            let now = monitor.stats().defrag_records_moved;
            if now > moved {
                println!("defrag {now}");
            }
            moved = now;
        }
    });
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_sync_write() {
    if std::env::var("QUIVER_CRASH_CHILD").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut model: HashMap<u64, Option<Vec<u8>>> = HashMap::new();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut figures = Figures::default();
    for cycle in 0..CYCLES {
        let target = plan(cycle, &mut rng);
        let run = run_child_and_kill(&path, cycle, target);
        figures.count(target, run.landed);
        assert!(
            run.refused.is_empty(),
            "cycle {cycle}: writes refused after the restart: {:?}",
            run.refused
        );
        let e = Engine::open(config(&path)).unwrap();
        let (mut puts, mut deletes) = (0, 0);
        for t in 0..THREADS {
            let seq: Vec<Op> = ops(cycle, t, run.acked[t as usize] + 1).collect();
            let (done, maybe) = seq.split_at(run.acked[t as usize]);
            for op in done {
                match op {
                    Op::Put(..) => puts += 1,
                    Op::Delete(_) => deletes += 1,
                }
                apply(&mut model, op);
            }
            // The op in flight at the kill may or may not have landed.
            let in_flight = maybe.first().cloned();
            verify_thread(&e, &mut model, t, in_flight);
        }
        e.close().unwrap();
        assert!(
            puts > 0 && deletes > 0,
            "cycle {cycle} ({target:?}): {puts} puts and {deletes} deletes acknowledged after the restart"
        );
        figures.cycles += 1;
        figures.puts += puts;
        figures.deletes += deletes;
    }
    eprintln!("{figures:?}");
    figures.check();
}

/// What the kills of a run hit.
#[derive(Default, Debug)]
struct Figures {
    cycles: u64,
    puts: u64,
    deletes: u64,
    checkpoint_kills: u64,
    checkpoint_fallbacks: u64,
    defrag_kills: u64,
    defrag_fallbacks: u64,
}

impl Figures {
    fn count(&mut self, target: Target, landed: bool) {
        match target {
            Target::AfterMs(_) => {}
            Target::Checkpoint => {
                self.checkpoint_kills += 1;
                self.checkpoint_fallbacks += !landed as u64;
            }
            Target::Defrag => {
                self.defrag_kills += 1;
                self.defrag_fallbacks += !landed as u64;
            }
        }
    }

    fn check(&self) {
        assert_eq!(self.cycles, CYCLES, "planned cycles ran");
        for (what, kills, fallbacks) in [
            (
                "a checkpoint",
                self.checkpoint_kills,
                self.checkpoint_fallbacks,
            ),
            ("defragmentation", self.defrag_kills, self.defrag_fallbacks),
        ] {
            assert!(kills > 0, "no kill was planned during {what}");
            assert!(
                fallbacks * 2 <= kills,
                "{fallbacks} of {kills} kills meant for {what} missed it: {self:?}"
            );
        }
    }
}

fn apply(model: &mut HashMap<u64, Option<Vec<u8>>>, op: &Op) {
    match op {
        Op::Put(k, v) => model.insert(*k, Some(v.clone())),
        Op::Delete(k) => model.insert(*k, None),
    };
}

fn verify_thread(
    e: &Engine,
    model: &mut HashMap<u64, Option<Vec<u8>>>,
    t: u64,
    in_flight: Option<Op>,
) {
    for k in t * KEYS_PER_THREAD..(t + 1) * KEYS_PER_THREAD {
        let got = e.get(GROUP, &k.to_le_bytes()).unwrap().map(|r| r.value);
        let want = model.get(&k).cloned().flatten();
        let alt = match &in_flight {
            Some(Op::Put(key, v)) if *key == k => Some(Some(v.clone())),
            Some(Op::Delete(key)) if *key == k => Some(None),
            _ => None,
        };
        if got == want {
            continue;
        }
        match alt {
            Some(a) if a == got => {
                model.insert(k, got);
            }
            _ => panic!(
                "key {k}: got {:?}, expected {:?} (in flight: {:?}); recovery {:?}",
                got.as_ref()
                    .map(|v| String::from_utf8_lossy(&v[..v.len().min(24)]).to_string()),
                want.as_ref()
                    .map(|v| String::from_utf8_lossy(&v[..v.len().min(24)]).to_string()),
                in_flight.is_some(),
                e.recovery_report()
            ),
        }
    }
}

/// What a writer process did before its kill.
struct ChildRun {
    /// Per thread, how many of its operations were acknowledged.
    acked: Vec<usize>,
    /// Writes the engine refused: (thread, op, error).
    refused: Vec<String>,
    /// A targeted kill landed where it was meant to (always true for a timed one).
    landed: bool,
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".ckpt.tmp");
    PathBuf::from(s)
}

fn kill(child: &mut Child) {
    if child.try_wait().unwrap().is_none() {
        // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    }
}

/// Runs the writer, kills it at `target`, and says what it acknowledged and where the kill
/// landed.
fn run_child_and_kill(path: &Path, cycle: u64, target: Target) -> ChildRun {
    let tmp = tmp_of(path);
    // A checkpoint killed earlier leaves its `.tmp`; only a new one is the cue.
    let _ = std::fs::remove_file(&tmp);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("QUIVER_CRASH_CHILD", path)
        .env("QUIVER_CRASH_CYCLE", cycle.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let defrag_seen = Arc::new(AtomicBool::new(false));
    // Set once a put and a delete have both been acknowledged: every kill waits for it, so
    // that each cycle checks both kinds of write however slow a loaded machine makes them.
    let progressed = Arc::new(AtomicBool::new(false));
    let (seen, both_acked) = (defrag_seen.clone(), progressed.clone());
    let reader = std::thread::spawn(move || {
        let mut acked = vec![0usize; THREADS as usize];
        let mut refused = Vec::new();
        let (mut put, mut delete) = (false, false);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split_whitespace();
            match parts.next() {
                Some("defrag") => seen.store(true, Ordering::SeqCst),
                Some("refused") => refused.push(line.clone()),
                Some("ack") => {
                    let (Some(t), Some(i), kind) = (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    put |= kind == Some("put");
                    delete |= kind == Some("delete");
                    if put && delete {
                        both_acked.store(true, Ordering::SeqCst);
                    }
                    let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
                    acked[t] = acked[t].max(i + 1);
                }
                _ => {}
            }
        }
        (acked, refused)
    });
    wait_for(|| progressed.load(Ordering::SeqCst));
    let landed = match target {
        Target::AfterMs(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            kill(&mut child);
            true
        }
        Target::Checkpoint => {
            // A checkpoint begun before the writes progressed is not the cue.
            wait_for(|| !tmp.exists());
            wait_for(|| tmp.exists());
            kill(&mut child);
            child.wait().unwrap();
            // Still there: the kill came between its creation and its rename.
            tmp.exists()
        }
        Target::Defrag => {
            let landed = wait_for(|| defrag_seen.load(Ordering::SeqCst));
            kill(&mut child);
            landed
        }
    };
    child.wait().unwrap();
    let (acked, refused) = reader.join().unwrap();
    ChildRun {
        acked,
        refused,
        landed,
    }
}

/// Polls `cue` until it holds (true) or `TARGET_DEADLINE` passes (false).
fn wait_for(cue: impl Fn() -> bool) -> bool {
    let until = Instant::now() + TARGET_DEADLINE;
    while Instant::now() < until {
        if cue() {
            return true;
        }
        std::thread::sleep(TMP_POLL);
    }
    false
}
