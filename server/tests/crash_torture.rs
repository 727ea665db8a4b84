//! Crash torture of the real `quiverd` process.
//!
//! A supervisor runs `quiverd` on a 32 MiB file under a mixed load from several client
//! threads (puts of whole feature rows, deletes, gets), kills it at seeded random moments
//! (SIGKILL at random, SIGKILL while defragmentation is moving records, SIGKILL the moment a
//! periodic checkpoint's `.tmp` file appears, SIGTERM followed by a SIGKILL during the graceful
//! close and its checkpoint, or a clean SIGTERM so that later crashes recover from a
//! checkpoint plus a log tail), restarts it on the same file and checks every entity against
//! the clients' records.
//!
//! The run proves it made progress: every cycle must have acknowledged puts and deletes after
//! its restart, every planned cycle must run, and a kill meant for defragmentation or a
//! checkpoint that missed it (killed at its deadline instead) is counted; more than half of
//! them missing fails the run.
//!
//! Each client owns its entities, so its record is exact: per entity, the state the last
//! restart found (`base`) and the writes made since, each acknowledged or not (the one in
//! flight at the kill). After a restart an entity must hold the result of the newest write
//! that had to be durable (`--commit sync`: the last acknowledged one; `--commit buffered`:
//! the last one acknowledged long enough before the kill) or of a later write. Anything
//! else is a lost write, a resurrected delete, or a value never written; every value also
//! carries a payload derived from its sequence number, so a torn or corrupt row is caught.
//!
//! `QUIVER_TORTURE_CYCLES` and `QUIVER_TORTURE_SECS` make a run long (both bounds apply: the
//! run stops at whichever comes first); `QUIVER_TORTURE_SEED` replays a run.

mod common;

use common::{feature, test_config, Quiverd};
use quiver_engine::feature::{
    Compression, EntityKey, FeatureRef, FeatureType, FeatureValue, GroupSpec, KeyType, PutOptions,
    Status, Value,
};
use quiver_server::client::{Client, ClientError};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const GROUP: &str = "torture";
const CLIENTS: usize = 4;
const ENTITIES_PER_CLIENT: usize = 256;
/// Requests one client makes in one cycle at most (a bound on the load, never reached in CI).
const MAX_OPS_PER_CYCLE: u64 = 200_000;
/// Keys per GET_MANY during verification.
const VERIFY_CHUNK: usize = 256;
/// Failures printed before the test gives up.
const MAX_REPORTED_FAILURES: usize = 20;
/// Payload bytes of a row: from MIN to MIN + SPAN.
const PAYLOAD_MIN_BYTES: u64 = 256;
const PAYLOAD_SPAN_BYTES: u64 = 3840;
/// The store's buffered flush interval is 1 s; writes acknowledged this long before a kill
/// must have been flushed.
const BUFFERED_MARGIN: Duration = Duration::from_millis(2500);
/// Poll period of the supervisor's STATS requests while the load runs.
const POLL: Duration = Duration::from_millis(40);
/// Poll period of the supervisor watching for a checkpoint's `.tmp` file.
const TMP_POLL: Duration = Duration::from_micros(200);
/// A kill meant for a checkpoint waits this long at least (quiverd checkpoints every second).
const CHECKPOINT_DEADLINE: Duration = Duration::from_secs(4);
/// A kill meant for defragmentation waits this long at least for it to move records.
const DEFRAG_DEADLINE: Duration = Duration::from_secs(6);

/// SplitMix64: every random choice of a run comes from its seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The payload a write with sequence number `seq` carries: its length and bytes follow from
/// `seq`, so any returned row can be checked without remembering it.
fn payload(seq: u64) -> Vec<u8> {
    let mut r = Rng(seq ^ 0x51_7C_C1_B7_27_22_0A_95);
    let len = (PAYLOAD_MIN_BYTES + r.below(PAYLOAD_SPAN_BYTES)) as usize;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{name}={s:?} is not a whole number")),
        Err(_) => default,
    }
}

/// What an entity holds: nothing, or the row written by the put with this sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Absent,
    Present(u64),
}

/// One write of the record: the state it leaves, and when its acknowledgement arrived
/// (`None`: in flight when the server died, it may or may not have landed).
#[derive(Clone, Copy, Debug)]
struct Write {
    result: State,
    acked_at: Option<Instant>,
}

#[derive(Clone, Debug)]
struct Entity {
    key: String,
    /// What the last verification found.
    base: State,
    /// Writes since, oldest first; only the last can be unacknowledged.
    writes: Vec<Write>,
}

/// Which writes had to be durable at a kill.
#[derive(Clone, Copy)]
enum Durable {
    /// Every acknowledged write (`--commit sync`, or a clean shutdown).
    Acked,
    /// Writes acknowledged at or before this instant (`--commit buffered`).
    AckedBy(Instant),
}

impl Entity {
    /// The state a read must see while the server runs: the last acknowledged write.
    fn current(&self) -> State {
        self.writes
            .iter()
            .rev()
            .find(|w| w.acked_at.is_some())
            .map_or(self.base, |w| w.result)
    }

    /// Index of the newest write that had to be durable.
    fn floor(&self, durable: Durable) -> Option<usize> {
        self.writes
            .iter()
            .rposition(|w| match (durable, w.acked_at) {
                (_, None) => false,
                (Durable::Acked, Some(_)) => true,
                (Durable::AckedBy(t), Some(a)) => a <= t,
            })
    }

    /// Every state a restart may find.
    fn acceptable(&self, durable: Durable) -> Vec<State> {
        let floor = self.floor(durable);
        let mut states: Vec<State> = self.writes[floor.unwrap_or(0)..]
            .iter()
            .map(|w| w.result)
            .collect();
        if floor.is_none() {
            states.push(self.base);
        }
        states
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (base {:?}; writes since:", self.key, self.base)?;
        let start = self.writes.len().saturating_sub(6);
        if start > 0 {
            write!(f, " ... {start} older")?;
        }
        for w in &self.writes[start..] {
            let ack = if w.acked_at.is_some() {
                "acked"
            } else {
                "in flight"
            };
            write!(f, " {:?} {ack};", w.result)?;
        }
        write!(f, ")")
    }
}

/// Counters of one client thread over a run.
#[derive(Clone, Copy, Default, Debug)]
struct LoadCounts {
    puts_acked: u64,
    deletes_acked: u64,
    gets_checked: u64,
    server_errors: u64,
    in_flight_at_kill: u64,
}

impl LoadCounts {
    fn add(&mut self, o: LoadCounts) {
        self.puts_acked += o.puts_acked;
        self.deletes_acked += o.deletes_acked;
        self.gets_checked += o.gets_checked;
        self.server_errors += o.server_errors;
        self.in_flight_at_kill += o.in_flight_at_kill;
    }
}

/// One client thread's entities, sequence numbers and random stream.
struct Worker {
    id: u64,
    entities: Vec<Entity>,
    next_seq: u64,
    rng: Rng,
    counts: LoadCounts,
}

fn entity_key(key: &str) -> EntityKey {
    EntityKey::String(key.to_owned())
}

fn refs() -> Vec<FeatureRef> {
    ["seq", "payload"]
        .iter()
        .map(|f| FeatureRef {
            group: GROUP.into(),
            feature: (*f).into(),
        })
        .collect()
}

/// Decodes a row read back, checking that it is exactly what its put wrote.
fn observed(values: &[FeatureValue]) -> Result<State, String> {
    match values {
        [a, b] if a.status == Status::NotFound && b.status == Status::NotFound => Ok(State::Absent),
        [FeatureValue {
            status: Status::Present,
            value: Value::I64(seq),
            event_time_ms: t1,
        }, FeatureValue {
            status: Status::Present,
            value: Value::Bytes(bytes),
            event_time_ms: t2,
        }] => {
            let seq = *seq as u64;
            if *t1 != seq || *t2 != seq {
                return Err(format!("row of write {seq} has event times {t1}/{t2}"));
            }
            if *bytes != payload(seq) {
                return Err(format!(
                    "payload of write {seq} is corrupt ({} bytes)",
                    bytes.len()
                ));
            }
            Ok(State::Present(seq))
        }
        other => Err(format!("torn or unexpected row {other:?}")),
    }
}

/// How a request ended for the record.
enum Outcome {
    Acked,
    /// The server refused it: it did not happen.
    Refused,
    /// The connection broke: it may or may not have happened; the worker stops.
    Lost,
}

fn outcome<T>(r: &Result<T, ClientError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Acked,
        Err(ClientError::Server { .. }) => Outcome::Refused,
        Err(_) => Outcome::Lost,
    }
}

impl Worker {
    fn new(id: u64, seed: u64) -> Worker {
        Worker {
            id,
            entities: (0..ENTITIES_PER_CLIENT)
                .map(|i| Entity {
                    key: format!("c{id}-e{i}"),
                    base: State::Absent,
                    writes: Vec::new(),
                })
                .collect(),
            next_seq: 1,
            rng: Rng(seed ^ (id + 1).wrapping_mul(0x2545_F491_4F6C_DD1D)),
            counts: LoadCounts::default(),
        }
    }

    /// Sequence numbers are unique across clients and rising per client (they are also the
    /// event times, so every put of an entity replaces the whole row).
    fn take_seq(&mut self) -> u64 {
        let seq = (self.id + 1) << 40 | self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Runs requests until `stop` or a broken connection; a violation seen by a read while
    /// the server runs is returned as an error.
    fn run(&mut self, addr: &str, stop: &AtomicBool) -> Result<(), String> {
        let mut c = match Client::connect(addr, test_config()) {
            Ok(c) => c,
            Err(_) => return Ok(()), // killed before this client got in
        };
        for _ in 0..MAX_OPS_PER_CYCLE {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let i = self.rng.below(ENTITIES_PER_CLIENT as u64) as usize;
            let roll = self.rng.below(100);
            let go_on = if roll < 60 {
                self.put(&mut c, i)
            } else if roll < 72 {
                self.delete(&mut c, i)
            } else {
                self.get(&mut c, i)?
            };
            if !go_on {
                return Ok(());
            }
        }
        Ok(())
    }

    fn record(&mut self, i: usize, result: State, out: Outcome) -> bool {
        let acked_at = match out {
            Outcome::Acked => Some(Instant::now()),
            Outcome::Refused => {
                self.counts.server_errors += 1;
                return true;
            }
            Outcome::Lost => {
                self.counts.in_flight_at_kill += 1;
                None
            }
        };
        self.entities[i].writes.push(Write { result, acked_at });
        acked_at.is_some()
    }

    fn put(&mut self, c: &mut Client, i: usize) -> bool {
        let seq = self.take_seq();
        let values = vec![
            ("seq".to_string(), Value::I64(seq as i64)),
            ("payload".to_string(), Value::Bytes(payload(seq))),
        ];
        let key = entity_key(&self.entities[i].key);
        let r = c.put(GROUP, key, seq, values, PutOptions::default());
        let out = outcome(&r);
        if matches!(out, Outcome::Acked) {
            self.counts.puts_acked += 1;
        }
        self.record(i, State::Present(seq), out)
    }

    fn delete(&mut self, c: &mut Client, i: usize) -> bool {
        let key = entity_key(&self.entities[i].key);
        let r = c.delete(GROUP, key, None);
        let out = outcome(&r);
        if matches!(out, Outcome::Acked) {
            self.counts.deletes_acked += 1;
        }
        self.record(i, State::Absent, out)
    }

    fn get(&mut self, c: &mut Client, i: usize) -> Result<bool, String> {
        let e = &self.entities[i];
        let values = match c.get(entity_key(&e.key), refs()) {
            Ok(v) => v,
            Err(ClientError::Server { status, message }) => {
                return Err(format!("get {} refused: {status}: {message}", e.key))
            }
            Err(_) => return Ok(false),
        };
        let seen = observed(&values).map_err(|m| format!("live get of {e}: {m}"))?;
        if seen != e.current() {
            return Err(format!("live get of {e} returned {seen:?}"));
        }
        self.counts.gets_checked += 1;
        Ok(true)
    }
}

/// Counters of the verifications after restarts.
#[derive(Default, Debug)]
struct VerifyCounts {
    restarts: u64,
    entities_checked: u64,
    /// Entities whose newest durable write was one of the cycle's acknowledged writes.
    durable_writes_verified: u64,
    in_flight_landed: u64,
    in_flight_not_landed: u64,
    /// `corrupt_reads` reported while defragmentation ran (every such read was retried and
    /// returned the right row).
    corrupt_reads_racing_defrag: u64,
}

/// Waits (bounded) until defragmentation has nothing queued and moved nothing for three
/// polls in a row.
fn wait_for_defrag_to_settle(c: &mut Client) {
    let mut last = u64::MAX;
    let mut same = 0;
    for _ in 0..300 {
        let f = figures(c).expect("stats");
        same = if f.defrag_queue == 0 && f.defrag_records_moved == last {
            same + 1
        } else {
            0
        };
        if same == 3 {
            return;
        }
        last = f.defrag_records_moved;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads every entity back, checks it against the record, and makes what was found the new
/// base. Panics with every failure found (up to a bound).
///
/// The engine's `corrupt_reads` also counts a read that raced with defragmentation (the
/// record moved and its old block was reused; the read follows the index again and returns
/// the right row), so it must be zero only when defragmentation was idle (`quiesce`).
fn verify(
    q: &Quiverd,
    workers: &mut [Worker],
    durable: Durable,
    counts: &mut VerifyCounts,
    seed: u64,
    quiesce: bool,
) {
    let mut c = q.client();
    if quiesce {
        wait_for_defrag_to_settle(&mut c);
    }
    let mut failures = Vec::new();
    let mut present = 0u64;
    for w in workers.iter_mut() {
        for chunk in w.entities.chunks_mut(VERIFY_CHUNK) {
            let keys = chunk.iter().map(|e| entity_key(&e.key)).collect();
            let rows = c.get_many(keys, refs()).expect("verification get_many");
            for (e, row) in chunk.iter_mut().zip(rows) {
                let found = row
                    .map_err(|err| err.to_string())
                    .and_then(|values| observed(&values));
                match check_entity(e, found, durable, counts) {
                    Ok(State::Present(_)) => present += 1,
                    Ok(State::Absent) => {}
                    Err(m) => failures.push(m),
                }
            }
        }
    }
    counts.restarts += 1;
    let scanned = c.scan_all(GROUP, 1000).expect("scan after restart").len() as u64;
    if scanned != present {
        failures.push(format!(
            "scan found {scanned} rows, the reads found {present}"
        ));
    }
    let stats: serde_json::Value = serde_json::from_str(&c.stats().expect("stats")).unwrap();
    let corrupt = stats["engine"]["corrupt_reads"].as_u64().unwrap_or(0);
    counts.corrupt_reads_racing_defrag += corrupt;
    if quiesce && corrupt != 0 {
        failures.push(format!("{corrupt} reads found a bad checksum"));
    }
    if !failures.is_empty() {
        let n = failures.len();
        failures.truncate(MAX_REPORTED_FAILURES);
        panic!(
            "restart {} (seed {seed}): {n} failures:\n{}",
            counts.restarts,
            failures.join("\n")
        );
    }
}

fn check_entity(
    e: &mut Entity,
    found: Result<State, String>,
    durable: Durable,
    counts: &mut VerifyCounts,
) -> Result<State, String> {
    let found = found.map_err(|m| format!("{e}: {m}"))?;
    let acceptable = e.acceptable(durable);
    if !acceptable.contains(&found) {
        let lost_age = match (durable, e.floor(durable)) {
            (Durable::AckedBy(t), Some(f)) => e.writes[f]
                .acked_at
                .map(|a| {
                    format!(
                        " (newest required write acked {:?} before the cutoff)",
                        t - a
                    )
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        return Err(format!(
            "{e}: restart found {found:?}, acceptable {acceptable:?}{lost_age}"
        ));
    }
    counts.entities_checked += 1;
    if e.floor(durable).is_some() {
        counts.durable_writes_verified += 1;
    }
    if let Some(last) = e.writes.last().filter(|w| w.acked_at.is_none()) {
        if last.result == found {
            counts.in_flight_landed += 1;
        } else {
            counts.in_flight_not_landed += 1;
        }
    }
    e.base = found;
    e.writes.clear();
    Ok(found)
}

/// How a cycle ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    /// SIGKILL at a random moment.
    Kill,
    /// SIGKILL as soon as defragmentation is seen moving records (or at the deadline).
    KillInDefrag,
    /// SIGKILL the moment a periodic checkpoint's `.tmp` file appears (or at the deadline).
    KillInCheckpoint,
    /// SIGTERM, then SIGKILL this many ms later: during the graceful close (flush, checkpoint).
    TermThenKill(u64),
    /// SIGTERM and a clean exit: the next restart loads the checkpoint.
    Clean,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Sync,
    Buffered,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Buffered => "buffered",
        }
    }
}

fn start(path: &Path, mode: Mode) -> Quiverd {
    let p = path.to_str().expect("utf-8 path");
    Quiverd::start(&[
        "--data",
        p,
        "--size",
        "32MiB",
        "--commit",
        mode.flag(),
        "--workers",
        "2",
        "--engine-threads",
        "4",
        // A checkpoint every second while the clients write: kills land during checkpoint
        // walks and writes, and restarts load checkpoints taken under load.
        "--checkpoint-interval-s",
        "1",
    ])
}

fn group_spec() -> GroupSpec {
    GroupSpec {
        name: GROUP.into(),
        key_type: KeyType::String,
        features: vec![
            feature("seq", FeatureType::I64),
            feature("payload", FeatureType::Bytes),
        ],
        ttl_s: None,
        compression: Compression::None,
        allow_non_finite: false,
        description: String::new(),
        owner: String::new(),
        tags: vec![],
        history: None,
        on_violation: Default::default(),
        quality: Default::default(),
    }
}

/// Engine figures the supervisor watches.
#[derive(Clone, Copy, Default, Debug)]
struct EngineFigures {
    defrag_blocks_freed: u64,
    defrag_records_moved: u64,
    defrag_queue: u64,
}

fn figures(c: &mut Client) -> Option<EngineFigures> {
    let json: serde_json::Value = serde_json::from_str(&c.stats().ok()?).ok()?;
    let e = &json["engine"];
    let n = |k: &str| e[k].as_u64().unwrap_or(0);
    Some(EngineFigures {
        defrag_blocks_freed: n("defrag_blocks_freed"),
        defrag_records_moved: n("defrag_records_moved"),
        defrag_queue: n("defrag_queue"),
    })
}

/// Run-wide figures, printed at the end.
#[derive(Default, Debug)]
struct RunFigures {
    cycles: u64,
    kills: u64,
    kills_with_defrag_moving: u64,
    defrag_kills_planned: u64,
    /// Kills meant for defragmentation that found it idle at their deadline.
    defrag_kills_fallback: u64,
    checkpoint_kills_planned: u64,
    /// Kills meant for a checkpoint after which no `.tmp` file was left.
    checkpoint_kills_fallback: u64,
    term_then_kill: u64,
    exited_before_kill: u64,
    checkpoint_tmp_left: u64,
    clean_restarts: u64,
    defrag_blocks_freed: u64,
    defrag_records_moved: u64,
}

/// Sets the stop flag when dropped, so that a panicking supervisor never leaves client
/// threads running (the thread scope would wait for them forever).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

struct Cycle {
    ending: Ending,
    load: Duration,
    /// Buffered mode: the clients stop this long before the kill (a quiet period).
    quiet: Duration,
}

fn send_signal(q: &Quiverd, signal: i32) {
    // SAFETY: kill(2) with the pid of a child we spawned and have not reaped yet.
    unsafe { libc::kill(q.child.id() as i32, signal) };
}

/// Waits (bounded) for the process to exit; true if it exited.
fn wait_exit(q: &mut Quiverd, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(status) = q.child.try_wait().expect("wait quiverd") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Runs the load until the ending's moment, then ends the process that way. Returns the
/// instant of the end (the kill, or the SIGTERM of a clean shutdown) and which writes had to
/// be durable.
fn end_cycle(
    q: &mut Quiverd,
    cycle: &Cycle,
    mode: Mode,
    stop: &AtomicBool,
    data: &Path,
    run: &mut RunFigures,
) -> Durable {
    let tmp = checkpoint_tmp(data);
    // A checkpoint killed earlier leaves its `.tmp`; only a new one is the cue.
    let _ = std::fs::remove_file(&tmp);
    if cycle.ending == Ending::KillInCheckpoint {
        let deadline = Instant::now() + cycle.load.max(CHECKPOINT_DEADLINE);
        while !tmp.exists() && Instant::now() < deadline {
            std::thread::sleep(TMP_POLL);
        }
        send_signal(q, libc::SIGKILL);
        wait_exit(q, Duration::from_secs(30)).expect("quiverd gone within 30 s of SIGKILL");
        stop.store(true, Ordering::Relaxed);
        run.kills += 1;
        run.checkpoint_kills_planned += 1;
        // Still there: the kill came between its creation and its rename.
        run.checkpoint_kills_fallback += !tmp.exists() as u64;
        return match mode {
            Mode::Sync => Durable::Acked,
            Mode::Buffered => Durable::AckedBy(Instant::now() - BUFFERED_MARGIN),
        };
    }
    let mut control = q.client();
    let started = Instant::now();
    let mut last = figures(&mut control).unwrap_or_default();
    let mut moving = false;
    // A kill meant for defragmentation waits for it past the cycle's load time, up to a bound.
    let until = match cycle.ending {
        Ending::KillInDefrag => cycle.load.max(DEFRAG_DEADLINE),
        _ => cycle.load,
    };
    while started.elapsed() < until {
        std::thread::sleep(POLL);
        let now = figures(&mut control).unwrap_or(last);
        moving = now.defrag_records_moved > last.defrag_records_moved;
        last = now;
        if cycle.ending == Ending::KillInDefrag && moving && started.elapsed() > cycle.load / 4 {
            break;
        }
    }
    if !cycle.quiet.is_zero() {
        stop.store(true, Ordering::Relaxed);
        std::thread::sleep(cycle.quiet);
    }
    run.defrag_blocks_freed += last.defrag_blocks_freed;
    run.defrag_records_moved += last.defrag_records_moved;
    let ended_at = Instant::now();
    match cycle.ending {
        Ending::Kill | Ending::KillInDefrag | Ending::KillInCheckpoint => {
            send_signal(q, libc::SIGKILL);
            run.kills += 1;
            if moving || last.defrag_queue > 0 {
                run.kills_with_defrag_moving += 1;
            }
            if cycle.ending == Ending::KillInDefrag {
                run.defrag_kills_planned += 1;
                run.defrag_kills_fallback += !moving as u64;
            }
        }
        Ending::TermThenKill(ms) => {
            send_signal(q, libc::SIGTERM);
            if wait_exit(q, Duration::from_millis(ms)).is_some() {
                run.exited_before_kill += 1;
            }
            send_signal(q, libc::SIGKILL);
            run.term_then_kill += 1;
            if tmp.exists() {
                run.checkpoint_tmp_left += 1;
            }
        }
        Ending::Clean => {
            send_signal(q, libc::SIGTERM);
            let status = wait_exit(q, Duration::from_secs(30)).expect("clean exit within 30 s");
            assert!(
                status.success(),
                "quiverd exited with {status} after SIGTERM"
            );
            run.clean_restarts += 1;
            stop.store(true, Ordering::Relaxed);
            // A clean close flushes everything acknowledged, whatever the commit mode.
            return Durable::Acked;
        }
    }
    wait_exit(q, Duration::from_secs(30)).expect("quiverd gone within 30 s of SIGKILL");
    stop.store(true, Ordering::Relaxed);
    match mode {
        Mode::Sync => Durable::Acked,
        Mode::Buffered => Durable::AckedBy(ended_at - BUFFERED_MARGIN),
    }
}

fn checkpoint_tmp(data: &Path) -> PathBuf {
    let mut tmp = data.as_os_str().to_owned();
    tmp.push(".ckpt.tmp");
    PathBuf::from(tmp)
}

fn plan(rng: &mut Rng, n: u64, mode: Mode) -> Cycle {
    let ending = match n % 6 {
        0 => Ending::Kill,
        1 | 4 => Ending::KillInDefrag,
        2 => Ending::TermThenKill(rng.below(40)),
        3 => Ending::KillInCheckpoint,
        _ => Ending::Clean,
    };
    match mode {
        Mode::Sync => Cycle {
            ending,
            load: Duration::from_millis(300 + rng.below(1700)),
            quiet: Duration::ZERO,
        },
        Mode::Buffered => Cycle {
            ending,
            load: Duration::from_millis(3500 + rng.below(2000)),
            // Every third cycle the clients go quiet before the kill: then every write of
            // the cycle had to reach the device.
            quiet: if n % 3 == 2 {
                BUFFERED_MARGIN
            } else {
                Duration::ZERO
            },
        },
    }
}

fn torture(mode: Mode, default_cycles: u64, default_secs: u64) {
    let seed = env_u64("QUIVER_TORTURE_SEED", 0x7047_7572_6521);
    let max_cycles = env_u64("QUIVER_TORTURE_CYCLES", default_cycles).max(1);
    let budget = Duration::from_secs(env_u64("QUIVER_TORTURE_SECS", default_secs));
    println!("crash torture, --commit {}: seed {seed}", mode.flag());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("torture.db");
    let mut rng = Rng(seed);
    let mut workers: Vec<Worker> = (0..CLIENTS as u64).map(|i| Worker::new(i, seed)).collect();
    let mut run = RunFigures::default();
    let mut verified = VerifyCounts::default();
    let mut load = LoadCounts::default();
    {
        // The group is created and made durable by a clean shutdown before any crash.
        let q = start(&data, mode);
        q.client().create_group(group_spec()).expect("create group");
        assert!(q.terminate().success());
    }
    let began = Instant::now();
    while run.cycles < max_cycles && began.elapsed() < budget {
        let cycle = plan(&mut rng, run.cycles, mode);
        let before = total_counts(&workers);
        let mut q = start(&data, mode);
        let stop = AtomicBool::new(false);
        let durable = std::thread::scope(|s| {
            let _guard = StopOnDrop(&stop);
            let addr = q.addr.clone();
            let handles: Vec<_> = workers
                .iter_mut()
                .map(|w| {
                    let (addr, stop) = (addr.clone(), &stop);
                    s.spawn(move || w.run(&addr, stop))
                })
                .collect();
            let durable = end_cycle(&mut q, &cycle, mode, &stop, &data, &mut run);
            for h in handles {
                if let Err(m) = h.join().expect("client thread") {
                    panic!("cycle {} (seed {seed}): {m}", run.cycles);
                }
            }
            durable
        });
        drop(q);
        let q = start(&data, mode);
        verify(&q, &mut workers, durable, &mut verified, seed, false);
        drop(q);
        let after = total_counts(&workers);
        let (puts, deletes) = (
            after.puts_acked - before.puts_acked,
            after.deletes_acked - before.deletes_acked,
        );
        assert!(
            puts > 0 && deletes > 0,
            "cycle {} ({:?}, seed {seed}): {puts} puts and {deletes} deletes acknowledged after \
             the restart ({} refused)",
            run.cycles,
            cycle.ending,
            after.server_errors - before.server_errors
        );
        run.cycles += 1;
    }
    // A last clean restart: everything verified must still be there.
    let q = start(&data, mode);
    verify(&q, &mut workers, Durable::Acked, &mut verified, seed, true);
    assert!(q.terminate().success());
    for w in &workers {
        load.add(w.counts);
    }
    println!(
        "crash torture, --commit {} (seed {seed}), {:.1} s:\n  {run:?}\n  {load:?}\n  {verified:?}",
        mode.flag(),
        began.elapsed().as_secs_f64()
    );
    assert!(load.puts_acked > 0, "no put was acknowledged");
    check_progress(&run, max_cycles, seed);
}

fn total_counts(workers: &[Worker]) -> LoadCounts {
    let mut total = LoadCounts::default();
    for w in workers {
        total.add(w.counts);
    }
    total
}

/// Every planned cycle ran (unless a time budget was asked for), and at most half of the
/// kills meant for defragmentation or a checkpoint missed it.
fn check_progress(run: &RunFigures, planned: u64, seed: u64) {
    if std::env::var("QUIVER_TORTURE_SECS").is_err() {
        assert_eq!(
            run.cycles, planned,
            "seed {seed}: only {} of {planned} planned cycles ran in the time budget",
            run.cycles
        );
    }
    for (what, kills, fallbacks) in [
        (
            "defragmentation",
            run.defrag_kills_planned,
            run.defrag_kills_fallback,
        ),
        (
            "a checkpoint",
            run.checkpoint_kills_planned,
            run.checkpoint_kills_fallback,
        ),
    ] {
        assert!(
            fallbacks * 2 <= kills,
            "seed {seed}: {fallbacks} of {kills} kills meant for {what} missed it: {run:?}"
        );
    }
}

#[test]
fn sync_writes_survive_kills_during_load_defrag_and_close() {
    torture(Mode::Sync, 12, 150);
}

#[test]
fn buffered_writes_older_than_the_flush_interval_survive_kills() {
    torture(Mode::Buffered, 5, 120);
}
