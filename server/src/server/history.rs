//! The history operations on an engine thread: GET_AS_OF, HISTORY and HISTORY_KEYS, each
//! built into one response body that stays within `max_frame_bytes`.

use super::status_map::engine_error;
use crate::protocol::{
    put_get_many_count, put_get_many_item, put_history_entry, put_history_keys, put_history_next,
    GetAsOfRequest, GetManyItem, HistoryKeysRequest, HistoryRequest, StatusCode,
    HISTORY_NEXT_BYTES,
};
use quiver_engine::feature::{EntityKey, FeatureRef};
use quiver_engine::history::AsOf;
use quiver_engine::{ScanCursor, Store};

/// Rows read per engine call while a GET_AS_OF response is built: building stops at the
/// first slice that takes the response over the frame limit.
const GET_AS_OF_SLICE_ROWS: usize = 256;

type Refusal = (StatusCode, String);

/// A GET_AS_OF response body (items as GET_MANY's), a slice of rows at a time; refused with
/// LIMIT_EXCEEDED as soon as it exceeds `max_body`. The request's counts were checked at
/// dispatch.
pub fn get_as_of_body(
    store: &Store,
    request: &GetAsOfRequest,
    max_body: usize,
) -> Result<Vec<u8>, Refusal> {
    let rows = request.rows().ok_or_else(|| {
        let msg = "GET_AS_OF times must be one, or one per key".to_string();
        (StatusCode::InvalidArgument, msg)
    })?;
    let mut body = Vec::new();
    put_get_many_count(&mut body, rows.len());
    let mut done = 0;
    for slice in rows.chunks(GET_AS_OF_SLICE_ROWS) {
        for item in as_of_items(store, slice, &request.features) {
            put_get_many_item(&mut body, &item);
        }
        done += slice.len();
        if body.len() > max_body {
            let msg = format!(
                "GET_AS_OF response exceeds the max_frame_bytes limit of {max_body} bytes: the \
                 first {done} of {} keys already encode to {} bytes; ask for fewer keys or \
                 features",
                rows.len(),
                body.len()
            );
            return Err((StatusCode::LimitExceeded, msg));
        }
    }
    Ok(body)
}

/// One item per row; when the batch fails, each row alone, so that one bad row (a key of the
/// wrong type, a time before the history window) does not fail its neighbours.
fn as_of_items(
    store: &Store,
    rows: &[(EntityKey, AsOf)],
    features: &[FeatureRef],
) -> Vec<GetManyItem> {
    match store.get_many_as_of(rows, features) {
        Ok(answers) if answers.len() == rows.len() => answers.into_iter().map(Ok).collect(),
        _ => rows
            .iter()
            .map(|(key, at)| {
                store
                    .get_as_of(key, features, *at)
                    .map_err(|e| engine_error(&e))
            })
            .collect(),
    }
}

/// A HISTORY response body: as many versions of the page as fit in `max_body`, and the
/// cursor after the last one sent when more remain.
pub fn history_body(
    store: &Store,
    request: &HistoryRequest,
    max_body: usize,
) -> Result<Vec<u8>, Refusal> {
    let features: Vec<&str> = request.features.iter().map(String::as_str).collect();
    let mut page = store
        .history_page(
            &request.group,
            &request.key,
            &features,
            request.range,
            request.after,
            request.max_versions as usize,
        )
        .map_err(|e| engine_error(&e))?;
    let mut entries = Vec::new();
    let mut fitting = 0;
    for entry in &page.entries {
        let before = entries.len();
        put_history_entry(&mut entries, entry);
        if 4 + entries.len() + HISTORY_NEXT_BYTES > max_body {
            let len = entries.len() - before;
            entries.truncate(before);
            if fitting == 0 {
                let msg = format!(
                    "one history version of feature '{}' encodes to {len} bytes, over the \
                     max_frame_bytes limit of {max_body}",
                    entry.feature
                );
                return Err((StatusCode::LimitExceeded, msg));
            }
            page.truncate(fitting);
            break;
        }
        fitting += 1;
    }
    let mut body = Vec::with_capacity(4 + entries.len() + HISTORY_NEXT_BYTES);
    body.extend_from_slice(&(fitting as u32).to_le_bytes());
    body.extend_from_slice(&entries);
    put_history_next(&mut body, page.next().as_ref());
    Ok(body)
}

/// A HISTORY_KEYS response body within `max_body`: scans fewer records until the chunk fits.
pub fn history_keys_body(
    store: &Store,
    request: &HistoryKeysRequest,
    max_body: usize,
) -> Result<Vec<u8>, Refusal> {
    let cursor = request.cursor.unwrap_or(ScanCursor::START);
    let mut max_records = request.max_records as usize;
    loop {
        let (keys, next) = store
            .history_keys(&request.group, cursor, max_records)
            .map_err(|e| engine_error(&e))?;
        let mut body = Vec::new();
        put_history_keys(&mut body, &keys, next);
        if body.len() <= max_body {
            return Ok(body);
        }
        if max_records <= 1 {
            let msg = format!(
                "one entity key encodes to {} bytes, over the {max_body}-byte frame limit",
                body.len()
            );
            return Err((StatusCode::LimitExceeded, msg));
        }
        max_records /= 2;
    }
}
