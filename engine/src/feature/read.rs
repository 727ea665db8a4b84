//! The read side: resolving feature references into a plan, and turning stored rows into
//! feature values with their statuses. Pure; the store feeds it the rows of one `get_many`.

use std::sync::Arc;

use super::error::FeatureError;
use super::limits::MAX_FEATURE_REFS;
use super::registry::Registry;
use super::row::{Cells, RawCell, Row, KIND_NULL};
use super::schema::GroupSchema;
use super::types::{FeatureRef, FeatureType, FeatureValue, KeyType, Status};

/// One requested feature: where its answer goes and what it is.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    slot: usize,
    id: u32,
    ty: FeatureType,
}

/// The groups a get touches (each read once) and the features wanted from each.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    groups: Vec<Arc<GroupSchema>>,
    /// Per group, wanted features sorted by id, to walk alongside the row's sorted cells.
    wanted: Vec<Vec<Wanted>>,
    slots: usize,
}

impl ReadPlan {
    /// Resolves `features` for an entity key of `key_type`. Every group must exist and use
    /// that key type; every feature must exist (deprecated ones may still be read).
    pub fn new(
        registry: &Registry,
        key_type: KeyType,
        features: &[FeatureRef],
    ) -> Result<ReadPlan, FeatureError> {
        if features.len() > MAX_FEATURE_REFS {
            return Err(FeatureError::TooManyItems {
                what: "feature references in one get",
                count: features.len(),
                max: MAX_FEATURE_REFS,
            });
        }
        let mut plan = ReadPlan {
            groups: Vec::new(),
            wanted: Vec::new(),
            slots: features.len(),
        };
        for (slot, r) in features.iter().enumerate() {
            let entry = registry.group(&r.group)?;
            if entry.schema.key_type != key_type {
                return Err(FeatureError::KeyTypeMismatch {
                    group: r.group.clone(),
                    expected: entry.schema.key_type,
                    got: key_type,
                });
            }
            let feature = entry.feature(&r.feature)?;
            let index = match plan.groups.iter().position(|g| g.id == entry.schema.id) {
                Some(i) => i,
                None => {
                    plan.groups.push(entry.schema.clone());
                    plan.wanted.push(Vec::new());
                    plan.groups.len() - 1
                }
            };
            plan.wanted[index].push(Wanted {
                slot,
                id: feature.id,
                ty: feature.ty,
            });
        }
        plan.wanted.iter_mut().for_each(|w| w.sort_by_key(|x| x.id));
        Ok(plan)
    }

    /// The features wanted from group `i` of [`ReadPlan::groups`]: (answer slot, feature id,
    /// type), by id.
    pub(crate) fn wanted(&self, i: usize) -> impl Iterator<Item = (usize, u32, FeatureType)> + '_ {
        self.wanted[i].iter().map(|w| (w.slot, w.id, w.ty))
    }

    /// The distinct feature ids wanted from group `i`, ascending.
    pub(crate) fn wanted_ids(&self, i: usize) -> Vec<u32> {
        let mut ids: Vec<u32> = self.wanted[i].iter().map(|w| w.id).collect();
        ids.dedup();
        ids
    }

    /// How many answers a row of this plan has.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// The engine groups to read, in the order `decode` expects their rows.
    pub fn groups(&self) -> &[Arc<GroupSchema>] {
        &self.groups
    }

    /// Answers the request from one row per group (`None`: no row), at wall time `now_ms`.
    pub fn decode(
        &self,
        rows: &[Option<&[u8]>],
        now_ms: u64,
    ) -> Result<Vec<FeatureValue>, FeatureError> {
        assert_eq!(rows.len(), self.groups.len(), "one row per planned group");
        let mut out = Vec::new();
        self.decode_into(|i| rows[i], now_ms, &mut out)?;
        Ok(out)
    }

    /// [`ReadPlan::decode`] into `out`, with `row(i)` the row of group `i`: reuses `out`'s
    /// entries (and the buffers of the vectors they hold), so that answering the same
    /// features again allocates nothing.
    pub fn decode_into<'r>(
        &self,
        row: impl Fn(usize) -> Option<&'r [u8]>,
        now_ms: u64,
        out: &mut Vec<FeatureValue>,
    ) -> Result<(), FeatureError> {
        out.truncate(self.slots);
        for v in out.iter_mut() {
            v.status = Status::NotFound;
        }
        out.resize(self.slots, FeatureValue::not_found());
        for (i, (group, wanted)) in self.groups.iter().zip(&self.wanted).enumerate() {
            let Some(row) = row(i) else { continue };
            let body = Row::body(row)?;
            let mut wanted = wanted.iter().peekable();
            for cell in Cells::new(&body)? {
                let cell = cell?;
                while wanted.next_if(|w| w.id < cell.id).is_some() {}
                while let Some(w) = wanted.next_if(|w| w.id == cell.id) {
                    feature_value_into(&cell, w.ty, group.ttl_s, now_ms, &mut out[w.slot])?;
                }
                if wanted.peek().is_none() {
                    break;
                }
            }
        }
        for v in out.iter_mut().filter(|v| v.status == Status::NotFound) {
            *v = FeatureValue::not_found();
        }
        Ok(())
    }
}

/// A stored cell as a get reports it: EXPIRED when older than the group's max age,
/// NULL for a stored null, PRESENT otherwise.
pub fn feature_value(
    cell: &RawCell<'_>,
    ty: FeatureType,
    ttl_s: Option<u32>,
    now_ms: u64,
) -> Result<FeatureValue, FeatureError> {
    let mut out = FeatureValue::not_found();
    feature_value_into(cell, ty, ttl_s, now_ms, &mut out)?;
    Ok(out)
}

/// [`feature_value`] into `out`, reusing the vector buffer it holds.
fn feature_value_into(
    cell: &RawCell<'_>,
    ty: FeatureType,
    ttl_s: Option<u32>,
    now_ms: u64,
    out: &mut FeatureValue,
) -> Result<(), FeatureError> {
    let expired =
        ttl_s.is_some_and(|ttl| now_ms.saturating_sub(cell.event_time_ms) > ttl as u64 * 1000);
    if expired {
        out.status = Status::Expired;
        out.value = super::types::Value::Null;
    } else if cell.kind == KIND_NULL {
        out.status = Status::Null;
        out.value = super::types::Value::Null;
    } else {
        cell.value_into(ty, &mut out.value)?;
        out.status = Status::Present;
    }
    out.event_time_ms = cell.event_time_ms;
    Ok(())
}

/// Every value a row holds for features `schema` knows, by feature name, in id order.
/// Cells of ids the schema does not know (none, unless corrupt) are skipped.
pub fn decode_row(
    schema: &GroupSchema,
    row: &[u8],
    now_ms: u64,
) -> Result<Vec<(String, FeatureValue)>, FeatureError> {
    let body = Row::body(row)?;
    let mut out = Vec::new();
    for cell in Cells::new(&body)? {
        let cell = cell?;
        if let Some(feature) = schema.feature_by_id(cell.id) {
            out.push((
                feature.name.clone(),
                feature_value(&cell, feature.ty, schema.ttl_s, now_ms)?,
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::row::EncodedCells;
    use crate::feature::schema::{Compression, FeatureSpec, GroupSpec};
    use crate::feature::types::Value;

    fn registry() -> Registry {
        let mut reg = Registry::default();
        let mut user = GroupSpec::new(
            "user",
            KeyType::String,
            vec![
                FeatureSpec::new("a", FeatureType::I64),
                FeatureSpec::new("b", FeatureType::F32),
                FeatureSpec::new("c", FeatureType::Bool),
            ],
        );
        user.ttl_s = Some(10);
        for spec in [
            user,
            GroupSpec::new("item", KeyType::I64, vec![]),
            GroupSpec::new(
                "ctx",
                KeyType::String,
                vec![FeatureSpec::new("z", FeatureType::I64)],
            ),
        ] {
            let (schema, index) = reg.plan_create(spec).unwrap();
            reg.commit_schema(schema, Some(index));
        }
        reg
    }

    fn refs(text: &[&str]) -> Vec<FeatureRef> {
        text.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn statuses() {
        let reg = registry();
        let plan = ReadPlan::new(
            &reg,
            KeyType::String,
            &refs(&["user:c", "ctx:z", "user:a", "user:b", "user:a"]),
        )
        .unwrap();
        assert_eq!(
            plan.groups()
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>(),
            ["user", "ctx"]
        );
        let (a, b) = (Value::I64(5), Value::Null);
        let fresh = EncodedCells::new(100_000, [(0, &a), (1, &b)]);
        let old = EncodedCells::new(1_000, [(2, &Value::Bool(true))]);
        let cells: Vec<_> = fresh.cells().chain(old.cells()).collect();
        let row = Row::encode(&cells, Compression::None);
        let got = plan.decode(&[Some(&row), None], 105_000).unwrap();
        let statuses: Vec<Status> = got.iter().map(|v| v.status).collect();
        assert_eq!(
            statuses,
            [
                Status::Expired,
                Status::NotFound,
                Status::Present,
                Status::Null,
                Status::Present
            ]
        );
        assert_eq!(got[2].value, Value::I64(5));
        assert_eq!(got[2].event_time_ms, 100_000);
        assert_eq!(got[0].event_time_ms, 1_000);
    }

    #[test]
    fn bad_references() {
        let reg = registry();
        assert!(matches!(
            ReadPlan::new(&reg, KeyType::String, &refs(&["nope:a"])),
            Err(FeatureError::UnknownGroup { .. })
        ));
        assert!(matches!(
            ReadPlan::new(&reg, KeyType::String, &refs(&["user:nope"])),
            Err(FeatureError::UnknownFeature { .. })
        ));
        assert!(matches!(
            ReadPlan::new(&reg, KeyType::String, &refs(&["user:a", "item:x"])),
            Err(FeatureError::KeyTypeMismatch {
                expected: KeyType::I64,
                got: KeyType::String,
                ..
            })
        ));
    }
}
