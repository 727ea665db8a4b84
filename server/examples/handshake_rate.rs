//! Connections per second a quiverd accepts and authenticates: each one connects, speaks
//! TLS when `--ca` is given, sends HANDSHAKE with `--token`, waits for the answer and closes.
//! Used by scripts/bench-security.sh (docs/BENCHMARKS.md, "Security").
//!
//!     handshake_rate ADDR [--ca FILE] [--token TOKEN] [--threads N] [--secs S]

use quiver_server::client::{Client, ClientConfig};
use quiver_server::tls::{client_config, ClientTlsFiles};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(addr) = args.first().cloned() else {
        eprintln!(
            "usage: handshake_rate ADDR [--ca FILE] [--token TOKEN] [--threads N] [--secs S]"
        );
        std::process::exit(2);
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let threads: usize = flag("--threads").map_or(4, |v| v.parse().expect("--threads N"));
    let secs: u64 = flag("--secs").map_or(5, |v| v.parse().expect("--secs S"));
    let tls = flag("--ca").map(|ca| {
        let files = ClientTlsFiles {
            ca: Some(ca.into()),
            cert_key: None,
        };
        client_config(&files).expect("CA file")
    });
    let config = ClientConfig {
        auth_token: flag("--token").map(String::into_bytes),
        tls,
        reconnect_attempts: 1,
        ..ClientConfig::default()
    };
    let (done, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (addr, config, done, stop) =
                (addr.clone(), config.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match Client::connect(&addr, config.clone()) {
                        Ok(c) => {
                            drop(c);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("handshake failed: {e}");
                            std::process::exit(1);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    workers.into_iter().for_each(|w| w.join().expect("worker"));
    let n = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "handshakes {n} in {elapsed:.2} s: {:.0}/s",
        n as f64 / elapsed
    );
}
