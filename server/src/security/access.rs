//! One connection's identity and its permissions, cached per group until users, roles or
//! group tags change: a revocation applies to the next request of every open connection.

use super::{Principal, Security};
use crate::protocol::Permission;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Groups whose permission one connection caches; past it the cache starts over.
const MAX_CACHED_GROUPS: usize = 1024;

pub struct Access {
    pub principal: Principal,
    /// The client's address, for the audit log.
    pub peer: Option<SocketAddr>,
    /// [`Security::generation`] the cache was filled at.
    generation: u64,
    groups: HashMap<String, Option<Permission>>,
    /// The raw reference list of the last GET that was allowed at `generation` (GETs of a
    /// client usually repeat one list: its check is then one comparison of bytes).
    allowed_refs: Vec<u8>,
}

impl Access {
    pub fn new(principal: Principal, peer: Option<SocketAddr>) -> Access {
        Access {
            principal,
            peer,
            generation: 0,
            groups: HashMap::new(),
            allowed_refs: Vec::new(),
        }
    }

    pub fn is_super(&self) -> bool {
        matches!(self.principal, Principal::Super(_))
    }

    fn refresh(&mut self, security: &Security) {
        let now = security.generation();
        if now != self.generation || self.groups.len() >= MAX_CACHED_GROUPS {
            self.generation = now;
            self.groups.clear();
            self.allowed_refs.clear();
        }
    }

    /// The permission on `group`.
    pub fn permission(&mut self, security: &Security, group: &str) -> Option<Permission> {
        if self.is_super() {
            return Some(Permission::Admin);
        }
        self.refresh(security);
        if let Some(p) = self.groups.get(group) {
            return *p;
        }
        let p = security.permission(&self.principal, group);
        self.groups.insert(group.to_string(), p);
        p
    }

    /// Ok when every group of `groups` allows `need`; else the first group that does not.
    pub fn check<'a>(
        &mut self,
        security: &Security,
        need: Permission,
        groups: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        if self.is_super() {
            return Ok(());
        }
        for g in groups {
            if self.permission(security, g).is_none_or(|p| p < need) {
                return Err(g.to_string());
            }
        }
        Ok(())
    }

    /// True when a GET with these raw reference bytes was allowed since the last change.
    pub fn refs_allowed(&mut self, security: &Security, raw: &[u8]) -> bool {
        if self.is_super() {
            return true;
        }
        self.refresh(security);
        !self.allowed_refs.is_empty() && self.allowed_refs == raw
    }

    pub fn remember_refs(&mut self, raw: &[u8]) {
        self.allowed_refs.clear();
        self.allowed_refs.extend_from_slice(raw);
    }
}
