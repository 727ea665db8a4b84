//! Which permission each request needs, on which groups; refusals and admin operations go to
//! the audit log. A request naming several groups is refused whole at the first group it may
//! not use (PERMISSION_DENIED names it).

use crate::protocol::{Permission, Request, SecurityRequest, StatusCode};
use crate::security::{Access, AuditEvent, Principal, Security};

/// The tag that hides a group from `group list` (and from GROUP_DESCRIBE) for users who may
/// not read it.
pub const SENSITIVE_TAG: &str = "sensitive";

/// What the access check decided.
pub enum Verdict {
    Allow,
    /// An admin operation: allowed, and written to the audit log.
    Audited(String),
    Deny {
        target: String,
        message: String,
    },
}

fn deny(access: &Access, need: Permission, group: String) -> Verdict {
    let message = format!(
        "user '{}' lacks {} permission on group '{group}'",
        access.principal.name(),
        need.name()
    );
    Verdict::Deny {
        target: group,
        message,
    }
}

fn groups(
    sec: &Security,
    access: &mut Access,
    need: Permission,
    names: impl IntoIterator<Item = impl AsRef<str>>,
) -> Verdict {
    let names: Vec<String> = names.into_iter().map(|n| n.as_ref().to_string()).collect();
    match access.check(sec, need, names.iter().map(String::as_str)) {
        Ok(()) => Verdict::Allow,
        Err(group) => deny(access, need, group),
    }
}

fn admin_on(sec: &Security, access: &mut Access, group: &str) -> Verdict {
    match groups(sec, access, Permission::Admin, [group]) {
        Verdict::Allow => Verdict::Audited(group.to_string()),
        other => other,
    }
}

/// Whether `access` may run `request`.
pub fn authorize(sec: &Security, access: &mut Access, request: &Request) -> Verdict {
    let (read, write) = (Permission::Read, Permission::Write);
    match request {
        Request::Handshake { .. } | Request::Ping { .. } | Request::Stats => Verdict::Allow,
        // The map is public to every logged-in client (it names nodes, no data); REPLICATE
        // is refused on the client port whoever sends it.
        Request::ClusterMap | Request::Replicate(_) => Verdict::Allow,
        // Moving a node's partitions away is the superuser's (as user management is).
        Request::ClusterLeave { node } => {
            if access.is_super() {
                Verdict::Audited(format!("node {node}"))
            } else {
                Verdict::Deny {
                    target: format!("node {node}"),
                    message: format!(
                        "user '{}' may not run CLUSTER_LEAVE: only the superuser may",
                        access.principal.name()
                    ),
                }
            }
        }
        Request::GroupList { .. } => Verdict::Allow,
        Request::Put { group, .. } | Request::Delete { group, .. } => {
            groups(sec, access, write, [group])
        }
        Request::Get { features, .. } | Request::GetMany { features, .. } => {
            groups(sec, access, read, features.iter().map(|f| &f.group))
        }
        Request::GetAsOf(r) => groups(sec, access, read, r.features.iter().map(|f| &f.group)),
        Request::TrainingSet(r) => groups(sec, access, read, r.features.iter().map(|f| &f.group)),
        Request::History(r) => groups(sec, access, read, [&r.group]),
        Request::HistoryKeys(r) => groups(sec, access, read, [&r.group]),
        Request::Scan(s) => groups(sec, access, read, [&s.group]),
        Request::FeatureStats { group, .. } => groups(sec, access, read, [group]),
        Request::Baseline(b) => match b {
            crate::protocol::BaselineRequest::Show { .. } => groups(sec, access, read, [b.group()]),
            _ => groups(sec, access, write, [b.group()]),
        },
        Request::GroupDescribe { name } => {
            let sensitive = sec
                .store()
                .describe_group(name)
                .is_ok_and(|g| g.tags.iter().any(|t| t == SENSITIVE_TAG));
            if sensitive {
                groups(sec, access, read, [name])
            } else {
                Verdict::Allow
            }
        }
        Request::GroupCreate(spec) => {
            if access.is_super() {
                return Verdict::Audited(spec.name.clone());
            }
            let user = access.principal.name();
            match sec.acl().permission(user, &spec.name, &spec.tags) {
                Some(Permission::Admin) => Verdict::Audited(spec.name.clone()),
                _ => deny(access, Permission::Admin, spec.name.clone()),
            }
        }
        Request::GroupAlter { name, .. } | Request::GroupDrop { name } => {
            admin_on(sec, access, name)
        }
        Request::Security(req) => security(sec, access, req),
    }
}

fn security(sec: &Security, access: &Access, req: &SecurityRequest) -> Verdict {
    let target = req.target().unwrap_or_default();
    if !sec.may_run(&access.principal, req) {
        return Verdict::Deny {
            message: format!(
                "user '{}' may not run {}: it needs admin on every group",
                access.principal.name(),
                req.name()
            ),
            target,
        };
    }
    match req {
        SecurityRequest::Whoami | SecurityRequest::UserList | SecurityRequest::RoleList => {
            Verdict::Allow
        }
        _ => Verdict::Audited(target),
    }
}

/// Writes one audit line about `access`.
pub fn audit(sec: &Security, access: &Access, operation: &str, target: &str, denied: Option<&str>) {
    sec.audit.record(&AuditEvent {
        user: access.principal.name(),
        address: access.peer,
        operation,
        target: (!target.is_empty()).then_some(target),
        outcome: if denied.is_some() {
            "denied"
        } else {
            "allowed"
        },
        reason: denied,
    });
}

/// The status of a refused request.
pub const DENIED: StatusCode = StatusCode::PermissionDenied;

/// True when `p` may see a group with `tags` in `group list`.
pub fn listed(sec: &Security, access: &mut Access, name: &str, tags: &[String]) -> bool {
    matches!(access.principal, Principal::Super(_))
        || !tags.iter().any(|t| t == SENSITIVE_TAG)
        || access.permission(sec, name).is_some()
}

/// Logs and audits a refused login (the user name it claimed, never a byte of a secret).
pub fn login_refused(sec: &Security, token: &[u8], peer: Option<std::net::SocketAddr>, msg: &str) {
    let user = claimed_user(token);
    tracing::warn!(?peer, user, "handshake refused: {msg}");
    let who = Access::new(Principal::User(user.into()), peer);
    audit(sec, &who, "login", "", Some(msg));
}

/// The user name a refused handshake claimed, for the logs: the part before ':' when it is
/// a valid name, never any byte of a password or a token.
fn claimed_user(token: &[u8]) -> &str {
    let name = token
        .iter()
        .position(|&b| b == b':')
        .and_then(|i| std::str::from_utf8(&token[..i]).ok());
    match name {
        Some(n) if crate::security::acl::check_name("user", n).is_ok() => n,
        _ => "-",
    }
}
