//! Turning one received frame into an inline answer, a queued GET or an engine job.

use super::authorize::{audit, authorize, listed, login_refused, Verdict, DENIED};
use super::conn::Conn;
use super::executor::{submit, Envelope};
use super::gets::{DivertedGet, LoopGets, LOOP_GET_MANY_KEYS};
use super::job::{handshake_info, GetItem, Job, Target};
use super::training;
use super::Shared;
use crate::config::Limits;
use crate::protocol::{
    decode_refs, decode_request, encode_response, split_get_body, DecodeError, FrameHeader, Opcode,
    Permission, Request, Response, SecurityRequest, StatusCode, FLAG_CORRUPT_STATUS,
    FLAG_REPLICA_READ, PROTOCOL_VERSION,
};
use crate::security::Access;
use crossbeam::channel::Sender;
use quiver_engine::feature::FeatureRef;
use quiver_engine::history::MAX_HISTORY_READ_VERSIONS;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// GETs with identical reference bytes, waiting for the end of the event pass.
pub struct PendingGets {
    pub features: Vec<FeatureRef>,
    pub items: Vec<GetItem>,
}

/// Where GETs are served.
pub enum GetRoute {
    /// By the engine pool, batched per pass into one `get_many` per feature list (the epoll
    /// loop, and devices whose reads must block a thread).
    Pool,
    /// By the io_uring loop itself, its device reads on the loop's ring (small GET_MANYs
    /// too).
    Loop(Box<LoopGets>),
}

/// A worker's per-pass state for routing requests.
pub struct Dispatch {
    pub worker: usize,
    pub shared: Arc<Shared>,
    pub pool: Sender<Envelope>,
    pub pending: HashMap<Vec<u8>, PendingGets>,
    pub gets: GetRoute,
}

/// The status a decoding error is answered with.
pub fn decode_status(e: &DecodeError) -> StatusCode {
    match e {
        DecodeError::UnsupportedVersion { .. } => StatusCode::UnsupportedVersion,
        DecodeError::FrameTooLarge { .. } => StatusCode::LimitExceeded,
        DecodeError::UnknownOpcode { .. } => StatusCode::UnknownOpcode,
        _ => StatusCode::BadFrame,
    }
}

/// Arguments that no limit makes valid, checked after decoding.
fn check_arguments(request: &Request, limits: &Limits) -> Option<String> {
    let max_keys = limits.max_batch_keys;
    match request {
        Request::GetMany { keys, .. } if keys.is_empty() => Some(format!(
            "GET_MANY with 0 keys: a batch needs 1..={max_keys} keys (max_batch_keys)"
        )),
        Request::GetAsOf(r) if r.keys.is_empty() => Some(format!(
            "GET_AS_OF with 0 keys: a request needs 1..={max_keys} keys (max_batch_keys)"
        )),
        Request::GetAsOf(r) if r.rows().is_none() => Some(format!(
            "GET_AS_OF with {} keys and {} times: send one time for every key, or one per key",
            r.keys.len(),
            r.times.len()
        )),
        Request::History(r) if r.features.is_empty() => {
            Some("HISTORY with 0 features: name 1 or more features of the group".to_string())
        }
        Request::History(r) if r.range.from_ms > r.range.to_ms => Some(format!(
            "HISTORY range from {} ms to {} ms is empty: 'from' must not be after 'to'",
            r.range.from_ms, r.range.to_ms
        )),
        Request::TrainingSet(r) => training::check_request(r, max_keys),
        Request::Replicate(_) => Some(
            "REPLICATE is accepted only on a cluster node's peer port (--peer-listen), not on \
             the client port"
                .to_string(),
        ),
        _ => None,
    }
}

/// Cluster mode: refuses a read of a key this node does not master (NOT_MASTER naming the
/// master and the map version, or UNAVAILABLE while the partition has none). Writes are
/// checked again where they are applied, under the partition's lock.
fn check_route(
    cluster: &crate::cluster::Cluster,
    request: &Request,
    flags: u16,
) -> Result<(), (StatusCode, String)> {
    let replica = flags & FLAG_REPLICA_READ != 0;
    match request {
        Request::Get { key, .. } => cluster.check_reads([key], replica),
        Request::GetMany { keys, .. } => cluster.check_reads(keys, replica),
        Request::GetAsOf(r) => cluster.check_reads(&r.keys, replica),
        Request::History(r) => cluster.check_reads([&r.key], replica),
        Request::Put { key, .. } | Request::Delete { key, .. } => cluster.check_keys([key]),
        _ => Ok(()),
    }
}

/// Limits that depend on configuration, checked after decoding.
fn check_limits(request: &Request, limits: &Limits) -> Result<(), (StatusCode, String)> {
    if let Some(msg) = check_arguments(request, limits) {
        return Err((StatusCode::InvalidArgument, msg));
    }
    let over = |what: &str, n: usize, name: &str, max: u32| {
        (n > max as usize).then(|| format!("{what} of {n} exceeds the {name} limit of {max}"))
    };
    let features = |n: usize| {
        over(
            "feature list",
            n,
            "max_features_per_request",
            limits.max_features_per_request,
        )
    };
    let problem = match request {
        Request::GetAsOf(r) => over(
            "batch",
            r.keys.len(),
            "max_batch_keys",
            limits.max_batch_keys,
        )
        .or_else(|| features(r.features.len())),
        Request::History(r) => features(r.features.len()).or_else(|| {
            let n = r.max_versions as usize;
            (n == 0 || n > MAX_HISTORY_READ_VERSIONS).then(|| {
                format!("HISTORY max_versions of {n} is outside 1..={MAX_HISTORY_READ_VERSIONS}")
            })
        }),
        Request::TrainingSet(r) => over(
            "training-set batch",
            r.rows(),
            "max_batch_keys",
            limits.max_batch_keys,
        )
        .or_else(|| features(r.features.len())),
        Request::HistoryKeys(r) if r.max_records == 0 => {
            Some("HISTORY_KEYS max_records must be at least 1".to_string())
        }
        Request::HistoryKeys(r) => over(
            "history key chunk",
            r.max_records as usize,
            "max_batch_keys",
            limits.max_batch_keys,
        ),
        Request::GetMany { keys, features } => {
            over("batch", keys.len(), "max_batch_keys", limits.max_batch_keys).or_else(|| {
                over(
                    "feature list",
                    features.len(),
                    "max_features_per_request",
                    limits.max_features_per_request,
                )
            })
        }
        Request::Get { features, .. } => over(
            "feature list",
            features.len(),
            "max_features_per_request",
            limits.max_features_per_request,
        ),
        Request::Put { values, .. } => over(
            "value list",
            values.len(),
            "max_features_per_request",
            limits.max_features_per_request,
        ),
        Request::Scan(s) if s.chunk_items == 0 || s.max_chunks == 0 => {
            Some("scan chunk_items and max_chunks must be at least 1".to_string())
        }
        Request::Scan(s) => over(
            "scan chunk",
            s.chunk_items as usize,
            "max_batch_keys",
            limits.max_batch_keys,
        )
        .or_else(|| {
            over(
                "scan",
                s.max_chunks as usize,
                "max_scan_chunks",
                limits.max_scan_chunks,
            )
        }),
        _ => None,
    };
    problem.map_or(Ok(()), |msg| Err((StatusCode::LimitExceeded, msg)))
}

fn elapsed_us(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// Answers a request refused because the engine queue is full.
pub fn answer_busy(shared: &Shared, conn: &mut Conn, t: &Target) {
    let msg = format!(
        "engine queue full ({} jobs); retry later",
        shared.config.engine_queue
    );
    shared.metrics.busy_rejections.fetch_add(1, Relaxed);
    shared
        .metrics
        .record(t.opcode, &[(t.start.elapsed().as_micros() as u64, true)]);
    conn.inflight = conn.inflight.saturating_sub(1);
    conn.push_error(t.opcode as u8, t.request_id, StatusCode::Busy, &msg);
}

impl Dispatch {
    pub fn new(worker: usize, shared: Arc<Shared>, pool: Sender<Envelope>, gets: GetRoute) -> Self {
        Dispatch {
            worker,
            shared,
            pool,
            pending: HashMap::new(),
            gets,
        }
    }

    /// Sends this pass's queued GETs to the engine pool, one job per reference list and batch
    /// limit; `refused` gets each request the full queue turned away (to be answered BUSY).
    pub fn flush_gets(&mut self, mut refused: impl FnMut(Target)) {
        if self.pending.is_empty() {
            return;
        }
        let max = self.shared.config.limits.max_batch_keys as usize;
        let pending: Vec<PendingGets> = self.pending.drain().map(|(_, p)| p).collect();
        for PendingGets {
            features,
            mut items,
        } in pending
        {
            while !items.is_empty() {
                let rest = items.split_off(items.len().min(max));
                let job = Job::Gets {
                    features: features.clone(),
                    items,
                };
                items = rest;
                let env = Envelope {
                    worker: self.worker,
                    job,
                };
                if let Err(env) = submit(&self.pool, env) {
                    env.job.targets().into_iter().for_each(&mut refused);
                }
            }
        }
    }

    fn reply_error(
        &self,
        conn: &mut Conn,
        op: Opcode,
        id: u64,
        start: Instant,
        status: StatusCode,
        msg: &str,
    ) {
        conn.push_error(op as u8, id, status, msg);
        self.shared.metrics.record(op, &[(elapsed_us(start), true)]);
    }

    fn reply(&self, conn: &mut Conn, op: Opcode, id: u64, start: Instant, response: &Response) {
        encode_response(&mut conn.wbuf, op, id, response);
        self.shared
            .metrics
            .record(op, &[(elapsed_us(start), false)]);
    }

    /// Handles one complete frame of connection `conn_id`.
    pub fn on_frame(&mut self, conn_id: u64, conn: &mut Conn, h: FrameHeader, body: &[u8]) {
        let start = Instant::now();
        let opcode = match h.check_request() {
            Ok(op) => op,
            Err(e) => {
                self.shared.metrics.frames_malformed.fetch_add(1, Relaxed);
                return conn.push_error(h.opcode, h.request_id, decode_status(&e), &e.to_string());
            }
        };
        if opcode != Opcode::Handshake && !conn.handshaken {
            conn.closing = true;
            let msg = format!(
                "{} before HANDSHAKE: the first request on a connection must be HANDSHAKE",
                opcode.name()
            );
            return self.reply_error(
                conn,
                opcode,
                h.request_id,
                start,
                StatusCode::HandshakeRequired,
                &msg,
            );
        }
        match opcode {
            Opcode::Handshake => self.handshake(conn_id, conn, h.request_id, body, start),
            Opcode::Ping => self.reply(
                conn,
                opcode,
                h.request_id,
                start,
                &Response::Pong {
                    payload: body.to_vec(),
                },
            ),
            Opcode::Get if !self.get_allowed(conn, h.request_id, body, start) => {}
            Opcode::Get if !self.get_routed(conn, &h, body, start) => {}
            Opcode::Get => {
                if let GetRoute::Loop(gets) = &mut self.gets {
                    if let Some(d) = gets.start(conn_id, conn, &h, body, start) {
                        self.divert_get(conn, d);
                    }
                } else {
                    self.queue_get(conn_id, conn, &h, body, start);
                }
            }
            _ => self.submit_single(conn_id, conn, opcode, &h, body, start),
        }
    }

    fn handshake(&mut self, conn_id: u64, conn: &mut Conn, id: u64, body: &[u8], start: Instant) {
        let op = Opcode::Handshake;
        let (version, token) = match decode_request(op, body) {
            Ok(Request::Handshake { version, token }) => (version, token),
            Ok(_) => unreachable!("decode_request(Handshake) yields a handshake"),
            Err(e) => {
                conn.closing = true;
                self.shared.metrics.frames_malformed.fetch_add(1, Relaxed);
                return self.reply_error(conn, op, id, start, StatusCode::BadFrame, &e.to_string());
            }
        };
        if version != u16::from(PROTOCOL_VERSION) {
            conn.closing = true;
            let msg = format!(
                "client speaks protocol version {version}, this server speaks {PROTOCOL_VERSION}"
            );
            return self.reply_error(conn, op, id, start, StatusCode::UnsupportedVersion, &msg);
        }
        let peer = conn.stream.peer_addr().ok();
        if self.shared.security.needs_hash(&token) {
            // A password: its hash is checked on an engine thread; the connection reads no
            // further until the answer (`Conn::login_pending`).
            let target = Target {
                conn: conn_id,
                request_id: id,
                opcode: op,
                start,
                output: conn.output.clone(),
                corrupt_status: false,
            };
            let job = Job::Login {
                target,
                token,
                peer,
            };
            let env = Envelope {
                worker: self.worker,
                job,
            };
            match submit(&self.pool, env) {
                Ok(()) => {
                    conn.login_pending = true;
                    conn.inflight += 1;
                    return;
                }
                Err(env) => match env.job {
                    // The queue is full: check it here rather than refuse a login.
                    Job::Login { token, .. } => {
                        return self.login_inline(conn, id, start, &token, peer)
                    }
                    _ => unreachable!("the job sent back is the login"),
                },
            }
        }
        self.login_inline(conn, id, start, &token, peer)
    }

    fn login_inline(
        &mut self,
        conn: &mut Conn,
        id: u64,
        start: Instant,
        token: &[u8],
        peer: Option<std::net::SocketAddr>,
    ) {
        let op = Opcode::Handshake;
        match self.shared.security.login(peer, token) {
            Ok(principal) => conn.access = Some(Access::new(principal, peer)),
            Err(msg) => {
                conn.closing = true;
                login_refused(&self.shared.security, token, peer, &msg);
                return self.reply_error(conn, op, id, start, StatusCode::AuthFailed, &msg);
            }
        }
        conn.handshaken = true;
        let info = handshake_info(&self.shared);
        self.reply(conn, op, id, start, &Response::Handshake(info));
    }

    /// Checks that the connection may read every group of a GET. A malformed body passes:
    /// decoding refuses it next.
    fn get_allowed(&mut self, conn: &mut Conn, id: u64, body: &[u8], start: Instant) -> bool {
        let security = &self.shared.security;
        let Some(access) = conn.access.as_mut().filter(|a| !a.is_super()) else {
            return true;
        };
        let Ok((_, raw)) = split_get_body(body) else {
            return true;
        };
        if access.refs_allowed(security, raw) {
            return true;
        }
        let Ok(refs) = decode_refs(raw) else {
            return true;
        };
        match access.check(
            security,
            Permission::Read,
            refs.iter().map(|r| r.group.as_str()),
        ) {
            Ok(()) => {
                access.remember_refs(raw);
                true
            }
            Err(group) => {
                let message = format!(
                    "user '{}' lacks read permission on group '{group}'",
                    access.principal.name()
                );
                audit(security, access, Opcode::Get.name(), &group, Some(&message));
                self.reply_error(conn, Opcode::Get, id, start, DENIED, &message);
                false
            }
        }
    }

    /// Submits a loop's GET to the engine pool, where it is read again and answered after
    /// the writes it may have seen (see [`super::gets::LoopGets::diverted`]).
    pub fn divert_get(&mut self, conn: &mut Conn, d: DivertedGet) {
        self.shared.metrics.loop_gets_diverted.fetch_add(1, Relaxed);
        let t = d.target;
        let target = Target {
            conn: t.conn,
            request_id: t.request_id,
            opcode: Opcode::Get,
            start: t.start,
            output: conn.output.clone(),
            corrupt_status: t.corrupt_status,
        };
        let request = Request::Get {
            key: d.key,
            features: t.features.as_ref().clone(),
        };
        self.submit_or_busy(conn, target, request);
    }

    /// Queues one request on the engine pool, or answers BUSY when its queue is full.
    fn submit_or_busy(&mut self, conn: &mut Conn, target: Target, request: Request) {
        let (op, id, start) = (target.opcode, target.request_id, target.start);
        let env = Envelope {
            worker: self.worker,
            job: Job::Single {
                target,
                request: Box::new(request),
            },
        };
        match submit(&self.pool, env) {
            Ok(()) => conn.inflight += 1,
            Err(_) => {
                self.shared.metrics.busy_rejections.fetch_add(1, Relaxed);
                let msg = format!(
                    "engine queue full ({} jobs); retry later",
                    self.shared.config.engine_queue
                );
                self.reply_error(conn, op, id, start, StatusCode::Busy, &msg);
            }
        }
    }

    /// Cluster mode: whether this node masters a GET's key, or is a replica of it and the GET
    /// allows a replica's answer (else the GET is answered here with the refusal).
    /// A malformed body passes: decoding refuses it next.
    fn get_routed(
        &mut self,
        conn: &mut Conn,
        h: &FrameHeader,
        body: &[u8],
        start: Instant,
    ) -> bool {
        let Some(cluster) = &self.shared.cluster else {
            return true;
        };
        let Ok((key, _)) = split_get_body(body) else {
            return true;
        };
        let id = h.request_id;
        match cluster.check_reads([&key], h.flags & FLAG_REPLICA_READ != 0) {
            Ok(()) => true,
            Err((status, msg)) => {
                self.reply_error(conn, Opcode::Get, id, start, status, &msg);
                false
            }
        }
    }

    /// Applies the access check to a decoded request: answers it when refused, or when the
    /// answer depends on who asks (the group list, WHOAMI). True when it was answered.
    fn answered_by_access(
        &mut self,
        conn: &mut Conn,
        op: Opcode,
        id: u64,
        start: Instant,
        request: &Request,
    ) -> bool {
        let security = &self.shared.security;
        let Some(access) = conn.access.as_mut() else {
            return false;
        };
        let operation = match request {
            Request::Security(r) => r.name(),
            _ => op.name(),
        };
        match authorize(security, access, request) {
            Verdict::Allow => {}
            Verdict::Audited(target) => audit(security, access, operation, &target, None),
            Verdict::Deny { target, message } => {
                audit(security, access, operation, &target, Some(&message));
                self.reply_error(conn, op, id, start, DENIED, &message);
                return true;
            }
        }
        let response = match request {
            Request::Security(SecurityRequest::Whoami) => {
                Response::Security(security.whoami(&access.principal))
            }
            Request::GroupList { tag } if !access.is_super() => Response::GroupList(
                self.shared
                    .store
                    .list_groups(tag.as_deref())
                    .iter()
                    .filter(|g| listed(security, access, &g.name, &g.tags))
                    .map(|g| (**g).clone())
                    .collect(),
            ),
            _ => return false,
        };
        self.reply(conn, op, id, start, &response);
        true
    }

    fn queue_get(
        &mut self,
        conn_id: u64,
        conn: &mut Conn,
        h: &FrameHeader,
        body: &[u8],
        start: Instant,
    ) {
        let op = Opcode::Get;
        let id = h.request_id;
        let (key, raw_refs) = match split_get_body(body) {
            Ok(parts) => parts,
            Err(e) => {
                self.shared.metrics.frames_malformed.fetch_add(1, Relaxed);
                return self.reply_error(conn, op, id, start, StatusCode::BadFrame, &e.to_string());
            }
        };
        if !self.pending.contains_key(raw_refs) {
            let features = match decode_refs(raw_refs) {
                Ok(f) => f,
                Err(e) => {
                    self.shared.metrics.frames_malformed.fetch_add(1, Relaxed);
                    return self.reply_error(
                        conn,
                        op,
                        id,
                        start,
                        StatusCode::BadFrame,
                        &e.to_string(),
                    );
                }
            };
            let max = self.shared.config.limits.max_features_per_request;
            if features.len() > max as usize {
                let msg = format!(
                    "feature list of {} exceeds the max_features_per_request limit of {max}",
                    features.len()
                );
                return self.reply_error(conn, op, id, start, StatusCode::LimitExceeded, &msg);
            }
            self.pending.insert(
                raw_refs.to_vec(),
                PendingGets {
                    features,
                    items: Vec::new(),
                },
            );
        }
        let target = Target {
            conn: conn_id,
            request_id: id,
            opcode: op,
            start,
            output: conn.output.clone(),
            corrupt_status: h.flags & FLAG_CORRUPT_STATUS != 0,
        };
        if let Some(p) = self.pending.get_mut(raw_refs) {
            p.items.push(GetItem { target, key });
            conn.inflight += 1;
        }
    }

    fn submit_single(
        &mut self,
        conn_id: u64,
        conn: &mut Conn,
        op: Opcode,
        h: &FrameHeader,
        body: &[u8],
        start: Instant,
    ) {
        let id = h.request_id;
        let request = match decode_request(op, body) {
            Ok(r) => r,
            Err(e) => {
                self.shared.metrics.frames_malformed.fetch_add(1, Relaxed);
                return self.reply_error(conn, op, id, start, StatusCode::BadFrame, &e.to_string());
            }
        };
        // Who may run it is settled before its arguments are looked at: a refused user learns
        // nothing about them.
        if self.answered_by_access(conn, op, id, start, &request) {
            return;
        }
        if let Err((status, msg)) = check_limits(&request, &self.shared.config.limits) {
            return self.reply_error(conn, op, id, start, status, &msg);
        }
        if let Some(cluster) = &self.shared.cluster {
            if let Err((status, msg)) = check_route(cluster, &request, h.flags) {
                return self.reply_error(conn, op, id, start, status, &msg);
            }
        }
        if let (Request::GetMany { keys, features }, GetRoute::Loop(gets)) =
            (&request, &mut self.gets)
        {
            // A cluster's reads may have to wait for a write's replicas (engine threads do).
            if keys.len() <= LOOP_GET_MANY_KEYS && self.shared.cluster.is_none() {
                return gets.start_many(conn_id, conn, h, keys, features, start);
            }
        }
        let target = Target {
            conn: conn_id,
            request_id: id,
            opcode: op,
            start,
            output: conn.output.clone(),
            corrupt_status: h.flags & FLAG_CORRUPT_STATUS != 0,
        };
        self.submit_or_busy(conn, target, request);
    }
}
