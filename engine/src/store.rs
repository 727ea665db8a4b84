//! The typed feature store on top of the engine: feature groups, their registry, and
//! entity-keyed multi-feature put/get/scan.
//!
//! Every group is one engine group (ids from 1, never reused); every (group, entity) is one
//! engine record holding a [`Row`]. The registry lives under the reserved engine group 0 and is
//! written with `Durability::Sync` before a change becomes visible.

use std::borrow::Cow;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::config::{Config, Durability, WriteOptions};
use crate::engine::{Engine, Modify, Record, ScanCursor, Stats};
use crate::error::{Error, Result};
use crate::feature::limits::{
    MAX_ENTITIES_PER_GET, MAX_FEATURES_PER_GROUP, MAX_SCAN_ITEMS, MAX_SCHEMA_BYTES,
};
use crate::feature::read::{decode_row, ReadPlan};
use crate::feature::registry::{schema_key, GroupEntry, Registry, REGISTRY_GROUP, REGISTRY_KEY};
use crate::feature::schema::check_ttl;
use crate::feature::{
    check_value, merge_row, Alter, EncodedCells, EntityKey, FeatureError, FeatureRef, FeatureValue,
    GroupSchema, GroupSpec, PutOptions, PutResult, RegistryIndex, Row, ScanItem, Value,
    ViolationMode, WriteMode,
};
use crate::history::retention::{RetentionState, RetentionTask};
use crate::quality::saver::StatsSaver;

/// A feature store. `Send + Sync`: share it behind an `Arc`.
pub struct Store {
    /// The history retention thread, if any; first, so that it stops before the rest drops.
    retention_task: RetentionTask,
    /// The statistics saving thread, if any; stops before the rest drops.
    stats_saver: StatsSaver,
    pub(crate) engine: Engine,
    /// Puts hold the read side for their whole write, so a drop (which takes the write side)
    /// never races a put into the group it is dropping.
    pub(crate) registry: Arc<RwLock<Registry>>,
    /// Serializes registry changes (create, alter, drop) with each other.
    registry_writer: Arc<Mutex<()>>,
    /// Per-entity locks of groups with history: a put's online write and its history append,
    /// and compaction, hold the entity's lock, so both see one order.
    pub(crate) history_locks: Arc<[Mutex<()>]>,
    /// The registry's count of schema changes (see [`Store::registry_changes`]).
    pub(crate) registry_changes: Arc<std::sync::atomic::AtomicU64>,
    /// What history retention did, shared with its thread.
    pub(crate) retention: Arc<RetentionState>,
}

/// Stripes of [`Store::history_locks`].
const HISTORY_LOCKS: usize = 1024;

fn sync() -> WriteOptions {
    WriteOptions {
        durability: Some(Durability::Sync),
        ..WriteOptions::default()
    }
}

fn check_key_type(entry: &GroupEntry, key: &EntityKey) -> Result<(), FeatureError> {
    if entry.schema.key_type != key.key_type() {
        return Err(FeatureError::KeyTypeMismatch {
            group: entry.schema.name.clone(),
            expected: entry.schema.key_type,
            got: key.key_type(),
        });
    }
    Ok(())
}

impl Store {
    /// Opens the engine and loads the registry with point reads (no device scan), then finishes
    /// any group drop a crash interrupted.
    pub fn open(config: Config) -> Result<Store> {
        Store::on_engine(Engine::open(config)?)
    }

    /// Opens a store on a device built by the caller, e.g. a fault-injecting one in tests.
    pub fn open_on_device(
        config: Config,
        device: std::sync::Arc<dyn quiver_wal::Device>,
    ) -> Result<Store> {
        Store::on_engine(Engine::open_on_device(config, device)?)
    }

    fn on_engine(engine: Engine) -> Result<Store> {
        let registry = load_registry(&engine)?;
        let registry_changes = registry.changes();
        let retention = Arc::new(RetentionState::default());
        let mut store = Store {
            retention_task: RetentionTask::none(Arc::clone(&retention)),
            stats_saver: StatsSaver::none(),
            engine,
            registry_changes,
            registry: Arc::new(RwLock::new(registry)),
            registry_writer: Arc::new(Mutex::new(())),
            history_locks: (0..HISTORY_LOCKS).map(|_| Mutex::new(())).collect(),
            retention,
        };
        let _writer = store.registry_writer.lock();
        let pending = store.registry.read().index().dropping.clone();
        for id in pending {
            store.finish_drop(id)?;
        }
        drop(_writer);
        store.load_stats()?;
        store.load_baselines();
        store.retention_task = RetentionTask::start(&store);
        store.stats_saver = StatsSaver::start(&store);
        Ok(store)
    }

    /// A second handle on this store for its own background thread: same engine, registry
    /// and locks, no thread of its own.
    pub(crate) fn handle(&self) -> Store {
        Store {
            retention_task: RetentionTask::none(Arc::clone(&self.retention)),
            stats_saver: StatsSaver::none(),
            engine: self.engine.handle(),
            registry: Arc::clone(&self.registry),
            registry_writer: Arc::clone(&self.registry_writer),
            history_locks: Arc::clone(&self.history_locks),
            registry_changes: Arc::clone(&self.registry_changes),
            retention: Arc::clone(&self.retention),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Now, in unix ms, by the configured clock ([`Config::clock`]): value ages (TTL), the
    /// write time of history versions and the retention window are all judged by it, so a
    /// test's manual clock moves them together with record expiry.
    pub fn now_ms(&self) -> u64 {
        self.engine.inner.config.clock.now_ms()
    }

    pub fn create_group(&self, spec: GroupSpec) -> Result<Arc<GroupSchema>> {
        let _writer = self.registry_writer.lock();
        let (schema, index) = self.registry.read().plan_create(spec)?;
        self.write_schema(&schema)?;
        self.engine
            .put(REGISTRY_GROUP, REGISTRY_KEY, &index.encode(), &sync())?;
        Ok(self.registry.write().commit_schema(schema, Some(index)))
    }

    pub fn describe_group(&self, name: &str) -> Result<Arc<GroupSchema>> {
        Ok(self.registry.read().group(name)?.schema.clone())
    }

    /// Live groups by id; only those carrying `tag` when one is given.
    pub fn list_groups(&self, tag: Option<&str>) -> Vec<Arc<GroupSchema>> {
        self.registry.read().list(tag)
    }

    /// Applies one change; the new schema version is durable before it is visible. No stored
    /// row is rewritten.
    pub fn alter_group(&self, name: &str, alter: Alter) -> Result<Arc<GroupSchema>> {
        let _writer = self.registry_writer.lock();
        let schema = self.registry.read().plan_alter(name, alter)?;
        self.write_schema(&schema)?;
        Ok(self.registry.write().commit_schema(schema, None))
    }

    /// Drops a group: its records become unreachable at once and their space is reclaimed in
    /// the background. Its id is never reused.
    pub fn drop_group(&self, name: &str) -> Result<()> {
        let _writer = self.registry_writer.lock();
        let id = {
            let mut registry = self.registry.write();
            let (id, index) = registry.plan_drop(name)?;
            self.engine
                .put(REGISTRY_GROUP, REGISTRY_KEY, &index.encode(), &sync())?;
            registry.commit_drop(name, index);
            id
        };
        self.finish_drop(id)
    }

    /// Reclaims a group listed as dropping, then removes it from the list. Idempotent, so a
    /// crash anywhere in here is finished by the next open.
    fn finish_drop(&self, id: u32) -> Result<()> {
        self.engine.drop_group(id)?;
        self.engine.drop_group(crate::history::history_group(id))?;
        self.engine
            .delete(REGISTRY_GROUP, &schema_key(id), &sync())?;
        self.engine
            .delete(REGISTRY_GROUP, &crate::quality::stats_key(id), &sync())?;
        self.engine.delete(
            REGISTRY_GROUP,
            &crate::quality::baseline::baseline_key(id),
            &sync(),
        )?;
        let index = self.registry.read().plan_dropped(id);
        self.engine
            .put(REGISTRY_GROUP, REGISTRY_KEY, &index.encode(), &sync())?;
        self.registry.write().commit_index(index);
        Ok(())
    }

    fn write_schema(&self, schema: &GroupSchema) -> Result<()> {
        let bytes = schema.encode();
        if bytes.len() > MAX_SCHEMA_BYTES {
            return Err(FeatureError::SchemaTooLarge {
                group: schema.name.clone(),
                len: bytes.len(),
                max: MAX_SCHEMA_BYTES,
            }
            .into());
        }
        self.engine
            .put(REGISTRY_GROUP, &schema_key(schema.id), &bytes, &sync())?;
        Ok(())
    }

    /// Writes any subset of a group's features for one entity, all with `event_time_ms`.
    /// Everything is checked before the write; a refused put writes nothing.
    pub fn put(
        &self,
        group: &str,
        key: &EntityKey,
        event_time_ms: u64,
        values: &[(&str, Value)],
        opts: &PutOptions,
    ) -> Result<PutResult> {
        let registry = self.registry.read();
        let entry = registry.group(group)?;
        let schema = &entry.schema;
        check_key_type(entry, key)?;
        let key_bytes = key.to_key_bytes()?;
        check_ttl(opts.ttl_s)?;
        let now_ms = self.now_ms();
        let (cells, accepted, dropped) = encode_values(entry, event_time_ms, values, now_ms)?;
        if cells.is_empty() {
            // Every value broke a rule and was dropped: nothing to write, nothing else to check.
            let generation = self
                .engine
                .get(schema.id, &key_bytes)?
                .map_or(0, |r| r.generation);
            return Ok(PutResult {
                written: 0,
                skipped_stale: 0,
                generation,
                dropped,
            });
        }
        let ttl_s = opts.ttl_s.or(schema.ttl_s);
        let write = WriteOptions {
            durability: opts.durability,
            ttl_s,
        };
        let _history_lock = schema
            .history
            .is_some()
            .then(|| self.history_lock(schema.id, &key_bytes));
        let history = match schema.history {
            Some(_) => Some(self.prepare_history(schema, &key_bytes, cells.len())?),
            None => None,
        };
        let mut removed = Vec::new();
        let track_removed = history.is_some() && opts.mode == WriteMode::ReplaceRow;
        let (result, generation) =
            self.engine
                .inner
                .modify_inner(schema.id, &key_bytes, &write, |current| {
                    check_generation(opts.expected_generation, current)?;
                    if let (true, Some(current)) = (track_removed, current) {
                        removed = removed_features(&current.value, &cells)?;
                    }
                    let row = current.map(|r| r.value.as_slice());
                    let outcome =
                        merge_row(&schema.name, row, &cells, opts.mode, schema.compression)?;
                    let out = PutResult {
                        written: outcome.written,
                        skipped_stale: outcome.skipped_stale,
                        generation: 0,
                        dropped,
                    };
                    Ok(match outcome.row {
                        Some(value) => Modify::Put { value, ttl_s, out },
                        None => Modify::Keep { out },
                    })
                })?;
        if let Some(loaded) = history {
            let write_time_ms = opts.write_time_ms.unwrap_or_else(|| self.now_ms());
            self.append_history(
                schema,
                &key_bytes,
                loaded,
                &cells,
                &removed,
                write_time_ms,
                opts.durability,
            )?;
        }
        if self.engine.inner.config.feature_stats {
            entry.stats.record(&key_bytes, &accepted, now_ms);
        }
        Ok(PutResult {
            generation,
            ..result
        })
    }

    /// Reads features of one entity across any number of groups (one engine read per group,
    /// all in flight together). Answers come in the order of `features`. A feature whose row is
    /// damaged on the device answers [`Status::Corrupt`](crate::feature::Status::Corrupt); the
    /// other features are answered as usual.
    pub fn get(&self, key: &EntityKey, features: &[FeatureRef]) -> Result<Vec<FeatureValue>> {
        let mut out = self.get_many(std::slice::from_ref(key), features)?;
        Ok(out.pop().expect("one answer per entity"))
    }

    /// Reads the same features for many entities in ONE engine `get_many` of every
    /// (entity, group) pair. All keys must share the groups' key type.
    ///
    /// Damage is answered per feature, not for the call: the features of an (entity, group) row
    /// that is damaged on the device answer [`Status::Corrupt`](crate::feature::Status::Corrupt)
    /// (never an older version), and every other entity and group is answered as usual.
    pub fn get_many(
        &self,
        keys: &[EntityKey],
        features: &[FeatureRef],
    ) -> Result<Vec<Vec<FeatureValue>>> {
        if keys.len() > MAX_ENTITIES_PER_GET {
            return Err(FeatureError::TooManyItems {
                what: "entities in one get",
                count: keys.len(),
                max: MAX_ENTITIES_PER_GET,
            }
            .into());
        }
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        let plan = ReadPlan::new(&self.registry.read(), first.key_type(), features)?;
        let key_bytes = keys
            .iter()
            .map(|k| self.checked_key(&plan, k))
            .collect::<Result<Vec<Cow<'_, [u8]>>>>()?;
        let groups = plan.groups();
        if groups.is_empty() {
            return Ok(vec![Vec::new(); keys.len()]);
        }
        let pairs: Vec<(u32, &[u8])> = key_bytes
            .iter()
            .flat_map(|k| groups.iter().map(move |g| (g.id, k.as_ref())))
            .collect();
        let mut damaged = vec![false; pairs.len()];
        let mut records = Vec::with_capacity(pairs.len());
        for (i, answer) in self.engine.get_each(&pairs)?.into_iter().enumerate() {
            records.push(match answer {
                Ok(record) => record,
                Err(Error::Corrupt { .. }) => {
                    damaged[i] = true;
                    None
                }
                Err(e) => return Err(e),
            });
        }
        let now = self.now_ms();
        let rows: Vec<Option<&[u8]>> = records
            .iter()
            .map(|r| r.as_ref().map(|r| r.value.as_slice()))
            .collect();
        rows.chunks(groups.len())
            .zip(damaged.chunks(groups.len()))
            .map(|(chunk, damaged)| {
                let mut values = plan.decode(chunk, now)?;
                for (i, _) in damaged.iter().enumerate().filter(|(_, &d)| d) {
                    for (slot, _, _) in plan.wanted(i) {
                        values[slot] = FeatureValue::corrupt();
                    }
                }
                Ok(values)
            })
            .collect()
    }

    pub(crate) fn checked_key<'k>(
        &self,
        plan: &ReadPlan,
        key: &'k EntityKey,
    ) -> Result<Cow<'k, [u8]>> {
        Self::check_plan_key_type(plan, key)?;
        Ok(key.to_key_bytes()?)
    }

    /// [`Store::checked_key`] appended to `out`.
    pub(crate) fn checked_key_into(
        &self,
        plan: &ReadPlan,
        key: &EntityKey,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        Self::check_plan_key_type(plan, key)?;
        Ok(key.put_key_bytes(out)?)
    }

    fn check_plan_key_type(plan: &ReadPlan, key: &EntityKey) -> Result<()> {
        if let Some(group) = plan.groups().iter().find(|g| g.key_type != key.key_type()) {
            return Err(FeatureError::KeyTypeMismatch {
                group: group.name.clone(),
                expected: group.key_type,
                got: key.key_type(),
            }
            .into());
        }
        Ok(())
    }

    /// Deletes one entity's row of a group; returns whether it existed.
    pub fn delete(
        &self,
        group: &str,
        key: &EntityKey,
        durability: Option<Durability>,
    ) -> Result<bool> {
        let registry = self.registry.read();
        let entry = registry.group(group)?;
        check_key_type(entry, key)?;
        let opts = WriteOptions {
            durability,
            ..WriteOptions::default()
        };
        let id = entry.schema.id;
        let key_bytes = key.to_key_bytes()?;
        let _history_lock = self.history_lock(id, &key_bytes);
        let existed = self.engine.delete(id, &key_bytes, &opts)?;
        // History goes with the entity, even when the group no longer records it.
        self.delete_history(id, &key_bytes, durability)?;
        Ok(existed)
    }

    /// Up to `max_items` rows of a group, decoded; pass the returned cursor to continue.
    pub fn scan(
        &self,
        group: &str,
        cursor: ScanCursor,
        max_items: usize,
    ) -> Result<(Vec<ScanItem>, Option<ScanCursor>)> {
        if max_items == 0 || max_items > MAX_SCAN_ITEMS {
            return Err(FeatureError::TooManyItems {
                what: "items in one scan (1 or more)",
                count: max_items,
                max: MAX_SCAN_ITEMS,
            }
            .into());
        }
        let schema = self.describe_group(group)?;
        let chunk = self.engine.scan(schema.id, cursor, max_items)?;
        let now = self.now_ms();
        let items = chunk
            .records
            .iter()
            .map(|(_, rec)| {
                let key = EntityKey::from_key_bytes(schema.key_type, &rec.key)?;
                Ok(ScanItem {
                    key,
                    values: decode_row(&schema, &rec.value, now)?,
                })
            })
            .collect::<Result<Vec<_>, FeatureError>>()?;
        Ok((items, chunk.next))
    }

    pub fn flush(&self) -> Result<()> {
        self.engine.flush()
    }

    /// Saves the feature statistics, stops the background threads and closes the engine.
    pub fn close(self) -> Result<()> {
        let saved = self.save_stats();
        drop(self.stats_saver);
        drop(self.retention_task);
        self.engine.close()?;
        saved
    }

    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }
}

/// The features a stored row holds that a whole-row replace with `cells` removes.
fn removed_features(row: &[u8], cells: &EncodedCells) -> Result<Vec<u32>> {
    let body = Row::body(row)?;
    let kept: Vec<u32> = cells.cells().map(|c| c.id).collect();
    Ok(Row::cells(&body)?
        .iter()
        .map(|c| c.id)
        .filter(|id| kept.binary_search(id).is_err())
        .collect())
}

fn check_generation(expected: Option<u16>, current: Option<&Record>) -> Result<()> {
    let found = current.map_or(0, |r| r.generation);
    match expected {
        Some(expected) if expected != found => Err(Error::GenerationMismatch {
            expected: expected as u32,
            found: found as u32,
        }),
        _ => Ok(()),
    }
}

/// Resolves, checks and encodes a put's values: every feature known, not deprecated, named
/// once, its value of the right type and within limits, and within the feature's rules. A
/// value that breaks a rule refuses the put, or, in a group whose violation mode is `Drop`,
/// is left out and counted (the second part of the answer).
#[allow(clippy::type_complexity)]
fn encode_values<'v>(
    entry: &GroupEntry,
    event_time_ms: u64,
    values: &'v [(&str, Value)],
    now_ms: u64,
) -> Result<(EncodedCells, Vec<(u32, &'v Value)>, u32), FeatureError> {
    let schema = &entry.schema;
    if values.is_empty() {
        return Err(FeatureError::NoValues {
            group: schema.name.clone(),
        });
    }
    if values.len() > MAX_FEATURES_PER_GROUP {
        return Err(FeatureError::TooManyItems {
            what: "values in one put",
            count: values.len(),
            max: MAX_FEATURES_PER_GROUP,
        });
    }
    let mut seen = vec![false; schema.features.len()];
    let mut resolved = Vec::with_capacity(values.len());
    let mut dropped = 0;
    for (name, value) in values {
        let feature = entry.feature(name)?;
        if feature.deprecated {
            return Err(FeatureError::FeatureDeprecated {
                group: schema.name.clone(),
                feature: feature.name.clone(),
            });
        }
        if std::mem::replace(&mut seen[feature.id as usize], true) {
            return Err(FeatureError::DuplicateFeature {
                group: schema.name.clone(),
                feature: feature.name.clone(),
            });
        }
        // The group's refusal of NaN and infinity is a rule like the feature's own: in drop
        // mode it drops the value. Every other type or limit error refuses the put.
        let checked = match check_value(schema, feature, value) {
            Err(e @ FeatureError::NonFinite { .. }) => Err(e),
            Err(e) => return Err(e),
            Ok(()) => match entry.checker(feature.id) {
                Some(checker) => checker.check(&schema.name, name, value, event_time_ms, now_ms),
                None => Ok(()),
            },
        };
        match (checked, schema.on_violation) {
            (Ok(()), _) => {}
            (Err(_), ViolationMode::Drop) => {
                dropped += 1;
                continue;
            }
            (Err(e), ViolationMode::Reject) => return Err(e),
        }
        resolved.push((feature.id, value));
    }
    Ok((
        EncodedCells::new(event_time_ms, resolved.iter().copied()),
        resolved,
        dropped,
    ))
}

/// Loads the registry index and every live group's schema, by key: no device scan.
fn load_registry(engine: &Engine) -> Result<Registry> {
    let Some(record) = engine.get(REGISTRY_GROUP, REGISTRY_KEY)? else {
        return Ok(Registry::default());
    };
    let index = RegistryIndex::decode(&record.value)?;
    let keys: Vec<Vec<u8>> = index.live.iter().map(|&id| schema_key(id)).collect();
    let pairs: Vec<(u32, &[u8])> = keys
        .iter()
        .map(|k| (REGISTRY_GROUP, k.as_slice()))
        .collect();
    let records = if pairs.is_empty() {
        Vec::new()
    } else {
        engine.get_many(&pairs)?
    };
    let mut schemas = Vec::with_capacity(records.len());
    for (&id, record) in index.live.iter().zip(records) {
        let record = record.ok_or_else(|| {
            FeatureError::corrupt("registry", format!("schema of group {id} is missing"))
        })?;
        let schema = GroupSchema::decode(&record.value)?;
        if schema.id != id {
            return Err(FeatureError::corrupt(
                "registry",
                format!("key group/{id} holds the schema of group {}", schema.id),
            )
            .into());
        }
        schemas.push(schema);
    }
    Ok(Registry::from_parts(index, schemas)?)
}
