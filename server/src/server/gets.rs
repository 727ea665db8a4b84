//! GETs, and small GET_MANYs, served by the io_uring loop itself: no hand-off to another
//! thread, no wake-up.
//!
//! A GET resolves its feature list through a small cache of read plans (made again when the
//! registry's schemas change), starts the store's [`PendingGet`], and answers at once when every
//! row was in memory. Otherwise the device reads it needs go to [`LoopGets::outbox`], which the
//! loop submits to its ring with everybody else's reads of the turn; each completion comes
//! back through [`LoopGets::complete_read`], and the answer is encoded into the connection's
//! write buffer by [`LoopGets::respond`]. A GET_MANY of at most [`LOOP_GET_MANY_KEYS`] keys
//! (outside cluster mode) is one such GET per key under one answer, encoded by
//! [`LoopGets::respond_many`] item by item exactly as an engine thread encodes it; larger
//! batches go to the engine pool, whose threads share their decoding.

use super::byte_pool::BytePool;
use super::conn::Conn;
use super::job::{encode_checked, error_response, readable};
use super::Shared;
use crate::protocol::{
    decode_refs, encode_error, frame_bytes, put_get_many_count, put_get_many_item, put_refs,
    split_get_body, FrameHeader, Opcode, Response, StatusCode, FLAG_CORRUPT_STATUS,
};
use quiver_engine::feature::read::ReadPlan;
use quiver_engine::feature::{EntityKey, FeatureRef, FeatureValue, KeyType};
use quiver_engine::PendingGet;
use quiver_wal::BufPool;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Distinct feature lists whose plans a loop keeps (the cache starts over when full).
const MAX_CACHED_PLANS: usize = 256;
/// Read buffers a loop keeps per size class for memory stores' in-place reads.
const MEMORY_READ_BUFS: usize = 16;
/// Finished [`PendingGet`]s a loop keeps for reuse (with the records their rows were read
/// into): a GET in steady state allocates nothing.
const IDLE_GETS_KEPT: usize = 1024;
/// GETs waiting for the device whose table entries a loop reserves up front (more grow it).
const DEVICE_GETS_RESERVED: usize = 1024;
/// Latencies a loop collects before it records them (at the end of a turn, or when full).
const SAMPLES_KEPT: usize = 1024;
/// The most keys of a GET_MANY a loop serves itself; larger ones go to the engine pool.
pub const LOOP_GET_MANY_KEYS: usize = 32;
/// Per-key lists of finished GET_MANYs a loop keeps for reuse.
const IDLE_BATCHES_KEPT: usize = 64;
/// Send buffers a loop lends its connections, and their size (128 x 32 KiB: 4 MiB per loop,
/// allocated when it starts). A connection's answers go into one until the next answer would
/// not fit, then into the next; up to [`MAX_FULL_SEND_BUFS`] wait behind the send in flight.
/// A connection holds none once its answers are sent.
pub const SEND_BUFS: usize = 128;
pub const SEND_BUF_BYTES: usize = 32 << 10;
/// Filled send buffers a connection may have waiting behind its send in flight (reserved
/// when the loop adopts it: 8 x 24 bytes); past it, the buffer being filled grows.
pub const MAX_FULL_SEND_BUFS: usize = 8;
/// Buffers a loop lends its connections to carry a frame split between receives (or bytes
/// received while paused), and their size.
pub const CARRY_BUFS: usize = 32;
pub const CARRY_BUF_BYTES: usize = 64 << 10;

/// A device read a GET waits for.
#[derive(Debug, Clone, Copy)]
pub struct ReadRequest {
    /// Index of the GET in [`LoopGets`].
    pub get: u32,
    /// The key of a GET_MANY the read is for (0 for a GET).
    pub entity: u32,
    /// The group slot of the GET's [`PendingGet`].
    pub slot: u32,
    pub offset: u64,
    pub len: usize,
}

/// What a GET's answer is encoded for.
#[derive(Clone)]
pub struct GetTarget {
    pub conn: u64,
    pub request_id: u64,
    pub start: Instant,
    /// The request set `FLAG_CORRUPT_STATUS`.
    pub corrupt_status: bool,
    /// The features asked for (named in the message a damaged row gets without the flag).
    pub features: Arc<Vec<FeatureRef>>,
    /// Cluster mode: the key, for a GET that must be answered off the loop
    /// ([`LoopGets::diverted`]).
    pub cluster_key: Option<EntityKey>,
}

/// A finished GET that a write not yet answered may have reached: it is read again and
/// answered on an engine thread, after that write's answer (`cluster::settle`).
pub struct DivertedGet {
    pub target: GetTarget,
    pub key: EntityKey,
}

/// A GET (or GET_MANY) whose device reads are outstanding.
struct LoopGet {
    /// A GET's read (unused by a GET_MANY).
    pending: PendingGet,
    /// A GET_MANY's reads, one per key in key order (empty for a GET).
    many: Vec<PendingGet>,
    target: GetTarget,
    outstanding: u32,
}

impl LoopGet {
    fn entity(&mut self, entity: u32) -> &mut PendingGet {
        if self.many.is_empty() {
            &mut self.pending
        } else {
            &mut self.many[entity as usize]
        }
    }
}

/// A GET whose reads are done, to be answered on its connection by [`LoopGets::answer`]: a
/// GET's values wait in [`LoopGets`] (answer it before the next GET finishes); a GET_MANY's
/// reads are finished as its answer is encoded.
pub struct FinishedGet {
    pub target: GetTarget,
    pub answer: quiver_engine::Result<()>,
    /// A GET_MANY's reads, one per key (empty for a GET).
    many: Vec<PendingGet>,
}

/// A resolved feature list.
#[derive(Clone)]
struct Plan {
    read: Arc<ReadPlan>,
    features: Arc<Vec<FeatureRef>>,
}

struct CachedPlan {
    changes: u64,
    key_type: KeyType,
    plan: Plan,
}

pub struct LoopGets {
    shared: Arc<Shared>,
    plans: HashMap<Vec<u8>, CachedPlan>,
    gets: Vec<Option<LoopGet>>,
    free: Vec<u32>,
    /// Finished gets, reused by the next ones.
    idle: Vec<PendingGet>,
    /// Emptied per-key lists of finished GET_MANYs, reused by the next ones.
    idle_batches: Vec<Vec<PendingGet>>,
    /// A GET_MANY's reference list, encoded again to look its plan up.
    refs_scratch: Vec<u8>,
    /// The values of the GET being answered (entries and vector buffers reused).
    values: Vec<FeatureValue>,
    /// Device reads to submit this turn.
    pub outbox: Vec<ReadRequest>,
    /// Device reads are copies from memory (a memory store): made in place.
    reads_in_place: bool,
    bufs: BufPool,
    /// Latencies of answered GETs, recorded once per loop turn.
    samples: Vec<(u64, bool)>,
    /// Latencies of answered GET_MANYs.
    many_samples: Vec<(u64, bool)>,
    /// A read found damage: the loop has the damaged-key list written off the loop.
    pub damage_found: bool,
    /// The connections' send buffers (see [`SEND_BUFS`]).
    pub sends: BytePool,
    /// The connections' carry buffers (see [`CARRY_BUFS`]).
    pub carries: BytePool,
    /// The largest GET answer encoded so far (capped at a send buffer): a send buffer with
    /// less room than this is set aside for the next.
    answer_bytes_max: usize,
    /// Pool misses already added to the server's metrics.
    misses_published: u64,
}

impl LoopGets {
    pub fn new(shared: Arc<Shared>) -> LoopGets {
        let reads_in_place = shared.store.engine().reads_from_memory();
        LoopGets {
            shared,
            plans: HashMap::with_capacity(MAX_CACHED_PLANS),
            gets: Vec::with_capacity(if reads_in_place {
                0
            } else {
                DEVICE_GETS_RESERVED
            }),
            free: Vec::with_capacity(if reads_in_place {
                0
            } else {
                DEVICE_GETS_RESERVED
            }),
            idle: Vec::with_capacity(IDLE_GETS_KEPT),
            idle_batches: Vec::new(),
            refs_scratch: Vec::new(),
            values: Vec::new(),
            outbox: Vec::with_capacity(if reads_in_place {
                0
            } else {
                DEVICE_GETS_RESERVED
            }),
            reads_in_place,
            bufs: BufPool::new(MEMORY_READ_BUFS),
            samples: Vec::with_capacity(SAMPLES_KEPT),
            many_samples: Vec::new(),
            damage_found: false,
            sends: BytePool::new(SEND_BUFS, SEND_BUF_BYTES),
            carries: BytePool::new(CARRY_BUFS, CARRY_BUF_BYTES),
            answer_bytes_max: 0,
            misses_published: 0,
        }
    }

    /// Handles one GET frame of connection `conn_id`. A GET answered at once may come back
    /// diverted (see [`LoopGets::diverted`]).
    pub fn start(
        &mut self,
        conn_id: u64,
        conn: &mut Conn,
        h: &FrameHeader,
        body: &[u8],
        start: Instant,
    ) -> Option<DivertedGet> {
        let id = h.request_id;
        let (key, raw_refs) = match split_get_body(body) {
            Ok(parts) => parts,
            Err(e) => {
                self.malformed(conn, id, start, &e.to_string());
                return None;
            }
        };
        let plan = match self.plan(raw_refs, key.key_type()) {
            Ok(plan) => plan,
            Err((StatusCode::BadFrame, message)) => {
                self.malformed(conn, id, start, &message);
                return None;
            }
            Err((status, message)) => {
                self.fail(conn, Opcode::Get, id, start, status, &message);
                return None;
            }
        };
        let store = &self.shared.store;
        let mut pending = self.idle.pop().unwrap_or_default();
        let begun = store.begin_get_into(&mut pending, &plan.read, &key);
        let mut target = GetTarget {
            conn: conn_id,
            request_id: id,
            start,
            corrupt_status: h.flags & FLAG_CORRUPT_STATUS != 0,
            features: plan.features,
            cluster_key: self.shared.cluster.as_ref().map(|_| key),
        };
        if let Err(e) = begun {
            self.keep_idle(pending);
            self.respond(conn, &target, Err(e));
            return None;
        }
        if self.reads_in_place {
            self.read_in_place(&mut pending);
        }
        if pending.is_ready() {
            let before = conn.queued_output();
            let answer = pending.finish_into(&self.shared.store, &mut self.values);
            self.keep_idle(pending);
            self.note_damage();
            if let Some(key) = self.diverted(&mut target) {
                return Some(DivertedGet { target, key });
            }
            self.respond(conn, &target, answer);
            conn.batch_engine_bytes += conn.queued_output().saturating_sub(before);
            return None;
        }
        self.wait_for_device(
            conn,
            LoopGet {
                pending,
                many: Vec::new(),
                target,
                outstanding: 0,
            },
        );
        None
    }

    /// Handles one GET_MANY of connection `conn_id` whose request was decoded and checked
    /// (access, limits) and has at most [`LOOP_GET_MANY_KEYS`] keys; never in cluster mode.
    /// Each key's answer is what [`Store::get`](quiver_engine::Store::get) gives it, as on an
    /// engine thread: an unknown feature, or a key of the wrong type, fails its items.
    pub fn start_many(
        &mut self,
        conn_id: u64,
        conn: &mut Conn,
        h: &FrameHeader,
        keys: &[EntityKey],
        features: &[FeatureRef],
        start: Instant,
    ) {
        let id = h.request_id;
        let mut raw_refs = std::mem::take(&mut self.refs_scratch);
        raw_refs.clear();
        put_refs(&mut raw_refs, features);
        let mut many = self.idle_batches.pop().unwrap_or_default();
        let store = self.shared.store.clone();
        // The plan of the keys' type (looked up again only where the type changes).
        let mut planned: Option<(KeyType, Option<Plan>)> = None;
        let mut resolved = None;
        for key in keys {
            let key_type = key.key_type();
            if planned.as_ref().is_none_or(|(t, _)| *t != key_type) {
                planned = Some((key_type, self.plan(&raw_refs, key_type).ok()));
            }
            let mut pending = self.idle.pop().unwrap_or_default();
            let begun = match planned.as_ref().and_then(|(_, plan)| plan.as_ref()) {
                Some(plan) => {
                    resolved.get_or_insert_with(|| plan.features.clone());
                    store.begin_get_into(&mut pending, &plan.read, key)
                }
                // The plan's error, as `Store::get` gives it for this key.
                None => store
                    .read_plan(key_type, features)
                    .and_then(|read| store.begin_get_into(&mut pending, &read, key)),
            };
            if let Err(e) = begun {
                pending.fail(e);
            } else if self.reads_in_place {
                self.read_in_place(&mut pending);
            }
            many.push(pending);
        }
        self.refs_scratch = raw_refs;
        let features = resolved.unwrap_or_else(|| Arc::new(features.to_vec()));
        let target = GetTarget {
            conn: conn_id,
            request_id: id,
            start,
            corrupt_status: h.flags & FLAG_CORRUPT_STATUS != 0,
            features,
            cluster_key: None,
        };
        if many.iter().all(PendingGet::is_ready) {
            let before = conn.queued_output();
            self.respond_many(conn, &target, many);
            conn.batch_engine_bytes += conn.queued_output().saturating_sub(before);
            return;
        }
        self.wait_for_device(
            conn,
            LoopGet {
                pending: PendingGet::default(),
                many,
                target,
                outstanding: 0,
            },
        );
    }

    /// Files `get` under a free index and puts the device reads it waits for in the outbox.
    fn wait_for_device(&mut self, conn: &mut Conn, mut get: LoopGet) {
        let index = self.free.pop().unwrap_or_else(|| {
            self.gets.push(None);
            (self.gets.len() - 1) as u32
        });
        let entities = get.many.len().max(1) as u32;
        let before = self.outbox.len();
        for entity in 0..entities {
            for (slot, offset, len) in get.entity(entity).device_reads() {
                self.outbox.push(ReadRequest {
                    get: index,
                    entity,
                    slot: slot as u32,
                    offset,
                    len,
                });
            }
        }
        get.outstanding = (self.outbox.len() - before) as u32;
        self.gets[index as usize] = Some(get);
        conn.inflight += 1;
    }

    /// Cluster mode: the key of a finished GET whose partition has a write applied here and
    /// not yet confirmed by its replicas, taken from the target; its answer must wait for that
    /// write's, which a loop never does. The caller has it read again on an engine thread.
    /// `None` (the common case, one atomic load) when the GET may be answered now.
    pub fn diverted(&self, target: &mut GetTarget) -> Option<EntityKey> {
        let cluster = self.shared.cluster.as_ref()?;
        if cluster.read_must_wait(target.cluster_key.as_ref()?) {
            return target.cluster_key.take();
        }
        None
    }

    fn keep_idle(&mut self, pending: PendingGet) {
        if self.idle.len() < IDLE_GETS_KEPT {
            self.idle.push(pending);
        }
    }

    /// A read that found damage leaves the damaged-key list to write (a durable write): the
    /// loop has it written off the loop.
    fn note_damage(&mut self) {
        if self.shared.store.engine().read_damage_pending() {
            self.damage_found = true;
        }
    }

    /// A memory store's reads are copies: made here, until none is outstanding.
    fn read_in_place(&mut self, pending: &mut PendingGet) {
        let store = self.shared.store.clone();
        loop {
            let Some((slot, offset, len)) = pending.device_reads().next() else {
                return;
            };
            let mut buf = self.bufs.take(len);
            let read = store.engine().read_now(offset, &mut buf[..len]);
            pending.complete(&store, slot, read.map(|()| &buf[..len]));
            self.bufs.give(buf);
        }
    }

    /// The plan for `raw_refs` (a GET body's reference list) and entities of `key_type`.
    fn plan(&mut self, raw_refs: &[u8], key_type: KeyType) -> Result<Plan, (StatusCode, String)> {
        let changes = self.shared.store.registry_changes();
        if let Some(c) = self.plans.get(raw_refs) {
            if c.changes == changes && c.key_type == key_type {
                return Ok(c.plan.clone());
            }
        }
        let features = decode_refs(raw_refs).map_err(|e| (StatusCode::BadFrame, e.to_string()))?;
        let max = self.shared.config.limits.max_features_per_request;
        if features.len() > max as usize {
            let msg = format!(
                "feature list of {} exceeds the max_features_per_request limit of {max}",
                features.len()
            );
            return Err((StatusCode::LimitExceeded, msg));
        }
        let read = self
            .shared
            .store
            .read_plan(key_type, &features)
            .map_err(|e| super::engine_error(&e))?;
        let plan = Plan {
            read,
            features: Arc::new(features),
        };
        if self.plans.len() >= MAX_CACHED_PLANS {
            self.plans.clear();
        }
        self.plans.insert(
            raw_refs.to_vec(),
            CachedPlan {
                changes,
                key_type,
                plan: plan.clone(),
            },
        );
        Ok(plan)
    }

    /// Hands over the bytes (or error) of a read from the outbox. Returns the GET when it is
    /// done; a read that must be made again (a moved record) goes back to the outbox.
    pub fn complete_read(
        &mut self,
        r: ReadRequest,
        bytes: quiver_engine::Result<&[u8]>,
    ) -> Option<FinishedGet> {
        let get = self.gets[r.get as usize]
            .as_mut()
            .expect("a read completes for a GET in flight");
        let store = &self.shared.store;
        match get.entity(r.entity).complete(store, r.slot as usize, bytes) {
            Some((offset, len)) => self.outbox.push(ReadRequest { offset, len, ..r }),
            None => get.outstanding -= 1,
        }
        if get.outstanding > 0 {
            return None;
        }
        let mut done = self.gets[r.get as usize].take().expect("checked above");
        self.free.push(r.get);
        if !done.many.is_empty() {
            return Some(FinishedGet {
                target: done.target,
                answer: Ok(()),
                many: done.many,
            });
        }
        let answer = done
            .pending
            .finish_into(&self.shared.store, &mut self.values);
        self.keep_idle(done.pending);
        self.note_damage();
        Some(FinishedGet {
            target: done.target,
            answer,
            many: Vec::new(),
        })
    }

    /// Answers a finished GET or GET_MANY on its connection.
    pub fn answer(&mut self, conn: &mut Conn, f: FinishedGet) {
        if f.many.is_empty() {
            self.respond(conn, &f.target, f.answer);
        } else {
            self.respond_many(conn, &f.target, f.many);
        }
    }

    /// BUSY when the connection's unread responses already reach
    /// `max_output_bytes_per_connection`: answered, and true.
    fn refused_busy(&mut self, conn: &mut Conn, op: Opcode, t: &GetTarget) -> bool {
        let limit = self.shared.config.limits.max_output_bytes_per_connection;
        let unsent = conn.queued_output() as u64;
        if unsent < limit {
            return false;
        }
        self.shared.metrics.busy_rejections.fetch_add(1, Relaxed);
        let message = format!(
            "this connection has {unsent} bytes of unread responses, at the \
             max_output_bytes_per_connection limit of {limit}; read responses, then retry"
        );
        self.fail(conn, op, t.request_id, t.start, StatusCode::Busy, &message);
        true
    }

    /// Encodes a GET's answer on its connection: the values in `self.values` (a damaged row's features CORRUPT,
    /// or STORE_FAILED for a client that did not ask for that status), the engine's error,
    /// LIMIT_EXCEEDED when the response would exceed the frame limit, or BUSY when the
    /// connection's unread responses already reach `max_output_bytes_per_connection`.
    pub fn respond(&mut self, conn: &mut Conn, t: &GetTarget, answer: quiver_engine::Result<()>) {
        let (id, start) = (t.request_id, t.start);
        if self.refused_busy(conn, Opcode::Get, t) {
            return;
        }
        self.make_room(conn);
        let before = conn.wbuf.len();
        let values = std::mem::take(&mut self.values);
        let response = match answer.map(|()| readable(t.corrupt_status, &t.features, values)) {
            Ok(Ok(values)) => Response::Get(values),
            Ok(Err((status, message))) => Response::Error { status, message },
            Err(e) => error_response(&e),
        };
        let max_body = self.shared.config.limits.max_frame_bytes as usize;
        let failed = encode_checked(&mut conn.wbuf, Opcode::Get, id, &response, max_body);
        if let Response::Get(values) = response {
            // Kept for the next GET: its entries and vector buffers are refilled in place.
            self.values = values;
        }
        let answer_bytes = conn.wbuf.len().saturating_sub(before).min(SEND_BUF_BYTES);
        self.answer_bytes_max = self.answer_bytes_max.max(answer_bytes);
        self.sample(Opcode::Get, start, failed);
    }

    /// Encodes a GET_MANY's answer on its connection: one item per key, each finished from its
    /// read and made readable as [`LoopGets::respond`] does (a key's error is its item's);
    /// LIMIT_EXCEEDED when the body would exceed the frame limit, BUSY as for a GET. The reads
    /// are kept for the next gets.
    pub fn respond_many(&mut self, conn: &mut Conn, t: &GetTarget, mut many: Vec<PendingGet>) {
        if !self.refused_busy(conn, Opcode::GetMany, t) {
            self.make_room(conn);
            let before = conn.wbuf.len();
            let (store, values) = (&self.shared.store, &mut self.values);
            frame_bytes(
                &mut conn.wbuf,
                Opcode::GetMany as u8,
                0,
                0,
                t.request_id,
                |b| {
                    put_get_many_count(b, many.len());
                    for pending in many.iter_mut() {
                        let item = match pending.finish_into(store, values) {
                            Ok(()) => {
                                readable(t.corrupt_status, &t.features, std::mem::take(values))
                            }
                            Err(e) => Err(super::engine_error(&e)),
                        };
                        put_get_many_item(b, &item);
                        if let Ok(v) = item {
                            *values = v;
                        }
                    }
                },
            );
            let body = conn.wbuf.len() - before - crate::protocol::HEADER_LEN;
            let max_body = self.shared.config.limits.max_frame_bytes as usize;
            let failed = body > max_body;
            if failed {
                conn.wbuf.truncate(before);
                let message = format!(
                    "GET_MANY response of {body} bytes for {} keys exceeds the max_frame_bytes \
                     limit of {max_body} bytes; ask for fewer keys or features",
                    many.len()
                );
                let status = StatusCode::LimitExceeded;
                encode_error(
                    &mut conn.wbuf,
                    Opcode::GetMany as u8,
                    t.request_id,
                    status,
                    &message,
                );
            }
            let answer_bytes = conn.wbuf.len().saturating_sub(before).min(SEND_BUF_BYTES);
            self.answer_bytes_max = self.answer_bytes_max.max(answer_bytes);
            self.sample(Opcode::GetMany, t.start, failed);
        }
        self.note_damage();
        for pending in many.drain(..) {
            self.keep_idle(pending);
        }
        if self.idle_batches.len() < IDLE_BATCHES_KEPT {
            self.idle_batches.push(many);
        }
    }

    fn fail(
        &mut self,
        conn: &mut Conn,
        op: Opcode,
        id: u64,
        start: Instant,
        status: StatusCode,
        msg: &str,
    ) {
        self.make_room(conn);
        conn.push_error(op as u8, id, status, msg);
        self.sample(op, start, true);
    }

    /// Gives the connection a send buffer with room for an answer: a pooled one when it has
    /// none; a fresh one when the next answer would not fit in its own, which waits for the
    /// send in flight (TLS connections keep one plaintext buffer, sealed turn by turn).
    fn make_room(&mut self, conn: &mut Conn) {
        if conn.wbuf.capacity() == 0 {
            conn.wbuf = self.sends.take();
            return;
        }
        let fits = conn.wbuf.len() + self.answer_bytes_max <= conn.wbuf.capacity();
        if fits || conn.tls.is_some() || conn.wpos > 0 || conn.full.len() >= MAX_FULL_SEND_BUFS {
            return;
        }
        let filled = std::mem::replace(&mut conn.wbuf, self.sends.take());
        conn.full_bytes += filled.len();
        conn.full.push_back(filled);
    }

    fn sample(&mut self, op: Opcode, start: Instant, failed: bool) {
        let full = |s: &Vec<(u64, bool)>| s.len() == SAMPLES_KEPT;
        if full(&self.samples) || full(&self.many_samples) {
            self.flush_samples();
        }
        let samples = match op {
            Opcode::GetMany => &mut self.many_samples,
            _ => &mut self.samples,
        };
        samples.push((start.elapsed().as_micros() as u64, failed));
    }

    fn malformed(&mut self, conn: &mut Conn, id: u64, start: Instant, msg: &str) {
        self.shared.metrics.frames_malformed.fetch_add(1, Relaxed);
        self.fail(conn, Opcode::Get, id, start, StatusCode::BadFrame, msg);
    }

    /// Records this turn's latencies (one histogram lock per turn, not per GET), and the
    /// buffers its pools had to allocate since the last turn.
    pub fn flush_samples(&mut self) {
        if !self.samples.is_empty() {
            self.shared.metrics.record(Opcode::Get, &self.samples);
            self.samples.clear();
        }
        if !self.many_samples.is_empty() {
            self.shared
                .metrics
                .record(Opcode::GetMany, &self.many_samples);
            self.many_samples.clear();
        }
        let misses = self.sends.misses + self.carries.misses;
        if misses > self.misses_published {
            self.shared
                .metrics
                .loop_buffer_allocations
                .fetch_add(misses - self.misses_published, Relaxed);
            self.misses_published = misses;
        }
    }
}
