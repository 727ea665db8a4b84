//! A master's write: checked against the map, applied here, queued to every replica of the
//! partition in the partition's order, and answered only once every replica confirmed it.

use super::link::{Ack, Link};
use super::map::partition_of;
use super::mover::CopyState;
use super::{Cluster, View};
use crate::protocol::{
    encode_request, ReplicateRequest, Replicated, Request, Response, StatusCode,
};
use crossbeam::channel::Receiver;
use quiver_engine::feature::WriteMode;
use quiver_engine::Durability;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn refuse(status: StatusCode, message: String) -> Response {
    Response::Error { status, message }
}

/// The form of a write a replica applies: the master already decided what a conditional write
/// does, so the replica applies its effect unconditionally (CREATE_ONLY stores the values
/// sent, like REPLACE_ROW; UPDATE_ONLY merges, like MERGE; no generation check), and the
/// history's write time is the master's.
fn for_replica(request: &Request, now_ms: u64) -> Request {
    let mut r = request.clone();
    if let Request::Put { options, .. } = &mut r {
        options.expected_generation = None;
        options.mode = match options.mode {
            WriteMode::CreateOnly | WriteMode::ReplaceRow => WriteMode::ReplaceRow,
            WriteMode::UpdateOnly | WriteMode::Merge => WriteMode::Merge,
        };
        options.write_time_ms.get_or_insert(now_ms);
    }
    r
}

/// Whether `request` must be durable before it is answered; if so it is made buffered (the
/// caller waits for the flush that covers it).
fn buffered_if_sync(request: &mut Request, default: Durability) -> bool {
    let durability = match request {
        Request::Put { options, .. } => &mut options.durability,
        Request::Delete { durability, .. } => durability,
        _ => return false,
    };
    if durability.unwrap_or(default) != Durability::Sync {
        return false;
    }
    *durability = Some(Durability::Buffered);
    true
}

impl Cluster {
    /// The stream to replica `node`, opened on first use (again when its address changed).
    pub(super) fn link(&self, view: &View, node: u32, p: usize) -> Result<Arc<Link>, String> {
        let Some(info) = view.nodes.get(&node) else {
            return Err(format!(
                "replica node {node} of partition {p} is down (not registered); the map takes \
                 it out within the lease TTL of {} s",
                self.config.lease_ttl_s
            ));
        };
        let mut links = self.links.lock();
        if let Some(l) = links.get(&node).filter(|l| l.addr == info.peer) {
            return Ok(l.clone());
        }
        let link = Link::start(node, info.peer.clone()).map_err(|e| e.to_string())?;
        links.insert(node, link.clone());
        Ok(link)
    }

    /// Executes a PUT or DELETE of a cluster node; `apply` runs it on the local store.
    pub fn write(&self, request: Request, apply: impl FnOnce(Request) -> Response) -> Response {
        let key = match &request {
            Request::Put { key, .. } | Request::Delete { key, .. } => key,
            _ => unreachable!("Cluster::write is given PUT and DELETE only"),
        };
        let p = partition_of(key);
        let view = self.view();
        let version = match self.check_master(&view, p) {
            Ok(v) => v,
            Err((status, message)) => return refuse(status, message),
        };
        let replicas = view.map.as_ref().expect("checked").partitions[p]
            .replicas
            .clone();
        let mut links = Vec::with_capacity(replicas.len());
        for r in &replicas {
            match self.link(&view, *r, p) {
                Ok(l) => links.push(l),
                Err(why) => return refuse(StatusCode::Unavailable, format!("{why}; retry")),
            }
        }
        let store = match self.store() {
            Ok(s) => s,
            Err((status, message)) => return refuse(status, message),
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let (acks, response, durable_at, _open) = {
            let _order = self.order[p].lock();
            // The map may have moved while this write waited for the partition.
            let now = self.view();
            match self.check_master(&now, p) {
                Ok(v) if v == version => {}
                Ok(v) => {
                    let message = format!(
                        "the partition map changed from version {version} to {v} while the \
                         write waited; nothing was written: retry"
                    );
                    return refuse(StatusCode::Unavailable, message);
                }
                Err((status, message)) => return refuse(status, message),
            }
            // Learners whose copy has started get every write after its reset, in order.
            let learners = self.learner_links(&now, p);
            let replicated = for_replica(&request, now_ms);
            self.touched[p].store(true, std::sync::atomic::Ordering::Release);
            // Open before the apply: a read that sees this write waits for its answer.
            let open = self.settling.open(p);
            // A sync write is applied buffered here and made durable after the partition is
            // free, while the replicas apply it (one flush for every write waiting).
            let mut request = request;
            let sync = buffered_if_sync(&mut request, self.default_durability);
            let response = apply(request);
            if matches!(response, Response::Error { .. }) {
                return response;
            }
            // Taken after the apply returned: the mark lies past its record.
            let durable_at = sync.then(|| store.engine().write_mark());
            if links.is_empty() && learners.is_empty() {
                (Vec::new(), response, durable_at, open)
            } else {
                let mut frame = Vec::new();
                let r = Request::Replicate(ReplicateRequest {
                    map_version: version,
                    from_node: self.node_id(),
                    partition: p as u16,
                    write: Replicated::Write(Box::new(replicated)),
                });
                encode_request(0, &r, &mut frame);
                let mut acks: Vec<(u32, Receiver<Ack>, Option<Arc<CopyState>>)> = links
                    .iter()
                    .map(|l| (l.node, l.send(frame.clone()), None))
                    .collect();
                for (link, copy) in learners {
                    acks.push((link.node, link.send(frame.clone()), Some(copy)));
                }
                (acks, response, durable_at, open)
            }
        };
        // The partition is free again; the answer waits for the local flush and the replicas,
        // and reads that may have seen the write wait for the answer (`_open` is dropped
        // after it).
        if let Some(mark) = durable_at {
            if let Err(e) = store.engine().wait_durable(mark) {
                let message = format!(
                    "write to partition {p} applied on master node {} but not made durable \
                     here: {e}",
                    self.node_id()
                );
                return refuse(StatusCode::StoreFailed, message);
            }
        }
        self.confirm(p, acks, response)
    }

    /// Waits for every replica's (and learner's) answer, within the lease TTL. A learner that
    /// failed a write has its copy started again; the write is not acknowledged either, since
    /// a learner about to be promoted must hold every acknowledged write.
    fn confirm(
        &self,
        p: usize,
        acks: Vec<(u32, Receiver<Ack>, Option<Arc<CopyState>>)>,
        response: Response,
    ) -> Response {
        let deadline = Instant::now() + Duration::from_secs(self.config.lease_ttl_s);
        for (node, rx, copy) in acks {
            let outcome = rx.recv_deadline(deadline).unwrap_or_else(|_| {
                Err(format!(
                    "replica node {node} did not answer within {} s",
                    self.config.lease_ttl_s
                ))
            });
            if let (Err(_), Some(copy)) = (&outcome, copy) {
                copy.break_off();
            }
            if let Err(why) = outcome {
                let message = format!(
                    "write to partition {p} applied on master node {} but not confirmed by \
                     every replica ({why}): it is not acknowledged; retry",
                    self.node_id()
                );
                return refuse(StatusCode::Unavailable, message);
            }
        }
        response
    }
}
