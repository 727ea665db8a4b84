//! History over the wire: GET_AS_OF (by event time, known-at time and "as served", TTL from
//! the as-of time, per-item errors), HISTORY pages with write times and continuation under the
//! frame limit, HISTORY_KEYS, same-event-time corrections, and the limits of each request.

mod common;

use common::{f32_group, feature, now_ms, put_at, with_history, Quiverd};
use quiver_engine::feature::{
    EntityKey, FeatureRef, FeatureType, FeatureValue, GroupSpec, PutOptions, Status, Value,
};
use quiver_engine::history::{AsOf, HistoryEntry, HistoryRange};
use quiver_server::client::{Client, ClientError};
use quiver_server::protocol::{GetAsOfRequest, HistoryRequest, Request, StatusCode};

const DAY_MS: u64 = 86_400_000;
/// Ten years, the longest retention.
const KEEP_ALL_S: u32 = 3650 * 86_400;

fn s(key: &str) -> EntityKey {
    EntityKey::String(key.into())
}

fn r(group: &str, feature: &str) -> FeatureRef {
    FeatureRef::new(group, feature)
}

fn f32v(v: f32) -> Value {
    Value::F32(v)
}

fn one(c: &mut Client, key: &EntityKey, refs: &[FeatureRef], at: AsOf) -> FeatureValue {
    c.get_as_of(key.clone(), at, refs.to_vec())
        .expect("get_as_of")
        .remove(0)
}

fn value_of(c: &mut Client, key: &EntityKey, at: AsOf) -> Value {
    let fv = one(c, key, &[r("user", "f0")], at);
    assert_eq!(fv.status, Status::Present, "{at:?}: {fv:?}");
    fv.value
}

fn expect_status(err: ClientError, status: StatusCode, words: &str) {
    assert_eq!(err.status(), Some(status), "{err}");
    assert!(err.to_string().contains(words), "{err}");
}

/// quiverd with group `user` (f0, f1: f32, string keys) keeping history for ten years.
fn user_store(extra: &[&str]) -> (Quiverd, Client) {
    let q = Quiverd::memory(extra);
    let mut c = q.client();
    c.create_group(with_history(f32_group("user", 2), KEEP_ALL_S))
        .unwrap();
    (q, c)
}

#[test]
fn as_of_reads_answer_by_event_time_known_at_time_and_as_served() {
    let (_q, mut c) = user_store(&[]);
    let t = now_ms() - 10 * DAY_MS;
    let k = s("u1");
    put_at(&mut c, "user", &k, t + 100, t + 1_000, &[("f0", f32v(1.0))]);
    // A late event, then a correction of the first event time.
    put_at(&mut c, "user", &k, t + 50, t + 2_000, &[("f0", f32v(2.0))]);
    put_at(&mut c, "user", &k, t + 100, t + 3_000, &[("f0", f32v(3.0))]);
    assert_eq!(value_of(&mut c, &k, AsOf::event_time(t + 99)), f32v(2.0));
    assert_eq!(value_of(&mut c, &k, AsOf::event_time(t + 100)), f32v(3.0));
    let before = one(&mut c, &k, &[r("user", "f0")], AsOf::event_time(t + 49));
    assert_eq!((before.status, before.event_time_ms), (Status::NotFound, 0));
    let known = AsOf::known_at(t + 100, t + 1_500);
    assert_eq!(value_of(&mut c, &k, known), f32v(1.0));
    assert_eq!(value_of(&mut c, &k, AsOf::as_served(t + 2_500)), f32v(1.0));
    assert_eq!(value_of(&mut c, &k, AsOf::as_served(t + 3_000)), f32v(3.0));
    let at = one(&mut c, &k, &[r("user", "f0")], AsOf::event_time(t + 60));
    assert_eq!(
        at.event_time_ms,
        t + 50,
        "the answer carries its event time"
    );
    let online = c.get(k.clone(), vec![r("user", "f0")]).unwrap();
    assert_eq!(online[0].value, f32v(3.0));

    // Many rows, each with its own time, in one request; and several groups at once.
    c.create_group(with_history(f32_group("other", 1), KEEP_ALL_S))
        .unwrap();
    put_at(&mut c, "other", &k, t + 10, t + 10, &[("f0", f32v(9.0))]);
    let rows = vec![
        (k.clone(), AsOf::event_time(t + 99)),
        (k.clone(), known),
        (s("nobody"), AsOf::event_time(t + 100)),
        (k.clone(), AsOf::event_time(t + 5)),
    ];
    let refs = vec![r("user", "f0"), r("other", "f0"), r("user", "f1")];
    let items = c.get_many_as_of(rows, refs.clone()).unwrap();
    let got: Vec<Vec<(Status, Value)>> = items
        .into_iter()
        .map(|item| {
            item.unwrap()
                .into_iter()
                .map(|fv| (fv.status, fv.value))
                .collect()
        })
        .collect();
    let present = |v: f32| (Status::Present, f32v(v));
    let missing = (Status::NotFound, Value::Null);
    assert_eq!(
        got,
        vec![
            vec![present(2.0), present(9.0), missing.clone()],
            vec![present(1.0), present(9.0), missing.clone()],
            vec![missing.clone(), missing.clone(), missing.clone()],
            vec![missing.clone(), missing.clone(), missing.clone()],
        ]
    );
    // One time for every key.
    let shared = Request::GetAsOf(GetAsOfRequest {
        keys: vec![k.clone(), s("nobody")],
        times: vec![AsOf::event_time(t + 100)],
        features: refs,
    });
    let quiver_server::protocol::Response::GetAsOf(items) = c.call(&shared).unwrap() else {
        panic!("GET_AS_OF answers with items");
    };
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap()[0].value, f32v(3.0));
}

#[test]
fn as_of_reads_count_the_ttl_back_from_the_as_of_time() {
    let (_q, mut c) = user_store(&[]);
    let spec = GroupSpec {
        ttl_s: Some(60),
        ..with_history(f32_group("short", 1), KEEP_ALL_S)
    };
    c.create_group(spec).unwrap();
    let t = now_ms() - DAY_MS;
    let k = s("u1");
    put_at(&mut c, "short", &k, t, t, &[("f0", f32v(1.0))]);
    let f0 = [r("short", "f0")];
    let fresh = one(&mut c, &k, &f0, AsOf::event_time(t + 60_000));
    assert_eq!(fresh.status, Status::Present);
    let old = one(&mut c, &k, &f0, AsOf::event_time(t + 60_001));
    assert_eq!((old.status, old.value), (Status::Expired, Value::Null));
    assert_eq!(old.event_time_ms, t);
    // Online, a day later, the same value reads EXPIRED too.
    let online = c.get(k, f0.to_vec()).unwrap();
    assert_eq!(online[0].status, Status::Expired);
}

#[test]
fn as_of_errors_are_per_item_and_limits_are_named() {
    let (_q, mut c) = user_store(&["--max-batch-keys", "4", "--max-features-per-request", "3"]);
    let mut plain = f32_group("plain", 1);
    plain.history = None;
    c.create_group(plain).unwrap();
    let t = now_ms() - DAY_MS;
    let k = s("u1");
    put_at(&mut c, "user", &k, t, t, &[("f0", f32v(1.0))]);
    let at = AsOf::event_time(t);
    let f0 = vec![r("user", "f0")];

    // Whole-request refusals.
    let five: Vec<(EntityKey, AsOf)> = (0..5).map(|i| (s(&format!("k{i}")), at)).collect();
    let err = c.get_many_as_of(five, f0.clone()).unwrap_err();
    expect_status(err, StatusCode::LimitExceeded, "max_batch_keys limit of 4");
    let err = c
        .get_as_of(k.clone(), at, vec![r("user", "f0"); 4])
        .unwrap_err();
    expect_status(
        err,
        StatusCode::LimitExceeded,
        "max_features_per_request limit of 3",
    );
    let err = c.get_many_as_of(vec![], f0.clone()).unwrap_err();
    expect_status(err, StatusCode::InvalidArgument, "0 keys");
    let uneven = Request::GetAsOf(GetAsOfRequest {
        keys: vec![k.clone(), k.clone()],
        times: vec![at; 3],
        features: f0.clone(),
    });
    let err = c.call(&uneven).unwrap_err();
    expect_status(err, StatusCode::InvalidArgument, "2 keys and 3 times");

    // Per-item errors leave the other items answered.
    let rows = vec![
        (k.clone(), at),
        (EntityKey::I64(5), at),
        (k.clone(), AsOf::event_time(0)),
    ];
    let items = c.get_many_as_of(rows, f0.clone()).unwrap();
    assert_eq!(items[0].as_ref().unwrap()[0].value, f32v(1.0));
    let item_status = |i: usize| items[i].as_ref().unwrap_err().status();
    assert_eq!(item_status(1), Some(StatusCode::TypeMismatch));
    assert_eq!(item_status(2), Some(StatusCode::InvalidArgument));
    let text = items[2].as_ref().unwrap_err().to_string();
    assert!(text.contains("before the history horizon"), "{text}");

    // A group without history, or an unknown one, fails every item alike.
    for (refs, status, words) in [
        (
            vec![r("plain", "f0")],
            StatusCode::InvalidArgument,
            "keeps no history",
        ),
        (vec![r("nope", "f0")], StatusCode::UnknownGroup, "nope"),
        (vec![r("user", "nope")], StatusCode::UnknownFeature, "nope"),
    ] {
        let items = c
            .get_many_as_of(vec![(k.clone(), at), (s("u2"), at)], refs)
            .unwrap();
        for item in items {
            expect_status(item.unwrap_err(), status, words);
        }
    }
    c.ping().unwrap();
}

/// The versions of `user` written by [`write_versions`], in history order.
type Expected = Vec<(String, u64, u64, Value)>;

/// Writes `n` puts of f0 and f1 with event times in a scrambled order (late events all along).
fn write_versions(c: &mut Client, k: &EntityKey, t: u64, n: u64) -> Expected {
    let mut expected = Vec::new();
    for i in 0..n {
        let event = t + (i * 7919) % n * 1_000;
        let write = t + 10 * n * 1_000 + i;
        let (a, b) = (f32v(i as f32), f32v(-(i as f32)));
        put_at(
            c,
            "user",
            k,
            event,
            write,
            &[("f0", a.clone()), ("f1", b.clone())],
        );
        expected.push(("f0".to_string(), event, write, a));
        expected.push(("f1".to_string(), event, write, b));
    }
    expected.sort_by(|x, y| (x.1, x.2, &x.0).cmp(&(y.1, y.2, &y.0)));
    expected
}

fn seen(entries: &[HistoryEntry]) -> Expected {
    for e in entries {
        assert_eq!(e.status, Status::Present);
    }
    entries
        .iter()
        .map(|e| {
            let feature = e.feature.clone();
            (feature, e.event_time_ms, e.write_time_ms, e.value.clone())
        })
        .collect()
}

fn features() -> Vec<String> {
    vec!["f0".to_string(), "f1".to_string()]
}

#[test]
fn history_pages_carry_every_version_with_its_write_time() {
    let (_q, mut c) = user_store(&[]);
    let t = now_ms() - 20 * DAY_MS;
    let k = s("u1");
    let n = 150; // several sealed segments
    let expected = write_versions(&mut c, &k, t, n);
    let all = c
        .history("user", k.clone(), features(), HistoryRange::all())
        .unwrap();
    assert_eq!(seen(&all), expected);
    // Small pages, each resuming where the last stopped.
    let mut paged = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let (entries, next) = c
            .history_page("user", k.clone(), features(), HistoryRange::all(), after, 7)
            .unwrap();
        assert!(entries.len() <= 7);
        paged.extend(entries);
        pages += 1;
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen(&paged), expected);
    assert!(pages >= (2 * n as usize).div_ceil(7), "{pages} pages");
    // A range and a known-at time.
    let range = HistoryRange {
        from_ms: t + 20_000,
        to_ms: t + 60_000,
        known_at_ms: Some(t + 10 * n * 1_000 + n / 2),
    };
    let want: Expected = expected
        .iter()
        .filter(|v| (range.from_ms..=range.to_ms).contains(&v.1))
        .filter(|v| v.2 <= range.known_at_ms.unwrap())
        .cloned()
        .collect();
    assert!(!want.is_empty() && want.len() < expected.len());
    let got = c.history("user", k.clone(), features(), range).unwrap();
    assert_eq!(seen(&got), want);
    // An entity without history has none.
    let none = c
        .history("user", s("nobody"), features(), HistoryRange::all())
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn history_pages_shrink_to_the_frame_limit_and_requests_are_checked() {
    let (_q, mut c) = user_store(&[
        "--max-frame-bytes",
        "65536",
        "--max-features-per-request",
        "3",
    ]);
    let mut blobs = f32_group("blobs", 0);
    blobs.features = vec![feature("blob", FeatureType::Bytes)];
    c.create_group(with_history(blobs, KEEP_ALL_S)).unwrap();
    let t = now_ms() - DAY_MS;
    let k = s("u1");
    for i in 0..20u8 {
        let values = vec![("blob".to_string(), Value::Bytes(vec![i; 10_000]))];
        let options = PutOptions {
            write_time_ms: Some(t + i as u64),
            ..PutOptions::default()
        };
        c.put("blobs", k.clone(), t + i as u64, values, options)
            .unwrap();
    }
    let blob = vec!["blob".to_string()];
    let (first, next) = c
        .history_page(
            "blobs",
            k.clone(),
            blob.clone(),
            HistoryRange::all(),
            None,
            100,
        )
        .unwrap();
    assert!(
        !first.is_empty() && first.len() < 7,
        "{} versions of 10,000 bytes in a 64 KiB frame",
        first.len()
    );
    assert!(next.is_some(), "the rest comes with the next page");
    let all = c
        .history("blobs", k.clone(), blob.clone(), HistoryRange::all())
        .unwrap();
    let values: Vec<Value> = all.into_iter().map(|e| e.value).collect();
    let want: Vec<Value> = (0..20u8).map(|i| Value::Bytes(vec![i; 10_000])).collect();
    assert_eq!(values, want);

    let page = |c: &mut Client, features: Vec<String>, range: HistoryRange, max: u32| {
        c.history_page("user", k.clone(), features, range, None, max)
            .unwrap_err()
    };
    let all = HistoryRange::all();
    let err = page(&mut c, vec![], all, 10);
    expect_status(err, StatusCode::InvalidArgument, "0 features");
    let err = page(&mut c, vec!["f0".to_string(); 4], all, 10);
    expect_status(
        err,
        StatusCode::LimitExceeded,
        "max_features_per_request limit of 3",
    );
    let backwards = HistoryRange {
        from_ms: 10,
        to_ms: 9,
        known_at_ms: None,
    };
    let err = page(&mut c, features(), backwards, 10);
    expect_status(
        err,
        StatusCode::InvalidArgument,
        "'from' must not be after 'to'",
    );
    for max in [0, 100_001] {
        let err = page(&mut c, features(), all, max);
        expect_status(err, StatusCode::LimitExceeded, "outside 1..=100000");
    }
    let err = page(&mut c, vec!["nope".to_string()], all, 10);
    expect_status(err, StatusCode::UnknownFeature, "nope");
    let raw = Request::History(HistoryRequest {
        group: "user".into(),
        key: EntityKey::I64(1),
        features: features(),
        range: all,
        after: None,
        max_versions: 10,
    });
    expect_status(c.call(&raw).unwrap_err(), StatusCode::TypeMismatch, "i64");
    c.ping().unwrap();
}

/// Issue 20, item 4: a correction (the same event time written again) keeps both versions;
/// the newer write wins online and for every known-at time after it.
#[test]
fn corrections_with_the_same_event_time_keep_both_versions() {
    let (_q, mut c) = user_store(&[]);
    let t = now_ms() - DAY_MS;
    let k = s("u1");
    put_at(&mut c, "user", &k, t, t + 1_000, &[("f0", f32v(1.0))]);
    put_at(&mut c, "user", &k, t, t + 2_000, &[("f0", f32v(2.0))]);
    let history = c
        .history("user", k.clone(), vec!["f0".into()], HistoryRange::all())
        .unwrap();
    let versions: Vec<(u64, u64, Value)> = history
        .iter()
        .map(|e| (e.event_time_ms, e.write_time_ms, e.value.clone()))
        .collect();
    assert_eq!(
        versions,
        vec![(t, t + 1_000, f32v(1.0)), (t, t + 2_000, f32v(2.0))]
    );
    assert_eq!(value_of(&mut c, &k, AsOf::event_time(t)), f32v(2.0));
    assert_eq!(
        value_of(&mut c, &k, AsOf::known_at(t, t + 1_999)),
        f32v(1.0)
    );
    assert_eq!(
        value_of(&mut c, &k, AsOf::known_at(t, t + 2_000)),
        f32v(2.0)
    );
    assert_eq!(value_of(&mut c, &k, AsOf::as_served(t + 1_500)), f32v(1.0));
    let online = c.get(k.clone(), vec![r("user", "f0")]).unwrap();
    assert_eq!(online[0].value, f32v(2.0));

    // Written through the server's own clock: both kept, the later one answers.
    let k2 = s("u2");
    for v in [5.0, 6.0] {
        let values = vec![("f0".to_string(), f32v(v))];
        c.put("user", k2.clone(), t, values, PutOptions::default())
            .unwrap();
    }
    let history = c
        .history("user", k2.clone(), vec!["f0".into()], HistoryRange::all())
        .unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history[0].write_time_ms <= history[1].write_time_ms);
    assert_eq!(value_of(&mut c, &k2, AsOf::event_time(t)), f32v(6.0));
    let online = c.get(k2, vec![r("user", "f0")]).unwrap();
    assert_eq!(online[0].value, f32v(6.0));
}

#[test]
fn history_keys_list_every_entity_with_history() {
    let (_q, mut c) = user_store(&["--max-batch-keys", "50"]);
    let t = now_ms() - DAY_MS;
    for i in 0..25 {
        let k = s(&format!("k{i:02}"));
        // Every fifth entity seals a segment: records that name no entity lie in between.
        let versions = if i % 5 == 0 { 70 } else { 1 };
        for v in 0..versions {
            put_at(&mut c, "user", &k, t + v, t + v, &[("f0", f32v(1.0))]);
        }
    }
    assert!(c.delete("user", s("k03"), None).unwrap());
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let (keys, next) = c.history_keys_page("user", cursor, 4).unwrap();
        listed.extend(keys);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut names: Vec<String> = listed.iter().map(|k| k.to_string()).collect();
    names.sort();
    let want: Vec<String> = (0..25)
        .filter(|i| *i != 3)
        .map(|i| s(&format!("k{i:02}")).to_string())
        .collect();
    assert_eq!(names, want);
    let err = c.history_keys_page("user", None, 51).unwrap_err();
    expect_status(err, StatusCode::LimitExceeded, "max_batch_keys limit of 50");
    let err = c.history_keys_page("user", None, 0).unwrap_err();
    expect_status(err, StatusCode::LimitExceeded, "at least 1");
    let mut plain = f32_group("plain", 1);
    plain.history = None;
    c.create_group(plain).unwrap();
    let err = c.history_keys_page("plain", None, 10).unwrap_err();
    expect_status(err, StatusCode::InvalidArgument, "keeps no history");
}
