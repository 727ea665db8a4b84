//! TRAINING_SET on an engine thread: the point-in-time join of one request's spine rows,
//! answered as a stream of frames, each a run of consecutive rows within `max_frame_bytes`.
//!
//! Memory stays bounded whatever the spine: a request holds at most `max_batch_keys` rows
//! (checked at dispatch), it is joined [`SLICE_ROWS`] rows at a time, and its frames together
//! may not pass `max_output_bytes_per_connection`. A client streams a larger spine as a
//! pipeline of requests, which the engine threads serve side by side; so one request's join
//! runs on its engine thread alone (no threads of its own).

use super::status_map::engine_error;
use crate::protocol::{
    feature_value_len, put_training_chunk, StatusCode, TrainingSetRequest,
    TRAINING_CHUNK_HEAD_BYTES,
};
use quiver_engine::feature::{EntityKey, FeatureValue};
use quiver_engine::training::SpineBatch;
use quiver_engine::Store;

/// Spine rows joined per engine call: the answers of one slice are in memory at once.
pub const SLICE_ROWS: usize = 4096;

type Refusal = (StatusCode, String);

/// The request's key columns must name each group of its features exactly once.
pub fn check_request(r: &TrainingSetRequest, max_rows: u32) -> Option<String> {
    if r.rows() == 0 {
        return Some(format!(
            "TRAINING_SET with 0 rows: a request needs 1..={max_rows} spine rows (max_batch_keys)"
        ));
    }
    if r.features.is_empty() {
        return Some("TRAINING_SET with 0 features: name 1 or more group:feature".to_string());
    }
    let mut groups: Vec<&str> = Vec::new();
    for f in &r.features {
        if !groups.contains(&f.group.as_str()) {
            groups.push(&f.group);
        }
    }
    for (i, (group, _)) in r.key_columns.iter().enumerate() {
        if !groups.contains(&group.as_str()) {
            return Some(format!(
                "TRAINING_SET key column for group '{group}', but no feature is from that group"
            ));
        }
        if r.key_columns[..i].iter().any(|(g, _)| g == group) {
            return Some(format!(
                "TRAINING_SET has two key columns for group '{group}'"
            ));
        }
    }
    groups
        .iter()
        .find(|g| !r.key_columns.iter().any(|(c, _)| c == *g))
        .map(|g| format!("TRAINING_SET has no key column for group '{g}', whose features it names"))
}

/// Joins `r` slice by slice and hands each response frame's body to `emit`, with whether more
/// frames follow. An error after some frames ends the stream (the caller sends it as the
/// last frame).
pub fn run(
    store: &Store,
    r: TrainingSetRequest,
    max_body: usize,
    max_response_bytes: u64,
    mut emit: impl FnMut(&[u8], bool),
) -> Result<(), Refusal> {
    let set = store
        .training_set(&r.features, r.mode)
        .map_err(|e| engine_error(&e))?
        .threads(1);
    let mut by_group = r.key_columns;
    let mut keys: Vec<Vec<Option<EntityKey>>> = Vec::new();
    for (group, _) in set.groups() {
        let i = by_group
            .iter()
            .position(|(g, _)| g == group)
            .ok_or_else(|| {
                let msg = format!("TRAINING_SET has no key column for group '{group}'");
                (StatusCode::InvalidArgument, msg)
            })?;
        keys.push(by_group.swap_remove(i).1);
    }
    let rows = r.timestamps_ms.len();
    let mut sent = 0u64;
    let mut body = Vec::new();
    for start in (0..rows).step_by(SLICE_ROWS) {
        let end = (start + SLICE_ROWS).min(rows);
        let batch = SpineBatch {
            first_row: r.first_row + start as u64,
            timestamps_ms: r.timestamps_ms[start..end].to_vec(),
            keys: keys.iter().map(|k| k[start..end].to_vec()).collect(),
            known_at_ms: r.known_at_ms.as_ref().map(|k| k[start..end].to_vec()),
        };
        let joined = set.join(&batch).map_err(|e| engine_error(&e))?;
        let columns = &joined.columns;
        for frame in frames(columns, end - start, max_body)? {
            body.clear();
            put_training_chunk(
                &mut body,
                (start + frame.start) as u32,
                frame.clone(),
                columns,
            );
            sent += body.len() as u64;
            if sent > max_response_bytes {
                return Err((
                    StatusCode::LimitExceeded,
                    format!(
                        "TRAINING_SET response exceeds the max_output_bytes_per_connection limit \
                         of {max_response_bytes} bytes after {} of {rows} rows; send fewer rows \
                         per request",
                        start + frame.start
                    ),
                ));
            }
            emit(&body, end < rows || frame.end < end - start);
        }
    }
    Ok(())
}

/// Cuts `rows` rows of `columns` into runs whose frame bodies fit in `max_body`.
fn frames(
    columns: &[Vec<FeatureValue>],
    rows: usize,
    max_body: usize,
) -> Result<Vec<std::ops::Range<usize>>, Refusal> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = TRAINING_CHUNK_HEAD_BYTES;
    for row in 0..rows {
        let len: usize = columns.iter().map(|c| feature_value_len(&c[row])).sum();
        if TRAINING_CHUNK_HEAD_BYTES + len > max_body {
            let msg = format!(
                "the features of one spine row encode to {len} bytes, over the max_frame_bytes \
                 limit of {max_body}"
            );
            return Err((StatusCode::LimitExceeded, msg));
        }
        if bytes + len > max_body {
            out.push(start..row);
            start = row;
            bytes = TRAINING_CHUNK_HEAD_BYTES;
        }
        bytes += len;
    }
    out.push(start..rows);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_engine::feature::{Status, Value};

    fn present(s: &str) -> FeatureValue {
        FeatureValue {
            status: Status::Present,
            event_time_ms: 1,
            value: Value::String(s.into()),
        }
    }

    #[test]
    fn frames_stay_within_the_limit() {
        // Each value is 1 + 8 + 1 + 4 + 10 = 24 bytes; two columns make 48 bytes a row.
        let column: Vec<FeatureValue> = (0..10).map(|_| present("0123456789")).collect();
        let columns = vec![column.clone(), column];
        let runs = frames(&columns, 10, TRAINING_CHUNK_HEAD_BYTES + 3 * 48).unwrap();
        assert_eq!(runs, vec![0..3, 3..6, 6..9, 9..10]);
        let one = frames(&columns, 10, 1 << 20).unwrap();
        assert_eq!(one, vec![0..10]);
        let err = frames(&columns, 10, 40).unwrap_err();
        assert_eq!(err.0, StatusCode::LimitExceeded);
        assert!(err.1.contains("encode to 48 bytes"), "{}", err.1);
    }
}
