//! Errors of the HTTP API: an HTTP status, the protocol's status name, and a message.
//!
//! ## Format
//!
//! Every error is answered with a JSON body `{"status": NAME, "code": N, "message": TEXT}`:
//! `NAME` and `N` are the binary protocol's status (docs/PROTOCOL.md, "Status codes"), so a
//! client sees the same names over both.

use crate::protocol::StatusCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status code of the answer.
    pub http: u16,
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// An error with the HTTP status that goes with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            http: http_status(status),
            status,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::InvalidArgument, message)
    }

    /// A request over a named limit: 400 with LIMIT_EXCEEDED.
    pub fn limit(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::LimitExceeded, message)
    }

    /// A body over the size limit: 413 with LIMIT_EXCEEDED.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError {
            http: 413,
            ..ApiError::limit(message)
        }
    }

    pub fn from_engine(err: &quiver_engine::Error) -> ApiError {
        let (status, message) = crate::server::engine_error(err);
        ApiError::new(status, message)
    }

    /// The JSON body of the answer.
    pub fn body(&self) -> Vec<u8> {
        let body = serde_json::json!({
            "status": self.status.name(),
            "code": self.status as u16,
            "message": self.message,
        });
        serde_json::to_vec(&body).expect("a JSON object of strings and a number serializes")
    }
}

/// The HTTP status for a protocol status.
pub fn http_status(status: StatusCode) -> u16 {
    use StatusCode as S;
    match status {
        S::Ok => 200,
        S::BadFrame
        | S::UnsupportedVersion
        | S::LimitExceeded
        | S::TypeMismatch
        | S::InvalidArgument => 400,
        S::HandshakeRequired | S::AuthFailed => 401,
        S::PermissionDenied => 403,
        S::UnknownOpcode | S::UnknownGroup | S::UnknownFeature | S::NotFound => 404,
        S::GroupExists | S::AlreadyExists | S::GenerationMismatch => 409,
        S::DeviceFull => 507,
        S::ShuttingDown | S::Busy | S::NotMaster | S::Unavailable => 503,
        S::StoreFailed | S::Internal => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_an_http_status_and_a_json_body() {
        for s in StatusCode::ALL {
            let e = ApiError::new(s, "why");
            assert!((200..600).contains(&e.http));
            let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
            assert_eq!(v["status"], s.name());
            assert_eq!(v["code"], s as u16);
            assert_eq!(v["message"], "why");
        }
        assert_eq!(ApiError::too_large("big").http, 413);
        assert_eq!(ApiError::limit("many").http, 400);
    }
}
