//! The audit log: one JSON object per line for every admin operation and every refused
//! request or login, to a file (appended; rotation is left to the usual tools, which may
//! move the file and send SIGHUP: the server then reopens it) or to stderr.

use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    Off,
    Stderr,
    File(PathBuf),
}

/// One audit line's content. Never a password or a hash.
pub struct AuditEvent<'a> {
    pub user: &'a str,
    pub address: Option<SocketAddr>,
    pub operation: &'a str,
    /// The group (or user, role, grant) acted on.
    pub target: Option<&'a str>,
    /// `allowed` or `denied`.
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
}

pub struct Audit {
    target: AuditTarget,
    file: Mutex<Option<File>>,
}

fn open(path: &PathBuf) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Audit {
    pub fn new(target: AuditTarget) -> std::io::Result<Audit> {
        let file = match &target {
            AuditTarget::File(path) => Some(open(path)?),
            _ => None,
        };
        Ok(Audit {
            target,
            file: Mutex::new(file),
        })
    }

    /// Reopens the file (after a rotation moved it away).
    pub fn reopen(&self) -> std::io::Result<()> {
        if let AuditTarget::File(path) = &self.target {
            *self.file.lock() = Some(open(path)?);
        }
        Ok(())
    }

    pub fn record(&self, e: &AuditEvent<'_>) {
        if self.target == AuditTarget::Off {
            return;
        }
        let line = serde_json::json!({
            "time": chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "user": e.user,
            "address": e.address.map(|a| a.to_string()),
            "operation": e.operation,
            "group": e.target,
            "outcome": e.outcome,
            "reason": e.reason,
        });
        let mut text = line.to_string();
        text.push('\n');
        match &self.target {
            AuditTarget::Off => {}
            AuditTarget::Stderr => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
            AuditTarget::File(path) => {
                let mut file = self.file.lock();
                let written = file.as_mut().map(|f| f.write_all(text.as_bytes()));
                if !matches!(written, Some(Ok(()))) {
                    tracing::error!(path = %path.display(), "cannot write the audit log");
                }
            }
        }
    }
}
