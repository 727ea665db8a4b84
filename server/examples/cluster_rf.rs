//! Closed-loop load through the cluster client, for comparing replication factors on one
//! machine (`scripts/cluster-rf.sh` starts etcd and three nodes at RF 1, then RF 2, and runs
//! this against each in turn).
//!
//! ```text
//! cargo run --release -p quiver-server --example cluster_rf -- \
//!     --seeds 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --threads 16 --seconds 5
//! ```
//!
//! Loads `--keys` entities of 10 f32 features (buffered puts), then runs, for `--seconds`
//! each, gets of the 10 features, buffered puts and sync puts of random keys from `--threads`
//! threads, each with its own `ClusterClient` (one request in flight per thread, routed to
//! the key's master). Prints one line per workload:
//! `workload NAME ops_per_s R p50_us P p99_us Q errors E`.

use clap::Parser;
use hdrhistogram::Histogram;
use quiver_engine::feature::{
    EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Value,
};
use quiver_engine::Durability;
use quiver_server::client::{Client, ClientConfig, ClusterClient};
use quiver_server::protocol::{Request, Response, StatusCode};
use std::time::{Duration, Instant};

const FEATURES: usize = 10;
const GROUP: &str = "rf";

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Node addresses, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    seeds: Vec<String>,
    /// Client threads, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Entities loaded first and then read and written uniformly at random.
    #[arg(long, default_value_t = 20_000)]
    keys: usize,
    /// Seconds to wait for every node to hold the first partition map.
    #[arg(long, default_value_t = 60)]
    wait_s: u64,
}

#[derive(Clone, Copy, Debug)]
enum Workload {
    Read,
    Buffered,
    Sync,
}

/// xorshift64*: a tiny deterministic generator, so no extra dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

fn key(i: usize) -> EntityKey {
    EntityKey::String(format!("e:{i}"))
}

fn refs() -> Vec<FeatureRef> {
    (0..FEATURES)
        .map(|i| FeatureRef::new(GROUP, format!("f{i}")))
        .collect()
}

fn values(v: f32) -> Vec<(String, Value)> {
    (0..FEATURES)
        .map(|i| (format!("f{i}"), Value::F32(v + i as f32)))
        .collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn client(args: &Args) -> ClusterClient {
    let seeds: Vec<&str> = args.seeds.iter().map(String::as_str).collect();
    ClusterClient::connect(&seeds, ClientConfig::default()).unwrap_or_else(|e| {
        eprintln!("cannot reach the cluster at {:?}: {e}", args.seeds);
        std::process::exit(1)
    })
}

/// Waits until every seed answers CLUSTER_MAP with a map in which every partition has all
/// its copies and no copy is under way; returns the replication factor.
fn wait_for_map(args: &Args) -> u8 {
    let deadline = Instant::now() + Duration::from_secs(args.wait_s);
    loop {
        let maps: Vec<_> = args
            .seeds
            .iter()
            .map(|addr| {
                let mut c = Client::connect(addr, ClientConfig::default()).ok()?;
                match c.call(&Request::ClusterMap).ok()? {
                    Response::ClusterMap(info) => info.map,
                    _ => None,
                }
            })
            .collect();
        if let Some(Some(first)) = maps.first() {
            let rf = usize::from(first.replication_factor);
            let complete = first.migrations() == 0
                && first.partitions.iter().all(|p| p.copies().count() == rf);
            let same = maps
                .iter()
                .all(|m| m.as_ref().is_some_and(|m| m.version == first.version));
            if complete && same {
                return first.replication_factor;
            }
        }
        if Instant::now() > deadline {
            eprintln!(
                "no complete partition map on every node after {} s",
                args.wait_s
            );
            std::process::exit(1)
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create_group(args: &Args) {
    let features = (0..FEATURES)
        .map(|i| FeatureSpec::new(format!("f{i}"), FeatureType::F32))
        .collect();
    let spec = GroupSpec::new(GROUP, KeyType::String, features);
    match client(args).create_group(spec) {
        Ok(_) => {}
        Err(e) if e.status() == Some(StatusCode::GroupExists) => {}
        Err(e) => {
            eprintln!("cannot create group {GROUP}: {e}");
            std::process::exit(1)
        }
    }
}

fn load(args: &Args) {
    std::thread::scope(|s| {
        for t in 0..args.threads {
            s.spawn(move || {
                let mut c = client(args);
                for i in (t..args.keys).step_by(args.threads) {
                    let opts = PutOptions {
                        durability: Some(Durability::Buffered),
                        ..PutOptions::default()
                    };
                    if let Err(e) = c.put(GROUP, key(i), now_ms(), values(i as f32), opts) {
                        eprintln!("load of key {i} failed: {e}");
                        std::process::exit(1)
                    }
                }
            });
        }
    });
}

/// Runs `w` from every thread for `--seconds`; (ops/s, latency histogram in us, errors).
fn measure(args: &Args, w: Workload) -> (f64, Histogram<u64>, u64) {
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let results: Vec<(u64, Histogram<u64>, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                s.spawn(move || {
                    let mut c = client(args);
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1) << 17);
                    let mut hist = Histogram::<u64>::new(3).expect("histogram");
                    let (mut ops, mut errors) = (0u64, 0u64);
                    let features = refs();
                    while Instant::now() < end {
                        let k = key(rng.below(args.keys));
                        let sent = Instant::now();
                        let r = match w {
                            Workload::Read => c.get(k, features.clone()).map(drop),
                            Workload::Buffered | Workload::Sync => {
                                let opts = PutOptions {
                                    durability: Some(if matches!(w, Workload::Sync) {
                                        Durability::Sync
                                    } else {
                                        Durability::Buffered
                                    }),
                                    ..PutOptions::default()
                                };
                                c.put(GROUP, k, now_ms(), values(ops as f32), opts)
                                    .map(drop)
                            }
                        };
                        match r {
                            Ok(()) => {
                                ops += 1;
                                let us = sent.elapsed().as_micros() as u64;
                                hist.record(us.max(1)).expect("latency in range");
                            }
                            Err(_) => errors += 1,
                        }
                    }
                    (ops, hist, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a load thread panicked"))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let (mut ops, mut errors) = (0, 0);
    for (o, h, e) in results {
        ops += o;
        errors += e;
        hist.add(h).expect("same bounds");
    }
    (ops as f64 / elapsed, hist, errors)
}

fn main() {
    let args = Args::parse();
    if args.threads == 0 || args.keys == 0 || args.seconds == 0 {
        eprintln!("--threads, --keys and --seconds must be at least 1");
        std::process::exit(2)
    }
    let rf = wait_for_map(&args);
    create_group(&args);
    load(&args);
    println!(
        "replication_factor {rf} nodes {} threads {} keys {} seconds {}",
        args.seeds.len(),
        args.threads,
        args.keys,
        args.seconds
    );
    for (name, w) in [
        ("read", Workload::Read),
        ("buffered", Workload::Buffered),
        ("sync", Workload::Sync),
    ] {
        let (rate, hist, errors) = measure(&args, w);
        println!(
            "workload {name} ops_per_s {rate:.0} p50_us {} p99_us {} errors {errors}",
            hist.value_at_quantile(0.5),
            hist.value_at_quantile(0.99)
        );
    }
}
