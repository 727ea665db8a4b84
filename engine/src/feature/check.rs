//! Checks a value against its feature's type and the value limits, before anything is written.

use super::error::FeatureError;
use super::limits::{MAX_LIST_LEN, MAX_VALUE_BYTES};
use super::schema::{Feature, GroupSchema};
use super::types::{FeatureType, Value};

/// Checks that `value` may be written to `feature` of `group`: matching type, vector dimension,
/// finite numbers unless the group allows otherwise, sizes and lengths within their limits.
pub fn check_value(
    group: &GroupSchema,
    feature: &Feature,
    value: &Value,
) -> Result<(), FeatureError> {
    let mismatch = || FeatureError::TypeMismatch {
        group: group.name.clone(),
        feature: feature.name.clone(),
        expected: feature.ty,
        got: value.type_name(),
    };
    let ctx = Ctx { group, feature };
    match (feature.ty, value) {
        (_, Value::Null) => Ok(()),
        (FeatureType::Bool, Value::Bool(_)) | (FeatureType::I64, Value::I64(_)) => Ok(()),
        (FeatureType::F32, Value::F32(x)) => ctx.finite(x.is_finite(), || x.to_string()),
        (FeatureType::F64, Value::F64(x)) => ctx.finite(x.is_finite(), || x.to_string()),
        (FeatureType::String, Value::String(s)) => ctx.size(s.len()),
        (FeatureType::Bytes, Value::Bytes(b)) => ctx.size(b.len()),
        (FeatureType::Vector(dim), Value::Vector(v)) => {
            if v.len() != dim as usize {
                return Err(FeatureError::VectorDimension {
                    group: group.name.clone(),
                    feature: feature.name.clone(),
                    expected: dim,
                    got: v.len(),
                });
            }
            ctx.floats(v)
        }
        (FeatureType::ListI64, Value::ListI64(v)) => ctx.list(v.len()),
        (FeatureType::ListF32, Value::ListF32(v)) => {
            ctx.list(v.len())?;
            ctx.floats(v)
        }
        (FeatureType::ListString, Value::ListString(v)) => {
            ctx.list(v.len())?;
            v.iter().try_for_each(|s| ctx.size(s.len()))
        }
        _ => Err(mismatch()),
    }
}

struct Ctx<'a> {
    group: &'a GroupSchema,
    feature: &'a Feature,
}

impl Ctx<'_> {
    fn finite(&self, finite: bool, shown: impl FnOnce() -> String) -> Result<(), FeatureError> {
        if finite || self.group.allow_non_finite {
            return Ok(());
        }
        Err(FeatureError::NonFinite {
            group: self.group.name.clone(),
            feature: self.feature.name.clone(),
            value: shown(),
        })
    }

    fn floats(&self, values: &[f32]) -> Result<(), FeatureError> {
        match values.iter().find(|x| !x.is_finite()) {
            Some(x) => self.finite(false, || x.to_string()),
            None => Ok(()),
        }
    }

    fn size(&self, len: usize) -> Result<(), FeatureError> {
        if len > MAX_VALUE_BYTES {
            return Err(FeatureError::ValueTooLarge {
                group: self.group.name.clone(),
                feature: self.feature.name.clone(),
                len,
                max: MAX_VALUE_BYTES,
            });
        }
        Ok(())
    }

    fn list(&self, len: usize) -> Result<(), FeatureError> {
        if len > MAX_LIST_LEN {
            return Err(FeatureError::ListTooLong {
                group: self.group.name.clone(),
                feature: self.feature.name.clone(),
                len,
                max: MAX_LIST_LEN,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::schema::{FeatureSpec, GroupSpec};
    use crate::feature::types::KeyType;

    fn group(allow_non_finite: bool) -> GroupSchema {
        let mut spec = GroupSpec::new(
            "user",
            KeyType::String,
            vec![
                FeatureSpec::new("ctr_7d", FeatureType::F32),
                FeatureSpec::new("emb", FeatureType::Vector(3)),
                FeatureSpec::new("tags", FeatureType::ListString),
            ],
        );
        spec.allow_non_finite = allow_non_finite;
        GroupSchema::from_spec(1, spec).unwrap()
    }

    #[test]
    fn type_mismatch_names_everything() {
        let g = group(false);
        let err = check_value(&g, &g.features[0], &Value::String("x".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "feature 'ctr_7d' of group 'user' expects f32, got string"
        );
    }

    #[test]
    fn vectors_nan_and_sizes() {
        let g = group(false);
        assert!(check_value(&g, &g.features[1], &Value::Vector(vec![1.0, 2.0, 3.0])).is_ok());
        assert!(matches!(
            check_value(&g, &g.features[1], &Value::Vector(vec![1.0])),
            Err(FeatureError::VectorDimension {
                expected: 3,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            check_value(&g, &g.features[1], &Value::Vector(vec![1.0, f32::NAN, 3.0])),
            Err(FeatureError::NonFinite { .. })
        ));
        assert!(matches!(
            check_value(&g, &g.features[0], &Value::F32(f32::INFINITY)),
            Err(FeatureError::NonFinite { .. })
        ));
        let lenient = group(true);
        assert!(check_value(&lenient, &lenient.features[0], &Value::F32(f32::NAN)).is_ok());
        let big = vec!["x".repeat(MAX_VALUE_BYTES + 1)];
        assert!(matches!(
            check_value(&g, &g.features[2], &Value::ListString(big)),
            Err(FeatureError::ValueTooLarge { .. })
        ));
        let long = vec![String::new(); MAX_LIST_LEN + 1];
        assert!(matches!(
            check_value(&g, &g.features[2], &Value::ListString(long)),
            Err(FeatureError::ListTooLong { .. })
        ));
        assert!(check_value(&g, &g.features[2], &Value::Null).is_ok());
    }
}
