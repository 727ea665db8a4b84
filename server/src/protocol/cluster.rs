//! Cluster frames: CLUSTER_MAP (0x60) and REPLICATE (0x61). See `docs/PROTOCOL.md`,
//! "CLUSTER_MAP" and "REPLICATE".

use super::wire::{put_len, put_str, put_u16, put_u32, put_u64, WireReader};
use super::{DecodeError, Opcode};
use crate::cluster::map::{PartitionMap, Placement, MAX_REPLICATION_FACTOR, PARTITIONS};

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
/// | partitions | `u32` count (4096, or 0 with version 0), count × (`u32` master, `u8` r, r × `u32` replica) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMapInfo {
    pub node_id: u32,
    pub map: Option<PartitionMap>,
    pub nodes: Vec<ClusterNode>,
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
    }
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
        return Ok(ClusterMapInfo {
            node_id,
            map: None,
            nodes,
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
        partitions.push(Placement { master, replicas });
    }
    let map = PartitionMap {
        version,
        replication_factor: factor,
        partitions,
    };
    map.check().map_err(invalid)?;
    Ok(ClusterMapInfo {
        node_id,
        map: Some(map),
        nodes,
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
/// | opcode | `u8`: 0x10 (PUT) or 0x13 (DELETE) |
/// | write | the rest: that request's body, as a client sends it |
#[derive(Debug, Clone)]
pub struct ReplicateRequest {
    pub map_version: u64,
    pub from_node: u32,
    pub partition: u16,
    /// A `Request::Put` or `Request::Delete`.
    pub write: Box<super::Request>,
}

pub fn put_replicate(b: &mut Vec<u8>, r: &ReplicateRequest) {
    put_u64(b, r.map_version);
    put_u32(b, r.from_node);
    put_u16(b, r.partition);
    b.push(r.write.opcode() as u8);
    super::message::encode_request_body(&r.write, b);
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
    let op = match Opcode::from_u8(opcode) {
        Ok(op @ (Opcode::Put | Opcode::Delete)) => op,
        _ => {
            return Err(DecodeError::UnknownTag {
                what: "replicated opcode (0x10 PUT or 0x13 DELETE)",
                tag: opcode,
            })
        }
    };
    let rest = r.take(r.remaining(), "replicated write")?;
    let write = super::message::decode_request(op, rest)?;
    Ok(ReplicateRequest {
        map_version,
        from_node,
        partition,
        write: Box::new(write),
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
            write: Box::new(Request::Delete {
                group: "g".into(),
                key: EntityKey::String("u".into()),
                durability: Some(Durability::Sync),
            }),
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
                assert!(matches!(*back.write, Request::Delete { .. }));
            }
            other => panic!("{other:?}"),
        }
        let mut bad = out[HEADER_LEN..].to_vec();
        bad[14] = 0x11; // a GET is not a replicated write
        assert!(decode_request(Opcode::Replicate, &bad).is_err());
    }

    #[test]
    fn cluster_map_round_trips_and_bad_maps_are_refused() {
        let map = PartitionMap::initial(&[1, 2, 3].into(), 2).unwrap();
        let info = ClusterMapInfo {
            node_id: 2,
            map: Some(map),
            nodes: vec![ClusterNode {
                id: 1,
                address: "127.0.0.1:7001".into(),
            }],
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
        let first = body.len() - PARTITIONS * 9;
        body[first + 5..first + 9].copy_from_slice(&1u32.to_le_bytes());
        let e = decode_response(&h, &body).unwrap_err().to_string();
        assert!(e.contains("partition 0"), "{e}");
        let empty = ClusterMapInfo {
            node_id: 1,
            map: None,
            nodes: vec![],
        };
        let mut b = Vec::new();
        put_cluster_map(&mut b, &empty);
        assert_eq!(get_cluster_map(&mut WireReader::new(&b)).unwrap(), empty);
    }
}
