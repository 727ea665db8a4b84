//! History of a feature group: as-of reads by event time and by write time (bitemporal),
//! "as served" reads, history range reads, TTL relative to the as-of time, whole-row replaces,
//! deletes, retention compaction, paged history reads, the listing of entities with history,
//! and survival across restarts and defragmentation.

use quiver_engine::feature::{
    Alter, EntityKey, FeatureError, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType,
    PutOptions, Status, Value, WriteMode,
};
use quiver_engine::history::{
    history_group, AsOf, HistoryEntry, HistoryPolicy, HistoryRange, SEAL_VERSIONS,
};
use quiver_engine::store::Store;
use quiver_engine::{Config, Error, ScanCursor};

const DAY_MS: u64 = 86_400_000;

fn open(dir: &tempfile::TempDir) -> Store {
    let mut config = Config::file(dir.path().join("store.db"), 64 << 20);
    config.write_block_bytes = 128 << 10;
    Store::open(config).unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn spec(history: Option<HistoryPolicy>, ttl_s: Option<u32>) -> GroupSpec {
    let mut spec = GroupSpec::new(
        "user",
        KeyType::String,
        vec![
            FeatureSpec::new("a", FeatureType::I64),
            FeatureSpec::new("b", FeatureType::I64),
        ],
    );
    spec.history = history;
    spec.ttl_s = ttl_s;
    spec
}

fn refs() -> Vec<FeatureRef> {
    vec![FeatureRef::new("user", "a"), FeatureRef::new("user", "b")]
}

fn key(i: u32) -> EntityKey {
    EntityKey::String(format!("u{i}"))
}

fn put_at(store: &Store, k: &EntityKey, event: u64, write: u64, values: &[(&str, Value)]) {
    let opts = PutOptions {
        write_time_ms: Some(write),
        ..PutOptions::default()
    };
    store.put("user", k, event, values, &opts).unwrap();
}

fn a_at(store: &Store, k: &EntityKey, at: AsOf) -> (Status, Value) {
    let got = store.get_as_of(k, &refs(), at).unwrap();
    (got[0].status, got[0].value.clone())
}

#[test]
fn late_events_and_corrections_by_event_time_and_by_write_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .create_group(spec(Some(HistoryPolicy::retention(3650 * 86_400)), None))
        .unwrap();
    let t = now_ms() - 10 * DAY_MS;
    let k = key(1);
    put_at(&store, &k, t + 100, t + 1_000, &[("a", Value::I64(1))]);
    // Late: event time before the first, written later.
    put_at(&store, &k, t + 50, t + 2_000, &[("a", Value::I64(2))]);
    // Correction: same event time as the first, written later still.
    put_at(&store, &k, t + 100, t + 3_000, &[("a", Value::I64(3))]);
    let present = |v| (Status::Present, Value::I64(v));
    assert_eq!(a_at(&store, &k, AsOf::event_time(t + 99)), present(2));
    assert_eq!(a_at(&store, &k, AsOf::event_time(t + 100)), present(3));
    assert_eq!(
        a_at(&store, &k, AsOf::event_time(t + 49)).0,
        Status::NotFound
    );
    assert_eq!(
        a_at(&store, &k, AsOf::known_at(t + 100, t + 1_500)),
        present(1)
    );
    assert_eq!(
        a_at(&store, &k, AsOf::known_at(t + 60, t + 1_500)).0,
        Status::NotFound
    );
    assert_eq!(a_at(&store, &k, AsOf::as_served(t + 2_500)), present(1));
    assert_eq!(a_at(&store, &k, AsOf::as_served(t + 3_000)), present(3));
    // The online row agrees with the newest version.
    let online = store.get(&k, &refs()).unwrap();
    assert_eq!(online[0].value, Value::I64(3));
    // History lists every version in event-time order.
    let history = store
        .history("user", &k, &["a"], 0, u64::MAX, None)
        .unwrap();
    let seen: Vec<(u64, u64, Value)> = history
        .iter()
        .map(|h| (h.event_time_ms - t, h.write_time_ms - t, h.value.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (50, 2_000, Value::I64(2)),
            (100, 1_000, Value::I64(1)),
            (100, 3_000, Value::I64(3))
        ]
    );
    let known = store
        .history("user", &k, &["a"], 0, u64::MAX, Some(t + 1_000))
        .unwrap();
    assert_eq!(known.len(), 1);
}

#[test]
fn ttl_counts_from_the_as_of_time_and_replace_removes_features() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .create_group(spec(
            Some(HistoryPolicy::retention(3650 * 86_400)),
            Some(60),
        ))
        .unwrap();
    let t = now_ms() - DAY_MS;
    let k = key(2);
    put_at(
        &store,
        &k,
        t,
        t,
        &[("a", Value::I64(7)), ("b", Value::Null)],
    );
    assert_eq!(
        a_at(&store, &k, AsOf::event_time(t + 60_000)).0,
        Status::Present
    );
    assert_eq!(
        a_at(&store, &k, AsOf::event_time(t + 60_001)).0,
        Status::Expired
    );
    let got = store
        .get_as_of(&k, &refs(), AsOf::event_time(t + 1))
        .unwrap();
    assert_eq!(got[1].status, Status::Null);
    let replace = PutOptions {
        mode: WriteMode::ReplaceRow,
        write_time_ms: Some(t + 10),
        ..PutOptions::default()
    };
    store
        .put("user", &k, t + 10, &[("b", Value::I64(5))], &replace)
        .unwrap();
    let got = store
        .get_as_of(&k, &refs(), AsOf::event_time(t + 20))
        .unwrap();
    assert_eq!(got[0].status, Status::NotFound, "replace removed 'a'");
    assert_eq!(got[1].value, Value::I64(5));
    let before = store
        .get_as_of(&k, &refs(), AsOf::event_time(t + 5))
        .unwrap();
    assert_eq!(before[0].value, Value::I64(7), "history before the replace");
}

#[test]
fn many_versions_seal_into_segments_and_survive_restart_and_defragmentation() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ms() - 30 * DAY_MS;
    let versions = SEAL_VERSIONS as u64 * 5 + 3;
    {
        let store = open(&dir);
        store
            .create_group(spec(Some(HistoryPolicy::retention(3650 * 86_400)), None))
            .unwrap();
        for e in 0..4 {
            // Event times in a scrambled order: late events everywhere.
            for i in 0..versions {
                let event = t + (i * 7919) % versions * 1_000;
                put_at(
                    &store,
                    &key(e),
                    event,
                    t + i,
                    &[("a", Value::I64(i as i64))],
                );
            }
        }
        store.close().unwrap();
    }
    let store = open(&dir);
    store.engine().defragment(usize::MAX).unwrap();
    for e in 0..4 {
        for probe in [0, 1, versions / 2, versions - 1, versions + 5] {
            let at = t + probe * 1_000;
            let expected = (0..versions)
                .filter(|i| (i * 7919) % versions <= probe)
                .max_by_key(|i| ((i * 7919) % versions, *i));
            let got = a_at(&store, &key(e), AsOf::event_time(at));
            match expected {
                Some(i) => assert_eq!(got, (Status::Present, Value::I64(i as i64)), "{probe}"),
                None => assert_eq!(got.0, Status::NotFound),
            }
        }
        let all = store
            .history("user", &key(e), &["a"], 0, u64::MAX, None)
            .unwrap();
        assert_eq!(all.len() as u64, versions);
    }
}

#[test]
fn retention_compacts_old_segments_and_refuses_reads_before_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .create_group(spec(Some(HistoryPolicy::retention(86_400)), None))
        .unwrap();
    let now = now_ms();
    let k = key(3);
    let old = SEAL_VERSIONS as u64 * 4;
    // Old versions, ten to six days ago, then recent ones inside the window.
    for i in 0..old {
        let time = now - 10 * DAY_MS + i * (4 * DAY_MS / old);
        put_at(
            &store,
            &k,
            time,
            time,
            &[("a", Value::I64(i as i64)), ("b", Value::I64(-1))],
        );
    }
    for i in 0..SEAL_VERSIONS as u64 * 2 {
        let time = now - DAY_MS / 2 + i * 1_000;
        put_at(
            &store,
            &k,
            time,
            time,
            &[("a", Value::I64(1_000 + i as i64))],
        );
    }
    let report = store.compact_history().unwrap();
    let stats_dir = store
        .history("user", &k, &["a", "b"], now - DAY_MS / 2, u64::MAX, None)
        .unwrap();
    assert!(!stats_dir.is_empty());
    // Inside the window every read is exact; 'b' was last written before it and still answers.
    let got = store
        .get_as_of(&k, &refs(), AsOf::event_time(now - DAY_MS / 2 - 1))
        .unwrap();
    assert_eq!(got[0].value, Value::I64(old as i64 - 1));
    assert_eq!(got[1].value, Value::I64(-1));
    let err = store
        .get_as_of(&k, &refs(), AsOf::event_time(now - 2 * DAY_MS))
        .unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::OutsideHistory { .. })),
        "{err}"
    );
    // Old segments were reclaimed as the head sealed: 8 segments of old versions became one of
    // anchors; with the 2 recent segments, the head and the directory, 5 records remain.
    let id = store.describe_group("user").unwrap().id;
    let records = store
        .engine()
        .scan(history_group(id), ScanCursor::START, 1_000)
        .unwrap()
        .records
        .len();
    assert_eq!(records, 5, "report {report:?}");
    assert_eq!(report.segments_removed, 0, "writes compacted already");
}

#[test]
fn delete_forgets_history_and_groups_without_history_refuse_as_of() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .create_group(spec(Some(HistoryPolicy::retention(3650 * 86_400)), None))
        .unwrap();
    let t = now_ms() - DAY_MS;
    let k = key(4);
    for i in 0..(SEAL_VERSIONS as u64 + 10) {
        put_at(&store, &k, t + i, t + i, &[("a", Value::I64(i as i64))]);
    }
    assert!(store.delete("user", &k, None).unwrap());
    assert_eq!(
        a_at(&store, &k, AsOf::event_time(t + 5)).0,
        Status::NotFound
    );
    assert!(store
        .history("user", &k, &["a"], 0, u64::MAX, None)
        .unwrap()
        .is_empty());
    // A new life of the entity starts with an empty history.
    put_at(&store, &k, t + 1_000, t + 1_000, &[("a", Value::I64(42))]);
    assert_eq!(
        store
            .history("user", &k, &["a"], 0, u64::MAX, None)
            .unwrap()
            .len(),
        1
    );
    let mut plain = spec(None, None);
    plain.name = "plain".into();
    store.create_group(plain).unwrap();
    let err = store
        .get_as_of(&k, &[FeatureRef::new("plain", "a")], AsOf::event_time(t))
        .unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::NoHistory { .. })),
        "{err}"
    );
    // Turned on by alter: writes from then on are kept.
    store
        .alter_group("plain", Alter::SetHistoryRetention(Some(60)))
        .unwrap();
    store
        .put(
            "plain",
            &k,
            now_ms(),
            &[("a", Value::I64(1))],
            &PutOptions::default(),
        )
        .unwrap();
    let got = store
        .get_as_of(
            &k,
            &[FeatureRef::new("plain", "a")],
            AsOf::event_time(now_ms()),
        )
        .unwrap();
    assert_eq!(got[0].value, Value::I64(1));
}

/// Reads every page of a history read of `size` versions at most.
fn all_pages(store: &Store, k: &EntityKey, range: HistoryRange, size: usize) -> Vec<HistoryEntry> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .history_page("user", k, &["a", "b"], range, after, size)
            .unwrap();
        assert!(page.entries.len() <= size);
        out.extend(page.entries.iter().cloned());
        match page.next() {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

fn sorted(mut entries: Vec<HistoryEntry>) -> Vec<(u64, u64, String, String)> {
    let mut out: Vec<_> = entries
        .drain(..)
        .map(|e| {
            let value = format!("{:?}", e.value);
            (e.event_time_ms, e.write_time_ms, e.feature, value)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn paged_history_reads_return_every_version_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .create_group(spec(Some(HistoryPolicy::retention(3650 * 86_400)), None))
        .unwrap();
    let t = now_ms() - 20 * DAY_MS;
    let k = key(9);
    let n = SEAL_VERSIONS as u64 * 4 + 9;
    for i in 0..n {
        // Late events throughout, and every tenth put repeats an earlier event time and
        // write time exactly (a correction in the same millisecond).
        let (event, write) = if i % 10 == 9 {
            (t + ((i - 1) * 7919) % n * 1_000, t + i - 1)
        } else {
            (t + (i * 7919) % n * 1_000, t + i)
        };
        let values = [("a", Value::I64(i as i64)), ("b", Value::I64(-(i as i64)))];
        put_at(&store, &k, event, write, &values);
    }
    store.close().unwrap();
    let store = open(&dir);
    let full = store
        .history("user", &k, &["a", "b"], 0, u64::MAX, None)
        .unwrap();
    assert_eq!(full.len() as u64, 2 * n);
    for size in [1, 7, 64, 1_000] {
        let paged = all_pages(&store, &k, HistoryRange::all(), size);
        assert!(
            paged
                .windows(2)
                .all(|w| (w[0].event_time_ms, w[0].write_time_ms)
                    <= (w[1].event_time_ms, w[1].write_time_ms)),
            "page size {size}: history order"
        );
        assert_eq!(sorted(paged), sorted(full.clone()), "page size {size}");
    }
    // A range and a known-at time page the same way as the whole read.
    let range = HistoryRange {
        from_ms: t + 50_000,
        to_ms: t + 200_000,
        known_at_ms: Some(t + n / 2),
    };
    let whole = store
        .history(
            "user",
            &k,
            &["a", "b"],
            range.from_ms,
            range.to_ms,
            range.known_at_ms,
        )
        .unwrap();
    assert!(!whole.is_empty());
    assert_eq!(sorted(all_pages(&store, &k, range, 5)), sorted(whole));
    let err = store
        .history_page("user", &k, &["a"], HistoryRange::all(), None, 0)
        .unwrap_err();
    assert!(err.to_string().contains("history page"), "{err}");
}

#[test]
fn history_keys_list_the_entities_that_have_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .create_group(spec(Some(HistoryPolicy::retention(3650 * 86_400)), None))
        .unwrap();
    let t = now_ms() - DAY_MS;
    for i in 0..30 {
        // Some entities seal segments, so the scan meets records that name no entity.
        for v in 0..(if i % 3 == 0 {
            SEAL_VERSIONS as u64 + 1
        } else {
            1
        }) {
            put_at(&store, &key(i), t + v, t + v, &[("a", Value::I64(1))]);
        }
    }
    assert!(store.delete("user", &key(4), None).unwrap());
    let mut listed = Vec::new();
    let mut cursor = ScanCursor::START;
    loop {
        let (keys, next) = store.history_keys("user", cursor, 3).unwrap();
        listed.extend(keys);
        match next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let mut expected: Vec<EntityKey> = (0..30).filter(|i| *i != 4).map(key).collect();
    expected.sort_by_key(|k| k.to_string());
    listed.sort_by_key(|k| k.to_string());
    assert_eq!(listed, expected);
    let mut plain = spec(None, None);
    plain.name = "plain".into();
    store.create_group(plain).unwrap();
    let err = store
        .history_keys("plain", ScanCursor::START, 10)
        .unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::NoHistory { .. })),
        "{err}"
    );
}
