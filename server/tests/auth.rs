//! Auth tokens: required when configured, refused when wrong, never needed on loopback by
//! default; a non-loopback listener without a token is refused at startup.

mod common;

use common::{test_config, Quiverd};
use quiver_server::client::{Client, ClientConfig, ClientError};
use quiver_server::protocol::StatusCode;
use std::process::Command;

fn with_token(token: &str) -> ClientConfig {
    ClientConfig {
        auth_token: Some(token.as_bytes().to_vec()),
        reconnect_attempts: 1,
        ..test_config()
    }
}

#[test]
fn token_from_flag_is_required() {
    let q = Quiverd::memory(&["--auth-token", "s3cret-token"]);
    let mut ok = Client::connect(&q.addr, with_token("s3cret-token")).unwrap();
    ok.ping().unwrap();
    for bad in ["wrong", "s3cret-tokeN", ""] {
        match Client::connect(&q.addr, with_token(bad)) {
            Err(ClientError::Server { status, .. }) => assert_eq!(status, StatusCode::AuthFailed),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("token {bad:?} was accepted"),
        }
    }
    ok.ping().unwrap();
}

#[test]
fn token_from_environment_is_required() {
    let q = Quiverd::start_with_env(
        &["--memory", "--size", "64MiB"],
        &[("QUIVER_AUTH_TOKEN", "from-env")],
    );
    assert!(Client::connect(&q.addr, with_token("from-env")).is_ok());
    let err = Client::connect(&q.addr, with_token("nope"))
        .err()
        .expect("refused");
    assert_eq!(err.status(), Some(StatusCode::AuthFailed));
}

#[test]
fn non_loopback_listener_needs_a_token() {
    let out = Command::new(env!("CARGO_BIN_EXE_quiverd"))
        .args(["--memory", "--size", "64MiB", "--listen", "0.0.0.0:0"])
        .env_remove("QUIVER_AUTH_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without an auth token"), "{stderr}");
    assert!(out.stdout.is_empty(), "it must not have started listening");
}

#[test]
fn token_never_appears_in_logs() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiverd"))
        .args([
            "--memory",
            "--size",
            "64MiB",
            "--listen",
            "127.0.0.1:0",
            "--auth-token",
            "hunter2-unique",
        ])
        .env("QUIVER_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let _ = Client::connect(&addr, with_token("hunter2-wrong"));
    Client::connect(&addr, with_token("hunter2-unique"))
        .unwrap()
        .ping()
        .unwrap();
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains("handshake refused"), "{logs}");
    assert!(!logs.contains("hunter2"), "a token leaked into the logs");
}
