//! Cluster frames: CLUSTER_MAP (0x60) and REPLICATE (0x61). See `docs/PROTOCOL.md`,
//! "CLUSTER_MAP" and "REPLICATE".

use super::wire::{put_bytes, put_len, put_str, put_u16, put_u32, put_u64, WireReader};
use super::{DecodeError, Opcode};
use crate::cluster::map::{Learner, PartitionMap, Placement, MAX_REPLICATION_FACTOR, PARTITIONS};
use std::collections::BTreeSet;

/// Largest number of nodes a CLUSTER_MAP answer lists.
pub const MAX_CLUSTER_NODES: usize = 4096;

/// One node of the cluster as clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: u32,
    /// `HOST:PORT` of its binary protocol listener.
    pub address: String,
}

/// The answer to CLUSTER_MAP.
///
/// ## Format
/// | field | encoding |
/// | --- | --- |
/// | node_id | `u32`: the answering node |
/// | version | `u64`: the map version (0: no map yet, and no partitions follow) |
/// | replication_factor | `u8` |
/// | nodes | `u32` n, n × (`u32` id, `string` address): the registered (live) nodes |
/// | partitions | `u32` count (4096, or 0 with version 0), count × (`u32` master, `u8` r, r × `u32` replica, `u8` l, l × (`u32` learner, `u32` replaces, `u64` since)) |
/// | draining | `u32` n, n × `u32` node |
/// | lag | `u32` n, n × (`u32` node, `u64` writes sent to it and not yet confirmed) |
/// | copies | `u32` partition copies this node is sending now, `u64` records it has copied since it started |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterMapInfo {
    pub node_id: u32,
    pub map: Option<PartitionMap>,
    pub nodes: Vec<ClusterNode>,
    /// The answering node's replication streams: (node, writes not yet confirmed by it).
    pub lag: Vec<(u32, u64)>,
    /// Partition copies the answering node is sending now (as master).
    pub copies: u32,
    /// Records the answering node has copied to learners since it started.
    pub copied_records: u64,
}

pub fn put_cluster_map(b: &mut Vec<u8>, info: &ClusterMapInfo) {
    put_u32(b, info.node_id);
    put_u64(b, info.map.as_ref().map_or(0, |m| m.version));
    b.push(info.map.as_ref().map_or(0, |m| m.replication_factor));
    put_len(b, info.nodes.len());
    for n in &info.nodes {
        put_u32(b, n.id);
        put_str(b, &n.address);
    }
    let partitions = info.map.as_ref().map_or(&[][..], |m| &m.partitions[..]);
    put_len(b, partitions.len());
    for p in partitions {
        put_u32(b, p.master);
        b.push(p.replicas.len() as u8);
        for r in &p.replicas {
            put_u32(b, *r);
        }
        b.push(p.learners.len() as u8);
        for l in &p.learners {
            put_u32(b, l.node);
            put_u32(b, l.replaces);
            put_u64(b, l.since);
        }
    }
    let draining = info.map.as_ref().map(|m| &m.draining);
    put_len(b, draining.map_or(0, BTreeSet::len));
    for n in draining.into_iter().flatten() {
        put_u32(b, *n);
    }
    put_len(b, info.lag.len());
    for (node, queued) in &info.lag {
        put_u32(b, *node);
        put_u64(b, *queued);
    }
    put_u32(b, info.copies);
    put_u64(b, info.copied_records);
}

/// Reads the fields after the partitions: draining nodes, lag and copies.
#[allow(clippy::type_complexity)]
fn get_cluster_tail(
    r: &mut WireReader<'_>,
) -> Result<(BTreeSet<u32>, Vec<(u32, u64)>, u32, u64), DecodeError> {
    let n = r.count("draining nodes", 4)?;
    let draining = (0..n)
        .map(|_| r.u32("draining node"))
        .collect::<Result<_, _>>()?;
    let n = r.count("lag entries", 12)?;
    let lag = (0..n)
        .map(|_| Ok((r.u32("lag node")?, r.u64("lag writes")?)))
        .collect::<Result<_, DecodeError>>()?;
    Ok((draining, lag, r.u32("copies")?, r.u64("copied records")?))
}

pub fn get_cluster_map(r: &mut WireReader<'_>) -> Result<ClusterMapInfo, DecodeError> {
    let invalid = |reason: String| DecodeError::Invalid {
        what: "cluster map",
        reason,
    };
    let node_id = r.u32("node id")?;
    let version = r.u64("map version")?;
    let factor = r.u8("replication factor")?;
    let n = r.count("cluster nodes", 8)?;
    if n > MAX_CLUSTER_NODES {
        return Err(invalid(format!(
            "{n} nodes exceed the limit of {MAX_CLUSTER_NODES}"
        )));
    }
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(ClusterNode {
            id: r.u32("node id")?,
            address: r.string("node address")?,
        });
    }
    let count = r.count("partitions", 5)?;
    if version == 0 {
        if count != 0 || factor != 0 {
            return Err(invalid(
                "version 0 (no map) must carry 0 partitions and replication factor 0".into(),
            ));
        }
        let (draining, lag, copies, copied_records) = get_cluster_tail(r)?;
        if !draining.is_empty() {
            return Err(invalid(
                "version 0 (no map) must name no draining node".into(),
            ));
        }
        return Ok(ClusterMapInfo {
            node_id,
            map: None,
            nodes,
            lag,
            copies,
            copied_records,
        });
    }
    if count != PARTITIONS {
        return Err(invalid(format!(
            "{count} partitions, expected {PARTITIONS}"
        )));
    }
    let mut partitions = Vec::with_capacity(count);
    for _ in 0..count {
        let master = r.u32("partition master")?;
        let replicas = r.u8("replica count")?;
        if replicas >= MAX_REPLICATION_FACTOR {
            return Err(invalid(format!(
                "{replicas} replicas exceed the limit of {}",
                MAX_REPLICATION_FACTOR - 1
            )));
        }
        let replicas = (0..replicas)
            .map(|_| r.u32("replica"))
            .collect::<Result<_, _>>()?;
        let learners = r.u8("learner count")?;
        let learners = (0..learners)
            .map(|_| {
                Ok(Learner {
                    node: r.u32("learner")?,
                    replaces: r.u32("replaced node")?,
                    since: r.u64("learner since")?,
                })
            })
            .collect::<Result<_, DecodeError>>()?;
        partitions.push(Placement {
            master,
            replicas,
            learners,
        });
    }
    let (draining, lag, copies, copied_records) = get_cluster_tail(r)?;
    let map = PartitionMap {
        version,
        replication_factor: factor,
        partitions,
        draining,
    };
    map.check().map_err(invalid)?;
    Ok(ClusterMapInfo {
        node_id,
        map: Some(map),
        nodes,
        lag,
        copies,
        copied_records,
    })
}

/// A write a partition's master forwards to a replica (peer port only).
///
/// ## Format
/// | field | encoding |
/// | --- | --- |
/// | map_version | `u64`: the master's map version |
/// | from_node | `u32`: the master's node id |
/// | partition | `u16`: 0..4096 |
/// | opcode | `u8`: 0x10 (PUT), 0x13 (DELETE), 0x01 (RESET), 0x02 (COPY) or 0x03 (GROUP) |
/// | write | the rest: for PUT and DELETE that request's body, as a client sends it; for RESET nothing; for COPY `string` group, `bytes` key, `u32` expiry (Unix seconds, 0: never), `bytes` row; for GROUP a GROUP_CREATE body then `u32` n, n × `string` deprecated feature |
#[derive(Debug, Clone)]
pub struct ReplicateRequest {
    pub map_version: u64,
    pub from_node: u32,
    pub partition: u16,
    pub write: Replicated,
}

/// What a REPLICATE frame carries.
#[derive(Debug, Clone)]
pub enum Replicated {
    /// A `Request::Put` or `Request::Delete` a client sent the master.
    Write(Box<super::Request>),
    /// A copy of the partition to a learner starts: drop every record of the partition.
    Reset,
    /// One record of a partition copy, as the master's store holds it.
    Copy(CopiedRecord),
    /// One history record of a partition copy (an entity's history head, directory or
    /// segment; `key` is the record's key: the entity key and a 4-byte suffix), stored in the
    /// learner's history of the group named.
    CopyHistory(CopiedRecord),
    /// A group of the master, sent before a copy: the learner creates it if it has none of
    /// that name (features in the master's order, so that stored rows mean the same).
    Group {
        spec: quiver_engine::feature::GroupSpec,
        deprecated: Vec<String>,
    },
}

/// A record copied to a learner: the group by name (ids are per node), the key's bytes, the
/// stored row (the engine's encoding, per-feature event times included) and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedRecord {
    pub group: String,
    pub key: Vec<u8>,
    pub expiry_s: u32,
    pub row: Vec<u8>,
}

const REPLICATED_RESET: u8 = 0x01;
const REPLICATED_COPY: u8 = 0x02;
const REPLICATED_GROUP: u8 = 0x03;
const REPLICATED_COPY_HISTORY: u8 = 0x04;

pub fn put_replicate(b: &mut Vec<u8>, r: &ReplicateRequest) {
    put_u64(b, r.map_version);
    put_u32(b, r.from_node);
    put_u16(b, r.partition);
    match &r.write {
        Replicated::Write(w) => {
            b.push(w.opcode() as u8);
            super::message::encode_request_body(w, b);
        }
        Replicated::Reset => b.push(REPLICATED_RESET),
        Replicated::Copy(c) | Replicated::CopyHistory(c) => {
            b.push(match &r.write {
                Replicated::Copy(_) => REPLICATED_COPY,
                _ => REPLICATED_COPY_HISTORY,
            });
            put_str(b, &c.group);
            put_bytes(b, &c.key);
            put_u32(b, c.expiry_s);
            put_bytes(b, &c.row);
        }
        Replicated::Group { spec, deprecated } => {
            b.push(REPLICATED_GROUP);
            super::types::put_group_spec(b, spec);
            super::wire::put_strs(b, deprecated);
        }
    }
}

fn get_copied(r: &mut WireReader<'_>) -> Result<CopiedRecord, DecodeError> {
    Ok(CopiedRecord {
        group: r.string("copied group")?,
        key: r.bytes("copied key")?.to_vec(),
        expiry_s: r.u32("copied expiry")?,
        row: r.bytes("copied row")?.to_vec(),
    })
}

pub fn get_replicate(r: &mut WireReader<'_>) -> Result<ReplicateRequest, DecodeError> {
    let map_version = r.u64("map version")?;
    let from_node = r.u32("from node")?;
    let partition = r.u16("partition")?;
    if usize::from(partition) >= PARTITIONS {
        return Err(DecodeError::Invalid {
            what: "replicated partition",
            reason: format!("{partition} is not below {PARTITIONS}"),
        });
    }
    let opcode = r.u8("replicated opcode")?;
    let write = match opcode {
        REPLICATED_RESET => Replicated::Reset,
        REPLICATED_COPY => Replicated::Copy(get_copied(r)?),
        REPLICATED_COPY_HISTORY => Replicated::CopyHistory(get_copied(r)?),
        REPLICATED_GROUP => Replicated::Group {
            spec: super::types::get_group_spec(r)?,
            deprecated: r.strings("deprecated features")?,
        },
        _ => {
            let op = match Opcode::from_u8(opcode) {
                Ok(op @ (Opcode::Put | Opcode::Delete)) => op,
                _ => {
                    return Err(DecodeError::UnknownTag {
                        what: "replicated opcode (0x10 PUT, 0x13 DELETE, 0x01 RESET, 0x02 COPY, 0x03 GROUP, \
                               0x04 COPY_HISTORY)",
                        tag: opcode,
                    })
                }
            };
            let rest = r.take(r.remaining(), "replicated write")?;
            Replicated::Write(Box::new(super::message::decode_request(op, rest)?))
        }
    };
    Ok(ReplicateRequest {
        map_version,
        from_node,
        partition,
        write,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_request, decode_response, encode_request, encode_response};
    use crate::protocol::{FrameHeader, Request, Response, HEADER_LEN};
    use quiver_engine::feature::EntityKey;
    use quiver_engine::Durability;

    /// The REPLICATE example of docs/PROTOCOL.md, byte for byte.
    #[test]
    fn replicate_matches_the_documented_bytes() {
        let r = Request::Replicate(ReplicateRequest {
            map_version: 3,
            from_node: 2,
            partition: 4095,
            write: Replicated::Write(Box::new(Request::Delete {
                group: "g".into(),
                key: EntityKey::String("u".into()),
                durability: Some(Durability::Sync),
            })),
        });
        let mut out = Vec::new();
        encode_request(9, &r, &mut out);
        let doc = "51 56 01 61 00 00 00 00 1b 00 00 00 09 00 00 00 00 00 00 00 \
                   03 00 00 00 00 00 00 00 02 00 00 00 ff 0f 13 01 00 00 00 67 \
                   00 01 00 00 00 75 02";
        let want: Vec<u8> = doc
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        assert_eq!(out, want);
        match decode_request(Opcode::Replicate, &out[HEADER_LEN..]).unwrap() {
            Request::Replicate(back) => {
                assert_eq!(
                    (back.map_version, back.from_node, back.partition),
                    (3, 2, 4095)
                );
                assert!(matches!(
                    back.write,
                    Replicated::Write(w) if matches!(*w, Request::Delete { .. })
                ));
            }
            other => panic!("{other:?}"),
        }
        let mut bad = out[HEADER_LEN..].to_vec();
        bad[14] = 0x11; // a GET is not a replicated write
        assert!(decode_request(Opcode::Replicate, &bad).is_err());
        for write in [
            Replicated::Reset,
            Replicated::Copy(CopiedRecord {
                group: "g".into(),
                key: b"k1".to_vec(),
                expiry_s: 7,
                row: vec![1, 2, 3],
            }),
            Replicated::CopyHistory(CopiedRecord {
                group: "g".into(),
                key: b"k1\xff\xff\xff\xff".to_vec(),
                expiry_s: 0,
                row: vec![4, 5],
            }),
        ] {
            let r = Request::Replicate(ReplicateRequest {
                map_version: 4,
                from_node: 1,
                partition: 9,
                write,
            });
            let mut out = Vec::new();
            encode_request(1, &r, &mut out);
            match decode_request(Opcode::Replicate, &out[HEADER_LEN..]).unwrap() {
                Request::Replicate(back) => match (&back.write, r) {
                    (Replicated::Reset, Request::Replicate(w)) => {
                        assert!(matches!(w.write, Replicated::Reset))
                    }
                    (Replicated::Copy(a), Request::Replicate(w)) => {
                        assert!(matches!(w.write, Replicated::Copy(b) if b == *a))
                    }
                    (Replicated::CopyHistory(a), Request::Replicate(w)) => {
                        assert!(matches!(w.write, Replicated::CopyHistory(b) if b == *a))
                    }
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn cluster_map_round_trips_and_bad_maps_are_refused() {
        let map = PartitionMap::initial(&[1, 2, 3].into(), 2).unwrap();
        let mut map = map.plan(&[1, 2, 3, 4].into()).unwrap();
        map.draining.insert(3);
        let info = ClusterMapInfo {
            node_id: 2,
            map: Some(map),
            nodes: vec![ClusterNode {
                id: 1,
                address: "127.0.0.1:7001".into(),
            }],
            lag: vec![(1, 5), (3, 0)],
            copies: 2,
            copied_records: 99,
        };
        let mut out = Vec::new();
        encode_response(
            &mut out,
            Opcode::ClusterMap,
            5,
            &Response::ClusterMap(info.clone()),
        );
        let h = FrameHeader::decode(out[..HEADER_LEN].try_into().unwrap(), 1 << 20).unwrap();
        match decode_response(&h, &out[HEADER_LEN..]).unwrap() {
            Response::ClusterMap(back) => assert_eq!(back, info),
            other => panic!("{other:?}"),
        }
        // Node 1 twice in partition 0: the map check refuses it.
        let mut body = out[HEADER_LEN..].to_vec();
        let first = 4 + 8 + 1 + 4 + 4 + 4 + "127.0.0.1:7001".len() + 4;
        assert_eq!(
            body[first..first + 4],
            1u32.to_le_bytes(),
            "partition 0's master"
        );
        body[first + 5..first + 9].copy_from_slice(&1u32.to_le_bytes());
        let e = decode_response(&h, &body).unwrap_err().to_string();
        assert!(e.contains("partition 0"), "{e}");
        let empty = ClusterMapInfo {
            node_id: 1,
            ..ClusterMapInfo::default()
        };
        let mut b = Vec::new();
        put_cluster_map(&mut b, &empty);
        assert_eq!(get_cluster_map(&mut WireReader::new(&b)).unwrap(), empty);
    }
}
