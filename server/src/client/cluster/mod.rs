//! A client of a Quiver cluster: it learns the partition map from any node (CLUSTER_MAP),
//! sends each key's requests straight to the key's master, splits a batch get by node (the
//! parts go in parallel), and on NOT_MASTER, UNAVAILABLE or a lost connection refreshes the
//! map and tries again until its retry deadline.
//!
//! A retried PUT may be applied twice when the first attempt reached the master but its
//! answer was lost (harmless for MERGE and REPLACE_ROW puts of the same values; the row's
//! generation counts both; a CREATE_ONLY retry then answers ALREADY_EXISTS).

mod batch;
mod training;

pub use batch::{PutItem, PIPELINE_DEPTH};

use super::{unexpected, Client, ClientConfig, ClientError, Result};
use crate::cluster::map::{partition_of, NO_NODE};
use crate::protocol::{
    ClusterMapInfo, GetAsOfRequest, HandshakeInfo, HistoryRequest, Opcode, Request, Response,
    StatusCode,
};
use quiver_engine::feature::{
    Alter, EntityKey, FeatureRef, FeatureValue, GroupSchema, GroupSpec, PutOptions, PutResult,
    Value,
};
use quiver_engine::history::{AsOf, HistoryCursor, HistoryEntry};
use quiver_engine::Durability;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long and how often a routed request is tried again.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Give up this long after the first attempt (zero: one attempt).
    pub deadline: Duration,
    /// First pause between attempts, doubled up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            deadline: Duration::from_secs(20),
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
        }
    }
}

/// Whether an error may go away once the map is refreshed.
pub fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Server { status, .. } => matches!(
            status,
            StatusCode::NotMaster
                | StatusCode::Unavailable
                | StatusCode::Busy
                | StatusCode::ShuttingDown
        ),
        ClientError::Io { .. }
        | ClientError::Disconnected
        | ClientError::Timeout { .. }
        | ClientError::Connect { .. } => true,
        _ => false,
    }
}

/// Connections to the nodes of one cluster, routed by its partition map.
pub struct ClusterClient {
    seeds: Vec<String>,
    config: ClientConfig,
    pub retry: RetryPolicy,
    map: Option<ClusterMapInfo>,
    conns: HashMap<u32, Client>,
    /// Reads go to any in-sync copy, in turn ([`ClusterClient::set_replica_reads`]).
    replica_reads: bool,
    read_turn: usize,
}

impl ClusterClient {
    /// Fetches the map from the first seed that answers.
    pub fn connect(seeds: &[&str], config: ClientConfig) -> Result<ClusterClient> {
        let mut c = ClusterClient {
            seeds: seeds.iter().map(|s| s.to_string()).collect(),
            config,
            retry: RetryPolicy::default(),
            map: None,
            conns: HashMap::new(),
            replica_reads: false,
            read_turn: 0,
        };
        c.refresh()?;
        Ok(c)
    }

    /// Whether reads (get, get_many, get_as_of, get_many_as_of, history_page) go to any
    /// in-sync copy of each key's partition, master or replica, in turn, instead of its master
    /// only: more nodes share the reads, and an answer from a replica may miss the writes it
    /// has not received yet (it holds every acknowledged write, but not the ones acknowledged
    /// after the read was sent, nor a write still waiting for it). Off by default; writes
    /// always go to the master.
    pub fn set_replica_reads(&mut self, on: bool) {
        self.replica_reads = on;
    }

    /// The node a read of `key` goes to: its master, or with replica reads each copy in turn.
    pub(super) fn read_node(&mut self, key: &EntityKey) -> Result<u32> {
        let master = self.master_of(key)?;
        if !self.replica_reads {
            return Ok(master);
        }
        let replicas: &[u32] = self
            .map
            .as_ref()
            .and_then(|m| m.map.as_ref())
            .map_or(&[], |m| &m.partitions[partition_of(key)].replicas);
        let copies = 1 + replicas.len();
        self.read_turn = self.read_turn.wrapping_add(1);
        Ok(match self.read_turn % copies {
            0 => master,
            i => replicas[i - 1],
        })
    }

    /// The map as last fetched.
    pub fn map(&self) -> Option<&ClusterMapInfo> {
        self.map.as_ref()
    }

    fn addr_of(&self, node: u32) -> Option<String> {
        let map = self.map.as_ref()?;
        map.nodes
            .iter()
            .find(|n| n.id == node)
            .map(|n| n.address.clone())
    }

    /// Asks the known nodes, then the seeds, for the map; keeps the newest answer.
    pub fn refresh(&mut self) -> Result<()> {
        let mut addrs: Vec<String> = self
            .map
            .iter()
            .flat_map(|m| m.nodes.iter().map(|n| n.address.clone()))
            .collect();
        addrs.extend(self.seeds.iter().cloned());
        addrs.dedup();
        let mut config = self.config.clone();
        config.reconnect_attempts = 1;
        let mut last = None;
        for addr in addrs {
            let fetched = Client::connect(&addr, config.clone()).and_then(|mut c| {
                match c.call(&Request::ClusterMap)? {
                    Response::ClusterMap(info) => Ok(info),
                    other => Err(unexpected(Opcode::ClusterMap, &other)),
                }
            });
            match fetched {
                Ok(info) => {
                    let newer = |m: &ClusterMapInfo| m.map.as_ref().map_or(0, |x| x.version);
                    if self.map.as_ref().is_none_or(|m| newer(&info) >= newer(m)) {
                        self.map = Some(info);
                    }
                    if self.map.as_ref().is_some_and(|m| m.map.is_some()) {
                        return Ok(());
                    }
                }
                Err(e) => last = Some(e),
            }
        }
        match (&self.map, last) {
            (Some(_), _) => Ok(()),
            (None, Some(e)) => Err(e),
            (None, None) => Err(ClientError::Connect {
                addr: String::new(),
                attempts: 0,
                last: "no seed address given".into(),
            }),
        }
    }

    /// The master of `key`'s partition, per the map.
    pub fn master_of(&self, key: &EntityKey) -> Result<u32> {
        let p = partition_of(key);
        let master = self
            .map
            .as_ref()
            .and_then(|m| m.map.as_ref())
            .map_or(NO_NODE, |m| m.partitions[p].master);
        if master == NO_NODE {
            return Err(ClientError::Server {
                status: StatusCode::Unavailable,
                message: format!("partition {p} has no master in the client's map"),
            });
        }
        Ok(master)
    }

    fn conn(&mut self, node: u32) -> Result<&mut Client> {
        if !self.conns.contains_key(&node) {
            let addr = self.addr_of(node).ok_or_else(|| ClientError::Server {
                status: StatusCode::Unavailable,
                message: format!("node {node} is not registered (down)"),
            })?;
            let mut config = self.config.clone();
            config.reconnect_attempts = 1;
            let client = Client::connect(&addr, config)?;
            self.conns.insert(node, client);
        }
        let client = self.conns.get_mut(&node).expect("inserted above");
        client.set_replica_reads(self.replica_reads);
        Ok(client)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry deadline passes;
    /// refreshes the map between attempts.
    fn retrying<T>(&mut self, mut attempt: impl FnMut(&mut Self) -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let mut pause = self.retry.backoff;
        loop {
            let e = match attempt(self) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !retryable(&e) || start.elapsed() + pause > self.retry.deadline {
                return Err(e);
            }
            if !matches!(e, ClientError::Server { .. }) {
                self.conns.clear();
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(self.retry.max_backoff);
            let _ = self.refresh();
        }
    }

    /// Sends `request` to the master of `key` (once; no retry).
    pub fn call_routed(&mut self, key: &EntityKey, request: &Request) -> Result<Response> {
        let node = self.master_of(key)?;
        self.call_on(node, request)
    }

    /// A read of `key`, sent where [`ClusterClient::read_node`] says.
    fn call_read(&mut self, key: &EntityKey, request: &Request) -> Result<Response> {
        let node = self.read_node(key)?;
        self.call_on(node, request)
    }

    fn call_on(&mut self, node: u32, request: &Request) -> Result<Response> {
        let conn = self.conn(node)?;
        let r = conn.call(request);
        if r.as_ref()
            .is_err_and(|e| !matches!(e, ClientError::Server { .. }))
        {
            self.conns.remove(&node);
        }
        r
    }

    pub fn put(
        &mut self,
        group: &str,
        key: EntityKey,
        event_time_ms: u64,
        values: Vec<(String, Value)>,
        options: PutOptions,
    ) -> Result<PutResult> {
        let req = Request::Put {
            group: group.into(),
            key: key.clone(),
            event_time_ms,
            options,
            values,
        };
        self.retrying(|c| match c.call_routed(&key, &req)? {
            Response::Put(r) => Ok(r),
            other => Err(unexpected(Opcode::Put, &other)),
        })
    }

    pub fn delete(
        &mut self,
        group: &str,
        key: EntityKey,
        durability: Option<Durability>,
    ) -> Result<bool> {
        let req = Request::Delete {
            group: group.into(),
            key: key.clone(),
            durability,
        };
        self.retrying(|c| match c.call_routed(&key, &req)? {
            Response::Delete { existed } => Ok(existed),
            other => Err(unexpected(Opcode::Delete, &other)),
        })
    }

    pub fn get(&mut self, key: EntityKey, features: Vec<FeatureRef>) -> Result<Vec<FeatureValue>> {
        let req = Request::Get {
            key: key.clone(),
            features,
        };
        self.retrying(|c| match c.call_read(&key, &req)? {
            Response::Get(v) => Ok(v),
            other => Err(unexpected(Opcode::Get, &other)),
        })
    }

    /// The features of one entity as of `at`, from its master (or a replica, see
    /// [`ClusterClient::set_replica_reads`]).
    pub fn get_as_of(
        &mut self,
        key: EntityKey,
        at: AsOf,
        features: Vec<FeatureRef>,
    ) -> Result<Vec<FeatureValue>> {
        let req = Request::GetAsOf(GetAsOfRequest {
            keys: vec![key.clone()],
            times: vec![at],
            features,
        });
        self.retrying(|c| match c.call_read(&key, &req)? {
            Response::GetAsOf(mut items) if items.len() == 1 => items
                .pop()
                .expect("one item")
                .map_err(|(status, message)| ClientError::Server { status, message }),
            other => Err(unexpected(Opcode::GetAsOf, &other)),
        })
    }

    /// One page of an entity's history, from its master (or a replica, see
    /// [`ClusterClient::set_replica_reads`]).
    pub fn history_page(
        &mut self,
        request: HistoryRequest,
    ) -> Result<(Vec<HistoryEntry>, Option<HistoryCursor>)> {
        let key = request.key.clone();
        let req = Request::History(request);
        self.retrying(|c| match c.call_read(&key, &req)? {
            Response::History { entries, next } => Ok((entries, next)),
            other => Err(unexpected(Opcode::History, &other)),
        })
    }

    /// Runs a group request on every node of the map (each keeps its own registry); the
    /// first node's answer is returned. A node that already has the group (GROUP_EXISTS)
    /// counts as done, so that a failed GROUP_CREATE can be repeated.
    fn on_every_node(&mut self, request: &Request) -> Result<Response> {
        let nodes: Vec<u32> = self
            .map
            .as_ref()
            .map(|m| m.nodes.iter().map(|n| n.id).collect())
            .unwrap_or_default();
        let mut first = None;
        for node in nodes {
            match self.conn(node)?.call(request) {
                Err(ClientError::Server {
                    status: StatusCode::GroupExists,
                    ..
                }) if matches!(request, Request::GroupCreate(_)) => {}
                Err(ClientError::Server { status, message }) => {
                    return Err(ClientError::Server {
                        status,
                        message: format!("node {node}: {message}"),
                    })
                }
                Err(e) => return Err(e),
                Ok(r) => {
                    first.get_or_insert(r);
                }
            }
        }
        first.ok_or_else(|| ClientError::Server {
            status: StatusCode::GroupExists,
            message: "the group already exists on every node".into(),
        })
    }

    /// Tells `node` to leave the cluster (CLUSTER_LEAVE, through any node): its partitions
    /// migrate to the other nodes. Returns the map version that marks it as leaving.
    pub fn leave(&mut self, node: u32) -> Result<u64> {
        let req = Request::ClusterLeave { node };
        self.retrying(|c| {
            let any = c
                .map
                .as_ref()
                .and_then(|m| m.nodes.first())
                .map(|n| n.id)
                .ok_or_else(|| ClientError::Server {
                    status: StatusCode::Unavailable,
                    message: "no live node in the client's map".into(),
                })?;
            match c.conn(any)?.call(&req)? {
                Response::ClusterLeaving { version } => Ok(version),
                other => Err(unexpected(Opcode::ClusterLeave, &other)),
            }
        })
    }

    /// The ids of the nodes in the map, in the map's order.
    pub fn node_ids(&self) -> Vec<u32> {
        self.map
            .as_ref()
            .map(|m| m.nodes.iter().map(|n| n.id).collect())
            .unwrap_or_default()
    }

    /// Sends `request` to one live node (the first of the map that answers), with retries:
    /// for the requests every node answers alike (GROUP_DESCRIBE, GROUP_LIST).
    pub fn call_any(&mut self, request: &Request) -> Result<Response> {
        self.retrying(|c| {
            let mut last = None;
            for node in c.node_ids() {
                let answer = c.conn(node).and_then(|conn| conn.call(request));
                match answer {
                    Err(e) if retryable(&e) => {
                        if !matches!(e, ClientError::Server { .. }) {
                            c.conns.remove(&node);
                        }
                        last = Some(e);
                    }
                    other => return other,
                }
            }
            Err(last.unwrap_or_else(|| ClientError::Server {
                status: StatusCode::Unavailable,
                message: "no live node in the client's map".into(),
            }))
        })
    }

    /// Sends `request` to `node` once (no routing, no retry): node-local requests (STATS,
    /// SCAN) asked of a chosen node.
    pub fn call_node(&mut self, node: u32, request: &Request) -> Result<Response> {
        let r = self.conn(node).and_then(|conn| conn.call(request));
        if r.as_ref()
            .is_err_and(|e| !matches!(e, ClientError::Server { .. }))
        {
            self.conns.remove(&node);
        }
        r
    }

    /// The handshake of one live node (its limits; the nodes of a cluster are expected to
    /// run with the same ones).
    pub fn server_info(&mut self) -> Result<HandshakeInfo> {
        self.retrying(|c| {
            let mut last = None;
            for node in c.node_ids() {
                match c.conn(node) {
                    Ok(conn) => return Ok(conn.server_info().clone()),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| ClientError::Server {
                status: StatusCode::Unavailable,
                message: "no live node in the client's map".into(),
            }))
        })
    }

    pub fn describe_group(&mut self, name: &str) -> Result<GroupSchema> {
        match self.call_any(&Request::GroupDescribe { name: name.into() })? {
            Response::Group(g) => Ok(g),
            other => Err(unexpected(Opcode::GroupDescribe, &other)),
        }
    }

    pub fn list_groups(&mut self, tag: Option<&str>) -> Result<Vec<GroupSchema>> {
        let req = Request::GroupList {
            tag: tag.map(str::to_owned),
        };
        match self.call_any(&req)? {
            Response::GroupList(g) => Ok(g),
            other => Err(unexpected(Opcode::GroupList, &other)),
        }
    }

    pub fn create_group(&mut self, spec: GroupSpec) -> Result<GroupSchema> {
        match self.on_every_node(&Request::GroupCreate(spec))? {
            Response::Group(g) => Ok(g),
            other => Err(unexpected(Opcode::GroupCreate, &other)),
        }
    }

    pub fn alter_group(&mut self, name: &str, alter: Alter) -> Result<GroupSchema> {
        let req = Request::GroupAlter {
            name: name.into(),
            alter,
        };
        match self.on_every_node(&req)? {
            Response::Group(g) => Ok(g),
            other => Err(unexpected(Opcode::GroupAlter, &other)),
        }
    }

    pub fn drop_group(&mut self, name: &str) -> Result<()> {
        match self.on_every_node(&Request::GroupDrop { name: name.into() })? {
            Response::GroupDropped => Ok(()),
            other => Err(unexpected(Opcode::GroupDrop, &other)),
        }
    }
}
