//! What engine threads execute: batched GETs and single requests, encoded into responses.

use super::executor::Completion;
use super::stats::stats_json;
use super::status_map::engine_error;
use super::Shared;
use crate::protocol::{
    encode_error, encode_response, frame_bytes, GetManyItem, Opcode, Request, Response,
    ScanRequest, StatusCode, FLAG_MORE,
};
use quiver_engine::feature::{EntityKey, FeatureRef, Value};
use quiver_engine::{ScanCursor, Store};
use std::time::Instant;

/// One request's return address.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub conn: u64,
    pub request_id: u64,
    pub opcode: Opcode,
    pub start: Instant,
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
}

impl Job {
    pub fn targets(&self) -> Vec<Target> {
        match self {
            Job::Gets { items, .. } => items.iter().map(|i| i.target).collect(),
            Job::Single { target, .. } => vec![*target],
        }
    }
}

/// Collects response frames per connection, keeping arrival order within a connection.
#[derive(Default)]
struct Replies {
    list: Vec<Completion>,
}

impl Replies {
    fn slot(&mut self, conn: u64) -> &mut Completion {
        if self.list.last().is_none_or(|c| c.conn != conn) {
            self.list.push(Completion {
                conn,
                out: Vec::new(),
                finished: Vec::new(),
            });
        }
        self.list.last_mut().expect("pushed above")
    }

    fn respond(&mut self, t: &Target, response: &Response) {
        let slot = self.slot(t.conn);
        encode_response(&mut slot.out, t.opcode, t.request_id, response);
        slot.finished.push((
            t.opcode,
            t.start,
            matches!(response, Response::Error { .. }),
        ));
    }

    fn fail(&mut self, t: &Target, status: StatusCode, message: &str) {
        let slot = self.slot(t.conn);
        encode_error(&mut slot.out, t.opcode as u8, t.request_id, status, message);
        slot.finished.push((t.opcode, t.start, true));
    }
}

fn error_response(err: &quiver_engine::Error) -> Response {
    let (status, message) = engine_error(err);
    Response::Error { status, message }
}

pub fn internal_error_completions(targets: &[Target], what: &str) -> Vec<Completion> {
    let mut replies = Replies::default();
    for t in targets {
        let msg = format!("internal error while executing {}: {what}", t.opcode.name());
        replies.fail(t, StatusCode::Internal, &msg);
    }
    replies.list
}

pub fn execute(shared: &Shared, job: Job) -> Vec<Completion> {
    let mut replies = Replies::default();
    match job {
        Job::Gets { features, items } => execute_gets(shared, &features, items, &mut replies),
        Job::Single { target, request } => execute_single(shared, &target, *request, &mut replies),
    }
    replies.list
}

fn execute_gets(
    shared: &Shared,
    features: &[FeatureRef],
    items: Vec<GetItem>,
    replies: &mut Replies,
) {
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
                replies.respond(t, &Response::Get(row));
            }
        }
        // One bad request must not fail its neighbours: retry one by one for per-request errors.
        _ => {
            for (t, key) in targets.iter().zip(&keys) {
                let response = match shared.store.get(key, features) {
                    Ok(values) => Response::Get(values),
                    Err(e) => error_response(&e),
                };
                replies.respond(t, &response);
            }
        }
    }
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

fn put(store: &Store, request: Request) -> Response {
    let Request::Put {
        group,
        key,
        event_time_ms,
        options,
        values,
    } = request
    else {
        unreachable!("put() is only called with Request::Put");
    };
    let (names, vals): (Vec<String>, Vec<Value>) = values.into_iter().unzip();
    let pairs: Vec<(&str, Value)> = names.iter().map(String::as_str).zip(vals).collect();
    match store.put(&group, &key, event_time_ms, &pairs, &options) {
        Ok(result) => Response::Put(result),
        Err(e) => error_response(&e),
    }
}

fn execute_single(shared: &Shared, t: &Target, request: Request, replies: &mut Replies) {
    let store = &*shared.store;
    let response = match request {
        Request::Scan(scan) => return execute_scan(shared, t, &scan, replies),
        request @ Request::Put { .. } => put(store, request),
        Request::Get { key, features } => match store.get(&key, &features) {
            Ok(values) => Response::Get(values),
            Err(e) => error_response(&e),
        },
        Request::GetMany { keys, features } => Response::GetMany(get_many(store, &keys, &features)),
        Request::Delete {
            group,
            key,
            durability,
        } => match store.delete(&group, &key, durability) {
            Ok(existed) => Response::Delete { existed },
            Err(e) => error_response(&e),
        },
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
        Request::Ping { payload } => Response::Pong { payload },
        Request::Handshake { .. } => Response::Error {
            status: StatusCode::Internal,
            message: "handshake is answered by the network worker".into(),
        },
    };
    replies.respond(t, &response);
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
/// frame carries the cursor after its items.
fn execute_scan(shared: &Shared, t: &Target, scan: &ScanRequest, replies: &mut Replies) {
    let max_body = shared.config.limits.max_frame_bytes as usize;
    let mut cursor = scan.cursor.unwrap_or(ScanCursor::START);
    for chunk in 0..scan.max_chunks {
        let body = match scan_chunk_body(
            &shared.store,
            &scan.group,
            cursor,
            scan.chunk_items as usize,
            max_body,
        ) {
            Ok(b) => b,
            Err((status, message)) => return replies.fail(t, status, &message),
        };
        let last = body.1.is_none() || chunk + 1 == scan.max_chunks;
        let slot = replies.slot(t.conn);
        let flags = if last { 0 } else { FLAG_MORE };
        frame_bytes(
            &mut slot.out,
            Opcode::Scan as u8,
            flags,
            0,
            t.request_id,
            |b| b.extend_from_slice(&body.0),
        );
        match (last, body.1) {
            (false, Some(next)) => cursor = next,
            _ => {
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
