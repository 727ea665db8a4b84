//! Batches routed by key: the items of one call are split by their key's master; each node's
//! part goes down that node's connection as a pipeline (at most [`PIPELINE_DEPTH`] requests
//! in flight, each of at most the node's `max_batch_keys` items), the nodes in parallel (one
//! thread each when there are several); the answers come back in the caller's order.
//!
//! An item's own error (UNKNOWN_GROUP, TYPE_MISMATCH...) is its answer. Items of a request
//! refused as a whole for a reason a map refresh may cure (NOT_MASTER, UNAVAILABLE, BUSY, a
//! lost connection) stay unanswered and are routed again after the refresh, until the retry
//! deadline: a batch never reports an item as refused while its master is merely moving.

use super::{retryable, ClusterClient};
use crate::client::{unexpected, unexpected_count, Client, ClientError, Result};
use crate::protocol::{GetAsOfRequest, Opcode, Request, Response};
use quiver_engine::feature::{EntityKey, FeatureRef, FeatureValue, PutOptions, PutResult, Value};
use quiver_engine::history::AsOf;
use std::collections::{BTreeMap, VecDeque};

/// Requests one node's part keeps in flight on its connection.
pub const PIPELINE_DEPTH: usize = 256;

/// One write of [`ClusterClient::put_many`].
#[derive(Debug, Clone)]
pub struct PutItem {
    pub key: EntityKey,
    pub event_time_ms: u64,
    pub values: Vec<(String, Value)>,
    pub options: PutOptions,
}

/// How one kind of batch is sent: items per request (`None`: the node's `max_batch_keys`),
/// the request for a run of items (indices into the call's items), and the answers in its
/// response, one per item.
struct Plan<'a, T> {
    /// Reads may go to replicas ([`ClusterClient::set_replica_reads`]); writes go to masters.
    read: bool,
    items_per_request: Option<usize>,
    request: &'a (dyn Fn(&[usize]) -> Request + Sync),
    answers: &'a (dyn Fn(Response, usize) -> Result<Vec<Result<T>>> + Sync),
}

/// What one node did with its part: the items it answered, and the error that stopped it.
type PartOutcome<T> = (Vec<(usize, Result<T>)>, Option<ClientError>);

impl ClusterClient {
    /// One result per key, in order: the keys are split by master and the parts sent in
    /// parallel, each pipelined in requests of the node's `max_batch_keys`; a part refused as
    /// a whole (NOT_MASTER, UNAVAILABLE, lost connection) is routed again after a map refresh.
    pub fn get_many(
        &mut self,
        keys: Vec<EntityKey>,
        features: Vec<FeatureRef>,
    ) -> Result<Vec<Result<Vec<FeatureValue>>>> {
        let request = |items: &[usize]| Request::GetMany {
            keys: items.iter().map(|i| keys[*i].clone()).collect(),
            features: features.clone(),
        };
        let answers = |response: Response, n: usize| match response {
            Response::GetMany(items) if items.len() == n => Ok(items
                .into_iter()
                .map(|i| i.map_err(|(status, message)| ClientError::Server { status, message }))
                .collect()),
            Response::GetMany(items) => Err(unexpected_count(Opcode::GetMany, items.len())),
            other => Err(unexpected(Opcode::GetMany, &other)),
        };
        let plan = Plan {
            read: true,
            items_per_request: None,
            request: &request,
            answers: &answers,
        };
        let key_refs: Vec<&EntityKey> = keys.iter().collect();
        self.routed_batch(&key_refs, &plan)
    }

    /// As-of reads of many (entity, time) rows: one result per row, in order, routed and
    /// retried like [`ClusterClient::get_many`].
    pub fn get_many_as_of(
        &mut self,
        rows: Vec<(EntityKey, AsOf)>,
        features: Vec<FeatureRef>,
    ) -> Result<Vec<Result<Vec<FeatureValue>>>> {
        let request = |items: &[usize]| {
            let mut times: Vec<AsOf> = items.iter().map(|i| rows[*i].1).collect();
            if let Some(&first) = times.first().filter(|t| times.iter().all(|x| x == *t)) {
                times = vec![first];
            }
            Request::GetAsOf(GetAsOfRequest {
                keys: items.iter().map(|i| rows[*i].0.clone()).collect(),
                times,
                features: features.clone(),
            })
        };
        let answers = |response: Response, n: usize| match response {
            Response::GetAsOf(items) if items.len() == n => Ok(items
                .into_iter()
                .map(|i| i.map_err(|(status, message)| ClientError::Server { status, message }))
                .collect()),
            Response::GetAsOf(items) => Err(unexpected_count(Opcode::GetAsOf, items.len())),
            other => Err(unexpected(Opcode::GetAsOf, &other)),
        };
        let plan = Plan {
            read: true,
            items_per_request: None,
            request: &request,
            answers: &answers,
        };
        let key_refs: Vec<&EntityKey> = rows.iter().map(|(k, _)| k).collect();
        self.routed_batch(&key_refs, &plan)
    }

    /// Many puts to one group: one result per item, in order. Each node's items are
    /// pipelined on its connection and the nodes written in parallel, so the items of one
    /// node are applied in their order but items of different nodes in no defined order
    /// relative to each other. A put refused as a whole for a retryable reason is sent again
    /// (a put whose answer was lost with its connection may be applied twice; see the
    /// module's note).
    pub fn put_many(&mut self, group: &str, items: Vec<PutItem>) -> Result<Vec<Result<PutResult>>> {
        let request = |run: &[usize]| {
            let item = &items[run[0]];
            Request::Put {
                group: group.to_owned(),
                key: item.key.clone(),
                event_time_ms: item.event_time_ms,
                options: item.options,
                values: item.values.clone(),
            }
        };
        let answers = |response: Response, _n: usize| match response {
            Response::Put(r) => Ok(vec![Ok(r)]),
            other => Err(unexpected(Opcode::Put, &other)),
        };
        let plan = Plan {
            read: false,
            items_per_request: Some(1),
            request: &request,
            answers: &answers,
        };
        let key_refs: Vec<&EntityKey> = items.iter().map(|i| &i.key).collect();
        self.routed_batch(&key_refs, &plan)
    }

    /// Sends every item to its master, again after a map refresh for the items left
    /// unanswered, until all are answered or the retry deadline passes.
    fn routed_batch<T: Send>(
        &mut self,
        keys: &[&EntityKey],
        plan: &Plan<'_, T>,
    ) -> Result<Vec<Result<T>>> {
        let mut out: Vec<Option<Result<T>>> = keys.iter().map(|_| None).collect();
        self.retrying(|c| c.batch_attempt(keys, plan, &mut out))?;
        Ok(out
            .into_iter()
            .map(|o| o.expect("every item answered"))
            .collect())
    }

    /// One routing of the unanswered items; `Err` (the last refusal) when some are left.
    fn batch_attempt<T: Send>(
        &mut self,
        keys: &[&EntityKey],
        plan: &Plan<'_, T>,
        out: &mut [Option<Result<T>>],
    ) -> Result<()> {
        let mut parts: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for i in (0..keys.len()).filter(|i| out[*i].is_none()) {
            let node = if plan.read {
                self.read_node(keys[i])?
            } else {
                self.master_of(keys[i])?
            };
            parts.entry(node).or_default().push(i);
        }
        // A node that cannot be reached fails its own part only.
        let mut failure = None;
        parts.retain(|node, _| match self.conn(*node) {
            Ok(_) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        });
        let outcomes: Vec<(u32, PartOutcome<T>)> = if parts.len() == 1 {
            let (node, items) = parts.iter().next().expect("one part");
            let conn = self.conns.get_mut(node).expect("opened above");
            vec![(*node, send_part(conn, items, plan))]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = self
                    .conns
                    .iter_mut()
                    .filter(|(node, _)| parts.contains_key(node))
                    .map(|(node, conn)| {
                        let items = &parts[node];
                        let node = *node;
                        s.spawn(move || (node, send_part(conn, items, plan)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a batch thread panicked"))
                    .collect()
            })
        };
        for (node, (answered, error)) in outcomes {
            for (i, answer) in answered {
                out[i] = Some(answer);
            }
            if let Some(e) = error {
                if !matches!(e, ClientError::Server { .. }) {
                    self.conns.remove(&node);
                }
                failure = Some(e);
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// The error an item answers with when its request was refused for good (a server status
/// that a refresh does not cure, or a request over the frame limit); `None` for a refusal
/// to retry or a broken connection.
fn item_error(e: &ClientError) -> Option<ClientError> {
    if retryable(e) {
        return None;
    }
    match e {
        ClientError::Server { status, message } => Some(ClientError::Server {
            status: *status,
            message: message.clone(),
        }),
        ClientError::RequestTooLarge { len, max } => Some(ClientError::RequestTooLarge {
            len: *len,
            max: *max,
        }),
        _ => None,
    }
}

/// Sends one node its items, pipelined, and collects the answers. Stops sending at the first
/// error that is not an item's own (the requests in flight are still collected).
fn send_part<T>(conn: &mut Client, items: &[usize], plan: &Plan<'_, T>) -> PartOutcome<T> {
    let per_request = plan
        .items_per_request
        .unwrap_or(conn.server_info().max_batch_keys as usize)
        .max(1);
    let mut chunks = items.chunks(per_request);
    let mut in_flight: VecDeque<(&[usize], u64)> = VecDeque::with_capacity(PIPELINE_DEPTH);
    let mut answered = Vec::with_capacity(items.len());
    let mut stop: Option<ClientError> = None;
    loop {
        while stop.is_none() && in_flight.len() < PIPELINE_DEPTH {
            let Some(chunk) = chunks.next() else { break };
            match conn.send(&(plan.request)(chunk)) {
                Ok(id) => in_flight.push_back((chunk, id)),
                Err(e) => settle_error(chunk, e, &mut answered, &mut stop),
            }
        }
        let Some((chunk, id)) = in_flight.pop_front() else {
            break;
        };
        match conn.wait(id).and_then(|r| (plan.answers)(r, chunk.len())) {
            Ok(answers) => answered.extend(chunk.iter().copied().zip(answers)),
            Err(e) => settle_error(chunk, e, &mut answered, &mut stop),
        }
    }
    (answered, stop)
}

/// Files a refused request: its items' own error, or the error that stops the part.
fn settle_error<T>(
    chunk: &[usize],
    e: ClientError,
    answered: &mut Vec<(usize, Result<T>)>,
    stop: &mut Option<ClientError>,
) {
    if item_error(&e).is_some() {
        for i in chunk {
            answered.push((*i, Err(item_error(&e).expect("an item's own error"))));
        }
    } else {
        stop.get_or_insert(e);
    }
}
