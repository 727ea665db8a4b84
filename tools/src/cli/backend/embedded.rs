//! The store opened in this process over a data file (`--data PATH`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_engine::feature::{
    Alter, EntityKey, FeatureRef, FeatureValue, GroupSchema, GroupSpec, PutOptions, PutResult,
    ScanItem, Value,
};
use quiver_engine::history::{
    AsOf, HistoryCache, HistoryCursor, HistoryRange, DEFAULT_HISTORY_CACHE_BYTES,
};
use quiver_engine::training::{Joined, SpineBatch, TimeMode};
use quiver_engine::{Config, ScanCursor, Store};

use super::{Backend, HistoryPageOut, PutRow, HISTORY_PAGE_VERSIONS};
use crate::cli::error::{CliError, CliResult};

/// Rows per worker below which a batch is written on the calling thread alone.
const MIN_ROWS_PER_WORKER: usize = 256;
/// Most threads a batch of puts is spread over.
const MAX_PUT_WORKERS: usize = 8;

pub struct Embedded {
    store: Store,
    path: PathBuf,
    /// The entity histories the spine being joined has read so far (a new spine, one whose
    /// first batch starts at row 0, starts a new cache).
    training_cache: HistoryCache,
}

impl Embedded {
    /// Opens the store over `path`, creating the file (and its folder) with `size_bytes` if it
    /// is missing; an existing file keeps its own size.
    pub fn open(path: &Path, size_bytes: u64) -> CliResult<Embedded> {
        let size_bytes = match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => meta.len(),
            Ok(_) => size_bytes,
            Err(_) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| CliError::file(dir, format!("cannot create folder: {e}")))?;
                }
                size_bytes
            }
        };
        let store = Store::open(Config::file(path, size_bytes))
            .map_err(|e| CliError::Store(format!("cannot open store {}: {e}", path.display())))?;
        Ok(Embedded {
            store,
            path: path.to_path_buf(),
            training_cache: HistoryCache::new(DEFAULT_HISTORY_CACHE_BYTES),
        })
    }
}

fn put_row(store: &Store, group: &str, row: &PutRow, opts: &PutOptions) -> CliResult<PutResult> {
    let values: Vec<(&str, Value)> = row
        .values
        .iter()
        .map(|(name, v)| (name.as_str(), v.clone()))
        .collect();
    let opts = row.options(opts);
    Ok(store.put(group, &row.key, row.event_time_ms, &values, &opts)?)
}

/// Like [`put_row`], moving the values instead of copying them.
fn put_owned(store: &Store, group: &str, row: PutRow, opts: &PutOptions) -> CliResult<PutResult> {
    let opts = &row.options(opts);
    let (names, values): (Vec<String>, Vec<Value>) = row.values.into_iter().unzip();
    let values: Vec<(&str, Value)> = names.iter().map(String::as_str).zip(values).collect();
    Ok(store.put(group, &row.key, row.event_time_ms, &values, opts)?)
}

/// Splits `rows` into `parts` owned runs of nearly equal length, in order.
fn split(mut rows: Vec<PutRow>, parts: usize) -> Vec<Vec<PutRow>> {
    let chunk = rows.len().div_ceil(parts.max(1)).max(1);
    let mut runs = Vec::with_capacity(parts);
    while rows.len() > chunk {
        let tail = rows.split_off(chunk);
        runs.push(std::mem::replace(&mut rows, tail));
    }
    runs.push(rows);
    runs
}

impl Backend for Embedded {
    fn target(&self) -> String {
        format!("store {}", self.path.display())
    }

    fn ping(&mut self) -> CliResult<Duration> {
        let start = Instant::now();
        let _ = self.store.stats();
        Ok(start.elapsed())
    }

    fn create_group(&mut self, spec: GroupSpec) -> CliResult<Arc<GroupSchema>> {
        Ok(self.store.create_group(spec)?)
    }

    fn describe_group(&mut self, name: &str) -> CliResult<Arc<GroupSchema>> {
        Ok(self.store.describe_group(name)?)
    }

    fn list_groups(&mut self, tag: Option<&str>) -> CliResult<Vec<Arc<GroupSchema>>> {
        Ok(self.store.list_groups(tag))
    }

    fn alter_group(&mut self, name: &str, alter: Alter) -> CliResult<Arc<GroupSchema>> {
        Ok(self.store.alter_group(name, alter)?)
    }

    fn drop_group(&mut self, name: &str) -> CliResult<()> {
        Ok(self.store.drop_group(name)?)
    }

    fn put(&mut self, group: &str, row: &PutRow, opts: &PutOptions) -> CliResult<PutResult> {
        put_row(&self.store, group, row, opts)
    }

    /// Spreads the batch over a few threads: the store is `Sync`, and on a device-backed store
    /// puts of different keys proceed in parallel.
    fn put_batch(
        &mut self,
        group: &str,
        rows: Vec<PutRow>,
        opts: &PutOptions,
    ) -> CliResult<Vec<CliResult<PutResult>>> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let workers = (rows.len() / MIN_ROWS_PER_WORKER).clamp(1, cores.min(MAX_PUT_WORKERS));
        let store = &self.store;
        if workers == 1 {
            return Ok(rows
                .into_iter()
                .map(|row| put_owned(store, group, row, opts))
                .collect());
        }
        let outcomes = std::thread::scope(|scope| {
            let handles: Vec<_> = split(rows, workers)
                .into_iter()
                .map(|run| {
                    scope.spawn(move || {
                        run.into_iter()
                            .map(|row| put_owned(store, group, row, opts))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a put worker panicked"))
                .collect()
        });
        Ok(outcomes)
    }

    fn get(&mut self, key: &EntityKey, refs: &[FeatureRef]) -> CliResult<Vec<FeatureValue>> {
        Ok(self.store.get(key, refs)?)
    }

    fn get_as_of(
        &mut self,
        key: &EntityKey,
        refs: &[FeatureRef],
        at: AsOf,
    ) -> CliResult<Vec<FeatureValue>> {
        Ok(self.store.get_as_of(key, refs, at)?)
    }

    fn history_page(
        &mut self,
        group: &str,
        key: &EntityKey,
        features: &[String],
        range: HistoryRange,
        after: Option<HistoryCursor>,
    ) -> CliResult<HistoryPageOut> {
        let names: Vec<&str> = features.iter().map(String::as_str).collect();
        let page =
            self.store
                .history_page(group, key, &names, range, after, HISTORY_PAGE_VERSIONS)?;
        let next = page.next();
        Ok((page.entries, next))
    }

    fn history_keys(
        &mut self,
        group: &str,
        cursor: Option<ScanCursor>,
        max_records: usize,
    ) -> CliResult<(Vec<EntityKey>, Option<ScanCursor>)> {
        let cursor = cursor.unwrap_or(ScanCursor::START);
        Ok(self.store.history_keys(group, cursor, max_records)?)
    }

    fn get_many(
        &mut self,
        keys: &[EntityKey],
        refs: &[FeatureRef],
    ) -> CliResult<Vec<Vec<FeatureValue>>> {
        Ok(self.store.get_many(keys, refs)?)
    }

    fn delete(&mut self, group: &str, key: &EntityKey) -> CliResult<bool> {
        Ok(self.store.delete(group, key, None)?)
    }

    fn scan(
        &mut self,
        group: &str,
        cursor: Option<ScanCursor>,
        max_items: usize,
    ) -> CliResult<(Vec<ScanItem>, Option<ScanCursor>)> {
        Ok(self
            .store
            .scan(group, cursor.unwrap_or(ScanCursor::START), max_items)?)
    }

    fn training_join(
        &mut self,
        features: &[FeatureRef],
        mode: TimeMode,
        batch: &SpineBatch,
    ) -> CliResult<Joined> {
        if batch.first_row == 0 {
            self.training_cache = HistoryCache::new(self.training_cache.budget_bytes());
        }
        let set = self.store.training_set(features, mode)?;
        Ok(set.with_cache(self.training_cache.clone()).join(batch)?)
    }

    fn training_cache_bytes(&mut self, bytes: usize) {
        self.training_cache = HistoryCache::new(bytes);
    }

    fn feature_stats(
        &mut self,
        group: &str,
        feature: Option<&str>,
    ) -> CliResult<serde_json::Value> {
        let report = self.store.feature_stats(group, feature)?;
        Ok(quiver_server::quality::report_json(&report))
    }

    fn baseline(
        &mut self,
        req: quiver_server::protocol::BaselineRequest,
    ) -> CliResult<serde_json::Value> {
        let text = quiver_server::quality::execute_baseline(&self.store, req)?;
        serde_json::from_str(&text).map_err(|e| CliError::Internal(format!("baseline JSON: {e}")))
    }

    fn stats(&mut self) -> CliResult<serde_json::Value> {
        Ok(super::stats_json::engine_stats_json(&self.store.stats()))
    }

    fn close(self: Box<Self>) -> CliResult<()> {
        Ok(self.store.close()?)
    }
}
