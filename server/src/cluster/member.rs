//! Membership: this node's registration under an etcd lease, the keepalive, reading the
//! nodes and the map, and the map changes (the first map; taking dead nodes out). Every map
//! change is an etcd transaction that compares the map key's revision with the one the new
//! map was computed from, so of two nodes racing to change it, one wins and the other
//! recomputes from the winner's map.

use super::etcd::{Compare, EtcdError, PutOp};
use super::map::PartitionMap;
use super::{Cluster, NodeInfo, View};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn node_key(c: &Cluster, id: u32) -> String {
    format!("{}nodes/{id}", c.config.prefix())
}

fn map_key(c: &Cluster) -> String {
    format!("{}map", c.config.prefix())
}

/// Registers `me` under a new lease; refused while another live node holds the id.
pub(super) fn register(c: &Cluster, me: &NodeInfo) -> Result<(), String> {
    let ttl = c.config.lease_ttl_s;
    let sent = Instant::now();
    let lease = c.etcd.lease_grant(ttl).map_err(|e| e.to_string())?;
    let key = node_key(c, me.id);
    let value = json!({"id": me.id, "client": me.client, "peer": me.peer}).to_string();
    let put = PutOp {
        key: key.clone(),
        value: value.into_bytes(),
        lease,
    };
    let registered = c
        .etcd
        .txn(&[Compare::Absent(key.clone())], &[put])
        .map_err(|e| e.to_string())?;
    if !registered {
        let _ = c.etcd.lease_revoke(lease);
        let holder = c
            .etcd
            .get(&key)
            .ok()
            .flatten()
            .and_then(|kv| parse_node(&kv.value))
            .map_or_else(|| "another node".to_string(), |n| n.client);
        return Err(format!(
            "node id {} is already registered in cluster '{}' by {holder} (its etcd lease is \
             alive): choose another --node-id, or wait up to {ttl} s for that lease to lapse",
            me.id, c.config.name
        ));
    }
    c.lease_id
        .store(lease, std::sync::atomic::Ordering::Release);
    c.lease_confirmed(sent, ttl as i64);
    Ok(())
}

fn parse_node(bytes: &[u8]) -> Option<NodeInfo> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(NodeInfo {
        id: u32::try_from(v.get("id")?.as_u64()?).ok()?,
        client: v.get("client")?.as_str()?.to_string(),
        peer: v.get("peer")?.as_str()?.to_string(),
    })
}

/// Reads the live nodes and the map from etcd into the cluster's view.
pub(super) fn refresh(c: &Cluster) -> Result<(), EtcdError> {
    let nodes_prefix = format!("{}nodes/", c.config.prefix());
    let mut nodes = BTreeMap::new();
    for kv in c.etcd.range_prefix(&nodes_prefix)? {
        match parse_node(&kv.value) {
            Some(n) => {
                nodes.insert(n.id, n);
            }
            None => {
                tracing::warn!(key = %kv.key, "ignoring a node registration that is not understood")
            }
        }
    }
    let (map, map_revision) = match c.etcd.get(&map_key(c))? {
        None => (None, 0),
        Some(kv) => match PartitionMap::from_json(&kv.value) {
            Ok(m) => (Some(m), kv.mod_revision),
            Err(e) => {
                tracing::error!(error = %e, "the partition map in etcd is not valid; keeping the last one");
                (c.view().map.clone(), c.view().map_revision)
            }
        },
    };
    let old = c.view();
    if old.map.as_ref().map(|m| m.version) != map.as_ref().map(|m| m.version) {
        if let Some(m) = &map {
            let mine = m
                .partitions
                .iter()
                .filter(|p| p.master == c.node_id())
                .count();
            tracing::info!(
                version = m.version,
                masters_here = mine,
                "partition map changed"
            );
        }
    }
    c.set_view(View {
        map,
        map_revision,
        nodes,
    });
    Ok(())
}

/// Makes the first map, or takes dead nodes out of the current one, when needed.
fn change_map(c: &Cluster) -> Result<(), EtcdError> {
    if !c.lease_alive() {
        return Ok(());
    }
    let view = c.view();
    let live: BTreeSet<u32> = view.nodes.keys().copied().collect();
    let (next, compare) = match &view.map {
        None if live.len() >= c.config.initial_nodes => {
            match PartitionMap::initial(&live, c.config.replication_factor) {
                Ok(m) => (m, Compare::Absent(map_key(c))),
                Err(e) => {
                    tracing::error!(error = %e, "cannot make the first partition map");
                    return Ok(());
                }
            }
        }
        None => return Ok(()),
        Some(map) => match map.plan(&live) {
            Some(next) => (next, Compare::ModRevision(map_key(c), view.map_revision)),
            None => return Ok(()),
        },
    };
    let put = PutOp {
        key: map_key(c),
        value: next.to_json(),
        lease: 0,
    };
    if c.etcd.txn(&[compare], &[put])? {
        let gone: Vec<u32> = view
            .map
            .as_ref()
            .map(|m| m.nodes().difference(&next.nodes()).copied().collect())
            .unwrap_or_default();
        tracing::info!(version = next.version, nodes = ?live, taken_out = ?gone,
            migrations = next.migrations(), "partition map written");
    }
    refresh(c)
}

/// Called once at start, after registering and before serving: takes this node out of
/// every partition of the map that has another live copy. The map names a starting node only
/// when it died and came back before the survivors took it out (they do within about a tenth
/// of the lease TTL of its lease lapsing, but a restart loop can re-register the moment the
/// old lease lapses and win that race). Its store cannot be trusted to hold what its copies
/// acknowledged: a memory store is empty, a file store has lost its buffered writes. So the
/// live replicas take over its partitions first, and it gets copies again as any returning
/// node does. A partition with no other live copy keeps it: its store is all there is.
pub(super) fn step_out(c: &Cluster) -> Result<(), String> {
    let me = c.node_id();
    for _ in 0..20 {
        refresh(c).map_err(|e| e.to_string())?;
        let view = c.view();
        let Some(map) = &view.map else {
            return Ok(());
        };
        let others: BTreeSet<u32> = view.nodes.keys().copied().filter(|n| *n != me).collect();
        let Some(next) = map.without_dead(&others) else {
            return Ok(());
        };
        if write_map(c, &view, &next).map_err(|e| e.to_string())? {
            let kept = next.partitions.iter().filter(|p| p.holds(me)).count();
            tracing::warn!(
                version = next.version,
                kept_alone = kept,
                "the partition map still named this node from before its restart: it \
                 stepped out of every partition with another live copy"
            );
            return Ok(());
        }
    }
    Err(format!(
        "cannot take node {me} out of the partition map it is still named in from before its \
         restart: the map kept changing (20 attempts)"
    ))
}

/// Writes `next` if the map is still the one `view` holds (compare-and-swap on its etcd
/// revision); refreshes the view either way. `Ok(false)`: another change won.
pub(super) fn write_map(c: &Cluster, view: &View, next: &PartitionMap) -> Result<bool, EtcdError> {
    let put = PutOp {
        key: map_key(c),
        value: next.to_json(),
        lease: 0,
    };
    let compare = Compare::ModRevision(map_key(c), view.map_revision);
    let written = c.etcd.txn(&[compare], &[put])?;
    refresh(c)?;
    Ok(written)
}

/// Marks `node` as leaving: its partitions migrate to the other nodes. Returns the map
/// version that says so.
pub(super) fn leave(c: &Cluster, node: u32) -> Result<u64, String> {
    for _ in 0..20 {
        refresh(c).map_err(|e| e.to_string())?;
        let view = c.view();
        let Some(map) = &view.map else {
            return Err("the cluster has no partition map yet".into());
        };
        if map.draining.contains(&node) {
            return Ok(map.version);
        }
        if !view.nodes.contains_key(&node) && !map.nodes().contains(&node) {
            return Err(format!(
                "node {node} is neither registered nor in the partition map"
            ));
        }
        let others = view
            .nodes
            .keys()
            .filter(|n| **n != node && !map.draining.contains(n))
            .count();
        if others < usize::from(map.replication_factor) {
            return Err(format!(
                "node {node} cannot leave: {others} other nodes would remain, and the \
                 replication factor is {}",
                map.replication_factor
            ));
        }
        let mut next = map.clone();
        next.version += 1;
        next.draining.insert(node);
        if write_map(c, &view, &next).map_err(|e| e.to_string())? {
            return Ok(next.version);
        }
    }
    Err("the partition map kept changing; try again".into())
}

/// The membership thread: keepalive every third of the TTL, and the view refreshed (and the
/// map changed when needed) every tenth of it.
pub(super) fn run(c: &Cluster) {
    let ttl_ms = c.config.lease_ttl_s * 1000;
    let poll = Duration::from_millis((ttl_ms / 10).clamp(100, 1000));
    let keepalive_every = Duration::from_millis(ttl_ms / 3);
    let mut last_keepalive = Instant::now();
    while !c.stopping() {
        if last_keepalive.elapsed() >= keepalive_every {
            last_keepalive = Instant::now();
            keepalive(c);
        }
        if let Err(e) = refresh(c).and_then(|()| change_map(c)) {
            tracing::warn!(error = %e, "cluster view not refreshed");
        }
        std::thread::sleep(poll);
    }
}

fn keepalive(c: &Cluster) {
    let lease = c.lease_id.load(std::sync::atomic::Ordering::Acquire);
    let sent = Instant::now();
    match c.etcd.lease_keepalive(lease) {
        Ok(ttl) if ttl > 0 => c.lease_confirmed(sent, ttl),
        Ok(_) => {
            tracing::warn!(
                node = c.node_id(),
                "the etcd lease lapsed: registering again (the survivors take this node out of \
                 the partition map if they saw the lapse first; its store is intact either way)"
            );
            let me = c.me.read().clone();
            if let Some(me) = me {
                if let Err(e) = register(c, &me) {
                    tracing::error!(error = %e, "cannot register again");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "lease keepalive failed"),
    }
}
