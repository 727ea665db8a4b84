//! Failures of the package's operations, and their Python exceptions.
//!
//! Every failure becomes an instance of a class of `quiver.errors`: one class per protocol
//! status (an embedded store's engine errors go through the server's own status mapping, so
//! both modes raise the same class for the same cause), plus connection, timeout and protocol
//! errors of the transport.

use pyo3::prelude::*;
use quiver_server::client::ClientError;
use quiver_server::protocol::StatusCode;

/// Why an operation failed.
#[derive(Debug)]
pub enum Failure {
    /// A status the server (or the embedded engine, mapped the same way) answered.
    Status {
        status: StatusCode,
        message: String,
    },
    /// The server could not be reached, or the connection broke.
    Connection(String),
    Timeout(String),
    /// The server sent something this client cannot read.
    Protocol(String),
    /// The operation has no form for this kind of client (a node-local request on a cluster).
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, Failure>;

impl Failure {
    /// A caller's mistake found before anything was sent (INVALID_ARGUMENT).
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::Status {
            status: StatusCode::InvalidArgument,
            message: message.into(),
        }
    }

    /// A value of the wrong type for its feature or key (TYPE_MISMATCH).
    pub fn type_mismatch(message: impl Into<String>) -> Failure {
        Failure::Status {
            status: StatusCode::TypeMismatch,
            message: message.into(),
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn parts(&self) -> (&'static str, Option<u16>, &str) {
        match self {
            Failure::Status { status, message } => (status.name(), Some(*status as u16), message),
            Failure::Connection(m) => ("CONNECTION", None, m),
            Failure::Timeout(m) => ("TIMEOUT", None, m),
            Failure::Protocol(m) => ("PROTOCOL", None, m),
            Failure::Unsupported(m) => ("NOT_SUPPORTED", None, m),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        match e {
            ClientError::Server { status, message } => Failure::Status { status, message },
            ClientError::RequestTooLarge { .. } => Failure::Status {
                status: StatusCode::LimitExceeded,
                message: e.to_string(),
            },
            ClientError::Timeout { .. } => Failure::Timeout(e.to_string()),
            ClientError::Protocol(_) | ClientError::UnexpectedResponse { .. } => {
                Failure::Protocol(e.to_string())
            }
            other => Failure::Connection(other.to_string()),
        }
    }
}

impl From<quiver_engine::Error> for Failure {
    fn from(e: quiver_engine::Error) -> Failure {
        let (status, message) = quiver_server::server::engine_error(&e);
        Failure::Status { status, message }
    }
}

impl From<quiver_engine::feature::FeatureError> for Failure {
    fn from(e: quiver_engine::feature::FeatureError) -> Failure {
        Failure::from(quiver_engine::Error::from(e))
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        let (kind, code, message) = f.parts();
        Python::attach(|py| {
            let made = py
                .import("quiver.errors")
                .and_then(|m| m.getattr("from_failure"))
                .and_then(|make| make.call1((kind, code, message)));
            match made {
                Ok(exc) => PyErr::from_value(exc),
                Err(e) => e,
            }
        })
    }
}

/// Every protocol status as (name, code), for `quiver.errors` to check its classes against.
#[pyfunction]
pub fn status_codes() -> Vec<(&'static str, u16)> {
    StatusCode::ALL
        .iter()
        .map(|s| (s.name(), *s as u16))
        .collect()
}
