//! Every kind of bad input to the feature store: each is refused with its typed error, and
//! nothing is written.

use quiver_engine::feature::{
    Alter, Compression, EntityKey, FeatureError, FeatureRef, FeatureSpec, FeatureType, GroupSpec,
    KeyType, PutOptions, Value, WriteMode, MAX_FEATURE_REFS, MAX_LIST_LEN, MAX_TAGS,
    MAX_VALUE_BYTES,
};
use quiver_engine::store::Store;
use quiver_engine::{Config, Error};

fn store() -> Store {
    let store = Store::open(Config::memory(64 << 20)).unwrap();
    let spec = GroupSpec::new(
        "user",
        KeyType::String,
        vec![
            FeatureSpec::new("ctr_7d", FeatureType::F32),
            FeatureSpec::new("emb", FeatureType::Vector(4)),
            FeatureSpec::new("name", FeatureType::String),
            FeatureSpec::new("ids", FeatureType::ListI64),
            FeatureSpec::new("old", FeatureType::I64),
        ],
    );
    store.create_group(spec).unwrap();
    store
        .create_group(GroupSpec::new(
            "item",
            KeyType::I64,
            vec![FeatureSpec::new("price", FeatureType::F64)],
        ))
        .unwrap();
    store
        .alter_group("user", Alter::DeprecateFeature("old".into()))
        .unwrap();
    store
        .put(
            "user",
            &key(),
            100,
            &[("ctr_7d", Value::F32(0.5))],
            &PutOptions::default(),
        )
        .unwrap();
    store
}

fn key() -> EntityKey {
    EntityKey::String("u1".into())
}

/// What the engine holds for the test row, and how many puts it has taken.
fn snapshot(store: &Store) -> (Option<(Vec<u8>, u16)>, u64) {
    let id = store.describe_group("user").unwrap().id;
    let row = store
        .engine()
        .get(id, b"u1")
        .unwrap()
        .map(|r| (r.value, r.generation));
    (row, store.stats().puts)
}

fn put_err(store: &Store, values: &[(&str, Value)], opts: PutOptions) -> FeatureError {
    put_any_err(store, values, opts, |e| match e {
        Error::Feature(f) => Some(f),
        _ => None,
    })
}

fn put_any_err<T>(
    store: &Store,
    values: &[(&str, Value)],
    opts: PutOptions,
    pick: impl Fn(Error) -> Option<T>,
) -> T {
    let before = snapshot(store);
    let err = store.put("user", &key(), 200, values, &opts).unwrap_err();
    assert_eq!(
        snapshot(store),
        before,
        "a refused put wrote something: {err}"
    );
    let text = err.to_string();
    pick(err).unwrap_or_else(|| panic!("unexpected error: {text}"))
}

#[test]
fn bad_puts_write_nothing() {
    let s = store();
    let d = PutOptions::default();
    let err = put_err(&s, &[("ctr_7d", Value::String("x".into()))], d);
    assert_eq!(
        err.to_string(),
        "feature 'ctr_7d' of group 'user' expects f32, got string"
    );
    assert!(matches!(
        err,
        FeatureError::TypeMismatch {
            expected: FeatureType::F32,
            ..
        }
    ));
    assert!(matches!(
        put_err(&s, &[("nope", Value::I64(1))], d),
        FeatureError::UnknownFeature { .. }
    ));
    assert!(matches!(
        put_err(&s, &[("emb", Value::Vector(vec![1.0; 5]))], d),
        FeatureError::VectorDimension {
            expected: 4,
            got: 5,
            ..
        }
    ));
    assert!(matches!(
        put_err(&s, &[("ctr_7d", Value::F32(f32::NAN))], d),
        FeatureError::NonFinite { .. }
    ));
    assert!(matches!(
        put_err(
            &s,
            &[("emb", Value::Vector(vec![1.0, f32::NEG_INFINITY, 0.0, 0.0]))],
            d
        ),
        FeatureError::NonFinite { .. }
    ));
    let big = Value::String("x".repeat(MAX_VALUE_BYTES + 1));
    assert!(matches!(
        put_err(&s, &[("name", big)], d),
        FeatureError::ValueTooLarge { .. }
    ));
    let long = Value::ListI64(vec![0; MAX_LIST_LEN + 1]);
    assert!(matches!(
        put_err(&s, &[("ids", long)], d),
        FeatureError::ListTooLong { .. }
    ));
    assert!(matches!(
        put_err(&s, &[("old", Value::I64(1))], d),
        FeatureError::FeatureDeprecated { .. }
    ));
    let dup = [("ctr_7d", Value::F32(1.0)), ("ctr_7d", Value::F32(2.0))];
    assert!(matches!(
        put_err(&s, &dup, d),
        FeatureError::DuplicateFeature { .. }
    ));
    assert!(matches!(put_err(&s, &[], d), FeatureError::NoValues { .. }));
    // One bad value among good ones: nothing at all is written.
    let mixed = [
        ("name", Value::String("ok".into())),
        ("emb", Value::Vector(vec![0.0; 3])),
    ];
    assert!(matches!(
        put_err(&s, &mixed, d),
        FeatureError::VectorDimension { .. }
    ));
    let ttl = PutOptions {
        ttl_s: Some(0),
        ..d
    };
    assert!(matches!(
        put_err(&s, &[("name", Value::Null)], ttl),
        FeatureError::InvalidTtl { .. }
    ));
}

#[test]
fn bad_put_modes_write_nothing() {
    let s = store();
    let values = [("name", Value::String("n".into()))];
    let create = PutOptions {
        mode: WriteMode::CreateOnly,
        ..PutOptions::default()
    };
    put_any_err(&s, &values, create, |e| {
        matches!(e, Error::AlreadyExists).then_some(())
    });
    let cas = PutOptions {
        expected_generation: Some(7),
        ..PutOptions::default()
    };
    let (expected, found) = put_any_err(&s, &values, cas, |e| match e {
        Error::GenerationMismatch { expected, found } => Some((expected, found)),
        _ => None,
    });
    assert_eq!((expected, found), (7, 1));
    let update = PutOptions {
        mode: WriteMode::UpdateOnly,
        ..PutOptions::default()
    };
    let err = s
        .put(
            "user",
            &EntityKey::String("absent".into()),
            1,
            &values,
            &update,
        )
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err}");
    let id = s.describe_group("user").unwrap().id;
    assert!(s.engine().get(id, b"absent").unwrap().is_none());
    let ok = PutOptions {
        expected_generation: Some(1),
        ..PutOptions::default()
    };
    assert_eq!(
        s.put("user", &key(), 300, &values, &ok).unwrap().generation,
        2
    );
}

#[test]
fn bad_keys_and_groups() {
    let s = store();
    let d = PutOptions::default();
    let err = s
        .put("nope", &key(), 1, &[("x", Value::Null)], &d)
        .unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::UnknownGroup { .. })),
        "{err}"
    );
    let err = s
        .put("user", &EntityKey::I64(1), 1, &[("name", Value::Null)], &d)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Feature(FeatureError::KeyTypeMismatch {
            expected: KeyType::String,
            got: KeyType::I64,
            ..
        })
    ));
    let err = s
        .put(
            "user",
            &EntityKey::String(String::new()),
            1,
            &[("name", Value::Null)],
            &d,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::KeySize { len: 0, .. })),
        "{err}"
    );
    let err = s
        .put(
            "user",
            &EntityKey::String("k".repeat(1025)),
            1,
            &[("name", Value::Null)],
            &d,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::KeySize { len: 1025, .. })),
        "{err}"
    );
    assert_eq!(s.stats().puts, snapshot(&s).1);
}

#[test]
fn bad_gets() {
    let s = store();
    let refs = |t: &[&str]| {
        t.iter()
            .map(|x| x.parse().unwrap())
            .collect::<Vec<FeatureRef>>()
    };
    let err = s
        .get(&key(), &refs(&["user:ctr_7d", "item:price"]))
        .unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::KeyTypeMismatch { .. })),
        "{err}"
    );
    let err = s.get(&key(), &refs(&["ghost:x"])).unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::UnknownGroup { .. })),
        "{err}"
    );
    let err = s.get(&key(), &refs(&["user:ghost"])).unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::UnknownFeature { .. })),
        "{err}"
    );
    let err = s
        .get_many(&[key(), EntityKey::I64(3)], &refs(&["user:ctr_7d"]))
        .unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::KeyTypeMismatch { .. })),
        "{err}"
    );
    let many = vec![FeatureRef::new("user", "ctr_7d"); MAX_FEATURE_REFS + 1];
    let err = s.get(&key(), &many).unwrap_err();
    assert!(
        matches!(err, Error::Feature(FeatureError::TooManyItems { .. })),
        "{err}"
    );
    assert!(matches!(
        "user".parse::<FeatureRef>(),
        Err(FeatureError::InvalidFeatureRef { .. })
    ));
}

fn feature_err<T>(r: Result<T, Error>) -> FeatureError {
    match r {
        Err(Error::Feature(e)) => e,
        Err(other) => panic!("unexpected {other}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn bad_schema_changes_change_nothing() {
    let s = store();
    let before = s.describe_group("user").unwrap();
    let e = feature_err(s.alter_group(
        "user",
        Alter::ChangeFeatureType("name".into(), FeatureType::Bytes),
    ));
    assert!(matches!(e, FeatureError::TypeChangeRefused { .. }));
    let e = feature_err(s.alter_group(
        "user",
        Alter::AddFeature(FeatureSpec::new("name", FeatureType::Bytes)),
    ));
    assert!(matches!(e, FeatureError::FeatureExists { .. }));
    let e = feature_err(s.alter_group(
        "user",
        Alter::AddFeature(FeatureSpec::new("Bad-Name", FeatureType::Bytes)),
    ));
    assert!(matches!(
        e,
        FeatureError::InvalidName {
            what: "feature",
            ..
        }
    ));
    let e = feature_err(s.alter_group(
        "user",
        Alter::AddFeature(FeatureSpec::new("v", FeatureType::Vector(0))),
    ));
    assert!(matches!(e, FeatureError::InvalidVectorDim { dim: 0, .. }));
    let e = feature_err(s.alter_group("user", Alter::DeprecateFeature("ghost".into())));
    assert!(matches!(e, FeatureError::UnknownFeature { .. }));
    let e = feature_err(s.alter_group("user", Alter::SetTtl(Some(0))));
    assert!(matches!(e, FeatureError::InvalidTtl { .. }));
    let tags = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
    let e = feature_err(s.alter_group("user", Alter::SetTags(tags)));
    assert!(matches!(e, FeatureError::TooManyTags { .. }));
    let e = feature_err(s.alter_group("user", Alter::SetDescription("d".repeat(5000))));
    assert!(matches!(e, FeatureError::TextTooLong { .. }));
    let e = feature_err(s.alter_group("ghost", Alter::SetTtl(None)));
    assert!(matches!(e, FeatureError::UnknownGroup { .. }));
    assert_eq!(
        s.describe_group("user").unwrap(),
        before,
        "no refused change bumped the version"
    );

    let e = feature_err(s.create_group(GroupSpec::new("user", KeyType::I64, vec![])));
    assert!(matches!(e, FeatureError::GroupExists { .. }));
    let e = feature_err(s.create_group(GroupSpec::new("9lives", KeyType::I64, vec![])));
    assert!(matches!(e, FeatureError::InvalidName { what: "group", .. }));
    let mut zstd = GroupSpec::new("z", KeyType::I64, vec![]);
    zstd.compression = Compression::Zstd { level: 0 };
    let e = feature_err(s.create_group(zstd));
    assert!(matches!(e, FeatureError::InvalidCompressionLevel { .. }));
    let e = feature_err(s.drop_group("ghost"));
    assert!(matches!(e, FeatureError::UnknownGroup { .. }));
    assert_eq!(s.list_groups(None).len(), 2);
    let next = s
        .create_group(GroupSpec::new("ok", KeyType::I64, vec![]))
        .unwrap();
    assert_eq!(next.id, 3, "refused creates consumed no id");
}
