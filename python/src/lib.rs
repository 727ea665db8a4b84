//! `quiver._native`: the extension module under the Python package `quiver`.
//!
//! One class, [`Handle`], over either a pool of connections to `quiverd` (the Rust client, so
//! the wire protocol lives in one place) or a store embedded in the process. Every call that
//! touches the network or the device releases the GIL; a handle may be shared by threads. The
//! Python layer (`quiver/`) turns DataFrames and Arrow tables into the column buffers this
//! module reads, and its answers into dicts, Arrow tables and DataFrames. This module must
//! never hold the GIL during I/O, and never panic on what Python hands it.

mod backend;
mod cluster;
mod columns;
mod convert;
mod error;
mod feast;
mod read;

use std::sync::Arc;
use std::time::Duration;

use numpy::PyReadonlyArray1;
use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use quiver_engine::feature::{
    EntityKey, FeatureError, FeatureRef, FeatureType, GroupSchema, PutOptions, WriteMode,
};
use quiver_engine::history::AsOf;
use quiver_engine::training::TimeMode;
use quiver_engine::{Config, Durability, Store};
use quiver_server::client::ClientConfig;

use backend::{Backend, Pool, PutTotals, SchemaCache};
use cluster::ClusterPool;
use columns::{Batch, Column, Keys};
use error::Failure;

/// Rows built and sent per step of a bulk write (bounds the memory a write holds at once).
const BULK_STEP_ROWS: usize = 4096;

fn durability(text: Option<&str>) -> Result<Option<Durability>, Failure> {
    match text {
        None => Ok(None),
        Some("sync") => Ok(Some(Durability::Sync)),
        Some("buffered") => Ok(Some(Durability::Buffered)),
        Some(other) => Err(Failure::invalid(format!(
            "durability '{other}' is not 'sync' or 'buffered'"
        ))),
    }
}

fn write_mode(text: &str) -> Result<WriteMode, Failure> {
    Ok(match text {
        "merge" => WriteMode::Merge,
        "replace_row" => WriteMode::ReplaceRow,
        "create_only" => WriteMode::CreateOnly,
        "update_only" => WriteMode::UpdateOnly,
        other => {
            return Err(Failure::invalid(format!(
                "write mode '{other}' is not one of merge, replace_row, create_only, update_only"
            )))
        }
    })
}

fn put_options(
    mode: &str,
    sync: Option<&str>,
    ttl_s: Option<u32>,
    expected_generation: Option<u16>,
    write_time_ms: Option<u64>,
) -> Result<PutOptions, Failure> {
    Ok(PutOptions {
        mode: write_mode(mode)?,
        expected_generation,
        ttl_s,
        durability: durability(sync)?,
        write_time_ms,
    })
}

fn time_mode(text: &str) -> Result<TimeMode, Failure> {
    Ok(match text {
        "event" => TimeMode::EventTime,
        "as-served" => TimeMode::AsServed,
        "known-at" => TimeMode::KnownAt,
        other => {
            return Err(Failure::invalid(format!(
                "training-set mode '{other}' is not one of event, as-served, known-at"
            )))
        }
    })
}

/// Unix ms from a spine's time column; a negative time (before 1970) names its row.
fn spine_times(times: &PyReadonlyArray1<'_, i64>, column: &str) -> Result<Vec<u64>, Failure> {
    times
        .as_array()
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            u64::try_from(t).map_err(|_| {
                Failure::invalid(format!(
                    "spine row {}: column '{column}' holds {t} ms, before 1970",
                    i + 1
                ))
            })
        })
        .collect()
}

/// The Rust client's settings from the Python arguments (seconds).
fn client_config(
    token: Option<String>,
    timeout_s: Option<f64>,
    connect_timeout_s: f64,
) -> Result<ClientConfig, Failure> {
    let secs = |s: f64, what: &str| {
        if s.is_finite() && s > 0.0 {
            Ok(Duration::from_secs_f64(s))
        } else {
            Err(Failure::invalid(format!(
                "{what} must be a positive number of seconds, got {s}"
            )))
        }
    };
    Ok(ClientConfig {
        auth_token: token.map(String::into_bytes),
        connect_timeout: secs(connect_timeout_s, "connect_timeout")?,
        io_timeout: timeout_s.map(|t| secs(t, "timeout")).transpose()?,
        ..ClientConfig::default()
    })
}

fn keys_from(obj: &Bound<'_, PyAny>) -> PyResult<Vec<EntityKey>> {
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'_, i64>>() {
        return Ok(a.as_array().iter().map(|&k| EntityKey::I64(k)).collect());
    }
    obj.try_iter()?.map(|k| convert::entity_key(&k?)).collect()
}

/// Names the failing row of a bulk write. On a cluster the nodes are written in parallel, so
/// rows after it that other nodes master may be written too.
fn at_row(row: usize, f: Failure, cluster: bool) -> Failure {
    let written = if cluster {
        "rows before it were written; on a cluster, rows after it mastered by other nodes may be too"
    } else {
        "rows before it were written"
    };
    let prefix = |m: String| format!("row {row}: {m} ({written})");
    match f {
        Failure::Status { status, message } => Failure::Status {
            status,
            message: prefix(message),
        },
        Failure::Connection(m) => Failure::Connection(prefix(m)),
        Failure::Timeout(m) => Failure::Timeout(prefix(m)),
        Failure::Protocol(m) => Failure::Protocol(prefix(m)),
        Failure::Unsupported(m) => Failure::Unsupported(prefix(m)),
    }
}

/// A connection pool to `quiverd` or an embedded store. Shared by threads.
#[pyclass(module = "quiver._native", frozen)]
struct Handle {
    backend: Backend,
    schemas: SchemaCache,
}

impl Handle {
    fn schema(&self, group: &str, refresh: bool) -> Result<Arc<GroupSchema>, Failure> {
        self.schemas.get(&self.backend, group, refresh)
    }

    /// The type of each reference, from the cached schemas (refreshed once for a feature the
    /// cache does not know: it may have been added since).
    fn types(&self, refs: &[FeatureRef]) -> Result<Vec<FeatureType>, Failure> {
        refs.iter()
            .map(|r| {
                let find = |s: Arc<GroupSchema>| {
                    s.features
                        .iter()
                        .find(|f| f.name == r.feature)
                        .map(|f| f.ty)
                };
                if let Some(ty) = find(self.schema(&r.group, false)?) {
                    return Ok(ty);
                }
                find(self.schema(&r.group, true)?).ok_or_else(|| {
                    Failure::from(FeatureError::UnknownFeature {
                        group: r.group.clone(),
                        feature: r.feature.clone(),
                    })
                })
            })
            .collect()
    }

    fn schema_result(&self, py: Python<'_>, s: GroupSchema) -> PyResult<Py<PyDict>> {
        self.schemas.remember(&s);
        Ok(convert::schema_dict(py, &s)?.unbind())
    }
}

#[pymethods]
impl Handle {
    /// Connects to `quiverd` at `addr` ("host:port") and performs the handshake.
    #[staticmethod]
    #[pyo3(signature = (addr, token=None, timeout_s=Some(30.0), connect_timeout_s=5.0))]
    fn connect(
        py: Python<'_>,
        addr: String,
        token: Option<String>,
        timeout_s: Option<f64>,
        connect_timeout_s: f64,
    ) -> PyResult<Handle> {
        let config = client_config(token, timeout_s, connect_timeout_s)?;
        let pool = py.detach(|| Pool::connect(&addr, config))?;
        Ok(Handle {
            backend: Backend::Remote(pool),
            schemas: SchemaCache::default(),
        })
    }

    /// Connects to a cluster through any of `seeds` ("host:port" of its nodes): learns the
    /// partition map; every keyed request then goes to its key's master, retried after a map
    /// refresh (NOT_MASTER, UNAVAILABLE, a lost connection) for up to `retry_deadline_s`.
    #[staticmethod]
    #[pyo3(signature = (seeds, token=None, timeout_s=Some(30.0), connect_timeout_s=5.0, retry_deadline_s=20.0, replica_reads=false))]
    fn connect_cluster(
        py: Python<'_>,
        seeds: Vec<String>,
        token: Option<String>,
        timeout_s: Option<f64>,
        connect_timeout_s: f64,
        retry_deadline_s: f64,
        replica_reads: bool,
    ) -> PyResult<Handle> {
        let config = client_config(token, timeout_s, connect_timeout_s)?;
        if !(retry_deadline_s.is_finite() && retry_deadline_s >= 0.0) {
            return Err(Failure::invalid(format!(
                "retry_deadline must be 0 or more seconds, got {retry_deadline_s}"
            ))
            .into());
        }
        let deadline = Duration::from_secs_f64(retry_deadline_s);
        let pool = py.detach(|| ClusterPool::connect(seeds, config, deadline, replica_reads))?;
        Ok(Handle {
            backend: Backend::Cluster(pool),
            schemas: SchemaCache::default(),
        })
    }

    /// Opens (or creates, at `size` bytes) an embedded store in a file, or in memory when
    /// `path` is None.
    #[staticmethod]
    #[pyo3(signature = (path, size_bytes, durability=None))]
    fn open(
        py: Python<'_>,
        path: Option<String>,
        size_bytes: u64,
        durability: Option<&str>,
    ) -> PyResult<Handle> {
        let mut config = match &path {
            Some(p) => Config::file(p, size_bytes),
            None => Config::memory(size_bytes),
        };
        if let Some(d) = crate::durability(durability)? {
            config.durability = d;
        }
        if let Some(parent) = path
            .as_deref()
            .map(std::path::Path::new)
            .and_then(|p| p.parent())
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                Failure::invalid(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let store = py.detach(|| Store::open(config)).map_err(Failure::from)?;
        Ok(Handle {
            backend: Backend::Embedded(RwLock::new(Some(Arc::new(store)))),
            schemas: SchemaCache::default(),
        })
    }

    fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::Remote(_) | Backend::Cluster(_))
    }

    fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    /// A cluster's partition map, fetched again: `{version, replication_factor, node_id
    /// (the answering node), nodes: [(id, address)], masters: [node per partition],
    /// replicas: [[nodes] per partition]}`; `version` 0 and no partitions before the first
    /// map. None for a single server or an embedded store.
    fn cluster_map<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Backend::Cluster(pool) = &self.backend else {
            return Ok(None);
        };
        let info = py.detach(|| pool.map())?;
        let d = PyDict::new(py);
        let map = info.map.as_ref();
        d.set_item("version", map.map_or(0, |m| m.version))?;
        d.set_item(
            "replication_factor",
            map.map_or(0, |m| m.replication_factor),
        )?;
        d.set_item("node_id", info.node_id)?;
        let nodes: Vec<(u32, String)> = info
            .nodes
            .iter()
            .map(|n| (n.id, n.address.clone()))
            .collect();
        d.set_item("nodes", nodes)?;
        let partitions = map.map_or(&[][..], |m| &m.partitions[..]);
        let masters: Vec<u32> = partitions.iter().map(|p| p.master).collect();
        let replicas: Vec<Vec<u32>> = partitions.iter().map(|p| p.replicas.clone()).collect();
        d.set_item("masters", masters)?;
        d.set_item("replicas", replicas)?;
        Ok(Some(d))
    }

    /// The node that masters `key` in the client's map (cluster only).
    fn master_of(&self, py: Python<'_>, key: Bound<'_, PyAny>) -> PyResult<u32> {
        let Backend::Cluster(pool) = &self.backend else {
            return Err(Failure::Unsupported(
                "master_of: only a cluster client (quiver.connect_cluster) has masters".into(),
            )
            .into());
        };
        let key = convert::entity_key(&key)?;
        Ok(py.detach(|| pool.master_of(&key))?)
    }

    /// Each node's STATS document: `(node, address, json or None, error or None)`.
    #[allow(clippy::type_complexity)]
    fn node_stats(
        &self,
        py: Python<'_>,
    ) -> PyResult<Vec<(u32, String, Option<String>, Option<String>)>> {
        let Backend::Cluster(pool) = &self.backend else {
            return Err(Failure::Unsupported(
                "node_stats: only a cluster client (quiver.connect_cluster) has nodes".into(),
            )
            .into());
        };
        let stats = py.detach(|| pool.node_stats())?;
        Ok(stats
            .into_iter()
            .map(|(id, addr, doc)| match doc {
                Ok(json) => (id, addr, Some(json), None),
                Err(e) => (id, addr, None, Some(e)),
            })
            .collect())
    }

    /// The server's handshake (its limits), or None for an embedded store.
    fn server_info<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let i = match &self.backend {
            Backend::Remote(pool) => pool.info(),
            Backend::Cluster(pool) => pool.info(),
            Backend::Embedded(_) => return Ok(None),
        };
        let d = PyDict::new(py);
        d.set_item("version", i.version)?;
        d.set_item("max_frame_bytes", i.max_frame_bytes)?;
        d.set_item("max_batch_keys", i.max_batch_keys)?;
        d.set_item("max_inflight_per_connection", i.max_inflight_per_connection)?;
        d.set_item("max_features_per_request", i.max_features_per_request)?;
        d.set_item("max_scan_chunks", i.max_scan_chunks)?;
        d.set_item("server", &i.server)?;
        Ok(Some(d))
    }

    fn create_group(&self, py: Python<'_>, spec: Bound<'_, PyDict>) -> PyResult<Py<PyDict>> {
        let spec = convert::group_spec(&spec)?;
        let s = py.detach(|| self.backend.create_group(spec))?;
        self.schema_result(py, s)
    }

    fn describe_group(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyDict>> {
        let s = py.detach(|| self.backend.describe_group(name))?;
        self.schema_result(py, s)
    }

    #[pyo3(signature = (tag=None))]
    fn list_groups<'py>(&self, py: Python<'py>, tag: Option<&str>) -> PyResult<Bound<'py, PyList>> {
        let groups = py.detach(|| self.backend.list_groups(tag))?;
        let dicts = groups
            .iter()
            .map(|g| convert::schema_dict(py, g))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, dicts)
    }

    fn alter_group(
        &self,
        py: Python<'_>,
        name: &str,
        kind: &str,
        arg: Bound<'_, PyAny>,
    ) -> PyResult<Py<PyDict>> {
        let alter = convert::alter(kind, &arg)?;
        let s = py.detach(|| self.backend.alter_group(name, alter))?;
        self.schema_result(py, s)
    }

    fn drop_group(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.schemas.forget(name);
        Ok(py.detach(|| self.backend.drop_group(name))?)
    }

    /// Writes one entity; returns `(written, skipped_stale, generation, dropped)`.
    #[pyo3(signature = (group, key, event_time_ms, values, mode="merge", durability=None, ttl_s=None, expected_generation=None, write_time_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        py: Python<'_>,
        group: &str,
        key: Bound<'_, PyAny>,
        event_time_ms: u64,
        values: Bound<'_, PyDict>,
        mode: &str,
        durability: Option<&str>,
        ttl_s: Option<u32>,
        expected_generation: Option<u16>,
        write_time_ms: Option<u64>,
    ) -> PyResult<(u32, u32, u16, u32)> {
        let options = put_options(mode, durability, ttl_s, expected_generation, write_time_ms)?;
        let key = convert::entity_key(&key)?;
        let schema = py.detach(|| self.schema(group, false))?;
        let values = match convert::row_values(&schema, &values) {
            Ok(v) => v,
            Err(_) => {
                // The cached schema may be older than a feature the caller writes.
                let fresh = py.detach(|| self.schema(group, true))?;
                convert::row_values(&fresh, &values)?
            }
        };
        let row = backend::PutRow {
            key,
            event_time_ms,
            values,
            write_time_ms: None,
        };
        let r = py.detach(|| self.backend.put(group, row, options))?;
        Ok((r.written, r.skipped_stale, r.generation, r.dropped))
    }

    /// Writes many entities from column buffers (see `quiver._columns`); returns
    /// `(rows, written, skipped_stale, dropped)`.
    #[pyo3(signature = (group, keys, times_ms, columns, mode="merge", durability=None, ttl_s=None, skip_nulls=false, write_times_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn put_columns(
        &self,
        py: Python<'_>,
        group: &str,
        keys: Bound<'_, PyTuple>,
        times_ms: PyReadonlyArray1<'_, i64>,
        columns: Vec<Bound<'_, PyTuple>>,
        mode: &str,
        durability: Option<&str>,
        ttl_s: Option<u32>,
        skip_nulls: bool,
        write_times_ms: Option<PyReadonlyArray1<'_, i64>>,
    ) -> PyResult<(u64, u64, u64, u64)> {
        let options = put_options(mode, durability, ttl_s, None, None)?;
        let times_ms: Vec<i64> = times_ms.as_array().iter().copied().collect();
        let rows = times_ms.len();
        let write_times_ms: Option<Vec<i64>> =
            write_times_ms.map(|w| w.as_array().iter().copied().collect());
        if let Some(w) = &write_times_ms {
            if w.len() != rows {
                return Err(Failure::invalid(format!(
                    "the write-time column has {} values, the write has {rows} rows",
                    w.len()
                ))
                .into());
            }
        }
        let batch = Batch {
            keys: Keys::from_tuple(&keys, rows)?,
            columns: columns
                .iter()
                .map(|c| Column::from_tuple(c, rows))
                .collect::<PyResult<_>>()?,
            times_ms,
            write_times_ms,
            skip_nulls,
        };
        let cluster = self.is_cluster();
        let totals = py.detach(|| -> Result<PutTotals, Failure> {
            let mut sum = PutTotals::default();
            for from in (0..batch.rows()).step_by(BULK_STEP_ROWS) {
                let to = (from + BULK_STEP_ROWS).min(batch.rows());
                let rows = batch
                    .build(from, to)
                    .map_err(|(i, e)| at_row(i, e, cluster))?;
                let t = self
                    .backend
                    .put_rows(group, rows, options)
                    .map_err(|(i, e)| at_row(from + i, e, cluster))?;
                sum.merge(&t);
            }
            Ok(sum)
        })?;
        Ok((
            totals.rows,
            totals.written,
            totals.skipped_stale,
            totals.dropped,
        ))
    }

    /// Reads `refs` ("group:feature") for every key: one tuple per reference,
    /// `(statuses, event_times_ms, kind, values...)` (see `quiver.results`).
    fn get<'py>(
        &self,
        py: Python<'py>,
        refs: Vec<String>,
        keys: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let keys = keys_from(&keys)?;
        let parsed = convert::feature_refs(&refs)?;
        let cols = py.detach(|| {
            let types = self.types(&parsed)?;
            let rows = self.backend.get_many(keys, parsed)?;
            read::columns(&refs, &types, rows)
        })?;
        read::columns_into_py(py, cols)
    }

    /// Reads `refs` for every key (one request) and writes Feast's
    /// `GetOnlineFeaturesResponse.results` for `views` (see `feast.rs`): each view is
    /// `(encodings, positions)`, `encodings` one `(Value field number, kind)` per feature of
    /// the view (whose references come first in `refs`, in that order, then the view's
    /// timestamp feature), `positions` the index in `keys` of each entity row. Returns the
    /// bytes and, per view, the number of values served.
    fn get_feast<'py>(
        &self,
        py: Python<'py>,
        refs: Vec<String>,
        keys: Bound<'py, PyAny>,
        views: Vec<feast::ViewArg>,
    ) -> PyResult<(Bound<'py, pyo3::types::PyBytes>, Vec<u64>)> {
        let keys = keys_from(&keys)?;
        let parsed = convert::feature_refs(&refs)?;
        let views = views
            .into_iter()
            .map(|(encodings, positions)| {
                let encodings = encodings
                    .iter()
                    .map(|(field, kind)| feast::Encoding::parse(*field, kind))
                    .collect::<Result<Vec<_>, Failure>>()?;
                Ok(feast::View {
                    encodings,
                    positions,
                })
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        feast::check(&views, refs.len(), keys.len())?;
        let (bytes, counts) = py.detach(|| {
            let rows = if keys.is_empty() {
                Vec::new()
            } else {
                self.backend.get_many(keys, parsed)?
            };
            feast::results(&refs, &rows, &views)
        })?;
        Ok((pyo3::types::PyBytes::new(py, &bytes), counts))
    }

    /// As-of reads: row `i` is `keys[i]` as of event time `times_ms[i]` (and, when given,
    /// among the versions written by `known_at_ms[i]`). Same answer shape as `get`.
    #[pyo3(signature = (refs, keys, times_ms, known_at_ms=None))]
    fn get_as_of<'py>(
        &self,
        py: Python<'py>,
        refs: Vec<String>,
        keys: Bound<'py, PyAny>,
        times_ms: Vec<u64>,
        known_at_ms: Option<Vec<u64>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let keys = keys_from(&keys)?;
        if times_ms.len() != keys.len()
            || known_at_ms.as_ref().is_some_and(|k| k.len() != keys.len())
        {
            return Err(Failure::invalid(format!(
                "{} keys need as many times (got {}) and known-at times",
                keys.len(),
                times_ms.len()
            ))
            .into());
        }
        let rows: Vec<(EntityKey, AsOf)> = keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                let at = match &known_at_ms {
                    Some(known) => AsOf::known_at(times_ms[i], known[i]),
                    None => AsOf::event_time(times_ms[i]),
                };
                (k, at)
            })
            .collect();
        let parsed = convert::feature_refs(&refs)?;
        let cols = py.detach(|| {
            let answers = self.backend.get_as_of(rows, parsed.clone())?;
            let types = self.types(&parsed)?;
            read::columns(&refs, &types, answers)
        })?;
        read::columns_into_py(py, cols)
    }

    /// Every version of `features` of one entity with an event time in `from_ms..=to_ms`:
    /// a list of `(feature, event_time_ms, write_time_ms, status, value)`.
    #[pyo3(signature = (group, key, features, from_ms, to_ms, known_at_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn history<'py>(
        &self,
        py: Python<'py>,
        group: &str,
        key: Bound<'py, PyAny>,
        features: Vec<String>,
        from_ms: u64,
        to_ms: u64,
        known_at_ms: Option<u64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = convert::entity_key(&key)?;
        let names: Vec<&str> = features.iter().map(String::as_str).collect();
        let entries = py.detach(|| {
            self.backend
                .history(group, &key, &names, (from_ms, to_ms), known_at_ms)
        })?;
        let items = entries
            .iter()
            .map(|e| {
                let parts = vec![
                    e.feature.clone().into_pyobject(py)?.into_any(),
                    e.event_time_ms.into_pyobject(py)?.into_any(),
                    e.write_time_ms.into_pyobject(py)?.into_any(),
                    (e.status as u8).into_pyobject(py)?.into_any(),
                    convert::value_object(py, &e.value)?,
                ];
                convert::tuple_of(py, parts)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The point-in-time join of a spine: `key_columns` is one `(group, keys, valid)` per
    /// group the features name (`keys` as a bulk write's key column, `valid` a bool array or
    /// None: a row whose key is not valid reads NOT_FOUND); `timestamps_ms` and, in the
    /// known-at mode, `known_at_ms` are Unix ms per row. Same answer shape as `get`, one value
    /// per spine row.
    #[pyo3(signature = (refs, mode, key_columns, timestamps_ms, known_at_ms=None, timestamp_column="timestamp", known_at_column="known_at"))]
    #[allow(clippy::too_many_arguments)]
    fn training_set<'py>(
        &self,
        py: Python<'py>,
        refs: Vec<String>,
        mode: &str,
        key_columns: Vec<(
            String,
            Bound<'py, PyTuple>,
            Option<PyReadonlyArray1<'py, bool>>,
        )>,
        timestamps_ms: PyReadonlyArray1<'py, i64>,
        known_at_ms: Option<PyReadonlyArray1<'py, i64>>,
        timestamp_column: &str,
        known_at_column: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let mode = time_mode(mode)?;
        let parsed = convert::feature_refs(&refs)?;
        let timestamps_ms = spine_times(&timestamps_ms, timestamp_column)?;
        let rows = timestamps_ms.len();
        let known_at_ms = known_at_ms
            .map(|k| spine_times(&k, known_at_column))
            .transpose()?;
        let mut columns: Vec<(String, Keys, Option<Vec<bool>>)> = Vec::new();
        for (group, keys, valid) in key_columns {
            let keys = Keys::from_tuple(&keys, rows)?;
            let valid: Option<Vec<bool>> = valid.map(|v| v.as_array().iter().copied().collect());
            if valid.as_ref().is_some_and(|v| v.len() != rows) {
                return Err(Failure::invalid(format!(
                    "the key column of group '{group}' has a validity mask of another length than its {rows} rows"
                ))
                .into());
            }
            columns.push((group, keys, valid));
        }
        let cols = py.detach(|| {
            let mut keys = Vec::with_capacity(columns.len());
            for (group, column, valid) in columns {
                let column = (0..rows)
                    .map(|i| match &valid {
                        Some(v) if !v[i] => Ok(None),
                        _ => column.key(i).map(Some),
                    })
                    .collect::<Result<Vec<_>, Failure>>()?;
                keys.push((group, column));
            }
            let spine = backend::Spine {
                timestamps_ms,
                keys,
                known_at_ms,
            };
            let types = self.types(&parsed)?;
            let answers = self.backend.training_set(parsed, mode, &spine)?;
            read::feature_columns(&refs, &types, answers)
        })?;
        read::columns_into_py(py, cols)
    }

    #[pyo3(signature = (group, key, durability=None))]
    fn delete(
        &self,
        py: Python<'_>,
        group: &str,
        key: Bound<'_, PyAny>,
        durability: Option<&str>,
    ) -> PyResult<bool> {
        let key = convert::entity_key(&key)?;
        let d = crate::durability(durability)?;
        Ok(py.detach(|| self.backend.delete(group, key, d))?)
    }

    #[pyo3(signature = (group, feature=None))]
    fn feature_stats_json(
        &self,
        py: Python<'_>,
        group: &str,
        feature: Option<&str>,
    ) -> PyResult<String> {
        Ok(py.detach(|| self.backend.feature_stats_json(group, feature))?)
    }

    fn stats_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(py.detach(|| self.backend.stats_json())?)
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.detach(|| self.backend.flush())?)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.detach(|| self.backend.close())?)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Handle>()?;
    m.add_function(wrap_pyfunction!(error::status_codes, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
