//! `POST /write-to-online-store`: rows of one feature view (or group) written with their
//! event times, in the shape of Feast's feature server (`feature_view_name` and a columnar
//! `df`), plus Quiver's put options.

use super::feast::TS_FEATURE;
use super::request::{parse, Columns};
use super::resolve::target;
use super::values::{parse_timestamp, parse_value};
use super::ApiError;
use crate::config::Limits;
use crate::protocol::StatusCode;
use quiver_engine::feature::{EntityKey, PutOptions, Value, WriteMode};
use quiver_engine::{Durability, Store};
use serde::Deserialize;

#[derive(Deserialize)]
struct WriteRequest {
    feature_view_name: String,
    df: Columns,
    #[serde(default)]
    project: Option<String>,
    /// The column of event times (RFC 3339 strings or Unix milliseconds).
    #[serde(default = "default_ts_column")]
    event_timestamp_column: String,
    /// merge (default), replace_row, create_only or update_only.
    #[serde(default)]
    mode: Option<String>,
    /// true: acknowledged once durable; false: from memory; absent: the server's default.
    #[serde(default)]
    sync: Option<bool>,
    /// The rows' time to live in seconds (default: the group's TTL).
    #[serde(default)]
    ttl_s: Option<u32>,
}

fn default_ts_column() -> String {
    "event_timestamp".into()
}

/// A group the caller may not write refuses the request before any row is read.
pub type MayWrite<'a> = dyn FnMut(&str) -> Result<(), ApiError> + 'a;

/// One row ready to put.
struct Row {
    key: EntityKey,
    event_ms: u64,
    values: Vec<(String, Value)>,
}

fn options(req: &WriteRequest) -> Result<PutOptions, ApiError> {
    let mode = match req.mode.as_deref() {
        None | Some("merge") => WriteMode::Merge,
        Some("replace_row") => WriteMode::ReplaceRow,
        Some("create_only") => WriteMode::CreateOnly,
        Some("update_only") => WriteMode::UpdateOnly,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "mode '{other}' is not merge, replace_row, create_only or update_only"
            )))
        }
    };
    Ok(PutOptions {
        mode,
        ttl_s: req.ttl_s,
        durability: req.sync.map(|s| {
            if s {
                Durability::Sync
            } else {
                Durability::Buffered
            }
        }),
        ..PutOptions::default()
    })
}

fn rows(
    store: &Store,
    req: &WriteRequest,
    limits: &Limits,
    may_write: &mut MayWrite,
) -> Result<(String, Vec<Row>), ApiError> {
    let n = req.df.rows("df", limits.max_batch_keys)?;
    let t = target(store, &req.feature_view_name, req.project.as_deref())?;
    may_write(&t.schema.name)?;
    let keys = t.keys(&req.df, n, "df")?;
    let ts_column = req.df.get(&req.event_timestamp_column).ok_or_else(|| {
        ApiError::invalid(format!(
            "df has no event time column '{}' (set \"event_timestamp_column\")",
            req.event_timestamp_column
        ))
    })?;
    let key_columns: Vec<&str> = match &t.feast {
        Some(v) => v
            .join_keys
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect(),
        None if req.df.get("key").is_none() => {
            return Err(ApiError::invalid(format!(
                "df has no column 'key' for the entity keys of group '{}'",
                t.schema.name
            )))
        }
        None => vec!["key"],
    };
    let mut features = Vec::new();
    for (i, (name, _)) in req.df.0.iter().enumerate() {
        if i == ts_column || key_columns.contains(&name.as_str()) {
            continue;
        }
        let f = t.feature(name)?;
        if t.is_proto(f) {
            return Err(ApiError::invalid(format!(
                "feature '{name}' holds serialized Feast values: write it through Feast"
            )));
        }
        features.push((i, f.name.clone(), f.ty));
    }
    let max = limits.max_features_per_request as usize;
    if features.len() > max {
        return Err(ApiError::limit(format!(
            "{} feature columns, over the max_features_per_request limit of {max}",
            features.len()
        )));
    }
    let ts_feature = t.ts_feature().map(|f| f.name.clone());
    let mut out = Vec::with_capacity(n);
    for (row, key) in keys.into_iter().enumerate() {
        let ts_json = &req.df.0[ts_column].1[row];
        let micros = parse_timestamp(ts_json)
            .ok()
            .filter(|us| *us >= 0)
            .ok_or_else(|| ApiError::invalid(format!("row {row}: event time {ts_json} is not a time at or after 1970 (an RFC 3339 string or Unix milliseconds)")))?;
        let mut values = Vec::with_capacity(features.len() + 1);
        for (column, name, ty) in &features {
            let v = parse_value(*ty, &req.df.0[*column].1[row]).map_err(|e| {
                ApiError::new(
                    StatusCode::TypeMismatch,
                    format!("row {row}, feature '{name}': {e}"),
                )
            })?;
            values.push((name.clone(), v));
        }
        if let Some(ts) = &ts_feature {
            debug_assert_eq!(ts, TS_FEATURE);
            values.push((ts.clone(), Value::I64(micros)));
        }
        out.push(Row {
            key,
            event_ms: (micros / 1000) as u64,
            values,
        });
    }
    Ok((t.schema.name.clone(), out))
}

/// Writes the rows; answers `{"rows": N, "written": W, "skipped_stale": S, "dropped": D}` (values stored,
/// and values not stored because the stored one is newer).
pub fn write_to_online_store(
    store: &Store,
    limits: &Limits,
    body: &[u8],
    may_write: &mut MayWrite,
) -> Result<Vec<u8>, ApiError> {
    let req: WriteRequest = parse("/write-to-online-store", body)?;
    let opts = options(&req)?;
    let (group, rows) = rows(store, &req, limits, may_write)?;
    let (mut written, mut stale, mut dropped) = (0u64, 0u64, 0u64);
    for (i, row) in rows.iter().enumerate() {
        let values: Vec<(&str, Value)> = row
            .values
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        match store.put(&group, &row.key, row.event_ms, &values, &opts) {
            Ok(r) => {
                written += u64::from(r.written);
                stale += u64::from(r.skipped_stale);
                dropped += u64::from(r.dropped);
            }
            Err(e) => {
                let mut err = ApiError::from_engine(&e);
                err.message = format!(
                    "row {i} (after {i} of {} rows were written): {}",
                    rows.len(),
                    err.message
                );
                return Err(err);
            }
        }
    }
    let body = serde_json::json!({"rows": rows.len(), "written": written, "skipped_stale": stale, "dropped": dropped});
    Ok(serde_json::to_vec(&body).expect("JSON of numbers"))
}
