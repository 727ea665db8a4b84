//! SECURITY (opcode 0x50): users, roles, grants and WHOAMI. One opcode carries every command
//! (a leading command byte), so that the access-control commands add one entry to the opcode
//! table; the byte layout is in `docs/PROTOCOL.md`, "SECURITY".

use super::wire::{put_len, put_str, put_strs, WireReader};
use super::DecodeError;
use std::fmt;

/// What a grant allows. Ordered: admin implies write, write implies read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    Read = 1,
    Write = 2,
    Admin = 3,
}

impl Permission {
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        }
    }

    fn from_u8(v: u8) -> Result<Permission, DecodeError> {
        match v {
            1 => Ok(Permission::Read),
            2 => Ok(Permission::Write),
            3 => Ok(Permission::Admin),
            tag => Err(DecodeError::UnknownTag {
                what: "permission",
                tag,
            }),
        }
    }
}

impl std::str::FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Permission, String> {
        match s {
            "read" => Ok(Permission::Read),
            "write" => Ok(Permission::Write),
            "admin" => Ok(Permission::Admin),
            other => Err(format!(
                "'{other}' is not a permission: read, write or admin"
            )),
        }
    }
}

/// What a grant covers: every group, one group by name (whether or not it exists yet), or
/// every group carrying a tag (now and later).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    All,
    Group(String),
    Tag(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("*"),
            Scope::Group(g) => write!(f, "group:{g}"),
            Scope::Tag(t) => write!(f, "tag:{t}"),
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Scope, String> {
        if s == "*" {
            return Ok(Scope::All);
        }
        match s.split_once(':') {
            Some(("group", g)) if !g.is_empty() => Ok(Scope::Group(g.to_string())),
            Some(("tag", t)) if !t.is_empty() => Ok(Scope::Tag(t.to_string())),
            _ => Err(format!(
                "'{s}' is not a scope: '*', 'group:NAME' or 'tag:NAME'"
            )),
        }
    }
}

/// One permission on one scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    pub permission: Permission,
    pub scope: Scope,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.permission.name(), self.scope)
    }
}

/// A command of the SECURITY opcode. Passwords are never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub enum SecurityRequest {
    UserCreate {
        name: String,
        password: String,
        roles: Vec<String>,
    },
    UserDrop {
        name: String,
    },
    UserPasswd {
        name: String,
        password: String,
    },
    UserList,
    RoleCreate {
        name: String,
    },
    RoleDrop {
        name: String,
    },
    RoleGrant {
        role: String,
        grant: Grant,
    },
    RoleRevoke {
        role: String,
        grant: Grant,
    },
    /// Gives a role to a user.
    RoleAssign {
        role: String,
        user: String,
    },
    /// Takes a role from a user.
    RoleUnassign {
        role: String,
        user: String,
    },
    RoleList,
    Whoami,
}

impl fmt::Debug for SecurityRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(target) = self.target() {
            write!(f, " {target}")?;
        }
        Ok(())
    }
}

impl SecurityRequest {
    /// The command's name in the audit log and in errors.
    pub fn name(&self) -> &'static str {
        match self {
            SecurityRequest::UserCreate { .. } => "user_create",
            SecurityRequest::UserDrop { .. } => "user_drop",
            SecurityRequest::UserPasswd { .. } => "user_passwd",
            SecurityRequest::UserList => "user_list",
            SecurityRequest::RoleCreate { .. } => "role_create",
            SecurityRequest::RoleDrop { .. } => "role_drop",
            SecurityRequest::RoleGrant { .. } => "role_grant",
            SecurityRequest::RoleRevoke { .. } => "role_revoke",
            SecurityRequest::RoleAssign { .. } => "role_assign",
            SecurityRequest::RoleUnassign { .. } => "role_unassign",
            SecurityRequest::RoleList => "role_list",
            SecurityRequest::Whoami => "whoami",
        }
    }

    /// What the command acts on, for the audit log (never a password).
    pub fn target(&self) -> Option<String> {
        match self {
            SecurityRequest::UserCreate { name, .. }
            | SecurityRequest::UserDrop { name }
            | SecurityRequest::UserPasswd { name, .. } => Some(format!("user:{name}")),
            SecurityRequest::RoleCreate { name } | SecurityRequest::RoleDrop { name } => {
                Some(format!("role:{name}"))
            }
            SecurityRequest::RoleGrant { role, grant }
            | SecurityRequest::RoleRevoke { role, grant } => Some(format!("role:{role} {grant}")),
            SecurityRequest::RoleAssign { role, user }
            | SecurityRequest::RoleUnassign { role, user } => {
                Some(format!("role:{role} user:{user}"))
            }
            SecurityRequest::UserList | SecurityRequest::RoleList | SecurityRequest::Whoami => None,
        }
    }
}

/// A user as listed: never its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub roles: Vec<String>,
}

/// A role as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    pub name: String,
    pub grants: Vec<Grant>,
}

/// The answer to a SECURITY command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityReply {
    Done,
    Whoami {
        user: String,
        roles: Vec<String>,
        grants: Vec<Grant>,
    },
    Users(Vec<UserInfo>),
    Roles(Vec<RoleInfo>),
}

pub fn put_grant(b: &mut Vec<u8>, g: &Grant) {
    b.push(g.permission as u8);
    match &g.scope {
        Scope::All => {
            b.push(0);
            put_str(b, "");
        }
        Scope::Group(name) => {
            b.push(1);
            put_str(b, name);
        }
        Scope::Tag(tag) => {
            b.push(2);
            put_str(b, tag);
        }
    }
}

pub fn get_grant(r: &mut WireReader<'_>) -> Result<Grant, DecodeError> {
    let permission = Permission::from_u8(r.u8("permission")?)?;
    let kind = r.u8("scope kind")?;
    let name = r.string("scope name")?;
    let scope = match kind {
        0 if name.is_empty() => Scope::All,
        0 => return Err(DecodeError::AbsentNotZero { what: "scope name" }),
        1 => Scope::Group(name),
        2 => Scope::Tag(name),
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "scope kind",
                tag,
            })
        }
    };
    Ok(Grant { permission, scope })
}

fn put_grants(b: &mut Vec<u8>, grants: &[Grant]) {
    put_len(b, grants.len());
    grants.iter().for_each(|g| put_grant(b, g));
}

fn get_grants(r: &mut WireReader<'_>) -> Result<Vec<Grant>, DecodeError> {
    let n = r.count("grants", 6)?;
    (0..n).map(|_| get_grant(r)).collect()
}

pub fn put_security_request(b: &mut Vec<u8>, req: &SecurityRequest) {
    match req {
        SecurityRequest::UserCreate {
            name,
            password,
            roles,
        } => {
            b.push(1);
            put_str(b, name);
            put_str(b, password);
            put_strs(b, roles);
        }
        SecurityRequest::UserDrop { name } => {
            b.push(2);
            put_str(b, name);
        }
        SecurityRequest::UserPasswd { name, password } => {
            b.push(3);
            put_str(b, name);
            put_str(b, password);
        }
        SecurityRequest::UserList => b.push(4),
        SecurityRequest::RoleCreate { name } => {
            b.push(5);
            put_str(b, name);
        }
        SecurityRequest::RoleDrop { name } => {
            b.push(6);
            put_str(b, name);
        }
        SecurityRequest::RoleGrant { role, grant } => {
            b.push(7);
            put_str(b, role);
            put_grant(b, grant);
        }
        SecurityRequest::RoleRevoke { role, grant } => {
            b.push(8);
            put_str(b, role);
            put_grant(b, grant);
        }
        SecurityRequest::RoleAssign { role, user } => {
            b.push(9);
            put_str(b, role);
            put_str(b, user);
        }
        SecurityRequest::RoleUnassign { role, user } => {
            b.push(10);
            put_str(b, role);
            put_str(b, user);
        }
        SecurityRequest::RoleList => b.push(11),
        SecurityRequest::Whoami => b.push(12),
    }
}

pub fn get_security_request(r: &mut WireReader<'_>) -> Result<SecurityRequest, DecodeError> {
    Ok(match r.u8("security command")? {
        1 => SecurityRequest::UserCreate {
            name: r.string("user name")?,
            password: r.string("password")?,
            roles: r.strings("roles")?,
        },
        2 => SecurityRequest::UserDrop {
            name: r.string("user name")?,
        },
        3 => SecurityRequest::UserPasswd {
            name: r.string("user name")?,
            password: r.string("password")?,
        },
        4 => SecurityRequest::UserList,
        5 => SecurityRequest::RoleCreate {
            name: r.string("role name")?,
        },
        6 => SecurityRequest::RoleDrop {
            name: r.string("role name")?,
        },
        7 => SecurityRequest::RoleGrant {
            role: r.string("role name")?,
            grant: get_grant(r)?,
        },
        8 => SecurityRequest::RoleRevoke {
            role: r.string("role name")?,
            grant: get_grant(r)?,
        },
        9 => SecurityRequest::RoleAssign {
            role: r.string("role name")?,
            user: r.string("user name")?,
        },
        10 => SecurityRequest::RoleUnassign {
            role: r.string("role name")?,
            user: r.string("user name")?,
        },
        11 => SecurityRequest::RoleList,
        12 => SecurityRequest::Whoami,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "security command",
                tag,
            })
        }
    })
}

pub fn put_security_reply(b: &mut Vec<u8>, reply: &SecurityReply) {
    match reply {
        SecurityReply::Done => b.push(0),
        SecurityReply::Whoami {
            user,
            roles,
            grants,
        } => {
            b.push(1);
            put_str(b, user);
            put_strs(b, roles);
            put_grants(b, grants);
        }
        SecurityReply::Users(users) => {
            b.push(2);
            put_len(b, users.len());
            for u in users {
                put_str(b, &u.name);
                put_strs(b, &u.roles);
            }
        }
        SecurityReply::Roles(roles) => {
            b.push(3);
            put_len(b, roles.len());
            for role in roles {
                put_str(b, &role.name);
                put_grants(b, &role.grants);
            }
        }
    }
}

pub fn get_security_reply(r: &mut WireReader<'_>) -> Result<SecurityReply, DecodeError> {
    Ok(match r.u8("security reply kind")? {
        0 => SecurityReply::Done,
        1 => SecurityReply::Whoami {
            user: r.string("user name")?,
            roles: r.strings("roles")?,
            grants: get_grants(r)?,
        },
        2 => {
            let n = r.count("users", 8)?;
            let users = (0..n)
                .map(|_| {
                    Ok(UserInfo {
                        name: r.string("user name")?,
                        roles: r.strings("roles")?,
                    })
                })
                .collect::<Result<_, DecodeError>>()?;
            SecurityReply::Users(users)
        }
        3 => {
            let n = r.count("roles", 8)?;
            let roles = (0..n)
                .map(|_| {
                    Ok(RoleInfo {
                        name: r.string("role name")?,
                        grants: get_grants(r)?,
                    })
                })
                .collect::<Result<_, DecodeError>>()?;
            SecurityReply::Roles(roles)
        }
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "security reply kind",
                tag,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_request, encode_request, Opcode, Request, WireReader};

    /// The examples of docs/PROTOCOL.md, "SECURITY (0x50)".
    #[test]
    fn documented_bytes() {
        let mut out = Vec::new();
        encode_request(7, &Request::Security(SecurityRequest::Whoami), &mut out);
        let whoami = [
            0x51, 0x56, 1, 0x50, 0, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0x0c,
        ];
        assert_eq!(out, whoami);
        let grant = SecurityRequest::RoleGrant {
            role: "ana".into(),
            grant: Grant {
                permission: Permission::Read,
                scope: Scope::Tag("pii".into()),
            },
        };
        out.clear();
        encode_request(8, &Request::Security(grant.clone()), &mut out);
        let mut expected = vec![
            0x51, 0x56, 1, 0x50, 0, 0, 0, 0, 0x11, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0,
        ];
        expected.extend_from_slice(&[
            7, 3, 0, 0, 0, b'a', b'n', b'a', 1, 2, 3, 0, 0, 0, b'p', b'i', b'i',
        ]);
        assert_eq!(out, expected);
        match decode_request(Opcode::Security, &out[20..]).unwrap() {
            Request::Security(back) => assert_eq!(back, grant),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replies_round_trip_and_debug_hides_passwords() {
        let reply = SecurityReply::Roles(vec![RoleInfo {
            name: "r".into(),
            grants: vec![Grant {
                permission: Permission::Admin,
                scope: Scope::All,
            }],
        }]);
        let mut b = Vec::new();
        put_security_reply(&mut b, &reply);
        assert_eq!(get_security_reply(&mut WireReader::new(&b)).unwrap(), reply);
        let req = SecurityRequest::UserCreate {
            name: "u".into(),
            password: "hunter2hunter2".into(),
            roles: vec![],
        };
        assert!(!format!("{req:?}").contains("hunter2"));
        // A scope of kind 0 (every group) with a name is not canonical.
        let bad = [1u8, 0, 1, 0, 0, 0, b'x'];
        assert!(get_grant(&mut WireReader::new(&bad)).is_err());
    }
}
