//! SIGTERM: in-flight requests finish, the store is flushed and checkpointed, and a restart
//! reads back every acknowledged write.

mod common;

use common::{f32_group, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Status, Value};
use quiver_server::protocol::{Request, Response};

const WRITERS: usize = 4;
const PUTS_PER_WRITER: usize = 500;

fn put_req(w: usize, i: usize) -> Request {
    Request::Put {
        group: "g".into(),
        key: EntityKey::String(format!("w{w}-{i}")),
        event_time_ms: 1,
        options: PutOptions::default(),
        values: vec![("f0".into(), Value::F32(i as f32))],
    }
}

/// Pipelined puts until the server goes away; returns the indexes acknowledged with OK.
fn writer(addr: String, w: usize) -> Vec<usize> {
    let mut c = quiver_server::client::Client::connect(&addr, common::test_config()).unwrap();
    let mut acked = Vec::new();
    for batch in (0..PUTS_PER_WRITER).collect::<Vec<_>>().chunks(25) {
        let mut ids = Vec::new();
        for &i in batch {
            match c.send(&put_req(w, i)) {
                Ok(id) => ids.push((id, i)),
                Err(_) => return acked,
            }
        }
        for (id, i) in ids {
            match c.wait(id) {
                Ok(Response::Put(_)) => acked.push(i),
                _ => return acked,
            }
        }
    }
    acked
}

#[test]
fn sigterm_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/quiver.db");
    let q = Quiverd::file(&path, &[]);
    q.client().create_group(f32_group("g", 1)).unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let addr = q.addr.clone();
            std::thread::spawn(move || writer(addr, w))
        })
        .collect();
    // Let some writes through, then terminate while writers are still busy.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = q.terminate();
    assert!(status.success(), "quiverd exited with {status}");
    let acked: Vec<Vec<usize>> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        path.exists(),
        "the data file and its parent directory are created on first run"
    );

    let q = Quiverd::file(&path, &[]);
    let mut c = q.client();
    let f0 = vec![FeatureRef {
        group: "g".into(),
        feature: "f0".into(),
    }];
    let mut checked = 0;
    for (w, list) in acked.iter().enumerate() {
        for &i in list {
            let v = c
                .get(EntityKey::String(format!("w{w}-{i}")), f0.clone())
                .unwrap();
            assert_eq!(
                v[0].status,
                Status::Present,
                "acknowledged write w{w}-{i} was lost"
            );
            assert_eq!(v[0].value, Value::F32(i as f32));
            checked += 1;
        }
    }
    assert!(checked > 0, "no write was acknowledged before shutdown");
    assert!(q.terminate().success());
}
