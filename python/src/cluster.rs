//! The cluster backend: a pool of [`ClusterClient`]s. Each client learns the partition map
//! from any node, sends each key to its master, splits batches by node (the parts in
//! parallel) and retries NOT_MASTER / UNAVAILABLE / lost connections after a map refresh
//! until its retry deadline; a thread takes an idle client (or makes one), uses it alone and
//! gives it back, like the single-server [`crate::backend::Pool`].

use parking_lot::Mutex;
use quiver_engine::feature::{EntityKey, FeatureRef, FeatureValue, PutOptions, PutResult};
use quiver_engine::history::{AsOf, HistoryEntry, HistoryRange};
use quiver_engine::training::TimeMode;
use quiver_server::client::cluster::PutItem;
use quiver_server::client::{ClientConfig, ClientError, ClusterClient, HISTORY_PAGE_VERSIONS};
use quiver_server::protocol::{
    ClusterMapInfo, HandshakeInfo, HistoryRequest, Request, Response, StatusCode,
};

use crate::backend::{PutRow, PutTotals, Spine};
use crate::error::{Failure, Result};

/// Idle cluster clients a pool keeps (each holds a connection per node it talked to).
const MAX_IDLE_CLIENTS: usize = 8;

pub struct ClusterPool {
    seeds: Vec<String>,
    config: ClientConfig,
    retry_deadline: std::time::Duration,
    /// Reads may be answered by in-sync replicas (`ClusterClient::set_replica_reads`).
    replica_reads: bool,
    idle: Mutex<Vec<ClusterClient>>,
    info: HandshakeInfo,
}

/// A seed that is a single quiverd (no cluster) answers CLUSTER_MAP with INVALID_ARGUMENT.
fn connect_failure(seeds: &[String], e: ClientError) -> Failure {
    match e {
        ClientError::Server {
            status: StatusCode::InvalidArgument | StatusCode::UnknownOpcode,
            message,
        } => Failure::invalid(format!(
            "no cluster at {}: {message} (a single quiverd: use quiver.connect)",
            seeds.join(", ")
        )),
        other => other.into(),
    }
}

impl ClusterPool {
    /// Fetches the map from the first seed that answers, so that wrong addresses or a wrong
    /// token fail here.
    pub fn connect(
        seeds: Vec<String>,
        config: ClientConfig,
        retry_deadline: std::time::Duration,
        replica_reads: bool,
    ) -> Result<ClusterPool> {
        if seeds.is_empty() {
            return Err(Failure::invalid(
                "a cluster needs 1 or more seed addresses (host:port of any node)",
            ));
        }
        let mut client = Self::open(&seeds, &config, retry_deadline, replica_reads)?;
        let info = client.server_info()?;
        Ok(ClusterPool {
            seeds,
            config,
            retry_deadline,
            replica_reads,
            idle: Mutex::new(vec![client]),
            info,
        })
    }

    fn open(
        seeds: &[String],
        config: &ClientConfig,
        retry_deadline: std::time::Duration,
        replica_reads: bool,
    ) -> Result<ClusterClient> {
        let addrs: Vec<&str> = seeds.iter().map(String::as_str).collect();
        let mut client = ClusterClient::connect(&addrs, config.clone())
            .map_err(|e| connect_failure(seeds, e))?;
        client.retry.deadline = retry_deadline;
        client.set_replica_reads(replica_reads);
        Ok(client)
    }

    pub fn info(&self) -> &HandshakeInfo {
        &self.info
    }

    fn with<T>(&self, f: impl FnOnce(&mut ClusterClient) -> Result<T>) -> Result<T> {
        let taken = self.idle.lock().pop();
        let mut client = match taken {
            Some(c) => c,
            None => {
                // A new client starts from the addresses of the newest map the pool's clients
                // know as well as the seeds (a seed may have died since).
                let mut seeds = self.seeds.clone();
                if let Some(map) = self.idle.lock().first().and_then(ClusterClient::map) {
                    seeds.extend(map.nodes.iter().map(|n| n.address.clone()));
                }
                Self::open(
                    &seeds,
                    &self.config,
                    self.retry_deadline,
                    self.replica_reads,
                )?
            }
        };
        let out = f(&mut client);
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE_CLIENTS {
            idle.push(client);
        }
        out
    }

    pub fn close(&self) {
        self.idle.lock().clear();
    }

    /// The partition map, fetched again from the nodes.
    pub fn map(&self) -> Result<ClusterMapInfo> {
        self.with(|c| {
            c.refresh()?;
            c.map().cloned().ok_or_else(|| {
                Failure::Connection("no node of the cluster answered with its map".into())
            })
        })
    }

    /// The node mastering `key`'s partition in the client's map.
    pub fn master_of(&self, key: &EntityKey) -> Result<u32> {
        self.with(|c| Ok(c.master_of(key)?))
    }

    pub fn client<T>(
        &self,
        f: impl FnOnce(&mut ClusterClient) -> std::result::Result<T, ClientError>,
    ) -> Result<T> {
        self.with(|c| Ok(f(c)?))
    }

    /// Rows written by their masters (nodes in parallel, each pipelined). The answer names the
    /// first failing row in row order; rows of other nodes after it may have been written.
    pub fn put_rows(
        &self,
        group: &str,
        rows: Vec<PutRow>,
        options: PutOptions,
    ) -> std::result::Result<PutTotals, (usize, Failure)> {
        let items = rows
            .into_iter()
            .map(|row| PutItem {
                options: row.options(options),
                key: row.key,
                event_time_ms: row.event_time_ms,
                values: row.values,
            })
            .collect();
        let results = self
            .with(|c| Ok(c.put_many(group, items)?))
            .map_err(|e| (0, e))?;
        let mut totals = PutTotals::default();
        for (i, r) in results.into_iter().enumerate() {
            let r: PutResult = r.map_err(|e| (i, Failure::from(e)))?;
            totals.add(&r);
        }
        Ok(totals)
    }

    pub fn get_many(
        &self,
        keys: Vec<EntityKey>,
        features: Vec<FeatureRef>,
    ) -> Result<Vec<Vec<FeatureValue>>> {
        let items = self.with(|c| Ok(c.get_many(keys, features)?))?;
        items
            .into_iter()
            .map(|i| i.map_err(Failure::from))
            .collect()
    }

    pub fn get_as_of(
        &self,
        rows: Vec<(EntityKey, AsOf)>,
        features: Vec<FeatureRef>,
    ) -> Result<Vec<Vec<FeatureValue>>> {
        let items = self.with(|c| Ok(c.get_many_as_of(rows, features)?))?;
        items
            .into_iter()
            .map(|i| i.map_err(Failure::from))
            .collect()
    }

    /// Every version in `range`, page by page from the key's master.
    pub fn history(
        &self,
        group: &str,
        key: &EntityKey,
        features: Vec<String>,
        range: HistoryRange,
    ) -> Result<Vec<HistoryEntry>> {
        self.with(|c| {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let (entries, next) = c.history_page(HistoryRequest {
                    group: group.into(),
                    key: key.clone(),
                    features: features.clone(),
                    range,
                    after,
                    max_versions: HISTORY_PAGE_VERSIONS,
                })?;
                all.extend(entries);
                match next {
                    Some(next) => after = Some(next),
                    None => return Ok(all),
                }
            }
        })
    }

    /// The point-in-time join of a spine, step by step, each step split by master
    /// (`ClusterClient::training_join`); `append` takes each step's columns.
    pub fn training_set(
        &self,
        features: &[FeatureRef],
        mode: TimeMode,
        spine: &Spine,
        append: &mut impl FnMut(Vec<Vec<FeatureValue>>),
    ) -> Result<()> {
        let mut groups: Vec<String> = Vec::new();
        for f in features {
            if !groups.contains(&f.group) {
                groups.push(f.group.clone());
            }
        }
        self.with(|c| {
            for g in &groups {
                // An unknown group fails before any spine row is sent, as on one server.
                c.describe_group(g)?;
            }
            for range in spine.steps() {
                let batch = spine.batch(&groups, range)?;
                append(c.training_join(features, mode, &batch)?.columns);
            }
            Ok(())
        })
    }

    /// Each node's STATS document (or why it did not answer): `(node, address, Ok(json))`.
    #[allow(clippy::type_complexity)]
    pub fn node_stats(&self) -> Result<Vec<(u32, String, std::result::Result<String, String>)>> {
        self.with(|c| {
            let _ = c.refresh();
            let nodes: Vec<(u32, String)> = c
                .map()
                .map(|m| m.nodes.iter().map(|n| (n.id, n.address.clone())).collect())
                .unwrap_or_default();
            Ok(nodes
                .into_iter()
                .map(|(id, addr)| {
                    let doc = match c.call_node(id, &Request::Stats) {
                        Ok(Response::Stats { json }) => Ok(json),
                        Ok(other) => Err(format!("unexpected answer to STATS: {other:?}")),
                        Err(e) => Err(e.to_string()),
                    };
                    (id, addr, doc)
                })
                .collect())
        })
    }
}
