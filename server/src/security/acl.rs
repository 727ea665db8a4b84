//! Users, roles and grants: the record stored in the registry, its limits, and the rules that
//! turn a user's roles into a permission on a group.

use crate::protocol::wire::{put_len, put_str, put_strs, WireReader};
use crate::protocol::{Grant, Permission, RoleInfo, Scope, UserInfo};
use std::collections::BTreeMap;

/// Most users the registry holds.
pub const MAX_USERS: usize = 512;
/// Most roles the registry holds.
pub const MAX_ROLES: usize = 128;
/// Most roles one user holds.
pub const MAX_ROLES_PER_USER: usize = 8;
/// Most grants one role holds.
pub const MAX_GRANTS_PER_ROLE: usize = 32;
/// Longest user, role, group or tag name in a grant.
pub const MAX_NAME_BYTES: usize = 63;
/// Shortest and longest password.
pub const MIN_PASSWORD_BYTES: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 512;
/// Longest stored hash (a PHC string of argon2id is about 100 bytes).
pub const MAX_HASH_BYTES: usize = 255;

/// The largest record the limits allow: it must fit the engine's default record limit (1 MiB).
const MAX_RECORD_BYTES: usize = 1
    + 4
    + MAX_ROLES * (4 + MAX_NAME_BYTES + 4 + MAX_GRANTS_PER_ROLE * (2 + 4 + MAX_NAME_BYTES))
    + 4
    + MAX_USERS
        * (4 + MAX_NAME_BYTES + 4 + MAX_HASH_BYTES + 4 + MAX_ROLES_PER_USER * (4 + MAX_NAME_BYTES));
const _: () = assert!(MAX_RECORD_BYTES <= 1 << 20);

/// The built-in administrator's user and role name.
pub const ADMIN: &str = "admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// The argon2id PHC string (salt and parameters included). Never sent, logged or shown.
    pub hash: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub grants: Vec<Grant>,
}

/// Every user and role.
///
/// ## Format
///
/// Stored under engine group 0 (the registry's), key `acl`, written with `Durability::Sync`.
/// Integers little-endian; "str" is a u32 byte length and that many UTF-8 bytes.
///
/// | size | field |
/// | --- | --- |
/// | 1 | format version, `1` |
/// | 4 | role count R (at most 128), then R roles: str name, u32 grant count G (at most 32), G grants |
/// | 4 | user count U (at most 512), then U users: str name, str argon2id PHC hash, u32 role count (at most 8), that many str role names |
///
/// A grant is: u8 permission (1 read, 2 write, 3 admin), u8 scope kind (0 every group, 1 one
/// group, 2 a tag), str scope name (empty for kind 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub roles: BTreeMap<String, Role>,
    pub users: BTreeMap<String, User>,
}

/// A name of a user or role: 1..=63 bytes of `[a-z0-9_.-]`, starting with a letter.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} name of {} bytes is outside 1..={MAX_NAME_BYTES}",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) || !name.chars().all(ok_char) {
        return Err(format!(
            "{what} name '{name}' must start with a-z and hold only a-z, 0-9, '_', '.', '-'"
        ));
    }
    Ok(())
}

pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.len();
    if !(MIN_PASSWORD_BYTES..=MAX_PASSWORD_BYTES).contains(&n) {
        return Err(format!(
            "password of {n} bytes is outside {MIN_PASSWORD_BYTES}..={MAX_PASSWORD_BYTES}"
        ));
    }
    Ok(())
}

pub fn check_grant(grant: &Grant) -> Result<(), String> {
    match &grant.scope {
        Scope::All => Ok(()),
        Scope::Group(name) | Scope::Tag(name) if name.is_empty() || name.len() > 63 => Err(
            format!("scope name of {} bytes is outside 1..=63", name.len()),
        ),
        _ => Ok(()),
    }
}

impl Acl {
    /// The built-in administrator: role `admin` with admin on every group, user `admin`.
    pub fn bootstrap(hash: String) -> Acl {
        let mut acl = Acl::default();
        acl.roles.insert(
            ADMIN.into(),
            Role {
                name: ADMIN.into(),
                grants: vec![Grant {
                    permission: Permission::Admin,
                    scope: Scope::All,
                }],
            },
        );
        acl.users.insert(
            ADMIN.into(),
            User {
                name: ADMIN.into(),
                hash,
                roles: vec![ADMIN.into()],
            },
        );
        acl
    }

    /// The grants of a user's roles (roles that do not exist grant nothing).
    pub fn grants_of<'a>(&'a self, user: &str) -> impl Iterator<Item = &'a Grant> + 'a {
        let roles = self.users.get(user).map(|u| u.roles.as_slice());
        roles
            .unwrap_or(&[])
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.grants.iter())
    }

    /// The highest permission `user` has on the group named `group` carrying `tags`.
    pub fn permission(&self, user: &str, group: &str, tags: &[String]) -> Option<Permission> {
        self.grants_of(user)
            .filter(|g| match &g.scope {
                Scope::All => true,
                Scope::Group(name) => name == group,
                Scope::Tag(tag) => tags.contains(tag),
            })
            .map(|g| g.permission)
            .max()
    }

    /// Admin on every group: manages users and roles.
    pub fn is_global_admin(&self, user: &str) -> bool {
        self.grants_of(user)
            .any(|g| g.scope == Scope::All && g.permission == Permission::Admin)
    }

    pub fn user_infos(&self) -> Vec<UserInfo> {
        self.users
            .values()
            .map(|u| UserInfo {
                name: u.name.clone(),
                roles: u.roles.clone(),
            })
            .collect()
    }

    pub fn role_infos(&self) -> Vec<RoleInfo> {
        self.roles
            .values()
            .map(|r| RoleInfo {
                name: r.name.clone(),
                grants: r.grants.clone(),
            })
            .collect()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![1u8];
        put_len(&mut b, self.roles.len());
        for role in self.roles.values() {
            put_str(&mut b, &role.name);
            put_len(&mut b, role.grants.len());
            for g in &role.grants {
                crate::protocol::wire_grant(&mut b, g);
            }
        }
        put_len(&mut b, self.users.len());
        for user in self.users.values() {
            put_str(&mut b, &user.name);
            put_str(&mut b, &user.hash);
            put_strs(&mut b, &user.roles);
        }
        b
    }

    pub fn decode(bytes: &[u8]) -> Result<Acl, String> {
        let mut r = WireReader::new(bytes);
        let e = |e: crate::protocol::DecodeError| e.to_string();
        let version = r.u8("acl version").map_err(e)?;
        if version != 1 {
            return Err(format!("acl record version {version} is not 1"));
        }
        let mut acl = Acl::default();
        let n = r.count("roles", 8).map_err(e)?;
        for _ in 0..n {
            let name = r.string("role name").map_err(e)?;
            let g = r.count("grants", 6).map_err(e)?;
            let grants = (0..g)
                .map(|_| crate::protocol::read_grant(&mut r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(e)?;
            acl.roles.insert(name.clone(), Role { name, grants });
        }
        let n = r.count("users", 12).map_err(e)?;
        for _ in 0..n {
            let name = r.string("user name").map_err(e)?;
            let hash = r.string("password hash").map_err(e)?;
            let roles = r.strings("user roles").map_err(e)?;
            acl.users.insert(name.clone(), User { name, hash, roles });
        }
        r.finish("acl").map_err(e)?;
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(permission: Permission, scope: Scope) -> Grant {
        Grant { permission, scope }
    }

    #[test]
    fn permission_is_the_highest_matching_grant() {
        let mut acl = Acl::bootstrap("h".into());
        acl.roles.insert(
            "analyst".into(),
            Role {
                name: "analyst".into(),
                grants: vec![
                    grant(Permission::Read, Scope::Tag("pii".into())),
                    grant(Permission::Write, Scope::Group("clicks".into())),
                ],
            },
        );
        acl.users.insert(
            "ann".into(),
            User {
                name: "ann".into(),
                hash: "h".into(),
                roles: vec!["analyst".into(), "missing".into()],
            },
        );
        assert_eq!(
            acl.permission("ann", "clicks", &[]),
            Some(Permission::Write)
        );
        assert_eq!(
            acl.permission("ann", "users", &["pii".into()]),
            Some(Permission::Read)
        );
        assert_eq!(acl.permission("ann", "users", &[]), None);
        assert_eq!(acl.permission("nobody", "clicks", &[]), None);
        assert!(acl.is_global_admin("admin"));
        assert!(!acl.is_global_admin("ann"));
        assert_eq!(Acl::decode(&acl.encode()).unwrap(), acl);
    }

    #[test]
    fn decode_refuses_damage() {
        let acl = Acl::bootstrap("h".into());
        let bytes = acl.encode();
        assert!(Acl::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(Acl::decode(&v2).unwrap_err().contains("version 2"));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        check_name("user", "ann.b-1").unwrap();
        assert!(check_name("user", "").is_err());
        assert!(check_name("user", "Ann").is_err());
        assert!(check_name("user", "a:b").is_err());
        assert!(check_password("short").unwrap_err().contains("8..=512"));
        check_password("long enough").unwrap();
    }
}
