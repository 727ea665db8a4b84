//! Failover cycles over real processes: each cycle starts an etcd and three quiverd nodes
//! (replication factor 2), writes keys with sync puts from several client threads, kills the
//! master of a chosen key with SIGKILL while the writers run, and measures the time from the
//! kill to the first write acknowledged again for a key the dead node mastered. After the
//! cycle every acknowledged write is read back from the new masters.
//!
//! ```text
//! cargo run --release -p quiver-server --example cluster_failover -- \
//!     --quiverd target/release/quiverd --cycles 20 --lease-ttl-s 2
//! ```
//! Prints one line per cycle and the p50 / max failover time; exits non-zero if an
//! acknowledged write is missing or a write failed for good. `scripts/cluster-failover.sh`
//! builds and runs it.

use quiver_engine::feature::{
    Compression, EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions,
    Status, Value,
};
use quiver_engine::Durability;
use quiver_server::client::cluster::retryable;
use quiver_server::client::{ClientConfig, ClusterClient};
use quiver_server::cluster::etcd::Etcd;
use quiver_server::cluster::map::partition_of;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 4;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_etcd(dir: &std::path::Path) -> (Proc, String) {
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(dir)
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("bench={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etcd (apt-get install etcd-server)");
    let etcd = Proc(child);
    let c = Etcd::new(&url).expect("url");
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.get("/probe").is_err() {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (etcd, url)
}

fn start_node(quiverd: &str, etcd: &str, id: u32, ttl: &str) -> (Proc, String) {
    let mut child = Command::new(quiverd)
        .args(["--memory", "--size", "256MiB", "--listen", "127.0.0.1:0"])
        .args([
            "--commit",
            "sync",
            "--cluster-etcd",
            etcd,
            "--node-id",
            &id.to_string(),
        ])
        .args(["--lease-ttl-s", ttl, "--initial-nodes", "3"])
        .env("QUIVER_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn quiverd");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read stdout");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    (Proc(child), addr)
}

fn config() -> ClientConfig {
    ClientConfig {
        io_timeout: Some(Duration::from_secs(10)),
        connect_timeout: Duration::from_millis(500),
        ..ClientConfig::default()
    }
}

fn key(i: u64) -> EntityKey {
    EntityKey::String(format!("k{i}"))
}

/// The outcome of one cycle.
struct Cycle {
    failover_ms: f64,
    acked: usize,
    refused: usize,
    lost: usize,
}

fn cycle(quiverd: &str, ttl: &str) -> Result<Cycle, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (_etcd, url) = start_etcd(dir.path());
    let mut nodes: Vec<(Proc, String)> = (1..=3)
        .map(|id| start_node(quiverd, &url, id, ttl))
        .collect();
    let seeds: Vec<String> = nodes.iter().map(|n| n.1.clone()).collect();
    let seed_refs: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let mut c = loop {
        let c = ClusterClient::connect(&seed_refs, config()).map_err(|e| e.to_string())?;
        if c.map()
            .is_some_and(|m| m.map.is_some() && m.nodes.len() == 3)
        {
            break c;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let spec = GroupSpec {
        name: "g".into(),
        key_type: KeyType::String,
        features: vec![FeatureSpec::new("v", FeatureType::I64)],
        ttl_s: None,
        compression: Compression::None,
        allow_non_finite: false,
        description: String::new(),
        owner: String::new(),
        tags: vec![],
        history: None,
        on_violation: Default::default(),
        quality: Default::default(),
    };
    c.create_group(spec).map_err(|e| e.to_string())?;
    let map = c.map().cloned().expect("map");
    let victim = map.map.as_ref().expect("map").partitions[partition_of(&key(0))].master;
    let victim_addr = map
        .nodes
        .iter()
        .find(|n| n.id == victim)
        .expect("victim")
        .address
        .clone();
    let victim_parts: Arc<std::collections::HashSet<usize>> = Arc::new(
        map.map
            .as_ref()
            .expect("map")
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.master == victim)
            .map(|(i, _)| i)
            .collect(),
    );
    let acked: Arc<Mutex<HashMap<u64, i64>>> = Arc::default();
    let refused = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let recovered: Arc<Mutex<Option<Instant>>> = Arc::default();
    let writers: Vec<_> = (0..WRITERS as u64)
        .map(|w| {
            let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
            let (killed_at, recovered) = (killed_at.clone(), recovered.clone());
            let victim_parts = victim_parts.clone();
            let seeds = seed_refs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            std::thread::spawn(move || {
                let refs: Vec<&str> = seeds.iter().map(String::as_str).collect();
                let mut c = ClusterClient::connect(&refs, config()).expect("connect");
                c.retry.deadline = Duration::ZERO;
                let opts = PutOptions {
                    durability: Some(Durability::Sync),
                    ..PutOptions::default()
                };
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let i = w + WRITERS as u64 * (n % 2_000);
                    n += 1;
                    let value = n as i64;
                    // Only a write sent after the kill shows the partition back in service.
                    let after_kill = killed_at.lock().unwrap().is_some();
                    match c.put("g", key(i), n, vec![("v".into(), Value::I64(value))], opts) {
                        Ok(_) => {
                            acked.lock().unwrap().insert(i, value);
                            if after_kill && victim_parts.contains(&partition_of(&key(i))) {
                                recovered.lock().unwrap().get_or_insert_with(Instant::now);
                            }
                        }
                        Err(e) if retryable(&e) => {
                            *refused.lock().unwrap() += 1;
                            std::thread::sleep(Duration::from_millis(5));
                            let _ = c.refresh();
                        }
                        Err(e) => panic!("write failed for good: {e}"),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let index = nodes
        .iter()
        .position(|n| n.1 == victim_addr)
        .expect("victim node");
    let (mut proc, _) = nodes.remove(index);
    let _ = proc.0.kill();
    *killed_at.lock().unwrap() = Some(Instant::now());
    let _ = proc.0.wait();
    let deadline = Instant::now() + Duration::from_secs(30);
    while recovered.lock().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().map_err(|_| "a writer panicked".to_string())?;
    }
    let killed = killed_at.lock().unwrap().expect("killed");
    let recovered = recovered
        .lock()
        .unwrap()
        .ok_or("no write acknowledged for the dead master's partitions within 30 s")?;
    c.refresh().map_err(|e| e.to_string())?;
    let acked = acked.lock().unwrap().clone();
    let mut lost = 0;
    for (i, want) in &acked {
        let got = c
            .get(key(*i), vec![FeatureRef::new("g", "v")])
            .map_err(|e| e.to_string())?;
        let ok = got[0].status == Status::Present && got[0].value == Value::I64(*want);
        // A later write of the same key may have been applied but refused (not acknowledged):
        // then the value is newer than the acknowledged one, never older.
        let newer = matches!(got[0].value, Value::I64(v) if v > *want);
        if !ok && !newer {
            lost += 1;
        }
    }
    let refused = *refused.lock().unwrap();
    Ok(Cycle {
        failover_ms: recovered.duration_since(killed).as_secs_f64() * 1000.0,
        acked: acked.len(),
        refused,
        lost,
    })
}

fn main() -> ExitCode {
    let mut quiverd = "target/release/quiverd".to_string();
    let mut cycles = 20;
    let mut ttl = "2".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--quiverd" => quiverd = v,
            "--cycles" => cycles = v.parse().expect("--cycles N"),
            "--lease-ttl-s" => ttl = v,
            other => {
                eprintln!("unknown flag {other}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut times = Vec::new();
    let mut failed = false;
    for n in 1..=cycles {
        match cycle(&quiverd, &ttl) {
            Ok(c) => {
                println!(
                    "cycle {n}: failover {:.0} ms, {} keys acknowledged, {} writes refused (retryable), {} acknowledged writes lost",
                    c.failover_ms, c.acked, c.refused, c.lost
                );
                failed |= c.lost > 0;
                times.push(c.failover_ms);
            }
            Err(e) => {
                println!("cycle {n}: FAILED: {e}");
                failed = true;
            }
        }
    }
    times.sort_by(f64::total_cmp);
    if let (Some(p50), Some(max)) = (times.get(times.len() / 2), times.last()) {
        println!(
            "failover over {} cycles (lease TTL {ttl} s): p50 {p50:.0} ms, max {max:.0} ms",
            times.len()
        );
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
