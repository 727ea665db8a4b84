//! Validation rules: for every rule, values it accepts are written and values it refuses are
//! refused (the whole put, naming feature, rule and value, nothing written) or, in a group whose
//! violation mode is drop, left out and counted while the rest of the put is written. Rules are
//! set on create and on alter, checked against the feature's type, and survive a reopen.

use std::sync::Arc;

use quiver_engine::feature::{
    Alter, EntityKey, FeatureError, FeatureRef, FeatureRules, FeatureSpec, FeatureType, GroupSpec,
    KeyType, PutOptions, Status, Value, ViolationMode,
};
use quiver_engine::store::Store;
use quiver_engine::{Config, Error, ManualClock};

const NOW_S: u32 = 1_700_000_000;
const NOW_MS: u64 = NOW_S as u64 * 1000;

fn store() -> Store {
    let mut config = Config::memory(64 << 20);
    config.clock = Arc::new(ManualClock::new(NOW_S));
    Store::open(config).unwrap()
}

fn rules(texts: &[&str]) -> FeatureRules {
    let mut rules = FeatureRules::default();
    for t in texts {
        rules.parse_rule(t).unwrap();
    }
    rules
}

/// A group with feature `f` (of `ty`, with `rule`) and an unruled i64 feature `other`.
fn group(store: &Store, name: &str, ty: FeatureType, rule: &str, mode: ViolationMode) {
    let mut spec = GroupSpec::new(
        name,
        KeyType::String,
        vec![
            FeatureSpec {
                rules: rules(&[rule]),
                ..FeatureSpec::new("f", ty)
            },
            FeatureSpec::new("other", FeatureType::I64),
        ],
    );
    spec.on_violation = mode;
    // The group's own refusal of NaN and infinity would hide the `finite` rule.
    spec.allow_non_finite = true;
    store.create_group(spec).unwrap();
}

fn key() -> EntityKey {
    EntityKey::String("e".into())
}

fn read(store: &Store, group: &str, feature: &str) -> (Status, Value) {
    let r = FeatureRef {
        group: group.into(),
        feature: feature.into(),
    };
    let v = store.get(&key(), &[r]).unwrap().remove(0);
    (v.status, v.value)
}

struct Case {
    ty: FeatureType,
    rule: &'static str,
    accepted: Vec<Value>,
    refused: Vec<Value>,
}

fn case(ty: FeatureType, rule: &'static str, accepted: Vec<Value>, refused: Vec<Value>) -> Case {
    Case {
        ty,
        rule,
        accepted,
        refused,
    }
}

fn s(text: &str) -> Value {
    Value::String(text.into())
}

fn cases() -> Vec<Case> {
    use FeatureType as T;
    use Value as V;
    vec![
        case(T::I64, "not-null", vec![V::I64(0)], vec![V::Null]),
        case(
            T::F32,
            "finite",
            vec![V::F32(1.5)],
            vec![V::F32(f32::NAN), V::F32(f32::INFINITY)],
        ),
        case(
            T::I64,
            "range=[0,150)",
            vec![V::I64(0), V::I64(149), V::Null],
            vec![V::I64(-1), V::I64(150)],
        ),
        case(
            T::F64,
            "range=(0,1]",
            vec![V::F64(1e-9), V::F64(1.0)],
            vec![V::F64(0.0), V::F64(1.0000001), V::F64(f64::NAN)],
        ),
        case(
            T::ListI64,
            "range=[1,)",
            vec![V::ListI64(vec![1, 5, 99])],
            vec![V::ListI64(vec![3, 0])],
        ),
        case(
            T::Vector(2),
            "range=[-1,1]",
            vec![V::Vector(vec![-1.0, 1.0])],
            vec![V::Vector(vec![0.0, 1.5])],
        ),
        case(
            T::String,
            "in=red,green",
            vec![s("red"), s("green")],
            vec![s("blue"), s("Red")],
        ),
        case(T::I64, "in=1,2,3", vec![V::I64(3)], vec![V::I64(4)]),
        case(
            T::Bool,
            "in=true",
            vec![V::Bool(true)],
            vec![V::Bool(false)],
        ),
        case(
            T::ListString,
            "in=a,b",
            vec![V::ListString(vec!["a".into(), "b".into(), "a".into()])],
            vec![V::ListString(vec!["a".into(), "c".into()])],
        ),
        case(
            T::String,
            "regex=[a-z]{2}-\\d+",
            vec![s("ab-1"), s("zz-2024")],
            vec![s("ab-"), s("xab-1"), s("ab-1x"), s("AB-1")],
        ),
        case(
            T::String,
            "len=[2,4]",
            vec![s("ab"), s("abcd")],
            vec![s("a"), s("abcde")],
        ),
        case(
            T::Bytes,
            "len=[1,)",
            vec![V::Bytes(vec![0])],
            vec![V::Bytes(vec![])],
        ),
        case(
            T::ListF32,
            "len=[1,3]",
            vec![V::ListF32(vec![1.0])],
            vec![V::ListF32(vec![]), V::ListF32(vec![0.0; 4])],
        ),
        case(
            T::Vector(2),
            "norm=[0.99,1.01]",
            vec![V::Vector(vec![0.6, 0.8])],
            vec![V::Vector(vec![1.0, 1.0]), V::Vector(vec![0.0, 0.0])],
        ),
        case(
            T::ListF32,
            "norm=(0,)",
            vec![V::ListF32(vec![0.0, 2.0])],
            vec![V::ListF32(vec![0.0])],
        ),
    ]
}

#[test]
fn every_rule_accepts_and_refuses_in_reject_mode() {
    let store = store();
    for (i, c) in cases().into_iter().enumerate() {
        let name = format!("g{i}");
        group(&store, &name, c.ty, c.rule, ViolationMode::Reject);
        let rule_name = c.rule.split('=').next().unwrap();
        for v in &c.refused {
            let err = store
                .put(
                    &name,
                    &key(),
                    NOW_MS,
                    &[("f", v.clone()), ("other", Value::I64(7))],
                    &PutOptions::default(),
                )
                .unwrap_err();
            match &err {
                Error::Feature(FeatureError::RuleViolation {
                    group,
                    feature,
                    rule,
                    ..
                }) => {
                    assert_eq!((group.as_str(), feature.as_str()), (name.as_str(), "f"));
                    assert!(rule.starts_with(rule_name), "{}: {rule}", c.rule);
                }
                other => panic!("{}: {v:?} gave {other}", c.rule),
            }
            assert!(err.to_string().contains("breaks rule"), "{err}");
            assert_eq!(
                read(&store, &name, "other").0,
                Status::NotFound,
                "nothing written"
            );
        }
        for v in &c.accepted {
            let put = store.put(
                &name,
                &key(),
                NOW_MS,
                &[("f", v.clone())],
                &PutOptions::default(),
            );
            assert_eq!(put.unwrap().written, 1, "{}: {v:?}", c.rule);
            assert_eq!(read(&store, &name, "f").1, *v, "{}", c.rule);
        }
    }
}

#[test]
fn every_rule_drops_and_counts_in_drop_mode() {
    let store = store();
    for (i, c) in cases().into_iter().enumerate() {
        let name = format!("g{i}");
        group(&store, &name, c.ty, c.rule, ViolationMode::Drop);
        for v in &c.refused {
            let put = store
                .put(
                    &name,
                    &key(),
                    NOW_MS,
                    &[("f", v.clone()), ("other", Value::I64(7))],
                    &PutOptions::default(),
                )
                .unwrap();
            assert_eq!((put.written, put.dropped), (1, 1), "{}: {v:?}", c.rule);
            assert_eq!(
                read(&store, &name, "f").0,
                Status::NotFound,
                "{}: {v:?}",
                c.rule
            );
            assert_eq!(read(&store, &name, "other").1, Value::I64(7));
        }
        for v in &c.accepted {
            let put = store
                .put(
                    &name,
                    &key(),
                    NOW_MS,
                    &[("f", v.clone())],
                    &PutOptions::default(),
                )
                .unwrap();
            assert_eq!((put.written, put.dropped), (1, 0), "{}: {v:?}", c.rule);
        }
    }
}

#[test]
fn a_put_whose_every_value_is_dropped_writes_nothing() {
    let store = store();
    group(
        &store,
        "g",
        FeatureType::I64,
        "range=[0,10]",
        ViolationMode::Drop,
    );
    let put = store
        .put(
            "g",
            &key(),
            NOW_MS,
            &[("f", Value::I64(11))],
            &PutOptions::default(),
        )
        .unwrap();
    assert_eq!((put.written, put.dropped, put.generation), (0, 1, 0));
    assert_eq!(
        read(&store, "g", "f").0,
        Status::NotFound,
        "no row was made"
    );
    store
        .put(
            "g",
            &key(),
            NOW_MS,
            &[("f", Value::I64(5))],
            &PutOptions::default(),
        )
        .unwrap();
    let put = store
        .put(
            "g",
            &key(),
            NOW_MS,
            &[("f", Value::I64(-5))],
            &PutOptions::default(),
        )
        .unwrap();
    assert_eq!((put.written, put.dropped, put.generation), (0, 1, 1));
    assert_eq!(
        read(&store, "g", "f").1,
        Value::I64(5),
        "the stored value stays"
    );
}

#[test]
fn event_time_lag_and_future_skew() {
    let store = store();
    group(
        &store,
        "lag",
        FeatureType::I64,
        "lag=1h",
        ViolationMode::Reject,
    );
    group(
        &store,
        "skew",
        FeatureType::I64,
        "future=5m",
        ViolationMode::Reject,
    );
    let put = |g: &str, t: u64| {
        store.put(
            g,
            &key(),
            t,
            &[("f", Value::I64(1))],
            &PutOptions::default(),
        )
    };
    assert!(put("lag", NOW_MS - 3_600_000).is_ok(), "exactly the lag");
    assert!(
        put("lag", NOW_MS + 86_400_000).is_ok(),
        "the future is not late"
    );
    let err = put("lag", NOW_MS - 3_600_001).unwrap_err().to_string();
    assert!(
        err.contains("lag=1h") && err.contains("3600001 ms before now"),
        "{err}"
    );
    assert!(put("skew", NOW_MS + 300_000).is_ok());
    assert!(put("skew", 0).is_ok(), "the past is not ahead");
    let err = put("skew", NOW_MS + 300_001).unwrap_err().to_string();
    assert!(err.contains("future=5m"), "{err}");
}

#[test]
fn group_non_finite_allowance_does_not_lift_the_finite_rule() {
    let store = store();
    let mut spec = GroupSpec::new(
        "g",
        KeyType::I64,
        vec![
            FeatureSpec {
                rules: rules(&["finite"]),
                ..FeatureSpec::new("strict", FeatureType::F64)
            },
            FeatureSpec::new("loose", FeatureType::F64),
        ],
    );
    spec.allow_non_finite = true;
    store.create_group(spec).unwrap();
    let put = |f: &str| {
        store.put(
            "g",
            &EntityKey::I64(1),
            1,
            &[(f, Value::F64(f64::NAN))],
            &PutOptions::default(),
        )
    };
    assert!(put("loose").is_ok());
    assert!(put("strict").is_err());
    // In drop mode, the group's own non-finite refusal drops the value too.
    let mut spec = GroupSpec::new(
        "d",
        KeyType::I64,
        vec![FeatureSpec::new("x", FeatureType::F32)],
    );
    spec.on_violation = ViolationMode::Drop;
    store.create_group(spec).unwrap();
    let put = store
        .put(
            "d",
            &EntityKey::I64(1),
            1,
            &[("x", Value::F32(f32::INFINITY))],
            &PutOptions::default(),
        )
        .unwrap();
    assert_eq!((put.written, put.dropped), (0, 1));
}

#[test]
fn rules_must_fit_the_feature_type_and_their_limits() {
    let store = store();
    for (ty, rule, needle) in [
        (FeatureType::String, "range=[0,1]", "does not apply"),
        (FeatureType::I64, "finite", "does not apply"),
        (FeatureType::Vector(4), "len=[1,4]", "fixed dimension"),
        (FeatureType::I64, "norm=[0,1]", "does not apply"),
        (FeatureType::I64, "regex=a", "does not apply"),
        (FeatureType::I64, "in=1,x", "is not a i64"),
        (FeatureType::F32, "in=1", "does not apply"),
        (FeatureType::String, "regex=(", "invalid regex"),
        (FeatureType::I64, "range=[5,1]", "admits no value"),
        (FeatureType::I64, "range=[1,1)", "admits no value"),
        (FeatureType::String, "len=[5,2]", "empty"),
        (FeatureType::I64, "lag=0s", "outside"),
    ] {
        let spec = GroupSpec::new(
            "g",
            KeyType::I64,
            vec![FeatureSpec {
                rules: rules(&[rule]),
                ..FeatureSpec::new("f", ty)
            }],
        );
        let err = store.create_group(spec).unwrap_err().to_string();
        assert!(
            err.contains(needle) && err.contains("feature 'f'"),
            "{rule} on {ty}: {err}"
        );
    }
    assert!(store.list_groups(None).is_empty());
}

#[test]
fn alter_sets_and_clears_rules_and_the_mode_and_they_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Config::file(dir.path().join("s.db"), 64 << 20);
        c.clock = Arc::new(ManualClock::new(NOW_S));
        c
    };
    let store = Store::open(config()).unwrap();
    store
        .create_group(GroupSpec::new(
            "g",
            KeyType::I64,
            vec![FeatureSpec::new("age", FeatureType::I64)],
        ))
        .unwrap();
    let put = |store: &Store, v: i64| {
        store.put(
            "g",
            &EntityKey::I64(1),
            NOW_MS,
            &[("age", Value::I64(v))],
            &PutOptions::default(),
        )
    };
    assert!(put(&store, -1).is_ok(), "no rule yet");
    let s = store
        .alter_group(
            "g",
            Alter::SetRules("age".into(), rules(&["range=[0,150]", "not-null"])),
        )
        .unwrap();
    assert_eq!(s.version, 2);
    assert!(put(&store, -1).is_err());
    let err = store
        .alter_group("g", Alter::SetRules("age".into(), rules(&["regex=x"])))
        .unwrap_err();
    assert!(err.to_string().contains("does not apply"), "{err}");
    let err = store
        .alter_group("g", Alter::SetRules("nope".into(), rules(&["not-null"])))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Feature(FeatureError::UnknownFeature { .. })
    ));
    let s = store
        .alter_group("g", Alter::SetViolationMode(ViolationMode::Drop))
        .unwrap();
    assert_eq!((s.version, s.on_violation), (3, ViolationMode::Drop));
    let before = (*s).clone();
    store.close().unwrap();

    let store = Store::open(config()).unwrap();
    assert_eq!(*store.describe_group("g").unwrap(), before);
    assert_eq!(
        put(&store, 200).unwrap().dropped,
        1,
        "rules and mode reopened"
    );
    store
        .alter_group("g", Alter::SetRules("age".into(), FeatureRules::default()))
        .unwrap();
    assert_eq!(put(&store, 200).unwrap().dropped, 0, "rules cleared");
}
