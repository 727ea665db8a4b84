//! A bounded soak of `quiverd`: a mixed, overwrite-heavy load on a small device (so that
//! defragmentation runs the whole time), with connection churn, while the server's resident
//! memory is sampled. Memory must stay flat after the warm-up (a leak check with a generous
//! bound, not a timing assertion) and every acknowledged write must be there at the end, both
//! in the running server and after a clean restart.
//!
//! `QUIVER_SOAK_SECS` sets the length (default 45 s).

mod common;

use common::{feature, test_config, Quiverd};
use quiver_engine::feature::{
    Compression, EntityKey, FeatureRef, FeatureType, FeatureValue, GroupSpec, KeyType, PutOptions,
    Status, Value,
};
use quiver_server::client::{Client, ClientError, Result};
use quiver_server::protocol::StatusCode;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const GROUP: &str = "soak";
const CLIENTS: u64 = 3;
const ENTITIES_PER_CLIENT: usize = 400;
/// A client reconnects after this many requests (connection churn).
const REQUESTS_PER_CONNECTION: u64 = 2_000;
/// Bound on the requests of one client, whatever the duration.
const MAX_REQUESTS_PER_CLIENT: u64 = 50_000_000;
const GET_MANY_KEYS: usize = 32;
const SAMPLE_EVERY: Duration = Duration::from_secs(3);
/// Allowed growth after the warm-up: max <= first * NUM / DEN + SLACK.
const RSS_GROWTH_NUM: u64 = 3;
const RSS_GROWTH_DEN: u64 = 2;
const RSS_SLACK_KIB: u64 = 32 << 10;

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

/// The bytes a put with sequence number `seq` writes (200 B to 6 KiB, derived from `seq`).
fn payload(seq: u64) -> Vec<u8> {
    let mut r = Rng(seq.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let len = 200 + r.below(6 << 10) as usize;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v
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

fn key(client: u64, i: usize) -> EntityKey {
    EntityKey::String(format!("s{client}-{i}"))
}

/// The row read back: `None` when absent; the sequence number when the row is exactly what
/// that put wrote.
fn decode(values: &[FeatureValue]) -> Result<Option<u64>, String> {
    match values {
        [a, b] if a.status == Status::NotFound && b.status == Status::NotFound => Ok(None),
        [FeatureValue {
            value: Value::I64(seq),
            ..
        }, FeatureValue {
            value: Value::Bytes(bytes),
            ..
        }] if *bytes == payload(*seq as u64) => Ok(Some(*seq as u64)),
        other => Err(format!("torn or corrupt row {other:?}")),
    }
}

/// One client: its entities' last acknowledged states (the client owns them, so this is
/// exact), and its counters.
struct Load {
    id: u64,
    state: Vec<Option<u64>>,
    next_seq: u64,
    rng: Rng,
    acked_writes: u64,
    reads_checked: u64,
    reconnects: u64,
    /// Writes refused with DEVICE_FULL (defragmentation behind the load): not applied.
    device_full: u64,
}

impl Load {
    fn new(id: u64) -> Load {
        Load {
            id,
            state: vec![None; ENTITIES_PER_CLIENT],
            next_seq: 1,
            rng: Rng(0x50A4 + id),
            acked_writes: 0,
            reads_checked: 0,
            reconnects: 0,
            device_full: 0,
        }
    }

    fn run(&mut self, addr: &str, stop: &AtomicBool) {
        let mut c = Client::connect(addr, test_config()).expect("connect");
        for n in 1..=MAX_REQUESTS_PER_CLIENT {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if n % REQUESTS_PER_CONNECTION == 0 {
                c = Client::connect(addr, test_config()).expect("reconnect");
                self.reconnects += 1;
            }
            self.one(&mut c);
        }
    }

    fn one(&mut self, c: &mut Client) {
        let i = self.rng.below(ENTITIES_PER_CLIENT as u64) as usize;
        match self.rng.below(100) {
            0..=59 => {
                let seq = (self.id + 1) << 40 | self.next_seq;
                self.next_seq += 1;
                let values = vec![
                    ("seq".to_string(), Value::I64(seq as i64)),
                    ("payload".to_string(), Value::Bytes(payload(seq))),
                ];
                let r = c.put(GROUP, key(self.id, i), seq, values, PutOptions::default());
                if self.applied(r) {
                    self.state[i] = Some(seq);
                }
            }
            60..=69 => {
                if self.applied(c.delete(GROUP, key(self.id, i), None)) {
                    self.state[i] = None;
                }
            }
            70..=84 => {
                let row = c.get(key(self.id, i), refs()).expect("get");
                assert_eq!(decode(&row).unwrap(), self.state[i], "entity {i}");
                self.reads_checked += 1;
            }
            _ => {
                let first = i.min(ENTITIES_PER_CLIENT - GET_MANY_KEYS);
                let keys = (first..first + GET_MANY_KEYS)
                    .map(|j| key(self.id, j))
                    .collect();
                let rows = c.get_many(keys, refs()).expect("get_many");
                for (j, row) in (first..).zip(rows) {
                    let got = decode(&row.expect("get_many item")).unwrap();
                    assert_eq!(got, self.state[j], "entity {j}");
                    self.reads_checked += 1;
                }
            }
        }
    }

    /// True when the write was acknowledged; a DEVICE_FULL refusal (the store's documented
    /// back-pressure while defragmentation catches up) did not happen and is waited out.
    fn applied<T>(&mut self, r: Result<T>) -> bool {
        match r {
            Ok(_) => {
                self.acked_writes += 1;
                true
            }
            Err(ClientError::Server {
                status: StatusCode::DeviceFull,
                ..
            }) => {
                self.device_full += 1;
                std::thread::sleep(Duration::from_millis(20));
                false
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }

    /// Checks every entity against the record.
    fn verify(&self, c: &mut Client) {
        let keys = (0..ENTITIES_PER_CLIENT).map(|i| key(self.id, i)).collect();
        let rows = c.get_many(keys, refs()).expect("verification get_many");
        for (i, row) in rows.into_iter().enumerate() {
            let got = decode(&row.expect("verification item")).unwrap();
            assert_eq!(got, self.state[i], "client {} entity {i}", self.id);
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

fn start(path: &Path) -> Quiverd {
    Quiverd::start(&[
        "--data",
        path.to_str().expect("utf-8 path"),
        "--size",
        "32MiB",
        "--commit",
        "buffered",
        "--workers",
        "2",
        "--engine-threads",
        "4",
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

fn engine_figure(c: &mut Client, name: &str) -> u64 {
    let json: serde_json::Value = serde_json::from_str(&c.stats().expect("stats")).unwrap();
    json["engine"][name].as_u64().unwrap_or(0)
}

/// Samples RSS every few seconds until `secs` have passed; returns the samples (KiB).
fn sample_rss(pid: u32, secs: u64) -> Vec<(f64, u64)> {
    let began = Instant::now();
    let mut samples = Vec::new();
    while began.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(SAMPLE_EVERY);
        samples.push((began.elapsed().as_secs_f64(), rss_kib(pid)));
    }
    samples
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn memory_stays_flat_and_nothing_is_lost_under_mixed_load_with_defrag() {
    let secs: u64 = std::env::var("QUIVER_SOAK_SECS")
        .ok()
        .map(|s| s.parse().expect("QUIVER_SOAK_SECS is a whole number"))
        .unwrap_or(45);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("soak.db");
    let q = start(&data);
    q.client().create_group(group_spec()).expect("create group");
    let mut loads: Vec<Load> = (0..CLIENTS).map(Load::new).collect();
    let stop = AtomicBool::new(false);
    let pid = q.child.id();
    let samples = std::thread::scope(|s| {
        let _guard = StopOnDrop(&stop);
        for l in loads.iter_mut() {
            let (addr, stop) = (q.addr.as_str(), &stop);
            s.spawn(move || l.run(addr, stop));
        }
        sample_rss(pid, secs)
    });
    let mut c = q.client();
    let freed = engine_figure(&mut c, "defrag_blocks_freed");
    for l in &loads {
        l.verify(&mut c);
    }
    drop(c);
    assert!(q.terminate().success(), "clean shutdown");
    let q = start(&data);
    let mut c = q.client();
    for l in &loads {
        l.verify(&mut c);
    }
    let writes: u64 = loads.iter().map(|l| l.acked_writes).sum();
    let reads: u64 = loads.iter().map(|l| l.reads_checked).sum();
    let reconnects: u64 = loads.iter().map(|l| l.reconnects).sum();
    let full: u64 = loads.iter().map(|l| l.device_full).sum();
    let rss: Vec<String> = samples
        .iter()
        .map(|(t, kib)| format!("{t:.0}s:{}MiB", kib >> 10))
        .collect();
    println!(
        "soak {secs} s: {writes} acknowledged writes, final state of {} entities verified \
         live and after a restart, {reads} reads checked, {reconnects} reconnects, \
         {freed} blocks defragmented, {full} writes refused with DEVICE_FULL; RSS {}",
        CLIENTS as usize * ENTITIES_PER_CLIENT,
        rss.join(" ")
    );
    assert!(freed > 0, "defragmentation never ran");
    check_flat(&samples);
}

/// After the first third of the run (the post-write cache and the index fill up), no sample
/// exceeds the first post-warm-up sample by more than the bound.
fn check_flat(samples: &[(f64, u64)]) {
    let warm = samples.len() / 3;
    let Some(&(t0, first)) = samples.get(warm) else {
        panic!("too few RSS samples: {samples:?}");
    };
    let bound = first * RSS_GROWTH_NUM / RSS_GROWTH_DEN + RSS_SLACK_KIB;
    let &(t, max) = samples[warm..]
        .iter()
        .max_by_key(|(_, kib)| *kib)
        .expect("non-empty");
    assert!(
        max <= bound,
        "RSS grew from {first} KiB at {t0:.0} s to {max} KiB at {t:.0} s (bound {bound} KiB)"
    );
}
