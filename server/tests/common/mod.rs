//! A real `quiverd` process on an ephemeral loopback port, and helpers shared by the tests.
#![allow(dead_code)]

use quiver_engine::feature::{
    Compression, EntityKey, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Value,
};
use quiver_engine::history::HistoryPolicy;
use quiver_server::client::{Client, ClientConfig};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Quiverd {
    pub child: Child,
    pub addr: String,
}

impl Quiverd {
    /// Starts quiverd with `--listen 127.0.0.1:0` plus `args`, and reads the bound address
    /// from the first line of its stdout.
    pub fn start(args: &[&str]) -> Quiverd {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Quiverd {
        Self::launch(args, env, 1).0
    }

    /// Starts quiverd with `args` plus `--metrics 127.0.0.1:0`; returns it and the address
    /// (host:port) of its metrics endpoint, read from the second line of its stdout.
    pub fn start_with_metrics(args: &[&str]) -> (Quiverd, String) {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--metrics", "127.0.0.1:0"]);
        let (q, lines) = Self::launch(&all, &[], 2);
        let metrics = lines[1]
            .trim()
            .strip_prefix("metrics on http://")
            .and_then(|l| l.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("unexpected second line {:?}", lines[1]))
            .to_owned();
        (q, metrics)
    }

    /// Starts a small memory quiverd with `args` plus `--http 127.0.0.1:0`; returns it and
    /// the address (host:port) of its HTTP API, read from the second line of its stdout.
    /// [`Quiverd::start_with_http`] plus `--metrics 127.0.0.1:0`: returns it, the HTTP API's
    /// address and the metrics endpoint's (quiverd prints the metrics line first).
    pub fn start_with_http_and_metrics(args: &[&str]) -> (Quiverd, String, String) {
        let mut all = vec!["--memory", "--size", "256MiB", "--workers", "2"];
        all.extend_from_slice(&["--engine-threads", "4", "--http", "127.0.0.1:0"]);
        all.extend_from_slice(&["--metrics", "127.0.0.1:0"]);
        all.extend_from_slice(args);
        let (q, lines) = Self::launch(&all, &[], 3);
        let metrics = lines[1]
            .trim()
            .strip_prefix("metrics on http://")
            .and_then(|l| l.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("unexpected second line {:?}", lines[1]))
            .to_owned();
        let http = lines[2]
            .trim()
            .strip_prefix("http on http://")
            .unwrap_or_else(|| panic!("unexpected third line {:?}", lines[2]))
            .to_owned();
        (q, http, metrics)
    }

    pub fn start_with_http(args: &[&str]) -> (Quiverd, String) {
        let mut all = vec!["--memory", "--size", "256MiB", "--workers", "2"];
        all.extend_from_slice(&["--engine-threads", "4", "--http", "127.0.0.1:0"]);
        all.extend_from_slice(args);
        let (q, lines) = Self::launch(&all, &[], 2);
        let http = lines[1]
            .trim()
            .strip_prefix("http on http://")
            .unwrap_or_else(|| panic!("unexpected second line {:?}", lines[1]))
            .to_owned();
        (q, http)
    }

    /// Spawns quiverd and reads the first `lines` lines of its stdout; the first names the
    /// bound address. `QUIVER_TEST_IO=epoll` (or `uring`) gives every quiverd that `--io`
    /// unless the test names one itself: the whole suite against either event loop.
    pub fn launch(args: &[&str], env: &[(&str, &str)], lines: usize) -> (Quiverd, Vec<String>) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiverd"));
        cmd.args(["--listen", "127.0.0.1:0"]).args(args);
        if let Ok(io) = std::env::var("QUIVER_TEST_IO") {
            if !args.contains(&"--io") {
                cmd.args(["--io", &io]);
            }
        }
        cmd.env_remove("QUIVER_AUTH_TOKEN")
            .env_remove("QUIVER_ADMIN_PASSWORD")
            .env("QUIVER_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn quiverd");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let read: Vec<String> = (0..lines)
            .map(|_| {
                let mut line = String::new();
                reader.read_line(&mut line).expect("read quiverd stdout");
                line
            })
            .collect();
        let line = &read[0];
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        (Quiverd { child, addr }, read)
    }

    pub fn memory(extra: &[&str]) -> Quiverd {
        Self::small(&["--memory", "--size", "256MiB"], extra)
    }

    pub fn file(path: &Path, extra: &[&str]) -> Quiverd {
        let p = path.to_str().expect("utf-8 path");
        Self::small(&["--data", p, "--size", "256MiB"], extra)
    }

    /// A quiverd on `store` with 2 workers and 4 engine threads, plus `extra`.
    fn small(store: &[&str], extra: &[&str]) -> Quiverd {
        let mut args = store.to_vec();
        args.extend_from_slice(&["--workers", "2", "--engine-threads", "4"]);
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.addr, test_config()).expect("connect")
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait quiverd") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("quiverd did not exit within 30 s of SIGTERM");
    }
}

impl Drop for Quiverd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The raw HTTP response to `GET path` from the metrics endpoint at `addr`.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

pub fn test_config() -> ClientConfig {
    ClientConfig {
        io_timeout: Some(Duration::from_secs(20)),
        ..ClientConfig::default()
    }
}

pub fn feature(name: &str, ty: FeatureType) -> FeatureSpec {
    FeatureSpec {
        name: name.into(),
        ty,
        description: String::new(),
        owner: String::new(),
        tags: vec![],
        rules: Default::default(),
    }
}

/// A group `name` keyed by string with `n` f32 features f0..f{n-1}.
pub fn f32_group(name: &str, n: usize) -> GroupSpec {
    GroupSpec {
        name: name.into(),
        key_type: KeyType::String,
        features: (0..n)
            .map(|i| feature(&format!("f{i}"), FeatureType::F32))
            .collect(),
        ttl_s: None,
        compression: Compression::None,
        allow_non_finite: false,
        description: String::new(),
        owner: String::new(),
        tags: vec![],
        history: None,
        on_violation: Default::default(),
        quality: Default::default(),
    }
}

/// `spec` keeping history for `retention_s` seconds.
pub fn with_history(spec: GroupSpec, retention_s: u32) -> GroupSpec {
    GroupSpec {
        history: Some(HistoryPolicy::retention(retention_s)),
        ..spec
    }
}

/// Puts `values` of one entity with event time `event_ms`, as if the store had learned them
/// at `write_ms` (a group with history records that time with each version).
pub fn put_at(
    c: &mut Client,
    group: &str,
    key: &EntityKey,
    event_ms: u64,
    write_ms: u64,
    values: &[(&str, Value)],
) {
    let values = values
        .iter()
        .map(|(name, v)| (name.to_string(), v.clone()))
        .collect();
    let options = PutOptions {
        write_time_ms: Some(write_ms),
        ..PutOptions::default()
    };
    c.put(group, key.clone(), event_ms, values, options)
        .expect("put");
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}
