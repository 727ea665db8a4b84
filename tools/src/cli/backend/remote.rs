//! quiverd over TCP, through `quiver_server::client`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_engine::feature::{
    Alter, EntityKey, FeatureRef, FeatureValue, GroupSchema, GroupSpec, PutOptions, PutResult,
    ScanItem,
};
use quiver_engine::history::{AsOf, HistoryCursor, HistoryRange};
use quiver_engine::training::{Joined, SpineBatch, TimeMode};
use quiver_engine::ScanCursor;
use quiver_server::client::{Client, ClientConfig, ClientError, ClusterClient};
use quiver_server::protocol::{ClusterMapInfo, HistoryRequest};
use quiver_server::protocol::{Request, Response, StatusCode};

use super::{Backend, HistoryPageOut, PutRow, HISTORY_PAGE_VERSIONS};
use crate::cli::error::{CliError, CliResult};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for any one response.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Scan frames asked for per scan request.
const SCAN_MAX_CHUNKS: u32 = 4;

/// How long a routed request is retried on a cluster (NOT_MASTER, UNAVAILABLE, a lost
/// connection) before the command gives up.
const CLUSTER_RETRY: Duration = Duration::from_secs(10);

pub struct Remote {
    client: Client,
    addr: String,
    /// Set when `addr` is a node of a cluster: keyed requests go to their key's master and
    /// group changes to every node.
    routed: Option<ClusterClient>,
}

impl Remote {
    /// Connects once (no retries: a person is waiting) and performs the handshake.
    pub fn connect(
        addr: &str,
        auth_token: Option<&str>,
        tls: Option<std::sync::Arc<quiver_server::tls::TlsClientConfig>>,
    ) -> CliResult<Remote> {
        let config = ClientConfig {
            auth_token: auth_token.map(|t| t.as_bytes().to_vec()),
            tls,
            connect_timeout: CONNECT_TIMEOUT,
            io_timeout: Some(IO_TIMEOUT),
            reconnect_attempts: 1,
            ..ClientConfig::default()
        };
        let mut client =
            Client::connect(addr, config.clone()).map_err(|e| map_connect_error(addr, e))?;
        // A node of a cluster has a map; a single server answers INVALID_ARGUMENT (an older
        // one UNKNOWN_OPCODE).
        let routed = match client.call(&Request::ClusterMap) {
            Ok(Response::ClusterMap(info)) if info.map.is_some() => {
                let mut routed = ClusterClient::connect(&[addr], config)
                    .map_err(|e| map_connect_error(addr, e))?;
                routed.retry.deadline = CLUSTER_RETRY;
                Some(routed)
            }
            _ => None,
        };
        Ok(Remote {
            client,
            addr: addr.to_string(),
            routed,
        })
    }

    fn err(&self, err: ClientError) -> CliError {
        map_error(&self.addr, err)
    }
}

fn map_connect_error(addr: &str, err: ClientError) -> CliError {
    match err {
        ClientError::Connect { last, .. } => CliError::Connect {
            addr: addr.to_string(),
            reason: connect_reason(addr, &last),
        },
        // The handshake's frame could not be read: the port speaks another protocol (TLS,
        // for a client without --tls), which its message names.
        ClientError::Server {
            status: StatusCode::BadFrame,
            message,
        } => CliError::Tls {
            addr: addr.to_string(),
            reason: message,
        },
        other => map_error(addr, other),
    }
}

/// "I/O error talking to A: Connection refused (os error 111)" -> "connection refused".
fn connect_reason(addr: &str, last: &str) -> String {
    let prefix = format!("I/O error talking to {addr}: ");
    let text = last.strip_prefix(&prefix).unwrap_or(last);
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown reason".to_string(),
    }
}

/// Maps the server's status codes onto the CLI's exit codes.
pub fn map_error(addr: &str, err: ClientError) -> CliError {
    let lost = |reason: String| CliError::ConnectionLost {
        addr: addr.to_string(),
        reason,
    };
    match err {
        ClientError::Server { status, message } => match status {
            StatusCode::UnknownGroup | StatusCode::UnknownFeature => CliError::NotFound(message),
            StatusCode::PermissionDenied => CliError::Denied(message),
            StatusCode::AuthFailed | StatusCode::HandshakeRequired => CliError::Auth {
                addr: addr.to_string(),
                reason: message,
            },
            StatusCode::LimitExceeded
            | StatusCode::TypeMismatch
            | StatusCode::GroupExists
            | StatusCode::InvalidArgument
            | StatusCode::GenerationMismatch
            | StatusCode::AlreadyExists
            | StatusCode::NotFound => CliError::Rejected(message),
            other => CliError::Store(format!("quiverd at {addr}: {} ({message})", other.name())),
        },
        ClientError::Connect { last, .. } => CliError::Connect {
            addr: addr.to_string(),
            reason: connect_reason(addr, &last),
        },
        ClientError::RequestTooLarge { .. } => CliError::Rejected(err.to_string()),
        ClientError::Tls(reason) => CliError::Tls {
            addr: addr.to_string(),
            reason: format!("TLS: {reason}"),
        },
        other => lost(other.to_string()),
    }
}

impl Backend for Remote {
    fn cluster_map(&mut self) -> CliResult<ClusterMapInfo> {
        match self.client.call(&Request::ClusterMap) {
            Ok(Response::ClusterMap(info)) => Ok(info),
            Ok(other) => Err(CliError::Internal(format!(
                "unexpected answer to CLUSTER_MAP: {other:?}"
            ))),
            Err(e) => Err(self.err(e)),
        }
    }

    fn cluster_leave(&mut self, node: u32) -> CliResult<u64> {
        match self.client.call(&Request::ClusterLeave { node }) {
            Ok(Response::ClusterLeaving { version }) => Ok(version),
            Ok(other) => Err(CliError::Internal(format!(
                "unexpected answer to CLUSTER_LEAVE: {other:?}"
            ))),
            Err(e) => Err(self.err(e)),
        }
    }

    fn security(
        &mut self,
        req: quiver_server::protocol::SecurityRequest,
    ) -> CliResult<quiver_server::protocol::SecurityReply> {
        self.client.security(req).map_err(|e| self.err(e))
    }

    fn target(&self) -> String {
        format!("quiverd at {}", self.addr)
    }

    fn ping(&mut self) -> CliResult<Duration> {
        let start = Instant::now();
        self.client.ping().map_err(|e| self.err(e))?;
        Ok(start.elapsed())
    }

    fn create_group(&mut self, spec: GroupSpec) -> CliResult<Arc<GroupSchema>> {
        if let Some(r) = &mut self.routed {
            let created = r.create_group(spec);
            return created.map(Arc::new).map_err(|e| self.err(e));
        }
        self.client
            .create_group(spec)
            .map(Arc::new)
            .map_err(|e| self.err(e))
    }

    fn describe_group(&mut self, name: &str) -> CliResult<Arc<GroupSchema>> {
        self.client
            .describe_group(name)
            .map(Arc::new)
            .map_err(|e| self.err(e))
    }

    fn list_groups(&mut self, tag: Option<&str>) -> CliResult<Vec<Arc<GroupSchema>>> {
        let groups = self.client.list_groups(tag).map_err(|e| self.err(e))?;
        Ok(groups.into_iter().map(Arc::new).collect())
    }

    fn alter_group(&mut self, name: &str, alter: Alter) -> CliResult<Arc<GroupSchema>> {
        if let Some(r) = &mut self.routed {
            let altered = r.alter_group(name, alter);
            return altered.map(Arc::new).map_err(|e| self.err(e));
        }
        self.client
            .alter_group(name, alter)
            .map(Arc::new)
            .map_err(|e| self.err(e))
    }

    fn drop_group(&mut self, name: &str) -> CliResult<()> {
        if let Some(r) = &mut self.routed {
            let dropped = r.drop_group(name);
            return dropped.map_err(|e| self.err(e));
        }
        self.client.drop_group(name).map_err(|e| self.err(e))
    }

    fn put(&mut self, group: &str, row: &PutRow, opts: &PutOptions) -> CliResult<PutResult> {
        let values = row.values.clone();
        let opts = row.options(opts);
        let put = match &mut self.routed {
            Some(r) => r.put(group, row.key.clone(), row.event_time_ms, values, opts),
            None => self
                .client
                .put(group, row.key.clone(), row.event_time_ms, values, opts),
        };
        put.map_err(|e| self.err(e))
    }

    /// Sends every put before reading any answer (the client reads early only when the
    /// server's in-flight limit is reached), then collects the answers in order.
    fn put_batch(
        &mut self,
        group: &str,
        rows: Vec<PutRow>,
        opts: &PutOptions,
    ) -> CliResult<Vec<CliResult<PutResult>>> {
        if self.routed.is_some() {
            // On a cluster each row goes to its own master, one at a time.
            return Ok(rows.iter().map(|row| self.put(group, row, opts)).collect());
        }
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let request = Request::Put {
                group: group.to_string(),
                options: row.options(opts),
                key: row.key,
                event_time_ms: row.event_time_ms,
                values: row.values,
            };
            match self.client.send(&request) {
                Ok(id) => ids.push(Ok(id)),
                Err(e @ ClientError::RequestTooLarge { .. }) => ids.push(Err(self.err(e))),
                Err(e) => return Err(self.err(e)),
            }
        }
        self.client.flush().map_err(|e| self.err(e))?;
        let mut outcomes = Vec::with_capacity(ids.len());
        for id in ids {
            let outcome = match id {
                Ok(id) => match self.client.wait(id) {
                    Ok(Response::Put(result)) => Ok(result),
                    Ok(other) => Err(CliError::Internal(format!(
                        "unexpected answer to a put: {other:?}"
                    ))),
                    Err(e @ ClientError::Server { .. }) => Err(self.err(e)),
                    Err(e) => return Err(self.err(e)),
                },
                Err(e) => Err(e),
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn get(&mut self, key: &EntityKey, refs: &[FeatureRef]) -> CliResult<Vec<FeatureValue>> {
        let got = match &mut self.routed {
            Some(r) => r.get(key.clone(), refs.to_vec()),
            None => self.client.get(key.clone(), refs.to_vec()),
        };
        got.map_err(|e| self.err(e))
    }

    fn get_as_of(
        &mut self,
        key: &EntityKey,
        refs: &[FeatureRef],
        at: AsOf,
    ) -> CliResult<Vec<FeatureValue>> {
        let got = match &mut self.routed {
            Some(r) => r.get_as_of(key.clone(), at, refs.to_vec()),
            None => self.client.get_as_of(key.clone(), at, refs.to_vec()),
        };
        got.map_err(|e| self.err(e))
    }

    fn history_page(
        &mut self,
        group: &str,
        key: &EntityKey,
        features: &[String],
        range: HistoryRange,
        after: Option<HistoryCursor>,
    ) -> CliResult<HistoryPageOut> {
        let max = u32::try_from(HISTORY_PAGE_VERSIONS).unwrap_or(u32::MAX);
        let page = match &mut self.routed {
            Some(r) => r.history_page(HistoryRequest {
                group: group.into(),
                key: key.clone(),
                features: features.to_vec(),
                range,
                after,
                max_versions: max,
            }),
            None => {
                let features = features.to_vec();
                self.client
                    .history_page(group, key.clone(), features, range, after, max)
            }
        };
        page.map_err(|e| self.err(e))
    }

    fn history_keys(
        &mut self,
        group: &str,
        cursor: Option<ScanCursor>,
        max_records: usize,
    ) -> CliResult<(Vec<EntityKey>, Option<ScanCursor>)> {
        let limit = self.client.server_info().max_batch_keys.max(1) as usize;
        let max = u32::try_from(max_records.clamp(1, limit)).unwrap_or(u32::MAX);
        self.client
            .history_keys_page(group, cursor, max)
            .map_err(|e| self.err(e))
    }

    fn get_many(
        &mut self,
        keys: &[EntityKey],
        refs: &[FeatureRef],
    ) -> CliResult<Vec<Vec<FeatureValue>>> {
        let per_request = self.client.server_info().max_batch_keys.max(1) as usize;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(per_request) {
            let items = match &mut self.routed {
                Some(r) => r.get_many(chunk.to_vec(), refs.to_vec()),
                None => self.client.get_many(chunk.to_vec(), refs.to_vec()),
            };
            let items = items.map_err(|e| self.err(e))?;
            for item in items {
                out.push(item.map_err(|e| self.err(e))?);
            }
        }
        Ok(out)
    }

    fn delete(&mut self, group: &str, key: &EntityKey) -> CliResult<bool> {
        let deleted = match &mut self.routed {
            Some(r) => r.delete(group, key.clone(), None),
            None => self.client.delete(group, key.clone(), None),
        };
        deleted.map_err(|e| self.err(e))
    }

    fn scan(
        &mut self,
        group: &str,
        cursor: Option<ScanCursor>,
        max_items: usize,
    ) -> CliResult<(Vec<ScanItem>, Option<ScanCursor>)> {
        let chunk_items = u32::try_from(max_items.div_ceil(SCAN_MAX_CHUNKS as usize))
            .unwrap_or(u32::MAX)
            .max(1);
        self.client
            .scan_page(group, cursor, chunk_items, SCAN_MAX_CHUNKS)
            .map_err(|e| self.err(e))
    }

    fn training_join(
        &mut self,
        features: &[FeatureRef],
        mode: TimeMode,
        batch: &SpineBatch,
    ) -> CliResult<Joined> {
        // On a cluster each node joins the rows whose keys it masters.
        let joined = match &mut self.routed {
            Some(r) => r.training_join(features, mode, batch),
            None => self
                .client
                .training_set(features.to_vec(), mode)
                .and_then(|mut set| set.join(batch)),
        };
        joined.map_err(|e| self.err(e))
    }

    fn feature_stats(
        &mut self,
        group: &str,
        feature: Option<&str>,
    ) -> CliResult<serde_json::Value> {
        let text = self
            .client
            .feature_stats(group, feature)
            .map_err(|e| self.err(e))?;
        serde_json::from_str(&text).map_err(|e| {
            CliError::Store(format!(
                "quiverd at {} sent feature statistics that are not JSON: {e}",
                self.addr
            ))
        })
    }

    fn baseline(
        &mut self,
        req: quiver_server::protocol::BaselineRequest,
    ) -> CliResult<serde_json::Value> {
        let text = self.client.baseline(req).map_err(|e| self.err(e))?;
        serde_json::from_str(&text).map_err(|e| {
            CliError::Store(format!(
                "quiverd at {} sent a baseline answer that is not JSON: {e}",
                self.addr
            ))
        })
    }

    fn stats(&mut self) -> CliResult<serde_json::Value> {
        let text = self.client.stats().map_err(|e| self.err(e))?;
        serde_json::from_str(&text).map_err(|e| {
            CliError::Store(format!(
                "quiverd at {} sent stats that are not JSON: {e}",
                self.addr
            ))
        })
    }

    fn close(self: Box<Self>) -> CliResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::connect_reason;

    #[test]
    fn connect_reasons_read_plainly() {
        let last = "I/O error talking to 127.0.0.1:7878: Connection refused (os error 111)";
        assert_eq!(connect_reason("127.0.0.1:7878", last), "connection refused");
        assert_eq!(
            connect_reason("h:1", "timed out after 5000 ms waiting for connect"),
            "timed out after 5000 ms waiting for connect"
        );
    }
}
