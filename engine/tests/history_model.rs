//! Model test of feature history: random puts (late events, corrections, backfilled write
//! times, whole-row replaces), deletes, restarts, power cuts, defragmentation and retention
//! (the window's compaction, and the version count enforced by whole sweeps run in small
//! steps, as the background task runs them), checked against a plain list of versions per
//! entity, from which each sweep removes what the version count removes. Every as-of read (by event
//! time, bitemporal, "as served") and every history read must equal the model's answer.
//!
//! All puts are `sync`, so every acknowledged version must survive a power cut; what compaction
//! writes after its commit point may be lost, and readers must not notice.
//!
//! `QUIVER_HISTORY_SEED` picks the case seed (printed); `PROPTEST_CASES` the case count.

use std::sync::Arc;

use proptest::prelude::*;
use quiver_engine::feature::{
    EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Status, Value,
    WriteMode,
};
use quiver_engine::history::{AsOf, HistoryPolicy, RetentionCursor};
use quiver_engine::store::Store;
use quiver_engine::{Config, Durability};
use quiver_wal::device::{CrashMode, FaultDevice};

const ENTITIES: u8 = 2;
const FEATURES: [&str; 3] = ["f0", "f1", "f2"];
const DEVICE_BYTES: u64 = 16 << 20;
const BLOCK_BYTES: u32 = 128 << 10;
const RETENTION_S: u32 = 1_000;
/// Superseded versions kept per feature and entity.
const MAX_VERSIONS: u32 = 3;
/// Times are offsets in ms from a base 2,000 s in the past, so half of them fall before the
/// retention window and compaction has work.
const SPAN_MS: u64 = 2_000_000;

#[derive(Clone, Debug)]
enum Op {
    Put {
        entity: u8,
        /// Event time = write time - this.
        lateness: u64,
        /// (feature index, value; `None` = null)
        values: Vec<(usize, Option<i64>)>,
        replace: bool,
    },
    Delete {
        entity: u8,
    },
    Check {
        entity: u8,
        time: u64,
        known_at: Option<u64>,
        served: bool,
    },
    Reopen,
    PowerCut,
    Defrag,
    Compact,
    /// A whole retention sweep, in steps scanning `batch` history records each.
    Retain {
        batch: usize,
    },
}

/// How far before its write time a put's event time lies: mostly a little, sometimes a lot.
fn lateness() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0..100_000u64, 1 => 0..SPAN_MS]
}

fn op() -> impl Strategy<Value = Op> {
    let time = 0..SPAN_MS;
    prop_oneof![
        30 => (0..ENTITIES, lateness(), prop::collection::btree_map(0..FEATURES.len(), prop::option::weighted(0.9, -100i64..100), 1..=3), prop::bool::weighted(0.1))
            .prop_map(|(entity, lateness, values, replace)| Op::Put { entity, lateness, values: values.into_iter().collect(), replace }),
        1 => (0..ENTITIES).prop_map(|entity| Op::Delete { entity }),
        8 => (0..ENTITIES, time.clone(), prop::option::of(time), any::<bool>())
            .prop_map(|(entity, time, known_at, served)| Op::Check { entity, time, known_at, served }),
        1 => Just(Op::Reopen),
        1 => Just(Op::PowerCut),
        1 => Just(Op::Defrag),
        1 => Just(Op::Compact),
        2 => (1..4usize).prop_map(|batch| Op::Retain { batch }),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct ModelVersion {
    feature: usize,
    event: u64,
    write: u64,
    /// `None`: the feature was removed by a replace; `Some(None)`: a null.
    value: Option<Option<i64>>,
}

struct Harness {
    dir: tempfile::TempDir,
    device: Arc<FaultDevice>,
    store: Option<Store>,
    base_ms: u64,
    serial: u64,
    versions: Vec<Vec<ModelVersion>>,
    /// Features in each entity's online row (for whole-row replaces).
    online: Vec<Vec<bool>>,
    window: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

impl Harness {
    /// `window`: the group keeps a retention window besides its version count; without one,
    /// reads of any time are answered and the count alone decides what is kept.
    fn new(seed: u64, window: bool) -> Harness {
        let mut h = Harness {
            dir: tempfile::tempdir().unwrap(),
            device: Arc::new(FaultDevice::new(DEVICE_BYTES, seed)),
            store: None,
            base_ms: now_ms() - SPAN_MS,
            serial: 0,
            versions: vec![Vec::new(); ENTITIES as usize],
            online: vec![vec![false; FEATURES.len()]; ENTITIES as usize],
            window: false,
        };
        h.open();
        let mut spec = GroupSpec::new(
            "g",
            KeyType::I64,
            FEATURES
                .iter()
                .map(|f| FeatureSpec::new(*f, FeatureType::I64))
                .collect(),
        );
        spec.history = Some(if window {
            HistoryPolicy::retention(RETENTION_S).with_max_versions(MAX_VERSIONS)
        } else {
            HistoryPolicy::versions(MAX_VERSIONS)
        });
        h.window = window;
        h.s().create_group(spec).unwrap();
        h
    }

    fn s(&self) -> &Store {
        self.store.as_ref().expect("open")
    }

    fn open(&mut self) {
        let config = Config {
            write_block_bytes: BLOCK_BYTES,
            durability: Durability::Sync,
            flush_interval_ms: 60_000,
            defrag_pause_ms: 0,
            checkpoint_interval_s: 0,
            checkpoint_path: Some(self.dir.path().join("store.ckpt")),
            ..Config::memory(DEVICE_BYTES)
        };
        self.store = Some(Store::open_on_device(config, self.device.clone()).expect("open"));
    }

    /// The window start, with a margin for the wall clock moving during the case.
    fn horizon(&self) -> u64 {
        if !self.window {
            return 0;
        }
        (now_ms() + 60_000).saturating_sub(RETENTION_S as u64 * 1000)
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Put {
                entity,
                lateness,
                values,
                replace,
            } => self.put(*entity, *lateness, values, *replace),
            Op::Delete { entity } => {
                let e = *entity as usize;
                self.s()
                    .delete("g", &EntityKey::I64(e as i64), None)
                    .unwrap();
                self.versions[e].clear();
                self.online[e] = vec![false; FEATURES.len()];
            }
            Op::Check {
                entity,
                time,
                known_at,
                served,
            } => self.check(*entity, *time, *known_at, *served),
            Op::Reopen => {
                self.store.take().unwrap().close().unwrap();
                self.open();
            }
            Op::PowerCut => {
                let image = self.device.crash(CrashMode::Random);
                drop(self.store.take());
                self.serial += 1;
                self.device = Arc::new(FaultDevice::from_image(image, self.serial));
                self.open();
            }
            Op::Defrag => {
                self.s().engine().defragment(usize::MAX).unwrap();
            }
            Op::Compact => {
                self.s().compact_history().unwrap();
                self.trim();
            }
            Op::Retain { batch } => {
                let mut cursor = RetentionCursor::START;
                let mut steps = 0;
                while let (_, Some(next)) = self.s().retention_step(cursor, *batch).unwrap() {
                    cursor = next;
                    steps += 1;
                    assert!(steps < 10_000, "a sweep must end");
                }
                self.trim();
            }
        }
    }

    /// What a completed sweep leaves of each feature's versions: the newest and at most
    /// `MAX_VERSIONS` superseded ones (versions tied with the last one kept stay with it).
    fn trim(&mut self) {
        for versions in &mut self.versions {
            for f in 0..FEATURES.len() {
                let mut orders: Vec<(u64, u64)> = versions
                    .iter()
                    .filter(|v| v.feature == f)
                    .map(|v| (v.event, v.write))
                    .collect();
                orders.sort_unstable_by(|a, b| b.cmp(a));
                orders.dedup();
                let Some(&cut) = orders.get(MAX_VERSIONS as usize) else {
                    continue;
                };
                versions.retain(|v| v.feature != f || (v.event, v.write) >= cut);
            }
        }
    }

    fn put(&mut self, entity: u8, lateness: u64, values: &[(usize, Option<i64>)], replace: bool) {
        let e = entity as usize;
        self.serial += 1;
        // Backfilled write times, growing with every put across the span (half of it before
        // the retention window), so that compaction has whole segments to reclaim.
        let write = self.base_ms + self.serial * (SPAN_MS / 700);
        let event = write.saturating_sub(lateness).max(self.base_ms);
        let typed: Vec<(&str, Value)> = values
            .iter()
            .map(|&(f, v)| (FEATURES[f], v.map_or(Value::Null, Value::I64)))
            .collect();
        let opts = PutOptions {
            mode: if replace {
                WriteMode::ReplaceRow
            } else {
                WriteMode::Merge
            },
            write_time_ms: Some(write),
            ..PutOptions::default()
        };
        self.s()
            .put("g", &EntityKey::I64(e as i64), event, &typed, &opts)
            .unwrap();
        if replace {
            for f in 0..FEATURES.len() {
                if self.online[e][f] && !values.iter().any(|&(g, _)| g == f) {
                    self.versions[e].push(ModelVersion {
                        feature: f,
                        event,
                        write,
                        value: None,
                    });
                    self.online[e][f] = false;
                }
            }
        }
        for &(f, v) in values {
            self.versions[e].push(ModelVersion {
                feature: f,
                event,
                write,
                value: Some(v),
            });
            self.online[e][f] = true;
        }
    }

    fn expected(&self, e: usize, at: &AsOf) -> Vec<(Status, Value)> {
        (0..FEATURES.len())
            .map(|f| {
                let best = self.versions[e]
                    .iter()
                    .filter(|v| v.feature == f && v.event <= at.event_limit_ms)
                    .filter(|v| at.known_at_ms.is_none_or(|k| v.write <= k))
                    .max_by_key(|v| (v.event, v.write));
                match best.map(|v| v.value) {
                    None | Some(None) => (Status::NotFound, Value::Null),
                    Some(Some(None)) => (Status::Null, Value::Null),
                    Some(Some(Some(x))) => (Status::Present, Value::I64(x)),
                }
            })
            .collect()
    }

    fn check(&mut self, entity: u8, time: u64, known_at: Option<u64>, served: bool) {
        let e = entity as usize;
        let horizon = self.horizon();
        let time = (self.base_ms + time).max(horizon);
        let known_at = known_at.map(|k| (self.base_ms + k).max(horizon));
        let at = match (served, known_at) {
            (true, _) => AsOf::as_served(time),
            (false, Some(k)) => AsOf::known_at(time, k),
            (false, None) => AsOf::event_time(time),
        };
        let refs: Vec<FeatureRef> = FEATURES.iter().map(|f| FeatureRef::new("g", *f)).collect();
        let got = self
            .s()
            .get_as_of(&EntityKey::I64(e as i64), &refs, at)
            .unwrap();
        let got: Vec<(Status, Value)> = got.into_iter().map(|v| (v.status, v.value)).collect();
        assert_eq!(got, self.expected(e, &at), "entity {e} at {at:?}");
        // The history read inside the window lists exactly the model's versions there.
        let listed = self
            .s()
            .history(
                "g",
                &EntityKey::I64(e as i64),
                &FEATURES,
                horizon,
                u64::MAX,
                known_at,
            )
            .unwrap();
        let mut want: Vec<(u64, u64, usize)> = self.versions[e]
            .iter()
            .filter(|v| v.event >= horizon && known_at.is_none_or(|k| v.write <= k))
            .map(|v| (v.event, v.write, v.feature))
            .collect();
        want.sort();
        want.dedup();
        let got: Vec<(u64, u64, usize)> = listed
            .iter()
            .map(|h| {
                let f = FEATURES.iter().position(|f| *f == h.feature).unwrap();
                (h.event_time_ms, h.write_time_ms, f)
            })
            .collect();
        assert_eq!(got, want, "history of entity {e}");
    }
}

fn seed() -> u64 {
    std::env::var("QUIVER_HISTORY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() % 1_000_000)
}

#[test]
fn history_matches_the_model() {
    let seed = seed();
    println!("QUIVER_HISTORY_SEED={seed}");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let mut config = ProptestConfig::with_cases(cases);
    config.rng_algorithm = proptest::test_runner::RngAlgorithm::ChaCha;
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        config,
        proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &{
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            bytes
        }),
    );
    runner
        .run(
            &(any::<bool>(), prop::collection::vec(op(), 100..600)),
            |(window, ops)| {
                let mut h = Harness::new(seed, window);
                for op in &ops {
                    h.apply(op);
                }
                for e in 0..ENTITIES {
                    for t in [0, SPAN_MS / 2, SPAN_MS - 1] {
                        h.check(e, t, None, false);
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}
