//! `quiver user create|drop|passwd|list`, `quiver role create|drop|grant|revoke|assign|
//! unassign|list`, `quiver whoami`: the users and roles quiverd keeps in its registry.

use quiver_server::protocol::{Grant, SecurityReply, SecurityRequest};
use serde_json::json;
use std::io::BufRead;

use super::backend::Backend;
use super::command::{RoleCommand, UserCommand};
use super::error::{CliError, CliResult};
use super::output::Out;

/// The new password of `user create` and `user passwd`: the environment variable
/// QUIVER_NEW_PASSWORD when set, else the first line of standard input (never a flag: a
/// flag shows in the process list).
fn new_password() -> CliResult<String> {
    if let Ok(pw) = std::env::var("QUIVER_NEW_PASSWORD") {
        return Ok(pw);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::usage(format!("cannot read the new password from stdin: {e}")))?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(CliError::usage(
            "no new password: set QUIVER_NEW_PASSWORD or write it as the first line of stdin",
        ));
    }
    Ok(pw)
}

fn done(backend: &mut dyn Backend, req: SecurityRequest, out: Out, what: String) -> CliResult<()> {
    backend.security(req)?;
    out.emit(json!({ "ok": true, "done": what }), || println!("{what}"));
    Ok(())
}

fn grant_json(g: &Grant) -> serde_json::Value {
    json!({ "permission": g.permission.name(), "scope": g.scope.to_string() })
}

pub fn user(cmd: &UserCommand, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    match cmd {
        UserCommand::Create { name, roles } => {
            let req = SecurityRequest::UserCreate {
                name: name.clone(),
                password: new_password()?,
                roles: roles.clone(),
            };
            done(backend, req, out, format!("created user '{name}'"))
        }
        UserCommand::Drop { name } => {
            let req = SecurityRequest::UserDrop { name: name.clone() };
            done(backend, req, out, format!("dropped user '{name}'"))
        }
        UserCommand::Passwd { name } => {
            let req = SecurityRequest::UserPasswd {
                name: name.clone(),
                password: new_password()?,
            };
            done(
                backend,
                req,
                out,
                format!("changed the password of '{name}'"),
            )
        }
        UserCommand::List => {
            let SecurityReply::Users(users) = backend.security(SecurityRequest::UserList)? else {
                return Err(CliError::Internal("user list: unexpected reply".into()));
            };
            let doc = json!({ "users": users.iter().map(|u| json!({ "name": u.name, "roles": u.roles })).collect::<Vec<_>>() });
            out.emit(doc, || {
                for u in &users {
                    println!("{:<24} roles: {}", u.name, u.roles.join(", "));
                }
            });
            Ok(())
        }
    }
}

pub fn role(cmd: &RoleCommand, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let grant = |permission: &str, scope: &str| -> CliResult<Grant> {
        Ok(Grant {
            permission: permission.parse().map_err(CliError::Usage)?,
            scope: scope.parse().map_err(CliError::Usage)?,
        })
    };
    match cmd {
        RoleCommand::Create { name } => {
            let req = SecurityRequest::RoleCreate { name: name.clone() };
            done(backend, req, out, format!("created role '{name}'"))
        }
        RoleCommand::Drop { name } => {
            let req = SecurityRequest::RoleDrop { name: name.clone() };
            done(backend, req, out, format!("dropped role '{name}'"))
        }
        RoleCommand::Grant {
            role,
            permission,
            scope,
        } => {
            let grant = grant(permission, scope)?;
            let what = format!("granted {grant} to role '{role}'");
            let req = SecurityRequest::RoleGrant {
                role: role.clone(),
                grant,
            };
            done(backend, req, out, what)
        }
        RoleCommand::Revoke {
            role,
            permission,
            scope,
        } => {
            let grant = grant(permission, scope)?;
            let what = format!("revoked {grant} from role '{role}'");
            let req = SecurityRequest::RoleRevoke {
                role: role.clone(),
                grant,
            };
            done(backend, req, out, what)
        }
        RoleCommand::Assign { role, member: user } => {
            let req = SecurityRequest::RoleAssign {
                role: role.clone(),
                user: user.clone(),
            };
            done(
                backend,
                req,
                out,
                format!("user '{user}' holds role '{role}'"),
            )
        }
        RoleCommand::Unassign { role, member: user } => {
            let req = SecurityRequest::RoleUnassign {
                role: role.clone(),
                user: user.clone(),
            };
            done(
                backend,
                req,
                out,
                format!("user '{user}' no longer holds role '{role}'"),
            )
        }
        RoleCommand::List => {
            let SecurityReply::Roles(roles) = backend.security(SecurityRequest::RoleList)? else {
                return Err(CliError::Internal("role list: unexpected reply".into()));
            };
            let doc = json!({ "roles": roles.iter().map(|r| json!({ "name": r.name, "grants": r.grants.iter().map(grant_json).collect::<Vec<_>>() })).collect::<Vec<_>>() });
            out.emit(doc, || {
                for r in &roles {
                    let grants: Vec<String> = r.grants.iter().map(Grant::to_string).collect();
                    println!("{:<24} {}", r.name, grants.join("; "));
                }
            });
            Ok(())
        }
    }
}

pub fn whoami(backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let SecurityReply::Whoami {
        user,
        roles,
        grants,
    } = backend.security(SecurityRequest::Whoami)?
    else {
        return Err(CliError::Internal("whoami: unexpected reply".into()));
    };
    let doc = json!({ "user": user, "roles": roles, "grants": grants.iter().map(grant_json).collect::<Vec<_>>() });
    out.emit(doc, || {
        println!("user:   {user}");
        println!("roles:  {}", roles.join(", "));
        for g in &grants {
            println!("grant:  {g}");
        }
    });
    Ok(())
}
