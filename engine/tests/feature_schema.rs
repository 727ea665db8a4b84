//! Schema evolution across restarts of a file-backed store: rows written under an older schema
//! read correctly under a newer one, type changes are refused, dropped groups stay dropped and
//! their ids are never reused.

use quiver_engine::feature::{
    Alter, EntityKey, FeatureError, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType,
    PutOptions, Status, Value,
};
use quiver_engine::store::Store;
use quiver_engine::{Config, Error};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(Config::file(dir.path().join("store.db"), 64 << 20)).unwrap()
}

fn refs(text: &[&str]) -> Vec<FeatureRef> {
    text.iter().map(|t| t.parse().unwrap()).collect()
}

fn user_spec() -> GroupSpec {
    let mut spec = GroupSpec::new(
        "user",
        KeyType::String,
        vec![
            FeatureSpec::new("age", FeatureType::I64),
            FeatureSpec::new("emb", FeatureType::Vector(4)),
        ],
    );
    spec.tags = vec!["core".into()];
    spec
}

#[test]
fn rows_written_under_v1_read_under_v3_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = EntityKey::String("u1".into());
    {
        let store = open(&dir);
        let v1 = store.create_group(user_spec()).unwrap();
        assert_eq!((v1.id, v1.version), (1, 1));
        let values = [
            ("age", Value::I64(31)),
            ("emb", Value::Vector(vec![0.5, 1.0, 1.5, 2.0])),
        ];
        store
            .put("user", &key, 1_000, &values, &PutOptions::default())
            .unwrap();
        let v2 = store
            .alter_group(
                "user",
                Alter::AddFeature(FeatureSpec::new("ctr_7d", FeatureType::F32)),
            )
            .unwrap();
        let v3 = store
            .alter_group(
                "user",
                Alter::AddFeature(FeatureSpec::new("city", FeatureType::String)),
            )
            .unwrap();
        assert_eq!((v2.version, v3.version), (2, 3));
        store.flush().unwrap();
        store.close().unwrap();
    }
    let store = open(&dir);
    let schema = store.describe_group("user").unwrap();
    assert_eq!(schema.version, 3);
    assert_eq!(
        schema.features.iter().map(|f| f.id).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let got = store
        .get(
            &key,
            &refs(&["user:age", "user:emb", "user:ctr_7d", "user:city"]),
        )
        .unwrap();
    assert_eq!(got[0].value, Value::I64(31));
    assert_eq!(got[1].value, Value::Vector(vec![0.5, 1.0, 1.5, 2.0]));
    assert_eq!(got[1].event_time_ms, 1_000);
    assert_eq!(
        (got[2].status, got[3].status),
        (Status::NotFound, Status::NotFound)
    );
    store
        .put(
            "user",
            &key,
            2_000,
            &[("city", Value::String("Oslo".into()))],
            &PutOptions::default(),
        )
        .unwrap();
    let got = store.get(&key, &refs(&["user:city", "user:age"])).unwrap();
    assert_eq!(got[0].value, Value::String("Oslo".into()));
    assert_eq!(
        (got[1].value.clone(), got[1].event_time_ms),
        (Value::I64(31), 1_000)
    );
}

#[test]
fn type_change_is_refused_and_changes_nothing() {
    let store = Store::open(Config::memory(64 << 20)).unwrap();
    store.create_group(user_spec()).unwrap();
    let err = store
        .alter_group(
            "user",
            Alter::ChangeFeatureType("age".into(), FeatureType::F64),
        )
        .unwrap_err();
    assert!(matches!(
        &err,
        Error::Feature(FeatureError::TypeChangeRefused {
            from: FeatureType::I64,
            to: FeatureType::F64,
            ..
        })
    ));
    assert!(
        err.to_string().contains("add a new feature instead"),
        "{err}"
    );
    let schema = store.describe_group("user").unwrap();
    assert_eq!(
        (schema.version, schema.features[0].ty),
        (1, FeatureType::I64)
    );
}

#[test]
fn alters_persist_and_deprecated_features_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let key = EntityKey::String("u1".into());
    {
        let store = open(&dir);
        store.create_group(user_spec()).unwrap();
        store
            .put(
                "user",
                &key,
                5,
                &[("age", Value::I64(3))],
                &PutOptions::default(),
            )
            .unwrap();
        store
            .alter_group("user", Alter::DeprecateFeature("age".into()))
            .unwrap();
        store
            .alter_group("user", Alter::SetTtl(Some(3600)))
            .unwrap();
        store
            .alter_group("user", Alter::SetDescription("users of the shop".into()))
            .unwrap();
        store
            .alter_group("user", Alter::SetOwner("ml-platform".into()))
            .unwrap();
        store
            .alter_group("user", Alter::SetTags(vec!["core".into(), "pii".into()]))
            .unwrap();
        store.close().unwrap();
    }
    let store = open(&dir);
    let s = store.describe_group("user").unwrap();
    assert_eq!(s.version, 6);
    assert!(s.features[0].deprecated);
    assert_eq!(
        (s.ttl_s, s.description.as_str(), s.owner.as_str()),
        (Some(3600), "users of the shop", "ml-platform")
    );
    assert_eq!(store.list_groups(Some("pii")).len(), 1);
    let err = store
        .put(
            "user",
            &key,
            6,
            &[("age", Value::I64(4))],
            &PutOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::FeatureDeprecated { .. })),
        "{err}"
    );
    let got = store.get(&key, &refs(&["user:age"])).unwrap();
    assert_eq!(
        (got[0].status, got[0].event_time_ms),
        (Status::Expired, 5),
        "5 ms after the epoch is past a 1 h max age"
    );
}

#[test]
fn dropped_groups_stay_dropped_and_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let key = EntityKey::String("u1".into());
    {
        let store = open(&dir);
        store.create_group(user_spec()).unwrap();
        let item = store
            .create_group(GroupSpec::new(
                "item",
                KeyType::I64,
                vec![FeatureSpec::new("price", FeatureType::F64)],
            ))
            .unwrap();
        assert_eq!(item.id, 2);
        store
            .put(
                "user",
                &key,
                1,
                &[("age", Value::I64(3))],
                &PutOptions::default(),
            )
            .unwrap();
        store.drop_group("user").unwrap();
        assert!(matches!(
            store.describe_group("user"),
            Err(Error::Feature(FeatureError::UnknownGroup { .. }))
        ));
        store.close().unwrap();
    }
    let store = open(&dir);
    assert_eq!(
        store
            .list_groups(None)
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["item"]
    );
    let again = store.create_group(user_spec()).unwrap();
    assert_eq!(
        again.id, 3,
        "group ids are never reused, even across restarts"
    );
    let got = store.get(&key, &refs(&["user:age"])).unwrap();
    assert_eq!(
        got[0].status,
        Status::NotFound,
        "the dropped group's rows are unreachable"
    );
    let (items, _) = store
        .scan("user", quiver_engine::ScanCursor::START, 10)
        .unwrap();
    assert!(items.is_empty());
}

#[test]
fn scan_decodes_rows() {
    let store = Store::open(Config::memory(64 << 20)).unwrap();
    store.create_group(user_spec()).unwrap();
    for i in 0..25 {
        let key = EntityKey::String(format!("u{i}"));
        store
            .put(
                "user",
                &key,
                7,
                &[("age", Value::I64(i))],
                &PutOptions::default(),
            )
            .unwrap();
    }
    let mut cursor = quiver_engine::ScanCursor::START;
    let mut seen = Vec::new();
    loop {
        let (items, next) = store.scan("user", cursor, 10).unwrap();
        assert!(items.len() <= 10);
        for item in items {
            let EntityKey::String(k) = &item.key else {
                panic!("string keys")
            };
            assert_eq!(item.values.len(), 1);
            assert_eq!(item.values[0].0, "age");
            assert_eq!(item.values[0].1.value, Value::I64(k[1..].parse().unwrap()));
            seen.push(k.clone());
        }
        match next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25);
}
