//! The CLI's error type and its exit codes.
//!
//! Every failure maps to one documented exit code (see [`EXIT_CODES_HELP`]) so scripts can tell
//! "the server is down" from "the row was wrong" without parsing messages.

use quiver_engine::feature::FeatureError;

/// Exit codes, documented in `quiver --help` and `docs/CLI.md`.
pub mod exit {
    pub const OK: u8 = 0;
    pub const INTERNAL: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const CORRUPTION: u8 = 3;
    pub const CONNECT: u8 = 4;
    pub const AUTH: u8 = 5;
    pub const NOT_FOUND: u8 = 6;
    pub const REJECTED: u8 = 7;
    pub const LOAD_ABORTED: u8 = 8;
    pub const FILE: u8 = 9;
    pub const STORE: u8 = 10;
    pub const DENIED: u8 = 11;
    pub const CHECK_FAILED: u8 = 12;
}

/// The exit-code table as `quiver --help` prints it.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  success
   1  internal error (a bug: please report it)
   2  bad command line: unknown flag, bad duration, size, key or value syntax
   3  corruption: `inspect` found damage, or the store reported a corrupt record
   4  cannot connect to quiverd, or the connection was lost
   5  quiverd refused the auth token
   6  not found: unknown feature group or feature
   7  rejected: the store refused the request (wrong type, limit exceeded, group exists, ...)
   8  load aborted: more rows were rejected than --max-errors allows
   9  file error: cannot read or write a file, or the file is not in the format it claims
  10  store or server failure: I/O error, device full, server shutting down
  11  permission denied: the user lacks the permission the command needs
  12  check failed: `quiver check` found a stale group or a drifted feature";

/// Everything the CLI can fail with. Messages name the thing and, where one applies, the limit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("corruption in {place}: {detail}")]
    Corruption { place: String, detail: String },
    #[error("cannot connect to {addr}: {reason}; is quiverd running?")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} lost: {reason}")]
    ConnectionLost { addr: String, reason: String },
    /// The server answers, but not in the way the client speaks: TLS refused on either side
    /// (a certificate, a CA, a protocol), or a plaintext client on a TLS port.
    #[error("cannot talk to {addr}: {reason}")]
    Tls { addr: String, reason: String },
    #[error("quiverd at {addr} refused the auth token: {reason}")]
    Auth { addr: String, reason: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Rejected(String),
    #[error("load aborted: {rejected} rows rejected, over --max-errors {max_errors}")]
    LoadAborted { rejected: u64, max_errors: u64 },
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Store(String),
    #[error("permission denied: {0}")]
    Denied(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// `quiver check` found problems; its report (text or JSON) is already printed.
    #[error("check failed: {0}")]
    CheckFailed(String),
}

pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    pub fn usage(msg: impl Into<String>) -> CliError {
        CliError::Usage(msg.into())
    }

    pub fn file(path: &std::path::Path, reason: impl std::fmt::Display) -> CliError {
        CliError::File {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => exit::USAGE,
            CliError::Corruption { .. } => exit::CORRUPTION,
            CliError::Connect { .. } | CliError::ConnectionLost { .. } | CliError::Tls { .. } => {
                exit::CONNECT
            }
            CliError::Auth { .. } => exit::AUTH,
            CliError::NotFound(_) => exit::NOT_FOUND,
            CliError::Rejected(_) => exit::REJECTED,
            CliError::LoadAborted { .. } => exit::LOAD_ABORTED,
            CliError::File { .. } => exit::FILE,
            CliError::Store(_) => exit::STORE,
            CliError::Denied(_) => exit::DENIED,
            CliError::Internal(_) => exit::INTERNAL,
            CliError::CheckFailed(_) => exit::CHECK_FAILED,
        }
    }

    /// A short machine name of the error kind, used in `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Usage(_) => "usage",
            CliError::Corruption { .. } => "corruption",
            CliError::Connect { .. } => "connect",
            CliError::ConnectionLost { .. } => "connection_lost",
            CliError::Tls { .. } => "tls",
            CliError::Auth { .. } => "auth",
            CliError::NotFound(_) => "not_found",
            CliError::Rejected(_) => "rejected",
            CliError::LoadAborted { .. } => "load_aborted",
            CliError::File { .. } => "file",
            CliError::Store(_) => "store",
            CliError::Denied(_) => "permission_denied",
            CliError::Internal(_) => "internal",
            CliError::CheckFailed(_) => "check_failed",
        }
    }
}

impl From<FeatureError> for CliError {
    fn from(err: FeatureError) -> CliError {
        match err {
            FeatureError::UnknownGroup { .. } | FeatureError::UnknownFeature { .. } => {
                CliError::NotFound(err.to_string())
            }
            FeatureError::Corrupt { what, detail } => CliError::Corruption {
                place: what.to_string(),
                detail,
            },
            other => CliError::Rejected(other.to_string()),
        }
    }
}

impl From<quiver_engine::Error> for CliError {
    fn from(err: quiver_engine::Error) -> CliError {
        use quiver_engine::Error as E;
        match err {
            E::Feature(f) => CliError::from(f),
            E::KeySize { .. }
            | E::RecordTooLarge { .. }
            | E::GenerationMismatch { .. }
            | E::AlreadyExists
            | E::NotFound => CliError::Rejected(err.to_string()),
            // A damaged key reads as CORRUPT, never as an older value: exit code 3.
            E::Corrupt { .. } => CliError::Corruption {
                place: "the store".into(),
                detail: err.to_string(),
            },
            other => CliError::Store(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_key_exits_with_the_corruption_code() {
        let err = CliError::from(quiver_engine::Error::Corrupt {
            group: 1,
            detail: "group 1 key 'k545'".into(),
        });
        assert_eq!(err.exit_code(), exit::CORRUPTION);
        assert!(err.to_string().contains("k545"), "{err}");
    }
}
