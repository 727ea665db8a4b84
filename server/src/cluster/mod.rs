//! Cluster mode: nodes share the key space's 4096 partitions, each partition has a master and
//! replicas, and the partition map and the membership live in etcd (docs/CLUSTER.md).
//!
//! - [`map`]: the partition map and how it changes when nodes die;
//! - [`etcd`]: a blocking client of etcd's v3 JSON gateway;
//! - [`member`]: registration under a lease, keepalive, and the map's compare-and-swap;
//! - [`write`]: a master's write path (apply, forward to every replica, then acknowledge);
//! - [`settle`]: the writes a master applied and has not answered yet, which reads wait for;
//! - [`link`]: a master's ordered stream of writes to one replica;
//! - [`replica`]: the peer listener where replicas apply those streams in order;
//! - [`mover`]: partition copies to learners (join, drain, lost copies), their promotion,
//!   and dropping partitions a node no longer holds.

pub mod config;
pub mod etcd;
pub(crate) mod link;
pub mod map;
mod member;
mod mover;
mod replica;
mod settle;
mod write;

pub use config::ClusterConfig;

use crate::protocol::{ClusterMapInfo, ClusterNode, Request, StatusCode};
use etcd::Etcd;
use map::{PartitionMap, NO_NODE, PARTITIONS};
use parking_lot::{Mutex, RwLock};
use quiver_engine::feature::EntityKey;
use quiver_engine::{Durability, Store};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A registered node, as its etcd key holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: u32,
    /// Binary protocol address for clients.
    pub client: String,
    /// Peer address where it receives replicated writes.
    pub peer: String,
}

/// What this node currently believes: the map (if one exists yet) and the live nodes.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub map: Option<PartitionMap>,
    /// The map key's etcd mod revision: the compare of the next map change.
    pub map_revision: i64,
    pub nodes: BTreeMap<u32, NodeInfo>,
}

/// Why a request is not served here: the status and its message.
pub type Refusal = (StatusCode, String);

/// A replica's current stream from one master: its number and the lock writes apply under.
type Session = (u64, Arc<Mutex<()>>);

/// One node's cluster state, shared by the server's threads.
pub struct Cluster {
    pub config: ClusterConfig,
    /// The server's durability, for writes that name none.
    default_durability: Durability,
    /// The server's `max_frame_bytes`: the largest replicated write accepted.
    max_frame_bytes: u32,
    etcd: Etcd,
    /// Weak: the server hands the store back to be closed at shutdown while replication
    /// threads may still be parked on their sockets.
    store: Weak<Store>,
    view: RwLock<Arc<View>>,
    /// Monotonic base of `lease_until_ns`.
    epoch: Instant,
    /// Until when (ns after `epoch`) this node's lease is certainly alive: the time a
    /// keepalive was sent plus the TTL etcd granted. A node masters nothing after that.
    lease_until_ns: AtomicU64,
    lease_id: AtomicI64,
    /// One lock per partition: a master applies a write and queues it to the replicas under
    /// it, so every replica receives a partition's writes in the master's order.
    order: Box<[Mutex<()>]>,
    /// Per partition, the writes applied here whose replicas have not all answered.
    settling: settle::Settling,
    links: Mutex<HashMap<u32, Arc<link::Link>>>,
    /// Replica side: the current stream of each master and the lock its writes apply under.
    sessions: Mutex<HashMap<u32, Session>>,
    next_session: AtomicU64,
    /// Master side: the partition copies under way, by (partition, learner).
    copies: Mutex<HashMap<(usize, u32), Arc<mover::CopyState>>>,
    /// Records copied to learners since start.
    copied_records: AtomicU64,
    /// Partitions this node may hold records of (written or copied here since their records
    /// were last dropped; all of them at start): the mover drops those it no longer holds.
    touched: Box<[AtomicBool]>,
    me: RwLock<Option<NodeInfo>>,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Cluster {
    /// Checks the configuration and the etcd URL; contacts nothing yet.
    pub fn new(
        config: ClusterConfig,
        store: Arc<Store>,
        default_durability: Durability,
        max_frame_bytes: u32,
    ) -> Result<Arc<Cluster>, String> {
        config.check()?;
        let etcd = Etcd::new(&config.etcd).map_err(|e| e.to_string())?;
        Ok(Arc::new(Cluster {
            config,
            default_durability,
            max_frame_bytes: max_frame_bytes.saturating_add(64),
            etcd,
            store: Arc::downgrade(&store),
            view: RwLock::new(Arc::new(View::default())),
            epoch: Instant::now(),
            lease_until_ns: AtomicU64::new(0),
            lease_id: AtomicI64::new(0),
            order: (0..PARTITIONS).map(|_| Mutex::new(())).collect(),
            settling: settle::Settling::new(PARTITIONS),
            links: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            copies: Mutex::new(HashMap::new()),
            copied_records: AtomicU64::new(0),
            touched: (0..PARTITIONS).map(|_| AtomicBool::new(true)).collect(),
            me: RwLock::new(None),
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        }))
    }

    /// Joins the cluster: binds the peer listener, registers this node in etcd under a lease
    /// (refused if another live node holds the id), reads the map, and starts the membership
    /// and peer threads. `client_addr` is the bound binary protocol address.
    pub fn start(self: &Arc<Cluster>, client_addr: std::net::SocketAddr) -> Result<(), String> {
        let peer = TcpListener::bind(self.config.peer_listen).map_err(|e| {
            format!(
                "cannot bind the peer listener on {}: {e}",
                self.config.peer_listen
            )
        })?;
        let peer_addr = peer.local_addr().map_err(|e| e.to_string())?;
        let me = NodeInfo {
            id: self.config.node_id,
            client: self.config.advertised(client_addr),
            peer: self
                .config
                .peer_advertise
                .clone()
                .unwrap_or_else(|| config::routable(peer_addr, client_addr)),
        };
        *self.me.write() = Some(me.clone());
        member::register(self, &me)?;
        member::step_out(self)?;
        let (a, b, m) = (self.clone(), self.clone(), self.clone());
        let mut threads = self.threads.lock();
        threads.push(spawn("quiver-cluster", move || member::run(&a))?);
        threads.push(spawn("quiver-peer", move || replica::listen(&b, peer))?);
        threads.push(spawn("quiver-mover", move || mover::run(&m))?);
        tracing::info!(node = me.id, client = %me.client, peer = %me.peer,
            etcd = self.etcd.endpoint(), "joined the cluster");
        Ok(())
    }

    /// Stops the threads and revokes the lease, so that the survivors take this node's
    /// partitions at once rather than after the lease TTL.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(me) = self.me.read().clone() {
            // Wakes the peer listener's blocking accept.
            let _ = std::net::TcpStream::connect(&me.peer);
        }
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
        // Ends the replication streams: writes still waiting for a replica are refused.
        self.links.lock().clear();
        let lease = self.lease_id.swap(0, Ordering::AcqRel);
        if lease != 0 {
            if let Err(e) = self.etcd.lease_revoke(lease) {
                tracing::warn!(error = %e, "could not revoke the cluster lease");
            }
        }
    }

    fn store(&self) -> Result<Arc<Store>, Refusal> {
        self.store
            .upgrade()
            .ok_or((StatusCode::ShuttingDown, "the store is closed".to_string()))
    }

    pub fn node_id(&self) -> u32 {
        self.config.node_id
    }

    pub fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// Installs a view read from etcd, unless a newer map is already installed: refreshes run
    /// on several threads (the membership loop, a replica that was sent a newer version), and
    /// a slow one must not take the map back to a version the node has already acted on.
    fn set_view(&self, view: View) {
        let mut current = self.view.write();
        if view.map_revision < current.map_revision {
            return;
        }
        *current = Arc::new(view);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Whether this node's lease is certainly alive now.
    pub fn lease_alive(&self) -> bool {
        self.now_ns() < self.lease_until_ns.load(Ordering::Acquire)
    }

    fn lease_confirmed(&self, sent: Instant, ttl_s: i64) {
        let until = sent.duration_since(self.epoch) + Duration::from_secs(ttl_s.max(0) as u64);
        self.lease_until_ns
            .store(until.as_nanos() as u64, Ordering::Release);
    }

    /// The CLUSTER_MAP answer.
    pub fn map_info(&self) -> ClusterMapInfo {
        let view = self.view();
        ClusterMapInfo {
            node_id: self.config.node_id,
            map: view.map.clone(),
            nodes: view
                .nodes
                .values()
                .map(|n| ClusterNode {
                    id: n.id,
                    address: n.client.clone(),
                })
                .collect(),
            lag: {
                let mut lag: Vec<(u32, u64)> = self
                    .links
                    .lock()
                    .values()
                    .map(|l| (l.node, l.unanswered()))
                    .collect();
                lag.sort_unstable();
                lag
            },
            copies: self.copies_in_progress(),
            copied_records: self.copied_records.load(Ordering::Relaxed),
        }
    }

    /// CLUSTER_LEAVE: marks `node` as leaving, so that its partitions migrate away; returns
    /// the map version that says so.
    pub fn leave(&self, node: u32) -> Result<u64, Refusal> {
        member::leave(self, node).map_err(|m| (StatusCode::InvalidArgument, m))
    }

    /// Whether this node may serve the partition `p` as its master now: `Ok` with the map
    /// version, or the refusal (NOT_MASTER naming the master, or UNAVAILABLE).
    pub fn check_master(&self, view: &View, p: usize) -> Result<u64, Refusal> {
        let Some(map) = &view.map else {
            return Err((
                StatusCode::Unavailable,
                format!(
                    "the cluster has no partition map yet ({} of {} initial nodes registered); \
                     retry",
                    view.nodes.len(),
                    self.config.initial_nodes
                ),
            ));
        };
        let me = self.config.node_id;
        if !self.lease_alive() {
            return Err((
                StatusCode::Unavailable,
                format!(
                    "map version {}: node {me} has no confirmed etcd lease, so it masters no \
                     partition now; retry (refresh the map)",
                    map.version
                ),
            ));
        }
        let master = map.partitions[p].master;
        if master == me {
            return Ok(map.version);
        }
        if master == NO_NODE || !view.nodes.contains_key(&master) {
            return Err((
                StatusCode::Unavailable,
                format!(
                    "map version {}: partition {p} has no live master (node {master} is down \
                     and no replica has taken over yet); retry",
                    map.version
                ),
            ));
        }
        let at = &view.nodes[&master].client;
        Err((
            StatusCode::NotMaster,
            format!(
                "map version {}: partition {p} is mastered by node {master} at {at}, not by \
                 node {me}; refresh the map",
                map.version
            ),
        ))
    }

    /// Refuses a read of keys this node does not master.
    /// Whether `key`'s partition has a write applied here and not yet answered: a read of it
    /// must not be answered before [`Cluster::settle_reads`].
    pub fn read_must_wait(&self, key: &EntityKey) -> bool {
        self.settling.any_open(map::partition_of(key))
    }

    /// Called after a read of `partitions` and before its answer: waits until every write of
    /// them that was open has been answered, so that a read never answers with a write that a
    /// failover could still take back. The wait is bounded by twice the lease TTL (a write is
    /// answered within one); past it the read is answered anyway, as a write refused for want
    /// of its replicas' confirmation stays readable here (docs/CLUSTER.md).
    pub fn settle_reads(&self, partitions: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(2 * self.config.lease_ttl_s);
        for &p in partitions {
            if !self.settling.wait(p, deadline) {
                tracing::warn!(
                    "a read of partition {p} waited {} s for writes applied here to be \
                     answered, and is answered without them",
                    2 * self.config.lease_ttl_s
                );
                return;
            }
        }
    }

    /// [`Cluster::check_keys`] for reads: with `replica_ok` (`FLAG_REPLICA_READ`), a key
    /// whose partition this node holds as an in-sync replica (not a learner) is served here
    /// too, while its lease is alive; its answer may miss writes not received yet.
    pub fn check_reads<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a EntityKey>,
        replica_ok: bool,
    ) -> Result<(), Refusal> {
        let view = self.view();
        let me = self.config.node_id;
        for key in keys {
            let p = map::partition_of(key);
            let replica = replica_ok
                && view
                    .map
                    .as_ref()
                    .is_some_and(|m| m.partitions[p].replicas.contains(&me));
            if replica && self.lease_alive() {
                continue;
            }
            self.check_master(&view, p)?;
        }
        Ok(())
    }

    pub fn check_keys<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a EntityKey>,
    ) -> Result<(), Refusal> {
        let view = self.view();
        for key in keys {
            self.check_master(&view, map::partition_of(key))?;
        }
        Ok(())
    }
}

/// The partitions a read request reads from, when it is one whose answer must wait for the
/// open writes of its partitions (see [`settle`]).
pub fn read_partitions(request: &Request) -> Option<Vec<usize>> {
    let keys: Vec<&EntityKey> = match request {
        Request::Get { key, .. } => vec![key],
        Request::GetMany { keys, .. } => keys.iter().collect(),
        Request::GetAsOf(r) => r.keys.iter().collect(),
        Request::History(r) => vec![&r.key],
        _ => return None,
    };
    Some(partitions_of(keys))
}

/// The partitions of `keys`, each once.
pub fn partitions_of<'a>(keys: impl IntoIterator<Item = &'a EntityKey>) -> Vec<usize> {
    let mut parts: Vec<usize> = keys.into_iter().map(map::partition_of).collect();
    parts.sort_unstable();
    parts.dedup();
    parts
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| format!("cannot start thread {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_at(version: u64, revision: i64) -> View {
        let nodes: std::collections::BTreeSet<u32> = [1, 2].into_iter().collect();
        let mut map = PartitionMap::initial(&nodes, 2).expect("map");
        map.version = version;
        View {
            map: Some(map),
            map_revision: revision,
            nodes: BTreeMap::new(),
        }
    }

    #[test]
    fn a_slow_refresh_never_takes_the_map_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(quiver_engine::Config::file(
            dir.path().join("s.db"),
            64 << 20,
        ))
        .expect("store");
        let args = config::ClusterArgs {
            cluster_etcd: Some("http://127.0.0.1:1".into()),
            node_id: Some(1),
            ..config::ClusterArgs::default()
        };
        let config = args.resolve().unwrap().unwrap();
        let c = Cluster::new(config, Arc::new(store), Durability::Buffered, 1 << 20).unwrap();
        c.set_view(view_at(9, 90));
        // A refresh that read etcd before the one above, and installs after it.
        c.set_view(view_at(8, 80));
        let version = |c: &Cluster| c.view().map.as_ref().map(|m| m.version);
        assert_eq!(version(&c), Some(9), "the older map was not installed");
        c.set_view(view_at(10, 100));
        assert_eq!(version(&c), Some(10));
    }
}
