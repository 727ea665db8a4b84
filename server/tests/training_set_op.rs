//! TRAINING_SET over the wire: a spine batch joined by the server equals, row for row, what
//! GET_AS_OF answers for each row's time in every mode; answers stream in several frames under
//! a small frame limit, batches travel as many pipelined requests; and a refused request names
//! what was wrong (its row in the whole spine, the missing key column, the limit).

mod common;

use common::{f32_group, now_ms, put_at, with_history, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, Value};
use quiver_engine::training::{SpineBatch, TimeMode};
use quiver_server::client::{Client, ClientError};
use quiver_server::protocol::{Request, Response, StatusCode, TrainingSetRequest};

const DAY_MS: u64 = 86_400_000;
const KEEP_ALL_S: u32 = 3650 * 86_400;

fn s(key: &str) -> EntityKey {
    EntityKey::String(key.into())
}

fn refs() -> Vec<FeatureRef> {
    vec![FeatureRef::new("user", "f1"), FeatureRef::new("user", "f0")]
}

/// quiverd with small limits and group `user` (f0, f1) holding late and corrected versions.
fn store() -> (Quiverd, Client, u64) {
    let q = Quiverd::memory(&["--max-batch-keys", "300", "--max-frame-bytes", "4096"]);
    let mut c = q.client();
    c.create_group(with_history(f32_group("user", 2), KEEP_ALL_S))
        .unwrap();
    let t = now_ms() - 10 * DAY_MS;
    for i in 0..40u64 {
        let key = s(&format!("u{}", i % 6));
        let event = t + (i * 7919 % 40) * 3_600_000;
        // Every third version arrives a day late.
        let write = event + if i % 3 == 0 { DAY_MS } else { 1_000 };
        let values = [
            ("f0", Value::F32(i as f32)),
            ("f1", Value::F32(-(i as f32))),
        ];
        put_at(&mut c, "user", &key, event, write, &values);
    }
    (q, c, t)
}

fn spine(t: u64, rows: usize, first_row: u64) -> SpineBatch {
    SpineBatch {
        first_row,
        timestamps_ms: (0..rows as u64).map(|i| t + i * 4_000_000).collect(),
        keys: vec![(0..rows)
            .map(|i| (i % 9 != 8).then(|| s(&format!("u{}", i % 8))))
            .collect()],
        known_at_ms: None,
    }
}

#[test]
fn a_remote_training_set_equals_as_of_reads_in_every_mode() {
    let (_q, mut c, t) = store();
    for mode in [TimeMode::EventTime, TimeMode::AsServed, TimeMode::KnownAt] {
        let mut batch = spine(t, 700, 0);
        if mode == TimeMode::KnownAt {
            batch.known_at_ms = Some(batch.timestamps_ms.iter().map(|t| t + DAY_MS / 2).collect());
        }
        let joined = c.training_set(refs(), mode).unwrap().join(&batch).unwrap();
        assert_eq!(joined.columns.len(), 2);
        let mut present = 0;
        for i in 0..batch.len() {
            let got: Vec<_> = joined.columns.iter().map(|col| col[i].clone()).collect();
            let want = match &batch.keys[0][i] {
                None => vec![quiver_engine::feature::FeatureValue::not_found(); 2],
                Some(key) => {
                    let known = batch.known_at_ms.as_ref().map_or(0, |k| k[i]);
                    let at = mode.as_of(batch.timestamps_ms[i], known);
                    c.get_as_of(key.clone(), at, refs()).unwrap()
                }
            };
            assert_eq!(got, want, "{mode:?}, row {i}");
            present += (got[0].value != Value::Null) as usize;
        }
        assert!(present > 100, "{mode:?}: only {present} rows found values");
    }
}

#[test]
fn answers_stream_in_frames_within_the_frame_limit() {
    let (_q, mut c, t) = store();
    let batch = spine(t, 200, 0);
    let request = Request::TrainingSet(TrainingSetRequest {
        features: refs(),
        mode: TimeMode::EventTime,
        first_row: 0,
        timestamps_ms: batch.timestamps_ms.clone(),
        known_at_ms: None,
        key_columns: vec![("user".into(), batch.keys[0].clone())],
    });
    let id = c.send(&request).unwrap();
    let mut frames = 0;
    let mut rows = 0;
    loop {
        match c.wait(id).unwrap() {
            Response::TrainingChunk {
                first,
                rows: n,
                columns,
                more,
            } => {
                assert_eq!(first as usize, rows);
                assert_eq!(columns.len(), 2);
                assert!(columns.iter().all(|col| col.len() == n as usize));
                rows += n as usize;
                frames += 1;
                if !more {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rows, 200);
    assert!(
        frames >= 2,
        "200 rows of two f32 values fit no 4096-byte frame"
    );
}

fn refused(c: &mut Client, request: TrainingSetRequest) -> ClientError {
    c.call(&Request::TrainingSet(request)).unwrap_err()
}

#[test]
fn refusals_name_the_row_the_column_and_the_limit() {
    let (_q, mut c, t) = store();
    let base = TrainingSetRequest {
        features: refs(),
        mode: TimeMode::EventTime,
        first_row: 1_000,
        timestamps_ms: vec![t, 5, t],
        known_at_ms: None,
        key_columns: vec![("user".into(), vec![Some(s("u1")); 3])],
    };
    let err = refused(&mut c, base.clone());
    assert_eq!(err.status(), Some(StatusCode::InvalidArgument), "{err}");
    assert!(
        err.to_string()
            .contains("spine row 1002: as-of time 5 ms is before the history window"),
        "{err}"
    );
    let mut wrong_key = base.clone();
    wrong_key.timestamps_ms[1] = t;
    wrong_key.key_columns[0].1[2] = Some(EntityKey::I64(3));
    let err = refused(&mut c, wrong_key);
    assert!(
        err.to_string()
            .contains("spine row 1003: entity key of type i64 given for group 'user'"),
        "{err}"
    );
    let mut no_column = base.clone();
    no_column.key_columns[0].0 = "shop".into();
    let err = refused(&mut c, no_column);
    assert_eq!(err.status(), Some(StatusCode::InvalidArgument), "{err}");
    assert!(
        err.to_string()
            .contains("key column for group 'shop', but no feature is from that group"),
        "{err}"
    );
    let mut empty = base.clone();
    empty.timestamps_ms.clear();
    empty.key_columns[0].1.clear();
    let err = refused(&mut c, empty);
    assert!(
        err.to_string().contains("TRAINING_SET with 0 rows"),
        "{err}"
    );
    let mut too_many = base.clone();
    too_many.timestamps_ms = vec![t; 301];
    too_many.key_columns[0].1 = vec![None; 301];
    let err = refused(&mut c, too_many);
    assert_eq!(err.status(), Some(StatusCode::LimitExceeded), "{err}");
    assert!(
        err.to_string().contains("max_batch_keys limit of 300"),
        "{err}"
    );
    let mut unknown = base;
    unknown.features = vec![FeatureRef::new("nope", "f0")];
    unknown.key_columns[0].0 = "nope".into();
    let err = refused(&mut c, unknown);
    assert_eq!(err.status(), Some(StatusCode::UnknownGroup), "{err}");
    // The connection is still usable.
    c.ping().unwrap();
}
