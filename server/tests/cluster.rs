//! Cluster mode over real processes: an etcd (Debian's `etcd-server`) and three quiverd
//! nodes on 127.0.0.1, each test with its own etcd on free ports and a temporary data dir.
//!
//! - acknowledged sync writes survive kill -9 of their master and are read from the new
//!   master; writes during the failover are refused with a retryable status, never
//!   acknowledged and lost; every node that holds a map version holds the same map;
//! - a node paused past its lease accepts no write when it resumes;
//! - a request sent to the wrong node is answered NOT_MASTER with the map version;
//! - bad etcd URLs, unreachable etcd and a node id already in use are clear errors.

mod common;

use common::{f32_group, test_config, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Status, Value};
use quiver_engine::Durability;
use quiver_server::client::cluster::retryable;
use quiver_server::client::{Client, ClusterClient};
use quiver_server::cluster::etcd::Etcd;
use quiver_server::cluster::map::partition_of;
use quiver_server::protocol::{ClusterMapInfo, ReplicateRequest, Request, Response, StatusCode};
use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Lease TTL of the test nodes, in seconds (the shortest accepted).
const TTL_S: &str = "2";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// An etcd of its own, stopped (SIGKILL) and its data dir removed on drop.
struct EtcdProcess {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

fn etcd_binary() -> Option<String> {
    let found = std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())?;
    Some(found.to_string_lossy().into_owned())
}

impl EtcdProcess {
    /// `None` (the test is skipped) when etcd is not installed, unless CI=true.
    fn start() -> Option<EtcdProcess> {
        let Some(bin) = etcd_binary() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "etcd is not installed (apt-get install etcd-server)"
            );
            eprintln!("skipping: etcd is not installed (apt-get install etcd-server)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(bin)
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path())
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd");
        let e = EtcdProcess {
            child,
            url,
            _dir: dir,
        };
        let client = Etcd::new(&e.url).expect("etcd url");
        let deadline = Instant::now() + Duration::from_secs(20);
        while client.get("/probe").is_err() {
            assert!(Instant::now() < deadline, "etcd did not start within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(e)
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node(etcd: &EtcdProcess, id: u32, extra: &[&str]) -> Quiverd {
    let id = id.to_string();
    let mut args = vec!["--memory", "--size", "128MiB", "--workers", "1"];
    args.extend_from_slice(&["--engine-threads", "4", "--commit", "sync"]);
    args.extend_from_slice(&["--cluster-etcd", &etcd.url, "--node-id", &id]);
    args.extend_from_slice(&["--lease-ttl-s", TTL_S, "--initial-nodes", "3"]);
    args.extend_from_slice(extra);
    Quiverd::start(&args)
}

fn three_nodes(etcd: &EtcdProcess) -> Vec<Quiverd> {
    (1..=3).map(|id| node(etcd, id, &[])).collect()
}

/// A cluster client once every node holds the first map.
fn cluster_client(nodes: &[Quiverd]) -> ClusterClient {
    let seeds: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !nodes.iter().all(|n| map_of(&n.addr).map.is_some()) {
        assert!(
            Instant::now() < deadline,
            "no partition map on every node after 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ClusterClient::connect(&seeds, test_config()).expect("a node answers")
}

fn map_of(addr: &str) -> ClusterMapInfo {
    let mut c = Client::connect(addr, test_config()).expect("connect");
    match c.call(&Request::ClusterMap).expect("CLUSTER_MAP") {
        Response::ClusterMap(m) => m,
        other => panic!("unexpected {other:?}"),
    }
}

fn key(i: usize) -> EntityKey {
    EntityKey::String(format!("user:{i}"))
}

fn sync_put(c: &mut ClusterClient, i: usize, v: f32) -> quiver_server::client::Result<()> {
    let opts = PutOptions {
        durability: Some(Durability::Sync),
        ..PutOptions::default()
    };
    c.put(
        "g",
        key(i),
        1_000 + i as u64,
        vec![("f0".into(), Value::F32(v))],
        opts,
    )
    .map(drop)
}

fn read(c: &mut ClusterClient, i: usize) -> Option<f32> {
    let got = c
        .get(key(i), vec![FeatureRef::new("g", "f0")])
        .expect("get");
    match (&got[0].status, &got[0].value) {
        (Status::Present, Value::F32(v)) => Some(*v),
        (Status::NotFound, _) => None,
        other => panic!("key {i}: unexpected {other:?}"),
    }
}

/// The node mastering partition `p` in `m`.
fn master(m: &ClusterMapInfo, p: usize) -> u32 {
    m.map.as_ref().expect("a map").partitions[p].master
}

#[test]
fn acknowledged_writes_survive_kill_9_of_their_master() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let mut nodes = three_nodes(&etcd);
    let mut c = cluster_client(&nodes);
    c.create_group(f32_group("g", 1))
        .expect("group on every node");
    let before = c.map().cloned().expect("map");
    let version = before.map.as_ref().unwrap().version;
    let mut acked: HashMap<usize, f32> = HashMap::new();
    for i in 0..300 {
        sync_put(&mut c, i, i as f32).expect("sync put before the failure");
        acked.insert(i, i as f32);
    }
    // Kill node 1 with SIGKILL: no goodbye, its lease lapses on its own.
    let victim = nodes.remove(0);
    let victim_keys: Vec<usize> = (0..300)
        .filter(|i| master(&before, partition_of(&key(*i))) == 1)
        .collect();
    assert!(
        victim_keys.len() > 50,
        "node 1 masters about a third of the keys"
    );
    drop(victim);
    // Until the map changes, node 1's partitions have no reachable master: a single attempt
    // fails with a retryable error, and nothing it reports as acknowledged is lost.
    c.retry.deadline = Duration::ZERO;
    let mut refused = 0;
    for (round, i) in victim_keys.iter().take(20).enumerate() {
        let v = 10_000.0 + round as f32;
        match sync_put(&mut c, *i, v) {
            Ok(()) => {
                acked.insert(*i, v);
            }
            Err(e) => {
                assert!(retryable(&e), "write during failover failed for good: {e}");
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0,
        "writes to a dead master's partitions are refused"
    );
    // With retries, writes are acknowledged again once a replica took over. The other keys
    // of node 1 keep the values written before the kill: only replication saved those.
    c.retry.deadline = Duration::from_secs(30);
    for i in victim_keys.iter().take(40) {
        sync_put(&mut c, *i, 20_000.0 + *i as f32).expect("put after failover");
        acked.insert(*i, 20_000.0 + *i as f32);
    }
    assert!(victim_keys[40..].iter().all(|i| acked[i] == *i as f32));
    let after = c.map().cloned().expect("map");
    let new_version = after.map.as_ref().unwrap().version;
    assert!(new_version > version);
    for (i, want) in &acked {
        assert_eq!(
            read(&mut c, *i),
            Some(*want),
            "acknowledged write of key {i}"
        );
    }
    // Node 1 is in no partition; its partitions moved to their old replica.
    let (old, new) = (before.map.unwrap(), after.map.clone().unwrap());
    for (p, (o, n)) in old.partitions.iter().zip(&new.partitions).enumerate() {
        assert!(n.master != 1 && !n.replicas.contains(&1), "partition {p}");
        if o.master == 1 {
            assert_eq!(
                n.master, o.replicas[0],
                "partition {p} moved to its replica"
            );
        }
    }
    // One map per version: every live node holding this version holds the same map.
    for n in &nodes {
        let m = map_of(&n.addr);
        if m.map.as_ref().map(|x| x.version) == Some(new_version) {
            assert_eq!(
                m.map, after.map,
                "node {} disagrees on version {new_version}",
                m.node_id
            );
        }
    }
}

#[test]
fn wrong_node_gets_not_master_with_the_map_version() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let nodes = three_nodes(&etcd);
    let mut c = cluster_client(&nodes);
    c.create_group(f32_group("g", 1)).expect("group");
    let m = c.map().cloned().unwrap();
    let version = m.map.as_ref().unwrap().version;
    let k = key(7);
    let owner = master(&m, partition_of(&k));
    let other = nodes
        .iter()
        .find(|n| map_of(&n.addr).node_id != owner)
        .expect("a node that is not the master");
    let mut direct = Client::connect(&other.addr, test_config()).unwrap();
    let put = direct.put(
        "g",
        k.clone(),
        1,
        vec![("f0".into(), Value::F32(1.0))],
        PutOptions::default(),
    );
    let e = put.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::NotMaster), "{e}");
    assert!(
        e.to_string().contains(&format!("map version {version}")),
        "{e}"
    );
    let get = direct
        .get(k.clone(), vec![FeatureRef::new("g", "f0")])
        .unwrap_err();
    assert_eq!(get.status(), Some(StatusCode::NotMaster), "{get}");
    // The routed client splits a batch over the nodes and answers every key in order.
    for i in 0..40 {
        sync_put(&mut c, i, i as f32 * 2.0).unwrap();
    }
    let keys: Vec<EntityKey> = (0..40).map(key).collect();
    let items = c.get_many(keys, vec![FeatureRef::new("g", "f0")]).unwrap();
    for (i, item) in items.into_iter().enumerate() {
        assert_eq!(item.unwrap()[0].value, Value::F32(i as f32 * 2.0));
    }
    // REPLICATE is refused on the client port, whatever it claims.
    let forged = Request::Replicate(ReplicateRequest {
        map_version: version,
        from_node: owner,
        partition: partition_of(&k) as u16,
        write: Box::new(Request::Delete {
            group: "g".into(),
            key: k,
            durability: None,
        }),
    });
    let e = direct.call(&forged).unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::InvalidArgument), "{e}");
    assert!(e.to_string().contains("peer port"), "{e}");
}

#[test]
fn a_paused_node_accepts_no_write_after_its_lease_lapsed() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let nodes = three_nodes(&etcd);
    let mut c = cluster_client(&nodes);
    c.create_group(f32_group("g", 1)).expect("group");
    let before = c.map().cloned().unwrap();
    let paused = &nodes[1];
    let paused_id = map_of(&paused.addr).node_id;
    let i = (0..1000)
        .find(|i| master(&before, partition_of(&key(*i))) == paused_id)
        .unwrap();
    sync_put(&mut c, i, 1.0).unwrap();
    // SIGSTOP past the lease (and the survivors' map change), then SIGCONT.
    // SAFETY: kill(2) on a child process we spawned and have not reaped.
    unsafe { libc::kill(paused.child.id() as i32, libc::SIGSTOP) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = map_of(&nodes[0].addr);
        if master(&m, partition_of(&key(i))) != paused_id {
            break;
        }
        assert!(Instant::now() < deadline, "no failover within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: as above.
    unsafe { libc::kill(paused.child.id() as i32, libc::SIGCONT) };
    let mut direct = Client::connect(&paused.addr, test_config()).unwrap();
    let e = direct
        .put(
            "g",
            key(i),
            5_000,
            vec![("f0".into(), Value::F32(99.0))],
            PutOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            e.status(),
            Some(StatusCode::NotMaster | StatusCode::Unavailable)
        ),
        "the resumed node refused the write: {e}"
    );
    c.refresh().unwrap();
    assert_eq!(read(&mut c, i), Some(1.0), "the refused write is nowhere");
}

#[test]
fn bad_etcd_and_conflicting_node_ids_are_clear_errors() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_quiverd"))
            .args(["--memory", "--size", "64MiB", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("QUIVER_LOG", "off")
            .output()
            .expect("run quiverd");
        assert!(!out.status.success(), "quiverd {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&["--cluster-etcd", "https://127.0.0.1:2379", "--node-id", "1"]);
    assert!(e.contains("bad etcd URL 'https://127.0.0.1:2379'"), "{e}");
    let e = run(&["--cluster-etcd", "http://127.0.0.1:2379"]);
    assert!(e.contains("--node-id"), "{e}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let e = run(&["--cluster-etcd", &dead, "--node-id", "1"]);
    assert!(e.contains("cannot reach etcd at"), "{e}");
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let _first = node(&etcd, 4, &[]);
    let e = run(&[
        "--cluster-etcd",
        &etcd.url,
        "--node-id",
        "4",
        "--lease-ttl-s",
        TTL_S,
    ]);
    assert!(e.contains("node id 4 is already registered"), "{e}");
}
