//! TLS on every listener, with certificates made here at run time (rcgen): the binary
//! protocol, mutual TLS, wrong, expired and self-signed certificates refused, plaintext
//! clients told clearly, certificates reloaded on SIGHUP without dropping connections, and
//! the metrics endpoint and HTTP API over TLS. TLS is served by the io_uring loops by default
//! (`QUIVER_TEST_IO=epoll` runs the file against the epoll loops).

mod common;

use common::{f32_group, now_ms, test_config, Quiverd};
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Value};
use quiver_server::client::{Client, ClientConfig, ClientError};
use quiver_server::protocol::StatusCode;
use quiver_server::tls::{client_config, ClientTlsFiles};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    Ca {
        cert: params.self_signed(&key).unwrap(),
        key,
    }
}

/// A leaf for 127.0.0.1 and localhost, signed by `issuer` (self-signed when `None`).
fn leaf(issuer: Option<&Ca>, purpose: ExtendedKeyUsagePurpose, expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .distinguished_name
        .push(DnType::CommonName, "quiver test");
    params.extended_key_usages = vec![purpose];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = match issuer {
        Some(ca) => params.signed_by(&key, &ca.cert, &ca.key).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes the server's certificate and key as `server.pem` / `server.key`.
fn server_files(dir: &Path, pair: &(String, String)) -> (PathBuf, PathBuf) {
    (
        write(dir, "server.pem", &pair.0),
        write(dir, "server.key", &pair.1),
    )
}

fn ca_file(dir: &Path, name: &str, ca: &Ca) -> PathBuf {
    write(dir, name, &ca.cert.pem())
}

fn tls_client(
    addr: &str,
    ca: &Path,
    client: Option<(PathBuf, PathBuf)>,
) -> Result<Client, ClientError> {
    let files = ClientTlsFiles {
        ca: Some(ca.to_path_buf()),
        cert_key: client,
    };
    let config = ClientConfig {
        tls: Some(client_config(&files).unwrap()),
        reconnect_attempts: 1,
        ..test_config()
    };
    Client::connect(addr, config)
}

fn start_tls(cert: &Path, key: &Path, extra: &[&str]) -> Quiverd {
    let mut args = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Quiverd::memory(&args)
}

/// Checks that `c`'s server serves TLS on the loops the suite asked for: the io_uring loops
/// unless `QUIVER_TEST_IO=epoll` (where the kernel lacks them, outside CI, the epoll loops).
fn assert_event_loop(c: &mut Client) {
    let stats: serde_json::Value = serde_json::from_str(&c.stats().unwrap()).unwrap();
    let event_loop = stats["server"]["event_loop"].as_str().unwrap().to_string();
    match std::env::var("QUIVER_TEST_IO").as_deref() {
        Ok("epoll") => assert_eq!(event_loop, "epoll"),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            assert_eq!(
                event_loop, "io_uring",
                "TLS served by {event_loop} loops (CI=true)"
            )
        }
        _ if event_loop != "io_uring" => {
            eprintln!("io_uring loops unavailable here: TLS tested on the {event_loop} loops")
        }
        _ => {}
    }
}

fn round_trip(c: &mut Client) {
    c.create_group(f32_group("g", 1)).ok();
    let key = EntityKey::String("k".into());
    let values = vec![("f0".to_string(), Value::F32(2.5))];
    c.put("g", key.clone(), now_ms(), values, PutOptions::default())
        .unwrap();
    let got = c.get(key, vec![FeatureRef::new("g", "f0")]).unwrap();
    assert_eq!(got[0].value, Value::F32(2.5));
}

#[test]
fn requests_over_tls_and_a_plaintext_client_is_told_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("root");
    let (cert, key) = server_files(
        dir.path(),
        &leaf(Some(&root), ExtendedKeyUsagePurpose::ServerAuth, false),
    );
    let root_pem = ca_file(dir.path(), "root.pem", &root);
    let q = start_tls(&cert, &key, &[]);
    let mut c = tls_client(&q.addr, &root_pem, None).unwrap();
    assert_event_loop(&mut c);
    round_trip(&mut c);
    // Many pipelined requests through one TLS session.
    let ids: Vec<u64> = (0..500)
        .map(|i| {
            c.send(&quiver_server::protocol::Request::Ping {
                payload: vec![i as u8; 300],
            })
            .unwrap()
        })
        .collect();
    for id in ids {
        c.wait(id).unwrap();
    }
    let plain = ClientConfig {
        reconnect_attempts: 1,
        ..test_config()
    };
    let err = Client::connect(&q.addr, plain)
        .err()
        .expect("plaintext refused");
    assert_eq!(err.status(), Some(StatusCode::BadFrame), "{err}");
    assert!(err.to_string().contains("speaks TLS"), "{err}");
}

/// Responses far larger than a TLS record, one send and rustls' own buffer, pipelined on one
/// session while requests keep arriving: every byte comes back, in order.
#[test]
fn large_pipelined_responses_cross_many_records_and_sends() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("root");
    let (cert, key) = server_files(
        dir.path(),
        &leaf(Some(&root), ExtendedKeyUsagePurpose::ServerAuth, false),
    );
    let root_pem = ca_file(dir.path(), "root.pem", &root);
    let q = start_tls(&cert, &key, &[]);
    let mut c = tls_client(&q.addr, &root_pem, None).unwrap();
    assert_event_loop(&mut c);
    // 48 pings of up to 200 KiB each: about 5 MiB of responses.
    let payload = |i: usize| -> Vec<u8> {
        (0..(i * 4_357) % (200 << 10) + 1)
            .map(|b| (b * 31 + i) as u8)
            .collect()
    };
    let ids: Vec<(usize, u64)> = (0..48)
        .map(|i| {
            let req = quiver_server::protocol::Request::Ping {
                payload: payload(i),
            };
            (i, c.send(&req).unwrap())
        })
        .collect();
    for (i, id) in ids {
        match c.wait(id).unwrap() {
            quiver_server::protocol::Response::Pong { payload: got } => {
                assert!(got == payload(i), "ping {i}: payload differs")
            }
            other => panic!("ping {i}: {other:?}"),
        }
    }
    round_trip(&mut c);
}

#[test]
fn a_tls_client_on_a_plaintext_port_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let root_pem = ca_file(dir.path(), "root.pem", &ca("root"));
    let q = Quiverd::memory(&[]);
    let err = tls_client(&q.addr, &root_pem, None)
        .err()
        .expect("no TLS there");
    assert!(matches!(err, ClientError::Tls(_)), "{err}");
    eprintln!("a TLS client on a plaintext port: {err}");
}

#[test]
fn wrong_expired_and_self_signed_server_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (root, other) = (ca("root"), ca("other"));
    let root_pem = ca_file(dir.path(), "root.pem", &root);
    let server = ExtendedKeyUsagePurpose::ServerAuth;
    let cases = [
        (
            "another CA",
            leaf(Some(&other), server.clone(), false),
            "UnknownIssuer",
        ),
        (
            "expired",
            leaf(Some(&root), server.clone(), true),
            "expired",
        ),
        (
            "self-signed",
            leaf(None, server.clone(), false),
            "UnknownIssuer",
        ),
    ];
    for (what, pair, reason) in cases {
        let sub = tempfile::tempdir().unwrap();
        let (cert, key) = server_files(sub.path(), &pair);
        let q = start_tls(&cert, &key, &[]);
        let err = tls_client(&q.addr, &root_pem, None)
            .err()
            .unwrap_or_else(|| panic!("{what} accepted"));
        assert!(matches!(err, ClientError::Tls(_)), "{what}: {err}");
        assert!(err.to_string().contains(reason), "{what}: {err}");
    }
}

#[test]
fn mutual_tls_refuses_missing_and_foreign_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let (root, clients, other) = (ca("root"), ca("clients"), ca("other"));
    let (cert, key) = server_files(
        dir.path(),
        &leaf(Some(&root), ExtendedKeyUsagePurpose::ServerAuth, false),
    );
    let root_pem = ca_file(dir.path(), "root.pem", &root);
    let clients_pem = ca_file(dir.path(), "clients.pem", &clients);
    let q = start_tls(
        &cert,
        &key,
        &["--tls-client-ca", clients_pem.to_str().unwrap()],
    );
    let client_pair = |ca: &Ca, name: &str| {
        let (c, k) = leaf(Some(ca), ExtendedKeyUsagePurpose::ClientAuth, false);
        (
            write(dir.path(), &format!("{name}.pem"), &c),
            write(dir.path(), &format!("{name}.key"), &k),
        )
    };
    let good = client_pair(&clients, "good");
    let foreign = client_pair(&other, "foreign");
    let expired = {
        let (c, k) = leaf(Some(&clients), ExtendedKeyUsagePurpose::ClientAuth, true);
        (
            write(dir.path(), "old.pem", &c),
            write(dir.path(), "old.key", &k),
        )
    };
    round_trip(&mut tls_client(&q.addr, &root_pem, Some(good)).unwrap());
    for (what, client) in [
        ("none", None),
        ("foreign", Some(foreign)),
        ("expired", Some(expired)),
    ] {
        assert!(
            tls_client(&q.addr, &root_pem, client).is_err(),
            "client certificate {what} accepted"
        );
    }
}

#[test]
fn sighup_reloads_certificates_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (ca("old"), ca("new"));
    let server = ExtendedKeyUsagePurpose::ServerAuth;
    let (cert, key) = server_files(dir.path(), &leaf(Some(&old_ca), server.clone(), false));
    let (old_pem, new_pem) = (
        ca_file(dir.path(), "old.pem", &old_ca),
        ca_file(dir.path(), "new.pem", &new_ca),
    );
    let q = start_tls(&cert, &key, &[]);
    let mut open = tls_client(&q.addr, &old_pem, None).unwrap();
    open.ping().unwrap();
    server_files(dir.path(), &leaf(Some(&new_ca), server, false));
    // SAFETY: kill(2) on the quiverd child this test spawned.
    unsafe { libc::kill(q.child.id() as i32, libc::SIGHUP) };
    // Wait (bounded) until new connections get the new certificate.
    let mut reloaded = None;
    for _ in 0..200 {
        if let Ok(c) = tls_client(&q.addr, &new_pem, None) {
            reloaded = Some(c);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    round_trip(&mut reloaded.expect("the new certificate is served after SIGHUP"));
    assert!(
        tls_client(&q.addr, &old_pem, None).is_err(),
        "the old certificate is still served"
    );
    open.ping().unwrap();
    round_trip(&mut open);
}

/// One HTTP/1.1 request over TLS; the whole response.
fn https(addr: &str, ca: &Path, request: &str) -> std::io::Result<String> {
    let config: Arc<_> = client_config(&ClientTlsFiles {
        ca: Some(ca.to_path_buf()),
        cert_key: None,
    })
    .unwrap();
    let name = quiver_server::tls::server_name(addr).unwrap();
    let session = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut s = rustls::StreamOwned::new(session, tcp);
    s.write_all(request.as_bytes())?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // A peer that closes without close_notify after a complete response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn metrics_and_the_http_api_speak_tls() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("root");
    let (cert, key) = server_files(
        dir.path(),
        &leaf(Some(&root), ExtendedKeyUsagePurpose::ServerAuth, false),
    );
    let root_pem = ca_file(dir.path(), "root.pem", &root);
    let args = [
        "--memory",
        "--size",
        "64MiB",
        "--workers",
        "1",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ];
    let (_q, lines) = Quiverd::launch(&args, &[], 3);
    let metrics = lines[1]
        .trim()
        .strip_prefix("metrics on https://")
        .unwrap()
        .strip_suffix("/metrics")
        .unwrap();
    let http = lines[2].trim().strip_prefix("http on https://").unwrap();
    let text = https(
        metrics,
        &root_pem,
        "GET /metrics HTTP/1.1\r\nHost: q\r\n\r\n",
    )
    .unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("quiver_"),
        "{text}"
    );
    let health = https(
        http,
        &root_pem,
        "GET /health HTTP/1.1\r\nHost: q\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(
        health.starts_with("HTTP/1.1 200") && health.contains("SERVING"),
        "{health}"
    );
    // Plaintext HTTP gets no answer in HTTP.
    for addr in [metrics, http] {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: q\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out);
        assert!(
            !out.starts_with(b"HTTP/1.1 200"),
            "plaintext served on {addr}"
        );
    }
}

#[test]
fn users_log_in_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("root");
    let (cert, key) = server_files(
        dir.path(),
        &leaf(Some(&root), ExtendedKeyUsagePurpose::ServerAuth, false),
    );
    let root_pem = ca_file(dir.path(), "root.pem", &root);
    let q = start_tls(&cert, &key, &["--admin-password", "admin-password-1"]);
    let files = ClientTlsFiles {
        ca: Some(root_pem),
        cert_key: None,
    };
    let config = |token: &str| ClientConfig {
        tls: Some(client_config(&files).unwrap()),
        auth_token: Some(token.as_bytes().to_vec()),
        reconnect_attempts: 1,
        ..test_config()
    };
    round_trip(&mut Client::connect(&q.addr, config("admin:admin-password-1")).unwrap());
    let err = Client::connect(&q.addr, config("admin:wrong-password"))
        .err()
        .unwrap();
    assert_eq!(err.status(), Some(StatusCode::AuthFailed));
}
