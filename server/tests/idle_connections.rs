//! A thousand idle connections cost no threads and do not slow anyone down; the idle timeout
//! closes them.

mod common;

use common::{f32_group, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Value};
use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn thousand_idle_connections() {
    let q = Quiverd::memory(&["--idle-timeout-ms", "10000"]);
    q.client().create_group(f32_group("g", 1)).unwrap();
    let threads_before = thread_count(q.child.id());
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&q.addr).unwrap())
        .collect();
    let mut c = q.client();
    for i in 0..200 {
        let k = EntityKey::String(format!("k{i}"));
        c.put(
            "g",
            k.clone(),
            1,
            vec![("f0".into(), Value::F32(1.0))],
            PutOptions::default(),
        )
        .unwrap();
        c.get(
            k,
            vec![FeatureRef {
                group: "g".into(),
                feature: "f0".into(),
            }],
        )
        .unwrap();
    }
    // The acceptor may still be catching up with the burst: look again, a bounded number of times.
    let mut open = 0;
    for _ in 0..100 {
        let json: serde_json::Value = serde_json::from_str(&c.stats().unwrap()).unwrap();
        open = json["server"]["connections_open"].as_u64().unwrap();
        if open == 1001 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(open, 1001);
    assert_eq!(
        thread_count(q.child.id()),
        threads_before,
        "a connection must not get a thread"
    );
    // The idle timeout closes them: each read ends with EOF.
    let s = &mut idle[999];
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(s.read(&mut b).unwrap(), 0);
}
