//! Users, roles and grants over real TCP: each permission allowed and denied for each
//! operation, grants by tag following a group that gains the tag, revocation on open
//! connections, users surviving restart and crash, the failed-login limit, the audit log, and
//! no password hash in logs, stats or errors.

mod common;

use common::{f32_group, now_ms, test_config, Quiverd};
use quiver_engine::feature::{Alter, EntityKey, FeatureRef, PutOptions, Value};
use quiver_engine::history::AsOf;
use quiver_server::client::{Client, ClientConfig, ClientError};
use quiver_server::protocol::{
    Grant, HistoryKeysRequest, Permission, Request, Scope, SecurityReply, SecurityRequest,
    StatusCode, TrainingSetRequest,
};
use std::path::Path;

const ADMIN_PW: &str = "admin-password-1";

fn login(addr: &str, user: &str, password: &str) -> Result<Client, ClientError> {
    let config = ClientConfig {
        auth_token: Some(format!("{user}:{password}").into_bytes()),
        reconnect_attempts: 1,
        ..test_config()
    };
    Client::connect(addr, config)
}

fn admin(addr: &str) -> Client {
    login(addr, "admin", ADMIN_PW).expect("admin logs in")
}

fn sec(c: &mut Client, req: SecurityRequest) -> SecurityReply {
    c.security(req).expect("security command")
}

/// A role `role` with one grant, held by a new user `user` (password `user` + "-password").
fn user_with(c: &mut Client, user: &str, role: &str, permission: Permission, scope: Scope) {
    sec(c, SecurityRequest::RoleCreate { name: role.into() });
    let grant = Grant { permission, scope };
    sec(
        c,
        SecurityRequest::RoleGrant {
            role: role.into(),
            grant,
        },
    );
    let password = format!("{user}-password");
    let roles = vec![role.to_string()];
    sec(
        c,
        SecurityRequest::UserCreate {
            name: user.into(),
            password,
            roles,
        },
    );
}

fn as_user(addr: &str, user: &str) -> Client {
    login(addr, user, &format!("{user}-password")).expect("user logs in")
}

fn denied<T: std::fmt::Debug>(r: Result<T, ClientError>, group: &str) {
    let err = r.expect_err("must be refused");
    assert_eq!(err.status(), Some(StatusCode::PermissionDenied), "{err}");
    assert!(err.to_string().contains(&format!("'{group}'")), "{err}");
}

fn key(s: &str) -> EntityKey {
    EntityKey::String(s.into())
}

fn put(c: &mut Client, group: &str) -> Result<(), ClientError> {
    let values = vec![("f0".to_string(), Value::F32(1.0))];
    c.put(group, key("k"), now_ms(), values, PutOptions::default())
        .map(|_| ())
}

fn get(c: &mut Client, group: &str) -> Result<(), ClientError> {
    c.get(key("k"), vec![FeatureRef::new(group, "f0")])
        .map(|_| ())
}

fn tagged(name: &str, tags: &[&str]) -> quiver_engine::feature::GroupSpec {
    let mut spec = f32_group(name, 1);
    spec.tags = tags.iter().map(|t| t.to_string()).collect();
    spec
}

fn start(extra: &[&str]) -> Quiverd {
    let mut args = vec!["--admin-password", ADMIN_PW];
    args.extend_from_slice(extra);
    Quiverd::memory(&args)
}

#[test]
fn each_permission_is_allowed_and_denied_per_operation() {
    let q = start(&[]);
    let mut a = admin(&q.addr);
    a.create_group(tagged("clicks", &[])).unwrap();
    a.create_group(tagged("users", &["pii"])).unwrap();
    put(&mut a, "clicks").unwrap();
    put(&mut a, "users").unwrap();
    let clicks = || Scope::Group("clicks".into());
    user_with(&mut a, "rita", "readers", Permission::Read, clicks());
    user_with(&mut a, "walt", "writers", Permission::Write, clicks());
    user_with(&mut a, "adam", "owners", Permission::Admin, clicks());
    user_with(
        &mut a,
        "nora",
        "nothing",
        Permission::Read,
        Scope::Group("none".into()),
    );
    let (mut r, mut w) = (as_user(&q.addr, "rita"), as_user(&q.addr, "walt"));
    let (mut o, mut n) = (as_user(&q.addr, "adam"), as_user(&q.addr, "nora"));

    // Reads: GET, GET_MANY, GET_AS_OF, SCAN, HISTORY_KEYS, TRAINING_SET.
    for c in [&mut r, &mut w, &mut o] {
        get(c, "clicks").unwrap();
        c.scan_all("clicks", 100).unwrap();
    }
    denied(get(&mut n, "clicks"), "clicks");
    denied(n.scan_all("clicks", 100), "clicks");
    let at = AsOf::event_time(now_ms());
    denied(
        n.get_as_of(key("k"), at, vec![FeatureRef::new("clicks", "f0")]),
        "clicks",
    );
    let keys = Request::HistoryKeys(HistoryKeysRequest {
        group: "clicks".into(),
        cursor: None,
        max_records: 10,
    });
    denied(n.call(&keys), "clicks");
    let training = Request::TrainingSet(TrainingSetRequest {
        features: vec![FeatureRef::new("users", "f0")],
        mode: quiver_engine::training::TimeMode::EventTime,
        first_row: 0,
        timestamps_ms: vec![now_ms()],
        known_at_ms: None,
        key_columns: vec![("users".into(), vec![Some(key("k"))])],
    });
    denied(r.call(&training), "users");
    // A multi-group read naming one group it may not read is refused whole, naming it.
    let both = vec![
        FeatureRef::new("clicks", "f0"),
        FeatureRef::new("users", "f0"),
    ];
    denied(r.get(key("k"), both.clone()), "users");
    denied(r.get_many(vec![key("k")], both.clone()), "users");
    a.get(key("k"), both).unwrap();

    // Writes: PUT and DELETE need write; read is not enough.
    denied(put(&mut r, "clicks"), "clicks");
    denied(r.delete("clicks", key("k"), None), "clicks");
    put(&mut w, "clicks").unwrap();
    put(&mut o, "clicks").unwrap();
    denied(put(&mut w, "users"), "users");

    // Admin operations on a group: alter, drop, create.
    let alter = || Alter::SetDescription("x".into());
    denied(w.alter_group("clicks", alter()), "clicks");
    o.alter_group("clicks", alter()).unwrap();
    denied(w.create_group(tagged("fresh", &[])), "fresh");
    denied(o.create_group(tagged("fresh", &[])), "fresh");
    denied(w.drop_group("clicks"), "clicks");

    // Users and roles: global admin only; whoami for all.
    let create = SecurityRequest::UserCreate {
        name: "mallory".into(),
        password: "mallory-password".into(),
        roles: vec!["owners".into()],
    };
    let err = o
        .security(create.clone())
        .expect_err("only a global admin creates users");
    assert_eq!(err.status(), Some(StatusCode::PermissionDenied));
    a.security(create).unwrap();
    match sec(&mut r, SecurityRequest::Whoami) {
        SecurityReply::Whoami {
            user,
            roles,
            grants,
        } => {
            assert_eq!(
                (user.as_str(), roles),
                ("rita", vec!["readers".to_string()])
            );
            assert_eq!(
                grants,
                vec![Grant {
                    permission: Permission::Read,
                    scope: clicks()
                }]
            );
        }
        other => panic!("{other:?}"),
    }
    // A user changes their own password, not another's.
    let own = SecurityRequest::UserPasswd {
        name: "rita".into(),
        password: "rita-new-password".into(),
    };
    sec(&mut r, own);
    let other = SecurityRequest::UserPasswd {
        name: "walt".into(),
        password: "stolen-password".into(),
    };
    assert_eq!(
        r.security(other).unwrap_err().status(),
        Some(StatusCode::PermissionDenied)
    );
    login(&q.addr, "rita", "rita-new-password").unwrap();
    o.drop_group("clicks").unwrap();
}

#[test]
fn sensitive_groups_are_hidden_from_users_who_cannot_read_them() {
    let q = start(&[]);
    let mut a = admin(&q.addr);
    a.create_group(tagged("secret", &["sensitive"])).unwrap();
    a.create_group(tagged("open", &[])).unwrap();
    user_with(
        &mut a,
        "nora",
        "openers",
        Permission::Read,
        Scope::Group("open".into()),
    );
    user_with(
        &mut a,
        "sam",
        "secrets",
        Permission::Read,
        Scope::Group("secret".into()),
    );
    let names = |c: &mut Client| -> Vec<String> {
        c.list_groups(None)
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect()
    };
    assert_eq!(names(&mut as_user(&q.addr, "nora")), vec!["open"]);
    assert_eq!(names(&mut as_user(&q.addr, "sam")), vec!["secret", "open"]);
    assert_eq!(names(&mut a), vec!["secret", "open"]);
    denied(as_user(&q.addr, "nora").describe_group("secret"), "secret");
    as_user(&q.addr, "nora").describe_group("open").unwrap();
}

#[test]
fn tag_grants_follow_groups_and_revocation_reaches_open_connections() {
    let q = start(&[]);
    let mut a = admin(&q.addr);
    a.create_group(tagged("later", &[])).unwrap();
    put(&mut a, "later").unwrap();
    user_with(
        &mut a,
        "pia",
        "pii_readers",
        Permission::Read,
        Scope::Tag("pii".into()),
    );
    let mut p = as_user(&q.addr, "pia");
    denied(get(&mut p, "later"), "later");
    // The group gains the tag: the same open connection may now read it.
    a.alter_group("later", Alter::SetTags(vec!["pii".into()]))
        .unwrap();
    get(&mut p, "later").unwrap();
    // The grant is revoked: the next request of that connection is refused.
    let grant = Grant {
        permission: Permission::Read,
        scope: Scope::Tag("pii".into()),
    };
    sec(
        &mut a,
        SecurityRequest::RoleRevoke {
            role: "pii_readers".into(),
            grant: grant.clone(),
        },
    );
    denied(get(&mut p, "later"), "later");
    sec(
        &mut a,
        SecurityRequest::RoleGrant {
            role: "pii_readers".into(),
            grant,
        },
    );
    get(&mut p, "later").unwrap();
    // The group loses the tag, or the user loses the role: refused again.
    a.alter_group("later", Alter::SetTags(vec![])).unwrap();
    denied(get(&mut p, "later"), "later");
    a.alter_group("later", Alter::SetTags(vec!["pii".into()]))
        .unwrap();
    get(&mut p, "later").unwrap();
    let unassign = SecurityRequest::RoleUnassign {
        role: "pii_readers".into(),
        user: "pia".into(),
    };
    sec(&mut a, unassign);
    denied(get(&mut p, "later"), "later");
    // A dropped user's open connection keeps its name but no permission.
    sec(&mut a, SecurityRequest::UserDrop { name: "pia".into() });
    denied(get(&mut p, "later"), "later");
    let err = login(&q.addr, "pia", "pia-password")
        .err()
        .expect("dropped user");
    assert_eq!(err.status(), Some(StatusCode::AuthFailed));
}

fn create_user_on(dir: &Path) {
    let q = Quiverd::file(&dir.join("q.db"), &["--admin-password", ADMIN_PW]);
    let mut a = admin(&q.addr);
    a.create_group(tagged("g", &[])).unwrap();
    user_with(
        &mut a,
        "dora",
        "g_readers",
        Permission::Read,
        Scope::Group("g".into()),
    );
    drop(q); // SIGKILL: the users were written synchronously.
}

#[test]
fn users_survive_a_crash_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    create_user_on(dir.path());
    // No admin password this time: the stored users are all there is.
    let q = Quiverd::file(&dir.path().join("q.db"), &[]);
    let mut d = as_user(&q.addr, "dora");
    get(&mut d, "g").unwrap();
    denied(put(&mut d, "g"), "g");
    admin(&q.addr);
    let err = Client::connect(
        &q.addr,
        ClientConfig {
            reconnect_attempts: 1,
            ..test_config()
        },
    )
    .err()
    .expect("a server with users refuses an anonymous handshake");
    assert_eq!(err.status(), Some(StatusCode::AuthFailed));
    assert!(q.terminate().success());
    let q = Quiverd::file(
        &dir.path().join("q.db"),
        &["--admin-password", "ignored-password"],
    );
    get(&mut as_user(&q.addr, "dora"), "g").unwrap();
    assert!(login(&q.addr, "admin", "ignored-password").is_err());
    admin(&q.addr);
}

#[test]
fn wrong_passwords_are_refused_and_rate_limited_per_address() {
    let q = start(&[]);
    for bad in [
        "admin:wrong-password",
        "nobody:admin-password-1",
        "admin",
        "",
    ] {
        let config = ClientConfig {
            auth_token: Some(bad.as_bytes().to_vec()),
            reconnect_attempts: 1,
            ..test_config()
        };
        let err = Client::connect(&q.addr, config).err().expect("refused");
        assert_eq!(err.status(), Some(StatusCode::AuthFailed), "{bad}: {err}");
    }
    let limit = quiver_server::security::limiter::MAX_FAILED_LOGINS as usize;
    for _ in 4..limit {
        assert!(login(&q.addr, "admin", "wrong-password").is_err());
    }
    // Over the limit, even the right password is refused from this address.
    let err = login(&q.addr, "admin", ADMIN_PW).err().expect("limited");
    assert_eq!(err.status(), Some(StatusCode::AuthFailed));
    assert!(err.to_string().contains("too many failed logins"), "{err}");
}

#[test]
fn the_single_token_is_a_full_access_shortcut() {
    let q = start(&["--auth-token", "the-token"]);
    let config = ClientConfig {
        auth_token: Some(b"the-token".to_vec()),
        ..test_config()
    };
    let mut t = Client::connect(&q.addr, config).unwrap();
    t.create_group(tagged("g", &["sensitive"])).unwrap();
    put(&mut t, "g").unwrap();
    match sec(&mut t, SecurityRequest::Whoami) {
        SecurityReply::Whoami { user, .. } => assert_eq!(user, "token"),
        other => panic!("{other:?}"),
    }
    sec(&mut t, SecurityRequest::RoleCreate { name: "r".into() });
    get(&mut admin(&q.addr), "g").unwrap();
}

#[test]
fn audit_log_records_admin_operations_and_refusals_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let q = start(&["--audit-log", audit.to_str().unwrap()]);
    let mut a = admin(&q.addr);
    a.create_group(tagged("clicks", &[])).unwrap();
    user_with(
        &mut a,
        "nora",
        "nothing",
        Permission::Read,
        Scope::Group("none".into()),
    );
    let mut n = as_user(&q.addr, "nora");
    denied(get(&mut n, "clicks"), "clicks");
    denied(put(&mut n, "clicks"), "clicks");
    assert!(login(&q.addr, "nora", "wrong-password").is_err());
    let stats = a.stats().unwrap();
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let find = |op: &str, outcome: &str| {
        lines
            .iter()
            .find(|l| l["operation"] == op && l["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} {op} in {text}"))
    };
    let create = find("group_create", "allowed");
    assert_eq!(
        (create["user"].as_str(), create["group"].as_str()),
        (Some("admin"), Some("clicks"))
    );
    assert!(create["address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let g = find("get", "denied");
    assert_eq!(
        (g["user"].as_str(), g["group"].as_str()),
        (Some("nora"), Some("clicks"))
    );
    find("put", "denied");
    find("user_create", "allowed");
    find("role_grant", "allowed");
    assert_eq!(find("login", "denied")["user"], "nora");
    for secret in ["$argon2", "nora-password", "wrong-password", ADMIN_PW] {
        assert!(!text.contains(secret), "audit log holds {secret}");
        assert!(!stats.contains(secret), "stats hold {secret}");
    }
    let err = login(&q.addr, "nora", "wrong-password")
        .err()
        .unwrap()
        .to_string();
    assert!(
        !err.contains("$argon2") && !err.contains("wrong-password"),
        "{err}"
    );
}

#[test]
fn hashes_and_passwords_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("quiverd.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quiverd"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--memory",
            "--size",
            "64MiB",
            "--workers",
            "1",
        ])
        .args(["--admin-password", ADMIN_PW, "--audit-log", "stderr"])
        .env("QUIVER_LOG", "trace")
        .env_remove("QUIVER_AUTH_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let mut a = admin(&addr);
    user_with(&mut a, "nora", "nothing", Permission::Read, Scope::All);
    let passwd = SecurityRequest::UserPasswd {
        name: "nora".into(),
        password: "nora-second-pw".into(),
    };
    sec(&mut a, passwd);
    assert!(login(&addr, "nora", "nora-password").is_err());
    assert!(login(&addr, "admin", "not-the-admin-pw").is_err());
    login(&addr, "nora", "nora-second-pw")
        .unwrap()
        .ping()
        .unwrap();
    a.stats().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("handshake refused"),
        "the log is empty: {text}"
    );
    for secret in [
        "$argon2",
        "nora-password",
        "nora-second-pw",
        "not-the-admin-pw",
        ADMIN_PW,
    ] {
        assert!(!text.contains(secret), "the log holds {secret}");
    }
}

/// Frames sent right behind a password HANDSHAKE wait for its verification (done off the
/// network loop), then are answered; behind a refused one, none is answered.
#[test]
fn requests_pipelined_behind_a_password_login_wait_for_it() {
    use quiver_server::protocol::{
        decode_response, encode_request, FrameHeader, Response, HEADER_LEN, PROTOCOL_VERSION,
    };
    use std::io::{Read, Write};
    let q = start(&[]);
    let frames = |token: &str| {
        let mut out = Vec::new();
        let handshake = Request::Handshake {
            version: PROTOCOL_VERSION.into(),
            token: token.as_bytes().to_vec(),
        };
        encode_request(1, &handshake, &mut out);
        for id in 2..12 {
            encode_request(
                id,
                &Request::Ping {
                    payload: vec![id as u8],
                },
                &mut out,
            );
        }
        out
    };
    let responses = |token: &str| -> Vec<(u64, Response)> {
        let mut s = std::net::TcpStream::connect(&q.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        s.write_all(&frames(token)).unwrap();
        // Half-closed: the server answers every whole frame, then closes.
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        let mut out = Vec::new();
        let mut pos = 0;
        while buf.len() >= pos + HEADER_LEN {
            let head: [u8; HEADER_LEN] = buf[pos..pos + HEADER_LEN].try_into().unwrap();
            let h = FrameHeader::decode(&head, 1 << 20).unwrap();
            let end = pos + HEADER_LEN + h.body_len as usize;
            out.push((
                h.request_id,
                decode_response(&h, &buf[pos + HEADER_LEN..end]).unwrap(),
            ));
            pos = end;
        }
        out
    };
    let ok = responses(&format!("admin:{ADMIN_PW}"));
    assert_eq!(ok.len(), 11, "{ok:?}");
    assert!(matches!(ok[0], (1, Response::Handshake(_))), "{ok:?}");
    for (i, (id, r)) in ok[1..].iter().enumerate() {
        assert_eq!(*id, i as u64 + 2);
        assert!(
            matches!(r, Response::Pong { payload } if payload == &vec![*id as u8]),
            "{r:?}"
        );
    }
    let refused = responses("admin:not-the-password");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(matches!(
        &refused[0],
        (
            1,
            Response::Error {
                status: StatusCode::AuthFailed,
                ..
            }
        )
    ));
}
