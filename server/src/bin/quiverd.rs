//! `quiverd`: the Quiver feature store server.
//!
//! Prints `listening on ADDR` as the first line of stdout once it accepts connections (logs go
//! to stderr; then `metrics on ...` and `http on ...` when those are served), and shuts down gracefully on SIGTERM or SIGINT: stop accepting, finish
//! in-flight requests, then close the store (flush + checkpoint). SIGHUP rereads the TLS
//! certificate files and reopens the audit log, without closing any connection.

use clap::Parser;
use quiver_engine::{Config, DeviceConfig, Store};
use quiver_server::config::{Args, DataConfig, LogFormat, ServerConfig};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.resolve(std::env::var("QUIVER_AUTH_TOKEN").ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("quiverd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "quiverd failed");
            eprintln!("quiverd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("QUIVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Builds the engine configuration: a block device when the path is one, else a file
/// (created with its parent directory on first run), or memory.
fn engine_config(config: &ServerConfig) -> Result<Config, String> {
    let mut engine = match &config.data {
        DataConfig::Memory { size_bytes } => Config::memory(*size_bytes),
        DataConfig::Path { path, size_bytes } => {
            let is_block = std::fs::metadata(path)
                .map(|m| m.file_type().is_block_device())
                .unwrap_or(false);
            if is_block {
                // The index checkpoint cannot live next to a device node: keep it in
                // ./quiver-data/, named after the device.
                let name = path
                    .file_name()
                    .map_or("device".into(), |n| n.to_string_lossy());
                let checkpoint = std::path::Path::new("quiver-data").join(format!("{name}.ckpt"));
                std::fs::create_dir_all("quiver-data")
                    .map_err(|e| format!("cannot create ./quiver-data for the checkpoint: {e}"))?;
                Config {
                    device: DeviceConfig::BlockDevice { path: path.clone() },
                    checkpoint_path: Some(checkpoint),
                    ..Config::default()
                }
            } else {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        format!("cannot create data directory {}: {e}", parent.display())
                    })?;
                }
                Config::file(path.clone(), *size_bytes)
            }
        }
    };
    engine.durability = config.durability;
    config.storage.apply(&mut engine);
    Ok(engine)
}

/// How the store came back: from its checkpoint, by a full scan (and why), or created.
fn log_recovery(r: &quiver_engine::RecoveryReport) {
    tracing::info!(
        mode = %r.mode,
        records = r.records_recovered,
        elapsed_ms = r.elapsed_ms,
        blocks_scanned = r.blocks_scanned,
        mb_scanned = r.bytes_scanned / 1_000_000,
        "store recovered"
    );
    if let Some(why) = &r.checkpoint_fallback {
        tracing::warn!(reason = %why, "the checkpoint was not used; the whole device was scanned");
    }
    if r.corrupt_records > 0 || r.torn_tails > 0 {
        tracing::warn!(
            corrupt_records = r.corrupt_records,
            torn_tails = r.torn_tails,
            first = ?r.damage.first(),
            "damage found during recovery (skipped, never returned; `quiver inspect` lists it)"
        );
    }
}

/// 10,000 connections need more descriptors than the usual soft limit of 1,024.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the rlimit struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn run(config: ServerConfig) -> Result<(), String> {
    raise_fd_limit();
    let engine = engine_config(&config)?;
    tracing::info!(data = ?config.data, durability = ?config.durability, "opening store");
    let store = Store::open(engine).map_err(|e| format!("cannot open the store: {e}"))?;
    log_recovery(store.engine().recovery_report());
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let auth = config.auth_token.is_some();
    let handle = quiver_server::server::start(config, Arc::new(store))
        .map_err(|e| format!("cannot start the server: {e}"))?;
    {
        let mut out = std::io::stdout().lock();
        let scheme = if handle.tls() { "https" } else { "http" };
        let _ = writeln!(out, "listening on {}", handle.local_addr());
        if let Some(m) = handle.metrics_addr() {
            let _ = writeln!(out, "metrics on {scheme}://{m}/metrics");
        }
        if let Some(h) = handle.http_addr() {
            let _ = writeln!(out, "http on {scheme}://{h}");
        }
        let _ = out.flush();
    }
    tracing::info!(addr = %handle.local_addr(), auth, "quiverd serving");
    let mut signal = None;
    for sig in signals.forever() {
        if sig != SIGHUP {
            signal = Some(sig);
            break;
        }
        // Certificate rotation and log rotation: reread the TLS files, reopen the audit log.
        match handle.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificates reloaded, audit log reopened"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS reload failed; the old certificates stay")
            }
        }
    }
    tracing::info!(
        ?signal,
        "shutting down: no new connections, finishing in-flight requests"
    );
    let store = handle.shutdown();
    let store =
        Arc::try_unwrap(store).map_err(|_| "store still shared after shutdown".to_string())?;
    store
        .close()
        .map_err(|e| format!("closing the store failed: {e}"))?;
    tracing::info!("store closed; bye");
    Ok(())
}
