//! Kills a real writer process with SIGKILL at random moments, reopens the store and checks
//! that every acknowledged `sync` write is there with its latest value and that no deleted
//! key came back. The child is this same test binary, started in writer mode.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

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
                    match op {
                        Op::Put(k, v) => {
                            engine.put(GROUP, &k.to_le_bytes(), &v, &w).unwrap();
                        }
                        Op::Delete(k) => {
                            engine.delete(GROUP, &k.to_le_bytes(), &w).unwrap();
                        }
                    }
                    println!("ack {t} {i}");
                }
            })
        })
        .collect();
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
    let mut total_acked = 0usize;
    for cycle in 0..CYCLES {
        let acked = run_child_and_kill(&path, cycle, rng.gen_range(50..600));
        let e = Engine::open(config(&path)).unwrap();
        for t in 0..THREADS {
            let seq: Vec<Op> = ops(cycle, t, acked[t as usize] + 1).collect();
            let (done, maybe) = seq.split_at(acked[t as usize]);
            total_acked += done.len();
            for op in done {
                apply(&mut model, op);
            }
            // The op in flight at the kill may or may not have landed.
            let in_flight = maybe.first().cloned();
            verify_thread(&e, &mut model, t, in_flight);
        }
        e.close().unwrap();
    }
    assert!(total_acked > 0, "the writer acknowledged nothing");
    eprintln!("{CYCLES} kill cycles, {total_acked} acknowledged sync writes verified");
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

/// Runs the writer, kills it after `after_ms`, and returns each thread's acknowledged count.
fn run_child_and_kill(path: &std::path::Path, cycle: u64, after_ms: u64) -> Vec<usize> {
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
    let reader = std::thread::spawn(move || {
        let mut acked = vec![0usize; THREADS as usize];
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ack") {
                continue;
            }
            let (Some(t), Some(i)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            acked[t] = acked[t].max(i + 1);
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(after_ms));
    if child.try_wait().unwrap().is_none() {
        // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    }
    child.wait().unwrap();
    reader.join().unwrap()
}
