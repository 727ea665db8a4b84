//! History retention by version count, run by the store's background task: it trims every
//! entity to the group's `max_versions`, never the newest value, reports what it did, and the
//! space it frees comes back through defragmentation; nothing it removed returns after a
//! restart. Also: `max_versions` on create and alter, and its limits.

use std::time::{Duration, Instant};

use quiver_engine::feature::{
    Alter, EntityKey, FeatureError, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType,
    PutOptions, Status, Value,
};
use quiver_engine::history::{AsOf, HistoryPolicy, MAX_HISTORY_VERSIONS};
use quiver_engine::store::Store;
use quiver_engine::{Config, Error};

const KEEP: u32 = 2;
const ENTITIES: u32 = 16;
const VERSIONS: u64 = 300;

fn config(dir: &tempfile::TempDir, interval_s: u64) -> Config {
    let mut config = Config::file(dir.path().join("store.db"), 64 << 20);
    config.write_block_bytes = 128 << 10;
    config.history_retention_interval_s = interval_s;
    config.history_retention_batch = 4;
    config.history_retention_pause_ms = 0;
    config
}

fn spec(history: HistoryPolicy) -> GroupSpec {
    let mut spec = GroupSpec::new(
        "user",
        KeyType::String,
        vec![FeatureSpec::new("s", FeatureType::String)],
    );
    spec.history = Some(history);
    spec
}

fn key(i: u32) -> EntityKey {
    EntityKey::String(format!("u{i}"))
}

fn value(entity: u32, version: u64) -> Value {
    Value::String(format!("{entity}:{version}:{}", "x".repeat(200)))
}

/// Waits up to 60 s for `done`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every entity's history holds exactly the newest `KEEP + 1` versions, and the newest one
/// still answers as of now.
fn check_trimmed(store: &Store, base: u64) {
    for e in 0..ENTITIES {
        let listed = store
            .history("user", &key(e), &["s"], 0, u64::MAX, None)
            .unwrap();
        let times: Vec<u64> = listed.iter().map(|h| h.event_time_ms - base).collect();
        let want: Vec<u64> = (VERSIONS - 1 - KEEP as u64..VERSIONS).collect();
        assert_eq!(times, want, "entity {e}");
        let now = store
            .get_as_of(
                &key(e),
                &[FeatureRef::new("user", "s")],
                AsOf::event_time(u64::MAX / 2),
            )
            .unwrap();
        assert_eq!(now[0].value, value(e, VERSIONS - 1));
        // An as-of time whose version was removed reads as though it was never written.
        let old = store
            .get_as_of(
                &key(e),
                &[FeatureRef::new("user", "s")],
                AsOf::event_time(base + 5),
            )
            .unwrap();
        assert_eq!(old[0].status, Status::NotFound);
    }
}

#[test]
fn background_retention_trims_and_defragmentation_takes_the_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(&dir, 1)).unwrap();
    store
        .create_group(spec(HistoryPolicy::versions(KEEP)))
        .unwrap();
    let base = 1_700_000_000_000u64;
    for v in 0..VERSIONS {
        for e in 0..ENTITIES {
            store
                .put(
                    "user",
                    &key(e),
                    base + v,
                    &[("s", value(e, v))],
                    &PutOptions::default(),
                )
                .unwrap();
        }
    }
    store.flush().unwrap();
    let before = store.stats();
    // A sweep that started after the last write has trimmed every entity.
    let sweeps = store.retention_stats().sweeps;
    wait_for("two sweeps", || {
        store.retention_stats().sweeps >= sweeps + 2
    });
    let retention = store.retention_stats();
    assert!(
        retention.entities_checked >= ENTITIES as u64,
        "{retention:?}"
    );
    let superseded = ENTITIES as u64 * (VERSIONS - 1 - KEEP as u64);
    assert_eq!(retention.versions_removed, superseded, "{retention:?}");
    assert!(retention.last_sweep_end_ms > 0, "{retention:?}");
    check_trimmed(&store, base);
    // The removed versions' bytes are no longer live, and defragmentation frees their blocks.
    let after = store.stats();
    assert!(
        after.live_bytes < before.live_bytes / 4,
        "live bytes {} -> {}",
        before.live_bytes,
        after.live_bytes
    );
    wait_for("defragmentation to free blocks", || {
        store.engine().defragment(usize::MAX).unwrap();
        store.stats().blocks_used < before.blocks_used / 2
    });
    check_trimmed(&store, base);
    store.close().unwrap();
    // Nothing removed comes back: not from the checkpoint, nor from a scan of the device.
    let store = Store::open(config(&dir, 0)).unwrap();
    check_trimmed(&store, base);
    drop(store);
    std::fs::remove_file(dir.path().join("store.db.ckpt")).unwrap();
    let store = Store::open(config(&dir, 0)).unwrap();
    assert_eq!(store.engine().recovery_report().mode, "scan");
    check_trimmed(&store, base);
}

#[test]
fn max_versions_on_create_and_alter_with_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(&dir, 0)).unwrap();
    for bad in [0, MAX_HISTORY_VERSIONS + 1] {
        let err = store
            .create_group(spec(HistoryPolicy::versions(bad)))
            .unwrap_err();
        assert!(
            matches!(err, Error::Feature(FeatureError::InvalidHistory { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("outside 1..=100000"), "{err}");
    }
    let created = store
        .create_group(spec(HistoryPolicy::retention(3600)))
        .unwrap();
    assert_eq!(created.history.unwrap().max_versions, None);
    let altered = store
        .alter_group("user", Alter::SetHistoryMaxVersions(Some(5)))
        .unwrap();
    assert_eq!(
        altered.history,
        Some(HistoryPolicy::retention(3600).with_max_versions(5))
    );
    // Changing the window keeps the count, and the count alone may remain.
    let altered = store
        .alter_group("user", Alter::SetHistoryRetention(Some(60)))
        .unwrap();
    assert_eq!(
        altered.history,
        Some(HistoryPolicy::retention(60).with_max_versions(5))
    );
    // Without a window, the count cannot be removed: history would be unbounded.
    let plain = store
        .alter_group("user", Alter::SetHistoryRetention(None))
        .unwrap();
    assert_eq!(plain.history, None);
    let counted = store
        .alter_group("user", Alter::SetHistoryMaxVersions(Some(1)))
        .unwrap();
    assert_eq!(counted.history, Some(HistoryPolicy::versions(1)));
    let err = store
        .alter_group("user", Alter::SetHistoryMaxVersions(None))
        .unwrap_err();
    assert!(err.to_string().contains("without a bound"), "{err}");
    let err = store
        .alter_group("user", Alter::SetHistoryMaxVersions(Some(0)))
        .unwrap_err();
    assert!(err.to_string().contains("max_versions of 0"), "{err}");
    // The setting is durable and versioned with the schema.
    let version = store.describe_group("user").unwrap().version;
    store.close().unwrap();
    let store = Store::open(config(&dir, 0)).unwrap();
    let schema = store.describe_group("user").unwrap();
    assert_eq!(schema.version, version);
    assert_eq!(schema.history, Some(HistoryPolicy::versions(1)));
}
