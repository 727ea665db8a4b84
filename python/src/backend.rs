//! Where the operations go: a pool of connections to `quiverd` (the Rust client) or a store
//! embedded in this process. Both take `&self` and are called with the GIL released.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use quiver_engine::feature::{
    Alter, EntityKey, FeatureRef, FeatureValue, GroupSchema, GroupSpec, PutOptions, PutResult,
    Value,
};
use quiver_engine::history::AsOf;
use quiver_engine::training::{SpineBatch, TimeMode};
use quiver_engine::{Durability, Store};
use quiver_server::client::{Client, ClientConfig};
use quiver_server::protocol::{HandshakeInfo, Request, Response, StatusCode};

use crate::cluster::ClusterPool;
use crate::error::{Failure, Result};

/// Idle connections a pool keeps; more are opened while more threads are busy at once, and
/// closed when they come back to a full pool.
const MAX_IDLE_CONNECTIONS: usize = 16;
/// Puts a bulk write keeps in flight on its connection.
pub const PUT_PIPELINE_DEPTH: usize = 256;

/// One entity's values for a bulk write.
pub struct PutRow {
    pub key: EntityKey,
    pub event_time_ms: u64,
    pub values: Vec<(String, Value)>,
    /// When the store learned these values (history's second time axis); `None` keeps the
    /// write's options (by default the store's clock).
    pub write_time_ms: Option<u64>,
}

impl PutRow {
    /// The write's options with this row's write time, if it has one.
    pub fn options(&self, options: PutOptions) -> PutOptions {
        PutOptions {
            write_time_ms: self.write_time_ms.or(options.write_time_ms),
            ..options
        }
    }
}

/// Spine rows joined per step of a training set: an engine join (embedded), or a pipeline of
/// TRAINING_SET requests (remote). The answers of one step are in memory twice at most.
pub const TRAINING_STEP_ROWS: usize = 65_536;

/// A whole training-set spine, owned by Rust: each row's timestamp, per group its key column
/// (`None` where the row has no entity of that group), and in the known-at mode each row's
/// known-at time.
pub struct Spine {
    pub timestamps_ms: Vec<u64>,
    pub keys: Vec<(String, Vec<Option<EntityKey>>)>,
    pub known_at_ms: Option<Vec<u64>>,
}

impl Spine {
    pub fn rows(&self) -> usize {
        self.timestamps_ms.len()
    }

    /// Rows `range` as one batch, the key columns in the order of `groups` (the training set's).
    pub fn batch(&self, groups: &[String], range: std::ops::Range<usize>) -> Result<SpineBatch> {
        let keys = groups
            .iter()
            .map(|g| {
                self.keys
                    .iter()
                    .find(|(name, _)| name == g)
                    .map(|(_, column)| column[range.clone()].to_vec())
                    .ok_or_else(|| Failure::invalid(format!("no key column for group '{g}'")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SpineBatch {
            first_row: range.start as u64,
            timestamps_ms: self.timestamps_ms[range.clone()].to_vec(),
            keys,
            known_at_ms: self.known_at_ms.as_ref().map(|k| k[range].to_vec()),
        })
    }

    /// The row ranges of the steps.
    pub fn steps(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        (0..self.rows())
            .step_by(TRAINING_STEP_ROWS)
            .map(|from| from..(from + TRAINING_STEP_ROWS).min(self.rows()))
    }
}

/// What a bulk write did, summed over its rows.
#[derive(Debug, Default, Clone, Copy)]
pub struct PutTotals {
    pub rows: u64,
    pub written: u64,
    pub skipped_stale: u64,
    /// Values left out for breaking a rule (groups whose violation mode is drop).
    pub dropped: u64,
}

impl PutTotals {
    pub fn add(&mut self, r: &PutResult) {
        self.rows += 1;
        self.written += r.written as u64;
        self.skipped_stale += r.skipped_stale as u64;
        self.dropped += r.dropped as u64;
    }

    /// Adds the totals of another part of the same write.
    pub fn merge(&mut self, other: &PutTotals) {
        self.rows += other.rows;
        self.written += other.written;
        self.skipped_stale += other.skipped_stale;
        self.dropped += other.dropped;
    }
}

/// Connections to one server: a thread takes an idle one (or opens one), uses it alone, and
/// gives it back, so one `Client` object serves many threads without a lock held during I/O.
pub struct Pool {
    addr: String,
    config: ClientConfig,
    idle: Mutex<Vec<Client>>,
    info: HandshakeInfo,
}

impl Pool {
    /// Connects once at once, so a wrong address or token fails here.
    pub fn connect(addr: &str, config: ClientConfig) -> Result<Pool> {
        let client = Client::connect(addr, config.clone())?;
        let info = client.server_info().clone();
        Ok(Pool {
            addr: addr.to_owned(),
            config,
            idle: Mutex::new(vec![client]),
            info,
        })
    }

    pub fn info(&self) -> &HandshakeInfo {
        &self.info
    }

    fn with<T>(&self, f: impl FnOnce(&mut Client) -> std::result::Result<T, Failure>) -> Result<T> {
        let taken = self.idle.lock().pop();
        let mut client = match taken {
            Some(c) => c,
            None => Client::connect(&self.addr, self.config.clone())?,
        };
        let out = f(&mut client);
        // A client with requests still in flight (an error cut a pipeline short) is dropped:
        // its late responses must not be read by the next user.
        if client.outstanding() == 0 {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE_CONNECTIONS {
                idle.push(client);
            }
        }
        out
    }
}

pub enum Backend {
    Remote(Pool),
    /// The nodes of a cluster, each key routed to its master.
    Cluster(ClusterPool),
    /// `None` once closed.
    Embedded(RwLock<Option<Arc<Store>>>),
}

fn expect_put(r: Response) -> Result<PutResult> {
    match r {
        Response::Put(p) => Ok(p),
        other => Err(Failure::Protocol(format!(
            "unexpected response to PUT: {other:?}"
        ))),
    }
}

impl Backend {
    fn store(&self) -> Result<Arc<Store>> {
        match self {
            Backend::Embedded(s) => s.read().clone().ok_or_else(|| Failure::Status {
                status: StatusCode::ShuttingDown,
                message: "the store is closed".into(),
            }),
            Backend::Remote(_) | Backend::Cluster(_) => {
                unreachable!("store() is only called on an embedded backend")
            }
        }
    }

    /// The largest batch of keys one request may carry.
    pub fn max_batch_keys(&self) -> usize {
        match self {
            Backend::Remote(p) => p.info().max_batch_keys.max(1) as usize,
            Backend::Cluster(p) => p.info().max_batch_keys.max(1) as usize,
            Backend::Embedded(_) => quiver_engine::feature::MAX_ENTITIES_PER_GET,
        }
    }

    pub fn create_group(&self, spec: GroupSpec) -> Result<GroupSchema> {
        match self {
            Backend::Remote(p) => p.with(|c| Ok(c.create_group(spec)?)),
            Backend::Cluster(p) => p.client(|c| c.create_group(spec)),
            Backend::Embedded(_) => Ok((*self.store()?.create_group(spec)?).clone()),
        }
    }

    pub fn describe_group(&self, name: &str) -> Result<GroupSchema> {
        match self {
            Backend::Remote(p) => p.with(|c| Ok(c.describe_group(name)?)),
            Backend::Cluster(p) => p.client(|c| c.describe_group(name)),
            Backend::Embedded(_) => Ok((*self.store()?.describe_group(name)?).clone()),
        }
    }

    pub fn list_groups(&self, tag: Option<&str>) -> Result<Vec<GroupSchema>> {
        match self {
            Backend::Remote(p) => p.with(|c| Ok(c.list_groups(tag)?)),
            Backend::Cluster(p) => p.client(|c| c.list_groups(tag)),
            Backend::Embedded(_) => Ok(self
                .store()?
                .list_groups(tag)
                .into_iter()
                .map(|g| (*g).clone())
                .collect()),
        }
    }

    pub fn alter_group(&self, name: &str, alter: Alter) -> Result<GroupSchema> {
        match self {
            Backend::Remote(p) => p.with(|c| Ok(c.alter_group(name, alter)?)),
            Backend::Cluster(p) => p.client(|c| c.alter_group(name, alter)),
            Backend::Embedded(_) => Ok((*self.store()?.alter_group(name, alter)?).clone()),
        }
    }

    pub fn drop_group(&self, name: &str) -> Result<()> {
        match self {
            Backend::Remote(p) => p.with(|c| Ok(c.drop_group(name)?)),
            Backend::Cluster(p) => p.client(|c| c.drop_group(name)),
            Backend::Embedded(_) => Ok(self.store()?.drop_group(name)?),
        }
    }

    pub fn delete(
        &self,
        group: &str,
        key: EntityKey,
        durability: Option<Durability>,
    ) -> Result<bool> {
        match self {
            Backend::Remote(p) => p.with(|c| Ok(c.delete(group, key, durability)?)),
            Backend::Cluster(p) => p.client(|c| c.delete(group, key, durability)),
            Backend::Embedded(_) => Ok(self.store()?.delete(group, &key, durability)?),
        }
    }

    pub fn put(&self, group: &str, row: PutRow, options: PutOptions) -> Result<PutResult> {
        match self {
            Backend::Remote(p) => {
                let options = row.options(options);
                p.with(|c| Ok(c.put(group, row.key, row.event_time_ms, row.values, options)?))
            }
            Backend::Cluster(p) => {
                let options = row.options(options);
                p.client(|c| c.put(group, row.key, row.event_time_ms, row.values, options))
            }
            Backend::Embedded(_) => {
                let values: Vec<(&str, Value)> = row
                    .values
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.clone()))
                    .collect();
                Ok(self.store()?.put(
                    group,
                    &row.key,
                    row.event_time_ms,
                    &values,
                    &row.options(options),
                )?)
            }
        }
    }

    /// Writes rows in order. Over the network they are pipelined ([`PUT_PIPELINE_DEPTH`] in
    /// flight); the first failure stops the write (rows before it are written) and is
    /// returned with the index of its row.
    pub fn put_rows(
        &self,
        group: &str,
        rows: Vec<PutRow>,
        options: PutOptions,
    ) -> std::result::Result<PutTotals, (usize, Failure)> {
        let mut totals = PutTotals::default();
        match self {
            Backend::Remote(p) => {
                let outcome = p.with(|c| Ok(pipelined_puts(c, group, rows, options, &mut totals)));
                match outcome {
                    Ok(Ok(())) => Ok(totals),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err((0, e)),
                }
            }
            Backend::Cluster(p) => p.put_rows(group, rows, options),
            Backend::Embedded(_) => {
                let store = self.store().map_err(|e| (0, e))?;
                for (i, row) in rows.iter().enumerate() {
                    let values: Vec<(&str, Value)> = row
                        .values
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.clone()))
                        .collect();
                    let r = store
                        .put(
                            group,
                            &row.key,
                            row.event_time_ms,
                            &values,
                            &row.options(options),
                        )
                        .map_err(|e| (i, Failure::from(e)))?;
                    totals.add(&r);
                }
                Ok(totals)
            }
        }
    }

    /// The same features for every key, one answer per key in key order. Over the network,
    /// keys beyond the server's batch limit go in further requests, all pipelined.
    pub fn get_many(
        &self,
        keys: Vec<EntityKey>,
        features: Vec<FeatureRef>,
    ) -> Result<Vec<Vec<FeatureValue>>> {
        match self {
            Backend::Remote(p) => {
                let chunk = self.max_batch_keys();
                p.with(|c| pipelined_gets(c, keys, features, chunk))
            }
            Backend::Cluster(p) => p.get_many(keys, features),
            Backend::Embedded(_) => {
                let store = self.store()?;
                let mut out = Vec::with_capacity(keys.len());
                for part in keys.chunks(self.max_batch_keys()) {
                    out.extend(store.get_many(part, &features)?);
                }
                Ok(out)
            }
        }
    }

    /// As-of reads: one answer per (key, time) row.
    pub fn get_as_of(
        &self,
        rows: Vec<(EntityKey, AsOf)>,
        features: Vec<FeatureRef>,
    ) -> Result<Vec<Vec<FeatureValue>>> {
        match self {
            Backend::Remote(p) => {
                let chunk = self.max_batch_keys();
                p.with(|c| {
                    let mut out = Vec::with_capacity(rows.len());
                    for part in rows.chunks(chunk) {
                        for item in c.get_many_as_of(part.to_vec(), features.clone())? {
                            out.push(item?);
                        }
                    }
                    Ok(out)
                })
            }
            Backend::Cluster(p) => p.get_as_of(rows, features),
            Backend::Embedded(_) => {
                let store = self.store()?;
                let mut out = Vec::with_capacity(rows.len());
                for part in rows.chunks(self.max_batch_keys()) {
                    out.extend(store.get_many_as_of(part, &features)?);
                }
                Ok(out)
            }
        }
    }

    /// The point-in-time join of a whole spine: one column of answers per feature, in spine
    /// order. The spine is joined [`TRAINING_STEP_ROWS`] rows at a time through one engine
    /// training set (so an entity's history is read once while the set's cache holds it), or
    /// one remote training set on one connection, or on a cluster each step split by master.
    pub fn training_set(
        &self,
        features: Vec<FeatureRef>,
        mode: TimeMode,
        spine: &Spine,
    ) -> Result<Vec<Vec<FeatureValue>>> {
        let mut out: Vec<Vec<FeatureValue>> = (0..features.len())
            .map(|_| Vec::with_capacity(spine.rows()))
            .collect();
        let mut append = |columns: Vec<Vec<FeatureValue>>| {
            for (column, part) in out.iter_mut().zip(columns) {
                column.extend(part);
            }
        };
        match self {
            Backend::Cluster(p) => p.training_set(&features, mode, spine, &mut append)?,
            Backend::Remote(p) => p.with(|c| {
                let mut set = c.training_set(features, mode)?;
                let groups: Vec<String> = set.groups().map(|(g, _)| g.to_owned()).collect();
                for range in spine.steps() {
                    append(set.join(&spine.batch(&groups, range)?)?.columns);
                }
                Ok(())
            })?,
            Backend::Embedded(_) => {
                let store = self.store()?;
                let set = store.training_set(&features, mode)?;
                let groups: Vec<String> = set.groups().map(|(g, _)| g.to_owned()).collect();
                for range in spine.steps() {
                    append(set.join(&spine.batch(&groups, range)?)?.columns);
                }
            }
        }
        Ok(out)
    }

    pub fn history(
        &self,
        group: &str,
        key: &EntityKey,
        features: &[&str],
        range_ms: (u64, u64),
        known_at_ms: Option<u64>,
    ) -> Result<Vec<quiver_engine::history::HistoryEntry>> {
        match self {
            Backend::Remote(p) => p.with(|c| {
                let names = features.iter().map(|f| f.to_string()).collect();
                let range = quiver_engine::history::HistoryRange {
                    from_ms: range_ms.0,
                    to_ms: range_ms.1,
                    known_at_ms,
                };
                Ok(c.history(group, key.clone(), names, range)?)
            }),
            Backend::Cluster(p) => {
                let names = features.iter().map(|f| f.to_string()).collect();
                let range = quiver_engine::history::HistoryRange {
                    from_ms: range_ms.0,
                    to_ms: range_ms.1,
                    known_at_ms,
                };
                p.history(group, key, names, range)
            }
            Backend::Embedded(_) => Ok(self.store()?.history(
                group,
                key,
                features,
                range_ms.0,
                range_ms.1,
                known_at_ms,
            )?),
        }
    }

    /// Live statistics of `group`'s features (of `feature` only when given), as the JSON of
    /// FEATURE_STATS (docs/PROTOCOL.md).
    pub fn feature_stats_json(&self, group: &str, feature: Option<&str>) -> Result<String> {
        match self {
            Backend::Remote(p) => p.with(|c| Ok(c.feature_stats(group, feature)?)),
            Backend::Cluster(_) => Err(Failure::Unsupported(format!(
                "feature_stats('{group}'): each node of a cluster keeps the statistics of the \
                 writes it applied (as master and as replica), and they do not add up to the \
                 group's; ask one node with quiver.connect(ADDR).feature_stats"
            ))),
            Backend::Embedded(_) => {
                let report = self.store()?.feature_stats(group, feature)?;
                Ok(quiver_server::quality::report_json(&report).to_string())
            }
        }
    }

    /// The server's STATS document, or an embedded store's engine figures, as JSON.
    pub fn stats_json(&self) -> Result<String> {
        match self {
            Backend::Remote(p) => p.with(|c| Ok(c.stats()?)),
            Backend::Cluster(_) => Err(Failure::Unsupported(
                "stats: each node of a cluster has its own STATS; read them per node \
                 (Client.stats() on a cluster client does)"
                    .into(),
            )),
            Backend::Embedded(_) => {
                let s = self.store()?.stats();
                let figures = [
                    ("records", s.records),
                    ("live_bytes", s.live_bytes),
                    ("device_bytes", s.device_bytes),
                    ("used_bytes", s.used_bytes),
                    ("free_bytes", s.free_bytes),
                    ("index_bytes", s.index_bytes),
                    ("puts", s.puts),
                    ("gets", s.gets),
                    ("deletes", s.deletes),
                    ("device_reads", s.device_reads),
                    ("memory_reads", s.memory_reads),
                    ("flushes", s.flushes),
                ];
                let body: Vec<String> = figures
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                Ok(format!("{{\"engine\":{{{}}}}}", body.join(",")))
            }
        }
    }

    pub fn flush(&self) -> Result<()> {
        match self {
            Backend::Remote(_) | Backend::Cluster(_) => Ok(()),
            Backend::Embedded(_) => Ok(self.store()?.flush()?),
        }
    }

    /// Closes an embedded store (flush, checkpoint); idle connections of a pool are closed.
    pub fn close(&self) -> Result<()> {
        match self {
            Backend::Remote(p) => {
                p.idle.lock().clear();
                Ok(())
            }
            Backend::Cluster(p) => {
                p.close();
                Ok(())
            }
            Backend::Embedded(slot) => {
                let Some(store) = slot.write().take() else {
                    return Ok(());
                };
                match Arc::try_unwrap(store) {
                    Ok(store) => Ok(store.close()?),
                    // Another thread is inside a call: it keeps the store until it returns,
                    // and the last reference closes it when dropped.
                    Err(shared) => Ok(shared.flush()?),
                }
            }
        }
    }
}

fn pipelined_puts(
    c: &mut Client,
    group: &str,
    rows: Vec<PutRow>,
    options: PutOptions,
    totals: &mut PutTotals,
) -> std::result::Result<(), (usize, Failure)> {
    let mut in_flight: VecDeque<(usize, u64)> = VecDeque::with_capacity(PUT_PIPELINE_DEPTH);
    let mut first_error: Option<(usize, Failure)> = None;
    for (i, row) in rows.into_iter().enumerate() {
        if in_flight.len() >= PUT_PIPELINE_DEPTH {
            let oldest = in_flight.pop_front().expect("non-empty");
            settle_put(c, oldest, totals, &mut first_error);
        }
        if first_error.is_some() {
            break;
        }
        let request = Request::Put {
            group: group.to_owned(),
            options: row.options(options),
            key: row.key,
            event_time_ms: row.event_time_ms,
            values: row.values,
        };
        match c.send(&request) {
            Ok(id) => in_flight.push_back((i, id)),
            Err(e) => {
                first_error = Some((i, e.into()));
                break;
            }
        }
    }
    while let Some(next) = in_flight.pop_front() {
        settle_put(c, next, totals, &mut first_error);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Waits for one pipelined put and records its outcome (only the first error is kept).
fn settle_put(
    c: &mut Client,
    (row, id): (usize, u64),
    totals: &mut PutTotals,
    first_error: &mut Option<(usize, Failure)>,
) {
    match c.wait(id).map_err(Failure::from).and_then(expect_put) {
        Ok(r) => totals.add(&r),
        Err(e) => {
            first_error.get_or_insert((row, e));
        }
    }
}

fn pipelined_gets(
    c: &mut Client,
    keys: Vec<EntityKey>,
    features: Vec<FeatureRef>,
    chunk: usize,
) -> Result<Vec<Vec<FeatureValue>>> {
    let total = keys.len();
    let mut ids = Vec::with_capacity(total.div_ceil(chunk.max(1)));
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let part: Vec<EntityKey> = keys.by_ref().take(chunk).collect();
        ids.push(c.send(&Request::GetMany {
            keys: part,
            features: features.clone(),
        })?);
    }
    let mut out = Vec::with_capacity(total);
    let mut first_error = None;
    for id in ids {
        match c.wait(id) {
            Ok(Response::GetMany(items)) => {
                for item in items {
                    match item {
                        Ok(values) => out.push(values),
                        Err((status, message)) => {
                            first_error.get_or_insert(Failure::Status { status, message });
                        }
                    }
                }
            }
            Ok(other) => {
                first_error.get_or_insert(Failure::Protocol(format!(
                    "unexpected response to GET_MANY: {other:?}"
                )));
            }
            Err(e) => {
                first_error.get_or_insert(e.into());
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Group schemas by name, as last seen, to convert Python values to the features' types.
#[derive(Default)]
pub struct SchemaCache {
    groups: Mutex<HashMap<String, Arc<GroupSchema>>>,
}

impl SchemaCache {
    /// The cached schema, or a fresh one when `refresh` or not cached.
    pub fn get(&self, backend: &Backend, group: &str, refresh: bool) -> Result<Arc<GroupSchema>> {
        if !refresh {
            if let Some(s) = self.groups.lock().get(group) {
                return Ok(s.clone());
            }
        }
        let schema = Arc::new(backend.describe_group(group)?);
        self.groups.lock().insert(group.to_owned(), schema.clone());
        Ok(schema)
    }

    pub fn remember(&self, schema: &GroupSchema) {
        self.groups
            .lock()
            .insert(schema.name.clone(), Arc::new(schema.clone()));
    }

    pub fn forget(&self, group: &str) {
        self.groups.lock().remove(group);
    }
}
