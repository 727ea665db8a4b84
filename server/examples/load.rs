//! Load generator: 10-feature gets against quiverd, and optionally HMGET of 10 fields against
//! Redis, measured the same way in one run (A, B, A, B).
//!
//! ```text
//! cargo run --release -p quiver-server --example load -- \
//!     --quiver 127.0.0.1:7878 --redis 127.0.0.1:6399 --connections 50 --depth 16 --seconds 10
//! ```
//!
//! Each connection runs closed-loop windows: send `depth` requests, then read their `depth`
//! responses; a request's latency runs from the start of its window's send to the arrival of
//! its response. Both targets hold `--keys` entities of 10 f32 features.

use clap::Parser;
use hdrhistogram::Histogram;
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Value};
use quiver_server::client::{Client, ClientConfig};
use quiver_server::protocol::{Request, Response, StatusCode};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FEATURES: usize = 10;
const GROUP: &str = "bench";

#[derive(Parser, Debug, Clone)]
struct Args {
    /// quiverd address.
    #[arg(long, default_value = "127.0.0.1:7878")]
    quiver: String,
    /// Redis address; when given, Redis is measured too, alternating with quiverd.
    #[arg(long)]
    redis: Option<String>,
    #[arg(long, default_value_t = 50)]
    connections: usize,
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Seconds per measured round.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Entities loaded and read (uniformly at random).
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    /// Rounds per target (A,B,A,B...).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Skip loading data (already loaded).
    #[arg(long)]
    no_load: bool,
}

struct Outcome {
    ops: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

impl Outcome {
    fn report(&self, name: &str) -> (f64, u64) {
        let rate = self.ops as f64 / self.elapsed.as_secs_f64();
        let (p50, p99, p999) = (
            self.hist.value_at_quantile(0.5),
            self.hist.value_at_quantile(0.99),
            self.hist.value_at_quantile(0.999),
        );
        println!(
            "{name:>7}: {rate:>10.0} ops/s  p50 {p50:>6} us  p99 {p99:>6} us  p99.9 {p999:>6} us"
        );
        (rate, p99)
    }
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

fn refs() -> Vec<FeatureRef> {
    (0..FEATURES)
        .map(|i| FeatureRef {
            group: GROUP.into(),
            feature: format!("f{i}"),
        })
        .collect()
}

fn load_quiver(args: &Args) {
    let mut c = Client::connect(&args.quiver, ClientConfig::default()).expect("connect quiverd");
    let spec = quiver_engine::feature::GroupSpec {
        name: GROUP.into(),
        key_type: quiver_engine::feature::KeyType::String,
        features: (0..FEATURES)
            .map(|i| {
                quiver_engine::feature::FeatureSpec::new(
                    format!("f{i}"),
                    quiver_engine::feature::FeatureType::F32,
                )
            })
            .collect(),
        ttl_s: None,
        compression: quiver_engine::feature::Compression::None,
        allow_non_finite: false,
        description: String::new(),
        owner: String::new(),
        tags: vec![],
        history: None,
        on_violation: Default::default(),
        quality: Default::default(),
    };
    match c.create_group(spec) {
        Ok(_) => {}
        Err(e) if e.status() == Some(StatusCode::GroupExists) => {}
        Err(e) => panic!("create group: {e}"),
    }
    for chunk in (0..args.keys).collect::<Vec<_>>().chunks(256) {
        let ids: Vec<u64> = chunk
            .iter()
            .map(|&k| {
                let values = (0..FEATURES)
                    .map(|i| (format!("f{i}"), Value::F32((k * FEATURES + i) as f32)))
                    .collect();
                let req = Request::Put {
                    group: GROUP.into(),
                    key: EntityKey::String(format!("user:{k}")),
                    event_time_ms: 1,
                    options: PutOptions::default(),
                    values,
                };
                c.send(&req).expect("send put")
            })
            .collect();
        for id in ids {
            c.wait(id).expect("put");
        }
    }
}

fn quiver_worker(args: &Args, stop: &AtomicBool, seed: u64) -> (u64, Histogram<u64>) {
    let mut c = Client::connect(&args.quiver, ClientConfig::default()).expect("connect quiverd");
    let features = refs();
    let mut rng = Rng(seed | 1);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut ops = 0;
    let mut ids = Vec::with_capacity(args.depth);
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        ids.clear();
        for _ in 0..args.depth {
            let key = EntityKey::String(format!("user:{}", rng.below(args.keys)));
            ids.push(
                c.send(&Request::Get {
                    key,
                    features: features.clone(),
                })
                .expect("send get"),
            );
        }
        for &id in &ids {
            match c.wait(id).expect("get") {
                Response::Get(v) => assert_eq!(v.len(), FEATURES),
                other => panic!("unexpected {other:?}"),
            }
            hist.saturating_record(start.elapsed().as_micros() as u64);
            ops += 1;
        }
    }
    (ops, hist)
}

/// A minimal RESP client: just what HSET and HMGET need.
struct Resp {
    out: TcpStream,
    input: BufReader<TcpStream>,
    line: String,
}

impl Resp {
    fn connect(addr: &str) -> Resp {
        let s = TcpStream::connect(addr).expect("connect redis");
        s.set_nodelay(true).expect("nodelay");
        Resp {
            input: BufReader::new(s.try_clone().expect("clone socket")),
            out: s,
            line: String::new(),
        }
    }

    fn command(buf: &mut Vec<u8>, parts: &[&[u8]]) {
        write!(buf, "*{}\r\n", parts.len()).expect("vec write");
        for p in parts {
            write!(buf, "${}\r\n", p.len()).expect("vec write");
            buf.extend_from_slice(p);
            buf.extend_from_slice(b"\r\n");
        }
    }

    fn read_line(&mut self) -> &str {
        self.line.clear();
        self.input.read_line(&mut self.line).expect("redis read");
        assert!(!self.line.is_empty(), "redis closed the connection");
        self.line.trim_end()
    }

    /// Reads one reply and returns the number of array elements (or 1 for a simple reply).
    fn read_reply(&mut self) -> usize {
        let line = self.read_line().to_owned();
        match line.as_bytes()[0] {
            b'*' => {
                let n: usize = line[1..].parse().expect("array length");
                for _ in 0..n {
                    self.read_bulk();
                }
                n
            }
            b'-' => panic!("redis error: {line}"),
            _ => 1,
        }
    }

    fn read_bulk(&mut self) {
        let line = self.read_line().to_owned();
        let len: i64 = line[1..].parse().expect("bulk length");
        if len >= 0 {
            let mut data = vec![0u8; len as usize + 2];
            self.input.read_exact(&mut data).expect("bulk data");
        }
    }
}

fn load_redis(addr: &str, keys: usize) {
    let mut r = Resp::connect(addr);
    for chunk in (0..keys).collect::<Vec<_>>().chunks(256) {
        let mut buf = Vec::new();
        for &k in chunk {
            let key = format!("user:{k}");
            let fields: Vec<(String, String)> = (0..FEATURES)
                .map(|i| (format!("f{i}"), ((k * FEATURES + i) as f32).to_string()))
                .collect();
            let mut parts: Vec<&[u8]> = vec![b"HSET", key.as_bytes()];
            for (f, v) in &fields {
                parts.push(f.as_bytes());
                parts.push(v.as_bytes());
            }
            Resp::command(&mut buf, &parts);
        }
        r.out.write_all(&buf).expect("redis write");
        for _ in chunk {
            r.read_reply();
        }
    }
}

fn redis_worker(addr: &str, args: &Args, stop: &AtomicBool, seed: u64) -> (u64, Histogram<u64>) {
    let mut r = Resp::connect(addr);
    let fields: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    let mut rng = Rng(seed | 1);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut ops = 0;
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        buf.clear();
        for _ in 0..args.depth {
            let key = format!("user:{}", rng.below(args.keys));
            let mut parts: Vec<&[u8]> = vec![b"HMGET", key.as_bytes()];
            parts.extend(fields.iter().map(|f| f.as_bytes()));
            Resp::command(&mut buf, &parts);
        }
        r.out.write_all(&buf).expect("redis write");
        for _ in 0..args.depth {
            assert_eq!(r.read_reply(), FEATURES);
            hist.saturating_record(start.elapsed().as_micros() as u64);
            ops += 1;
        }
    }
    (ops, hist)
}

fn measure(args: &Args, redis: Option<&str>) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..args.connections)
        .map(|i| {
            let (args, stop, redis) = (args.clone(), stop.clone(), redis.map(str::to_owned));
            std::thread::spawn(move || match redis {
                Some(addr) => redis_worker(&addr, &args, &stop, 0x9E37_79B9 + i as u64),
                None => quiver_worker(&args, &stop, 0x9E37_79B9 + i as u64),
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut ops = 0;
    for t in threads {
        let (n, h) = t.join().expect("worker thread");
        ops += n;
        hist.add(&h).expect("same histogram bounds");
    }
    Outcome {
        ops,
        elapsed: start.elapsed(),
        hist,
    }
}

fn main() {
    let args = Args::parse();
    if !args.no_load {
        load_quiver(&args);
        if let Some(redis) = &args.redis {
            load_redis(redis, args.keys);
        }
        println!("loaded {} entities of {FEATURES} f32 features", args.keys);
    }
    println!(
        "connections {}, pipeline depth {}, {} s per round",
        args.connections, args.depth, args.seconds
    );
    let mut quiver = Vec::new();
    let mut redis = Vec::new();
    for _ in 0..args.rounds {
        quiver.push(measure(&args, None).report("quiver"));
        if let Some(addr) = &args.redis {
            redis.push(measure(&args, Some(addr)).report("redis"));
        }
    }
    if !redis.is_empty() {
        let mean = |v: &[(f64, u64)]| v.iter().map(|x| x.0).sum::<f64>() / v.len() as f64;
        let p99 = |v: &[(f64, u64)]| v.iter().map(|x| x.1).max().unwrap_or(0);
        println!(
            "ratio quiver/redis: throughput {:.2}x, worst p99 {} us vs {} us",
            mean(&quiver) / mean(&redis),
            p99(&quiver),
            p99(&redis)
        );
    }
}
