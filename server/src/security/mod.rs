//! Who may do what: users and roles stored in the registry (engine group 0, key `acl`,
//! synchronous writes), logins checked against salted argon2id hashes, permissions per group
//! and per tag, the audit log and the failed-login limit. The event loops ask it before
//! serving a request; it never reads a request body itself.
//!
//! It must never log, return or count a password or a hash.

pub mod access;
pub mod acl;
pub mod audit;
pub mod limiter;
pub mod password;

pub use access::Access;
pub use audit::{Audit, AuditEvent, AuditTarget};

use crate::protocol::{Permission, Scope, SecurityReply, SecurityRequest, StatusCode};
use acl::{check_grant, check_name, check_password, Acl, Role, User};
use limiter::LoginLimiter;
use parking_lot::{Mutex, RwLock};
use quiver_engine::feature::registry::REGISTRY_GROUP;
use quiver_engine::{Durability, Store, WriteOptions};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Engine key of the [`Acl`] record in the registry's group.
pub const ACL_KEY: &[u8] = b"acl";

/// Who a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Every permission: the holder of the server's single token (`token`), or anyone on a
    /// server with neither a token nor users (`anonymous`).
    Super(&'static str),
    User(String),
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Super(name) => name,
            Principal::User(name) => name,
        }
    }
}

/// A refused request: its status and message (no secret in it).
pub type Refusal = (StatusCode, String);

pub struct Security {
    store: Arc<Store>,
    acl: RwLock<Arc<Acl>>,
    /// Moves on every change of users or roles: connections re-derive their permissions.
    generation: AtomicU64,
    /// Serializes changes (each is computed, written with `Sync`, then made visible).
    writer: Mutex<()>,
    token: Option<Vec<u8>>,
    pub audit: Audit,
    limiter: LoginLimiter,
}

fn refused(status: StatusCode, msg: impl Into<String>) -> Refusal {
    (status, msg.into())
}

impl Security {
    /// Loads the users and roles; creates the built-in `admin` from `admin_password` when the
    /// registry has no user yet (ignored, with a log line, when it has).
    pub fn open(
        store: Arc<Store>,
        token: Option<Vec<u8>>,
        admin_password: Option<&str>,
        audit: Audit,
    ) -> Result<Security, String> {
        let acl = match store.engine().get(REGISTRY_GROUP, ACL_KEY) {
            Ok(Some(record)) => {
                Acl::decode(&record.value).map_err(|e| format!("the users and roles: {e}"))?
            }
            Ok(None) => Acl::default(),
            Err(e) => return Err(format!("cannot read the users and roles: {e}")),
        };
        let security = Security {
            store,
            acl: RwLock::new(Arc::new(acl)),
            generation: AtomicU64::new(1),
            writer: Mutex::new(()),
            token,
            audit,
            limiter: LoginLimiter::default(),
        };
        match admin_password {
            Some(pw) if security.acl().users.is_empty() => {
                check_password(pw).map_err(|e| format!("admin password: {e}"))?;
                let acl = Acl::bootstrap(password::hash(pw)?);
                let _guard = security.writer.lock();
                security.commit(acl).map_err(|(_, m)| m)?;
                tracing::info!("created the built-in user 'admin'");
            }
            Some(_) => tracing::info!("users exist: the admin password setting is ignored"),
            None => {}
        }
        Ok(security)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn acl(&self) -> Arc<Acl> {
        self.acl.read().clone()
    }

    /// Changes when a user, a role, or a group (its tags) changes.
    pub fn generation(&self) -> u64 {
        self.generation
            .load(Ordering::Acquire)
            .wrapping_add(self.store.registry_changes() << 32)
    }

    /// Whether logins need credentials at all.
    pub fn enforcing(&self) -> bool {
        self.token.is_some() || !self.acl().users.is_empty()
    }

    /// True when checking `token` means verifying a password hash (slow: engine threads do
    /// it): the server has users and the token is not the server's.
    pub fn needs_hash(&self, token: &[u8]) -> bool {
        let is_token = self
            .token
            .as_ref()
            .is_some_and(|t| crate::server::token_matches(t, token));
        !is_token && !self.acl().users.is_empty() && token.contains(&b':')
    }

    /// Checks a handshake's token: the server's single token, or `user:password`.
    pub fn login(&self, peer: Option<SocketAddr>, token: &[u8]) -> Result<Principal, String> {
        let now = Instant::now();
        if let Some(ip) = peer.map(|p| p.ip()) {
            if let Err(wait_s) = self.limiter.check(ip, now) {
                return Err(format!(
                    "too many failed logins from {ip} (limit {} per {} s); retry in {wait_s} s",
                    limiter::MAX_FAILED_LOGINS,
                    limiter::FAILED_LOGIN_WINDOW.as_secs()
                ));
            }
        }
        let result = self.check_credentials(token);
        if result.is_err() {
            if let Some(ip) = peer.map(|p| p.ip()) {
                self.limiter.failed(ip, now);
            }
        }
        result
    }

    fn check_credentials(&self, token: &[u8]) -> Result<Principal, String> {
        if let Some(expected) = &self.token {
            if crate::server::token_matches(expected, token) {
                return Ok(Principal::Super("token"));
            }
        }
        let acl = self.acl();
        if acl.users.is_empty() {
            return match self.token {
                None => Ok(Principal::Super("anonymous")),
                Some(_) => Err("auth token refused".into()),
            };
        }
        let Some(colon) = token.iter().position(|&b| b == b':') else {
            return Err("credentials refused: send the server's token or user:password".into());
        };
        let (user, password) = (&token[..colon], &token[colon + 1..]);
        let user = std::str::from_utf8(user).unwrap_or("");
        match acl.users.get(user) {
            Some(u) if password::verify(&u.hash, password) => Ok(Principal::User(u.name.clone())),
            Some(_) => Err("credentials refused".into()),
            None => {
                password::verify_nobody(password);
                Err("credentials refused".into())
            }
        }
    }

    /// The highest permission of `who` on the group named `group` (its tags as the registry
    /// has them now; a group that does not exist has none).
    pub fn permission(&self, who: &Principal, group: &str) -> Option<Permission> {
        let user = match who {
            Principal::Super(_) => return Some(Permission::Admin),
            Principal::User(u) => u,
        };
        let tags = self
            .store
            .describe_group(group)
            .map(|g| g.tags.clone())
            .unwrap_or_default();
        self.acl().permission(user, group, &tags)
    }

    pub fn is_global_admin(&self, who: &Principal) -> bool {
        match who {
            Principal::Super(_) => true,
            Principal::User(u) => self.acl().is_global_admin(u),
        }
    }

    /// Who may run a SECURITY command: every user may ask who they are and change their own
    /// password; the rest needs admin on every group.
    pub fn may_run(&self, who: &Principal, req: &SecurityRequest) -> bool {
        match req {
            SecurityRequest::Whoami => true,
            SecurityRequest::UserPasswd { name, .. } if who.name() == name => {
                matches!(who, Principal::User(_))
            }
            _ => self.is_global_admin(who),
        }
    }

    pub fn whoami(&self, who: &Principal) -> SecurityReply {
        match who {
            Principal::Super(name) => SecurityReply::Whoami {
                user: name.to_string(),
                roles: Vec::new(),
                grants: vec![crate::protocol::Grant {
                    permission: Permission::Admin,
                    scope: Scope::All,
                }],
            },
            Principal::User(user) => {
                let acl = self.acl();
                SecurityReply::Whoami {
                    user: user.clone(),
                    roles: acl
                        .users
                        .get(user)
                        .map(|u| u.roles.clone())
                        .unwrap_or_default(),
                    grants: acl.grants_of(user).cloned().collect(),
                }
            }
        }
    }

    /// Writes `acl` durably, then makes it visible. The caller holds `writer`.
    fn commit(&self, acl: Acl) -> Result<(), Refusal> {
        let opts = WriteOptions {
            durability: Some(Durability::Sync),
            ..WriteOptions::default()
        };
        self.store
            .engine()
            .put(REGISTRY_GROUP, ACL_KEY, &acl.encode(), &opts)
            .map_err(|e| {
                refused(
                    StatusCode::StoreFailed,
                    format!("cannot store the users and roles: {e}"),
                )
            })?;
        *self.acl.write() = Arc::new(acl);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Runs a SECURITY command the caller may run ([`Security::may_run`]). Hashing and the
    /// synchronous write block: engine threads call it, never a loop.
    pub fn execute(&self, req: SecurityRequest) -> Result<SecurityReply, Refusal> {
        match req {
            SecurityRequest::UserList => return Ok(SecurityReply::Users(self.acl().user_infos())),
            SecurityRequest::RoleList => return Ok(SecurityReply::Roles(self.acl().role_infos())),
            SecurityRequest::Whoami => {
                return Err(refused(
                    StatusCode::Internal,
                    "WHOAMI is answered by the network loop",
                ))
            }
            _ => {}
        }
        // Hash before taking the lock: it is the slow part.
        let hashed = match &req {
            SecurityRequest::UserCreate { password, .. }
            | SecurityRequest::UserPasswd { password, .. } => {
                check_password(password).map_err(|m| refused(StatusCode::InvalidArgument, m))?;
                Some(password::hash(password).map_err(|m| refused(StatusCode::Internal, m))?)
            }
            _ => None,
        };
        let _guard = self.writer.lock();
        let mut acl = (*self.acl()).clone();
        changed(&mut acl, req, hashed)?;
        self.commit(acl)?;
        Ok(SecurityReply::Done)
    }
}

fn invalid(msg: String) -> Refusal {
    refused(StatusCode::InvalidArgument, msg)
}

fn not_found(what: &str, name: &str) -> Refusal {
    refused(StatusCode::NotFound, format!("no {what} named '{name}'"))
}

fn user_mut<'a>(acl: &'a mut Acl, name: &str) -> Result<&'a mut User, Refusal> {
    acl.users
        .get_mut(name)
        .ok_or_else(|| not_found("user", name))
}

fn role_mut<'a>(acl: &'a mut Acl, name: &str) -> Result<&'a mut Role, Refusal> {
    acl.roles
        .get_mut(name)
        .ok_or_else(|| not_found("role", name))
}

/// Applies one change to a copy of the users and roles, checking its limits.
fn changed(acl: &mut Acl, req: SecurityRequest, hashed: Option<String>) -> Result<(), Refusal> {
    match req {
        SecurityRequest::UserCreate { name, roles, .. } => {
            check_name("user", &name).map_err(invalid)?;
            if acl.users.contains_key(&name) {
                return Err(refused(
                    StatusCode::AlreadyExists,
                    format!("user '{name}' already exists"),
                ));
            }
            if acl.users.len() >= acl::MAX_USERS {
                return Err(refused(
                    StatusCode::LimitExceeded,
                    format!("the registry holds the limit of {} users", acl::MAX_USERS),
                ));
            }
            check_user_roles(acl, &roles)?;
            let hash = hashed.unwrap_or_default();
            acl.users.insert(name.clone(), User { name, hash, roles });
        }
        SecurityRequest::UserDrop { name } => {
            acl.users
                .remove(&name)
                .ok_or_else(|| not_found("user", &name))?;
        }
        SecurityRequest::UserPasswd { name, .. } => {
            user_mut(acl, &name)?.hash = hashed.unwrap_or_default();
        }
        SecurityRequest::RoleCreate { name } => {
            check_name("role", &name).map_err(invalid)?;
            if acl.roles.contains_key(&name) {
                return Err(refused(
                    StatusCode::AlreadyExists,
                    format!("role '{name}' already exists"),
                ));
            }
            if acl.roles.len() >= acl::MAX_ROLES {
                return Err(refused(
                    StatusCode::LimitExceeded,
                    format!("the registry holds the limit of {} roles", acl::MAX_ROLES),
                ));
            }
            let grants = Vec::new();
            acl.roles.insert(name.clone(), Role { name, grants });
        }
        SecurityRequest::RoleDrop { name } => {
            let holders: Vec<&str> = acl
                .users
                .values()
                .filter(|u| u.roles.contains(&name))
                .map(|u| u.name.as_str())
                .collect();
            if !holders.is_empty() {
                return Err(invalid(format!(
                    "role '{name}' is held by {}: take it from them first",
                    holders.join(", ")
                )));
            }
            acl.roles
                .remove(&name)
                .ok_or_else(|| not_found("role", &name))?;
        }
        SecurityRequest::RoleGrant { role, grant } => {
            check_grant(&grant).map_err(invalid)?;
            let role = role_mut(acl, &role)?;
            if !role.grants.contains(&grant) {
                if role.grants.len() >= acl::MAX_GRANTS_PER_ROLE {
                    return Err(refused(
                        StatusCode::LimitExceeded,
                        format!(
                            "role '{}' holds the limit of {} grants",
                            role.name,
                            acl::MAX_GRANTS_PER_ROLE
                        ),
                    ));
                }
                role.grants.push(grant);
            }
        }
        SecurityRequest::RoleRevoke { role, grant } => {
            let role = role_mut(acl, &role)?;
            let before = role.grants.len();
            role.grants.retain(|g| *g != grant);
            if role.grants.len() == before {
                return Err(refused(
                    StatusCode::NotFound,
                    format!("role '{}' has no grant {grant}", role.name),
                ));
            }
        }
        SecurityRequest::RoleAssign { role, user } => {
            check_user_roles(acl, std::slice::from_ref(&role))?;
            let u = user_mut(acl, &user)?;
            if !u.roles.contains(&role) {
                u.roles.push(role);
                let roles = u.roles.clone();
                check_user_roles(acl, &roles)?;
            }
        }
        SecurityRequest::RoleUnassign { role, user } => {
            let u = user_mut(acl, &user)?;
            let before = u.roles.len();
            u.roles.retain(|r| *r != role);
            if u.roles.len() == before {
                return Err(refused(
                    StatusCode::NotFound,
                    format!("user '{user}' does not hold role '{role}'"),
                ));
            }
        }
        SecurityRequest::UserList | SecurityRequest::RoleList | SecurityRequest::Whoami => {}
    }
    Ok(())
}

fn check_user_roles(acl: &Acl, roles: &[String]) -> Result<(), Refusal> {
    if roles.len() > acl::MAX_ROLES_PER_USER {
        return Err(refused(
            StatusCode::LimitExceeded,
            format!(
                "{} roles for one user exceed the limit of {}",
                roles.len(),
                acl::MAX_ROLES_PER_USER
            ),
        ));
    }
    match roles.iter().find(|r| !acl.roles.contains_key(*r)) {
        Some(r) => Err(not_found("role", r)),
        None => Ok(()),
    }
}
