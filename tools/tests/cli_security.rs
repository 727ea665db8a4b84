//! `quiver user`, `quiver role` and `quiver whoami` against a real quiverd with users, and
//! the exit code of a refused command.

mod cli_support;

use cli_support::{quiver_bin, start_quiverd_with, Quiver};
use std::io::Write;
use std::process::{Command, Stdio};

/// `quiver --addr A --user U --password P ARGS`, the new password (if any) on stdin.
fn as_user(
    addr: &str,
    user: &str,
    password: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut child = Command::new(quiver_bin())
        .args([
            "--addr",
            addr,
            "--user",
            user,
            "--password",
            password,
            "--json",
        ])
        .args(args)
        .env_remove("QUIVER_AUTH_TOKEN")
        .env_remove("QUIVER_NEW_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn users_roles_and_whoami_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_quiverd_with(
        &dir.path().join("s.db"),
        &["--admin-password", "admin-pw-123"],
    );
    let admin = |args: &[&str], stdin: Option<&str>| {
        as_user(&daemon.addr, "admin", "admin-pw-123", args, stdin)
    };
    ok(admin(
        &[
            "group",
            "create",
            "clicks",
            "--key-type",
            "string",
            "--feature",
            "n:i64",
        ],
        None,
    ));
    ok(admin(&["role", "create", "readers"], None));
    ok(admin(
        &["role", "grant", "readers", "read", "group:clicks"],
        None,
    ));
    ok(admin(
        &["user", "create", "nora", "--role", "readers"],
        Some("nora-pw-123\n"),
    ));
    let users = ok(admin(&["user", "list"], None));
    let listed = users.to_string();
    assert!(
        listed.contains("nora") && !listed.contains("argon2"),
        "{listed}"
    );
    let roles = ok(admin(&["role", "list"], None));
    assert_eq!(
        roles["roles"][1]["grants"][0]["scope"], "group:clicks",
        "{roles}"
    );

    let nora = |args: &[&str]| as_user(&daemon.addr, "nora", "nora-pw-123", args, None);
    let me = ok(nora(&["whoami"]));
    assert_eq!(
        (me["user"].as_str(), me["roles"][0].as_str()),
        (Some("nora"), Some("readers"))
    );
    ok(nora(&["get", "clicks", "k1"]));
    let denied = nora(&["put", "clicks", "k1", "n=1"]);
    assert_eq!(
        denied.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    assert!(String::from_utf8_lossy(&denied.stdout).contains("clicks"));
    let refused = as_user(&daemon.addr, "nora", "wrong-pw-123", &["ping"], None);
    assert_eq!(refused.status.code(), Some(5));

    ok(admin(
        &["role", "revoke", "readers", "read", "group:clicks"],
        None,
    ));
    assert_eq!(nora(&["get", "clicks", "k1"]).status.code(), Some(11));
    let bad = admin(&["role", "grant", "readers", "peek", "group:clicks"], None);
    assert_eq!(bad.status.code(), Some(2));
    ok(admin(&["user", "drop", "nora"], None));
    // Users need quiverd: an in-process store has none.
    Quiver::embedded().fails(&["whoami"], 2);
}
