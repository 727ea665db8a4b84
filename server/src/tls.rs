//! TLS with rustls (the `ring` provider): the server's configuration from certificate, key and
//! optional client-CA files (mutual TLS), reloadable while connections stay open; and the
//! client's configuration from a CA file and an optional client certificate.

use parking_lot::RwLock;
use rustls::crypto::ring::default_provider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The client configuration type, for crates that hold one without depending on rustls.
pub use rustls::ClientConfig as TlsClientConfig;

/// Where the server's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates must chain to this CA (mutual TLS); `None`: no client certificate.
    pub client_ca: Option<PathBuf>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let list = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if list.is_empty() {
        return Err(format!(
            "{}: no PEM certificate in the file",
            path.display()
        ));
    }
    Ok(list)
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    for cert in certs(path)? {
        store
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(Arc::new(store))
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: no usable private key: {e}", path.display()))
}

/// Builds the server's configuration from its files.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(|e| format!("{} and {}: {e}", files.cert.display(), files.key.display()))?;
    Ok(Arc::new(config))
}

/// The server's TLS configuration, replaced whole by [`ServerTls::reload`]: connections
/// already open keep the configuration they started with.
pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    pub fn load(files: TlsFiles) -> Result<ServerTls, String> {
        let config = server_config(&files)?;
        Ok(ServerTls {
            files,
            current: RwLock::new(config),
        })
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().clone()
    }

    /// Reads the files again; on any error the configuration in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let config = server_config(&self.files)?;
        *self.current.write() = config;
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// What a client needs to speak TLS to a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// The CA the server's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key, for servers that ask for one.
    pub cert_key: Option<(PathBuf, PathBuf)>,
}

/// The client configuration from command-line flags: `None` without `--tls`.
pub fn client_from_flags(
    tls: bool,
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<Arc<ClientConfig>>, String> {
    if !tls {
        if ca.is_some() || cert.is_some() || key.is_some() {
            return Err("--ca, --cert and --key need --tls".into());
        }
        return Ok(None);
    }
    let cert_key = match (cert, key) {
        (Some(c), Some(k)) => Some((c.to_path_buf(), k.to_path_buf())),
        (None, None) => None,
        _ => return Err("--cert and --key go together".into()),
    };
    let files = ClientTlsFiles {
        ca: ca.map(Path::to_path_buf),
        cert_key,
    };
    client_config(&files).map(Some)
}

/// Builds a client configuration. Without a CA file no server can be verified: refused.
pub fn client_config(files: &ClientTlsFiles) -> Result<Arc<ClientConfig>, String> {
    let ca = files
        .ca
        .as_ref()
        .ok_or("TLS needs --ca FILE: the CA that signed the server's certificate")?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca)?);
    let config = match &files.cert_key {
        Some((cert, k)) => builder
            .with_client_auth_cert(certs(cert)?, key(k)?)
            .map_err(|e| format!("{}: {e}", cert.display()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name a server's certificate must carry for `addr` (host:port): its IP address or
/// its DNS name.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    };
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("'{host}' is not a server name: {e}"))
}

/// True when `bytes` open with this protocol's frame magic: a plaintext client on a TLS port.
pub fn looks_like_plaintext_frame(bytes: &[u8]) -> bool {
    bytes.starts_with(&crate::protocol::MAGIC.to_le_bytes())
}

/// True when `bytes` open like a TLS record (handshake or alert, TLS 1.0 to 1.3): a TLS
/// server answering a plaintext client.
pub fn looks_like_tls_record(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, 0x00..=0x04, ..])
}
