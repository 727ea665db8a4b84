//! `POST /get-online-features`: Feast's feature-server read, answered from the store.
//!
//! In: `{"features": ["view:feature", ...], "entities": {"join_key": [v, ...], ...},
//! "full_feature_names": false, "project": null}`. Out: `{"metadata": {"feature_names":
//! [...]}, "results": [{"values": [...], "statuses": [...], "event_timestamps": [...]}, ...]}`
//! with the entity columns first (as sent), then one column per feature, as Feast's feature
//! server answers.

use super::request::{parse, Columns};
use super::resolve::{target, Target};
use super::values::{write_json, write_timestamp, write_value};
use super::ApiError;
use crate::config::Limits;
use quiver_engine::feature::{FeatureRef, FeatureValue, Status, Value};
use quiver_engine::Store;
use serde::Deserialize;

#[derive(Deserialize)]
struct OnlineRequest {
    #[serde(default)]
    features: Vec<String>,
    entities: Columns,
    #[serde(default)]
    full_feature_names: bool,
    #[serde(default)]
    feature_service: Option<String>,
    /// Which Feast project's views the references name (needed only when several projects
    /// have a view of that name).
    #[serde(default)]
    project: Option<String>,
}

/// The features read from one group.
struct Source {
    target: Target,
    refs: Vec<FeatureRef>,
    /// Index in `refs` of the view's event-timestamp feature.
    ts: Option<usize>,
}

/// One feature column of the answer.
struct Column {
    name: String,
    source: usize,
    index: usize,
    proto: bool,
}

/// Feast's name of a feature status.
pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Present => "PRESENT",
        Status::Null => "NULL_VALUE",
        Status::NotFound => "NOT_FOUND",
        Status::Expired => "OUTSIDE_MAX_AGE",
        // Feast has no status for a damaged row: INVALID is the one it keeps for a value
        // that cannot be served.
        Status::Corrupt => "INVALID",
    }
}

/// A group the caller may not read refuses the whole request, before any of its features is
/// looked up.
pub type MayRead<'a> = dyn FnMut(&str) -> Result<(), ApiError> + 'a;

fn plan(
    store: &Store,
    req: &OnlineRequest,
    limits: &Limits,
    may_read: &mut MayRead,
) -> Result<(Vec<Source>, Vec<Column>), ApiError> {
    if req.feature_service.is_some() && req.features.is_empty() {
        return Err(ApiError::invalid(
            "feature services live in Feast's registry, which quiverd does not read: name the \
             features (\"features\": [\"view:feature\", ...])",
        ));
    }
    if req.features.is_empty() {
        return Err(ApiError::invalid(
            "\"features\" is empty: name at least one \"view:feature\"",
        ));
    }
    let max = limits.max_features_per_request as usize;
    if req.features.len() > max {
        return Err(ApiError::limit(format!(
            "{} features requested, over the max_features_per_request limit of {max}",
            req.features.len()
        )));
    }
    let mut sources: Vec<Source> = Vec::new();
    let mut columns = Vec::with_capacity(req.features.len());
    for text in &req.features {
        let Some((view, feature)) = text
            .split_once(':')
            .filter(|(v, f)| !v.is_empty() && !f.is_empty())
        else {
            return Err(ApiError::invalid(format!(
                "feature reference '{text}' is not \"view:feature\""
            )));
        };
        let source = match sources.iter().position(|s| s.target.name() == view) {
            Some(i) => i,
            None => {
                let t = target(store, view, req.project.as_deref())?;
                may_read(&t.schema.name)?;
                let ts = t
                    .ts_feature()
                    .map(|f| FeatureRef::new(&t.schema.name, &f.name));
                let (refs, ts) = match ts {
                    Some(r) => (vec![r], Some(0)),
                    None => (Vec::new(), None),
                };
                sources.push(Source {
                    target: t,
                    refs,
                    ts,
                });
                sources.len() - 1
            }
        };
        let s = &mut sources[source];
        let f = s.target.feature(feature)?;
        let proto = s.target.is_proto(f);
        s.refs.push(FeatureRef::new(&s.target.schema.name, &f.name));
        let name = match req.full_feature_names {
            true => format!("{view}__{feature}"),
            false => feature.to_owned(),
        };
        columns.push(Column {
            name,
            source,
            index: s.refs.len() - 1,
            proto,
        });
    }
    Ok((sources, columns))
}

/// Answers one request body with the JSON body of the answer.
pub fn get_online_features(
    store: &Store,
    limits: &Limits,
    body: &[u8],
    may_read: &mut MayRead,
) -> Result<Vec<u8>, ApiError> {
    let req: OnlineRequest = parse("/get-online-features", body)?;
    let n = req.entities.rows("entities", limits.max_batch_keys)?;
    let (sources, columns) = plan(store, &req, limits, may_read)?;
    let mut rows = Vec::with_capacity(sources.len());
    for s in &sources {
        let keys = s.target.keys(&req.entities, n, "entities")?;
        let got = store
            .get_many(&keys, &s.refs)
            .map_err(|e| ApiError::from_engine(&e))?;
        rows.push(got);
    }
    let out = encode(&req, &sources, &columns, &rows);
    let max = limits.max_frame_bytes as usize;
    if out.len() > max {
        return Err(ApiError::limit(format!(
            "the answer of {} bytes exceeds the max_frame_bytes limit of {max}; ask for fewer \
             entities or features",
            out.len()
        )));
    }
    Ok(out)
}

fn encode(
    req: &OnlineRequest,
    sources: &[Source],
    columns: &[Column],
    rows: &[Vec<Vec<FeatureValue>>],
) -> Vec<u8> {
    let n = req.entities.0[0].1.len();
    let mut out = Vec::with_capacity(256 + n * columns.len() * 48);
    out.extend_from_slice(b"{\"metadata\":{\"feature_names\":");
    let names: Vec<&str> = req
        .entities
        .0
        .iter()
        .map(|(name, _)| name.as_str())
        .chain(columns.iter().map(|c| c.name.as_str()))
        .collect();
    write_json(&mut out, &names);
    out.extend_from_slice(b"},\"results\":[");
    for (i, (_, values)) in req.entities.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        entity_column(&mut out, values);
    }
    for c in columns {
        out.push(b',');
        feature_column(&mut out, &sources[c.source], c, &rows[c.source]);
    }
    out.extend_from_slice(b"]}");
    out
}

/// An entity column: the values as sent, PRESENT, at time 0 (as Feast answers them).
fn entity_column(out: &mut Vec<u8>, values: &[serde_json::Value]) {
    out.extend_from_slice(b"{\"values\":");
    write_json(out, values);
    out.extend_from_slice(b",\"statuses\":[");
    repeat(out, b"\"PRESENT\"", values.len());
    out.extend_from_slice(b"],\"event_timestamps\":[");
    repeat(out, b"\"1970-01-01T00:00:00Z\"", values.len());
    out.extend_from_slice(b"]}");
}

fn repeat(out: &mut Vec<u8>, item: &[u8], n: usize) {
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
}

fn feature_column(out: &mut Vec<u8>, source: &Source, c: &Column, rows: &[Vec<FeatureValue>]) {
    out.extend_from_slice(b"{\"values\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let v = &row[c.index];
        match (&v.value, c.proto) {
            (Value::Bytes(b), true) if v.status == Status::Present => {
                super::feast::write_value_proto(out, b)
            }
            (value, _) if v.status == Status::Present => write_value(out, value),
            _ => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b"],\"statuses\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(status_name(row[c.index].status).as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"],\"event_timestamps\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_timestamp(out, event_micros(source, c, row));
    }
    out.extend_from_slice(b"]}");
}

/// A value's event time in microseconds: the row's exact Feast timestamp when the view keeps
/// one, else the value's millisecond event time; 0 for a value not found.
fn event_micros(source: &Source, c: &Column, row: &[FeatureValue]) -> i64 {
    let v = &row[c.index];
    if matches!(v.status, Status::NotFound | Status::Corrupt) {
        return 0;
    }
    if let Some(ts) = source.ts.map(|i| &row[i]) {
        if let (Status::Present, Value::I64(us)) = (ts.status, &ts.value) {
            return *us;
        }
    }
    i64::try_from(v.event_time_ms).unwrap_or(i64::MAX / 1000) * 1000
}
