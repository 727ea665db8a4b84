//! The partition map: for each of the 4096 partitions of the key space, its master and its
//! replicas, under one version number. It lives in etcd as JSON and changes only through a
//! compare-and-swap transaction on its etcd revision; every change adds 1 to `version`.
//!
//! A key's partition is the top 12 bits of `xxh3-128(0u32 LE ++ key bytes)`: the index's
//! digest and partition bits, with group id 0, so that every group of one entity lives on the
//! same node (a GET reads one entity across groups).

use quiver_engine::feature::EntityKey;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Partitions of the key space (the index's partition count).
pub const PARTITIONS: usize = quiver_index::PARTITIONS;
/// Largest replication factor (master included).
pub const MAX_REPLICATION_FACTOR: u8 = 5;
/// Largest node id; 0 means "no node".
pub const MAX_NODE_ID: u32 = 1 << 20;
/// "No master" in a placement.
pub const NO_NODE: u32 = 0;
/// Most partition copies in flight at once (learners in the map): the planner adds no more
/// until some are promoted, so a join or a drain moves partitions in waves.
pub const MAX_MIGRATIONS: usize = 256;

/// The partition of an entity key. A key that cannot be encoded lands in partition 0 (the
/// node that owns it then refuses the key with the usual error).
pub fn partition_of(key: &EntityKey) -> usize {
    match key.to_key_bytes() {
        Ok(bytes) => partition_of_bytes(&bytes),
        Err(_) => 0,
    }
}

pub fn partition_of_bytes(key: &[u8]) -> usize {
    (quiver_index::digest(0, key) >> (128 - quiver_index::PARTITION_BITS)) as usize
}

/// Who holds one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// [`NO_NODE`] while the partition has no master (every copy is down).
    pub master: u32,
    /// Nodes that receive every write of the partition before it is acknowledged.
    pub replicas: Vec<u32>,
    /// Nodes receiving a copy of the partition from its master (a migration or a catch-up):
    /// not in sync yet, so never made master by a failover and not counted as a copy.
    pub learners: Vec<Learner>,
}

/// A node being given a copy of a partition. Once the master has copied everything to it
/// (and it received every write since), the master promotes it in the map: it takes the
/// place of `replaces` (as master, if that node was the master) or becomes one more replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learner {
    pub node: u32,
    /// The copy this one takes over ([`NO_NODE`]: none, the partition lacks a copy).
    pub replaces: u32,
    /// The map version that added it: names this copy (a learner dropped and added again
    /// is a new copy, started from scratch).
    pub since: u64,
}

impl Placement {
    /// Master and replicas (the copies in sync), master first.
    pub fn copies(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.master)
            .chain(self.replicas.iter().copied())
            .filter(|n| *n != NO_NODE)
    }

    /// Whether `node` is a copy or a learner of this partition.
    pub fn holds(&self, node: u32) -> bool {
        node != NO_NODE
            && (self.copies().any(|n| n == node) || self.learners.iter().any(|l| l.node == node))
    }

    pub fn learner(&self, node: u32) -> Option<&Learner> {
        self.learners.iter().find(|l| l.node == node)
    }
}

/// ## Format (in etcd, key `/quiver/<cluster>/map`)
/// `{"version": V, "replication_factor": R, "partitions": [[master, replica...], ...]}` with
/// exactly 4096 lists, in partition order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMap {
    pub version: u64,
    pub replication_factor: u8,
    pub partitions: Vec<Placement>,
    /// Nodes told to leave (`quiver cluster leave`): their partitions migrate to the other
    /// nodes and they are given none.
    pub draining: BTreeSet<u32>,
}

impl PartitionMap {
    /// The first map: partition `p` is mastered by the `p mod n`-th node (ids sorted) and
    /// replicated on the next `factor - 1` nodes round the ring.
    pub fn initial(nodes: &BTreeSet<u32>, factor: u8) -> Result<PartitionMap, String> {
        let ids: Vec<u32> = nodes.iter().copied().collect();
        if ids.is_empty() {
            return Err("a partition map needs at least one node".into());
        }
        if factor == 0 || factor > MAX_REPLICATION_FACTOR {
            return Err(format!(
                "replication factor {factor} is outside 1..={MAX_REPLICATION_FACTOR}"
            ));
        }
        if usize::from(factor) > ids.len() {
            return Err(format!(
                "replication factor {factor} needs at least {factor} nodes, got {}",
                ids.len()
            ));
        }
        let n = ids.len();
        let partitions = (0..PARTITIONS)
            .map(|p| Placement {
                master: ids[p % n],
                replicas: (1..usize::from(factor)).map(|i| ids[(p + i) % n]).collect(),
                learners: Vec::new(),
            })
            .collect();
        Ok(PartitionMap {
            version: 1,
            replication_factor: factor,
            partitions,
            draining: BTreeSet::new(),
        })
    }

    /// The map once the nodes not in `live` are gone, or `None` when nothing changes. In each
    /// partition that keeps at least one live copy, dead nodes leave it and, if the master
    /// died, the first live replica becomes master. A partition with no live copy is left as
    /// it was: no other node has its data, so it waits for one of its own nodes to return.
    /// Dead learners are dropped (a learner is never made master: it is not in sync). No
    /// copy is added here; [`PartitionMap::plan`] adds learners for that.
    pub fn without_dead(&self, live: &BTreeSet<u32>) -> Option<PartitionMap> {
        let mut next = self.clone();
        next.drop_dead(live).then(|| {
            next.version = self.version + 1;
            next
        })
    }

    fn drop_dead(&mut self, live: &BTreeSet<u32>) -> bool {
        let mut changed = false;
        for pl in &mut self.partitions {
            let copies: Vec<u32> = pl.copies().collect();
            let alive: Vec<u32> = copies
                .iter()
                .copied()
                .filter(|n| live.contains(n))
                .collect();
            if !alive.is_empty() && alive.len() != copies.len() {
                changed = true;
                pl.master = alive[0];
                pl.replicas = alive[1..].to_vec();
            }
            let before = pl.learners.len();
            pl.learners.retain(|l| live.contains(&l.node));
            changed |= pl.learners.len() != before;
            let held: Vec<u32> = pl.copies().collect();
            for l in &mut pl.learners {
                if l.replaces != NO_NODE && !held.contains(&l.replaces) {
                    l.replaces = NO_NODE;
                    changed = true;
                }
            }
        }
        let before = self.draining.len();
        self.draining.retain(|n| live.contains(n));
        changed | (self.draining.len() != before)
    }

    /// The next map for the live nodes: dead nodes out (as [`PartitionMap::without_dead`]),
    /// then learners added, at most [`MAX_MIGRATIONS`] in the map at once:
    /// 1. a partition with fewer in-sync copies than the replication factor (or than the live
    ///    nodes, if fewer) gets a learner on the least loaded node without a copy; a copy on
    ///    a draining node gets a learner to replace it;
    /// 2. while the most loaded node holds 2 or more copies more than the least loaded one,
    ///    a copy moves from the first to the second.
    ///
    /// `None` when nothing changes. Partitions without a master are left alone.
    pub fn plan(&self, live: &BTreeSet<u32>) -> Option<PartitionMap> {
        let mut next = self.clone();
        let mut changed = next.drop_dead(live);
        changed |= next.add_learners(live);
        changed.then(|| {
            next.version = self.version + 1;
            next
        })
    }

    fn add_learners(&mut self, live: &BTreeSet<u32>) -> bool {
        let targets: Vec<u32> = live
            .iter()
            .copied()
            .filter(|n| !self.draining.contains(n))
            .collect();
        if targets.is_empty() {
            return false;
        }
        let want = usize::from(self.replication_factor).min(targets.len());
        let in_flight: usize = self.partitions.iter().map(|p| p.learners.len()).sum();
        let mut budget = MAX_MIGRATIONS.saturating_sub(in_flight);
        // Load: copies a node keeps (not being replaced) plus the copies it is receiving.
        let mut load: BTreeMap<u32, usize> = targets.iter().map(|n| (*n, 0)).collect();
        for pl in &self.partitions {
            for n in pl.copies() {
                let replaced = pl.learners.iter().any(|l| l.replaces == n);
                if !replaced {
                    if let Some(x) = load.get_mut(&n) {
                        *x += 1;
                    }
                }
            }
            for l in &pl.learners {
                if let Some(x) = load.get_mut(&l.node) {
                    *x += 1;
                }
            }
        }
        let mut masters: BTreeMap<u32, usize> = targets.iter().map(|n| (*n, 0)).collect();
        for pl in &self.partitions {
            let replaced = pl.learners.iter().find(|l| l.replaces == pl.master);
            let m = replaced.map_or(pl.master, |l| l.node);
            if let Some(x) = masters.get_mut(&m) {
                *x += 1;
            }
        }
        let version = self.version + 1;
        let least = |load: &BTreeMap<u32, usize>, pl: &Placement| {
            load.iter()
                .filter(|(n, _)| !pl.holds(**n))
                .min_by_key(|(n, l)| (**l, **n))
                .map(|(n, _)| *n)
        };
        let mut changed = false;
        for pl in &mut self.partitions {
            if pl.master == NO_NODE {
                continue;
            }
            let draining: Vec<u32> = pl
                .copies()
                .filter(|n| self.draining.contains(n))
                .filter(|n| !pl.learners.iter().any(|l| l.replaces == *n))
                .collect();
            for d in draining {
                if budget == 0 {
                    return changed;
                }
                let Some(to) = least(&load, pl) else { break };
                pl.learners.push(Learner {
                    node: to,
                    replaces: d,
                    since: version,
                });
                *load.get_mut(&to).expect("a target") += 1;
                budget -= 1;
                changed = true;
            }
            loop {
                let kept = pl.copies().filter(|n| !self.draining.contains(n)).count();
                let coming = pl.learners.iter().filter(|l| l.replaces == NO_NODE).count();
                if kept + coming >= want || budget == 0 {
                    break;
                }
                let Some(to) = least(&load, pl) else { break };
                pl.learners.push(Learner {
                    node: to,
                    replaces: NO_NODE,
                    since: version,
                });
                *load.get_mut(&to).expect("a target") += 1;
                budget -= 1;
                changed = true;
            }
        }
        while budget > 0 {
            let (hi, hi_load) = load
                .iter()
                .max_by_key(|(n, l)| (**l, std::cmp::Reverse(**n)))
                .map(|(n, l)| (*n, *l))
                .expect("targets");
            let (lo, lo_load) = load
                .iter()
                .min_by_key(|(n, l)| (**l, **n))
                .map(|(n, l)| (*n, *l))
                .expect("targets");
            if hi_load < lo_load + 2 {
                break;
            }
            // Masters move too: the copy taken from `hi` is its master copy while `hi`
            // masters more partitions than `lo`.
            let master_of = |masters: &BTreeMap<u32, usize>, n: u32| masters.get(&n).copied();
            let prefer_master = master_of(&masters, hi) > master_of(&masters, lo).map(|m| m + 1);
            let movable = |pl: &Placement, as_master: bool| {
                pl.master != NO_NODE
                    && pl.learners.is_empty()
                    && !pl.holds(lo)
                    && if as_master {
                        pl.master == hi
                    } else {
                        pl.copies().any(|n| n == hi)
                    }
            };
            let found = self
                .partitions
                .iter()
                .position(|pl| movable(pl, prefer_master))
                .or_else(|| self.partitions.iter().position(|pl| movable(pl, false)));
            let Some(p) = found else {
                break;
            };
            let pl = &mut self.partitions[p];
            if pl.master == hi {
                *masters.entry(hi).or_default() -= 1;
                *masters.entry(lo).or_default() += 1;
            }
            pl.learners.push(Learner {
                node: lo,
                replaces: hi,
                since: version,
            });
            *load.get_mut(&hi).expect("a target") -= 1;
            *load.get_mut(&lo).expect("a target") += 1;
            budget -= 1;
            changed = true;
        }
        changed
    }

    /// The map once the learners in `done` (partition, node, since) are in sync: each takes
    /// the place of the copy it replaces (as master if that was the master) or becomes one
    /// more replica. `None` when none of them is a learner of this map any more.
    pub fn promote(&self, done: &[(usize, u32, u64)]) -> Option<PartitionMap> {
        let mut next = self.clone();
        let mut changed = false;
        for &(p, node, since) in done {
            let Some(pl) = next.partitions.get_mut(p) else {
                continue;
            };
            let Some(i) = pl
                .learners
                .iter()
                .position(|l| l.node == node && l.since == since)
            else {
                continue;
            };
            let l = pl.learners.remove(i);
            changed = true;
            if l.replaces != NO_NODE && l.replaces == pl.master {
                pl.master = node;
            } else if let Some(r) = pl.replicas.iter_mut().find(|r| **r == l.replaces) {
                *r = node;
            } else if pl.replicas.len() + 1 < usize::from(next.replication_factor) {
                pl.replicas.push(node);
            }
        }
        changed.then(|| {
            next.version = self.version + 1;
            next
        })
    }

    /// Every node named anywhere in the map.
    pub fn nodes(&self) -> BTreeSet<u32> {
        self.partitions
            .iter()
            .flat_map(|p| p.copies().chain(p.learners.iter().map(|l| l.node)))
            .collect()
    }

    /// Partition copies in flight (learners), the migrations and catch-ups under way.
    pub fn migrations(&self) -> usize {
        self.partitions.iter().map(|p| p.learners.len()).sum()
    }

    /// Checks what every map must satisfy: 4096 placements, no node twice in one, a master
    /// whenever there are replicas, at most the replication factor of copies.
    pub fn check(&self) -> Result<(), String> {
        if self.partitions.len() != PARTITIONS {
            return Err(format!(
                "partition map has {} partitions, expected {PARTITIONS}",
                self.partitions.len()
            ));
        }
        if self.replication_factor == 0 || self.replication_factor > MAX_REPLICATION_FACTOR {
            return Err(format!(
                "replication factor {} is outside 1..={MAX_REPLICATION_FACTOR}",
                self.replication_factor
            ));
        }
        for (p, pl) in self.partitions.iter().enumerate() {
            let mut seen = BTreeSet::new();
            let copies = std::iter::once(pl.master).chain(pl.replicas.iter().copied());
            for n in copies {
                if n > MAX_NODE_ID || (n != NO_NODE && !seen.insert(n)) {
                    return Err(format!(
                        "partition {p} names node {n} twice or out of range"
                    ));
                }
            }
            if pl.master == NO_NODE && !pl.replicas.is_empty() {
                return Err(format!("partition {p} has replicas but no master"));
            }
            for l in &pl.learners {
                if l.node == NO_NODE || l.node > MAX_NODE_ID || !seen.insert(l.node) {
                    return Err(format!(
                        "partition {p} names learner {} twice, out of range or as a copy",
                        l.node
                    ));
                }
            }
            if pl.replicas.len() >= usize::from(self.replication_factor) {
                return Err(format!(
                    "partition {p} has {} replicas, over replication factor {}",
                    pl.replicas.len(),
                    self.replication_factor
                ));
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> Vec<u8> {
        let partitions: Vec<Value> = self
            .partitions
            .iter()
            .map(|p| {
                let mut list = vec![p.master];
                list.extend_from_slice(&p.replicas);
                json!(list)
            })
            .collect();
        let learners: Vec<Value> = self
            .partitions
            .iter()
            .enumerate()
            .flat_map(|(p, pl)| {
                pl.learners
                    .iter()
                    .map(move |l| json!([p, l.node, l.replaces, l.since]))
            })
            .collect();
        json!({
            "version": self.version,
            "replication_factor": self.replication_factor,
            "partitions": partitions,
            "learners": learners,
            "draining": self.draining,
        })
        .to_string()
        .into_bytes()
    }

    pub fn from_json(bytes: &[u8]) -> Result<PartitionMap, String> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("partition map is not JSON: {e}"))?;
        let version = v
            .get("version")
            .and_then(Value::as_u64)
            .ok_or("partition map has no version")?;
        let factor = v
            .get("replication_factor")
            .and_then(Value::as_u64)
            .and_then(|f| u8::try_from(f).ok())
            .ok_or("partition map has no replication_factor")?;
        let list = v
            .get("partitions")
            .and_then(Value::as_array)
            .ok_or("partition map has no partitions")?;
        let mut partitions = Vec::with_capacity(list.len());
        for (p, entry) in list.iter().enumerate() {
            let ids: Vec<u32> = entry
                .as_array()
                .ok_or_else(|| format!("partition {p} is not a list"))?
                .iter()
                .map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("partition {p} holds something other than node ids"))?;
            let (master, replicas) = ids
                .split_first()
                .ok_or_else(|| format!("partition {p} is an empty list"))?;
            partitions.push(Placement {
                master: *master,
                replicas: replicas.to_vec(),
                learners: Vec::new(),
            });
        }
        let empty = Vec::new();
        let learners = v
            .get("learners")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for entry in learners {
            let fields: Vec<u64> = entry
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            let [p, node, replaces, since] = fields[..] else {
                return Err(format!(
                    "a learner entry is not [partition, node, replaces, since]: {entry}"
                ));
            };
            let (Ok(node), Ok(replaces)) = (u32::try_from(node), u32::try_from(replaces)) else {
                return Err(format!("learner entry {entry} names a node out of range"));
            };
            let pl = usize::try_from(p)
                .ok()
                .and_then(|p| partitions.get_mut(p))
                .ok_or_else(|| format!("learner entry {entry} names no partition"))?;
            pl.learners.push(Learner {
                node,
                replaces,
                since,
            });
        }
        let draining = v
            .get("draining")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect::<Option<BTreeSet<u32>>>()
            .ok_or("partition map's draining list holds something other than node ids")?;
        let map = PartitionMap {
            version,
            replication_factor: factor,
            partitions,
            draining,
        };
        map.check()?;
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u32]) -> BTreeSet<u32> {
        ids.iter().copied().collect()
    }

    #[test]
    fn initial_map_spreads_masters_and_replicas() {
        let map = PartitionMap::initial(&set(&[1, 2, 3]), 2).unwrap();
        map.check().unwrap();
        for id in [1, 2, 3] {
            let masters = map.partitions.iter().filter(|p| p.master == id).count();
            let replicas = map.partitions.iter().filter(|p| p.replicas == [id]).count();
            assert!((1365..=1366).contains(&masters), "node {id}: {masters}");
            assert!((1365..=1366).contains(&replicas), "node {id}: {replicas}");
        }
        assert!(PartitionMap::initial(&set(&[1]), 2).is_err());
        assert!(PartitionMap::initial(&set(&[1, 2]), 0).is_err());
    }

    #[test]
    fn a_dead_master_is_replaced_by_its_replica_and_never_twice() {
        let map = PartitionMap::initial(&set(&[1, 2, 3]), 2).unwrap();
        let next = map.without_dead(&set(&[1, 3])).unwrap();
        next.check().unwrap();
        assert_eq!(next.version, map.version + 1);
        for (old, new) in map.partitions.iter().zip(&next.partitions) {
            assert!(new.master != 2 && !new.replicas.contains(&2));
            if old.master == 2 {
                assert_eq!(new.master, old.replicas[0]);
                assert!(new.replicas.is_empty());
            } else if old.replicas.contains(&2) {
                assert_eq!((new.master, new.replicas.len()), (old.master, 0));
            } else {
                assert_eq!(new, old);
            }
        }
        assert!(
            next.without_dead(&set(&[1, 3])).is_none(),
            "nothing left to change"
        );
        // Both copies of some partitions gone: those keep their placement.
        let last = next.without_dead(&set(&[1])).unwrap();
        last.check().unwrap();
        for (old, new) in next.partitions.iter().zip(&last.partitions) {
            if old.master == 3 && old.replicas.is_empty() {
                assert_eq!(new, old, "no live copy: unchanged");
            } else {
                assert_eq!(new.master, 1);
            }
        }
    }

    /// Plans and promotes every learner until the map settles; returns the number of waves.
    fn settle(map: &mut PartitionMap, live: &BTreeSet<u32>) -> usize {
        let mut waves = 0;
        while let Some(next) = map.plan(live) {
            next.check().unwrap();
            let done: Vec<(usize, u32, u64)> = next
                .partitions
                .iter()
                .enumerate()
                .flat_map(|(p, pl)| pl.learners.iter().map(move |l| (p, l.node, l.since)))
                .collect();
            assert!(done.len() <= MAX_MIGRATIONS);
            *map = next.promote(&done).unwrap_or(next);
            map.check().unwrap();
            waves += 1;
            assert!(waves < 100, "the plan does not settle");
        }
        waves
    }

    fn load(map: &PartitionMap, id: u32) -> (usize, usize) {
        let masters = map.partitions.iter().filter(|p| p.master == id).count();
        let copies = map
            .partitions
            .iter()
            .filter(|p| p.copies().any(|n| n == id))
            .count();
        (masters, copies)
    }

    #[test]
    fn a_joining_node_gets_its_share_and_a_draining_node_gives_all_away() {
        let mut map = PartitionMap::initial(&set(&[1, 2, 3]), 2).unwrap();
        assert!(map.plan(&set(&[1, 2, 3])).is_none(), "balanced already");
        let waves = settle(&mut map, &set(&[1, 2, 3, 4]));
        assert!(waves > 1, "moves go in waves of at most {MAX_MIGRATIONS}");
        for id in 1..=4 {
            let (masters, copies) = load(&map, id);
            assert!(
                (2047..=2049).contains(&copies),
                "node {id}: {copies} copies"
            );
            assert!(masters > 700, "node {id}: {masters} masters");
        }
        assert!(map.partitions.iter().all(|p| p.copies().count() == 2));
        map.draining.insert(2);
        settle(&mut map, &set(&[1, 2, 3, 4]));
        assert_eq!(load(&map, 2), (0, 0), "node 2 holds nothing");
        assert!(map.partitions.iter().all(|p| p.copies().count() == 2));
        // The drained node dies: nothing changes but the draining list.
        let gone = map.plan(&set(&[1, 3, 4])).unwrap();
        assert!(gone.draining.is_empty());
        assert_eq!(gone.partitions, map.partitions);
    }

    #[test]
    fn lost_copies_are_made_again_on_a_returning_node() {
        let mut map = PartitionMap::initial(&set(&[1, 2, 3]), 2).unwrap();
        map = map.without_dead(&set(&[2, 3])).unwrap();
        // Two nodes for R=2: the survivors copy every under-replicated partition.
        let next = map.plan(&set(&[2, 3])).unwrap();
        assert_eq!(next.migrations(), MAX_MIGRATIONS);
        assert!(next
            .partitions
            .iter()
            .all(|p| p.learners.iter().all(|l| l.replaces == 0)));
        // Node 1 comes back before: it is the least loaded, so it gets the copies.
        let back = map.plan(&set(&[1, 2, 3])).unwrap();
        let to_1 = back
            .partitions
            .iter()
            .flat_map(|p| &p.learners)
            .filter(|l| l.node == 1)
            .count();
        assert_eq!(to_1, MAX_MIGRATIONS);
        // A learner is never made master by a failover.
        let p = back
            .partitions
            .iter()
            .position(|p| !p.learners.is_empty())
            .unwrap();
        let master = back.partitions[p].master;
        let live: BTreeSet<u32> = [1, 2, 3].into_iter().filter(|n| *n != master).collect();
        let after = back.without_dead(&live).unwrap();
        assert_ne!(
            after.partitions[p].master,
            back.partitions[p].learners[0].node
        );
        settle(&mut map, &set(&[1, 2, 3]));
        assert!(map.partitions.iter().all(|p| p.copies().count() == 2));
        assert!(load(&map, 1).1 > 2000);
    }

    #[test]
    fn json_round_trips_and_bad_maps_are_refused() {
        let mut map = PartitionMap::initial(&set(&[4, 9]), 2).unwrap();
        assert_eq!(PartitionMap::from_json(&map.to_json()).unwrap(), map);
        map.draining.insert(9);
        let planned = map.plan(&set(&[4, 9, 11])).unwrap();
        assert!(planned.migrations() > 0);
        assert_eq!(
            PartitionMap::from_json(&planned.to_json()).unwrap(),
            planned
        );
        let mut twice = map.clone();
        twice.partitions[7].replicas = vec![twice.partitions[7].master];
        assert!(PartitionMap::from_json(&twice.to_json())
            .unwrap_err()
            .contains("partition 7"));
        let mut short = map;
        short.partitions.pop();
        assert!(PartitionMap::from_json(&short.to_json()).is_err());
    }

    #[test]
    fn partitions_use_the_index_partition_bits() {
        let key = EntityKey::String("user:42".into());
        let p = partition_of(&key);
        assert!(p < PARTITIONS);
        assert_eq!(p, (quiver_index::digest(0, b"user:42") >> 116) as usize);
    }
}
