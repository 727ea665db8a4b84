//! Typed requests and responses and their frame encodings.

use super::baseline::{get_baseline_request, put_baseline_request, BaselineRequest};
use super::cluster::{
    get_cluster_map, get_replicate, put_cluster_map, put_replicate, ClusterMapInfo,
    ReplicateRequest,
};
use super::history::*;
use super::security::{
    get_security_reply, get_security_request, put_security_reply, put_security_request,
    SecurityReply, SecurityRequest,
};
use super::training::*;
use super::types::*;
use super::wire::{
    put_bytes, put_len, put_str, put_u16, put_u32, put_u64, zero_unless, WireReader,
};
use super::{DecodeError, FrameHeader, Opcode, StatusCode, FLAG_MORE, HEADER_LEN};
use quiver_engine::feature::{
    Alter, EntityKey, FeatureRef, FeatureValue, GroupSchema, GroupSpec, PutOptions, PutResult,
    ScanItem, Value,
};
use quiver_engine::history::{HistoryCursor, HistoryEntry};
use quiver_engine::{Durability, ScanCursor};

/// Parameters of a scan request; see `docs/PROTOCOL.md`, "SCAN".
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub group: String,
    /// `None`: from the start of the group; `Some`: resume where a previous chunk stopped.
    pub cursor: Option<ScanCursor>,
    /// Items per response frame.
    pub chunk_items: u32,
    /// Response frames the server sends before it stops and hands back a cursor.
    pub max_chunks: u32,
}

/// One request, as a client sends it.
#[derive(Debug, Clone)]
pub enum Request {
    Handshake {
        version: u16,
        token: Vec<u8>,
    },
    Ping {
        payload: Vec<u8>,
    },
    Put {
        group: String,
        key: EntityKey,
        event_time_ms: u64,
        options: PutOptions,
        values: Vec<(String, Value)>,
    },
    Get {
        key: EntityKey,
        features: Vec<FeatureRef>,
    },
    GetMany {
        keys: Vec<EntityKey>,
        features: Vec<FeatureRef>,
    },
    Delete {
        group: String,
        key: EntityKey,
        durability: Option<Durability>,
    },
    GroupCreate(GroupSpec),
    GroupDescribe {
        name: String,
    },
    GroupList {
        tag: Option<String>,
    },
    GroupAlter {
        name: String,
        alter: Alter,
    },
    GroupDrop {
        name: String,
    },
    Scan(ScanRequest),
    GetAsOf(GetAsOfRequest),
    History(HistoryRequest),
    HistoryKeys(HistoryKeysRequest),
    TrainingSet(TrainingSetRequest),
    Stats,
    /// Live statistics of a group's features (of one feature when `feature` is given).
    FeatureStats {
        group: String,
        feature: Option<String>,
    },
    /// Save, show or drop the baselines drift is measured against.
    Baseline(BaselineRequest),
    Security(SecurityRequest),
    /// The partition map and the nodes (cluster mode).
    ClusterMap,
    /// Tell node `node` to leave the cluster: its partitions migrate to the other nodes.
    ClusterLeave {
        node: u32,
    },
    /// A master's write forwarded to a replica (peer port only).
    Replicate(ReplicateRequest),
}

/// What the server tells a client in its handshake response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeInfo {
    pub version: u16,
    pub max_frame_bytes: u32,
    pub max_batch_keys: u32,
    pub max_inflight_per_connection: u32,
    pub max_features_per_request: u32,
    pub max_scan_chunks: u32,
    pub server: String,
}

/// The outcome for one entity of a batch get.
pub type GetManyItem = Result<Vec<FeatureValue>, (StatusCode, String)>;

/// One response frame's meaning. `Error` is any frame whose status is not OK.
#[derive(Debug, Clone)]
pub enum Response {
    Handshake(HandshakeInfo),
    Pong {
        payload: Vec<u8>,
    },
    Put(PutResult),
    Get(Vec<FeatureValue>),
    GetMany(Vec<GetManyItem>),
    Delete {
        existed: bool,
    },
    /// Answer to GROUP_CREATE, GROUP_DESCRIBE and GROUP_ALTER.
    Group(GroupSchema),
    GroupList(Vec<GroupSchema>),
    GroupDropped,
    /// One frame of a scan; `more` mirrors the header's MORE flag.
    ScanChunk {
        items: Vec<ScanItem>,
        next: Option<ScanCursor>,
        more: bool,
    },
    /// Answer to GET_AS_OF: one item per key, encoded as GET_MANY's.
    GetAsOf(Vec<GetManyItem>),
    /// One page of a HISTORY read; `next` resumes it.
    History {
        entries: Vec<HistoryEntry>,
        next: Option<HistoryCursor>,
    },
    HistoryKeys {
        keys: Vec<EntityKey>,
        next: Option<ScanCursor>,
    },
    /// One frame of a TRAINING_SET answer: rows `first..first + rows` of the request's batch,
    /// one column of values per feature; `more` mirrors the header's MORE flag.
    TrainingChunk {
        first: u32,
        rows: u32,
        columns: Vec<Vec<FeatureValue>>,
        more: bool,
    },
    Stats {
        json: String,
    },
    FeatureStats {
        json: String,
    },
    Baseline {
        json: String,
    },
    Security(SecurityReply),
    ClusterMap(ClusterMapInfo),
    /// The map version that marks the node as leaving.
    ClusterLeaving {
        version: u64,
    },
    /// A replica applied a REPLICATE write (durably when it asked for sync).
    Replicated,
    Error {
        status: StatusCode,
        message: String,
    },
}

impl Request {
    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Handshake { .. } => Opcode::Handshake,
            Request::Ping { .. } => Opcode::Ping,
            Request::Put { .. } => Opcode::Put,
            Request::Get { .. } => Opcode::Get,
            Request::GetMany { .. } => Opcode::GetMany,
            Request::Delete { .. } => Opcode::Delete,
            Request::GroupCreate(_) => Opcode::GroupCreate,
            Request::GroupDescribe { .. } => Opcode::GroupDescribe,
            Request::GroupList { .. } => Opcode::GroupList,
            Request::GroupAlter { .. } => Opcode::GroupAlter,
            Request::GroupDrop { .. } => Opcode::GroupDrop,
            Request::Scan(_) => Opcode::Scan,
            Request::GetAsOf(_) => Opcode::GetAsOf,
            Request::History(_) => Opcode::History,
            Request::HistoryKeys(_) => Opcode::HistoryKeys,
            Request::TrainingSet(_) => Opcode::TrainingSet,
            Request::Stats => Opcode::Stats,
            Request::FeatureStats { .. } => Opcode::FeatureStats,
            Request::Baseline(_) => Opcode::Baseline,
            Request::Security(_) => Opcode::Security,
            Request::ClusterMap => Opcode::ClusterMap,
            Request::ClusterLeave { .. } => Opcode::ClusterLeave,
            Request::Replicate(_) => Opcode::Replicate,
        }
    }
}

/// Writes a header with a placeholder length, runs `body`, then patches the length in.
pub fn frame_bytes(
    out: &mut Vec<u8>,
    opcode: u8,
    flags: u16,
    status: u16,
    request_id: u64,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    FrameHeader {
        opcode,
        flags,
        status,
        body_len: 0,
        request_id,
    }
    .encode(out);
    body(out);
    // Never a truncated length: a body past u32::MAX says u32::MAX, which every receiver
    // refuses as over its frame limit (the server bounds its responses well below it).
    let body_len = u32::try_from(out.len() - start - HEADER_LEN).unwrap_or(u32::MAX);
    out[start + 8..start + 12].copy_from_slice(&body_len.to_le_bytes());
}

/// Appends one complete request frame to `out`, with no flags.
pub fn encode_request(request_id: u64, request: &Request, out: &mut Vec<u8>) {
    encode_request_flags(request_id, request, 0, out);
}

/// Appends one complete request frame with header `flags` (e.g. [`super::FLAG_CORRUPT_STATUS`]).
pub fn encode_request_flags(request_id: u64, request: &Request, flags: u16, out: &mut Vec<u8>) {
    frame_bytes(out, request.opcode() as u8, flags, 0, request_id, |b| {
        encode_request_body(request, b)
    });
}

pub(super) fn encode_request_body(request: &Request, b: &mut Vec<u8>) {
    match request {
        Request::Handshake { version, token } => {
            put_u16(b, *version);
            put_bytes(b, token);
        }
        Request::Ping { payload } => b.extend_from_slice(payload),
        Request::Put {
            group,
            key,
            event_time_ms,
            options,
            values,
        } => {
            put_str(b, group);
            put_key(b, key);
            put_u64(b, *event_time_ms);
            put_put_options(b, options);
            put_len(b, values.len());
            for (name, value) in values {
                put_str(b, name);
                put_value(b, value);
            }
        }
        Request::Get { key, features } => {
            put_key(b, key);
            put_refs(b, features);
        }
        Request::GetMany { keys, features } => {
            put_len(b, keys.len());
            for k in keys {
                put_key(b, k);
            }
            put_refs(b, features);
        }
        Request::Delete {
            group,
            key,
            durability,
        } => {
            put_str(b, group);
            put_key(b, key);
            put_durability(b, *durability);
        }
        Request::GroupCreate(spec) => put_group_spec(b, spec),
        Request::GroupDescribe { name } | Request::GroupDrop { name } => put_str(b, name),
        Request::GroupList { tag } => {
            b.push(tag.is_some() as u8);
            put_str(b, tag.as_deref().unwrap_or(""));
        }
        Request::GroupAlter { name, alter } => {
            put_str(b, name);
            put_alter(b, alter);
        }
        Request::Scan(s) => {
            put_str(b, &s.group);
            b.push(s.cursor.is_some() as u8);
            put_u64(b, s.cursor.map_or(0, |c| c.0));
            put_u32(b, s.chunk_items);
            put_u32(b, s.max_chunks);
        }
        Request::GetAsOf(r) => put_get_as_of_request(b, r),
        Request::History(r) => put_history_request(b, r),
        Request::HistoryKeys(r) => put_history_keys_request(b, r),
        Request::TrainingSet(r) => put_training_set_request(b, r),
        Request::Stats => {}
        Request::FeatureStats { group, feature } => {
            put_str(b, group);
            b.push(feature.is_some() as u8);
            put_str(b, feature.as_deref().unwrap_or(""));
        }
        Request::Baseline(r) => put_baseline_request(b, r),
        Request::Security(r) => put_security_request(b, r),
        Request::ClusterMap => {}
        Request::ClusterLeave { node } => put_u32(b, *node),
        Request::Replicate(r) => put_replicate(b, r),
    }
}

/// Splits a GET body into its key and the raw bytes of its reference list: the server
/// batches GETs whose reference bytes are equal and decodes those bytes once per batch.
pub fn split_get_body(body: &[u8]) -> Result<(EntityKey, &[u8]), DecodeError> {
    let mut r = WireReader::new(body);
    let key = get_key(&mut r)?;
    Ok((key, &body[r.position()..]))
}

/// Decodes the reference list of a GET body (the second half of [`split_get_body`]).
pub fn decode_refs(raw: &[u8]) -> Result<Vec<FeatureRef>, DecodeError> {
    let mut r = WireReader::new(raw);
    let refs = get_refs(&mut r)?;
    r.finish("GET")?;
    Ok(refs)
}

/// Decodes a request body whose header already passed [`FrameHeader::check_request`].
pub fn decode_request(opcode: Opcode, body: &[u8]) -> Result<Request, DecodeError> {
    let mut r = WireReader::new(body);
    let request = match opcode {
        Opcode::Handshake => Request::Handshake {
            version: r.u16("handshake version")?,
            token: r.bytes("auth token")?.to_vec(),
        },
        Opcode::Ping => Request::Ping {
            payload: r.take(body.len(), "ping payload")?.to_vec(),
        },
        Opcode::Put => decode_put(&mut r)?,
        Opcode::Get => Request::Get {
            key: get_key(&mut r)?,
            features: get_refs(&mut r)?,
        },
        Opcode::GetMany => {
            let n = r.count("batch keys", 5)?;
            let keys = (0..n).map(|_| get_key(&mut r)).collect::<Result<_, _>>()?;
            Request::GetMany {
                keys,
                features: get_refs(&mut r)?,
            }
        }
        Opcode::Delete => Request::Delete {
            group: r.string("group name")?,
            key: get_key(&mut r)?,
            durability: get_durability(&mut r)?,
        },
        Opcode::GroupCreate => Request::GroupCreate(get_group_spec(&mut r)?),
        Opcode::GroupDescribe => Request::GroupDescribe {
            name: r.string("group name")?,
        },
        Opcode::GroupList => {
            let has_tag = r.bool("tag present")?;
            let tag = r.string("tag")?;
            zero_unless(
                has_tag,
                "tag length",
                "when no tag is given (has_tag 0)",
                tag.len() as u64,
            )?;
            Request::GroupList {
                tag: has_tag.then_some(tag),
            }
        }
        Opcode::GroupAlter => Request::GroupAlter {
            name: r.string("group name")?,
            alter: get_alter(&mut r)?,
        },
        Opcode::GroupDrop => Request::GroupDrop {
            name: r.string("group name")?,
        },
        Opcode::Scan => decode_scan(&mut r)?,
        Opcode::GetAsOf => Request::GetAsOf(get_get_as_of_request(&mut r)?),
        Opcode::History => Request::History(get_history_request(&mut r)?),
        Opcode::HistoryKeys => Request::HistoryKeys(get_history_keys_request(&mut r)?),
        Opcode::TrainingSet => Request::TrainingSet(get_training_set_request(&mut r)?),
        Opcode::Stats => Request::Stats,
        Opcode::FeatureStats => {
            let group = r.string("group name")?;
            let has_feature = r.bool("feature present")?;
            let feature = r.string("feature name")?;
            zero_unless(
                has_feature,
                "feature name length",
                "when no feature is given (has_feature 0)",
                feature.len() as u64,
            )?;
            Request::FeatureStats {
                group,
                feature: has_feature.then_some(feature),
            }
        }
        Opcode::Baseline => Request::Baseline(get_baseline_request(&mut r)?),
        Opcode::Security => Request::Security(get_security_request(&mut r)?),
        Opcode::ClusterMap => Request::ClusterMap,
        Opcode::ClusterLeave => Request::ClusterLeave {
            node: r.u32("leaving node")?,
        },
        Opcode::Replicate => Request::Replicate(get_replicate(&mut r)?),
    };
    r.finish(opcode.name())?;
    Ok(request)
}

fn decode_put(r: &mut WireReader<'_>) -> Result<Request, DecodeError> {
    let group = r.string("group name")?;
    let key = get_key(r)?;
    let event_time_ms = r.u64("event time")?;
    let options = get_put_options(r)?;
    let n = r.count("put values", 5)?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string("feature name")?;
        values.push((name, get_value(r)?));
    }
    Ok(Request::Put {
        group,
        key,
        event_time_ms,
        options,
        values,
    })
}

fn decode_scan(r: &mut WireReader<'_>) -> Result<Request, DecodeError> {
    let group = r.string("group name")?;
    let resume = r.bool("scan resume flag")?;
    let cursor = r.u64("scan cursor")?;
    zero_unless(resume, "scan cursor", "when resume is 0", cursor)?;
    Ok(Request::Scan(ScanRequest {
        group,
        cursor: resume.then_some(ScanCursor(cursor)),
        chunk_items: r.u32("scan chunk items")?,
        max_chunks: r.u32("scan max chunks")?,
    }))
}

/// Appends an error response frame: the status and a UTF-8 message as the whole body.
pub fn encode_error(
    out: &mut Vec<u8>,
    opcode: u8,
    request_id: u64,
    status: StatusCode,
    message: &str,
) {
    frame_bytes(out, opcode, 0, status as u16, request_id, |b| {
        b.extend_from_slice(message.as_bytes())
    });
}

/// Appends one complete response frame for a request of `opcode`.
pub fn encode_response(out: &mut Vec<u8>, opcode: Opcode, request_id: u64, response: &Response) {
    if let Response::Error { status, message } = response {
        return encode_error(out, opcode as u8, request_id, *status, message);
    }
    let flags = match response {
        Response::ScanChunk { more: true, .. } | Response::TrainingChunk { more: true, .. } => {
            FLAG_MORE
        }
        _ => 0,
    };
    frame_bytes(out, opcode as u8, flags, 0, request_id, |b| {
        encode_response_body(response, b)
    });
}

fn encode_response_body(response: &Response, b: &mut Vec<u8>) {
    match response {
        Response::Handshake(h) => {
            put_u16(b, h.version);
            put_u32(b, h.max_frame_bytes);
            put_u32(b, h.max_batch_keys);
            put_u32(b, h.max_inflight_per_connection);
            put_u32(b, h.max_features_per_request);
            put_u32(b, h.max_scan_chunks);
            put_str(b, &h.server);
        }
        Response::Pong { payload } => b.extend_from_slice(payload),
        Response::Put(p) => put_put_result(b, p),
        Response::Get(values) => put_feature_values(b, values),
        Response::GetMany(items) | Response::GetAsOf(items) => {
            put_get_many_count(b, items.len());
            for item in items {
                put_get_many_item(b, item);
            }
        }
        Response::History { entries, next } => put_history_page(b, entries, next.as_ref()),
        Response::HistoryKeys { keys, next } => put_history_keys(b, keys, *next),
        Response::TrainingChunk {
            first,
            rows,
            columns,
            ..
        } => put_training_chunk(b, *first, 0..*rows as usize, columns),
        Response::Delete { existed } => b.push(*existed as u8),
        Response::Group(g) => put_group_schema(b, g),
        Response::GroupList(groups) => {
            put_len(b, groups.len());
            for g in groups {
                put_group_schema(b, g);
            }
        }
        Response::GroupDropped => {}
        Response::ScanChunk { items, next, .. } => put_scan_chunk(b, items, *next),
        Response::Stats { json }
        | Response::FeatureStats { json }
        | Response::Baseline { json } => b.extend_from_slice(json.as_bytes()),
        Response::Security(reply) => put_security_reply(b, reply),
        Response::ClusterMap(info) => put_cluster_map(b, info),
        Response::ClusterLeaving { version } => put_u64(b, *version),
        Response::Replicated => {}
        Response::Error { message, .. } => b.extend_from_slice(message.as_bytes()),
    }
}

/// Starts a GET_MANY response body: the item count; the items follow
/// ([`put_get_many_item`]).
pub fn put_get_many_count(b: &mut Vec<u8>, n: usize) {
    put_len(b, n);
}

/// Appends one GET_MANY item: a status, then the values or the item's error message.
pub fn put_get_many_item(b: &mut Vec<u8>, item: &GetManyItem) {
    match item {
        Ok(values) => {
            put_u16(b, StatusCode::Ok as u16);
            put_feature_values(b, values);
        }
        Err((status, message)) => {
            put_u16(b, *status as u16);
            put_str(b, message);
        }
    }
}

pub fn put_scan_chunk(b: &mut Vec<u8>, items: &[ScanItem], next: Option<ScanCursor>) {
    put_len(b, items.len());
    for item in items {
        put_scan_item(b, item);
    }
    b.push(next.is_some() as u8);
    put_u64(b, next.map_or(0, |c| c.0));
}

/// Decodes a response frame's body.
pub fn decode_response(header: &FrameHeader, body: &[u8]) -> Result<Response, DecodeError> {
    // Error frames may carry an opcode this side does not know (an echoed unknown opcode, or
    // 0x00 for a connection-level error), so the status is looked at first.
    if header.status != StatusCode::Ok as u16 {
        header.check_flags()?;
        let status = StatusCode::from_u16(header.status).ok_or(DecodeError::UnknownStatus {
            code: header.status,
        })?;
        let message = String::from_utf8_lossy(body).into_owned();
        return Ok(Response::Error { status, message });
    }
    let opcode = header.check_response()?;
    if header.flags & FLAG_MORE != 0 && !matches!(opcode, Opcode::Scan | Opcode::TrainingSet) {
        return Err(DecodeError::MoreOnSingleResponse {
            opcode: opcode.name(),
        });
    }
    let mut r = WireReader::new(body);
    let response = match opcode {
        Opcode::Handshake => Response::Handshake(HandshakeInfo {
            version: r.u16("handshake version")?,
            max_frame_bytes: r.u32("max_frame_bytes")?,
            max_batch_keys: r.u32("max_batch_keys")?,
            max_inflight_per_connection: r.u32("max_inflight_per_connection")?,
            max_features_per_request: r.u32("max_features_per_request")?,
            max_scan_chunks: r.u32("max_scan_chunks")?,
            server: r.string("server version")?,
        }),
        Opcode::Ping => Response::Pong {
            payload: body.to_vec(),
        },
        Opcode::Put => Response::Put(get_put_result(&mut r)?),
        Opcode::Get => Response::Get(get_feature_values(&mut r)?),
        Opcode::GetMany => Response::GetMany(decode_get_many(&mut r)?),
        Opcode::GetAsOf => Response::GetAsOf(decode_get_many(&mut r)?),
        Opcode::History => {
            let (entries, next) = get_history_page(&mut r)?;
            Response::History { entries, next }
        }
        Opcode::HistoryKeys => {
            let (keys, next) = get_history_keys(&mut r)?;
            Response::HistoryKeys { keys, next }
        }
        Opcode::TrainingSet => {
            let (first, rows, columns) = get_training_chunk(&mut r)?;
            Response::TrainingChunk {
                first,
                rows,
                columns,
                more: header.flags & FLAG_MORE != 0,
            }
        }
        Opcode::Delete => Response::Delete {
            existed: r.bool("existed")?,
        },
        Opcode::GroupCreate | Opcode::GroupDescribe | Opcode::GroupAlter => {
            Response::Group(get_group_schema(&mut r)?)
        }
        Opcode::GroupList => {
            let n = r.count("groups", 40)?;
            Response::GroupList(
                (0..n)
                    .map(|_| get_group_schema(&mut r))
                    .collect::<Result<_, _>>()?,
            )
        }
        Opcode::GroupDrop => Response::GroupDropped,
        Opcode::Scan => decode_scan_chunk(&mut r, header.flags & FLAG_MORE != 0)?,
        Opcode::Stats => Response::Stats {
            json: String::from_utf8(body.to_vec())
                .map_err(|_| DecodeError::BadUtf8 { what: "stats" })?,
        },
        Opcode::FeatureStats => Response::FeatureStats {
            json: String::from_utf8(body.to_vec()).map_err(|_| DecodeError::BadUtf8 {
                what: "feature stats",
            })?,
        },
        Opcode::Baseline => Response::Baseline {
            json: String::from_utf8(body.to_vec())
                .map_err(|_| DecodeError::BadUtf8 { what: "baseline" })?,
        },
        Opcode::Security => Response::Security(get_security_reply(&mut r)?),
        Opcode::ClusterMap => Response::ClusterMap(get_cluster_map(&mut r)?),
        Opcode::ClusterLeave => Response::ClusterLeaving {
            version: r.u64("map version")?,
        },
        Opcode::Replicate => Response::Replicated,
    };
    if !matches!(
        opcode,
        Opcode::Ping | Opcode::Stats | Opcode::FeatureStats | Opcode::Baseline
    ) {
        r.finish(opcode.name())?;
    }
    Ok(response)
}

fn decode_get_many(r: &mut WireReader<'_>) -> Result<Vec<GetManyItem>, DecodeError> {
    let n = r.count("batch items", 6)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        let code = r.u16("item status")?;
        let status = StatusCode::from_u16(code).ok_or(DecodeError::UnknownStatus { code })?;
        items.push(match status {
            StatusCode::Ok => Ok(get_feature_values(r)?),
            status => Err((status, r.string("item error message")?)),
        });
    }
    Ok(items)
}

fn decode_scan_chunk(r: &mut WireReader<'_>, more: bool) -> Result<Response, DecodeError> {
    let n = r.count("scan items", 5)?;
    let items = (0..n).map(|_| get_scan_item(r)).collect::<Result<_, _>>()?;
    let has_next = r.bool("scan has_next")?;
    let next = r.u64("scan next cursor")?;
    zero_unless(has_next, "scan next cursor", "when has_next is 0", next)?;
    Ok(Response::ScanChunk {
        items,
        next: has_next.then_some(ScanCursor(next)),
        more,
    })
}
