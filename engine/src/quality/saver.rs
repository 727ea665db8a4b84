//! Saving statistics: a background thread writes every group's windows each
//! `stats_save_interval_s`, `Store::close` writes them once more, and `Store::open` reads them
//! back. A saved record that does not decode is logged and the group's statistics start
//! empty: statistics are never worth refusing to open a store.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::config::{Durability, WriteOptions};
use crate::error::Result;
use crate::feature::registry::REGISTRY_GROUP;
use crate::store::Store;

use super::{codec, stats_key, GroupStats, GroupStatsReport};

#[derive(Default)]
pub(crate) struct SaverState {
    stop: Mutex<bool>,
    wake: Condvar,
}

impl SaverState {
    fn wait(&self, d: Duration) -> bool {
        let mut stop = self.stop.lock();
        if !*stop {
            self.wake.wait_for(&mut stop, d);
        }
        *stop
    }
}

/// The saving thread; dropping it stops the thread after its current save.
pub(crate) struct StatsSaver {
    state: Arc<SaverState>,
    thread: Option<JoinHandle<()>>,
}

impl StatsSaver {
    pub(crate) fn none() -> StatsSaver {
        StatsSaver {
            state: Arc::default(),
            thread: None,
        }
    }

    pub(crate) fn start(store: &Store) -> StatsSaver {
        let config = &store.engine.inner.config;
        if !config.background || !config.feature_stats || config.stats_save_interval_s == 0 {
            return StatsSaver::none();
        }
        let interval = Duration::from_secs(config.stats_save_interval_s);
        let state = Arc::new(SaverState::default());
        let view = store.handle();
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("quiver-stats".into())
            .spawn(move || {
                while !thread_state.wait(interval) {
                    if let Err(e) = view.save_stats() {
                        tracing::warn!(error = %e, "saving feature statistics failed");
                    }
                }
            })
            .expect("spawn stats saver");
        StatsSaver {
            state,
            thread: Some(thread),
        }
    }
}

impl Drop for StatsSaver {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            *self.state.stop.lock() = true;
            self.state.wake.notify_all();
            let _ = thread.join();
        }
    }
}

fn buffered() -> WriteOptions {
    WriteOptions {
        durability: Some(Durability::Buffered),
        ..WriteOptions::default()
    }
}

impl Store {
    /// Live statistics of group `group` (of one feature when `feature` is given), as of the
    /// store's clock.
    pub fn feature_stats(&self, group: &str, feature: Option<&str>) -> Result<GroupStatsReport> {
        let (schema, stats) = {
            let registry = self.registry.read();
            let entry = registry.group(group)?;
            if let Some(name) = feature {
                entry.feature(name)?;
            }
            (entry.schema.clone(), Arc::clone(&entry.stats))
        };
        let windows = stats.snapshot();
        let baselines = stats.baselines();
        Ok(super::report::report(
            &schema,
            &windows,
            feature,
            self.now_ms(),
            baselines.as_slice(),
        ))
    }

    /// Writes the statistics of every group that recorded a put since its last save (buffered:
    /// on the device within the flush interval). A group with nothing new is not written
    /// again, so an idle store (or a short command that writes nothing) adds no record.
    pub fn save_stats(&self) -> Result<()> {
        if !self.engine.inner.config.feature_stats {
            return Ok(());
        }
        // The registry's read lock is held through the writes: a group drop (which takes the
        // write side before it deletes `stats/<id>`) then never sees its record written back.
        let registry = self.registry.read();
        for entry in registry.entries() {
            // The mark is taken before the snapshot: a put recorded in between is in the
            // snapshot or keeps the group unsaved, never lost from the next save.
            let Some(mark) = entry.stats.unsaved() else {
                continue;
            };
            let id = entry.schema.id;
            let bytes = codec::encode(id, &entry.stats.snapshot());
            self.engine
                .put(REGISTRY_GROUP, &stats_key(id), &bytes, &buffered())?;
            entry.stats.mark_saved(mark);
        }
        Ok(())
    }

    /// Reads every group's saved statistics into the registry (at open). A damaged or
    /// unreadable record is logged and that group starts empty.
    pub(crate) fn load_stats(&self) -> Result<()> {
        if !self.engine.inner.config.feature_stats {
            return Ok(());
        }
        let mut registry = self.registry.write();
        let ids: Vec<(String, u32)> = registry
            .entries()
            .map(|e| (e.schema.name.clone(), e.schema.id))
            .collect();
        for (name, id) in ids {
            let windows = match self.engine.get(REGISTRY_GROUP, &stats_key(id)) {
                Ok(None) => continue,
                Ok(Some(record)) => codec::decode(id, &record.value).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match windows {
                Ok(w) => registry.set_stats(&name, Arc::new(GroupStats::with_windows(w))),
                Err(e) => tracing::warn!(
                    group = %name,
                    error = %e,
                    "saved feature statistics are unreadable; the group's statistics start empty"
                ),
            }
        }
        Ok(())
    }
}
