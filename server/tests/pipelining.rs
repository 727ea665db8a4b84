//! Many concurrent clients and deep pipelines: every response reaches the request with its id.

mod common;

use common::{f32_group, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Value};
use quiver_server::protocol::{Request, Response};

fn refs(n: usize) -> Vec<FeatureRef> {
    (0..n)
        .map(|i| FeatureRef {
            group: "g".into(),
            feature: format!("f{i}"),
        })
        .collect()
}

fn put_req(k: &str, v: f32) -> Request {
    Request::Put {
        group: "g".into(),
        key: EntityKey::String(k.into()),
        event_time_ms: 1,
        options: PutOptions::default(),
        values: (0..10)
            .map(|i| (format!("f{i}"), Value::F32(v + i as f32)))
            .collect(),
    }
}

#[test]
fn deep_pipeline_matches_every_response_to_its_request() {
    let q = Quiverd::memory(&["--max-inflight-per-connection", "64"]);
    let mut c = q.client();
    c.create_group(f32_group("g", 10)).unwrap();
    // 2,000 requests in flight from one connection: far past the server's in-flight limit,
    // so the client must interleave reads; puts and gets mixed.
    let n = 2_000;
    let mut expected = Vec::with_capacity(n);
    for i in 0..n {
        let id = c.send(&put_req(&format!("k{i}"), i as f32)).unwrap();
        expected.push((id, None));
        let get = Request::Get {
            key: EntityKey::String(format!("k{}", i / 2)),
            features: refs(10),
        };
        expected.push((c.send(&get).unwrap(), Some(i / 2)));
    }
    // Collect in reverse order: the client keeps early responses until asked.
    for (id, get_of) in expected.into_iter().rev() {
        match (c.wait(id).unwrap(), get_of) {
            (Response::Put(p), None) => assert_eq!(p.written, 10),
            (Response::Get(values), Some(k)) => {
                assert_eq!(values.len(), 10);
                // The put of k was sent before this get, on the same connection, but requests
                // in flight together may run in any order: a value, if present, must be k's.
                if let Value::F32(v) = values[3].value {
                    assert_eq!(v, k as f32 + 3.0);
                }
            }
            (other, _) => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn many_concurrent_clients_with_pipelining() {
    let q = Quiverd::memory(&[]);
    let mut c = q.client();
    c.create_group(f32_group("g", 10)).unwrap();
    for i in 0..100 {
        c.call(&put_req(&format!("k{i}"), i as f32)).unwrap();
    }
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let addr = q.addr.clone();
            std::thread::spawn(move || {
                let mut c =
                    quiver_server::client::Client::connect(&addr, common::test_config()).unwrap();
                for round in 0..20 {
                    let ids: Vec<(u64, usize)> = (0..16)
                        .map(|j| {
                            let k = (t * 7 + round * 16 + j) % 100;
                            let req = Request::Get {
                                key: EntityKey::String(format!("k{k}")),
                                features: refs(10),
                            };
                            (c.send(&req).unwrap(), k)
                        })
                        .collect();
                    for (id, k) in ids {
                        let Response::Get(values) = c.wait(id).unwrap() else {
                            panic!("not a get response")
                        };
                        assert_eq!(values[9].value, Value::F32(k as f32 + 9.0));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let json: serde_json::Value = serde_json::from_str(&c.stats().unwrap()).unwrap();
    assert_eq!(json["ops"]["get"]["count"], 32 * 20 * 16);
    assert_eq!(json["ops"]["get"]["errors"], 0);
}
