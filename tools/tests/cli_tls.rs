//! `quiver --tls --ca --cert --key` against a real quiverd with TLS and with mutual TLS
//! (certificates made at run time), and the clear errors of a client that does not match the
//! port: plaintext against TLS, TLS against plaintext, a missing or foreign client
//! certificate.

mod cli_support;

use cli_support::{feature, start_quiverd_with, Quiver};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use std::path::{Path, PathBuf};

/// Exit code of a failed connection (docs/CLI.md).
const CONNECT: i32 = 4;
/// Exit code of a usage error.
const USAGE: i32 = 2;

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

/// A certificate for 127.0.0.1 signed by `issuer`, written as `name`.pem and `name`.key.
fn leaf(dir: &Path, name: &str, issuer: &Ca, purpose: ExtendedKeyUsagePurpose) -> [PathBuf; 2] {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![purpose];
    let cert = params.signed_by(&key, &issuer.cert, &issuer.key).unwrap();
    let pem = dir.join(format!("{name}.pem"));
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&pem, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    [pem, key_file]
}

fn ca_file(dir: &Path, name: &str, ca: &Ca) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, ca.cert.pem()).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `args` after the TLS flags.
fn with<'a>(flags: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
    flags.iter().chain(args).copied().collect()
}

#[test]
fn the_cli_speaks_tls_and_a_plaintext_cli_is_told_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("root");
    let root_pem = ca_file(dir.path(), "root.pem", &root);
    let [cert, key] = leaf(
        dir.path(),
        "server",
        &root,
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let daemon = start_quiverd_with(
        &dir.path().join("s.db"),
        &["--tls-cert", s(&cert), "--tls-key", s(&key)],
    );
    let q = Quiver::remote(&daemon.addr);
    let tls = ["--tls", "--ca", s(&root_pem)];
    assert_eq!(q.json(&with(&tls, &["ping"]))["ok"], true);
    q.ok(&with(
        &tls,
        &[
            "group",
            "create",
            "g",
            "--key-type",
            "string",
            "--feature",
            "n:i64",
        ],
    ));
    q.ok(&with(&tls, &["put", "g", "u1", "n=41"]));
    let got = q.json(&with(&tls, &["get", "g", "u1", "n"]));
    assert_eq!(feature(&got, "n")["value"], 41);

    // A plaintext CLI: a connection error that says the port speaks TLS, not a hang.
    let err = q.fails(&["ping"], CONNECT);
    assert!(err.contains("this port speaks TLS"), "{err}");
    assert!(err.contains("--tls"), "{err}");
    assert!(!err.contains("is quiverd running"), "{err}");
    // A CA that did not sign the server's certificate.
    let other_pem = ca_file(dir.path(), "other.pem", &ca("other"));
    let err = q.fails(&["--tls", "--ca", s(&other_pem), "ping"], CONNECT);
    assert!(err.contains("TLS"), "{err}");
    // TLS without a CA, and a certificate without its key: usage errors.
    let err = q.fails(&["--tls", "ping"], USAGE);
    assert!(err.contains("--ca"), "{err}");
    let err = q.fails(&with(&tls, &["--cert", s(&cert), "ping"]), USAGE);
    assert!(err.contains("--key"), "{err}");

    // A TLS CLI against a plaintext port: a TLS error, not a hang.
    let plain = start_quiverd_with(&dir.path().join("p.db"), &[]);
    let err = Quiver::remote(&plain.addr).fails(&with(&tls, &["ping"]), CONNECT);
    assert!(err.contains("TLS"), "{err}");
}

#[test]
fn the_cli_presents_its_certificate_to_a_mutual_tls_server() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("root");
    let root_pem = ca_file(dir.path(), "root.pem", &root);
    let clients = ca("clients");
    let clients_pem = ca_file(dir.path(), "clients.pem", &clients);
    let [cert, key] = leaf(
        dir.path(),
        "server",
        &root,
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let daemon = start_quiverd_with(
        &dir.path().join("s.db"),
        &[
            "--tls-cert",
            s(&cert),
            "--tls-key",
            s(&key),
            "--tls-client-ca",
            s(&clients_pem),
        ],
    );
    let q = Quiver::remote(&daemon.addr);
    let [ccert, ckey] = leaf(
        dir.path(),
        "client",
        &clients,
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let tls = ["--tls", "--ca", s(&root_pem)];
    let mtls = with(&tls, &["--cert", s(&ccert), "--key", s(&ckey)]);
    assert_eq!(q.json(&with(&mtls, &["ping"]))["ok"], true);
    q.ok(&with(
        &mtls,
        &[
            "group",
            "create",
            "g",
            "--key-type",
            "string",
            "--feature",
            "n:i64",
        ],
    ));
    q.ok(&with(&mtls, &["put", "g", "u1", "n=7"]));
    let got = q.json(&with(&mtls, &["get", "g", "u1", "n"]));
    assert_eq!(feature(&got, "n")["value"], 7);

    // Without a client certificate, and with one the client CA did not sign: refused.
    let err = q.fails(&with(&tls, &["ping"]), CONNECT).to_lowercase();
    assert!(err.contains("certificate"), "{err}");
    let [fcert, fkey] = leaf(
        dir.path(),
        "foreign",
        &root,
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let foreign = with(&tls, &["--cert", s(&fcert), "--key", s(&fkey), "ping"]);
    let err = q.fails(&foreign, CONNECT).to_lowercase();
    assert!(err.contains("unknownca"), "{err}");
    // The server still serves the right certificate after the refusals.
    assert_eq!(q.json(&with(&mtls, &["ping"]))["ok"], true);
}
