//! Who sends a request to the HTTP API, and what they may do.
//!
//! Credentials come in the `Authorization` header: HTTP Basic (`Basic
//! base64(user:password)`), or a bearer of the server's token or of `user:password`. They are
//! checked by the same [`Security`] as the binary protocol's handshake, failed-login limit
//! per address included. A connection remembers the last credentials it had accepted, so a
//! keep-alive client's password is verified once per connection, not once per request. Every
//! route then asks for the same per-group permission as the matching binary request; a
//! refusal is a 403 naming the group, and goes to the audit log.

use super::ApiError;
use crate::protocol::{Permission, StatusCode};
use crate::security::{Access, Principal, Security};
use crate::server::authorize::{audit, listed, login_refused, SENSITIVE_TAG};
use crate::server::{token_matches, Shared};
use base64::Engine as _;
use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;

/// Longest `Authorization` value taken (a Basic value of the longest token, base64).
const MAX_CREDENTIALS_BYTES: usize = crate::server::MAX_TOKEN_BYTES * 4 / 3 + 16;

/// One connection's state of login: the credentials it last had accepted and who they are.
#[derive(Default)]
pub struct Session {
    verified: Mutex<Option<(Vec<u8>, Principal)>>,
}

/// The identity a request runs under, with its per-group permission cache.
pub struct Caller {
    access: Access,
}

/// The credentials of the request's `Authorization` header: the token bytes a handshake
/// would carry (the server's token, or `user:password`). `None` without the header.
fn credentials(headers: &HeaderMap) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.as_bytes();
    if value.len() > MAX_CREDENTIALS_BYTES {
        return Err(ApiError::new(
            StatusCode::AuthFailed,
            format!(
                "the Authorization header of {} bytes exceeds the limit of \
                 {MAX_CREDENTIALS_BYTES}",
                value.len()
            ),
        ));
    }
    let scheme_is = |name: &[u8]| {
        value.len() > name.len()
            && value[..name.len()].eq_ignore_ascii_case(name)
            && value[name.len()] == b' '
    };
    if scheme_is(b"bearer") {
        return Ok(Some(value[7..].to_vec()));
    }
    if scheme_is(b"basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value[6..].trim_ascii())
            .map_err(|e| {
                ApiError::new(
                    StatusCode::AuthFailed,
                    format!("the Basic credentials are not base64: {e}"),
                )
            })?;
        if !decoded.contains(&b':') {
            return Err(ApiError::new(
                StatusCode::AuthFailed,
                "the Basic credentials are not user:password",
            ));
        }
        return Ok(Some(decoded));
    }
    Err(ApiError::new(
        StatusCode::AuthFailed,
        "the Authorization header is neither Basic (user:password) nor Bearer (the server's \
         token or user:password)",
    ))
}

/// Who sends `headers`: the principal of their credentials (verified on an engine thread
/// when that means a password hash), or of a server that asks for none.
pub async fn identify(
    headers: &HeaderMap,
    shared: &Arc<Shared>,
    peer: Option<SocketAddr>,
    session: &Arc<Session>,
) -> Result<Caller, ApiError> {
    let security = &shared.security;
    let caller = |principal| Caller {
        access: Access::new(principal, peer),
    };
    let Some(token) = credentials(headers)? else {
        if !security.enforcing() {
            return Ok(caller(Principal::Super("anonymous")));
        }
        return Err(ApiError::new(
            StatusCode::AuthFailed,
            "this server requires credentials: send `Authorization: Basic \
             <base64 of user:password>` or `Authorization: Bearer <token>`",
        ));
    };
    if let Some((seen, who)) = &*session.verified.lock() {
        if token_matches(seen, &token) {
            return Ok(caller(who.clone()));
        }
    }
    let login = if security.needs_hash(&token) {
        let (s, t) = (shared.clone(), token.clone());
        tokio::task::spawn_blocking(move || s.security.login(peer, &t))
            .await
            .map_err(|e| ApiError::new(StatusCode::Internal, format!("login failed: {e}")))?
    } else {
        security.login(peer, &token)
    };
    match login {
        Ok(who) => {
            *session.verified.lock() = Some((token, who.clone()));
            Ok(caller(who))
        }
        Err(msg) => {
            login_refused(security, &token, peer, &msg);
            Err(ApiError::new(StatusCode::AuthFailed, msg))
        }
    }
}

impl Caller {
    /// Ok when the caller holds `need` on `group`; else a 403 naming the group, audited as
    /// `operation`.
    pub fn may(
        &mut self,
        security: &Security,
        need: Permission,
        group: &str,
        operation: &str,
    ) -> Result<(), ApiError> {
        if self.access.check(security, need, [group]).is_ok() {
            return Ok(());
        }
        let message = format!(
            "user '{}' lacks {} permission on group '{group}'",
            self.access.principal.name(),
            need.name()
        );
        audit(security, &self.access, operation, group, Some(&message));
        Err(ApiError::new(StatusCode::PermissionDenied, message))
    }

    /// Whether a group with `tags` shows in the caller's group list (a `sensitive` group
    /// only to those who may read it).
    pub fn lists(&mut self, security: &Security, name: &str, tags: &[String]) -> bool {
        listed(security, &mut self.access, name, tags)
    }

    /// Ok when the caller may see the description of a group with `tags`.
    pub fn may_describe(
        &mut self,
        security: &Security,
        name: &str,
        tags: &[String],
        operation: &str,
    ) -> Result<(), ApiError> {
        if tags.iter().any(|t| t == SENSITIVE_TAG) {
            return self.may(security, Permission::Read, name, operation);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn basic_and_bearer_credentials_are_read() {
        assert_eq!(credentials(&HeaderMap::new()).unwrap(), None);
        // "ana:pw 1" in base64.
        let basic = credentials(&with("Basic YW5hOnB3IDE=")).unwrap();
        assert_eq!(basic.as_deref(), Some(&b"ana:pw 1"[..]));
        let bearer = credentials(&with("bearer ana:pw")).unwrap();
        assert_eq!(bearer.as_deref(), Some(&b"ana:pw"[..]));
        for bad in ["Basic %%%", "Basic YW5h", "Digest x", "Bearer"] {
            let e = credentials(&with(bad)).unwrap_err();
            assert_eq!(e.http, 401, "{bad}: {e:?}");
        }
        let long = format!("Bearer {}", "x".repeat(MAX_CREDENTIALS_BYTES));
        let e = credentials(&with(&long)).unwrap_err();
        assert!(e.message.contains("exceeds the limit"), "{e:?}");
    }
}
