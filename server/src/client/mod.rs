//! A blocking Rust client for `quiverd`, with pipelining.
//!
//! ```no_run
//! use quiver_server::client::{Client, ClientConfig};
//! use quiver_server::protocol::Request;
//! let mut c = Client::connect("127.0.0.1:7878", ClientConfig::default())?;
//! // Pipelined: send many requests, then collect each response by its id.
//! let ids: Vec<u64> = (0..16).map(|_| c.send(&Request::Ping { payload: vec![] })).collect::<Result<_, _>>()?;
//! for id in ids {
//!     c.wait(id)?;
//! }
//! # Ok::<(), quiver_server::client::ClientError>(())
//! ```
//!
//! A transport error marks the connection broken; the next call reconnects (with the
//! handshake) up to `reconnect_attempts` times. The failed call itself is not retried: the
//! caller decides whether its request is safe to repeat.

pub mod cluster;
mod connection;
mod error;
mod training;

pub use cluster::{ClusterClient, RetryPolicy};
pub use error::{ClientError, Result};
pub use training::{RemoteTrainingSet, TRAINING_PIPELINE_DEPTH, TRAINING_REQUEST_ROWS};

use crate::protocol::{
    GetAsOfRequest, HandshakeInfo, HistoryKeysRequest, HistoryRequest, Opcode, Request, Response,
    ScanRequest, SecurityReply, SecurityRequest, StatusCode, FLAG_REPLICA_READ,
};
use connection::Connection;
use quiver_engine::feature::{
    Alter, EntityKey, FeatureRef, FeatureValue, GroupSchema, GroupSpec, PutOptions, PutResult,
    ScanItem, Value,
};
use quiver_engine::history::{AsOf, HistoryCursor, HistoryEntry, HistoryRange};
use quiver_engine::{Durability, ScanCursor};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Versions asked for per page by [`Client::history`].
pub const HISTORY_PAGE_VERSIONS: u32 = 10_000;

/// How the client connects and how long it waits.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Token presented in the handshake: the server's token, or `user:password`.
    pub auth_token: Option<Vec<u8>>,
    /// Speak TLS with this configuration (see [`crate::tls::client_config`]).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
    /// Longest wait for a response or a write; `None` waits forever.
    pub io_timeout: Option<Duration>,
    /// Connection attempts made by `connect` and by a reconnect.
    pub reconnect_attempts: u32,
    /// Pause between attempts, doubled after each.
    pub reconnect_backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            auth_token: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            io_timeout: Some(Duration::from_secs(30)),
            reconnect_attempts: 3,
            reconnect_backoff: Duration::from_millis(50),
        }
    }
}

/// One connection to a server, with pipelining: [`Client::send`] queues a request and
/// returns its id; [`Client::wait`] returns the response to an id, keeping responses to other
/// ids for later (the server may answer out of order).
pub struct Client {
    addr: String,
    config: ClientConfig,
    conn: Option<Connection>,
    info: HandshakeInfo,
    next_id: u64,
    /// Ids sent and not fully answered (a scan is answered by its last frame).
    outstanding: HashMap<u64, Opcode>,
    /// Responses read while looking for another id.
    stash: HashMap<u64, VecDeque<Response>>,
    /// When a response last arrived or a request was queued: only a connection quiet for
    /// [`QUIET_CHECK_AFTER`] is checked for a close by the server before reuse.
    last_used: Instant,
    /// Reads carry `FLAG_REPLICA_READ` ([`Client::set_replica_reads`]).
    replica_reads: bool,
}

/// How long a connection must have been quiet before it is checked (one non-blocking peek)
/// for a close by the server before a request is queued on it.
const QUIET_CHECK_AFTER: Duration = Duration::from_millis(100);

impl Client {
    /// Connects and performs the handshake (retrying the connection per the config).
    pub fn connect(addr: &str, config: ClientConfig) -> Result<Client> {
        let (conn, info) = Connection::open_with_retries(addr, &config)?;
        Ok(Client {
            addr: addr.to_owned(),
            config,
            conn: Some(conn),
            info,
            next_id: 1,
            outstanding: HashMap::new(),
            stash: HashMap::new(),
            last_used: Instant::now(),
            replica_reads: false,
        })
    }

    /// Cluster mode: whether this client's reads (GET, GET_MANY, GET_AS_OF, HISTORY) may be
    /// answered by an in-sync replica of their keys' partitions as well as by the master
    /// (`FLAG_REPLICA_READ`): such an answer may miss writes the replica has not received
    /// yet. Off by default.
    pub fn set_replica_reads(&mut self, on: bool) {
        self.replica_reads = on;
    }

    /// What the server said in the handshake (its limits).
    pub fn server_info(&self) -> &HandshakeInfo {
        &self.info
    }

    /// Drops the current connection (abandoning outstanding requests) and opens a new one.
    pub fn reconnect(&mut self) -> Result<()> {
        self.conn = None;
        self.outstanding.clear();
        self.stash.clear();
        let (conn, info) = Connection::open_with_retries(&self.addr, &self.config)?;
        self.conn = Some(conn);
        self.info = info;
        Ok(())
    }

    fn connection(&mut self) -> Result<&mut Connection> {
        let now = Instant::now();
        let quiet = self.outstanding.is_empty()
            && self.stash.is_empty()
            && now.duration_since(self.last_used) >= QUIET_CHECK_AFTER;
        self.last_used = now;
        if quiet && self.conn.as_ref().is_some_and(Connection::closed_by_peer) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.reconnect()?;
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Marks the connection broken after a transport error so the next call reconnects.
    fn check<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(
            ClientError::Io { .. }
            | ClientError::Disconnected
            | ClientError::Timeout { .. }
            | ClientError::Protocol(_),
        ) = &r
        {
            self.conn = None;
            self.outstanding.clear();
            self.stash.clear();
        }
        r
    }

    /// Number of requests sent and not yet fully answered.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Queues a request and returns its id. Requests are buffered and written when the
    /// buffer fills or a response is awaited. When the server's in-flight limit is reached,
    /// responses are read (and kept) first, so a deep pipeline can never deadlock.
    pub fn send(&mut self, request: &Request) -> Result<u64> {
        let limit = self.info.max_inflight_per_connection.max(1) as usize;
        while self.outstanding.len() >= limit {
            let r = self.read_one();
            self.check(r)?;
        }
        let id = self.next_id;
        self.next_id += 1;
        let max = self.info.max_frame_bytes;
        let read_flags = if self.replica_reads {
            FLAG_REPLICA_READ
        } else {
            0
        };
        let r = self
            .connection()
            .and_then(|c| c.queue(id, request, max, read_flags));
        self.check(r)?;
        self.outstanding.insert(id, request.opcode());
        Ok(id)
    }

    /// Writes every queued request.
    pub fn flush(&mut self) -> Result<()> {
        let r = self.connection().and_then(Connection::flush);
        self.check(r)
    }

    /// Reads one frame and files it under its id.
    fn read_one(&mut self) -> Result<()> {
        let (id, response) = self.read_frame()?;
        self.stash.entry(id).or_default().push_back(response);
        Ok(())
    }

    /// Reads one frame: its id and response (the id is no longer outstanding once its last
    /// frame arrived).
    fn read_frame(&mut self) -> Result<(u64, Response)> {
        let conn = self.conn.as_mut().ok_or(ClientError::Disconnected)?;
        conn.flush()?;
        let (id, response) = conn.read_response()?;
        if let Response::Error { status, message } = &response {
            if !self.outstanding.contains_key(&id) {
                // A connection-level error (framing, deadline, connection limit): the server
                // closes the connection after it.
                return Err(ClientError::Server {
                    status: *status,
                    message: message.clone(),
                });
            }
        }
        let last = !matches!(
            response,
            Response::ScanChunk { more: true, .. } | Response::TrainingChunk { more: true, .. }
        );
        if last {
            self.outstanding.remove(&id);
        }
        self.last_used = Instant::now();
        Ok((id, response))
    }

    /// The next response frame for `id` (a scan has several), as sent by the server:
    /// an error status comes back as `Response::Error`.
    pub fn wait_raw(&mut self, id: u64) -> Result<Response> {
        loop {
            if let Some(r) = self.stash.get_mut(&id).and_then(VecDeque::pop_front) {
                if self.stash.get(&id).is_some_and(VecDeque::is_empty) {
                    self.stash.remove(&id);
                }
                return Ok(r);
            }
            if !self.outstanding.contains_key(&id) {
                return Err(ClientError::Disconnected);
            }
            // The frame read is usually the one awaited: handed over without being stashed.
            let r = self.read_frame();
            let (got, response) = self.check(r)?;
            if got == id {
                return Ok(response);
            }
            self.stash.entry(got).or_default().push_back(response);
        }
    }

    /// The response to `id`, with a server error turned into [`ClientError::Server`].
    pub fn wait(&mut self, id: u64) -> Result<Response> {
        match self.wait_raw(id)? {
            Response::Error { status, message } => Err(ClientError::Server { status, message }),
            r => Ok(r),
        }
    }

    /// Any next response, whichever id it answers.
    pub fn recv(&mut self) -> Result<(u64, Response)> {
        loop {
            if let Some(&id) = self.stash.keys().next() {
                return self.wait_raw(id).map(|r| (id, r));
            }
            if self.outstanding.is_empty() {
                return Err(ClientError::Disconnected);
            }
            let r = self.read_one();
            self.check(r)?;
        }
    }

    /// Sends one request and waits for its response.
    pub fn call(&mut self, request: &Request) -> Result<Response> {
        let id = self.send(request)?;
        self.wait(id)
    }

    pub fn ping(&mut self) -> Result<()> {
        self.call(&Request::Ping {
            payload: Vec::new(),
        })
        .map(drop)
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
            key,
            event_time_ms,
            options,
            values,
        };
        match self.call(&req)? {
            Response::Put(r) => Ok(r),
            other => Err(unexpected(Opcode::Put, &other)),
        }
    }

    /// The values of `features` for one entity, in order. A feature whose stored row is
    /// damaged comes back with [`Status::Corrupt`](quiver_engine::feature::Status::Corrupt)
    /// (the client asks for it with the request flag `CORRUPT_STATUS`); the others as usual.
    pub fn get(&mut self, key: EntityKey, features: Vec<FeatureRef>) -> Result<Vec<FeatureValue>> {
        match self.call(&Request::Get { key, features })? {
            Response::Get(v) => Ok(v),
            other => Err(unexpected(Opcode::Get, &other)),
        }
    }

    /// One result per key: the values, or that key's own error. A damaged row is not an
    /// error: its features come back with
    /// [`Status::Corrupt`](quiver_engine::feature::Status::Corrupt), as in [`Client::get`].
    pub fn get_many(
        &mut self,
        keys: Vec<EntityKey>,
        features: Vec<FeatureRef>,
    ) -> Result<Vec<Result<Vec<FeatureValue>>>> {
        match self.call(&Request::GetMany { keys, features })? {
            Response::GetMany(items) => Ok(items
                .into_iter()
                .map(|i| i.map_err(|(status, message)| ClientError::Server { status, message }))
                .collect()),
            other => Err(unexpected(Opcode::GetMany, &other)),
        }
    }

    pub fn delete(
        &mut self,
        group: &str,
        key: EntityKey,
        durability: Option<Durability>,
    ) -> Result<bool> {
        match self.call(&Request::Delete {
            group: group.into(),
            key,
            durability,
        })? {
            Response::Delete { existed } => Ok(existed),
            other => Err(unexpected(Opcode::Delete, &other)),
        }
    }

    fn group_call(&mut self, request: &Request) -> Result<GroupSchema> {
        match self.call(request)? {
            Response::Group(g) => Ok(g),
            other => Err(unexpected(request.opcode(), &other)),
        }
    }

    pub fn create_group(&mut self, spec: GroupSpec) -> Result<GroupSchema> {
        self.group_call(&Request::GroupCreate(spec))
    }

    pub fn describe_group(&mut self, name: &str) -> Result<GroupSchema> {
        self.group_call(&Request::GroupDescribe { name: name.into() })
    }

    pub fn alter_group(&mut self, name: &str, alter: Alter) -> Result<GroupSchema> {
        self.group_call(&Request::GroupAlter {
            name: name.into(),
            alter,
        })
    }

    pub fn list_groups(&mut self, tag: Option<&str>) -> Result<Vec<GroupSchema>> {
        match self.call(&Request::GroupList {
            tag: tag.map(str::to_owned),
        })? {
            Response::GroupList(g) => Ok(g),
            other => Err(unexpected(Opcode::GroupList, &other)),
        }
    }

    pub fn drop_group(&mut self, name: &str) -> Result<()> {
        match self.call(&Request::GroupDrop { name: name.into() })? {
            Response::GroupDropped => Ok(()),
            other => Err(unexpected(Opcode::GroupDrop, &other)),
        }
    }

    /// One SCAN request: up to `max_chunks` frames of up to `chunk_items` entities each.
    /// Returns the entities and the cursor to resume from (`None` at the end of the group).
    pub fn scan_page(
        &mut self,
        group: &str,
        cursor: Option<ScanCursor>,
        chunk_items: u32,
        max_chunks: u32,
    ) -> Result<(Vec<ScanItem>, Option<ScanCursor>)> {
        let id = self.send(&Request::Scan(ScanRequest {
            group: group.into(),
            cursor,
            chunk_items,
            max_chunks,
        }))?;
        let mut all = Vec::new();
        loop {
            match self.wait(id)? {
                Response::ScanChunk { items, next, more } => {
                    all.extend(items);
                    if !more {
                        return Ok((all, next));
                    }
                }
                other => return Err(unexpected(Opcode::Scan, &other)),
            }
        }
    }

    /// Every entity of a group, page by page (up to 16 frames per request, fewer when the
    /// server announced a lower `max_scan_chunks`).
    pub fn scan_all(&mut self, group: &str, chunk_items: u32) -> Result<Vec<ScanItem>> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let chunks = self.info.max_scan_chunks.clamp(1, 16);
            let (items, next) = self.scan_page(group, cursor, chunk_items, chunks)?;
            all.extend(items);
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    /// Features of one entity as of `at` (see [`AsOf`]), with the statuses of a GET (EXPIRED
    /// counted from the as-of time). Every group must keep history.
    pub fn get_as_of(
        &mut self,
        key: EntityKey,
        at: AsOf,
        features: Vec<FeatureRef>,
    ) -> Result<Vec<FeatureValue>> {
        let mut items = self.get_many_as_of(vec![(key, at)], features)?;
        match items.pop() {
            Some(item) if items.is_empty() => item,
            _ => Err(unexpected_count(Opcode::GetAsOf, items.len() + 1)),
        }
    }

    /// The same features for many (entity, time) rows in one request: one result per row,
    /// the values or that row's own error. Rows that share one time send it once.
    pub fn get_many_as_of(
        &mut self,
        rows: Vec<(EntityKey, AsOf)>,
        features: Vec<FeatureRef>,
    ) -> Result<Vec<Result<Vec<FeatureValue>>>> {
        let n = rows.len();
        let shared = rows.first().map(|(_, at)| *at);
        let (keys, mut times): (Vec<EntityKey>, Vec<AsOf>) = rows.into_iter().unzip();
        if let Some(at) = shared.filter(|at| times.iter().all(|t| t == at)) {
            times = vec![at];
        }
        let request = Request::GetAsOf(GetAsOfRequest {
            keys,
            times,
            features,
        });
        match self.call(&request)? {
            Response::GetAsOf(items) if items.len() == n => Ok(items
                .into_iter()
                .map(|i| i.map_err(|(status, message)| ClientError::Server { status, message }))
                .collect()),
            Response::GetAsOf(items) => Err(unexpected_count(Opcode::GetAsOf, items.len())),
            other => Err(unexpected(Opcode::GetAsOf, &other)),
        }
    }

    /// One HISTORY request: up to `max_versions` versions (fewer when the server's frame
    /// limit is reached) of `features` of one entity, in history order (event time, then
    /// write time), and the cursor of the next page (`None` after the last).
    pub fn history_page(
        &mut self,
        group: &str,
        key: EntityKey,
        features: Vec<String>,
        range: HistoryRange,
        after: Option<HistoryCursor>,
        max_versions: u32,
    ) -> Result<(Vec<HistoryEntry>, Option<HistoryCursor>)> {
        let request = Request::History(HistoryRequest {
            group: group.into(),
            key,
            features,
            range,
            after,
            max_versions,
        });
        match self.call(&request)? {
            Response::History { entries, next } => Ok((entries, next)),
            other => Err(unexpected(Opcode::History, &other)),
        }
    }

    /// Every version of `features` of one entity in `range`, page by page.
    pub fn history(
        &mut self,
        group: &str,
        key: EntityKey,
        features: Vec<String>,
        range: HistoryRange,
    ) -> Result<Vec<HistoryEntry>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let (entries, next) = self.history_page(
                group,
                key.clone(),
                features.clone(),
                range,
                after,
                HISTORY_PAGE_VERSIONS,
            )?;
            all.extend(entries);
            match next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One HISTORY_KEYS request: entities of `group` that have history, from a scan of up to
    /// `max_records` history records, and the cursor to resume from (`None` at the end).
    pub fn history_keys_page(
        &mut self,
        group: &str,
        cursor: Option<ScanCursor>,
        max_records: u32,
    ) -> Result<(Vec<EntityKey>, Option<ScanCursor>)> {
        let request = Request::HistoryKeys(HistoryKeysRequest {
            group: group.into(),
            cursor,
            max_records,
        });
        match self.call(&request)? {
            Response::HistoryKeys { keys, next } => Ok((keys, next)),
            other => Err(unexpected(Opcode::HistoryKeys, &other)),
        }
    }

    /// A SECURITY command: users, roles, grants, whoami (docs/SECURITY.md).
    pub fn security(&mut self, request: SecurityRequest) -> Result<SecurityReply> {
        match self.call(&Request::Security(request))? {
            Response::Security(reply) => Ok(reply),
            other => Err(unexpected(Opcode::Security, &other)),
        }
    }

    /// Live statistics of `group`'s features (of `feature` only when given), as the JSON
    /// text documented in docs/PROTOCOL.md (FEATURE_STATS).
    pub fn feature_stats(&mut self, group: &str, feature: Option<&str>) -> Result<String> {
        let request = Request::FeatureStats {
            group: group.to_string(),
            feature: feature.map(str::to_string),
        };
        match self.call(&request)? {
            Response::FeatureStats { json } => Ok(json),
            other => Err(unexpected(Opcode::FeatureStats, &other)),
        }
    }

    /// A BASELINE request (save from a window, put, show, drop); answers its JSON.
    pub fn baseline(&mut self, request: crate::protocol::BaselineRequest) -> Result<String> {
        match self.call(&Request::Baseline(request))? {
            Response::Baseline { json } => Ok(json),
            other => Err(unexpected(Opcode::Baseline, &other)),
        }
    }

    /// The server's STATS document (JSON).
    pub fn stats(&mut self) -> Result<String> {
        match self.call(&Request::Stats)? {
            Response::Stats { json } => Ok(json),
            other => Err(unexpected(Opcode::Stats, &other)),
        }
    }
}

fn unexpected_count(op: Opcode, got: usize) -> ClientError {
    ClientError::Server {
        status: StatusCode::Internal,
        message: format!("{} answered with {got} items, not one per key", op.name()),
    }
}

fn unexpected(expected: Opcode, got: &Response) -> ClientError {
    ClientError::Server {
        status: StatusCode::Internal,
        message: format!("unexpected response to {}: {got:?}", expected.name()),
    }
}
