//! Training sets (point-in-time joins) through the engine API: every mode against a plain
//! in-memory model of the versions written (late events, corrections, nulls, TTLs, missing
//! entities, two groups with different key types), no value from after a row's time ever
//! appearing (leakage), and "as served" equal to a recording of online reads made while late
//! data was being written.

use std::collections::HashMap;
use std::sync::Arc;

use quiver_engine::feature::{
    EntityKey, FeatureError, FeatureRef, FeatureSpec, FeatureType, FeatureValue, GroupSpec,
    KeyType, PutOptions, Status, Value,
};
use quiver_engine::history::HistoryPolicy;
use quiver_engine::store::Store;
use quiver_engine::training::{SpineBatch, TimeMode};
use quiver_engine::{Clock, Config, Error, ManualClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TEN_YEARS_S: u32 = 3650 * 86_400;
const TTL_S: u32 = 600;

fn config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config::file(dir.path().join("store.db"), 64 << 20);
    config.write_block_bytes = 128 << 10;
    config
}

fn group(
    name: &str,
    key_type: KeyType,
    features: &[(&str, FeatureType)],
    ttl: Option<u32>,
) -> GroupSpec {
    let mut spec = GroupSpec::new(
        name,
        key_type,
        features
            .iter()
            .map(|(n, t)| FeatureSpec::new(*n, *t))
            .collect(),
    );
    spec.ttl_s = ttl;
    spec.history = Some(HistoryPolicy::retention(TEN_YEARS_S));
    spec
}

/// Two groups: `user` (string keys, TTL) and `shop` (i64 keys, no TTL).
fn create_groups(store: &Store) {
    store
        .create_group(group(
            "user",
            KeyType::String,
            &[("clicks", FeatureType::I64), ("score", FeatureType::F64)],
            Some(TTL_S),
        ))
        .unwrap();
    store
        .create_group(group(
            "shop",
            KeyType::I64,
            &[("rating", FeatureType::F64)],
            None,
        ))
        .unwrap();
}

fn refs() -> Vec<FeatureRef> {
    vec![
        FeatureRef::new("user", "clicks"),
        FeatureRef::new("shop", "rating"),
        FeatureRef::new("user", "score"),
    ]
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One version as the model keeps it.
#[derive(Debug, Clone)]
struct Written {
    event_ms: u64,
    write_ms: u64,
    value: Value,
}

/// Every version written, per (group, entity, feature).
#[derive(Default)]
struct Model {
    versions: HashMap<(String, EntityKey, String), Vec<Written>>,
}

impl Model {
    /// What a read as of `(event_limit, known_at, ttl_reference)` answers: the newest event
    /// time among the visible versions, the later write on ties; EXPIRED by the TTL.
    fn answer(
        &self,
        r: &FeatureRef,
        key: &EntityKey,
        event_limit: u64,
        known_at: Option<u64>,
        ttl_reference: u64,
        ttl_s: Option<u32>,
    ) -> (Status, Value, u64) {
        let best = self
            .versions
            .get(&(r.group.clone(), key.clone(), r.feature.clone()))
            .into_iter()
            .flatten()
            .filter(|v| v.event_ms <= event_limit && known_at.is_none_or(|k| v.write_ms <= k))
            .max_by_key(|v| (v.event_ms, v.write_ms));
        let Some(v) = best else {
            return (Status::NotFound, Value::Null, 0);
        };
        if ttl_s.is_some_and(|t| ttl_reference.saturating_sub(v.event_ms) > t as u64 * 1000) {
            return (Status::Expired, Value::Null, v.event_ms);
        }
        let status = if v.value == Value::Null {
            Status::Null
        } else {
            Status::Present
        };
        (status, v.value.clone(), v.event_ms)
    }
}

fn user_key(i: u64) -> EntityKey {
    EntityKey::String(format!("u{i}"))
}

/// Writes random versions to both groups (late events, corrections with equal event times,
/// nulls, subsets of features) with explicit write times, recording them in the model.
fn write_random(store: &Store, rng: &mut StdRng, t0: u64, model: &mut Model) {
    let span_ms = 20_000_000;
    for _ in 0..3_000 {
        let user = rng.gen_bool(0.7);
        let (grp, key, features): (&str, EntityKey, &[&str]) = if user {
            ("user", user_key(rng.gen_range(0..6)), &["clicks", "score"])
        } else {
            ("shop", EntityKey::I64(rng.gen_range(0..4)), &["rating"])
        };
        let event_ms = t0 + rng.gen_range(0..span_ms);
        // Late by up to a third of the span; some values are written before their event time.
        let write_ms = (event_ms + rng.gen_range(0..span_ms / 3)).saturating_sub(1_000);
        let mut values = Vec::new();
        for f in features {
            if values.is_empty() || rng.gen_bool(0.6) {
                let value = match (rng.gen_range(0..10), *f) {
                    (0, _) => Value::Null,
                    (_, "clicks") => Value::I64(rng.gen_range(-50..50)),
                    _ => Value::F64(rng.gen_range(0..1000) as f64 / 8.0),
                };
                values.push((*f, value));
            }
        }
        let opts = PutOptions {
            write_time_ms: Some(write_ms),
            ..PutOptions::default()
        };
        store.put(grp, &key, event_ms, &values, &opts).unwrap();
        for (f, value) in values {
            model
                .versions
                .entry((grp.to_string(), key.clone(), f.to_string()))
                .or_default()
                .push(Written {
                    event_ms,
                    write_ms,
                    value,
                });
        }
    }
}

/// A random spine: users 0..8 (6 and 7 were never written), shops 0..5 or none.
fn random_spine(rng: &mut StdRng, t0: u64, rows: usize, first_row: u64) -> SpineBatch {
    let mut batch = SpineBatch {
        first_row,
        keys: vec![Vec::new(), Vec::new()],
        ..SpineBatch::default()
    };
    let mut known = Vec::new();
    for _ in 0..rows {
        let ts = t0 + rng.gen_range(0..22_000_000);
        batch.timestamps_ms.push(ts);
        known.push(ts + rng.gen_range(0..8_000_000));
        batch.keys[0].push(Some(user_key(rng.gen_range(0..8))));
        let shop = rng
            .gen_bool(0.8)
            .then(|| EntityKey::I64(rng.gen_range(0..5)));
        batch.keys[1].push(shop);
    }
    batch.known_at_ms = Some(known);
    batch
}

#[test]
fn every_mode_matches_the_model_and_never_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(&dir)).unwrap();
    create_groups(&store);
    let mut rng = StdRng::seed_from_u64(0x7ea1);
    let t0 = now_ms() - 30 * 86_400_000;
    let mut model = Model::default();
    write_random(&store, &mut rng, t0, &mut model);
    let refs = refs();
    let ttl = |r: &FeatureRef| (r.group == "user").then_some(TTL_S);
    for mode in [TimeMode::EventTime, TimeMode::AsServed, TimeMode::KnownAt] {
        let set = store.training_set(&refs, mode).unwrap().threads(2);
        let names: Vec<(&str, KeyType)> = set.groups().collect();
        assert_eq!(
            names,
            vec![("user", KeyType::String), ("shop", KeyType::I64)]
        );
        let mut checked = [0usize; 5];
        for b in 0..3 {
            let mut batch = random_spine(&mut rng, t0, 7_000, b * 7_000);
            if !mode.needs_known_at() {
                batch.known_at_ms = None;
            }
            let joined = set.join(&batch).unwrap();
            assert_eq!(joined.columns.len(), refs.len());
            for (c, r) in refs.iter().enumerate() {
                let g = if r.group == "user" { 0 } else { 1 };
                for row in 0..batch.len() {
                    let got: &FeatureValue = &joined.columns[c][row];
                    let ts = batch.timestamps_ms[row];
                    let Some(key) = &batch.keys[g][row] else {
                        assert_eq!(got.status, Status::NotFound);
                        continue;
                    };
                    let (limit, known) = match mode {
                        TimeMode::EventTime => (ts, None),
                        TimeMode::AsServed => (u64::MAX, Some(ts)),
                        TimeMode::KnownAt => (ts, Some(batch.known_at_ms.as_ref().unwrap()[row])),
                    };
                    let want = model.answer(r, key, limit, known, ts, ttl(r));
                    assert_eq!(
                        (got.status, &got.value),
                        (want.0, &want.1),
                        "{mode:?} row {} {r:?} key {key:?} at {ts}",
                        batch.row_number(row)
                    );
                    if got.status != Status::NotFound {
                        assert_eq!(got.event_time_ms, want.2);
                        if mode != TimeMode::AsServed {
                            // No leakage: never a value from after the row's time.
                            assert!(got.event_time_ms <= ts, "leak at row {row}");
                        }
                    }
                    checked[got.status as usize] += 1;
                }
            }
        }
        // The data reaches every status, so each comparison above could have failed.
        assert!(
            checked[..4].iter().all(|&n| n > 100),
            "{mode:?}: {checked:?}"
        );
    }
}

#[test]
fn as_served_equals_a_recording_of_online_reads() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let mut cfg = config(&dir);
    cfg.clock = clock.clone();
    let store = Store::open(cfg).unwrap();
    create_groups(&store);
    let mut rng = StdRng::seed_from_u64(0x5e7e);
    let refs = refs();
    let mut spine = SpineBatch {
        keys: vec![Vec::new(), Vec::new()],
        ..SpineBatch::default()
    };
    let mut recorded: Vec<Vec<FeatureValue>> = Vec::new();
    for _ in 0..400 {
        clock.advance(rng.gen_range(1..60));
        let now_ms = clock.now_ms();
        // Writes at this second, many of them late (event times up to 15 minutes back, so
        // past the TTL), some out of order, some corrections of an earlier event time.
        let writes = if rng.gen_bool(0.3) {
            rng.gen_range(1..4)
        } else {
            0
        };
        for _ in 0..writes {
            let event_ms = now_ms - rng.gen_range(1..900_000);
            let key = user_key(rng.gen_range(0..5));
            let v = Value::I64(rng.gen_range(0..1000));
            store
                .put(
                    "user",
                    &key,
                    event_ms,
                    &[("clicks", v)],
                    &PutOptions::default(),
                )
                .unwrap();
            let shop = EntityKey::I64(rng.gen_range(0..3));
            let r = Value::F64(rng.gen_range(0..100) as f64);
            store
                .put(
                    "shop",
                    &shop,
                    event_ms,
                    &[("rating", r)],
                    &PutOptions::default(),
                )
                .unwrap();
        }
        // Then online reads at this second, recorded with the time they were made.
        for _ in 0..2 {
            let user = user_key(rng.gen_range(0..6));
            let shop = EntityKey::I64(rng.gen_range(0..4));
            let user_values = store
                .get(&user, &[refs[0].clone(), refs[2].clone()])
                .unwrap();
            let shop_values = store.get(&shop, &[refs[1].clone()]).unwrap();
            recorded.push(vec![
                user_values[0].clone(),
                shop_values[0].clone(),
                user_values[1].clone(),
            ]);
            spine.timestamps_ms.push(now_ms);
            spine.keys[0].push(Some(user));
            spine.keys[1].push(Some(shop));
        }
    }
    let set = store.training_set(&refs, TimeMode::AsServed).unwrap();
    let joined = set.join(&spine).unwrap();
    let mut statuses = [0usize; 5];
    for (row, online) in recorded.iter().enumerate() {
        for (c, want) in online.iter().enumerate() {
            let got = &joined.columns[c][row];
            // The online row's record also expires as a whole (by its write time): it then
            // reads NOT_FOUND where the history says EXPIRED; both are null in a training set.
            let same_status = got.status == want.status
                || (got.status == Status::Expired && want.status == Status::NotFound);
            assert!(
                same_status && got.value == want.value,
                "row {row} column {c}: training set {got:?}, online {want:?}"
            );
            statuses[got.status as usize] += 1;
        }
    }
    assert!(statuses[Status::Present as usize] > 50, "{statuses:?}");
    assert!(statuses[Status::Expired as usize] > 20, "{statuses:?}");
    assert!(statuses[Status::NotFound as usize] > 20, "{statuses:?}");
    // Event time alone differs: it sees the late data written after each read.
    let event = store.training_set(&refs, TimeMode::EventTime).unwrap();
    let by_event = event.join(&spine).unwrap();
    assert_ne!(by_event, joined, "late data makes the two modes differ");
}

#[test]
fn a_bad_spine_is_refused_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(&dir)).unwrap();
    create_groups(&store);
    let set = store.training_set(&refs(), TimeMode::EventTime).unwrap();
    let now = now_ms();
    let mut batch = SpineBatch {
        first_row: 100,
        timestamps_ms: vec![now, now],
        keys: vec![
            vec![Some(user_key(1)), Some(EntityKey::I64(3))],
            vec![None, None],
        ],
        known_at_ms: None,
    };
    let err = set.join(&batch).unwrap_err().to_string();
    assert!(
        err.contains("spine row 102: entity key of type i64 given for group 'user'"),
        "{err}"
    );
    batch.keys[0][1] = Some(user_key(2));
    batch.timestamps_ms[0] = 5;
    let err = set.join(&batch).unwrap_err().to_string();
    assert!(
        err.contains("spine row 101: as-of time 5 ms is before the history window of group 'user'"),
        "{err}"
    );
    batch.timestamps_ms[0] = now;
    assert!(set.join(&batch).is_ok());
    batch.known_at_ms = Some(vec![now, now]);
    let err = set.join(&batch).unwrap_err().to_string();
    assert!(err.contains("the mode is not known-at"), "{err}");
    // Builders are checked when made.
    let no_history = GroupSpec::new(
        "plain",
        KeyType::I64,
        vec![FeatureSpec::new("x", FeatureType::I64)],
    );
    store.create_group(no_history).unwrap();
    let err = store
        .training_set(&[FeatureRef::new("plain", "x")], TimeMode::EventTime)
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Feature(FeatureError::NoHistory { .. })),
        "{err}"
    );
    let twice = [
        FeatureRef::new("user", "clicks"),
        FeatureRef::new("user", "clicks"),
    ];
    let err = store
        .training_set(&twice, TimeMode::EventTime)
        .err()
        .unwrap();
    assert!(err.to_string().contains("more than once"), "{err}");
    let err = store
        .training_set(&[FeatureRef::new("user", "nope")], TimeMode::EventTime)
        .err()
        .unwrap();
    assert!(err.to_string().contains("unknown feature 'nope'"), "{err}");
}
