//! Quiver in-process: the engine's typed `Store` over a preallocated file or in memory, one
//! shared store for every connection (a "connection" is a caller thread's handle).
use std::path::Path;
use std::sync::Arc;

use quiver_engine::feature::{EntityKey, FeatureError, FeatureRef, PutOptions, Value};
use quiver_engine::{Config, Durability, Store};

use super::group::{self, GROUP};
use super::{Connection, Op, Outcome, Target, TargetOptions};
use crate::bench::error::TargetError;
use crate::bench::workload::RecordShape;
/// Smallest device the harness creates.
const MIN_DEVICE_BYTES: u64 = 256 << 20;
/// Device bytes per record beyond its payload: row header, per-feature cells, key.
const RECORD_OVERHEAD_BYTES: u64 = 128;

/// The engine opened in this process.
pub struct EmbeddedTarget {
    name: String,
    store: Arc<Store>,
    shared: Arc<Shared>,
}

/// What every connection reads.
struct Shared {
    shape: RecordShape,
    names: Vec<String>,
    refs: Vec<FeatureRef>,
    vector: Vec<f32>,
    put_options: PutOptions,
}

impl EmbeddedTarget {
    pub fn open_file(path: &Path, opts: &TargetOptions) -> Result<EmbeddedTarget, TargetError> {
        let name = path.display().to_string();
        let config = Config::file(path.to_path_buf(), device_bytes(opts));
        EmbeddedTarget::open(name, config, opts)
    }

    pub fn open_memory(opts: &TargetOptions) -> Result<EmbeddedTarget, TargetError> {
        EmbeddedTarget::open(
            "memory".to_string(),
            Config::memory(device_bytes(opts)),
            opts,
        )
    }

    fn open(
        name: String,
        config: Config,
        opts: &TargetOptions,
    ) -> Result<EmbeddedTarget, TargetError> {
        let fail = |reason: String| TargetError::Embedded {
            path: name.clone(),
            reason,
        };
        let store = Store::open(config).map_err(|e| fail(e.to_string()))?;
        ensure_group(&store, &opts.shape).map_err(fail)?;
        let names = opts.shape.feature_names();
        let refs = group::feature_refs(&opts.shape);
        let durability = if opts.sync_writes {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        let shared = Shared {
            shape: opts.shape,
            names,
            refs,
            vector: opts.shape.vector_value(0),
            put_options: PutOptions {
                durability: Some(durability),
                ..PutOptions::default()
            },
        };
        Ok(EmbeddedTarget {
            name,
            store: Arc::new(store),
            shared: Arc::new(shared),
        })
    }
}

fn device_bytes(opts: &TargetOptions) -> u64 {
    if opts.device_bytes > 0 {
        return opts.device_bytes;
    }
    // Three times the live data leaves room for updates before defragmentation catches up.
    let per_record = opts.shape.payload_bytes() + RECORD_OVERHEAD_BYTES;
    (opts.records.saturating_mul(per_record).saturating_mul(3)).max(MIN_DEVICE_BYTES)
}

/// Creates the benchmark group, or checks that an existing one has the benchmark's shape.
fn ensure_group(store: &Store, shape: &RecordShape) -> Result<(), String> {
    match store.describe_group(GROUP) {
        Ok(schema) => group::check_schema(&schema, shape),
        Err(quiver_engine::Error::Feature(FeatureError::UnknownGroup { .. })) => store
            .create_group(group::spec(shape))
            .map(|_| ())
            .map_err(|e| format!("cannot create group '{GROUP}': {e}")),
        Err(e) => Err(format!("cannot describe group '{GROUP}': {e}")),
    }
}

impl Target for EmbeddedTarget {
    fn describe(&self) -> String {
        format!("embedded:{}", self.name)
    }

    fn connect(&self) -> Result<Box<dyn Connection>, TargetError> {
        Ok(Box::new(EmbeddedConnection {
            store: Arc::clone(&self.store),
            shared: Arc::clone(&self.shared),
            pending: Vec::new(),
            version: 0,
        }))
    }

    fn finish(self: Box<Self>) -> Result<(), TargetError> {
        let name = self.name.clone();
        let fail = |reason: String| TargetError::Embedded {
            path: name.clone(),
            reason,
        };
        let store = Arc::try_unwrap(self.store)
            .map_err(|_| fail("a connection still holds the store at close".to_string()))?;
        store.close().map_err(|e| fail(e.to_string()))
    }
}

/// One caller of the shared store. Operations run when their results are received, so a
/// pipeline of N operations is N calls in a row.
pub struct EmbeddedConnection {
    store: Arc<Store>,
    shared: Arc<Shared>,
    pending: Vec<Op>,
    version: u64,
}

impl EmbeddedConnection {
    fn read(&self, key: u64) -> Outcome {
        let entity = EntityKey::I64(key as i64);
        match self.store.get(&entity, &self.shared.refs) {
            Ok(values) => group::values_outcome(&values),
            Err(e) => Outcome::Error(e.to_string()),
        }
    }

    fn batch_read(&self, keys: &[u64]) -> Outcome {
        let entities: Vec<EntityKey> = keys.iter().map(|&k| EntityKey::I64(k as i64)).collect();
        match self.store.get_many(&entities, &self.shared.refs) {
            Ok(rows) => rows
                .iter()
                .map(|row| group::values_outcome(row))
                .find(|o| *o != Outcome::Ok)
                .unwrap_or(Outcome::Ok),
            Err(e) => Outcome::Error(e.to_string()),
        }
    }

    fn write(&mut self, key: u64) -> Outcome {
        self.version += 1;
        let shared = &self.shared;
        let mut values: Vec<(&str, Value)> = Vec::with_capacity(shared.names.len());
        for i in 0..shared.shape.scalars {
            let v = RecordShape::scalar_value(key, self.version, i);
            values.push((shared.names[i as usize].as_str(), Value::F32(v)));
        }
        if shared.shape.vector_dim > 0 {
            values.push(("embedding", Value::Vector(shared.vector.clone())));
        }
        let now_ms = group::now_ms();
        let entity = EntityKey::I64(key as i64);
        match self
            .store
            .put(GROUP, &entity, now_ms, &values, &shared.put_options)
        {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error(e.to_string()),
        }
    }

    fn execute(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Read(key) => self.read(*key),
            Op::Update(key) | Op::Insert(key) => self.write(*key),
            Op::ReadModifyWrite(key) => match self.read(*key) {
                Outcome::Ok => self.write(*key),
                other => other,
            },
            Op::BatchRead(keys) => self.batch_read(keys),
        }
    }
}

impl Connection for EmbeddedConnection {
    fn send(&mut self, ops: &[Op]) -> Result<(), TargetError> {
        self.pending.clear();
        self.pending.extend_from_slice(ops);
        Ok(())
    }

    fn receive(&mut self, done: &mut dyn FnMut(usize, Outcome)) -> Result<(), TargetError> {
        let pending = std::mem::take(&mut self.pending);
        for (index, op) in pending.iter().enumerate() {
            let outcome = self.execute(op);
            done(index, outcome);
        }
        self.pending = pending;
        Ok(())
    }
}
