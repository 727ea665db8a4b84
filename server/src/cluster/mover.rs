//! Partition copies: a master gives a learner (a node the map names as receiving a copy of a
//! partition, on a join, a drain or to make a lost copy again) the whole partition, promotes
//! it in the map once it holds everything, and every node drops the records of partitions
//! it no longer holds.
//!
//! A copy of partition `p` to node `L`, all on the master's one ordered stream to `L`:
//! 1. under `p`'s write lock: RESET (the learner drops whatever it held of `p`); from then on
//!    every write to `p` is also sent to `L` (and must be confirmed by it);
//! 2. the master lists the keys of `p` (a scan of its store, without the lock);
//! 3. in chunks of [`CHUNK`] keys, under `p`'s lock, it reads each key's current record and
//!    sends it as COPY, and each history record (head, directory, segment) of the groups
//!    that keep history as COPY_HISTORY, so that as-of reads on the copy see every version.
//!    A write to a key after its COPY follows it on the stream, a write before it is in the
//!    record, a key deleted meanwhile is not sent;
//! 4. once every frame is confirmed, the learner holds exactly the master's `p`: the master
//!    promotes it with a compare-and-swap of the map.
//!
//! Copies are throttled to `--migration-rate-mib` per sending node and at most
//! [`MAX_MIGRATIONS`](super::map::MAX_MIGRATIONS) are in the map at once.

use super::link::{Ack, Link};
use super::map::{partition_of_bytes, PartitionMap};
use super::{member, Cluster};
use crate::protocol::{encode_request, CopiedRecord, ReplicateRequest, Replicated, Request};
use crossbeam::channel::Receiver;
use quiver_engine::engine::ScanCursor;
use quiver_engine::feature::{EntityKey, FeatureSpec, GroupSpec};
use quiver_engine::history::history_group;
use quiver_engine::history::keys::SUFFIX_BYTES;
use quiver_engine::{Durability, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys read and sent under one hold of a partition's lock.
const CHUNK: usize = 256;
/// Records per scan chunk when listing a partition's keys.
const SCAN_CHUNK: usize = 4096;

/// One copy of a partition to a learner, on its master.
pub(crate) struct CopyState {
    /// The learner entry's `since`: the copy it serves.
    since: u64,
    broken: AtomicBool,
    done: AtomicBool,
}

impl CopyState {
    /// A frame of the copy (or a write after it) failed: the copy starts again.
    pub(crate) fn break_off(&self) {
        self.broken.store(true, Ordering::Release);
    }

    fn broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }
}

fn frame(version: u64, from: u32, p: usize, write: Replicated) -> Vec<u8> {
    let mut out = Vec::new();
    let r = Request::Replicate(ReplicateRequest {
        map_version: version,
        from_node: from,
        partition: p as u16,
        write,
    });
    encode_request(0, &r, &mut out);
    out
}

impl Cluster {
    /// The streams of `p`'s learners whose copy has started (see [`CopyState`]).
    pub(super) fn learner_links(
        &self,
        view: &super::View,
        p: usize,
    ) -> Vec<(Arc<Link>, Arc<CopyState>)> {
        let Some(map) = &view.map else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for l in &map.partitions[p].learners {
            let copy = self.copies.lock().get(&(p, l.node)).cloned();
            let Some(copy) = copy.filter(|c| c.since == l.since && !c.broken()) else {
                continue;
            };
            match self.link(view, l.node, p) {
                Ok(link) => out.push((link, copy)),
                Err(_) => copy.break_off(),
            }
        }
        out
    }

    /// Partition copies this node is sending now.
    pub(super) fn copies_in_progress(&self) -> u32 {
        self.copies
            .lock()
            .values()
            .filter(|c| !c.done.load(Ordering::Acquire))
            .count() as u32
    }
}

/// The mover thread: starts the copies this node owes as master, promotes the finished
/// ones, and drops the records of partitions this node no longer holds.
pub(super) fn run(c: &Cluster) {
    let poll = Duration::from_millis((c.config.lease_ttl_s * 100).clamp(100, 1000));
    while !c.stopping() {
        std::thread::sleep(poll);
        let view = c.view();
        let Some(map) = &view.map else { continue };
        if !c.lease_alive() {
            continue;
        }
        let me = c.node_id();
        c.copies.lock().retain(|(p, node), copy| {
            let pl = &map.partitions[*p];
            pl.master == me
                && pl.learner(*node).is_some_and(|l| l.since == copy.since)
                && !copy.broken()
        });
        let mut owed: BTreeMap<u32, Vec<(usize, u64)>> = BTreeMap::new();
        for (p, pl) in map.partitions.iter().enumerate() {
            if pl.master != me {
                continue;
            }
            for l in &pl.learners {
                if !c.copies.lock().contains_key(&(p, l.node)) {
                    owed.entry(l.node).or_default().push((p, l.since));
                }
            }
        }
        for (node, parts) in owed {
            if c.stopping() {
                return;
            }
            if let Err(e) = copy_to(c, node, &parts) {
                tracing::warn!(node, error = %e, "partition copy failed; it starts again");
            }
        }
        promote(c);
        let view = c.view();
        let Some(map) = &view.map else { continue };
        // Partitions that may have records here but are not held: a copy that was dropped,
        // a partition that moved away, or anything left from before a restart.
        let to_drop: BTreeSet<usize> = (0..map.partitions.len())
            .filter(|p| !map.partitions[*p].holds(me))
            .filter(|p| c.touched[*p].swap(false, Ordering::AcqRel))
            .collect();
        if !to_drop.is_empty() {
            match drop_partitions(c, &to_drop, |c, p| !holds(c, p)) {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(
                            records = n,
                            partitions = to_drop.len(),
                            "dropped the records of partitions this node no longer holds"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot drop partitions yet");
                    for p in to_drop {
                        c.touched[p].store(true, Ordering::Release);
                    }
                }
            }
        }
    }
}

/// Whether this node's current map names it as a copy or learner of `p`.
fn holds(c: &Cluster, p: usize) -> bool {
    c.view()
        .map
        .as_ref()
        .is_some_and(|m| m.partitions[p].holds(c.node_id()))
}

/// One record of a partition, as listed for a copy or a drop.
struct Listed {
    /// The feature group's name (ids are per node).
    group: Arc<str>,
    /// The engine group holding the record: the feature group's, or its history group's.
    engine_group: u32,
    key: Vec<u8>,
    /// A history record (head, directory or segment of an entity's history).
    history: bool,
}

/// The records of the partitions in `parts`, per partition: every feature group's rows, then
/// every history record of the groups that keep history (a history record belongs to the
/// partition of its entity, the key without its 4-byte suffix). Listed with
/// [`Engine::scan`], which holds defragmentation off between chunks, so that a record moved
/// meanwhile is not missed: a copy listed as complete must hold every key.
///
/// [`Engine::scan`]: quiver_engine::Engine::scan
fn list_keys(
    store: &Store,
    parts: &BTreeSet<usize>,
) -> Result<HashMap<usize, Vec<Listed>>, String> {
    let mut keys: HashMap<usize, Vec<Listed>> = HashMap::new();
    for schema in store.list_groups(None) {
        let name: Arc<str> = schema.name.as_str().into();
        let mut groups = vec![(schema.id, false)];
        if schema.history.is_some() {
            groups.push((history_group(schema.id), true));
        }
        for (engine_group, history) in groups {
            let mut cursor = ScanCursor::START;
            loop {
                let chunk = store
                    .engine()
                    .scan(engine_group, cursor, SCAN_CHUNK)
                    .map_err(|e| format!("cannot list group '{}': {e}", schema.name))?;
                for (_, rec) in chunk.records {
                    let entity = if history {
                        &rec.key[..rec.key.len().saturating_sub(SUFFIX_BYTES)]
                    } else {
                        &rec.key[..]
                    };
                    let p = partition_of_bytes(entity);
                    if parts.contains(&p) {
                        keys.entry(p).or_default().push(Listed {
                            group: name.clone(),
                            engine_group,
                            key: rec.key,
                            history,
                        });
                    }
                }
                match chunk.next {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
        }
    }
    Ok(keys)
}

/// Deletes every local record of the partitions in `parts` for which `still(c, p)` holds
/// when the record's turn comes (checked under the partition's lock): rows with their
/// entity's history, then history records left without a row. Returns the count of rows.
pub(super) fn drop_partitions(
    c: &Cluster,
    parts: &BTreeSet<usize>,
    still: impl Fn(&Cluster, usize) -> bool,
) -> Result<usize, String> {
    let store = c.store().map_err(|(_, m)| m)?;
    let keys = list_keys(&store, parts)?;
    let mut dropped = 0;
    let buffered = quiver_engine::WriteOptions {
        durability: Some(Durability::Buffered),
        ttl_s: None,
    };
    for (p, list) in keys {
        let _order = c.order[p].lock();
        if !still(c, p) {
            // Held again: its records stay, and are dropped when it is next given up.
            c.touched[p].store(true, Ordering::Release);
            continue;
        }
        for l in list {
            let failed =
                |e: quiver_engine::Error| format!("cannot drop a record of partition {p}: {e}");
            if l.history {
                // Already gone if its entity's row was deleted above (a delete takes the
                // history with it); else an entity's history without a row.
                store
                    .engine()
                    .delete(l.engine_group, &l.key, &buffered)
                    .map_err(failed)?;
                continue;
            }
            let Ok(schema) = store.describe_group(&l.group) else {
                continue;
            };
            let Ok(key) = EntityKey::from_key_bytes(schema.key_type, &l.key) else {
                continue;
            };
            if store
                .delete(&l.group, &key, Some(Durability::Buffered))
                .map_err(failed)?
            {
                dropped += 1;
            }
        }
    }
    Ok(dropped)
}

/// Waits for the answers of a copy's frames; a refusal or a silence breaks the copy.
fn confirmed(c: &Cluster, acks: &mut Vec<Receiver<Ack>>, copy: &CopyState) {
    let deadline = Instant::now() + Duration::from_secs(c.config.lease_ttl_s);
    for rx in acks.drain(..) {
        match rx.recv_deadline(deadline) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                if !copy.broken() {
                    tracing::warn!(error = %why, "a partition copy frame was refused");
                }
                copy.break_off();
            }
            Err(_) => copy.break_off(),
        }
    }
}

/// Copies the partitions `parts` (partition, learner since) to learner `node`.
fn copy_to(c: &Cluster, node: u32, parts: &[(usize, u64)]) -> Result<(), String> {
    let store = c.store().map_err(|(_, m)| m)?;
    let me = c.node_id();
    let view = c.view();
    let link = c.link(&view, node, parts[0].0)?;
    // 0. The groups, so that the learner can store the copied rows.
    let version = view.map.as_ref().map_or(0, |m| m.version);
    let mut group_acks = Vec::new();
    for schema in store.list_groups(None) {
        let spec = GroupSpec {
            name: schema.name.clone(),
            key_type: schema.key_type,
            features: schema
                .features
                .iter()
                .map(|f| FeatureSpec {
                    name: f.name.clone(),
                    ty: f.ty,
                    description: f.description.clone(),
                    owner: f.owner.clone(),
                    tags: f.tags.clone(),
                    rules: f.rules.clone(),
                })
                .collect(),
            ttl_s: schema.ttl_s,
            compression: schema.compression,
            allow_non_finite: schema.allow_non_finite,
            description: schema.description.clone(),
            owner: schema.owner.clone(),
            tags: schema.tags.clone(),
            history: schema.history,
            on_violation: schema.on_violation,
            quality: schema.quality,
        };
        let deprecated = schema
            .features
            .iter()
            .filter(|f| f.deprecated)
            .map(|f| f.name.clone())
            .collect();
        let group = Replicated::Group { spec, deprecated };
        group_acks.push(link.send(frame(version, me, parts[0].0, group)));
    }
    for rx in group_acks {
        match rx.recv_timeout(Duration::from_secs(c.config.lease_ttl_s)) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Err(format!("the learner refused a group: {why}")),
            Err(_) => return Err("the learner did not answer a group in time".into()),
        }
    }
    // 1. RESET each partition under its lock; writes to it go to the learner from now on.
    let mut started = Vec::new();
    for &(p, since) in parts {
        let _order = c.order[p].lock();
        let now = c.view();
        let Some(map) = &now.map else { continue };
        let pl = &map.partitions[p];
        if pl.master != me || pl.learner(node).map(|l| l.since) != Some(since) {
            continue;
        }
        let copy = Arc::new(CopyState {
            since,
            broken: AtomicBool::new(false),
            done: AtomicBool::new(false),
        });
        c.copies.lock().insert((p, node), copy.clone());
        let reset = link.send(frame(map.version, me, p, Replicated::Reset));
        started.push((p, copy, reset));
    }
    // 2. The keys of those partitions.
    let wanted: BTreeSet<usize> = started.iter().map(|(p, _, _)| *p).collect();
    let keys = list_keys(&store, &wanted)?;
    // 3. Their current records, chunk by chunk, under the partition's lock; throttled.
    let rate = c.config.migration_rate_mib.max(1) * (1 << 20);
    let began = Instant::now();
    let mut sent: u64 = 0;
    let empty = Vec::new();
    for (p, copy, reset) in started {
        let mut acks = vec![reset];
        for chunk in keys.get(&p).unwrap_or(&empty).chunks(CHUNK) {
            if copy.broken() || c.stopping() {
                break;
            }
            {
                let _order = c.order[p].lock();
                let version = c.view().map.as_ref().map_or(0, |m| m.version);
                for l in chunk {
                    let record = match store.engine().get(l.engine_group, &l.key) {
                        Ok(Some(r)) => r,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(partition = p, error = %e, "cannot read a record to copy");
                            copy.break_off();
                            break;
                        }
                    };
                    let copied = CopiedRecord {
                        group: l.group.to_string(),
                        key: record.key,
                        expiry_s: record.expiry_s,
                        row: record.value,
                    };
                    let write = if l.history {
                        Replicated::CopyHistory(copied)
                    } else {
                        Replicated::Copy(copied)
                    };
                    let f = frame(version, me, p, write);
                    sent += f.len() as u64;
                    acks.push(link.send(f));
                }
            }
            let n = acks.len() as u64;
            confirmed(c, &mut acks, &copy);
            c.copied_records.fetch_add(n, Ordering::Relaxed);
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        confirmed(c, &mut acks, &copy);
        if !copy.broken() {
            copy.done.store(true, Ordering::Release);
        }
    }
    Ok(())
}

/// Promotes every finished copy in one compare-and-swap of the map.
fn promote(c: &Cluster) {
    let done: Vec<(usize, u32, u64)> = c
        .copies
        .lock()
        .iter()
        .filter(|(_, copy)| copy.done.load(Ordering::Acquire) && !copy.broken())
        .map(|((p, node), copy)| (*p, *node, copy.since))
        .collect();
    if done.is_empty() {
        return;
    }
    let view = c.view();
    let Some(next) = view
        .map
        .as_ref()
        .and_then(|m: &PartitionMap| m.promote(&done))
    else {
        return;
    };
    match member::write_map(c, &view, &next) {
        Ok(true) => tracing::info!(
            version = next.version,
            promoted = done.len(),
            "partition copies in sync: learners promoted"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot promote finished partition copies"),
    }
}
