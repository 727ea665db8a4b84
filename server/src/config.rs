//! `quiverd` configuration: command-line flags over an optional TOML file over defaults.

use crate::size::parse_size;
use clap::Parser;
use quiver_engine::Durability;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Configuration errors; each names the setting at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("setting {name}: {message}")]
    Invalid { name: &'static str, message: String },
    #[error("refusing to listen on non-loopback address {addr} without an auth token; set --auth-token (or QUIVER_AUTH_TOKEN), or pass --trusted-network if this network is trusted")]
    UnprotectedListen { addr: SocketAddr },
}

/// Named limits that protect the server from clients, each with a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame body accepted or produced (default 16 MiB).
    pub max_frame_bytes: u32,
    /// Entities in one GET_MANY, and items in one scan chunk (default 10,000).
    pub max_batch_keys: u32,
    /// Feature references in one GET/GET_MANY and values in one PUT (default 1,024).
    pub max_features_per_request: u32,
    /// Open client connections (default 10,000); more are refused at accept.
    pub max_connections: u32,
    /// Requests of one connection being executed at once; reading pauses above it (default 1,024).
    pub max_inflight_per_connection: u32,
    /// Response frames one SCAN request may stream (default 64).
    pub max_scan_chunks: u32,
    /// A connection with nothing in flight and no bytes received for this long is closed (default 300 s).
    pub idle_timeout_ms: u64,
    /// A frame whose first byte arrived this long ago must be complete (default 10 s).
    pub frame_deadline_ms: u64,
    /// Response bytes queued for one connection before the server stops reading from it (default 64 MiB).
    pub max_output_bytes_per_connection: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 16 << 20,
            max_batch_keys: 10_000,
            max_features_per_request: 1_024,
            max_connections: 10_000,
            max_inflight_per_connection: 1_024,
            max_scan_chunks: 64,
            idle_timeout_ms: 300_000,
            frame_deadline_ms: 10_000,
            max_output_bytes_per_connection: 64 << 20,
        }
    }
}

/// Storage engine settings `quiverd` exposes (the engine's defaults otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// Index checkpoint period in seconds; 0 = only at shutdown.
    pub checkpoint_interval_s: u64,
    /// Above this percentage of blocks in use, the records closest to expiry are deleted
    /// early; 0 = off.
    pub evict_high_water_pct: u8,
    /// Blocks under this percentage of live bytes are defragmented.
    pub defrag_lwm_pct: u8,
    /// Writes are refused with DEVICE_FULL while free space is under this percentage.
    pub min_free_pct: u8,
    /// Longest a buffered write stays only in memory, in milliseconds.
    pub flush_interval_ms: u64,
    /// Pause between background history retention sweeps, in seconds; 0 = none.
    pub history_retention_interval_s: u64,
    /// Period of saving the feature statistics, in seconds; 0 = only on shutdown.
    pub stats_save_interval_s: u64,
}

impl Default for Storage {
    fn default() -> Self {
        let d = quiver_engine::Config::default();
        Storage {
            checkpoint_interval_s: d.checkpoint_interval_s,
            evict_high_water_pct: d.evict_high_water_pct,
            defrag_lwm_pct: d.defrag_lwm_pct,
            min_free_pct: d.min_free_pct,
            flush_interval_ms: d.flush_interval_ms,
            history_retention_interval_s: d.history_retention_interval_s,
            stats_save_interval_s: d.stats_save_interval_s,
        }
    }
}

impl Storage {
    /// Copies these settings into an engine configuration.
    pub fn apply(&self, engine: &mut quiver_engine::Config) {
        engine.checkpoint_interval_s = self.checkpoint_interval_s;
        engine.evict_high_water_pct = self.evict_high_water_pct;
        engine.defrag_lwm_pct = self.defrag_lwm_pct;
        engine.min_free_pct = self.min_free_pct;
        engine.flush_interval_ms = self.flush_interval_ms;
        engine.history_retention_interval_s = self.history_retention_interval_s;
        engine.stats_save_interval_s = self.stats_save_interval_s;
    }
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataConfig {
    Memory { size_bytes: u64 },
    Path { path: PathBuf, size_bytes: u64 },
}

/// Which event loops serve connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// One io_uring per loop for sockets and device reads (falls back to epoll, with a log
    /// line saying why, where the kernel lacks what it needs).
    Uring,
    /// epoll loops with every engine call in the engine pool.
    Epoll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data: DataConfig,
    pub listen: SocketAddr,
    pub durability: Durability,
    pub metrics: Option<SocketAddr>,
    /// The HTTP/JSON API's address (off when `None`).
    pub http: Option<SocketAddr>,
    /// Threads serving the HTTP API's sockets (its engine calls run on up to
    /// `engine_threads` more).
    pub http_threads: usize,
    pub auth_token: Option<Vec<u8>>,
    /// Password of the built-in user `admin`, created on a start that finds no user.
    pub admin_password: Option<String>,
    /// Where audit lines go.
    pub audit_log: crate::security::AuditTarget,
    /// TLS on the binary protocol and the HTTP listeners (`None`: plaintext).
    pub tls: Option<crate::tls::TlsFiles>,
    pub trusted_network: bool,
    pub workers: usize,
    pub engine_threads: usize,
    pub engine_queue: usize,
    pub io: IoMode,
    pub log_format: LogFormat,
    pub limits: Limits,
    pub storage: Storage,
    /// Cluster mode (`None`: a single node).
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl ServerConfig {
    /// A configuration for tests and embedding: memory store, loopback, ephemeral port.
    pub fn for_memory(size_bytes: u64) -> ServerConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServerConfig {
            data: DataConfig::Memory { size_bytes },
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            durability: Durability::Buffered,
            metrics: None,
            http: None,
            http_threads: 2,
            auth_token: None,
            admin_password: None,
            audit_log: crate::security::AuditTarget::Off,
            tls: None,
            trusted_network: false,
            workers: cores,
            engine_threads: (cores * 2).max(4),
            engine_queue: 4_096,
            io: IoMode::Uring,
            log_format: LogFormat::Text,
            limits: Limits::default(),
            storage: Storage::default(),
            cluster: None,
        }
    }

    /// Refuses an unauthenticated non-loopback listener unless the network is declared trusted.
    pub fn check_security(&self) -> Result<(), ConfigError> {
        let open =
            self.auth_token.is_none() && self.admin_password.is_none() && !self.trusted_network;
        for addr in std::iter::once(self.listen).chain(self.http) {
            if open && !addr.ip().is_loopback() {
                return Err(ConfigError::UnprotectedListen { addr });
            }
        }
        Ok(())
    }
}

/// Command-line flags of `quiverd`. Every flag can also be set in the `--config` TOML file
/// under the same name with `_` for `-`; flags win over the file.
#[derive(Debug, Default, Parser)]
#[command(name = "quiverd", version, about = "Quiver feature store server")]
pub struct Args {
    /// TOML file with settings (same names as the flags, `_` for `-`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data file or block device [default: ./quiver-data/quiver.db].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Size of a new data file, e.g. 4GiB [default: 1GiB].
    #[arg(long)]
    pub size: Option<String>,
    /// Keep everything in memory (no device); --size is the memory budget.
    #[arg(long)]
    pub memory: bool,
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long)]
    pub listen: Option<String>,
    /// Commit mode: sync (acknowledge when durable) or buffered [default: buffered].
    #[arg(long)]
    pub commit: Option<String>,
    /// Serve Prometheus metrics over HTTP at this address (off by default).
    #[arg(long)]
    pub metrics: Option<String>,
    /// Serve the HTTP/JSON API (docs/HTTP.md) at this address (off by default).
    #[arg(long)]
    pub http: Option<String>,
    /// Threads serving HTTP connections [default: 2].
    #[arg(long)]
    pub http_threads: Option<usize>,
    /// Token clients must present in the handshake (or env QUIVER_AUTH_TOKEN).
    #[arg(long)]
    pub auth_token: Option<String>,
    /// Password of the built-in user `admin`, created on a start that finds no user (or env
    /// QUIVER_ADMIN_PASSWORD); ignored once users exist.
    #[arg(long)]
    pub admin_password: Option<String>,
    /// Audit log: a file to append JSON lines to, or `stderr` [default: off].
    #[arg(long)]
    pub audit_log: Option<String>,
    /// PEM certificate chain of the server: turns TLS on for every listener (with --tls-key).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate signed by one (mutual TLS).
    #[arg(long)]
    pub tls_client_ca: Option<PathBuf>,
    /// Allow a non-loopback listener without an auth token.
    #[arg(long)]
    pub trusted_network: bool,
    /// Network worker threads [default: one per core].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Threads executing engine calls [default: 2 per core, at least 4; with --cluster-etcd
    /// 8 per core, at least 16].
    #[arg(long)]
    pub engine_threads: Option<usize>,
    /// Engine jobs queued before requests get BUSY [default: 4096].
    #[arg(long)]
    pub engine_queue: Option<usize>,
    /// Event loops: uring (one io_uring per loop for sockets and device reads; epoll where
    /// the kernel lacks what it needs) or epoll [default: uring].
    #[arg(long)]
    pub io: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long)]
    pub log_format: Option<String>,
    /// Largest frame body, e.g. 16MiB [default: 16MiB].
    #[arg(long)]
    pub max_frame_bytes: Option<String>,
    /// Entities per batch get and items per scan chunk [default: 10000].
    #[arg(long)]
    pub max_batch_keys: Option<u32>,
    /// Feature references per get, values per put [default: 1024].
    #[arg(long)]
    pub max_features_per_request: Option<u32>,
    /// Open connections [default: 10000].
    #[arg(long)]
    pub max_connections: Option<u32>,
    /// Requests in flight per connection [default: 1024].
    #[arg(long)]
    pub max_inflight_per_connection: Option<u32>,
    /// Frames per scan request [default: 64].
    #[arg(long)]
    pub max_scan_chunks: Option<u32>,
    /// Idle connection timeout in milliseconds [default: 300000].
    #[arg(long)]
    pub idle_timeout_ms: Option<u64>,
    /// Deadline to finish a started frame, in milliseconds [default: 10000].
    #[arg(long)]
    pub frame_deadline_ms: Option<u64>,
    /// Queued response bytes per connection before reading pauses, e.g. 64MiB [default: 64MiB].
    #[arg(long)]
    pub max_output_bytes_per_connection: Option<String>,
    /// Index checkpoint period in seconds, 0 = only at shutdown [default: 300].
    #[arg(long)]
    pub checkpoint_interval_s: Option<u64>,
    /// Evict the records closest to expiry above this percentage of blocks in use, 0 = off
    /// [default: 0].
    #[arg(long)]
    pub evict_high_water_pct: Option<u8>,
    /// Defragment blocks under this percentage of live bytes [default: 50].
    #[arg(long)]
    pub defrag_lwm_pct: Option<u8>,
    /// Refuse writes (DEVICE_FULL) while free space is under this percentage [default: 5].
    #[arg(long)]
    pub min_free_pct: Option<u8>,
    /// Longest a buffered write stays only in memory, in milliseconds [default: 1000].
    #[arg(long)]
    pub flush_interval_ms: Option<u64>,
    /// Pause between background sweeps that enforce the history retention window and max
    /// versions of every group, in seconds, 0 = none [default: 60].
    #[arg(long)]
    pub history_retention_interval_s: Option<u64>,
    /// Period of saving the live feature statistics to the store, in seconds, 0 = only on
    /// shutdown [default: 10]. A crash loses at most this much of them.
    #[arg(long)]
    pub stats_save_interval_s: Option<u64>,
    /// Cluster mode (docs/CLUSTER.md); flags only, not read from the TOML file.
    #[command(flatten)]
    pub cluster: crate::cluster::config::ClusterArgs,
}

/// The TOML file: the same settings as [`Args`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    size: Option<String>,
    memory: Option<bool>,
    listen: Option<String>,
    commit: Option<String>,
    metrics: Option<String>,
    http: Option<String>,
    http_threads: Option<usize>,
    auth_token: Option<String>,
    admin_password: Option<String>,
    audit_log: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    trusted_network: Option<bool>,
    workers: Option<usize>,
    engine_threads: Option<usize>,
    engine_queue: Option<usize>,
    io: Option<String>,
    log_format: Option<String>,
    max_frame_bytes: Option<String>,
    max_batch_keys: Option<u32>,
    max_features_per_request: Option<u32>,
    max_connections: Option<u32>,
    max_inflight_per_connection: Option<u32>,
    max_scan_chunks: Option<u32>,
    idle_timeout_ms: Option<u64>,
    frame_deadline_ms: Option<u64>,
    max_output_bytes_per_connection: Option<String>,
    checkpoint_interval_s: Option<u64>,
    evict_high_water_pct: Option<u8>,
    defrag_lwm_pct: Option<u8>,
    min_free_pct: Option<u8>,
    flush_interval_ms: Option<u64>,
    history_retention_interval_s: Option<u64>,
    stats_save_interval_s: Option<u64>,
}

fn invalid(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.into(),
    }
}

fn size_setting(name: &'static str, value: &str) -> Result<u64, ConfigError> {
    parse_size(value).map_err(|e| invalid(name, e.to_string()))
}

fn addr_setting(name: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|e| invalid(name, format!("'{value}' is not an IP:port address ({e})")))
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(invalid(name, format!("{value} is outside {min}..={max}")));
    }
    Ok(value)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

impl Args {
    /// Merges flags, the config file, the environment token and defaults; validates ranges.
    pub fn resolve(self, env_token: Option<String>) -> Result<ServerConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let limit_flags = self.limits_overrides();
        let limits = resolve_limits(&limit_flags, &file)?;
        let storage = self.storage(&file)?;
        let mut config = ServerConfig::for_memory(1 << 30);
        config.limits = limits;
        config.storage = storage;
        let size = match self.size.or(file.size) {
            Some(s) => size_setting("size", &s)?,
            None => 1 << 30,
        };
        config.data = if self.memory || file.memory.unwrap_or(false) {
            DataConfig::Memory { size_bytes: size }
        } else {
            let path = self
                .data
                .or(file.data)
                .unwrap_or_else(|| PathBuf::from("./quiver-data/quiver.db"));
            DataConfig::Path {
                path,
                size_bytes: size,
            }
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:7878".into());
        config.listen = addr_setting("listen", &listen)?;
        config.durability = match self.commit.or(file.commit).as_deref() {
            None | Some("buffered") => Durability::Buffered,
            Some("sync") => Durability::Sync,
            Some(other) => {
                return Err(invalid(
                    "commit",
                    format!("'{other}' is not sync or buffered"),
                ))
            }
        };
        if let Some(m) = self.metrics.or(file.metrics) {
            config.metrics = Some(addr_setting("metrics", &m)?);
        }
        if let Some(h) = self.http.or(file.http) {
            config.http = Some(addr_setting("http", &h)?);
        }
        if let Some(t) = self.http_threads.or(file.http_threads) {
            config.http_threads = in_range("http-threads", t, 1, 64)?;
        }
        let token = self
            .auth_token
            .or(file.auth_token)
            .or(env_token)
            .filter(|t| !t.is_empty());
        if let Some(t) = &token {
            in_range(
                "auth-token length",
                t.len(),
                1,
                crate::server::MAX_TOKEN_BYTES,
            )?;
        }
        config.auth_token = token.map(String::into_bytes);
        config.admin_password = self
            .admin_password
            .or(file.admin_password)
            .or_else(|| std::env::var("QUIVER_ADMIN_PASSWORD").ok())
            .filter(|p| !p.is_empty());
        if let Some(p) = &config.admin_password {
            crate::security::acl::check_password(p).map_err(|m| invalid("admin-password", m))?;
        }
        let client_ca = self.tls_client_ca.or(file.tls_client_ca);
        config.tls =
            match (
                self.tls_cert.or(file.tls_cert),
                self.tls_key.or(file.tls_key),
            ) {
                (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                    cert,
                    key,
                    client_ca,
                }),
                (None, None) if client_ca.is_none() => None,
                _ => return Err(invalid(
                    "tls-cert",
                    "TLS needs both --tls-cert and --tls-key (and --tls-client-ca only with them)",
                )),
            };
        config.cluster = self.cluster.resolve().map_err(|m| invalid("cluster", m))?;
        if config.cluster.is_some() && config.http.is_some() {
            return Err(invalid(
                "http",
                "the HTTP API writes to the local store directly, so it is not served in \
                 cluster mode (--cluster-etcd); use the binary protocol",
            ));
        }
        config.audit_log = match self.audit_log.or(file.audit_log).as_deref() {
            None | Some("") => crate::security::AuditTarget::Off,
            Some("stderr") => crate::security::AuditTarget::Stderr,
            Some(path) => crate::security::AuditTarget::File(PathBuf::from(path)),
        };
        config.trusted_network = self.trusted_network || file.trusted_network.unwrap_or(false);
        if let Some(w) = self.workers.or(file.workers) {
            config.workers = in_range("workers", w, 1, 256)?;
        }
        if let Some(t) = self.engine_threads.or(file.engine_threads) {
            config.engine_threads = in_range("engine-threads", t, 1, 1024)?;
        } else if config.cluster.is_some() {
            // A replicated write holds its engine thread until every replica answered
            // (cluster::write): with the plain default, 4 writes per node waiting on their
            // replicas stopped every other request (docs/BENCHMARKS.md, "Cluster: replication
            // factor 2 against 1"). 8 per core, at least 16.
            config.engine_threads *= 4;
        }
        if let Some(q) = self.engine_queue.or(file.engine_queue) {
            config.engine_queue = in_range("engine-queue", q, 1, 1 << 20)?;
        }
        config.io = match self.io.or(file.io).as_deref() {
            None | Some("uring") => IoMode::Uring,
            Some("epoll") => IoMode::Epoll,
            Some(other) => return Err(invalid("io", format!("'{other}' is not uring or epoll"))),
        };
        config.log_format = match self.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "log-format",
                    format!("'{other}' is not text or json"),
                ))
            }
        };
        config.check_security()?;
        Ok(config)
    }

    fn storage(&self, file: &FileConfig) -> Result<Storage, ConfigError> {
        let d = Storage::default();
        Ok(Storage {
            checkpoint_interval_s: in_range(
                "checkpoint-interval-s",
                self.checkpoint_interval_s
                    .or(file.checkpoint_interval_s)
                    .unwrap_or(d.checkpoint_interval_s),
                0,
                7 * 86_400,
            )?,
            evict_high_water_pct: in_range(
                "evict-high-water-pct",
                self.evict_high_water_pct
                    .or(file.evict_high_water_pct)
                    .unwrap_or(d.evict_high_water_pct),
                0,
                99,
            )?,
            defrag_lwm_pct: in_range(
                "defrag-lwm-pct",
                self.defrag_lwm_pct
                    .or(file.defrag_lwm_pct)
                    .unwrap_or(d.defrag_lwm_pct),
                1,
                99,
            )?,
            min_free_pct: in_range(
                "min-free-pct",
                self.min_free_pct
                    .or(file.min_free_pct)
                    .unwrap_or(d.min_free_pct),
                0,
                50,
            )?,
            flush_interval_ms: in_range(
                "flush-interval-ms",
                self.flush_interval_ms
                    .or(file.flush_interval_ms)
                    .unwrap_or(d.flush_interval_ms),
                1,
                60_000,
            )?,
            history_retention_interval_s: in_range(
                "history-retention-interval-s",
                self.history_retention_interval_s
                    .or(file.history_retention_interval_s)
                    .unwrap_or(d.history_retention_interval_s),
                0,
                7 * 86_400,
            )?,
            stats_save_interval_s: in_range(
                "stats-save-interval-s",
                self.stats_save_interval_s
                    .or(file.stats_save_interval_s)
                    .unwrap_or(d.stats_save_interval_s),
                0,
                86_400,
            )?,
        })
    }

    fn limits_overrides(&self) -> LimitFlags {
        LimitFlags {
            max_frame_bytes: self.max_frame_bytes.clone(),
            max_batch_keys: self.max_batch_keys,
            max_features_per_request: self.max_features_per_request,
            max_connections: self.max_connections,
            max_inflight_per_connection: self.max_inflight_per_connection,
            max_scan_chunks: self.max_scan_chunks,
            idle_timeout_ms: self.idle_timeout_ms,
            frame_deadline_ms: self.frame_deadline_ms,
            max_output_bytes_per_connection: self.max_output_bytes_per_connection.clone(),
        }
    }
}

struct LimitFlags {
    max_frame_bytes: Option<String>,
    max_batch_keys: Option<u32>,
    max_features_per_request: Option<u32>,
    max_connections: Option<u32>,
    max_inflight_per_connection: Option<u32>,
    max_scan_chunks: Option<u32>,
    idle_timeout_ms: Option<u64>,
    frame_deadline_ms: Option<u64>,
    max_output_bytes_per_connection: Option<String>,
}

fn resolve_limits(flags: &LimitFlags, file: &FileConfig) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let frame = match flags
        .max_frame_bytes
        .as_ref()
        .or(file.max_frame_bytes.as_ref())
    {
        Some(s) => size_setting("max-frame-bytes", s)?,
        None => d.max_frame_bytes.into(),
    };
    let output = match flags
        .max_output_bytes_per_connection
        .as_ref()
        .or(file.max_output_bytes_per_connection.as_ref())
    {
        Some(s) => size_setting("max-output-bytes-per-connection", s)?,
        None => d.max_output_bytes_per_connection,
    };
    let pick32 = |f: Option<u32>, c: Option<u32>, default: u32| f.or(c).unwrap_or(default);
    let pick64 = |f: Option<u64>, c: Option<u64>, default: u64| f.or(c).unwrap_or(default);
    Ok(Limits {
        // 1 GiB keeps every length inside a frame far from u32::MAX.
        max_frame_bytes: in_range("max-frame-bytes", frame, 4096, 1 << 30)? as u32,
        max_batch_keys: in_range(
            "max-batch-keys",
            pick32(flags.max_batch_keys, file.max_batch_keys, d.max_batch_keys),
            1,
            1_000_000,
        )?,
        max_features_per_request: in_range(
            "max-features-per-request",
            pick32(
                flags.max_features_per_request,
                file.max_features_per_request,
                d.max_features_per_request,
            ),
            1,
            65_536,
        )?,
        max_connections: in_range(
            "max-connections",
            pick32(
                flags.max_connections,
                file.max_connections,
                d.max_connections,
            ),
            1,
            1_000_000,
        )?,
        max_inflight_per_connection: in_range(
            "max-inflight-per-connection",
            pick32(
                flags.max_inflight_per_connection,
                file.max_inflight_per_connection,
                d.max_inflight_per_connection,
            ),
            1,
            65_536,
        )?,
        max_scan_chunks: in_range(
            "max-scan-chunks",
            pick32(
                flags.max_scan_chunks,
                file.max_scan_chunks,
                d.max_scan_chunks,
            ),
            1,
            4_096,
        )?,
        idle_timeout_ms: in_range(
            "idle-timeout-ms",
            pick64(
                flags.idle_timeout_ms,
                file.idle_timeout_ms,
                d.idle_timeout_ms,
            ),
            100,
            86_400_000,
        )?,
        frame_deadline_ms: in_range(
            "frame-deadline-ms",
            pick64(
                flags.frame_deadline_ms,
                file.frame_deadline_ms,
                d.frame_deadline_ms,
            ),
            10,
            3_600_000,
        )?,
        max_output_bytes_per_connection: in_range(
            "max-output-bytes-per-connection",
            output,
            1 << 20,
            1 << 34,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::parse_from(std::iter::once("quiverd").chain(list.iter().copied()))
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmax_batch_keys = 7\nsize = \"2GiB\"\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let c = args(&["--config", f, "--max-batch-keys", "9"])
            .resolve(None)
            .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.max_batch_keys, 9);
        assert!(matches!(c.data, DataConfig::Path { size_bytes, .. } if size_bytes == 2 << 30));
    }

    #[test]
    fn storage_settings_come_from_flags_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.toml");
        std::fs::write(&file, "checkpoint_interval_s = 30\ndefrag_lwm_pct = 40\n").unwrap();
        let f = file.to_str().unwrap();
        let c = args(&[
            "--config",
            f,
            "--defrag-lwm-pct",
            "60",
            "--evict-high-water-pct",
            "90",
        ])
        .resolve(None)
        .unwrap();
        assert_eq!(c.storage.checkpoint_interval_s, 30);
        assert_eq!(c.storage.defrag_lwm_pct, 60);
        assert_eq!(c.storage.evict_high_water_pct, 90);
        assert_eq!(c.storage.min_free_pct, Storage::default().min_free_pct);
        let mut engine = quiver_engine::Config::default();
        c.storage.apply(&mut engine);
        assert_eq!(
            (engine.checkpoint_interval_s, engine.defrag_lwm_pct),
            (30, 60)
        );
        engine.validate().expect("in range for the engine too");
        for (flag, value) in [
            ("--defrag-lwm-pct", "0"),
            ("--min-free-pct", "51"),
            ("--evict-high-water-pct", "100"),
            ("--flush-interval-ms", "0"),
            ("--checkpoint-interval-s", "999999999"),
        ] {
            let err = args(&[flag, value]).resolve(None).unwrap_err().to_string();
            assert!(err.contains(&flag[2..]), "{flag} {value}: {err}");
        }
    }

    #[test]
    fn refuses_exposed_listener_without_token() {
        let err = args(&["--listen", "0.0.0.0:7878"])
            .resolve(None)
            .unwrap_err();
        assert!(
            matches!(err, ConfigError::UnprotectedListen { .. }),
            "{err}"
        );
        assert!(args(&["--listen", "0.0.0.0:7878"])
            .resolve(Some("t0ken".into()))
            .is_ok());
        assert!(args(&["--listen", "0.0.0.0:7878", "--trusted-network"])
            .resolve(None)
            .is_ok());
        let err = args(&["--http", "0.0.0.0:8080"]).resolve(None).unwrap_err();
        assert!(
            matches!(err, ConfigError::UnprotectedListen { addr } if addr.port() == 8080),
            "{err}"
        );
        let c = args(&["--http", "0.0.0.0:8080", "--http-threads", "3"])
            .resolve(Some("t0ken".into()))
            .unwrap();
        assert_eq!((c.http.unwrap().port(), c.http_threads), (8080, 3));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = args(&["--commit", "maybe"])
            .resolve(None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("commit"), "{err}");
        let err = args(&["--size", "4 gigs"])
            .resolve(None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("size"), "{err}");
        let err = args(&["--max-frame-bytes", "1B"])
            .resolve(None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max-frame-bytes"), "{err}");
    }
}
