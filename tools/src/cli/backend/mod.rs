//! Where commands send their requests: a store opened in-process (`--data PATH`) or a quiverd
//! server over TCP (`--addr`). Both implement [`Backend`], so every command works on both.

mod embedded;
mod remote;
mod stats_json;

use std::sync::Arc;
use std::time::Duration;

use quiver_engine::feature::{
    Alter, EntityKey, FeatureRef, FeatureValue, GroupSchema, GroupSpec, PutOptions, PutResult,
    ScanItem, Value,
};
use quiver_engine::history::{AsOf, HistoryCursor, HistoryEntry, HistoryRange};
use quiver_engine::training::{Joined, SpineBatch, TimeMode};
use quiver_engine::ScanCursor;

pub use embedded::Embedded;
pub use remote::Remote;

use super::error::CliResult;

/// One entity's values to write.
#[derive(Debug, Clone)]
pub struct PutRow {
    pub key: EntityKey,
    pub event_time_ms: u64,
    pub values: Vec<(String, Value)>,
    /// When the store learned these values (a history backfill), else the time of the put.
    pub write_time_ms: Option<u64>,
}

impl PutRow {
    /// `opts`, with this row's write time when it has one.
    pub fn options(&self, opts: &PutOptions) -> PutOptions {
        PutOptions {
            write_time_ms: self.write_time_ms.or(opts.write_time_ms),
            ..*opts
        }
    }
}

/// Versions asked for per history page.
pub const HISTORY_PAGE_VERSIONS: usize = 10_000;

/// One page of a history read and where the next starts (`None` after the last).
pub type HistoryPageOut = (Vec<HistoryEntry>, Option<HistoryCursor>);

/// The operations the CLI needs from a store, local or remote.
pub trait Backend {
    /// Where requests go, for messages: "quiverd at 127.0.0.1:7878" or "store ./demo.db".
    /// A SECURITY command (users, roles, whoami): only quiverd has users.
    fn security(
        &mut self,
        _req: quiver_server::protocol::SecurityRequest,
    ) -> CliResult<quiver_server::protocol::SecurityReply> {
        Err(super::error::CliError::usage(
            "users and roles live in quiverd: use --addr (an in-process store has no users)",
        ))
    }
    /// The partition map of the cluster quiverd belongs to (CLUSTER_MAP).
    fn cluster_map(&mut self) -> CliResult<quiver_server::protocol::ClusterMapInfo> {
        Err(super::error::CliError::usage(
            "the partition map lives in a cluster's quiverd nodes: use --addr",
        ))
    }
    /// Marks a node of the cluster as leaving (CLUSTER_LEAVE); the map version that says so.
    fn cluster_leave(&mut self, _node: u32) -> CliResult<u64> {
        Err(super::error::CliError::usage(
            "nodes leave a cluster through one of its quiverd nodes: use --addr",
        ))
    }
    fn target(&self) -> String;
    fn ping(&mut self) -> CliResult<Duration>;
    fn create_group(&mut self, spec: GroupSpec) -> CliResult<Arc<GroupSchema>>;
    fn describe_group(&mut self, name: &str) -> CliResult<Arc<GroupSchema>>;
    fn list_groups(&mut self, tag: Option<&str>) -> CliResult<Vec<Arc<GroupSchema>>>;
    fn alter_group(&mut self, name: &str, alter: Alter) -> CliResult<Arc<GroupSchema>>;
    fn drop_group(&mut self, name: &str) -> CliResult<()>;
    fn put(&mut self, group: &str, row: &PutRow, opts: &PutOptions) -> CliResult<PutResult>;
    /// Writes many rows with many requests in flight; one outcome per row, in order. The outer
    /// error is for failures of the whole batch (a lost connection), not for a refused row.
    fn put_batch(
        &mut self,
        group: &str,
        rows: Vec<PutRow>,
        opts: &PutOptions,
    ) -> CliResult<Vec<CliResult<PutResult>>>;
    fn get(&mut self, key: &EntityKey, refs: &[FeatureRef]) -> CliResult<Vec<FeatureValue>>;
    /// Features of one entity as of `at`, from the groups' history.
    fn get_as_of(
        &mut self,
        key: &EntityKey,
        refs: &[FeatureRef],
        at: AsOf,
    ) -> CliResult<Vec<FeatureValue>>;
    /// One page (up to [`HISTORY_PAGE_VERSIONS`]) of the versions of `features` of one entity.
    fn history_page(
        &mut self,
        group: &str,
        key: &EntityKey,
        features: &[String],
        range: HistoryRange,
        after: Option<HistoryCursor>,
    ) -> CliResult<HistoryPageOut>;
    /// One chunk of the entities of `group` that have history, from a scan of up to
    /// `max_records` history records; `None` as the returned cursor ends the listing.
    fn history_keys(
        &mut self,
        group: &str,
        cursor: Option<ScanCursor>,
        max_records: usize,
    ) -> CliResult<(Vec<EntityKey>, Option<ScanCursor>)>;
    /// The same features of many entities (at most 10,000): one answer per key, in order.
    fn get_many(
        &mut self,
        keys: &[EntityKey],
        refs: &[FeatureRef],
    ) -> CliResult<Vec<Vec<FeatureValue>>>;
    fn delete(&mut self, group: &str, key: &EntityKey) -> CliResult<bool>;
    /// One chunk of a group's rows, from the start (`None`) or a returned cursor; `None` as the
    /// returned cursor means the scan is complete.
    fn scan(
        &mut self,
        group: &str,
        cursor: Option<ScanCursor>,
        max_items: usize,
    ) -> CliResult<(Vec<ScanItem>, Option<ScanCursor>)>;
    /// The point-in-time join of one spine batch (see `quiver_engine::training`): one column
    /// of values per feature.
    fn training_join(
        &mut self,
        features: &[FeatureRef],
        mode: TimeMode,
        batch: &SpineBatch,
    ) -> CliResult<Joined>;
    /// How many bytes of entity histories a training set keeps between its batches (a local
    /// store only; a server keeps its own).
    fn training_cache_bytes(&mut self, _bytes: usize) {}
    /// Store or server statistics as a JSON object.
    fn stats(&mut self) -> CliResult<serde_json::Value>;
    /// Live statistics of a group's features, in the JSON shape of a FEATURE_STATS response.
    fn feature_stats(&mut self, group: &str, feature: Option<&str>)
        -> CliResult<serde_json::Value>;
    /// A BASELINE request (save, put, show, drop); answers its JSON document.
    fn baseline(
        &mut self,
        req: quiver_server::protocol::BaselineRequest,
    ) -> CliResult<serde_json::Value>;
    /// Flushes and closes; for a local store this makes every write durable.
    fn close(self: Box<Self>) -> CliResult<()>;
}
