//! Cluster mode over real processes: an etcd (Debian's `etcd-server`) and three quiverd
//! nodes on 127.0.0.1, each test with its own etcd on free ports and a temporary data dir.
//!
//! - acknowledged sync writes survive kill -9 of their master and are read from the new
//!   master; writes during the failover are refused with a retryable status, never
//!   acknowledged and lost; every node that holds a map version holds the same map;
//! - under sync puts, deletes and gets from four clients, nodes are killed with kill -9 in
//!   turn and started again (3 cycles; `QUIVER_CLUSTER_KILL_CYCLES=N` for more), and each
//!   key's history of calls and answers is checked for linearizability against a register
//!   by stateright's `LinearizabilityTester`;
//! - a node paused past its lease accepts no write when it resumes;
//! - a node started again while the map still names it steps out of its partitions first;
//! - a replica whose stream broke catches up from the master's unanswered writes;
//! - a get on a master never answers with a write that no replica has confirmed yet (the
//!   master could die before any replica receives it);
//! - a request sent to the wrong node is answered NOT_MASTER with the map version;
//! - reads flagged FLAG_REPLICA_READ are served by in-sync replicas too;
//! - bad etcd URLs, unreachable etcd and a node id already in use are clear errors.

mod common;

use common::{f32_group, test_config, with_history, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Status, Value};
use quiver_engine::history::AsOf;
use quiver_engine::Durability;
use quiver_server::client::cluster::retryable;
use quiver_server::client::cluster::PutItem;
use quiver_server::client::{Client, ClusterClient};
use quiver_server::cluster::etcd::Etcd;
use quiver_server::cluster::map::partition_of;
use quiver_server::protocol::{
    ClusterMapInfo, ReplicateRequest, Replicated, Request, Response, StatusCode,
};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    node_with_ttl(etcd, id, TTL_S, extra)
}

fn node_with_ttl(etcd: &EtcdProcess, id: u32, ttl_s: &str, extra: &[&str]) -> Quiverd {
    let id = id.to_string();
    let mut args = vec!["--memory", "--size", "128MiB", "--workers", "1"];
    args.extend_from_slice(&["--engine-threads", "4", "--commit", "sync"]);
    args.extend_from_slice(&["--cluster-etcd", &etcd.url, "--node-id", &id]);
    args.extend_from_slice(&["--lease-ttl-s", ttl_s, "--initial-nodes", "3"]);
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

fn sync_put_at(
    c: &mut ClusterClient,
    i: usize,
    v: f32,
    event_time_ms: u64,
) -> quiver_server::client::Result<()> {
    let opts = PutOptions {
        durability: Some(Durability::Sync),
        ..PutOptions::default()
    };
    let values = vec![("f0".into(), Value::F32(v))];
    c.put("g", key(i), event_time_ms, values, opts).map(drop)
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
    // The routed client splits a batch of puts and one of gets over the nodes (each part
    // pipelined, the parts in parallel) and answers every item in order.
    let opts = PutOptions {
        durability: Some(Durability::Sync),
        ..PutOptions::default()
    };
    let items: Vec<PutItem> = (0..40)
        .map(|i| PutItem {
            key: key(i),
            event_time_ms: 1_000,
            values: vec![("f0".into(), Value::F32(i as f32 * 2.0))],
            options: opts,
        })
        .collect();
    let masters: std::collections::BTreeSet<u32> =
        items.iter().map(|i| c.master_of(&i.key).unwrap()).collect();
    assert_eq!(masters.len(), 3, "40 keys have a master on every node");
    let mut bad = items[0].clone();
    bad.values = vec![("nope".into(), Value::F32(0.0))];
    let mut all = items;
    all.push(bad);
    let written = c.put_many("g", all).unwrap();
    assert_eq!(written.len(), 41);
    for r in &written[..40] {
        assert_eq!(r.as_ref().unwrap().written, 1);
    }
    let e = written[40].as_ref().unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UnknownFeature), "{e}");
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
        write: Replicated::Write(Box::new(Request::Delete {
            group: "g".into(),
            key: k,
            durability: None,
        })),
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

/// A node killed and started again before the survivors took it out of the map (its old
/// registration removed at once, as when a restart loop re-registers the moment the old lease
/// lapses; the survivors are held with SIGSTOP meanwhile so that they cannot take it out
/// first) finds the map naming it with an empty store. It must step out of its partitions
/// before serving, so that every acknowledged write is still read.
#[test]
fn a_node_restarted_while_still_in_the_map_steps_out_before_serving() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    // A longer lease than the other tests': the survivors stay stopped while node 1 starts,
    // and must not lose theirs meanwhile, even on a loaded machine.
    let ttl = "8";
    let mut nodes: Vec<Quiverd> = (1..=3)
        .map(|id| node_with_ttl(&etcd, id, ttl, &[]))
        .collect();
    let mut c = cluster_client(&nodes);
    c.create_group(f32_group("g", 1)).expect("group");
    for i in 0..300 {
        sync_put(&mut c, i, i as f32).expect("acknowledged put");
    }
    let before = c.map().cloned().unwrap();
    assert!((0..300).any(|i| master(&before, partition_of(&key(i))) == 1));
    drop(nodes.remove(0));
    let survivors: Vec<i32> = nodes.iter().map(|n| n.child.id() as i32).collect();
    for pid in &survivors {
        // SAFETY: kill(2) on a child process we spawned and have not reaped.
        unsafe { libc::kill(*pid, libc::SIGSTOP) };
    }
    Etcd::new(&etcd.url)
        .unwrap()
        .delete("/quiver/main/nodes/1")
        .expect("the dead node's registration removed");
    let back = node_with_ttl(&etcd, 1, ttl, &[]);
    for pid in &survivors {
        // SAFETY: as above.
        unsafe { libc::kill(*pid, libc::SIGCONT) };
    }
    let m = map_of(&back.addr).map.expect("a map");
    assert!(
        m.version > before.map.as_ref().unwrap().version,
        "the returning node changed the map before serving"
    );
    for (p, pl) in m.partitions.iter().enumerate() {
        assert!(
            pl.master != 1 && !pl.replicas.contains(&1),
            "partition {p}: the node back with an empty store is still a copy: {pl:?}"
        );
    }
    nodes.push(back);
    let mut c = cluster_client(&nodes);
    c.retry.deadline = Duration::from_secs(30);
    for i in 0..300 {
        assert_eq!(
            read(&mut c, i),
            Some(i as f32),
            "acknowledged write of key {i}"
        );
    }
}

/// GET count in a node's STATS.
fn gets_served(addr: &str) -> u64 {
    let json = Client::connect(addr, test_config())
        .unwrap()
        .stats()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["ops"]["get"]["count"].as_u64().expect("ops.get.count")
}

/// FLAG_REPLICA_READ: an in-sync replica answers a read that allows it, and refuses one that
/// does not (NOT_MASTER), as does a node holding no copy; a cluster client with replica reads
/// spreads a key's reads over its master and replica and reads the acknowledged values.
#[test]
fn replica_reads_are_served_by_in_sync_replicas_only_when_asked() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let nodes = three_nodes(&etcd);
    let mut c = cluster_client(&nodes);
    c.create_group(f32_group("g", 1)).expect("group");
    for i in 0..50 {
        sync_put(&mut c, i, i as f32).expect("acknowledged put");
    }
    let m = c.map().cloned().unwrap();
    let pl = m.map.as_ref().unwrap().partitions[partition_of(&key(3))].clone();
    let replica = pl.replicas[0];
    let outsider = (1..=3).find(|n| *n != pl.master && *n != replica).unwrap();
    let f0 = || vec![FeatureRef::new("g", "f0")];
    let mut direct = Client::connect(&nodes[replica as usize - 1].addr, test_config()).unwrap();
    let refused = direct.get(key(3), f0()).unwrap_err();
    assert_eq!(refused.status(), Some(StatusCode::NotMaster), "{refused}");
    direct.set_replica_reads(true);
    let got = direct.get(key(3), f0()).expect("a replica read");
    assert_eq!(
        (got[0].status, &got[0].value),
        (Status::Present, &Value::F32(3.0))
    );
    let mut other = Client::connect(&nodes[outsider as usize - 1].addr, test_config()).unwrap();
    other.set_replica_reads(true);
    let refused = other.get(key(3), f0()).unwrap_err();
    assert_eq!(
        refused.status(),
        Some(StatusCode::NotMaster),
        "a node without a copy: {refused}"
    );
    let before = gets_served(&nodes[replica as usize - 1].addr);
    c.set_replica_reads(true);
    for _ in 0..10 {
        assert_eq!(read(&mut c, 3), Some(3.0));
    }
    let spread = gets_served(&nodes[replica as usize - 1].addr) - before;
    assert!(spread >= 4, "the replica served {spread} of 10 reads");
    let all = c
        .get_many((0..50).map(key).collect(), f0())
        .expect("batch get");
    for (i, row) in all.into_iter().enumerate() {
        let row = row.expect("row");
        assert_eq!(row[0].value, Value::F32(i as f32), "key {i}");
    }
}

/// A TCP relay in front of a node's peer port, which the test can cut: while held it moves no
/// byte in either direction, and `sever` closes every connection through it, dropping what it
/// held (the bytes a network partition loses), while new connections pass again.
struct PeerRelay {
    addr: String,
    held: Arc<AtomicBool>,
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

impl PeerRelay {
    fn start(target: String) -> PeerRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay port");
        let addr = listener.local_addr().unwrap().to_string();
        let held = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (h, e) = (held.clone(), epoch.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { return };
                let Ok(outbound) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let born = e.load(Ordering::SeqCst);
                for (from, to) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound),
                ] {
                    let (h, e) = (h.clone(), e.clone());
                    std::thread::spawn(move || Self::pump(from, to, &h, &e, born));
                }
            }
        });
        PeerRelay { addr, held, epoch }
    }

    fn pump(
        mut from: std::net::TcpStream,
        mut to: std::net::TcpStream,
        held: &AtomicBool,
        epoch: &std::sync::atomic::AtomicU64,
        born: u64,
    ) {
        use std::io::{Read, Write};
        from.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let severed = || epoch.load(Ordering::SeqCst) != born;
        loop {
            if severed() {
                break;
            }
            if held.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => break,
            };
            // Bytes read just as the relay was held wait for the release, or are lost to a
            // sever.
            while held.load(Ordering::SeqCst) && !severed() {
                std::thread::sleep(Duration::from_millis(5));
            }
            if severed() || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(std::net::Shutdown::Both);
        let _ = to.shutdown(std::net::Shutdown::Both);
    }

    fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    /// Closes every connection made so far, losing what they held, and passes bytes again.
    fn sever_and_release(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.held.store(false, Ordering::SeqCst);
    }
}

/// Three nodes whose peer ports are reached through a [`PeerRelay`] each (node `id` is at
/// index `id - 1` of both).
fn relayed_nodes(etcd: &EtcdProcess) -> (Vec<Quiverd>, Vec<PeerRelay>) {
    let mut relays = Vec::new();
    let nodes = (1..=3)
        .map(|id| {
            let peer = format!("127.0.0.1:{}", free_port());
            let relay = PeerRelay::start(peer.clone());
            let args = ["--peer-listen", &peer, "--peer-advertise", &relay.addr];
            let n = node(etcd, id, &args);
            relays.push(relay);
            n
        })
        .collect();
    (nodes, relays)
}

/// A replica whose stream breaks while it stays in the map catches up from where it stopped:
/// the master sends every unanswered write again on a new connection, so the writes waiting
/// for the replica are confirmed rather than refused, and the replica holds them (read after
/// the master is killed).
#[test]
fn a_replica_cut_off_for_a_moment_catches_up_and_the_writes_are_confirmed() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let (mut nodes, relays) = relayed_nodes(&etcd);
    let mut c = cluster_client(&nodes);
    c.create_group(f32_group("g", 1)).expect("group");
    let m = c.map().cloned().unwrap();
    let placement = |i: usize| {
        let pl = &m.map.as_ref().unwrap().partitions[partition_of(&key(i))];
        (pl.master, pl.replicas[0])
    };
    let (master_id, replica_id) = placement(0);
    let keys: Vec<usize> = (0..2000)
        .filter(|i| placement(*i) == (master_id, replica_id))
        .take(4)
        .collect();
    for i in &keys {
        sync_put(&mut c, *i, 1.0).expect("acknowledged put");
    }
    let relay = &relays[replica_id as usize - 1];
    relay.hold();
    let master_addr = nodes[master_id as usize - 1].addr.clone();
    let writers: Vec<_> = keys
        .iter()
        .map(|&i| {
            let addr = master_addr.clone();
            std::thread::spawn(move || {
                let mut direct = Client::connect(&addr, test_config()).unwrap();
                let opts = PutOptions {
                    durability: Some(Durability::Sync),
                    ..PutOptions::default()
                };
                let values = vec![("f0".into(), Value::F32(2.0))];
                direct.put("g", key(i), 5_000, values, opts).map(drop)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The connection breaks and what it held is lost; the replica stays in the map.
    relay.sever_and_release();
    for (w, i) in writers.into_iter().zip(&keys) {
        let outcome = w.join().unwrap();
        assert!(
            outcome.is_ok(),
            "key {i}: the write waiting for the cut-off replica was confirmed once the master \
             sent it again: {outcome:?}"
        );
    }
    drop(nodes.remove(master_id as usize - 1));
    c.retry.deadline = Duration::from_secs(30);
    c.refresh().unwrap();
    for i in &keys {
        assert_eq!(
            read(&mut c, *i),
            Some(2.0),
            "key {i} on the replica, master now"
        );
    }
}

/// The window between a master's apply and its replica's receipt: a read on the master must
/// not answer with a write its replica has not received, since the master may die first.
/// Every node's peer port is reached through a [`PeerRelay`]; the relay of the key's replica
/// is held, so the master's write stays unconfirmed; a get of the key is sent to the master;
/// the master is killed and the held bytes are lost; then the replica, master now, serves the
/// key. A get that had answered with the lost write would be followed by gets of the older
/// value: not linearizable.
#[test]
fn a_read_never_answers_with_a_write_no_replica_confirmed() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let (mut nodes, relays) = relayed_nodes(&etcd);
    let mut c = cluster_client(&nodes);
    c.create_group(f32_group("g", 1)).expect("group");
    let m = c.map().cloned().unwrap();
    let i = 7;
    let part = &m.map.as_ref().unwrap().partitions[partition_of(&key(i))];
    let (master_id, replica_id) = (part.master, part.replicas[0]);
    sync_put(&mut c, i, 1.0).expect("acknowledged put");
    let relay = &relays[replica_id as usize - 1];
    relay.hold();
    let master_addr = nodes[master_id as usize - 1].addr.clone();
    // The write: applied on the master, held on its way to the replica.
    let writer = {
        let addr = master_addr.clone();
        std::thread::spawn(move || {
            let mut direct = Client::connect(&addr, test_config())?;
            let opts = PutOptions {
                durability: Some(Durability::Sync),
                ..PutOptions::default()
            };
            let values = vec![("f0".into(), Value::F32(2.0))];
            direct.put("g", key(i), 5_000, values, opts).map(drop)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let reader = std::thread::spawn(move || {
        let mut direct = Client::connect(&master_addr, test_config())?;
        let got = direct.get(key(i), vec![FeatureRef::new("g", "f0")]);
        got.map(|v| match (&v[0].status, &v[0].value) {
            (Status::Present, Value::F32(x)) => Some(*x),
            _ => None,
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    // The master dies with the write held; the replica takes over without it.
    drop(nodes.remove(master_id as usize - 1));
    relay.sever_and_release();
    let written = writer.join().unwrap();
    let seen = reader.join().unwrap();
    c.retry.deadline = Duration::from_secs(30);
    c.refresh().unwrap();
    let after = read(&mut c, i);
    assert!(
        written.is_err(),
        "the write was never confirmed, so never acknowledged"
    );
    assert_eq!(after, Some(1.0), "the new master never received the write");
    if let Ok(v) = seen {
        assert_eq!(
            v, after,
            "a get on the old master answered {v:?}, and gets after the failover answer \
             {after:?}: the get saw a write that no replica had received"
        );
    }
}

/// A replica that receives a write and never answers: the write is refused (UNAVAILABLE,
/// naming the replica and the lease TTL) by the stream's watchdog, not left unanswered, and
/// the master answers reads of its other partitions meanwhile.
#[test]
fn a_write_a_replica_never_answers_is_refused_and_the_master_serves_meanwhile() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let (nodes, relays) = relayed_nodes(&etcd);
    let mut c = cluster_client(&nodes);
    c.create_group(f32_group("g", 1)).expect("group");
    let m = c.map().cloned().unwrap();
    let map = m.map.as_ref().unwrap();
    let i = 11;
    let part = &map.partitions[partition_of(&key(i))];
    let (master_id, replica_id) = (part.master, part.replicas[0]);
    // Another partition of the same master.
    let other = (0..10_000)
        .find(|&j| {
            let p = partition_of(&key(j));
            p != partition_of(&key(i)) && map.partitions[p].master == master_id
        })
        .expect("another key of the master");
    sync_put(&mut c, other, 1.0).expect("acknowledged put");
    relays[replica_id as usize - 1].hold();
    let master_addr = nodes[master_id as usize - 1].addr.clone();
    let writer = {
        let addr = master_addr.clone();
        std::thread::spawn(move || {
            let mut direct = Client::connect(&addr, test_config()).expect("connect");
            let opts = PutOptions {
                durability: Some(Durability::Sync),
                ..PutOptions::default()
            };
            let values = vec![("f0".into(), Value::F32(2.0))];
            direct.put("g", key(i), 5_000, values, opts).map(drop)
        })
    };
    let mut direct = Client::connect(&master_addr, test_config()).expect("connect");
    for _ in 0..20 {
        let got = direct
            .get(key(other), vec![FeatureRef::new("g", "f0")])
            .expect("a read while the write waits");
        assert_eq!(got[0].value, Value::F32(1.0));
    }
    let e = writer
        .join()
        .unwrap()
        .expect_err("never confirmed, so refused");
    let text = e.to_string();
    assert!(text.to_lowercase().contains("unavailable"), "{text}");
    assert!(
        text.contains(&format!("replica node {replica_id}"))
            && text.contains("did not answer within"),
        "{text}"
    );
    relays[replica_id as usize - 1].sever_and_release();
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

/// What each node's own store holds of group "g" (SCAN is node-local): key -> value.
fn holdings(nodes: &[&Quiverd]) -> BTreeMap<u32, BTreeMap<String, f32>> {
    nodes
        .iter()
        .map(|n| {
            let id = map_of(&n.addr).node_id;
            let mut c = Client::connect(&n.addr, test_config()).expect("connect");
            let items = c.scan_all("g", 1000).expect("scan");
            let mut held = BTreeMap::new();
            for item in items {
                let EntityKey::String(k) = item.key else {
                    panic!("string keys")
                };
                let Value::F32(v) = item.values[0].1.value else {
                    panic!("key {k}: f0 is {:?}", item.values[0].1)
                };
                assert!(held.insert(k.clone(), v).is_none(), "node {id}: {k} twice");
            }
            (id, held)
        })
        .collect()
}

/// Checks that every record is exactly on the nodes the map names for its partition (master
/// and replicas, with the expected value) and on no other node.
fn placed_as_the_map_says(
    map: &ClusterMapInfo,
    held: &BTreeMap<u32, BTreeMap<String, f32>>,
    want: &HashMap<usize, f32>,
) -> Result<(), String> {
    let m = map.map.as_ref().ok_or("no map")?;
    for (i, v) in want {
        let k = format!("user:{i}");
        let pl = &m.partitions[partition_of(&key(*i))];
        for n in pl.copies() {
            match held.get(&n).and_then(|h| h.get(&k)) {
                Some(got) if got == v => {}
                other => {
                    return Err(format!(
                        "key {k} (partition {}): node {n} of the map holds {other:?}, want {v}",
                        partition_of(&key(*i))
                    ))
                }
            }
        }
    }
    for (n, h) in held {
        for k in h.keys() {
            let i: usize = k["user:".len()..]
                .parse()
                .map_err(|_| format!("stray {k}"))?;
            let p = partition_of(&key(i));
            if !m.partitions[p].copies().any(|c| c == *n) {
                return Err(format!(
                    "node {n} holds {k} of partition {p}, which the map version {} does not \
                     give it",
                    m.version
                ));
            }
            if !want.contains_key(&i) {
                return Err(format!("node {n} holds {k}, never written"));
            }
        }
    }
    Ok(())
}

/// Waits until the map has no migration under way and every node holds exactly what the map
/// says; returns that map.
fn settled(nodes: &[&Quiverd], want: &HashMap<usize, f32>, what: &str) -> ClusterMapInfo {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let m = map_of(&nodes[0].addr);
        let map = m.map.as_ref().expect("a map");
        let versions: Vec<u64> = nodes
            .iter()
            .map(|n| map_of(&n.addr).map.map_or(0, |x| x.version))
            .collect();
        let short = map
            .partitions
            .iter()
            .filter(|p| p.copies().count() < usize::from(map.replication_factor))
            .count();
        let why = if map.migrations() > 0 {
            format!("{} partition copies under way", map.migrations())
        } else if short > 0 {
            // Between two waves of copies no copy is under way for a moment, yet the
            // planner has more to do.
            format!("{short} partitions have fewer copies than the replication factor")
        } else if versions.iter().any(|v| *v != map.version) {
            format!("nodes hold map versions {versions:?}")
        } else {
            match placed_as_the_map_says(&m, &holdings(nodes), want) {
                // The planner has had a few of its polls to start another wave (a move
                // towards balance) and did not: the map is at rest.
                Ok(()) if at_rest(&nodes[0].addr, map.version) => return m,
                Ok(()) => "the planner started another wave of copies".to_string(),
                Err(e) => e,
            }
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not settled after 90 s: {why}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the map stays at `version` for a second, several of the planner's polls (every
/// tenth of the lease TTL).
fn at_rest(addr: &str, version: u64) -> bool {
    std::thread::sleep(Duration::from_secs(1));
    map_of(addr).map.is_some_and(|m| m.version == version)
}

/// Sync puts of `keys` from a thread until `stop`, each retried until acknowledged; the last
/// acknowledged value of each key.
fn writer(
    seeds: Vec<String>,
    keys: std::ops::Range<usize>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<HashMap<usize, f32>> {
    std::thread::spawn(move || {
        let refs: Vec<&str> = seeds.iter().map(String::as_str).collect();
        let mut c = ClusterClient::connect(&refs, test_config()).expect("connect");
        c.retry.deadline = Duration::from_secs(60);
        let mut acked = HashMap::new();
        let mut round = 0u32;
        while !stop.load(Ordering::Relaxed) {
            round += 1;
            for i in keys.clone() {
                let v = (round * 100_000) as f32 + i as f32;
                sync_put(&mut c, i, v).expect("a write retried until acknowledged");
                acked.insert(i, v);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        acked
    })
}

#[test]
fn a_node_back_after_kill_9_catches_up_and_is_in_sync_only_then() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let mut nodes = three_nodes(&etcd);
    let mut c = cluster_client(&nodes);
    c.create_group(with_history(f32_group("g", 1), 86_400))
        .expect("group");
    let mut want: HashMap<usize, f32> = HashMap::new();
    let hour_ms = 3_600_000;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for i in 0..300 {
        sync_put_at(&mut c, i, i as f32, now_ms - 2 * hour_ms + i as u64).unwrap();
        want.insert(i, i as f32);
    }
    // kill -9 node 1; wait until the map no longer names it (its lease lapsed).
    drop(nodes.remove(0));
    let deadline = Instant::now() + Duration::from_secs(30);
    while map_of(&nodes[0].addr)
        .map
        .is_some_and(|m| m.partitions.iter().any(|p| p.holds(1)))
    {
        assert!(
            Instant::now() < deadline,
            "node 1 still in the map after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Writes go on while it is away and while it catches up; the first values go to history.
    for i in 0..300 {
        sync_put_at(&mut c, i, 1_000.0 + i as f32, now_ms - hour_ms + i as u64).unwrap();
        want.insert(i, 1_000.0 + i as f32);
    }
    let back = node(&etcd, 1, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let seeds = vec![nodes[0].addr.clone()];
    let w = writer(seeds, 300..400, stop.clone());
    // Node 1 is given copies as a learner first, and is a replica or master only after.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_learning = false;
    loop {
        let m = map_of(&nodes[0].addr).map.expect("map");
        seen_learning |= m.partitions.iter().any(|p| p.learner(1).is_some());
        let copies = m
            .partitions
            .iter()
            .filter(|p| p.copies().any(|n| n == 1))
            .count();
        if copies > 1000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 holds {copies} copies after 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen_learning, "node 1 received its copies as a learner");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    want.extend(w.join().expect("writer"));
    let all = [&back, &nodes[0], &nodes[1]];
    let m = settled(&all, &want, "catch-up of node 1");
    let map = m.map.as_ref().unwrap();
    assert!(map.partitions.iter().all(|p| p.copies().count() == 2));
    let on_1 = map
        .partitions
        .iter()
        .filter(|p| p.copies().any(|n| n == 1))
        .count();
    assert!(
        on_1 > 2000,
        "node 1 holds its share again: {on_1} partitions"
    );
    c.refresh().unwrap();
    for (i, v) in &want {
        assert_eq!(read(&mut c, *i), Some(*v), "key {i}");
    }
    // Copies carry history: as of an event time before the second writes, every key reads
    // its first value, on node 1 (which holds only what it was copied and sent) as elsewhere.
    let mastered_by_1 = (0..300)
        .filter(|i| master(&m, partition_of(&key(*i))) == 1)
        .count();
    assert!(mastered_by_1 > 0, "node 1 masters some of the keys again");
    for i in 0..300usize {
        let got = c
            .get_as_of(
                key(i),
                AsOf::event_time(now_ms - hour_ms - hour_ms / 2),
                vec![FeatureRef::new("g", "f0")],
            )
            .expect("get as of");
        assert_eq!(
            (got[0].status, &got[0].value),
            (Status::Present, &Value::F32(i as f32)),
            "key {i} as of before its second write (master node {})",
            master(&m, partition_of(&key(i)))
        );
    }
}

#[test]
fn migration_under_load_a_fourth_node_joins_then_one_leaves() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let nodes = three_nodes(&etcd);
    let mut c = cluster_client(&nodes);
    c.create_group(f32_group("g", 1)).expect("group");
    let version = c.map().unwrap().map.as_ref().unwrap().version;
    let seeds: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| writer(seeds.clone(), w * 300..(w + 1) * 300, stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let fourth = node(&etcd, 4, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = map_of(&nodes[0].addr).map.expect("map");
        let on_4 = m
            .partitions
            .iter()
            .filter(|p| p.copies().any(|n| n == 4))
            .count();
        if on_4 >= 2000 && m.migrations() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 4 holds {on_4} partitions after 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let mut want = HashMap::new();
    for w in writers {
        want.extend(w.join().expect("writer"));
    }
    let all = [&nodes[0], &nodes[1], &nodes[2], &fourth];
    let m = settled(&all, &want, "join of node 4");
    let map = m.map.as_ref().unwrap();
    assert!(map.version > version + 1, "the map changed in steps");
    for id in 1..=4 {
        let copies = map
            .partitions
            .iter()
            .filter(|p| p.copies().any(|n| n == id))
            .count();
        let masters = map.partitions.iter().filter(|p| p.master == id).count();
        assert!(
            (2040..=2056).contains(&copies),
            "node {id}: {copies} copies"
        );
        assert!(masters > 500, "node {id}: {masters} masters");
    }
    // Node 2 leaves: its partitions migrate away while writes go on.
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(seeds.clone(), 0..200, stop.clone());
    let leaving = c.leave(2).expect("leave");
    assert!(leaving > map.version);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = map_of(&nodes[0].addr).map.expect("map");
        if !m.partitions.iter().any(|p| p.holds(2)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 still holds partitions after 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    want.extend(w.join().expect("writer"));
    let m = settled(&all, &want, "leave of node 2");
    assert!(m.map.as_ref().unwrap().draining.contains(&2));
    assert!(
        holdings(&[&nodes[1]])[&2].is_empty(),
        "node 2 dropped its records"
    );
    c.refresh().unwrap();
    let keys: Vec<EntityKey> = (0..600).map(key).collect();
    let items = c.get_many(keys, vec![FeatureRef::new("g", "f0")]).unwrap();
    for (i, item) in items.into_iter().enumerate() {
        assert_eq!(item.unwrap()[0].value, Value::F32(want[&i]), "key {i}");
    }
    // Leaving is refused for an unknown node, and when too few nodes would remain.
    let e = c.leave(99).unwrap_err();
    assert!(
        e.to_string().contains("node 99 is neither registered"),
        "{e}"
    );
    c.leave(3).expect("nodes 1 and 4 remain for 2 copies");
    let e = c.leave(1).unwrap_err();
    assert!(e.to_string().contains("cannot leave"), "{e}");
}

/// Kill cycles of the linearizability test: `QUIVER_CLUSTER_KILL_CYCLES` (3 by default; the
/// long run in docs/CLUSTER.md uses 20).
fn kill_cycles() -> usize {
    match std::env::var("QUIVER_CLUSTER_KILL_CYCLES") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("QUIVER_CLUSTER_KILL_CYCLES={v:?} is not a number")),
        Err(_) => 3,
    }
}

/// Client threads of the linearizability test.
const CLIENTS: u64 = 4;
/// Each block of this many operations (counted over all clients) goes to a fresh set of
/// `KEYS_PER_BLOCK` keys: a key's history stays a few hundred operations long, small enough
/// for the checker's search, however long the test runs.
const OPS_PER_BLOCK: u64 = 4_000;
const KEYS_PER_BLOCK: u64 = 32;
/// The reader of every key after the clients stopped, as a process of the history.
const FINAL_READER: u64 = u64::MAX;

/// One client operation on one key of group "g": a sync put of a value used by no other
/// write, a sync delete, or a get.
#[derive(Clone, Copy, Debug)]
enum Call {
    Put(u32),
    Delete,
    Get,
}

/// What a completed operation answered: done (put, delete) or the value read (`None`: not
/// found).
#[derive(Clone, Copy, Debug)]
enum Answer {
    Done,
    Read(Option<u32>),
}

/// An operation as recorded by its client. `invoked` and `returned` are positions in one
/// sequence shared by all clients, taken before the request is sent and after its answer
/// arrived, so their order is the real-time order of the events. A write that failed (its
/// retries ran out, or the error lost the answer) has no return: it may or may not have
/// taken effect, and the checker must allow both.
#[derive(Clone, Copy, Debug)]
struct Recorded {
    /// The client, and how many of its writes were left without an answer before this one:
    /// a process has at most one operation in flight, so after an unanswered write the
    /// client goes on as a new process.
    process: u64,
    key: u64,
    call: Call,
    invoked: u64,
    returned: Option<(u64, Answer)>,
}

/// What the clients share: the event sequence, the next unique value, the operation count
/// (which picks the block of keys) and the stop flag.
#[derive(Default)]
struct Shared {
    clock: std::sync::atomic::AtomicU64,
    next_value: std::sync::atomic::AtomicU32,
    ops: std::sync::atomic::AtomicU64,
    stop: AtomicBool,
}

/// A client of the linearizability test: random puts (40%), deletes (10%) and gets (50%) of
/// keys of the current block, until `stop`. Each put carries a new unique value and an event
/// time that grows with it, as a stream of fresh feature values does.
fn lin_client(
    id: u64,
    seeds: Vec<String>,
    shared: Arc<Shared>,
) -> std::thread::JoinHandle<Vec<Recorded>> {
    std::thread::spawn(move || {
        let refs: Vec<&str> = seeds.iter().map(String::as_str).collect();
        let mut c = ClusterClient::connect(&refs, test_config()).expect("connect");
        // Shorter than a failover (the lease TTL, 2 s): writes to a dead master's partitions
        // end without an answer, some of them applied, some not.
        c.retry.deadline = Duration::from_secs(1);
        let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let mut epoch = 0u64;
        let mut out = Vec::new();
        while !shared.stop.load(Ordering::Relaxed) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let block = shared.ops.fetch_add(1, Ordering::Relaxed) / OPS_PER_BLOCK;
            let k = block * KEYS_PER_BLOCK + (rng >> 32) % KEYS_PER_BLOCK;
            let call = match rng % 10 {
                0 => Call::Delete,
                1..=4 => Call::Put(shared.next_value.fetch_add(1, Ordering::SeqCst) + 1),
                _ => Call::Get,
            };
            let invoked = shared.clock.fetch_add(1, Ordering::SeqCst);
            let result = match call {
                Call::Put(v) => {
                    let opts = PutOptions {
                        durability: Some(Durability::Sync),
                        ..PutOptions::default()
                    };
                    let values = vec![("f0".into(), Value::F32(v as f32))];
                    c.put("g", key(k as usize), u64::from(v), values, opts)
                        .map(|_| Answer::Done)
                }
                Call::Delete => c
                    .delete("g", key(k as usize), Some(Durability::Sync))
                    .map(|_| Answer::Done),
                Call::Get => c
                    .get(key(k as usize), vec![FeatureRef::new("g", "f0")])
                    .map(|got| match (&got[0].status, &got[0].value) {
                        (Status::Present, Value::F32(v)) => Answer::Read(Some(*v as u32)),
                        (Status::NotFound, _) => Answer::Read(None),
                        other => panic!("key {k}: unexpected {other:?}"),
                    }),
            };
            let returned = shared.clock.fetch_add(1, Ordering::SeqCst);
            let process = id << 32 | epoch;
            match result {
                Ok(answer) => out.push(Recorded {
                    process,
                    key: k,
                    call,
                    invoked,
                    returned: Some((returned, answer)),
                }),
                Err(e) => {
                    assert!(retryable(&e), "{call:?} of key {k} failed for good: {e}");
                    // A failed get changed nothing and is left out; a failed write stays in
                    // flight for ever.
                    if !matches!(call, Call::Get) {
                        out.push(Recorded {
                            process,
                            key: k,
                            call,
                            invoked,
                            returned: None,
                        });
                        epoch += 1;
                    }
                }
            }
        }
        out
    })
}

/// Checks one key's history against a register (initially absent) with stateright's
/// linearizability tester. When no order of it is legal, says where: the operations up to
/// the first event after which no order is legal any more.
fn linearizable(ops: &[Recorded]) -> Result<(), String> {
    use stateright::semantics::register::{Register, RegisterOp, RegisterRet};
    use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
    let mut events = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoked, i, false));
        if let Some((at, _)) = op.returned {
            events.push((at, i, true));
        }
    }
    events.sort_by_key(|e| e.0);
    // Whether the first `n` events are linearizable (an operation whose return is not among
    // them is in flight).
    let check = |n: usize| -> Result<bool, String> {
        let mut tester = LinearizabilityTester::new(Register(None::<u32>));
        for (_, i, is_return) in &events[..n] {
            let op = &ops[*i];
            if *is_return {
                let ret = match op.returned.expect("a return event").1 {
                    Answer::Done => RegisterRet::WriteOk,
                    Answer::Read(v) => RegisterRet::ReadOk(v),
                };
                tester.on_return(op.process, ret)
            } else {
                let call = match op.call {
                    Call::Put(v) => RegisterOp::Write(Some(v)),
                    Call::Delete => RegisterOp::Write(None),
                    Call::Get => RegisterOp::Read,
                };
                tester.on_invoke(op.process, call)
            }
            .map_err(|e| format!("malformed history: {e}"))?;
        }
        Ok(tester.serialized_history().is_some())
    };
    if check(events.len())? {
        return Ok(());
    }
    // Prefixes of a linearizable history are linearizable: find the shortest that is not.
    let (mut good, mut bad) = (0, events.len());
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        if check(mid)? {
            good = mid;
        } else {
            bad = mid;
        }
    }
    let (at, last, _) = events[bad - 1];
    let mut shown: Vec<&Recorded> = ops.iter().filter(|o| o.invoked <= at).collect();
    shown.sort_by_key(|o| o.invoked);
    let skipped = shown.len().saturating_sub(16);
    let lines: Vec<String> = shown[skipped..]
        .iter()
        .map(|o| {
            let client = if o.process == FINAL_READER {
                "final reader".to_string()
            } else {
                format!("client {}.{}", o.process >> 32, o.process & 0xFFFF_FFFF)
            };
            match o.returned {
                Some((r, a)) if r <= at => {
                    format!("  [{}..{r}] {client} {:?} -> {a:?}", o.invoked, o.call)
                }
                _ => format!("  [{}..] {client} {:?} (no answer yet)", o.invoked, o.call),
            }
        })
        .collect();
    Err(format!(
        "no linearization of its {} operations; none of the first {} events either, ending \
         with {:?} of the operation invoked at {} ({skipped} earlier operations not shown):\n{}",
        ops.len(),
        bad,
        ops[last].returned.map(|r| r.1),
        ops[last].invoked,
        lines.join("\n")
    ))
}

/// Whether every node holds the same map, every partition has the replication factor's
/// copies in sync and no copy is under way, for a second (the planner had its chance to
/// start another wave): then any one node may die without losing a write.
fn fully_replicated(nodes: &[&Quiverd]) -> bool {
    let first = map_of(&nodes[0].addr);
    let Some(map) = first.map.as_ref() else {
        return false;
    };
    let rf = usize::from(map.replication_factor);
    map.migrations() == 0
        && map.partitions.iter().all(|p| p.copies().count() == rf)
        && nodes[1..].iter().all(|n| {
            map_of(&n.addr)
                .map
                .is_some_and(|m| m.version == map.version)
        })
        && at_rest(&nodes[0].addr, map.version)
}

#[test]
fn kill_9_cycles_under_concurrent_clients_keep_every_key_linearizable() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let first = three_nodes(&etcd);
    cluster_client(&first)
        .create_group(f32_group("g", 1))
        .expect("group");
    let mut nodes: Vec<Option<Quiverd>> = first.into_iter().map(Some).collect();
    let live = |nodes: &[Option<Quiverd>]| -> Vec<String> {
        nodes.iter().flatten().map(|n| n.addr.clone()).collect()
    };
    let shared = Arc::new(Shared::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| lin_client(id, live(&nodes), shared.clone()))
        .collect();
    let cycles = kill_cycles();
    let mut failovers = Vec::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !fully_replicated(&nodes.iter().flatten().collect::<Vec<_>>()) {
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: not fully replicated after 120 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // kill -9 a node (in turn), wait until the map no longer names it, start it again
        // with the same id and an empty store: it gets its copies back by full copies.
        let victim = (cycle % 3) as u32 + 1;
        drop(nodes[victim as usize - 1].take());
        let killed = Instant::now();
        let survivor = live(&nodes)[0].clone();
        while map_of(&survivor)
            .map
            .is_some_and(|m| m.partitions.iter().any(|p| p.holds(victim)))
        {
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "cycle {cycle}: node {victim} still in the map 60 s after kill -9"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        failovers.push(killed.elapsed());
        nodes[victim as usize - 1] = Some(node(&etcd, victim, &[]));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !fully_replicated(&nodes.iter().flatten().collect::<Vec<_>>()) {
        assert!(
            Instant::now() < deadline,
            "not fully replicated after 120 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut history: Vec<Recorded> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client panicked"))
        .collect();
    let ran = started.elapsed();
    // Every key ever used is read once more, after the clients stopped (through the nodes
    // of now: the first ones were all replaced).
    let seeds = live(&nodes);
    let refs: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let mut c = ClusterClient::connect(&refs, test_config()).expect("connect");
    let keys: std::collections::BTreeSet<u64> = history.iter().map(|o| o.key).collect();
    for k in &keys {
        let invoked = shared.clock.fetch_add(1, Ordering::SeqCst);
        let v = read(&mut c, *k as usize).map(|v| v as u32);
        history.push(Recorded {
            process: FINAL_READER,
            key: *k,
            call: Call::Get,
            invoked,
            returned: Some((invoked + 1, Answer::Read(v))),
        });
        shared.clock.fetch_add(1, Ordering::SeqCst);
    }
    let mut by_key: BTreeMap<u64, Vec<Recorded>> = BTreeMap::new();
    for op in &history {
        by_key.entry(op.key).or_default().push(*op);
    }
    let longest = by_key.values().map(Vec::len).max().unwrap_or(0);
    let checking = Instant::now();
    // The tester searches recursively, one stack frame per operation of a key.
    let failures: Vec<String> = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            by_key
                .iter()
                .filter_map(|(k, ops)| linearizable(ops).err().map(|e| format!("key {k}: {e}")))
                .collect()
        })
        .expect("checker thread")
        .join()
        .expect("the checker panicked");
    let unanswered = history.iter().filter(|o| o.returned.is_none()).count();
    failovers.sort();
    eprintln!(
        "{cycles} kill -9 cycles in {:.1} s: {} operations ({} writes without an answer) on {} \
         keys (longest history {longest}); failover p50 {:.2} s max {:.2} s; checked in {:.2} s",
        ran.as_secs_f64(),
        history.len(),
        unanswered,
        keys.len(),
        failovers[failovers.len() / 2].as_secs_f64(),
        failovers[failovers.len() - 1].as_secs_f64(),
        checking.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} keys have a history that is not linearizable; the first:\n{}",
        failures.len(),
        keys.len(),
        failures[0]
    );
}
