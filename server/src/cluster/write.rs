//! A master's write: checked against the map, applied here, queued to every replica of the
//! partition in the partition's order, and answered only once every replica confirmed it.
//! Nothing waits for the replicas: the answer is given by the thread that receives the last
//! confirmation (or the refusal, or the timeout), while the engine thread moves on.

use super::link::Link;
use super::map::partition_of;
use super::{Cluster, View};
use crate::protocol::{
    encode_request, ReplicateRequest, Replicated, Request, Response, StatusCode,
};
use parking_lot::Mutex;
use quiver_engine::feature::WriteMode;
use quiver_engine::Durability;
use quiver_wal::writer::Pos;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        if self.stopping() {
            return Err("this node is shutting down".to_string());
        }
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
        let timeout = Duration::from_secs(self.config.lease_ttl_s);
        let link = Link::start(node, info.peer.clone(), timeout).map_err(|e| e.to_string())?;
        links.insert(node, link.clone());
        Ok(link)
    }

    /// Executes a PUT or DELETE of a cluster node; `apply` runs it on the local store.
    /// `answer` is given the write's response exactly once: here when it is refused or has
    /// no replica to wait for, else on the thread that receives the last replica's answer (or
    /// gives up on it), so the calling thread never waits for the replicas. With it comes the
    /// log mark the response must wait for when the write was asked to be durable (`None`
    /// otherwise): the local flush is the caller's, and happens after the replicas answered.
    pub fn write(
        &self,
        request: Request,
        apply: impl FnOnce(Request) -> Response,
        answer: impl FnOnce(Response, Option<Pos>) + Send + 'static,
    ) {
        let key = match &request {
            Request::Put { key, .. } | Request::Delete { key, .. } => key,
            _ => unreachable!("Cluster::write is given PUT and DELETE only"),
        };
        let p = partition_of(key);
        let view = self.view();
        let version = match self.check_master(&view, p) {
            Ok(v) => v,
            Err((status, message)) => return answer(refuse(status, message), None),
        };
        let replicas = view.map.as_ref().expect("checked").partitions[p]
            .replicas
            .clone();
        let mut links = Vec::with_capacity(replicas.len());
        for r in &replicas {
            match self.link(&view, *r, p) {
                Ok(l) => links.push(l),
                Err(why) => {
                    return answer(
                        refuse(StatusCode::Unavailable, format!("{why}; retry")),
                        None,
                    )
                }
            }
        }
        let store = match self.store() {
            Ok(s) => s,
            Err((status, message)) => return answer(refuse(status, message), None),
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let order = self.order[p].lock();
        // The map may have moved while this write waited for the partition.
        let now = self.view();
        match self.check_master(&now, p) {
            Ok(v) if v == version => {}
            Ok(v) => {
                let message = format!(
                    "the partition map changed from version {version} to {v} while the write \
                     waited; nothing was written: retry"
                );
                return answer(refuse(StatusCode::Unavailable, message), None);
            }
            Err((status, message)) => return answer(refuse(status, message), None),
        }
        // Learners whose copy has started get every write after its reset, in order.
        let learners = self.learner_links(&now, p);
        let replicated = for_replica(&request, now_ms);
        self.touched[p].store(true, std::sync::atomic::Ordering::Release);
        // Open before the apply: a read that sees this write waits for its answer.
        let open = self.settling.open(p);
        // A sync write is applied buffered here and made durable once the replicas answered
        // (by the caller's group flush, for every write waiting).
        let mut request = request;
        let sync = buffered_if_sync(&mut request, self.default_durability);
        let response = apply(request);
        if matches!(response, Response::Error { .. }) {
            return answer(response, None);
        }
        // Taken after the apply returned: the mark lies past its record.
        let durable_at = sync.then(|| store.engine().write_mark());
        if links.is_empty() && learners.is_empty() {
            drop(order);
            answer(response, durable_at);
            drop(open);
            return;
        }
        let mut frame = Vec::new();
        let r = Request::Replicate(ReplicateRequest {
            map_version: version,
            from_node: self.node_id(),
            partition: p as u16,
            write: Replicated::Write(Box::new(replicated)),
        });
        encode_request(0, &r, &mut frame);
        let me = self.node_id();
        let waiting = Arc::new(Confirming {
            // One per copy, and one held until `finish` is in place.
            state: Mutex::new(Confirm {
                remaining: links.len() + learners.len() + 1,
                failure: None,
                finish: None,
            }),
        });
        let last = links.len() + learners.len();
        let copies = links
            .into_iter()
            .map(|l| (l, None))
            .chain(learners.into_iter().map(|(l, c)| (l, Some(c))));
        for (i, (link, copy)) in copies.enumerate() {
            let w = waiting.clone();
            let node = link.node;
            let f = if i + 1 == last {
                std::mem::take(&mut frame)
            } else {
                frame.clone()
            };
            link.send_then(
                f,
                Box::new(move |outcome| {
                    if let (Err(_), Some(copy)) = (&outcome, copy) {
                        // A learner about to be promoted must hold every acknowledged write.
                        copy.break_off();
                    }
                    w.arrive(outcome.err().map(|why| (node, why)));
                }),
            );
        }
        drop(order);
        // The partition is free again; the answer waits for the replicas,
        // and reads that may have seen the write wait for the answer (`open` is dropped after
        // it).
        let finish = move |failure: Option<(u32, String)>| match failure {
            None => {
                answer(response, durable_at);
                drop(open);
            }
            Some((node, why)) => {
                let message = format!(
                    "write to partition {p} applied on master node {me} but not confirmed by \
                     replica node {node} ({why}): it is not acknowledged; retry"
                );
                answer(refuse(StatusCode::Unavailable, message), None);
                drop(open);
            }
        };
        waiting.state.lock().finish = Some(Box::new(finish));
        waiting.arrive(None);
    }
}

type Finish = Box<dyn FnOnce(Option<(u32, String)>) + Send>;

/// A write waiting for its copies' answers; the last one to arrive runs `finish`.
struct Confirming {
    state: Mutex<Confirm>,
}

struct Confirm {
    remaining: usize,
    /// The first copy that failed: its node and why.
    failure: Option<(u32, String)>,
    finish: Option<Finish>,
}

impl Confirming {
    fn arrive(&self, failure: Option<(u32, String)>) {
        let mut s = self.state.lock();
        if s.failure.is_none() {
            s.failure = failure;
        }
        s.remaining -= 1;
        if s.remaining > 0 {
            return;
        }
        let (finish, failure) = (s.finish.take(), s.failure.take());
        drop(s);
        if let Some(finish) = finish {
            finish(failure);
        }
    }
}
