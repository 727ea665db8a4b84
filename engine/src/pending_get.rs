//! A feature get whose device reads the caller makes: the store's half of a server event loop
//! that submits record reads to its own io_uring instead of blocking a thread on them.
//!
//! [`Store::read_plan`] resolves a feature list once (a loop keeps it for as long as
//! [`Store::registry_changes`] stays the same); [`Store::begin_get`] starts one engine read per
//! group of the plan ([`crate::Engine::begin_read`]), serving what is in memory at once; the
//! caller reads each [`PendingGet::device_reads`] range and hands the bytes to
//! [`PendingGet::complete`] (which may ask for another read: a record that moved, or damage
//! being confirmed); [`PendingGet::finish`] decodes the answer exactly as [`Store::get`] does.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::engine::{DeviceRead, ReadStep, Record};
use crate::error::{Error, Result};
use crate::feature::read::ReadPlan;
use crate::feature::{EntityKey, FeatureRef, FeatureValue, KeyType};
use crate::store::Store;

/// One group's read of a [`PendingGet`].
enum Slot {
    /// The row, as the record holding it (`None`: the entity has none in this group).
    Row(Option<Record>),
    /// The row is damaged on the device: its features answer CORRUPT.
    Damaged,
    /// Waiting for a device read.
    Waiting(DeviceRead),
    /// Taken by [`PendingGet::complete`] while it runs.
    Empty,
}

/// A get of one entity in progress (see the module doc). One may be reused for get after get
/// ([`Store::begin_get_into`], [`PendingGet::finish_into`]): its buffers, and the records its
/// rows were read into, are kept, so that a warm loop's gets allocate nothing.
pub struct PendingGet {
    plan: Option<Arc<ReadPlan>>,
    key: Vec<u8>,
    slots: Vec<Slot>,
    /// The first error of any group's read other than damage: the get fails as a whole, as
    /// [`Store::get`] does.
    error: Option<Error>,
}

impl Store {
    /// Resolves `features` for entities of `key_type` (see [`ReadPlan::new`]).
    pub fn read_plan(&self, key_type: KeyType, features: &[FeatureRef]) -> Result<Arc<ReadPlan>> {
        Ok(Arc::new(ReadPlan::new(
            &self.registry.read(),
            key_type,
            features,
        )?))
    }

    /// How many schema changes the registry has made visible: a plan made before the count
    /// last moved must be made again.
    pub fn registry_changes(&self) -> u64 {
        self.registry_changes.load(Ordering::Acquire)
    }

    /// Starts a get of `key` (see the module doc).
    pub fn begin_get(&self, plan: &Arc<ReadPlan>, key: &EntityKey) -> Result<PendingGet> {
        let mut get = PendingGet::new();
        self.begin_get_into(&mut get, plan, key)?;
        Ok(get)
    }

    /// Starts a get of `key` in `get`, whatever it held before (its buffers are reused).
    pub fn begin_get_into(
        &self,
        get: &mut PendingGet,
        plan: &Arc<ReadPlan>,
        key: &EntityKey,
    ) -> Result<()> {
        get.clear(self);
        self.checked_key_into(plan, key, &mut get.key)?;
        let engine = self.engine();
        for g in plan.groups() {
            let slot = slot_after(engine.begin_read(g.id, &get.key), &mut get.error);
            get.slots.push(slot);
        }
        get.plan = Some(plan.clone());
        Ok(())
    }
}

impl Default for PendingGet {
    fn default() -> Self {
        PendingGet::new()
    }
}

impl PendingGet {
    /// An empty get, to be started with [`Store::begin_get_into`].
    pub fn new() -> PendingGet {
        PendingGet {
            plan: None,
            key: Vec::new(),
            slots: Vec::new(),
            error: None,
        }
    }

    /// Forgets the get it held, giving its records back to the engine for reuse.
    fn clear(&mut self, store: &Store) {
        for slot in self.slots.drain(..) {
            if let Slot::Row(Some(record)) = slot {
                store.engine().recycle(record);
            }
        }
        self.key.clear();
        self.error = None;
        self.plan = None;
    }

    /// Makes this get answer `error` (one whose [`Store::begin_get_into`] failed: a key of
    /// another type or size), so that a batch of gets answers it in its place.
    pub fn fail(&mut self, error: Error) {
        self.slots.clear();
        self.error = Some(error);
    }

    fn plan(&self) -> &ReadPlan {
        self.plan.as_deref().expect("a pending get was started")
    }

    /// The device reads this get waits for: (slot, device offset, bytes). Each goes to
    /// [`PendingGet::complete`] with its slot.
    pub fn device_reads(&self) -> impl Iterator<Item = (usize, u64, usize)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Waiting(dr) => Some((i, dr.offset, dr.len)),
            _ => None,
        })
    }

    /// Hands over the bytes of slot `slot`'s device read (or its error). Returns the next
    /// device read that slot waits for, if any: (device offset, bytes).
    pub fn complete(
        &mut self,
        store: &Store,
        slot: usize,
        bytes: Result<&[u8]>,
    ) -> Option<(u64, usize)> {
        let Slot::Waiting(dr) = std::mem::replace(&mut self.slots[slot], Slot::Empty) else {
            panic!("slot {slot} of a pending get completed while not waiting for a read");
        };
        let group = self.plan().groups()[slot].id;
        let step = store.engine().finish_read(group, &self.key, dr, bytes);
        self.slots[slot] = slot_after(step, &mut self.error);
        match &self.slots[slot] {
            Slot::Waiting(dr) => Some((dr.offset, dr.len)),
            _ => None,
        }
    }

    /// Whether no device read is outstanding.
    pub fn is_ready(&self) -> bool {
        self.slots
            .iter()
            .all(|s| matches!(s, Slot::Row(_) | Slot::Damaged))
    }

    /// The answer, in the order of the plan's features, as [`Store::get`] gives it: the
    /// features of a damaged row answer CORRUPT.
    pub fn finish(mut self, store: &Store) -> Result<Vec<FeatureValue>> {
        let mut values = Vec::new();
        self.finish_into(store, &mut values)?;
        Ok(values)
    }

    /// [`PendingGet::finish`] into `values`, reusing its entries (and their vectors' buffers).
    pub fn finish_into(&mut self, store: &Store, values: &mut Vec<FeatureValue>) -> Result<()> {
        assert!(
            self.is_ready(),
            "a pending get finished with reads outstanding"
        );
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let slots = &self.slots;
        let row = |i: usize| match &slots[i] {
            Slot::Row(r) => r.as_ref().map(|r| &r.value[..]),
            _ => None,
        };
        let plan = self.plan();
        plan.decode_into(row, store.now_ms(), values)?;
        for (i, _) in slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Slot::Damaged))
        {
            for (slot, _, _) in plan.wanted(i) {
                values[slot] = FeatureValue::corrupt();
            }
        }
        Ok(())
    }
}

/// A group's slot after a read step: damage reads CORRUPT, any other error fails the get.
fn slot_after(step: ReadStep, error: &mut Option<Error>) -> Slot {
    match step {
        ReadStep::Done(Ok(r)) => Slot::Row(r),
        ReadStep::Done(Err(Error::Corrupt { .. })) => Slot::Damaged,
        ReadStep::Done(Err(e)) => {
            error.get_or_insert(e);
            Slot::Row(None)
        }
        ReadStep::Device(dr) => Slot::Waiting(dr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::{FeatureSpec, FeatureType, GroupSpec, PutOptions, Value};
    use crate::Config;

    fn spec(name: &str) -> GroupSpec {
        GroupSpec::new(
            name,
            KeyType::String,
            vec![
                FeatureSpec::new("a", FeatureType::I64),
                FeatureSpec::new("b", FeatureType::F32),
            ],
        )
    }

    fn refs(text: &[&str]) -> Vec<FeatureRef> {
        text.iter().map(|t| t.parse().unwrap()).collect()
    }

    /// Runs a pending get to its end with the device's own reads, counting them.
    fn drive(store: &Store, mut get: PendingGet) -> (Result<Vec<FeatureValue>>, usize) {
        let mut reads = 0;
        let mut queue: Vec<(usize, u64, usize)> = get.device_reads().collect();
        while let Some((slot, offset, len)) = queue.pop() {
            reads += 1;
            let mut buf = quiver_wal::AlignedBuf::new(len);
            let read = store.engine().read_now(offset, &mut buf[..len]);
            if let Some((o, l)) = get.complete(store, slot, read.map(|()| &buf[..len])) {
                queue.push((slot, o, l));
            }
        }
        (get.finish(store), reads)
    }

    /// Every entity k0..k51 read both ways; returns the device reads the pending gets made.
    fn compare_all(store: &Store, features: &[FeatureRef]) -> Vec<usize> {
        let plan = store.read_plan(KeyType::String, features).unwrap();
        (0..52i64)
            .map(|i| {
                let key = EntityKey::String(format!("k{i}"));
                let (got, reads) = drive(store, store.begin_get(&plan, &key).unwrap());
                assert_eq!(got.unwrap(), store.get(&key, features).unwrap(), "k{i}");
                reads
            })
            .collect()
    }

    /// A pending get answers exactly what `Store::get` answers: from memory (no device read)
    /// while records sit in the open block, from the device (one read per group holding a
    /// row) once later writes sealed that block and it was flushed (the post-write cache
    /// off), across groups and absent entities.
    #[test]
    fn a_pending_get_answers_what_get_answers() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::file(dir.path().join("s.db"), 64 << 20);
        config.post_write_cache_bytes = 0;
        config.write_block_bytes = 128 << 10;
        let store = Store::open(config).unwrap();
        store.create_group(spec("u")).unwrap();
        store.create_group(spec("v")).unwrap();
        let mut filler = spec("w");
        filler.features = vec![FeatureSpec::new("blob", FeatureType::Bytes)];
        store.create_group(filler).unwrap();
        let opts = PutOptions::default();
        for i in 0..50i64 {
            let key = EntityKey::String(format!("k{i}"));
            let values = [("a", Value::I64(i)), ("b", Value::F32(0.5))];
            store.put("u", &key, 1000, &values, &opts).unwrap();
            if i % 2 == 0 {
                store
                    .put("v", &key, 1000, &[("a", Value::I64(-i))], &opts)
                    .unwrap();
            }
        }
        let features = refs(&["u:a", "v:a", "u:b", "v:b"]);
        assert!(compare_all(&store, &features).iter().all(|&r| r == 0));
        for i in 0..40 {
            let key = EntityKey::String(format!("filler{i}"));
            let blob = Value::Bytes(vec![i as u8; 10 << 10]);
            store
                .put("w", &key, 1000, &[("blob", blob)], &opts)
                .unwrap();
        }
        store.flush().unwrap();
        let rows = |i: usize| (i < 50) as usize + (i < 50 && i.is_multiple_of(2)) as usize;
        let reads = compare_all(&store, &features);
        for (i, r) in reads.iter().enumerate() {
            assert_eq!(*r, rows(i), "device reads of k{i}");
        }
    }

    /// A schema change moves the change counter; a plan refuses a key of another type.
    #[test]
    fn schema_changes_are_counted_and_key_types_checked() {
        let store = Store::open(Config::memory(64 << 20)).unwrap();
        let before = store.registry_changes();
        store.create_group(spec("u")).unwrap();
        let created = store.registry_changes();
        assert!(created > before);
        let plan = store.read_plan(KeyType::String, &refs(&["u:a"])).unwrap();
        store
            .alter_group("u", crate::feature::Alter::SetTtl(Some(60)))
            .unwrap();
        assert!(store.registry_changes() > created);
        assert!(store.begin_get(&plan, &EntityKey::I64(1)).is_err());
        assert!(store.read_plan(KeyType::I64, &refs(&["u:a"])).is_err());
    }
}
