//! Names in requests to groups and features: a Feast feature view (a group made by
//! `quiver.feast`, see [`super::feast`]) or else a Quiver group of that name.

use super::feast::{FeastView, PROTO_TAG, TS_FEATURE};
use super::request::Columns;
use super::values::entity_key;
use super::ApiError;
use crate::protocol::StatusCode;
use quiver_engine::feature::{EntityKey, Feature, GroupSchema};
use quiver_engine::Store;
use serde_json::Value as Json;
use std::sync::Arc;

/// Feast's join key of views without entities, whose value is always "".
const DUMMY_JOIN_KEY: &str = "__dummy_id";

/// A resolved view: the group, and how its entity keys are made.
pub struct Target {
    pub schema: Arc<GroupSchema>,
    /// The Feast view the group stands for; `None` for a plain Quiver group.
    pub feast: Option<FeastView>,
}

impl Target {
    /// The name the request used for it (a Feast view name or the group name).
    pub fn name(&self) -> &str {
        self.feast.as_ref().map_or(&self.schema.name, |f| &f.view)
    }

    /// The view's (or group's) feature called `name` in requests: for a Feast view the
    /// feature whose description is the Feast name.
    pub fn feature(&self, name: &str) -> Result<&Feature, ApiError> {
        let live = |f: &&Feature| !f.deprecated && f.name != TS_FEATURE;
        let found = match &self.feast {
            Some(_) => self
                .schema
                .features
                .iter()
                .filter(live)
                .find(|f| f.description == name)
                .or_else(|| {
                    self.schema
                        .features
                        .iter()
                        .filter(live)
                        .find(|f| f.name == name)
                }),
            None => self.schema.feature(name).filter(|f| !f.deprecated),
        };
        found.ok_or_else(|| {
            ApiError::new(
                StatusCode::UnknownFeature,
                format!("'{}' has no feature '{name}'", self.name()),
            )
        })
    }

    /// Whether `feature` holds serialized Feast `Value` protos.
    pub fn is_proto(&self, feature: &Feature) -> bool {
        self.feast.is_some() && feature.tags.iter().any(|t| t == PROTO_TAG)
    }

    /// The view's hidden event-timestamp feature, if it has one.
    pub fn ts_feature(&self) -> Option<&Feature> {
        self.feast.as_ref()?;
        self.schema.feature(TS_FEATURE).filter(|f| !f.deprecated)
    }

    /// The entity key of each of the `n` rows of `columns`.
    pub fn keys(
        &self,
        columns: &Columns,
        n: usize,
        what: &str,
    ) -> Result<Vec<EntityKey>, ApiError> {
        match &self.feast {
            Some(view) => self.feast_keys(view, columns, n, what),
            None => {
                let column = match (columns.0.len(), columns.get("key")) {
                    (_, Some(i)) => i,
                    (1, None) => 0,
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "group '{}' has one entity key: send it as the only {what} column, \
                             or as the column 'key'",
                            self.schema.name
                        )))
                    }
                };
                let key_type = self.schema.key_type;
                columns.0[column].1[..n]
                    .iter()
                    .map(|v| entity_key(key_type, v).map_err(mismatch))
                    .collect()
            }
        }
    }

    fn feast_keys(
        &self,
        view: &FeastView,
        columns: &Columns,
        n: usize,
        what: &str,
    ) -> Result<Vec<EntityKey>, ApiError> {
        let Some(join_keys) = &view.join_keys else {
            return Err(ApiError::invalid(format!(
                "the group of Feast feature view '{}' does not record its join keys; run \
                 `feast apply` again with this release of quiver",
                view.view
            )));
        };
        let empty = Json::String(String::new());
        let mut sources: Vec<Option<usize>> = Vec::with_capacity(join_keys.len());
        for (name, _) in join_keys {
            let column = columns.get(name);
            if column.is_none() && name != DUMMY_JOIN_KEY {
                return Err(ApiError::invalid(format!(
                    "feature view '{}' is keyed by '{name}': {what} has no such column",
                    view.view
                )));
            }
            sources.push(column);
        }
        let mut values: Vec<&Json> = Vec::with_capacity(sources.len());
        (0..n)
            .map(|row| {
                values.clear();
                values.extend(
                    sources
                        .iter()
                        .map(|c| c.map_or(&empty, |c| &columns.0[c].1[row])),
                );
                view.key(&values).map(EntityKey::Bytes).map_err(mismatch)
            })
            .collect()
    }
}

fn mismatch(message: String) -> ApiError {
    ApiError::new(StatusCode::TypeMismatch, message)
}

/// Finds the view or group `name`: the Feast feature view of that name (of `project` when
/// given; several projects with that view need one named), else the Quiver group.
pub fn target(store: &Store, name: &str, project: Option<&str>) -> Result<Target, ApiError> {
    let mut found: Vec<Target> = store
        .list_groups(Some(super::feast::FEAST_TAG))
        .into_iter()
        .filter_map(|schema| {
            let feast = FeastView::of(&schema)?;
            let wanted = feast.view == name && project.is_none_or(|p| p == feast.project);
            wanted.then_some(Target {
                schema,
                feast: Some(feast),
            })
        })
        .collect();
    match found.len() {
        1 => return Ok(found.pop().expect("one")),
        0 => {}
        _ => {
            let projects: Vec<&str> = found
                .iter()
                .filter_map(|t| t.feast.as_ref().map(|f| f.project.as_str()))
                .collect();
            return Err(ApiError::invalid(format!(
                "feature view '{name}' exists in projects {}: name one with \"project\"",
                projects.join(", ")
            )));
        }
    }
    match store.describe_group(name) {
        Ok(schema) if project.is_none() => Ok(Target {
            schema,
            feast: None,
        }),
        _ => Err(ApiError::new(
            StatusCode::UnknownGroup,
            match project {
                Some(p) => format!("project '{p}' has no Feast feature view '{name}'"),
                None => format!("no Feast feature view or Quiver group is named '{name}'"),
            },
        )),
    }
}
