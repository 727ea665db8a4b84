//! Cluster settings (`quiverd --cluster-etcd URL --node-id N ...`).

use super::map::{MAX_NODE_ID, MAX_REPLICATION_FACTOR};
use std::net::{SocketAddr, ToSocketAddrs};

/// Shortest and longest lease TTL accepted, in seconds.
pub const LEASE_TTL_RANGE_S: (u64, u64) = (2, 300);
/// Slowest and fastest partition copy rate accepted, in MiB/s per sending node.
pub const MIGRATION_RATE_RANGE_MIB: (u64, u64) = (1, 10_240);
/// Longest cluster name (it prefixes every etcd key).
pub const MAX_CLUSTER_NAME_BYTES: usize = 64;

/// The command-line flags of cluster mode.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArgs {
    /// Join a cluster coordinated by the etcd at this URL (http://HOST:PORT); off by default.
    #[arg(long)]
    pub cluster_etcd: Option<String>,
    /// Cluster name: the prefix of its etcd keys, /quiver/NAME/ [default: main].
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// This node's id, 1..=1048576, unique in the cluster (required with --cluster-etcd).
    #[arg(long)]
    pub node_id: Option<u32>,
    /// Address clients reach this node at [default: the bound --listen address].
    #[arg(long)]
    pub advertise: Option<String>,
    /// Address to receive replicated writes on [default: 127.0.0.1:0].
    #[arg(long)]
    pub peer_listen: Option<String>,
    /// Address masters reach the peer listener at [default: the bound peer address].
    #[arg(long)]
    pub peer_advertise: Option<String>,
    /// Copies of each partition, master included, when this node creates the first map
    /// [default: 2].
    #[arg(long)]
    pub replication_factor: Option<u8>,
    /// Nodes that must be registered before the first map is made [default: the replication
    /// factor].
    #[arg(long)]
    pub initial_nodes: Option<usize>,
    /// Lease TTL in seconds: a node silent this long is taken out of the map [default: 5].
    #[arg(long)]
    pub lease_ttl_s: Option<u64>,
    /// Partition copies (migrations, catch-up) a node sends, in MiB/s [default: 32].
    #[arg(long)]
    pub migration_rate_mib: Option<u64>,
}

/// Resolved cluster settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub etcd: String,
    pub name: String,
    pub node_id: u32,
    pub advertise: Option<String>,
    pub peer_listen: SocketAddr,
    pub peer_advertise: Option<String>,
    pub replication_factor: u8,
    pub initial_nodes: usize,
    pub lease_ttl_s: u64,
    pub migration_rate_mib: u64,
}

impl ClusterArgs {
    /// `None` without `--cluster-etcd`; an error names a flag given without it.
    pub fn resolve(&self) -> Result<Option<ClusterConfig>, String> {
        let Some(etcd) = self.cluster_etcd.clone() else {
            let stray = [
                ("--node-id", self.node_id.is_some()),
                ("--cluster-name", self.cluster_name.is_some()),
                ("--advertise", self.advertise.is_some()),
                ("--peer-listen", self.peer_listen.is_some()),
                ("--peer-advertise", self.peer_advertise.is_some()),
                ("--replication-factor", self.replication_factor.is_some()),
                ("--initial-nodes", self.initial_nodes.is_some()),
                ("--lease-ttl-s", self.lease_ttl_s.is_some()),
                ("--migration-rate-mib", self.migration_rate_mib.is_some()),
            ];
            if let Some((flag, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(format!("{flag} needs --cluster-etcd"));
            }
            return Ok(None);
        };
        let node_id = self
            .node_id
            .ok_or("--cluster-etcd needs --node-id (1..=1048576, unique in the cluster)")?;
        let peer_text = self.peer_listen.as_deref().unwrap_or("127.0.0.1:0");
        let peer_listen = peer_text
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("--peer-listen '{peer_text}' is not an address (HOST:PORT)"))?;
        let replication_factor = self.replication_factor.unwrap_or(2);
        let config = ClusterConfig {
            etcd,
            name: self.cluster_name.clone().unwrap_or_else(|| "main".into()),
            node_id,
            advertise: self.advertise.clone(),
            peer_listen,
            peer_advertise: self.peer_advertise.clone(),
            replication_factor,
            initial_nodes: self
                .initial_nodes
                .unwrap_or(usize::from(replication_factor)),
            lease_ttl_s: self.lease_ttl_s.unwrap_or(5),
            migration_rate_mib: self.migration_rate_mib.unwrap_or(32),
        };
        config.check()?;
        Ok(Some(config))
    }
}

impl ClusterConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.node_id == 0 || self.node_id > MAX_NODE_ID {
            return Err(format!(
                "--node-id {} is outside 1..={MAX_NODE_ID}",
                self.node_id
            ));
        }
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_CLUSTER_NAME_BYTES
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(format!(
                "--cluster-name '{}' must be 1..={MAX_CLUSTER_NAME_BYTES} letters, digits, '-' \
                 or '_'",
                self.name
            ));
        }
        let f = self.replication_factor;
        if f == 0 || f > MAX_REPLICATION_FACTOR {
            return Err(format!(
                "--replication-factor {f} is outside 1..={MAX_REPLICATION_FACTOR}"
            ));
        }
        if self.initial_nodes < usize::from(f) || self.initial_nodes > 4096 {
            return Err(format!(
                "--initial-nodes {} must be at least the replication factor {f} and at most 4096",
                self.initial_nodes
            ));
        }
        let (lo, hi) = LEASE_TTL_RANGE_S;
        if self.lease_ttl_s < lo || self.lease_ttl_s > hi {
            return Err(format!(
                "--lease-ttl-s {} is outside {lo}..={hi}",
                self.lease_ttl_s
            ));
        }
        let (lo, hi) = MIGRATION_RATE_RANGE_MIB;
        if self.migration_rate_mib < lo || self.migration_rate_mib > hi {
            return Err(format!(
                "--migration-rate-mib {} is outside {lo}..={hi}",
                self.migration_rate_mib
            ));
        }
        for (flag, addr) in [
            ("--advertise", &self.advertise),
            ("--peer-advertise", &self.peer_advertise),
        ] {
            if let Some(a) = addr {
                if a.to_socket_addrs()
                    .map_or(true, |mut it| it.next().is_none())
                {
                    return Err(format!("{flag} '{a}' is not a reachable HOST:PORT"));
                }
            }
        }
        Ok(())
    }

    /// The etcd key prefix of this cluster.
    pub fn prefix(&self) -> String {
        format!("/quiver/{}/", self.name)
    }

    /// The client address to advertise: `--advertise`, else the bound one.
    pub fn advertised(&self, bound: SocketAddr) -> String {
        self.advertise.clone().unwrap_or_else(|| bound.to_string())
    }
}

/// A bound address others can dial: an unspecified IP (0.0.0.0) is replaced by the client
/// listener's IP.
pub fn routable(bound: SocketAddr, client: SocketAddr) -> String {
    if bound.ip().is_unspecified() {
        SocketAddr::new(client.ip(), bound.port()).to_string()
    } else {
        bound.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ClusterArgs {
        ClusterArgs {
            cluster_etcd: Some("http://127.0.0.1:2379".into()),
            node_id: Some(1),
            ..ClusterArgs::default()
        }
    }

    #[test]
    fn defaults_and_bad_flags() {
        let c = args().resolve().unwrap().unwrap();
        assert_eq!(
            (c.replication_factor, c.initial_nodes, c.lease_ttl_s),
            (2, 2, 5)
        );
        assert_eq!(c.prefix(), "/quiver/main/");
        assert!(ClusterArgs::default().resolve().unwrap().is_none());
        let cases: Vec<(ClusterArgs, &str)> = vec![
            (
                ClusterArgs {
                    node_id: None,
                    ..args()
                },
                "--node-id",
            ),
            (
                ClusterArgs {
                    node_id: Some(0),
                    ..args()
                },
                "--node-id 0",
            ),
            (
                ClusterArgs {
                    replication_factor: Some(9),
                    ..args()
                },
                "--replication-factor 9",
            ),
            (
                ClusterArgs {
                    initial_nodes: Some(1),
                    ..args()
                },
                "--initial-nodes 1",
            ),
            (
                ClusterArgs {
                    lease_ttl_s: Some(1),
                    ..args()
                },
                "--lease-ttl-s 1",
            ),
            (
                ClusterArgs {
                    cluster_name: Some("a/b".into()),
                    ..args()
                },
                "--cluster-name",
            ),
            (
                ClusterArgs {
                    peer_listen: Some("nowhere".into()),
                    ..args()
                },
                "--peer-listen",
            ),
            (
                ClusterArgs {
                    cluster_etcd: None,
                    node_id: Some(3),
                    ..ClusterArgs::default()
                },
                "--node-id needs --cluster-etcd",
            ),
        ];
        for (a, want) in cases {
            let e = a.resolve().unwrap_err();
            assert!(e.contains(want), "{e} should name {want}");
        }
    }
}
