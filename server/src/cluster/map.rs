//! The partition map: for each of the 4096 partitions of the key space, its master and its
//! replicas, under one version number. It lives in etcd as JSON and changes only through a
//! compare-and-swap transaction on its etcd revision; every change adds 1 to `version`.
//!
//! A key's partition is the top 12 bits of `xxh3-128(0u32 LE ++ key bytes)`: the index's
//! digest and partition bits, with group id 0, so that every group of one entity lives on the
//! same node (a GET reads one entity across groups).

use quiver_engine::feature::EntityKey;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Partitions of the key space (the index's partition count).
pub const PARTITIONS: usize = quiver_index::PARTITIONS;
/// Largest replication factor (master included).
pub const MAX_REPLICATION_FACTOR: u8 = 5;
/// Largest node id; 0 means "no node".
pub const MAX_NODE_ID: u32 = 1 << 20;
/// "No master" in a placement.
pub const NO_NODE: u32 = 0;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// [`NO_NODE`] while the partition has no master (every copy is down).
    pub master: u32,
    /// Nodes that receive every write of the partition before it is acknowledged.
    pub replicas: Vec<u32>,
}

/// ## Format (in etcd, key `/quiver/<cluster>/map`)
/// `{"version": V, "replication_factor": R, "partitions": [[master, replica...], ...]}` with
/// exactly 4096 lists, in partition order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMap {
    pub version: u64,
    pub replication_factor: u8,
    pub partitions: Vec<Placement>,
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
            })
            .collect();
        Ok(PartitionMap {
            version: 1,
            replication_factor: factor,
            partitions,
        })
    }

    /// The map once the nodes not in `live` are gone, or `None` when nothing changes. In each
    /// partition that keeps at least one live copy, dead nodes leave it and, if the master
    /// died, the first live replica becomes master. A partition with no live copy is left as
    /// it was: no other node has its data, so it waits for one of its own nodes to return.
    /// No replica is added (a new replica would need a full copy of the partition).
    pub fn without_dead(&self, live: &BTreeSet<u32>) -> Option<PartitionMap> {
        let mut changed = false;
        let partitions = self
            .partitions
            .iter()
            .map(|pl| {
                let copies: Vec<u32> = std::iter::once(pl.master)
                    .chain(pl.replicas.iter().copied())
                    .filter(|n| *n != NO_NODE)
                    .collect();
                let alive: Vec<u32> = copies
                    .iter()
                    .copied()
                    .filter(|n| live.contains(n))
                    .collect();
                if alive.is_empty() || alive.len() == copies.len() {
                    return pl.clone();
                }
                changed = true;
                Placement {
                    master: alive[0],
                    replicas: alive[1..].to_vec(),
                }
            })
            .collect();
        changed.then(|| PartitionMap {
            version: self.version + 1,
            replication_factor: self.replication_factor,
            partitions,
        })
    }

    /// Every node named anywhere in the map.
    pub fn nodes(&self) -> BTreeSet<u32> {
        self.partitions
            .iter()
            .flat_map(|p| std::iter::once(p.master).chain(p.replicas.iter().copied()))
            .filter(|n| *n != NO_NODE)
            .collect()
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
        json!({
            "version": self.version,
            "replication_factor": self.replication_factor,
            "partitions": partitions,
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
            });
        }
        let map = PartitionMap {
            version,
            replication_factor: factor,
            partitions,
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

    #[test]
    fn json_round_trips_and_bad_maps_are_refused() {
        let map = PartitionMap::initial(&set(&[4, 9]), 2).unwrap();
        assert_eq!(PartitionMap::from_json(&map.to_json()).unwrap(), map);
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
