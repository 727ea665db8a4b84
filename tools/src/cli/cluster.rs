//! `quiver cluster status|nodes|partitions`: the partition map as a node of the cluster
//! holds it (CLUSTER_MAP).

use serde_json::json;

use super::backend::Backend;
use super::command::ClusterCommand;
use super::error::{CliError, CliResult};
use super::output::Out;
use quiver_server::protocol::ClusterMapInfo;

/// Partitions mastered and replicated by each node: (node, masters, replicas).
fn counts(info: &ClusterMapInfo) -> Vec<(u32, usize, usize)> {
    let Some(map) = &info.map else {
        return Vec::new();
    };
    let mut ids: Vec<u32> = map.nodes().into_iter().collect();
    ids.extend(info.nodes.iter().map(|n| n.id));
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let masters = map.partitions.iter().filter(|p| p.master == id).count();
            let replicas = map
                .partitions
                .iter()
                .filter(|p| p.replicas.contains(&id))
                .count();
            (id, masters, replicas)
        })
        .collect()
}

pub fn run(cmd: &ClusterCommand, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    if let ClusterCommand::Leave { node } = cmd {
        let version = backend.cluster_leave(*node)?;
        let doc = json!({"node": node, "leaving": true, "map_version": version});
        out.emit(doc, || {
            println!(
                "node {node} is leaving (map version {version}): its partitions migrate to \
                 the other nodes; `quiver cluster status` shows the migrations"
            )
        });
        return Ok(());
    }
    let info = backend.cluster_map()?;
    match cmd {
        ClusterCommand::Status => status(&info, out),
        ClusterCommand::Nodes => nodes(&info, out),
        ClusterCommand::Partitions { node } => partitions(&info, *node, out),
        ClusterCommand::Leave { .. } => unreachable!("handled above"),
    }
}

fn status(info: &ClusterMapInfo, out: Out) -> CliResult<()> {
    let version = info.map.as_ref().map_or(0, |m| m.version);
    let factor = info.map.as_ref().map_or(0, |m| m.replication_factor);
    let (mut no_master, mut under) = (0, 0);
    for p in info.map.iter().flat_map(|m| m.partitions.iter()) {
        no_master += usize::from(p.master == 0);
        under += usize::from(p.master != 0 && p.replicas.len() + 1 < usize::from(factor));
    }
    let migrations = info.map.as_ref().map_or(0, |m| m.migrations());
    let draining: Vec<u32> = info
        .map
        .iter()
        .flat_map(|m| m.draining.iter().copied())
        .collect();
    let lag: Vec<_> = info
        .lag
        .iter()
        .map(|(n, q)| json!({"node": n, "unconfirmed_writes": q}))
        .collect();
    let doc = json!({"answered_by": info.node_id, "map_version": version,
        "replication_factor": factor, "live_nodes": info.nodes.len(),
        "partitions_without_master": no_master, "partitions_under_replicated": under,
        "migrations": migrations, "draining": draining, "lag": lag,
        "copies_sending": info.copies, "records_copied": info.copied_records});
    out.emit(doc, || {
        println!("answered by:         node {}", info.node_id);
        if info.map.is_none() {
            println!("map:                 none yet (waiting for the initial nodes)");
        } else {
            println!("map version:         {version}");
            println!("replication factor:  {factor}");
        }
        println!("live nodes:          {}", info.nodes.len());
        println!("without a master:    {no_master} partitions");
        println!("under-replicated:    {under} partitions");
        println!("migrations:          {migrations} partition copies under way");
        if !draining.is_empty() {
            let list: Vec<String> = draining.iter().map(u32::to_string).collect();
            println!("leaving:             node {}", list.join(", "));
        }
        println!(
            "node {} sends:        {} copies now, {} records copied since start",
            info.node_id, info.copies, info.copied_records
        );
        for (n, q) in &info.lag {
            println!("lag to node {n}:       {q} writes not yet confirmed");
        }
    });
    Ok(())
}

fn nodes(info: &ClusterMapInfo, out: Out) -> CliResult<()> {
    let rows: Vec<(u32, Option<String>, usize, usize)> = counts(info)
        .into_iter()
        .map(|(id, m, r)| {
            let addr = info
                .nodes
                .iter()
                .find(|n| n.id == id)
                .map(|n| n.address.clone());
            (id, addr, m, r)
        })
        .collect();
    let doc = json!(rows
        .iter()
        .map(
            |(id, addr, m, r)| json!({"node": id, "address": addr, "live": addr.is_some(),
            "masters": m, "replicas": r})
        )
        .collect::<Vec<_>>());
    out.emit(doc, || {
        println!(
            "{:>6}  {:<22} {:>5} {:>8} {:>8}",
            "node", "address", "live", "masters", "replicas"
        );
        for (id, addr, m, r) in &rows {
            let live = if addr.is_some() { "yes" } else { "no" };
            let addr = addr.as_deref().unwrap_or("-");
            println!("{id:>6}  {addr:<22} {live:>5} {m:>8} {r:>8}");
        }
    });
    Ok(())
}

fn partitions(info: &ClusterMapInfo, node: Option<u32>, out: Out) -> CliResult<()> {
    let map = info
        .map
        .as_ref()
        .ok_or_else(|| CliError::Store("the cluster has no partition map yet".into()))?;
    let wanted =
        |master: u32, replicas: &[u32]| node.map_or(true, |n| master == n || replicas.contains(&n));
    let rows: Vec<(usize, u32, &[u32], Vec<u32>)> = map
        .partitions
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            wanted(p.master, &p.replicas) || node.is_some_and(|n| p.learner(n).is_some())
        })
        .map(|(i, p)| {
            let learners = p.learners.iter().map(|l| l.node).collect();
            (i, p.master, p.replicas.as_slice(), learners)
        })
        .collect();
    let doc = json!(rows
        .iter()
        .map(
            |(i, m, r, l)| json!({"partition": i, "master": m, "replicas": r, "receiving_copy": l})
        )
        .collect::<Vec<_>>());
    out.emit(doc, || {
        println!("map version {}", map.version);
        println!(
            "{:>9} {:>7}  replicas  (receiving a copy)",
            "partition", "master"
        );
        for (i, m, r, l) in &rows {
            let list: Vec<String> = r.iter().map(u32::to_string).collect();
            let copying: Vec<String> = l.iter().map(u32::to_string).collect();
            if copying.is_empty() {
                println!("{i:>9} {m:>7}  {}", list.join(","));
            } else {
                println!("{i:>9} {m:>7}  {}  ({})", list.join(","), copying.join(","));
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_server::cluster::map::PartitionMap;
    use quiver_server::protocol::ClusterNode;

    #[test]
    fn counts_cover_map_nodes_and_live_nodes() {
        let map = PartitionMap::initial(&[1, 2].into(), 2).unwrap();
        let next = map.without_dead(&[1].into()).unwrap();
        let info = ClusterMapInfo {
            node_id: 1,
            map: Some(next),
            lag: vec![],
            copies: 0,
            copied_records: 0,
            nodes: vec![
                ClusterNode {
                    id: 1,
                    address: "a:1".into(),
                },
                ClusterNode {
                    id: 3,
                    address: "c:3".into(),
                },
            ],
        };
        // Node 2 died: node 1 masters everything, replicates nothing; node 3 joined late.
        assert_eq!(counts(&info), vec![(1, 4096, 0), (3, 0, 0)]);
    }
}
