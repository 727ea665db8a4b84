//! What engine threads execute: batched GETs and single requests, encoded into responses.

use super::commit::{DurableWait, Pending};
use super::executor::{Completion, Mailbox};
use super::history;
use super::output::OutputGauge;
use super::stats::stats_json;
use super::status_map::engine_error;
use super::training;
use super::Shared;
use crate::protocol::{
    encode_error, encode_response, frame_bytes, put_get_many_count, put_get_many_item, GetManyItem,
    Opcode, Request, Response, ScanRequest, StatusCode, TrainingSetRequest, FLAG_MORE, HEADER_LEN,
};
use crossbeam::channel::Sender;
use quiver_engine::feature::{EntityKey, FeatureRef, FeatureValue, Status, Value};
use quiver_engine::{Durability, ScanCursor, Store};
use quiver_wal::writer::Pos;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Keys read per engine call while a GET_MANY response is built: building stops at the first
/// slice that takes the response over the frame limit, so rows are read at most one slice
/// past it.
const GET_MANY_SLICE_KEYS: usize = 256;

/// One request's return address.
#[derive(Debug, Clone)]
pub struct Target {
    pub conn: u64,
    pub request_id: u64,
    pub opcode: Opcode,
    pub start: Instant,
    /// The connection's unsent response bytes.
    pub output: Arc<OutputGauge>,
    /// The request set `FLAG_CORRUPT_STATUS`: its client reads the feature status CORRUPT.
    pub corrupt_status: bool,
}

/// Where an answer given later, on another thread, goes: the worker's mailbox, or the commit
/// thread when it must wait for a flush first.
#[derive(Clone)]
pub struct Route {
    pub worker: usize,
    pub mailboxes: Arc<Vec<Mailbox>>,
    pub commit: Sender<Pending>,
}

impl Route {
    fn deliver(&self, c: Completion) {
        if c.durable.is_some() {
            let _ = self.commit.send((self.worker, c));
            return;
        }
        let mailbox = &self.mailboxes[self.worker];
        if mailbox.tx.send(c).is_ok() {
            mailbox.waker.wake();
        }
    }

    /// The answer of one request, encoded and delivered when called (a replicated write's:
    /// called by the thread that receives its replicas' last answer); with a mark, it leaves
    /// once the log is durable up to it.
    fn answer_later(
        &self,
        t: &Target,
        max_body: usize,
    ) -> impl FnOnce(Response, Option<Pos>) + Send + 'static {
        let (route, t) = (self.clone(), t.clone());
        move |response, mark| {
            let mut out = Vec::new();
            let failed = encode_checked(&mut out, t.opcode, t.request_id, &response, max_body);
            t.output.add_built(out.len());
            let finished = vec![(t.opcode, t.start, failed)];
            let durable = mark.filter(|_| !failed).map(|mark| DurableWait {
                mark,
                target: t.clone(),
            });
            route.deliver(Completion {
                conn: t.conn,
                out,
                finished,
                login: None,
                durable,
            });
        }
    }
}

pub struct GetItem {
    pub target: Target,
    pub key: EntityKey,
}

pub enum Job {
    /// GETs that arrived together and name the same features: one `Store::get_many`.
    Gets {
        features: Vec<FeatureRef>,
        items: Vec<GetItem>,
    },
    Single {
        target: Target,
        request: Box<Request>,
    },
    /// A HANDSHAKE with a password: the argon2id verification runs here, not on a loop.
    Login {
        target: Target,
        token: Vec<u8>,
        peer: Option<std::net::SocketAddr>,
    },
    /// Writes the damaged-key list a loop's read changed (a durable write, so never on a
    /// loop). Answers nobody.
    PersistReadDamage,
}

impl Job {
    pub fn targets(&self) -> Vec<Target> {
        match self {
            Job::Gets { items, .. } => items.iter().map(|i| i.target.clone()).collect(),
            Job::Single { target, .. } | Job::Login { target, .. } => vec![target.clone()],
            Job::PersistReadDamage => Vec::new(),
        }
    }
}

/// Collects response frames per connection, keeping arrival order within a connection.
/// Every byte appended is counted on the target connection's [`OutputGauge`] (the worker
/// takes it off when the completion arrives), and no frame body exceeds `max_body`.
struct Replies {
    list: Vec<Completion>,
    /// `max_frame_bytes`.
    max_body: usize,
    /// `max_output_bytes_per_connection`.
    max_output: u64,
}

impl Replies {
    fn new(shared: &Shared) -> Replies {
        let limits = &shared.config.limits;
        Replies {
            list: Vec::new(),
            max_body: limits.max_frame_bytes as usize,
            max_output: limits.max_output_bytes_per_connection,
        }
    }

    fn slot(&mut self, conn: u64) -> &mut Completion {
        if self.list.last().is_none_or(|c| c.conn != conn) {
            self.list.push(Completion {
                conn,
                out: Vec::new(),
                finished: Vec::new(),
                login: None,
                durable: None,
            });
        }
        self.list.last_mut().expect("pushed above")
    }

    /// Appends one frame for `t` written by `write`, and counts its bytes on the gauge.
    fn append(&mut self, t: &Target, write: impl FnOnce(&mut Vec<u8>)) -> usize {
        let slot = self.slot(t.conn);
        let before = slot.out.len();
        write(&mut slot.out);
        let len = slot.out.len() - before;
        t.output.add_built(len);
        len
    }

    /// The refusal for a request whose connection already has `max_output` bytes unsent
    /// (its client is not reading), or `None` when the request may run.
    fn over_output(&self, t: &Target) -> Option<String> {
        let unsent = t.output.unsent();
        (unsent >= self.max_output).then(|| {
            format!(
                "this connection has {unsent} bytes of unread responses, at the \
                 max_output_bytes_per_connection limit of {}; read responses, then retry",
                self.max_output
            )
        })
    }

    fn respond(&mut self, t: &Target, response: &Response) {
        let max_body = self.max_body;
        let slot = self.slot(t.conn);
        let before = slot.out.len();
        let failed = encode_checked(&mut slot.out, t.opcode, t.request_id, response, max_body);
        t.output.add_built(slot.out.len() - before);
        slot.finished.push((t.opcode, t.start, failed));
    }

    /// An OK response whose body is already encoded (and checked against the frame limit).
    fn respond_body(&mut self, t: &Target, body: &[u8]) {
        self.append(t, |out| {
            frame_bytes(out, t.opcode as u8, 0, 0, t.request_id, |b| {
                b.extend_from_slice(body)
            })
        });
        let slot = self.slot(t.conn);
        slot.finished.push((t.opcode, t.start, false));
    }

    /// A body built within the frame limit, or the request's refusal.
    fn respond_built(&mut self, t: &Target, built: Result<Vec<u8>, (StatusCode, String)>) {
        match built {
            Ok(body) => self.respond_body(t, &body),
            Err((status, message)) => self.fail(t, status, &message),
        }
    }

    fn fail(&mut self, t: &Target, status: StatusCode, message: &str) {
        self.append(t, |out| {
            encode_error(out, t.opcode as u8, t.request_id, status, message)
        });
        let slot = self.slot(t.conn);
        slot.finished.push((t.opcode, t.start, true));
    }

    /// Refuses `t` with BUSY when its connection's output is full; true when refused.
    fn refuse_if_over_output(&mut self, shared: &Shared, t: &Target) -> bool {
        let Some(message) = self.over_output(t) else {
            return false;
        };
        shared.metrics.busy_rejections.fetch_add(1, Relaxed);
        self.fail(t, StatusCode::Busy, &message);
        true
    }
}

/// Encodes `response` into `out`, or, when its body would exceed `max_body`
/// (`max_frame_bytes`), a LIMIT_EXCEEDED error naming the limit. Returns whether the request
/// failed (an error response or the refusal).
pub fn encode_checked(
    out: &mut Vec<u8>,
    opcode: Opcode,
    request_id: u64,
    response: &Response,
    max_body: usize,
) -> bool {
    let before = out.len();
    encode_response(out, opcode, request_id, response);
    let body_len = out.len() - before - HEADER_LEN;
    if body_len <= max_body {
        return matches!(response, Response::Error { .. });
    }
    out.truncate(before);
    let message = format!(
        "{} response of {body_len} bytes exceeds the max_frame_bytes limit of {max_body}",
        opcode.name()
    );
    encode_error(
        out,
        opcode as u8,
        request_id,
        StatusCode::LimitExceeded,
        &message,
    );
    true
}

pub fn error_response(err: &quiver_engine::Error) -> Response {
    let (status, message) = engine_error(err);
    Response::Error { status, message }
}

pub fn internal_error_completions(
    shared: &Shared,
    targets: &[Target],
    what: &str,
) -> Vec<Completion> {
    let mut replies = Replies::new(shared);
    for t in targets {
        let msg = format!("internal error while executing {}: {what}", t.opcode.name());
        replies.fail(t, StatusCode::Internal, &msg);
    }
    replies.list
}

pub fn execute(shared: &Shared, job: Job, route: &Route) -> Vec<Completion> {
    let mut replies = Replies::new(shared);
    match job {
        // Cluster mode: the replies leave when this returns, after the writes the reads may
        // have seen are answered.
        Job::Gets { features, items } => {
            let settle = shared.cluster.as_ref().map(|c| {
                let keys = items.iter().map(|i| &i.key);
                (c, crate::cluster::partitions_of(keys))
            });
            execute_gets(shared, &features, items, &mut replies);
            if let Some((cluster, parts)) = settle {
                cluster.settle_reads(&parts);
            }
        }
        Job::Single { target, request } => {
            if !replies.refuse_if_over_output(shared, &target) {
                let settle = shared.cluster.as_ref().and_then(|c| {
                    crate::cluster::read_partitions(&request).map(|parts| (c, parts))
                });
                execute_single(shared, &target, *request, &mut replies, route);
                if let Some((cluster, parts)) = settle {
                    cluster.settle_reads(&parts);
                }
            }
        }
        Job::Login {
            target,
            token,
            peer,
        } => return vec![login(shared, &target, &token, peer)],
        Job::PersistReadDamage => shared.store.engine().persist_read_damage(),
    }
    replies.list
}

/// What the server tells a client whose handshake succeeded.
pub fn handshake_info(shared: &Shared) -> crate::protocol::HandshakeInfo {
    let limits = &shared.config.limits;
    crate::protocol::HandshakeInfo {
        version: crate::protocol::PROTOCOL_VERSION.into(),
        max_frame_bytes: limits.max_frame_bytes,
        max_batch_keys: limits.max_batch_keys,
        max_inflight_per_connection: limits.max_inflight_per_connection,
        max_features_per_request: limits.max_features_per_request,
        max_scan_chunks: limits.max_scan_chunks,
        server: format!("quiverd {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Checks a password login and answers its HANDSHAKE.
fn login(
    shared: &Shared,
    t: &Target,
    token: &[u8],
    peer: Option<std::net::SocketAddr>,
) -> Completion {
    use super::executor::Login;
    let mut out = Vec::new();
    let (login, failed) = match shared.security.login(peer, token) {
        Ok(principal) => {
            let info = Response::Handshake(handshake_info(shared));
            encode_response(&mut out, Opcode::Handshake, t.request_id, &info);
            let access = crate::security::Access::new(principal, peer);
            (Login::Accepted(access), false)
        }
        Err(msg) => {
            super::authorize::login_refused(&shared.security, token, peer, &msg);
            let status = StatusCode::AuthFailed;
            encode_error(
                &mut out,
                Opcode::Handshake as u8,
                t.request_id,
                status,
                &msg,
            );
            (Login::Refused, true)
        }
    };
    t.output.add_built(out.len());
    Completion {
        conn: t.conn,
        out,
        finished: vec![(Opcode::Handshake, t.start, failed)],
        login: Some(login),
        durable: None,
    }
}

fn execute_gets(
    shared: &Shared,
    features: &[FeatureRef],
    items: Vec<GetItem>,
    replies: &mut Replies,
) {
    // Checked again per response below: this job's own responses count too.
    let items: Vec<GetItem> = items
        .into_iter()
        .filter(|i| !replies.refuse_if_over_output(shared, &i.target))
        .collect();
    if items.is_empty() {
        return;
    }
    let (targets, keys): (Vec<Target>, Vec<EntityKey>) =
        items.into_iter().map(|i| (i.target, i.key)).unzip();
    shared
        .metrics
        .engine_batches
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared
        .metrics
        .engine_batched_gets
        .fetch_add(keys.len() as u64, std::sync::atomic::Ordering::Relaxed);
    match shared.store.get_many(&keys, features) {
        Ok(rows) if rows.len() == keys.len() => {
            for (t, row) in targets.iter().zip(rows) {
                if !replies.refuse_if_over_output(shared, t) {
                    replies.respond(t, &get_response(t, features, row));
                }
            }
        }
        // One bad request must not fail its neighbours: retry one by one for per-request errors.
        _ => {
            for (t, key) in targets.iter().zip(&keys) {
                if replies.refuse_if_over_output(shared, t) {
                    continue;
                }
                let response = match shared.store.get(key, features) {
                    Ok(values) => get_response(t, features, values),
                    Err(e) => error_response(&e),
                };
                replies.respond(t, &response);
            }
        }
    }
}

/// The values of one entity as the request's client can read them: a client that did not set
/// `FLAG_CORRUPT_STATUS` (`corrupt_status`) gets the STORE_FAILED status it knows instead of
/// values holding CORRUPT, with a message naming the damaged features.
pub fn readable(
    corrupt_status: bool,
    features: &[FeatureRef],
    values: Vec<FeatureValue>,
) -> Result<Vec<FeatureValue>, (StatusCode, String)> {
    if corrupt_status || values.iter().all(|v| v.status != Status::Corrupt) {
        return Ok(values);
    }
    let mut damaged: Vec<String> = Vec::new();
    for (f, _) in features
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.status == Status::Corrupt)
    {
        let name = f.to_string();
        if !damaged.contains(&name) {
            damaged.push(name);
        }
    }
    let message = format!(
        "CORRUPT: the stored row of {} for this entity is damaged on the device; it reads as \
         CORRUPT (never as an older value) until it is rewritten or deleted. Requests with flag \
         CORRUPT_STATUS (0x0002) get the other features, and CORRUPT per damaged feature",
        damaged.join(", ")
    );
    Err((StatusCode::StoreFailed, message))
}

fn get_response(t: &Target, features: &[FeatureRef], values: Vec<FeatureValue>) -> Response {
    match readable(t.corrupt_status, features, values) {
        Ok(values) => Response::Get(values),
        Err((status, message)) => Response::Error { status, message },
    }
}

/// A GET_MANY response body, built a slice of keys at a time; refused with LIMIT_EXCEEDED as
/// soon as it exceeds `max_body`.
fn get_many_body(
    store: &Store,
    t: &Target,
    keys: &[EntityKey],
    features: &[FeatureRef],
    max_body: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    put_get_many_count(&mut body, keys.len());
    let mut done = 0;
    for slice in keys.chunks(GET_MANY_SLICE_KEYS) {
        for item in get_many(store, slice, features) {
            put_get_many_item(
                &mut body,
                &item.and_then(|v| readable(t.corrupt_status, features, v)),
            );
        }
        done += slice.len();
        if body.len() > max_body {
            return Err(format!(
                "GET_MANY response exceeds the max_frame_bytes limit of {max_body} bytes: the \
                 first {done} of {} keys already encode to {} bytes; ask for fewer keys or \
                 features",
                keys.len(),
                body.len()
            ));
        }
    }
    Ok(body)
}

fn get_many(store: &Store, keys: &[EntityKey], features: &[FeatureRef]) -> Vec<GetManyItem> {
    match store.get_many(keys, features) {
        Ok(rows) if rows.len() == keys.len() => rows.into_iter().map(Ok).collect(),
        _ => keys
            .iter()
            .map(|k| store.get(k, features).map_err(|e| engine_error(&e)))
            .collect(),
    }
}

/// A PUT or DELETE on the local store.
fn write(store: &Store, request: Request) -> Response {
    let Request::Put {
        group,
        key,
        event_time_ms,
        options,
        values,
    } = request
    else {
        let Request::Delete {
            group,
            key,
            durability,
        } = request
        else {
            unreachable!("write() is only called with PUT or DELETE");
        };
        return match store.delete(&group, &key, durability) {
            Ok(existed) => Response::Delete { existed },
            Err(e) => error_response(&e),
        };
    };
    let (names, vals): (Vec<String>, Vec<Value>) = values.into_iter().unzip();
    let pairs: Vec<(&str, Value)> = names.iter().map(String::as_str).zip(vals).collect();
    match store.put(&group, &key, event_time_ms, &pairs, &options) {
        Ok(result) => Response::Put(result),
        Err(e) => error_response(&e),
    }
}

/// A PUT or DELETE on a single node. One that must be durable runs buffered, and its answer
/// waits in the commit thread for the flush that covers it (`commit.rs`): the engine thread
/// is free at once, and one flush makes the writes of every connection durable together.
fn write_local(shared: &Shared, t: &Target, mut request: Request, replies: &mut Replies) {
    let default = shared.config.durability;
    let sync = match &mut request {
        Request::Put { options, .. } => buffered_if_sync(&mut options.durability, default),
        Request::Delete { durability, .. } => buffered_if_sync(durability, default),
        _ => false,
    };
    let store = &*shared.store;
    let response = write(store, request);
    let written = matches!(response, Response::Put(_) | Response::Delete { .. });
    replies.respond(t, &response);
    if sync && written {
        // Taken after the write returned: the mark lies past its record.
        let mark = store.engine().write_mark();
        replies.slot(t.conn).durable = Some(DurableWait {
            mark,
            target: t.clone(),
        });
    }
}

/// Whether a write must be durable before it is answered; if so, it is made buffered here
/// (the commit thread makes it durable).
fn buffered_if_sync(durability: &mut Option<Durability>, default: Durability) -> bool {
    if durability.unwrap_or(default) != Durability::Sync {
        return false;
    }
    *durability = Some(Durability::Buffered);
    true
}

fn execute_single(
    shared: &Shared,
    t: &Target,
    request: Request,
    replies: &mut Replies,
    route: &Route,
) {
    let store = &*shared.store;
    let response = match request {
        Request::Scan(scan) => return execute_scan(shared, t, &scan, replies),
        request @ (Request::Put { .. } | Request::Delete { .. }) => match &shared.cluster {
            Some(cluster) => {
                // Answered when the replicas have confirmed, by the thread that learns it.
                let answer = route.answer_later(t, replies.max_body);
                return cluster.write(request, |r| write(store, r), answer);
            }
            None => return write_local(shared, t, request, replies),
        },
        Request::Get { key, features } => match store.get(&key, &features) {
            Ok(values) => get_response(t, &features, values),
            Err(e) => error_response(&e),
        },
        Request::GetMany { keys, features } => {
            return match get_many_body(store, t, &keys, &features, replies.max_body) {
                Ok(body) => replies.respond_body(t, &body),
                Err(message) => replies.fail(t, StatusCode::LimitExceeded, &message),
            };
        }
        Request::GetAsOf(r) => {
            return replies.respond_built(t, history::get_as_of_body(store, &r, replies.max_body))
        }
        Request::History(r) => {
            return replies.respond_built(t, history::history_body(store, &r, replies.max_body))
        }
        Request::HistoryKeys(r) => {
            let body = history::history_keys_body(store, &r, replies.max_body);
            return replies.respond_built(t, body);
        }
        Request::TrainingSet(r) => return execute_training_set(shared, t, r, replies),
        Request::GroupCreate(spec) => group_result(store.create_group(spec)),
        Request::GroupDescribe { name } => group_result(store.describe_group(&name)),
        Request::GroupAlter { name, alter } => group_result(store.alter_group(&name, alter)),
        Request::GroupList { tag } => Response::GroupList(
            store
                .list_groups(tag.as_deref())
                .iter()
                .map(|g| (**g).clone())
                .collect(),
        ),
        Request::GroupDrop { name } => match store.drop_group(&name) {
            Ok(()) => Response::GroupDropped,
            Err(e) => error_response(&e),
        },
        Request::Stats => Response::Stats {
            json: stats_json(shared),
        },
        Request::FeatureStats { group, feature } => {
            match store.feature_stats(&group, feature.as_deref()) {
                Ok(report) => Response::FeatureStats {
                    json: crate::quality::report_json(&report).to_string(),
                },
                Err(e) => error_response(&e),
            }
        }
        Request::Baseline(r) => match crate::quality::execute_baseline(store, r) {
            Ok(json) => Response::Baseline { json },
            Err(e) => error_response(&e),
        },
        Request::Ping { payload } => Response::Pong { payload },
        Request::Security(r) => match shared.security.execute(r) {
            Ok(reply) => Response::Security(reply),
            Err((status, message)) => Response::Error { status, message },
        },
        Request::ClusterMap => match &shared.cluster {
            Some(cluster) => Response::ClusterMap(cluster.map_info()),
            None => Response::Error {
                status: StatusCode::InvalidArgument,
                message: "this server is not in a cluster (started without --cluster-etcd)".into(),
            },
        },
        Request::ClusterLeave { node } => match &shared.cluster {
            Some(cluster) => match cluster.leave(node) {
                Ok(version) => Response::ClusterLeaving { version },
                Err((status, message)) => Response::Error { status, message },
            },
            None => Response::Error {
                status: StatusCode::InvalidArgument,
                message: "this server is not in a cluster (started without --cluster-etcd)".into(),
            },
        },
        Request::Handshake { .. } | Request::Replicate(_) => Response::Error {
            status: StatusCode::Internal,
            message: format!("{} is not executed by the engine pool", t.opcode.name()),
        },
    };
    replies.respond(t, &response);
}

/// Streams the frames of a TRAINING_SET answer (see [`training::run`]); an error ends the
/// stream with an error frame.
fn execute_training_set(
    shared: &Shared,
    t: &Target,
    request: TrainingSetRequest,
    replies: &mut Replies,
) {
    let (max_body, max_output) = (replies.max_body, replies.max_output);
    let result = training::run(
        &shared.store,
        request,
        max_body,
        max_output,
        |body, more| {
            let flags = if more { FLAG_MORE } else { 0 };
            replies.append(t, |out| {
                frame_bytes(out, t.opcode as u8, flags, 0, t.request_id, |b| {
                    b.extend_from_slice(body)
                })
            });
        },
    );
    match result {
        Ok(()) => replies
            .slot(t.conn)
            .finished
            .push((t.opcode, t.start, false)),
        Err((status, message)) => replies.fail(t, status, &message),
    }
}

fn group_result(
    r: quiver_engine::Result<std::sync::Arc<quiver_engine::feature::GroupSchema>>,
) -> Response {
    match r {
        Ok(schema) => Response::Group((*schema).clone()),
        Err(e) => error_response(&e),
    }
}

/// Streams up to `max_chunks` frames; every frame but the last carries FLAG_MORE, and every
/// frame carries the cursor after its items. The stream also ends early, with the cursor to
/// resume from, once the connection's unsent output reaches `max_output_bytes_per_connection`.
fn execute_scan(shared: &Shared, t: &Target, scan: &ScanRequest, replies: &mut Replies) {
    let mut cursor = scan.cursor.unwrap_or(ScanCursor::START);
    for chunk in 0..scan.max_chunks {
        let (body, next) = match scan_chunk_body(
            &shared.store,
            &scan.group,
            cursor,
            scan.chunk_items as usize,
            replies.max_body,
        ) {
            Ok(b) => b,
            Err((status, message)) => return replies.fail(t, status, &message),
        };
        let output_full = t.output.unsent() + body.len() as u64 >= replies.max_output;
        let last = next.is_none() || chunk + 1 == scan.max_chunks || output_full;
        let flags = if last { 0 } else { FLAG_MORE };
        replies.append(t, |out| {
            frame_bytes(out, Opcode::Scan as u8, flags, 0, t.request_id, |b| {
                b.extend_from_slice(&body)
            })
        });
        match (last, next) {
            (false, Some(next)) => cursor = next,
            _ => {
                let slot = replies.slot(t.conn);
                slot.finished.push((t.opcode, t.start, false));
                return;
            }
        }
    }
}

/// One chunk's body within the frame limit: halves the item count until the chunk fits, and
/// fails only when a single entity alone encodes over the limit.
fn scan_chunk_body(
    store: &Store,
    group: &str,
    cursor: ScanCursor,
    mut max_items: usize,
    max_body: usize,
) -> Result<(Vec<u8>, Option<ScanCursor>), (StatusCode, String)> {
    loop {
        let (items, next) = store
            .scan(group, cursor, max_items)
            .map_err(|e| engine_error(&e))?;
        let mut body = Vec::new();
        crate::protocol::put_scan_chunk(&mut body, &items, next);
        if body.len() <= max_body {
            return Ok((body, next));
        }
        if max_items <= 1 {
            let message = format!(
                "one scanned entity encodes to {} bytes, over the {max_body}-byte frame limit",
                body.len()
            );
            return Err((StatusCode::LimitExceeded, message));
        }
        max_items /= 2;
    }
}
