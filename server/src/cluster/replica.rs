//! The peer listener: replicas receive their masters' writes here, one thread per stream,
//! and apply each stream's writes one at a time in arrival order. Writes that arrived
//! together are applied in memory and then made durable with one flush when any asked for
//! sync, before their answers go back (a group commit per stream).
//!
//! A write is applied only if, in this node's map (refreshed from etcd first when the sender
//! names a newer version), the sender masters the partition and this node is one of its
//! replicas: a master cut off by a map change gets NOT_MASTER and cannot acknowledge.

use super::map::{partition_of, partition_of_bytes, PartitionMap};
use super::{member, mover, Cluster, Refusal};
use crate::protocol::{
    decode_request, encode_error, encode_response, CopiedRecord, FrameHeader, Opcode,
    ReplicateRequest, Replicated, Request, Response, StatusCode, HEADER_LEN,
};
use quiver_engine::history::history_group;
use quiver_engine::history::keys::SUFFIX_BYTES;
use quiver_engine::{Durability, WriteOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// Frames applied before their answers are sent and, for sync writes, flushed.
const MAX_BATCH_FRAMES: usize = 1024;

pub(super) fn listen(c: &Arc<Cluster>, listener: TcpListener) {
    for stream in listener.incoming() {
        if c.stopping() {
            return;
        }
        let Ok(stream) = stream else { continue };
        let c = c.clone();
        let spawned = std::thread::Builder::new()
            .name("quiver-replica".into())
            .spawn(move || {
                if let Err(e) = serve(&c, stream) {
                    tracing::debug!(error = %e, "replication stream closed");
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a replication stream thread");
        }
    }
}

/// One received frame.
struct Frame {
    header: FrameHeader,
    body: Vec<u8>,
}

fn read_frame(r: &mut impl Read, max_body: u32) -> std::io::Result<Frame> {
    let mut head = [0u8; HEADER_LEN];
    r.read_exact(&mut head)?;
    let header = FrameHeader::decode(&head, max_body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let mut body = vec![0u8; header.body_len as usize];
    r.read_exact(&mut body)?;
    Ok(Frame { header, body })
}

/// Whether a whole frame already sits in the reader's buffer.
fn frame_buffered(r: &BufReader<TcpStream>) -> bool {
    let buf = r.buffer();
    buf.len() >= HEADER_LEN
        && buf.len() >= HEADER_LEN + u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize
}

fn serve(c: &Cluster, stream: TcpStream) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let max_body = c.max_frame_bytes;
    let mut reader = BufReader::with_capacity(1 << 20, stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(64 << 10, stream);
    let mut session: Option<(u32, u64)> = None;
    loop {
        let mut frames = vec![read_frame(&mut reader, max_body)?];
        while frames.len() < MAX_BATCH_FRAMES && frame_buffered(&reader) {
            frames.push(read_frame(&mut reader, max_body)?);
        }
        let mut out = Vec::new();
        apply_batch(c, &mut session, frames, &mut out)?;
        writer.write_all(&out)?;
        writer.flush()?;
        if c.stopping() {
            return Ok(());
        }
    }
}

/// Applies a batch; answers go to `out` in order. A stream replaced by a newer one from the
/// same master stops (the master sends its unanswered writes again on the newer one).
fn apply_batch(
    c: &Cluster,
    session: &mut Option<(u32, u64)>,
    frames: Vec<Frame>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut answers: Vec<(u64, Result<bool, Refusal>)> = Vec::with_capacity(frames.len());
    for f in frames {
        let id = f.header.request_id;
        let request = match f.header.check_request() {
            Ok(Opcode::Replicate) => decode_request(Opcode::Replicate, &f.body),
            Ok(op) => {
                let msg = format!("the peer port accepts only REPLICATE, got {}", op.name());
                answers.push((id, Err((StatusCode::InvalidArgument, msg))));
                continue;
            }
            Err(e) => Err(e),
        };
        let r = match request {
            Ok(Request::Replicate(r)) => r,
            Ok(_) => unreachable!("decoded as REPLICATE"),
            Err(e) => {
                answers.push((id, Err((StatusCode::BadFrame, e.to_string()))));
                continue;
            }
        };
        let (from, epoch) = *session.get_or_insert_with(|| c.open_session(r.from_node));
        let replaced =
            || std::io::Error::other("a newer stream from the same master replaced this one");
        let lock = c.session_lock(from, epoch).ok_or_else(replaced)?;
        let _held = lock.lock();
        // Checked again under the lock: a newer stream may have started while this waited.
        c.session_lock(from, epoch).ok_or_else(replaced)?;
        answers.push((id, apply(c, &r)));
    }
    let synced = if answers.iter().any(|(_, a)| matches!(a, Ok(true))) {
        c.store().and_then(|store| {
            store.flush().map_err(|e| {
                (
                    StatusCode::StoreFailed,
                    format!("replica flush failed: {e}"),
                )
            })
        })
    } else {
        Ok(())
    };
    for (id, answer) in answers {
        match (answer, &synced) {
            (Ok(true), Err((status, msg))) => {
                encode_error(out, Opcode::Replicate as u8, id, *status, msg)
            }
            (Ok(_), _) => encode_response(out, Opcode::Replicate, id, &Response::Replicated),
            (Err((status, msg)), _) => encode_error(out, Opcode::Replicate as u8, id, status, &msg),
        }
    }
    Ok(())
}

/// Checks that the sender masters the partition and this node replicates it.
fn admit(c: &Cluster, r: &ReplicateRequest) -> Result<(), Refusal> {
    let mut view = c.view();
    if view.map.as_ref().map_or(0, |m| m.version) < r.map_version {
        if let Err(e) = member::refresh(c) {
            tracing::warn!(error = %e, "cannot refresh the map for a replicated write");
        }
        view = c.view();
    }
    let Some(map): Option<&PartitionMap> = view.map.as_ref() else {
        return Err((
            StatusCode::Unavailable,
            "this replica has no partition map".into(),
        ));
    };
    let p = usize::from(r.partition);
    let pl = &map.partitions[p];
    let me = c.node_id();
    if pl.master != r.from_node {
        return Err((
            StatusCode::NotMaster,
            format!(
                "map version {}: partition {p} is mastered by node {}, not by node {} (whose map \
                 is version {})",
                map.version, pl.master, r.from_node, r.map_version
            ),
        ));
    }
    let learner = pl.learner(me).is_some();
    if !pl.replicas.contains(&me) && !learner {
        return Err((
            StatusCode::NotMaster,
            format!(
                "map version {}: node {me} is not a replica of partition {p}",
                map.version
            ),
        ));
    }
    if !learner && !matches!(r.write, Replicated::Write(_)) {
        return Err((
            StatusCode::InvalidArgument,
            format!(
                "map version {}: node {me} is an in-sync replica of partition {p}, not a \
                 learner: it takes no partition copy",
                map.version
            ),
        ));
    }
    Ok(())
}

/// Applies one replicated frame under its partition's lock (which the dropping of
/// partitions also takes); `Ok(true)` when it must be flushed before its answer.
fn apply(c: &Cluster, r: &ReplicateRequest) -> Result<bool, Refusal> {
    let p = usize::from(r.partition);
    let _order = c.order[p].lock();
    admit(c, r)?;
    c.touched[p].store(true, std::sync::atomic::Ordering::Release);
    let sync = |d: Option<Durability>| d.unwrap_or(c.default_durability) == Durability::Sync;
    let store = c.store()?;
    let write = match &r.write {
        Replicated::Write(w) => w,
        Replicated::Reset => {
            drop(_order);
            let parts = std::iter::once(p).collect();
            return mover::drop_partitions(c, &parts, |_, _| true)
                .map(|_| false)
                .map_err(|m| (StatusCode::StoreFailed, m));
        }
        Replicated::Copy(copy) => return install(c, &store, p, copy, false),
        Replicated::CopyHistory(copy) => return install(c, &store, p, copy, true),
        Replicated::Group { spec, deprecated } => {
            return ensure_group(&store, spec, deprecated).map(|_| false)
        }
    };
    let result = match &**write {
        Request::Put {
            group,
            key,
            event_time_ms,
            options,
            values,
        } => {
            check_partition(key, r)?;
            let pairs: Vec<(&str, quiver_engine::feature::Value)> = values
                .iter()
                .map(|(n, v)| (n.as_str(), v.clone()))
                .collect();
            let mut opts = *options;
            opts.durability = Some(Durability::Buffered);
            store
                .put(group, key, *event_time_ms, &pairs, &opts)
                .map(|_| sync(options.durability))
        }
        Request::Delete {
            group,
            key,
            durability,
        } => {
            check_partition(key, r)?;
            store
                .delete(group, key, Some(Durability::Buffered))
                .map(|_| sync(*durability))
        }
        _ => unreachable!("REPLICATE carries PUT or DELETE"),
    };
    result.map_err(|e| crate::server::engine_error(&e))
}

/// Creates a group a copy needs, unless one of that name exists here.
fn ensure_group(
    store: &quiver_engine::Store,
    spec: &quiver_engine::feature::GroupSpec,
    deprecated: &[String],
) -> Result<(), Refusal> {
    if store.describe_group(&spec.name).is_ok() {
        return Ok(());
    }
    let e = |e: quiver_engine::Error| crate::server::engine_error(&e);
    store.create_group(spec.clone()).map_err(e)?;
    for f in deprecated {
        store
            .alter_group(
                &spec.name,
                quiver_engine::feature::Alter::DeprecateFeature(f.clone()),
            )
            .map_err(e)?;
    }
    Ok(())
}

/// Stores a copied record as the master holds it (its row and expiry; the group by name): a
/// row, or with `history` a record of the group's history (whose key is the entity key and a
/// 4-byte suffix).
fn install(
    c: &Cluster,
    store: &quiver_engine::Store,
    p: usize,
    copy: &CopiedRecord,
    history: bool,
) -> Result<bool, Refusal> {
    let entity = if history {
        let Some(len) = copy.key.len().checked_sub(SUFFIX_BYTES) else {
            let msg = format!(
                "copied history key of {} bytes is shorter than its {SUFFIX_BYTES}-byte suffix",
                copy.key.len()
            );
            return Err((StatusCode::InvalidArgument, msg));
        };
        &copy.key[..len]
    } else {
        &copy.key[..]
    };
    if partition_of_bytes(entity) != p {
        return Err((
            StatusCode::InvalidArgument,
            format!(
                "copied key belongs to partition {}, not {p}",
                partition_of_bytes(entity)
            ),
        ));
    }
    let schema = store
        .describe_group(&copy.group)
        .map_err(|e| crate::server::engine_error(&e))?;
    let engine_group = if history {
        if schema.history.is_none() {
            let msg = format!(
                "copied history of group '{}', which keeps no history here",
                copy.group
            );
            return Err((StatusCode::InvalidArgument, msg));
        }
        history_group(schema.id)
    } else {
        schema.id
    };
    let now_s = store.now_ms() / 1000;
    let ttl_s = match copy.expiry_s {
        0 => None,
        e if u64::from(e) <= now_s => return Ok(false),
        e => Some((u64::from(e) - now_s) as u32),
    };
    let opts = WriteOptions {
        durability: Some(Durability::Buffered),
        ttl_s,
    };
    store
        .engine()
        .put(engine_group, &copy.key, &copy.row, &opts)
        .map_err(|e| crate::server::engine_error(&e))?;
    Ok(c.default_durability == Durability::Sync)
}

fn check_partition(
    key: &quiver_engine::feature::EntityKey,
    r: &ReplicateRequest,
) -> Result<(), Refusal> {
    let p = partition_of(key);
    if p == usize::from(r.partition) {
        return Ok(());
    }
    Err((
        StatusCode::InvalidArgument,
        format!(
            "replicated key belongs to partition {p}, not {}",
            r.partition
        ),
    ))
}

impl Cluster {
    /// A new stream from `master`: it replaces any older one.
    fn open_session(&self, master: u32) -> (u32, u64) {
        let epoch = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut sessions = self.sessions.lock();
        let lock = sessions
            .get(&master)
            .map(|(_, l)| l.clone())
            .unwrap_or_default();
        sessions.insert(master, (epoch, lock));
        (master, epoch)
    }

    /// The apply lock of `master`'s streams, if `epoch` is still its current stream.
    fn session_lock(&self, master: u32, epoch: u64) -> Option<Arc<parking_lot::Mutex<()>>> {
        let sessions = self.sessions.lock();
        sessions
            .get(&master)
            .filter(|(e, _)| *e == epoch)
            .map(|(_, l)| l.clone())
    }
}
