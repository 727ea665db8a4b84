//! Users on the HTTP/JSON API over real TCP: HTTP Basic and bearer `user:password`
//! credentials checked like a handshake (failed-login limit included), the per-group read and
//! write permissions on every route (a request naming one group it may not use is refused
//! whole with 403 naming it), `sensitive` groups hidden, denials in the audit log.

mod common;

use base64::Engine as _;
use common::{f32_group, now_ms, test_config, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Value};
use quiver_server::client::{Client, ClientConfig};
use quiver_server::protocol::{Grant, Permission, Scope, SecurityRequest};
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

const ADMIN_PW: &str = "admin-password-1";

fn admin(addr: &str) -> Client {
    let config = ClientConfig {
        auth_token: Some(format!("admin:{ADMIN_PW}").into_bytes()),
        ..test_config()
    };
    Client::connect(addr, config).expect("admin logs in")
}

/// A role `role` holding `permission` on group `group`, and a user `user` (password
/// `user` + "-pw") with that role.
fn user_with(c: &mut Client, user: &str, role: &str, permission: Permission, group: &str) {
    c.security(SecurityRequest::RoleCreate { name: role.into() })
        .unwrap();
    let grant = Grant {
        permission,
        scope: Scope::Group(group.into()),
    };
    c.security(SecurityRequest::RoleGrant {
        role: role.into(),
        grant,
    })
    .unwrap();
    c.security(SecurityRequest::UserCreate {
        name: user.into(),
        password: format!("{user}-pw"),
        roles: vec![role.into()],
    })
    .unwrap();
}

fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// One keep-alive HTTP/1.1 connection.
struct Http {
    reader: BufReader<TcpStream>,
}

/// An answer: status, head (lower-cased) and body as JSON.
struct Answer {
    status: u16,
    head: String,
    body: Json,
}

impl Http {
    fn connect(addr: &str) -> Http {
        Http {
            reader: BufReader::new(TcpStream::connect(addr).unwrap()),
        }
    }

    fn call(&mut self, method: &str, path: &str, auth: Option<&str>, body: &str) -> Answer {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: q\r\n");
        if let Some(a) = auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.reader.get_mut().write_all(head.as_bytes()).unwrap();
        let mut head = String::new();
        loop {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "closed");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("a content-length")
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        let body = serde_json::from_slice(&body).unwrap();
        Answer { status, head, body }
    }
}

fn one(http: &str, method: &str, path: &str, auth: Option<&str>, body: &Json) -> Answer {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    Http::connect(http).call(method, path, auth, &text)
}

fn read_body(features: &[&str]) -> Json {
    json!({"features": features, "entities": {"key": ["k"]}})
}

fn write_body(group: &str, value: f32) -> Json {
    json!({"feature_view_name": group, "df": {"key": ["k"], "f0": [value],
        "event_timestamp": [now_ms()]}})
}

fn refused(a: &Answer, http: u16, status: &str, mentions: &str) {
    assert_eq!(a.status, http, "{}", a.body);
    assert_eq!(a.body["status"], status, "{}", a.body);
    let message = a.body["message"].as_str().unwrap();
    assert!(message.contains(mentions), "{message}");
}

fn group_names(a: &Answer) -> Vec<String> {
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect()
}

/// Groups `open`, `other` and `secret` (tagged sensitive), each with f0 = 1.0 for key `k`.
fn setup(addr: &str) -> Client {
    let mut a = admin(addr);
    for (name, tags) in [
        ("open", vec![]),
        ("other", vec![]),
        ("secret", vec!["sensitive"]),
    ] {
        let mut spec = f32_group(name, 1);
        spec.tags = tags.into_iter().map(String::from).collect();
        a.create_group(spec).unwrap();
        let values = vec![("f0".to_string(), Value::F32(1.0))];
        a.put(
            name,
            EntityKey::String("k".into()),
            now_ms(),
            values,
            PutOptions::default(),
        )
        .unwrap();
    }
    user_with(&mut a, "reader", "readers", Permission::Read, "open");
    user_with(&mut a, "writer", "writers", Permission::Write, "open");
    a
}

#[test]
fn users_get_their_permissions_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let (q, http) = Quiverd::start_with_http(&[
        "--admin-password",
        ADMIN_PW,
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    let mut a = setup(&q.addr);
    let reader = basic("reader", "reader-pw");
    let admin_auth = basic("admin", ADMIN_PW);
    let get = "/get-online-features";
    let write = "/write-to-online-store";

    // No credentials, and wrong ones.
    let none = one(&http, "GET", "/groups", None, &Json::Null);
    refused(&none, 401, "AUTH_FAILED", "Authorization: Basic");
    assert!(
        none.head.contains("www-authenticate: basic"),
        "{}",
        none.head
    );
    let wrong = one(
        &http,
        "GET",
        "/groups",
        Some(&basic("reader", "nope")),
        &Json::Null,
    );
    refused(&wrong, 401, "AUTH_FAILED", "credentials refused");

    // Reads: allowed on `open`; a request that also names `other` is refused whole.
    let ok = one(&http, "POST", get, Some(&reader), &read_body(&["open:f0"]));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["results"][1]["values"][0], 1.0, "{}", ok.body);
    let both = read_body(&["open:f0", "other:f0"]);
    let denied = one(&http, "POST", get, Some(&reader), &both);
    refused(&denied, 403, "PERMISSION_DENIED", "'other'");
    assert!(denied.body.get("results").is_none(), "{}", denied.body);
    let admin_reads = one(&http, "POST", get, Some(&admin_auth), &both);
    assert_eq!(admin_reads.status, 200, "{}", admin_reads.body);

    // Writes: read permission is not enough; write permission is, as a bearer user:password.
    let w = one(
        &http,
        "POST",
        write,
        Some(&reader),
        &write_body("open", 2.0),
    );
    refused(&w, 403, "PERMISSION_DENIED", "'open'");
    let writer = "Bearer writer:writer-pw";
    let w = one(&http, "POST", write, Some(writer), &write_body("open", 2.0));
    assert_eq!(w.status, 200, "{}", w.body);
    let w = one(
        &http,
        "POST",
        write,
        Some(writer),
        &write_body("other", 2.0),
    );
    refused(&w, 403, "PERMISSION_DENIED", "'other'");
    let got = a
        .get(
            EntityKey::String("k".into()),
            vec![FeatureRef::new("other", "f0")],
        )
        .unwrap();
    assert_eq!(
        got[0].value,
        Value::F32(1.0),
        "the refused write wrote nothing"
    );
    let ok = one(&http, "POST", get, Some(writer), &read_body(&["open:f0"]));
    assert_eq!(ok.body["results"][1]["values"][0], 2.0, "{}", ok.body);

    // Groups: a sensitive group is hidden from users who may not read it.
    let listed = group_names(&one(&http, "GET", "/groups", Some(&reader), &Json::Null));
    assert!(listed.contains(&"open".to_string()), "{listed:?}");
    assert!(!listed.contains(&"secret".to_string()), "{listed:?}");
    let listed = group_names(&one(
        &http,
        "GET",
        "/groups",
        Some(&admin_auth),
        &Json::Null,
    ));
    assert!(listed.contains(&"secret".to_string()), "{listed:?}");
    let d = one(&http, "GET", "/groups/secret", Some(&reader), &Json::Null);
    refused(&d, 403, "PERMISSION_DENIED", "'secret'");
    let d = one(&http, "GET", "/groups/open", Some(&reader), &Json::Null);
    assert_eq!(d.status, 200, "{}", d.body);
    let d = one(
        &http,
        "GET",
        "/groups/secret",
        Some(&admin_auth),
        &Json::Null,
    );
    assert_eq!(d.status, 200, "{}", d.body);

    // The denials are audited, with the user, the group and the address; no secret is.
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<Json> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let denial = |op: &str, user: &str, group: &str| {
        lines.iter().any(|l| {
            l["operation"] == op
                && l["outcome"] == "denied"
                && l["user"] == user
                && l["group"] == group
                && l["address"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("127.0.0.1:"))
        })
    };
    assert!(
        denial("http_get_online_features", "reader", "other"),
        "{text}"
    );
    assert!(
        denial("http_write_to_online_store", "reader", "open"),
        "{text}"
    );
    assert!(
        denial("http_write_to_online_store", "writer", "other"),
        "{text}"
    );
    assert!(denial("http_group_describe", "reader", "secret"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l["operation"] == "login" && l["user"] == "reader"),
        "{text}"
    );
    for secret in ["reader-pw", "writer-pw", "nope", ADMIN_PW, "$argon2"] {
        assert!(!text.contains(secret), "the audit log holds {secret}");
    }
    // /health needs no credentials.
    assert_eq!(one(&http, "GET", "/health", None, &Json::Null).status, 200);
}

#[test]
fn a_connection_verifies_each_new_credential_and_sees_revocations() {
    let (q, http) = Quiverd::start_with_http(&["--admin-password", ADMIN_PW]);
    let mut a = setup(&q.addr);
    let mut c = Http::connect(&http);
    let reader = basic("reader", "reader-pw");
    let read = read_body(&["open:f0"]).to_string();
    let get = "/get-online-features";
    assert_eq!(c.call("POST", get, Some(&reader), &read).status, 200);
    // Other credentials on the same connection are checked, not taken for the first.
    let wrong = c.call("POST", get, Some(&basic("reader", "other-pw")), &read);
    refused(&wrong, 401, "AUTH_FAILED", "credentials refused");
    let writer = c.call("POST", get, Some("Bearer writer:writer-pw"), &read);
    assert_eq!(writer.status, 200, "{}", writer.body);
    // Without any credentials, nothing: an earlier login does not carry over.
    let none = c.call("POST", get, None, &read);
    refused(&none, 401, "AUTH_FAILED", "requires credentials");
    // A revocation applies to the open connection's next request.
    assert_eq!(c.call("POST", get, Some(&reader), &read).status, 200);
    a.security(SecurityRequest::RoleRevoke {
        role: "readers".into(),
        grant: Grant {
            permission: Permission::Read,
            scope: Scope::Group("open".into()),
        },
    })
    .unwrap();
    let after = c.call("POST", get, Some(&reader), &read);
    refused(&after, 403, "PERMISSION_DENIED", "'open'");
}

#[test]
fn failed_http_logins_count_against_the_address() {
    let (q, http) = Quiverd::start_with_http(&["--admin-password", ADMIN_PW]);
    setup(&q.addr);
    let mut c = Http::connect(&http);
    let mut limited = None;
    for i in 0..20 {
        let a = c.call("GET", "/groups", Some(&basic("reader", "bad-pw")), "");
        assert_eq!(a.status, 401, "{}", a.body);
        if a.body["message"]
            .as_str()
            .unwrap()
            .contains("too many failed logins")
        {
            limited = Some(i);
            break;
        }
    }
    assert!(limited.is_some(), "the failed-login limit never applied");
    // The right password is refused too while the address is over its limit, on HTTP and on
    // the binary protocol alike.
    let a = one(
        &http,
        "GET",
        "/groups",
        Some(&basic("reader", "reader-pw")),
        &Json::Null,
    );
    refused(&a, 401, "AUTH_FAILED", "too many failed logins");
    let config = ClientConfig {
        auth_token: Some(b"reader:reader-pw".to_vec()),
        reconnect_attempts: 1,
        ..test_config()
    };
    let err = Client::connect(&q.addr, config).err().expect("limited");
    assert!(err.to_string().contains("too many failed logins"), "{err}");
}
