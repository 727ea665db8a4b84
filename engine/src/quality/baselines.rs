//! The store's side of baselines: saving one from a live window or from a summary built
//! elsewhere (a training set), listing and dropping them. A group's baselines are one record,
//! `baseline/<id>` in the registry's engine group (format on [`super::baseline`]), written
//! with `Durability::Sync` and deleted with the group.

use std::sync::Arc;

use crate::config::{Durability, WriteOptions};
use crate::error::Result;
use crate::feature::registry::REGISTRY_GROUP;
use crate::feature::{FeatureError, GroupSchema};
use crate::store::Store;

use super::baseline::{self, baseline_key, Baseline};
use super::window::WINDOWS;

fn sync() -> WriteOptions {
    WriteOptions {
        durability: Some(Durability::Sync),
        ..WriteOptions::default()
    }
}

fn invalid(schema: &GroupSchema, reason: impl Into<String>) -> crate::Error {
    FeatureError::InvalidBaseline {
        group: schema.name.clone(),
        reason: reason.into(),
    }
    .into()
}

impl Store {
    /// Reads every group's baselines into memory (at open). A damaged record is logged and
    /// that group starts without baselines (saving one rewrites the record whole).
    pub(crate) fn load_baselines(&self) {
        let registry = self.registry.read();
        for entry in registry.entries() {
            let id = entry.schema.id;
            let all = match self.engine.get(REGISTRY_GROUP, &baseline_key(id)) {
                Ok(None) => continue,
                Ok(Some(record)) => baseline::decode(id, &record.value).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match all {
                Ok(all) => entry.stats.set_baselines(all),
                Err(e) => tracing::warn!(
                    group = %entry.schema.name,
                    error = %e,
                    "saved feature baselines are unreadable; the group starts without baselines"
                ),
            }
        }
    }

    /// The baselines of `group` (of `feature` only when given), with the schema they belong to.
    pub fn baselines(
        &self,
        group: &str,
        feature: Option<&str>,
    ) -> Result<(Arc<GroupSchema>, Vec<Baseline>)> {
        let schema = self.describe_group(group)?;
        let id = match feature {
            Some(name) => Some(self.feature_id(&schema, name)?),
            None => None,
        };
        let stats = Arc::clone(&self.registry.read().group(group)?.stats);
        let mut all = stats.baselines().as_ref().clone();
        all.retain(|b| id.is_none_or_eq(b.feature_id));
        Ok((schema, all))
    }

    fn feature_id(&self, schema: &GroupSchema, name: &str) -> Result<u32> {
        Ok(schema
            .feature(name)
            .ok_or_else(|| FeatureError::UnknownFeature {
                group: schema.name.clone(),
                feature: name.to_string(),
            })?
            .id)
    }

    /// Saves, as the baselines of `group`'s features (of `feature` only when given), the
    /// distribution of the live window named `window` ("1h", "24h"). Without a feature, every
    /// live feature with values and a distribution is saved; a named feature without one is
    /// an error. Replaces earlier baselines of the same features.
    pub fn save_baseline_from_window(
        &self,
        group: &str,
        feature: Option<&str>,
        window: &str,
    ) -> Result<Vec<Baseline>> {
        let Some(ring) = WINDOWS.iter().position(|w| w.name == window) else {
            let names: Vec<&str> = WINDOWS.iter().map(|w| w.name).collect();
            return Err(FeatureError::InvalidBaseline {
                group: group.to_string(),
                reason: format!(
                    "unknown window '{window}': expected one of {}",
                    names.join(", ")
                ),
            }
            .into());
        };
        let (schema, stats) = {
            let registry = self.registry.read();
            let entry = registry.group(group)?;
            if let Some(name) = feature {
                entry.feature(name)?;
            }
            (entry.schema.clone(), Arc::clone(&entry.stats))
        };
        let now = self.now_ms();
        let merged = stats.snapshot().rings[ring].window(now);
        let source = format!("window {window}");
        let mut made = Vec::new();
        for f in &schema.features {
            match feature {
                Some(name) if f.name != name => continue,
                None if f.deprecated || baseline::kind_of(f.ty).is_none() => continue,
                _ => {}
            }
            let empty = Default::default();
            let bucket = merged.feature(f.id).unwrap_or(&empty);
            match Baseline::from_bucket(f, bucket, source.clone(), now) {
                Ok(b) => made.push(b),
                Err(reason) if feature.is_some() => {
                    return Err(invalid(&schema, format!("{reason} in the last {window}")))
                }
                Err(_) => {}
            }
        }
        if made.is_empty() {
            return Err(invalid(
                &schema,
                format!("no feature has values in the last {window} to make a baseline of"),
            ));
        }
        self.store_baselines(&schema, made.clone())?;
        Ok(made)
    }

    /// Saves `b` (built elsewhere, e.g. from a training set) as the baseline of its feature in
    /// `group`, replacing an earlier one.
    pub fn put_baseline(&self, group: &str, b: Baseline) -> Result<Baseline> {
        let schema = self.describe_group(group)?;
        let feature = schema
            .feature_by_id(b.feature_id)
            .ok_or_else(|| invalid(&schema, format!("no feature has id {}", b.feature_id)))?;
        b.check_fits(feature).map_err(|e| invalid(&schema, e))?;
        // Through the codec once, so that a baseline sent over the wire is checked as a stored
        // one would be.
        let checked = baseline::decode(schema.id, &baseline::encode(schema.id, &[b]))?;
        self.store_baselines(&schema, checked.clone())?;
        Ok(checked.into_iter().next().expect("one baseline"))
    }

    fn store_baselines(&self, schema: &GroupSchema, made: Vec<Baseline>) -> Result<()> {
        // The registry's write lock orders read-modify-writes of the record with each other
        // and with a drop of the group.
        let registry = self.registry.write();
        let stats = Arc::clone(&registry.group(&schema.name)?.stats);
        let mut all = stats.baselines().as_ref().clone();
        all.retain(|b| !made.iter().any(|m| m.feature_id == b.feature_id));
        all.extend(made);
        all.sort_by_key(|b| b.feature_id);
        self.engine.put(
            REGISTRY_GROUP,
            &baseline_key(schema.id),
            &baseline::encode(schema.id, &all),
            &sync(),
        )?;
        stats.set_baselines(all);
        drop(registry);
        Ok(())
    }

    /// Drops the baselines of `group` (of `feature` only when given); answers how many.
    pub fn drop_baselines(&self, group: &str, feature: Option<&str>) -> Result<usize> {
        let schema = self.describe_group(group)?;
        let id = match feature {
            Some(name) => Some(self.feature_id(&schema, name)?),
            None => None,
        };
        let registry = self.registry.write();
        let stats = Arc::clone(&registry.group(group)?.stats);
        let mut all = stats.baselines().as_ref().clone();
        let before = all.len();
        all.retain(|b| !id.is_none_or_eq(b.feature_id));
        let dropped = before - all.len();
        if dropped > 0 {
            let key = baseline_key(schema.id);
            if all.is_empty() {
                self.engine.delete(REGISTRY_GROUP, &key, &sync())?;
            } else {
                let bytes = baseline::encode(schema.id, &all);
                self.engine.put(REGISTRY_GROUP, &key, &bytes, &sync())?;
            }
            stats.set_baselines(all);
        }
        drop(registry);
        Ok(dropped)
    }
}

/// `None` matches every id, `Some(id)` only `id`.
trait MatchId {
    fn is_none_or_eq(&self, id: u32) -> bool;
}

impl MatchId for Option<u32> {
    fn is_none_or_eq(&self, id: u32) -> bool {
        self.is_none() || *self == Some(id)
    }
}
