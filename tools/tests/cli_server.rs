//! End-to-end tests of `quiver` against a real quiverd process.
//!
//! quiverd is a binary of another crate, which cargo does not build for this one's tests: the
//! test builds it (`cargo build -p quiver-server --bin quiverd`, into the same target dir), or
//! uses the binary named by the QUIVERD_BIN environment variable.

mod cli_support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{feature, Quiver};

/// How long quiverd may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn quiverd_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("QUIVERD_BIN") {
        return PathBuf::from(path);
    }
    let quiver = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let profile_dir = quiver.parent().expect("quiver has a folder");
    let target_dir = profile_dir
        .parent()
        .expect("the profile folder has a parent");
    let mut build = Command::new(env!("CARGO"));
    build
        .args([
            "build",
            "-p",
            "quiver-server",
            "--bin",
            "quiverd",
            "--target-dir",
        ])
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build for quiverd");
    assert!(
        status.success(),
        "cargo build -p quiver-server --bin quiverd failed"
    );
    profile_dir.join("quiverd")
}

struct Daemon {
    child: Child,
    addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_quiverd(data: &Path, token: Option<&str>) -> Daemon {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(quiverd_bin());
    cmd.arg("--data")
        .arg(data)
        .args(["--size", "64MiB", "--listen", &addr]);
    if let Some(token) = token {
        cmd.args(["--auth-token", token]);
    }
    let child = cmd
        .env_remove("QUIVER_AUTH_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start quiverd");
    let daemon = Daemon { child, addr };
    let start = Instant::now();
    while TcpStream::connect(&daemon.addr).is_err() {
        assert!(
            start.elapsed() < START_TIMEOUT,
            "quiverd did not listen on {} in time",
            daemon.addr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

#[test]
fn every_command_against_quiverd() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_quiverd(&dir.path().join("server.db"), None);
    let q = Quiver::remote(&daemon.addr);
    assert_eq!(q.json(&["ping"])["ok"], true);
    q.create_all_types_group("g");
    assert_eq!(q.json(&["group", "list"])["groups"][0]["name"], "g");
    q.ok(&[
        "group",
        "alter",
        "g",
        "--add-feature",
        "extra:i64",
        "--ttl",
        "1d",
    ]);
    assert_eq!(q.json(&["group", "describe", "g"])["ttl_s"], 86_400);
    q.ok(&["put", "g", "u1", "count=5", "emb=[1,2,3]", "country=de"]);
    // The group's TTL (1d) makes a value with a 1970 event time read as expired.
    q.ok(&["put", "g", "old", "count=1", "--ts", "1000"]);
    assert_eq!(
        feature(&q.json(&["get", "g", "old", "count"]), "count")["status"],
        "EXPIRED"
    );
    let got = q.json(&["get", "g", "u1", "count", "emb"]);
    assert_eq!(feature(&got, "count")["value"], 5);
    assert_eq!(
        feature(&got, "emb")["value"],
        serde_json::json!([1.0, 2.0, 3.0])
    );
    assert_eq!(
        feature(
            &q.json(&["get", "--entity", "u1", "g:country"]),
            "g:country"
        )["value"],
        "de"
    );
    let err = q.fails(&["put", "g", "u1", "count=x"], 7);
    assert!(err.contains("expected i64"), "{err}");
    q.fails(&["get", "nope", "u1"], 6);

    let mut csv = String::from("entity,count,ctr\n");
    for i in 0..3000 {
        csv.push_str(&format!("e{i},{i},0.5\n"));
    }
    csv.push_str("bad,notanumber,0.5\n");
    let file = q.write("rows.csv", &csv);
    let report = q.json(&["load", "g", file.to_str().unwrap()]);
    assert_eq!(report["rows_written"], 3000, "{report}");
    assert_eq!(report["rows_rejected"], 1, "{report}");
    assert_eq!(
        feature(&q.json(&["get", "g", "e2999", "count"]), "count")["value"],
        2999
    );

    let out = q.path("out.parquet");
    assert_eq!(
        q.json(&["export", "g", out.to_str().unwrap()])["rows"],
        3001
    );
    assert_eq!(q.json(&["delete", "g", "u1"])["existed"], true);
    assert!(q.json(&["stats"]).is_object());
    q.ok(&["demo", "--entities", "200"]);
    q.ok(&["group", "drop", "g"]);
    q.fails(&["group", "describe", "g"], 6);
}

#[test]
fn auth_token_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_quiverd(&dir.path().join("auth.db"), Some("s3cret-token"));
    let q = Quiver::remote(&daemon.addr);
    let err = q.fails(&["ping"], 5);
    assert!(err.contains("refused the auth token"), "{err}");
    let ok = Command::new(cli_support::quiver_bin())
        .args(["--addr", &daemon.addr, "ping"])
        .env("QUIVER_AUTH_TOKEN", "s3cret-token")
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", cli_support::describe(&ok));
    q.ok(&["--auth-token", "s3cret-token", "ping"]);
}
