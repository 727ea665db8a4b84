//! Sync puts from many connections share flushes without a thread per writer: with one engine
//! thread, 64 connections each putting with `Durability::Sync` are all answered, in fewer
//! flushes than puts (one engine thread blocked per sync put, as before the commit thread,
//! needs a flush per put), and every acknowledged put survives a kill -9.

mod common;

use common::{f32_group, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Status, Value};
use quiver_engine::Durability;
use quiver_server::protocol::{Request, Response};

const CONNECTIONS: usize = 64;
const PUTS_PER_CONNECTION: usize = 10;

fn sync_put(i: usize) -> Request {
    Request::Put {
        group: "g".into(),
        key: EntityKey::String(format!("e{i}")),
        event_time_ms: 1_000,
        options: PutOptions {
            durability: Some(Durability::Sync),
            ..PutOptions::default()
        },
        values: vec![("f0".into(), Value::F32(i as f32))],
    }
}

fn flushes(q: &Quiverd) -> u64 {
    let stats: serde_json::Value = serde_json::from_str(&q.client().stats().unwrap()).unwrap();
    stats["engine"]["flushes"].as_u64().expect("engine.flushes")
}

#[test]
fn sync_puts_from_64_connections_share_flushes_and_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let p = path.to_str().unwrap();
    let args = [
        "--data",
        p,
        "--size",
        "256MiB",
        "--workers",
        "2",
        "--engine-threads",
        "1",
    ];
    let q = Quiverd::start(&args);
    q.client().create_group(f32_group("g", 1)).unwrap();
    let before = flushes(&q);
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let addr = q.addr.clone();
            std::thread::spawn(move || {
                let mut client =
                    quiver_server::client::Client::connect(&addr, common::test_config()).unwrap();
                for n in 0..PUTS_PER_CONNECTION {
                    let i = c * PUTS_PER_CONNECTION + n;
                    match client.call(&sync_put(i)).unwrap() {
                        Response::Put(_) => {}
                        other => panic!("sync put {i} answered {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let puts = (CONNECTIONS * PUTS_PER_CONNECTION) as u64;
    let used = flushes(&q) - before;
    assert!(
        used < puts,
        "{puts} sync puts from {CONNECTIONS} connections took {used} flushes: none was shared"
    );
    drop(q); // SIGKILL: no clean shutdown, no final flush.
    let q = Quiverd::start(&args);
    let mut c = q.client();
    let f0 = vec![FeatureRef::new("g", "f0")];
    for i in 0..CONNECTIONS * PUTS_PER_CONNECTION {
        let got = c
            .get(EntityKey::String(format!("e{i}")), f0.clone())
            .unwrap();
        assert_eq!(got[0].status, Status::Present, "acknowledged put e{i} lost");
        assert_eq!(got[0].value, Value::F32(i as f32));
    }
}
