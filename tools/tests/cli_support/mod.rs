//! Helpers shared by the CLI tests: run the real `quiver` binary against a store in a temp dir.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tempfile::TempDir;

/// Size of the data files the tests create.
pub const TEST_DATA_SIZE: &str = "64MiB";

pub fn quiver_bin() -> &'static str {
    env!("CARGO_BIN_EXE_quiver")
}

/// Where `quiver` is pointed: a data file (embedded) or a server address.
pub enum Target {
    Data(PathBuf),
    Addr(String),
}

/// A `quiver` runner over one store.
pub struct Quiver {
    pub dir: TempDir,
    pub target: Target,
}

impl Quiver {
    /// An embedded store in a fresh temp dir.
    pub fn embedded() -> Quiver {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("store").join("test.db");
        Quiver {
            dir,
            target: Target::Data(data),
        }
    }

    pub fn remote(addr: &str) -> Quiver {
        let dir = tempfile::tempdir().expect("temp dir");
        Quiver {
            dir,
            target: Target::Addr(addr.to_string()),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(quiver_bin());
        match &self.target {
            Target::Data(path) => cmd
                .arg("--data")
                .arg(path)
                .args(["--data-size", TEST_DATA_SIZE]),
            Target::Addr(addr) => cmd.args(["--addr", addr]),
        };
        cmd.args(args)
            .env_remove("QUIVER_AUTH_TOKEN")
            .output()
            .expect("run quiver")
    }

    /// Runs and requires exit code 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "quiver {args:?} failed ({:?}):\n{}",
            out.status.code(),
            describe(&out)
        );
        String::from_utf8(out.stdout).expect("stdout is UTF-8")
    }

    /// Runs with `--json`, requires success, parses stdout.
    pub fn json(&self, args: &[&str]) -> Json {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("stdout of {args:?} is not JSON ({e}): {text}"))
    }

    /// Runs, requires exit code `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "quiver {args:?}:\n{}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Creates the group used by most tests: string keys, one feature of every type.
    pub fn create_all_types_group(&self, name: &str) {
        self.ok(&[
            "group",
            "create",
            name,
            "--key-type",
            "string",
            "--feature",
            "flag:bool",
            "--feature",
            "count:i64",
            "--feature",
            "ctr:f32",
            "--feature",
            "ltv:f64",
            "--feature",
            "country:string",
            "--feature",
            "blob:bytes",
            "--feature",
            "emb:f32[3]",
            "--feature",
            "items:list<i64>",
            "--feature",
            "weights:list<f32>",
            "--feature",
            "tags:list<string>",
        ]);
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `value` of feature `name` in a `get --json` document.
pub fn feature<'a>(doc: &'a Json, name: &str) -> &'a Json {
    doc["features"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["feature"] == name))
        .unwrap_or_else(|| panic!("feature {name} missing in {doc}"))
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// One intact record frame found in a data file.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Byte position of the frame in the file.
    pub abs: u64,
    pub group: u32,
    pub lsn: u64,
    pub key: Vec<u8>,
    pub value_len: usize,
    pub tombstone: bool,
}

/// Every intact record frame of a (closed) data file, block by block, as recovery would scan
/// them: used to aim damage at chosen records.
pub fn frames(data: &Path) -> Vec<Frame> {
    use quiver_wal::format::{BlockHeader, Superblock};
    use quiver_wal::scan::{BlockScanner, ScanItem};
    let image = std::fs::read(data).expect("read data file");
    let sb = Superblock::decode(&image).expect("superblock");
    let bb = sb.write_block_bytes as usize;
    let mut out = Vec::new();
    for b in 1..(image.len() / bb) as u32 {
        let block = &image[b as usize * bb..(b as usize + 1) * bb];
        let Some(h) = BlockHeader::decode(block, b, sb.store_id as u64) else {
            continue;
        };
        for item in BlockScanner::new(block, b, h.seq) {
            if let ScanItem::Record { offset, record } = item {
                out.push(Frame {
                    abs: b as u64 * bb as u64 + offset as u64,
                    group: record.header.group,
                    lsn: record.header.lsn,
                    key: record.key.to_vec(),
                    value_len: record.value.len(),
                    tombstone: record.header.is_tombstone(),
                });
            }
        }
    }
    out
}

/// XORs the byte at `at` of a file with `mask`.
pub fn flip_byte(path: &Path, at: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open data file");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read byte");
    b[0] ^= mask;
    f.write_all_at(&b, at).expect("write byte");
    f.sync_all().expect("sync");
}

/// How long quiverd may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The quiverd binary. quiverd belongs to another crate, which cargo does not build for this
/// one's tests: this builds it (`cargo build -p quiver-server --bin quiverd`, into the same
/// target dir), or uses the binary named by the QUIVERD_BIN environment variable.
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

pub struct Daemon {
    pub child: Child,
    pub addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_quiverd(data: &Path, token: Option<&str>) -> Daemon {
    match token {
        Some(token) => start_quiverd_with(data, &["--auth-token", token]),
        None => start_quiverd_with(data, &[]),
    }
}

/// Starts quiverd over `data` with more flags (limits, a token).
pub fn start_quiverd_with(data: &Path, flags: &[&str]) -> Daemon {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(quiverd_bin());
    cmd.arg("--data")
        .arg(data)
        .args(["--size", "64MiB", "--listen", &addr])
        .args(flags);
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
