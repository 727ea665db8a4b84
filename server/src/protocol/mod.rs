//! The wire protocol: frame header, opcodes, status codes and the typed message codec.
//!
//! The byte-exact description lives in `docs/PROTOCOL.md`; this module is its implementation
//! and a test keeps the document's worked example equal to what [`encode_request`] writes.

mod baseline;
pub(crate) mod cluster;
mod error;
mod header;
mod history;
mod message;
mod security;
mod status;
mod training;
mod types;
pub(crate) mod wire;

pub use baseline::{BaselineRequest, MAX_BASELINE_BYTES};
pub use cluster::{
    ClusterMapInfo, ClusterNode, CopiedRecord, ReplicateRequest, Replicated, MAX_CLUSTER_NODES,
};
pub use error::DecodeError;
pub use header::{
    FrameHeader, Opcode, FLAG_CORRUPT_STATUS, FLAG_MORE, FLAG_REPLICA_READ, HEADER_LEN, MAGIC,
    PROTOCOL_VERSION,
};
pub use history::{
    put_history_entry, put_history_keys, put_history_next, GetAsOfRequest, HistoryKeysRequest,
    HistoryRequest, AS_OF_BYTES, HISTORY_CURSOR_BYTES, HISTORY_NEXT_BYTES,
};
pub use message::{
    decode_refs, decode_request, decode_response, encode_error, encode_request,
    encode_request_flags, encode_response, frame_bytes, put_get_many_count, put_get_many_item,
    put_scan_chunk, split_get_body, GetManyItem, HandshakeInfo, Request, Response, ScanRequest,
};
pub(crate) use security::{get_grant as read_grant, put_grant as wire_grant};
pub use security::{Grant, Permission, RoleInfo, Scope, SecurityReply, SecurityRequest, UserInfo};
pub use status::StatusCode;
pub use training::{
    feature_value_len, mode_code, opt_key_len, put_training_chunk, TrainingSetRequest,
    TRAINING_CHUNK_HEAD_BYTES,
};
pub(crate) use types::put_refs;
pub use wire::WireReader;

#[cfg(test)]
mod tests;
