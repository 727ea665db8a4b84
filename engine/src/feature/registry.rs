//! The in-memory registry of feature groups, and the plans that change it. Persisting is the
//! store's job: each change here is computed first (nothing mutated), written to the engine with
//! `Durability::Sync`, and only then committed to memory.

use crate::quality::GroupStats;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::error::FeatureError;
use super::limits::MAX_GROUPS;
use super::rules::RuleChecker;
use super::schema::{Alter, Feature, GroupSchema, GroupSpec};
use super::schema_codec::RegistryIndex;

/// Engine group holding the registry.
pub const REGISTRY_GROUP: u32 = 0;
/// Engine key of the [`RegistryIndex`] record.
pub const REGISTRY_KEY: &[u8] = b"registry";

/// Engine key of group `id`'s schema record: `group/<id>` in ASCII decimal.
pub fn schema_key(id: u32) -> Vec<u8> {
    format!("group/{id}").into_bytes()
}

/// One group with a name index over its features.
#[derive(Debug, Clone)]
pub struct GroupEntry {
    pub schema: Arc<GroupSchema>,
    by_name: HashMap<String, u32>,
    /// The compiled rules of each feature, by feature id; `None`: the feature has none.
    checkers: Vec<Option<RuleChecker>>,
    /// Live statistics, shared by every schema version of the group.
    pub stats: Arc<GroupStats>,
}

impl GroupEntry {
    pub fn new(schema: GroupSchema) -> GroupEntry {
        let by_name = schema
            .features
            .iter()
            .map(|f| (f.name.clone(), f.id))
            .collect();
        let checkers = schema
            .features
            .iter()
            .map(|f| (!f.rules.is_empty()).then(|| RuleChecker::new(&f.rules)))
            .collect();
        GroupEntry {
            schema: Arc::new(schema),
            by_name,
            checkers,
            stats: Arc::default(),
        }
    }

    /// The compiled rules of feature `id`, if it has any.
    pub fn checker(&self, id: u32) -> Option<&RuleChecker> {
        self.checkers.get(id as usize).and_then(Option::as_ref)
    }

    /// The feature named `name`, deprecated or not.
    pub fn feature(&self, name: &str) -> Result<&Feature, FeatureError> {
        self.by_name
            .get(name)
            .map(|&id| &self.schema.features[id as usize])
            .ok_or_else(|| FeatureError::UnknownFeature {
                group: self.schema.name.clone(),
                feature: name.to_string(),
            })
    }
}

/// All live groups, by name, and the persisted index.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    index: RegistryIndex,
    groups: HashMap<String, GroupEntry>,
    /// Counts the schema changes made visible (creates, alters, drops), so that a caller
    /// holding a [`crate::feature::read::ReadPlan`] learns, without the registry's lock, when
    /// it must resolve its features again.
    changes: Arc<AtomicU64>,
}

impl Registry {
    /// Builds the registry from its loaded index and the schemas of its live groups.
    pub fn from_parts(
        index: RegistryIndex,
        schemas: Vec<GroupSchema>,
    ) -> Result<Registry, FeatureError> {
        let mut groups = HashMap::with_capacity(schemas.len());
        for schema in schemas {
            if !index.live.contains(&schema.id) {
                return Err(FeatureError::corrupt(
                    "registry",
                    format!("schema of group {} is not listed", schema.id),
                ));
            }
            let name = schema.name.clone();
            if groups
                .insert(name.clone(), GroupEntry::new(schema))
                .is_some()
            {
                return Err(FeatureError::corrupt(
                    "registry",
                    format!("two groups are named '{name}'"),
                ));
            }
        }
        if groups.len() != index.live.len() {
            return Err(FeatureError::corrupt(
                "registry",
                "a listed group has no schema",
            ));
        }
        Ok(Registry {
            index,
            groups,
            changes: Arc::default(),
        })
    }

    /// The counter of schema changes (see the field).
    pub fn changes(&self) -> Arc<AtomicU64> {
        self.changes.clone()
    }

    pub fn index(&self) -> &RegistryIndex {
        &self.index
    }

    /// Every live group.
    pub fn entries(&self) -> impl Iterator<Item = &GroupEntry> {
        self.groups.values()
    }

    /// Replaces a group's statistics (with those loaded at open).
    pub(crate) fn set_stats(&mut self, name: &str, stats: Arc<GroupStats>) {
        if let Some(entry) = self.groups.get_mut(name) {
            entry.stats = stats;
        }
    }

    pub fn group(&self, name: &str) -> Result<&GroupEntry, FeatureError> {
        self.groups
            .get(name)
            .ok_or_else(|| FeatureError::UnknownGroup {
                group: name.to_string(),
            })
    }

    /// Live groups, by id, those carrying `tag` only when it is given.
    pub fn list(&self, tag: Option<&str>) -> Vec<Arc<GroupSchema>> {
        let mut out: Vec<Arc<GroupSchema>> = self
            .groups
            .values()
            .filter(|g| match tag {
                Some(t) => g.schema.tags.iter().any(|x| x == t),
                None => true,
            })
            .map(|g| g.schema.clone())
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }

    /// The schema and index a create would write.
    pub fn plan_create(
        &self,
        spec: GroupSpec,
    ) -> Result<(GroupSchema, RegistryIndex), FeatureError> {
        if self.groups.contains_key(&spec.name) {
            return Err(FeatureError::GroupExists { group: spec.name });
        }
        if self.groups.len() >= MAX_GROUPS {
            return Err(FeatureError::TooManyGroups {
                count: self.groups.len() + 1,
                max: MAX_GROUPS,
            });
        }
        let id = self.index.next_group_id;
        // Ids at and above 2^31 name history groups (`crate::history`): never hand them out.
        let next = id
            .checked_add(1)
            .filter(|&next| next < crate::history::HISTORY_GROUP_BIT)
            .ok_or(FeatureError::TooManyGroups {
                count: id as usize,
                max: MAX_GROUPS,
            })?;
        let schema = GroupSchema::from_spec(id, spec)?;
        let mut index = self.index.clone();
        index.next_group_id = next;
        index.live.push(id);
        Ok((schema, index))
    }

    /// The schema an alter would write.
    pub fn plan_alter(&self, name: &str, alter: Alter) -> Result<GroupSchema, FeatureError> {
        self.group(name)?.schema.altered(alter)
    }

    /// The index a drop would write first: the group moves from `live` to `dropping`.
    pub fn plan_drop(&self, name: &str) -> Result<(u32, RegistryIndex), FeatureError> {
        let id = self.group(name)?.schema.id;
        let mut index = self.index.clone();
        index.live.retain(|&x| x != id);
        index.dropping.push(id);
        index.dropping.sort_unstable();
        Ok((id, index))
    }

    /// Makes a written create or alter visible.
    pub fn commit_schema(
        &mut self,
        schema: GroupSchema,
        index: Option<RegistryIndex>,
    ) -> Arc<GroupSchema> {
        if let Some(index) = index {
            self.index = index;
        }
        let mut entry = GroupEntry::new(schema);
        if let Some(old) = self.groups.get(&entry.schema.name) {
            entry.stats = Arc::clone(&old.stats);
        }
        let out = entry.schema.clone();
        self.groups.insert(out.name.clone(), entry);
        self.changes.fetch_add(1, Ordering::Release);
        out
    }

    /// Makes a written drop visible (the group is already unreachable on the device).
    pub fn commit_drop(&mut self, name: &str, index: RegistryIndex) {
        self.groups.remove(name);
        self.index = index;
        self.changes.fetch_add(1, Ordering::Release);
    }

    /// Records that a dropped group's space is reclaimed: returns the index to write.
    pub fn plan_dropped(&self, id: u32) -> RegistryIndex {
        let mut index = self.index.clone();
        index.dropping.retain(|&x| x != id);
        index
    }

    pub fn commit_index(&mut self, index: RegistryIndex) {
        self.index = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::schema::FeatureSpec;
    use crate::feature::types::{FeatureType, KeyType};

    fn create(reg: &mut Registry, name: &str, tags: &[&str]) -> Arc<GroupSchema> {
        let mut spec = GroupSpec::new(
            name,
            KeyType::String,
            vec![FeatureSpec::new("x", FeatureType::I64)],
        );
        spec.tags = tags.iter().map(|t| t.to_string()).collect();
        let (schema, index) = reg.plan_create(spec).unwrap();
        reg.commit_schema(schema, Some(index))
    }

    #[test]
    fn ids_are_never_reused() {
        let mut reg = Registry::default();
        assert_eq!(create(&mut reg, "a", &[]).id, 1);
        assert_eq!(create(&mut reg, "b", &["core"]).id, 2);
        let (id, index) = reg.plan_drop("b").unwrap();
        assert_eq!(id, 2);
        reg.commit_drop("b", index);
        let index = reg.plan_dropped(2);
        reg.commit_index(index);
        assert_eq!(create(&mut reg, "b", &[]).id, 3);
        assert_eq!(reg.index().live, vec![1, 3]);
        assert!(matches!(
            reg.plan_create(GroupSpec::new("a", KeyType::I64, vec![])),
            Err(FeatureError::GroupExists { .. })
        ));
    }

    #[test]
    fn list_filters_by_tag() {
        let mut reg = Registry::default();
        create(&mut reg, "a", &["core"]);
        create(&mut reg, "b", &[]);
        create(&mut reg, "c", &["core", "pii"]);
        let names = |v: Vec<Arc<GroupSchema>>| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(reg.list(None)), ["a", "b", "c"]);
        assert_eq!(names(reg.list(Some("core"))), ["a", "c"]);
        assert!(reg.list(Some("none")).is_empty());
    }

    #[test]
    fn from_parts_checks_consistency() {
        let mut reg = Registry::default();
        let a = create(&mut reg, "a", &[]);
        assert!(Registry::from_parts(reg.index().clone(), vec![(*a).clone()]).is_ok());
        assert!(Registry::from_parts(reg.index().clone(), vec![]).is_err());
        assert!(Registry::from_parts(RegistryIndex::default(), vec![(*a).clone()]).is_err());
    }
}
