//! Every operation against a real quiverd, through the Rust client.

mod common;

use common::{f32_group, feature, Quiverd};
use quiver_engine::feature::{
    Alter, EntityKey, FeatureRef, FeatureType, PutOptions, Status, Value, WriteMode,
};
use quiver_server::protocol::StatusCode;

fn key(s: &str) -> EntityKey {
    EntityKey::String(s.into())
}

fn r(group: &str, feature: &str) -> FeatureRef {
    FeatureRef {
        group: group.into(),
        feature: feature.into(),
    }
}

#[test]
fn groups_create_describe_list_alter_drop() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    c.ping().unwrap();
    let mut spec = f32_group("users", 3);
    spec.tags = vec!["team-a".into()];
    let created = c.create_group(spec.clone()).unwrap();
    assert_eq!(created.name, "users");
    assert_eq!(created.features.len(), 3);
    let err = c.create_group(spec).unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::GroupExists), "{err}");

    c.create_group(f32_group("items", 1)).unwrap();
    assert_eq!(c.list_groups(None).unwrap().len(), 2);
    let tagged = c.list_groups(Some("team-a")).unwrap();
    assert_eq!(
        tagged.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["users"]
    );

    let altered = c
        .alter_group(
            "users",
            Alter::AddFeature(feature("emb", FeatureType::Vector(4))),
        )
        .unwrap();
    assert_eq!(altered.features.len(), 4);
    assert!(altered.version > created.version);
    let refused = c
        .alter_group(
            "users",
            Alter::ChangeFeatureType("f0".into(), FeatureType::I64),
        )
        .unwrap_err();
    assert_eq!(
        refused.status(),
        Some(StatusCode::InvalidArgument),
        "{refused}"
    );
    assert_eq!(c.describe_group("users").unwrap().features.len(), 4);

    c.drop_group("items").unwrap();
    let gone = c.describe_group("items").unwrap_err();
    assert_eq!(gone.status(), Some(StatusCode::UnknownGroup), "{gone}");
}

#[test]
fn put_get_get_many_delete_with_typed_values() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    let mut spec = f32_group("u", 1);
    spec.features.push(feature("emb", FeatureType::Vector(3)));
    spec.features.push(feature("name", FeatureType::String));
    spec.features.push(feature("tags", FeatureType::ListString));
    spec.features.push(feature("n", FeatureType::I64));
    c.create_group(spec).unwrap();
    let values = vec![
        ("f0".to_string(), Value::F32(0.5)),
        ("emb".to_string(), Value::Vector(vec![1.0, -2.0, 3.5])),
        ("name".to_string(), Value::String("ann".into())),
        (
            "tags".to_string(),
            Value::ListString(vec!["a".into(), "b".into()]),
        ),
        ("n".to_string(), Value::Null),
    ];
    let put = c
        .put("u", key("e1"), 1_000, values, PutOptions::default())
        .unwrap();
    assert_eq!(put.written, 5);

    let refs = vec![
        r("u", "f0"),
        r("u", "emb"),
        r("u", "name"),
        r("u", "tags"),
        r("u", "n"),
    ];
    let got = c.get(key("e1"), refs.clone()).unwrap();
    assert_eq!(got[0].value, Value::F32(0.5));
    assert_eq!(got[1].value, Value::Vector(vec![1.0, -2.0, 3.5]));
    assert_eq!(got[2].value, Value::String("ann".into()));
    assert_eq!(
        got[3].value,
        Value::ListString(vec!["a".into(), "b".into()])
    );
    assert_eq!(got[0].status, Status::Present);
    assert_eq!(got[0].event_time_ms, 1_000);
    assert_eq!(got[4].status, Status::Null);

    // An older event time does not overwrite a newer value (merge mode).
    let stale = c
        .put(
            "u",
            key("e1"),
            10,
            vec![("f0".into(), Value::F32(9.0))],
            PutOptions::default(),
        )
        .unwrap();
    assert_eq!(stale.skipped_stale, 1);

    let many = c
        .get_many(vec![key("e1"), key("nobody")], refs.clone())
        .unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(many[0].as_ref().unwrap()[0].value, Value::F32(0.5));
    assert!(many[1]
        .as_ref()
        .unwrap()
        .iter()
        .all(|v| v.status == Status::NotFound));

    let mismatch = c.put(
        "u",
        key("e2"),
        1,
        vec![("f0".into(), Value::String("x".into()))],
        PutOptions::default(),
    );
    assert_eq!(
        mismatch.unwrap_err().status(),
        Some(StatusCode::TypeMismatch)
    );
    let unknown = c.get(key("e1"), vec![r("u", "nope")]).unwrap_err();
    assert_eq!(
        unknown.status(),
        Some(StatusCode::UnknownFeature),
        "{unknown}"
    );
    let create_only = PutOptions {
        mode: WriteMode::CreateOnly,
        ..PutOptions::default()
    };
    let exists = c
        .put(
            "u",
            key("e1"),
            5_000,
            vec![("f0".into(), Value::F32(1.0))],
            create_only,
        )
        .unwrap_err();
    assert_eq!(exists.status(), Some(StatusCode::AlreadyExists), "{exists}");

    assert!(c.delete("u", key("e1"), None).unwrap());
    assert!(!c.delete("u", key("e1"), None).unwrap());
    assert_eq!(
        c.get(key("e1"), vec![r("u", "f0")]).unwrap()[0].status,
        Status::NotFound
    );
}

#[test]
fn get_many_reports_errors_per_item() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    c.create_group(f32_group("g", 2)).unwrap();
    c.put(
        "g",
        key("a"),
        1,
        vec![("f1".into(), Value::F32(2.0))],
        PutOptions::default(),
    )
    .unwrap();
    // An i64 key in a string-keyed group fails alone; its neighbours are served.
    let items = c
        .get_many(
            vec![key("a"), EntityKey::I64(7), key("b")],
            vec![r("g", "f0"), r("g", "f1")],
        )
        .unwrap();
    let a = items[0].as_ref().unwrap();
    assert_eq!(
        (a[0].status, a[1].status),
        (Status::NotFound, Status::Present)
    );
    assert_eq!(
        items[1].as_ref().unwrap_err().status(),
        Some(StatusCode::TypeMismatch)
    );
    assert!(items[2]
        .as_ref()
        .unwrap()
        .iter()
        .all(|v| v.status == Status::NotFound));
}

#[test]
fn scan_streams_chunks_and_resumes_from_a_cursor() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    c.create_group(f32_group("s", 1)).unwrap();
    let n = 250;
    let ids: Vec<u64> = (0..n)
        .map(|i| {
            let req = quiver_server::protocol::Request::Put {
                group: "s".into(),
                key: key(&format!("k{i}")),
                event_time_ms: 1,
                options: PutOptions::default(),
                values: vec![("f0".into(), Value::F32(i as f32))],
            };
            c.send(&req).unwrap()
        })
        .collect();
    for id in ids {
        c.wait(id).unwrap();
    }
    // 3 frames of 20 per request: several requests, each streaming frames with MORE.
    let (first, cursor) = c.scan_page("s", None, 20, 3).unwrap();
    assert_eq!(first.len(), 60);
    assert!(cursor.is_some());
    let rest = {
        let mut all = Vec::new();
        let mut cursor = cursor;
        while let Some(cur) = cursor {
            let (items, next) = c.scan_page("s", Some(cur), 20, 3).unwrap();
            all.extend(items);
            cursor = next;
        }
        all
    };
    let mut keys: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|i| i.key.to_string())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n);
    assert_eq!(c.scan_all("s", 64).unwrap().len(), n);
    let unknown = c.scan_page("missing", None, 10, 1).unwrap_err();
    assert_eq!(unknown.status(), Some(StatusCode::UnknownGroup));
}

#[test]
fn stats_report_ops_and_engine_figures() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    c.create_group(f32_group("g", 1)).unwrap();
    c.put(
        "g",
        key("a"),
        1,
        vec![("f0".into(), Value::F32(1.0))],
        PutOptions::default(),
    )
    .unwrap();
    c.get(key("a"), vec![r("g", "f0")]).unwrap();
    let json: serde_json::Value = serde_json::from_str(&c.stats().unwrap()).unwrap();
    assert_eq!(json["ops"]["put"]["count"], 1);
    assert_eq!(json["ops"]["get"]["count"], 1);
    assert!(json["engine"]["records"].as_u64().unwrap() >= 1);
    assert!(json["engine"]["index_bytes"].is_u64());
    assert_eq!(json["server"]["connections_open"], 1);
}
