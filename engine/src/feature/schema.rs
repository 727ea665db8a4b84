//! Group and feature definitions, and the rules for creating and altering them.

use super::error::FeatureError;
use super::limits::{MAX_FEATURES_PER_GROUP, MAX_TTL_S, MAX_ZSTD_LEVEL, MIN_ZSTD_LEVEL};
use super::name::{check_description, check_name, check_owner, check_tags};
use super::rules::{FeatureRules, ViolationMode};
use super::slo::QualitySlo;
use super::types::{FeatureType, KeyType};
use crate::history::HistoryPolicy;

/// What a caller gives to define a feature.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    pub name: String,
    pub ty: FeatureType,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    /// Validation rules of the feature's values; `Default`: none.
    pub rules: FeatureRules,
}

impl FeatureSpec {
    pub fn new(name: impl Into<String>, ty: FeatureType) -> FeatureSpec {
        FeatureSpec {
            name: name.into(),
            ty,
            description: String::new(),
            owner: String::new(),
            tags: Vec::new(),
            rules: FeatureRules::default(),
        }
    }
}

/// A feature as the registry holds it. Its `id` is its index in the group's feature list and is
/// never reused: features are deprecated, never removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub id: u32,
    pub name: String,
    pub ty: FeatureType,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    pub deprecated: bool,
    pub rules: FeatureRules,
}

/// How a group's rows are compressed. zstd is used on a row only when it makes the row smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Zstd {
        level: i32,
    },
}

/// What a caller gives to create a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    pub key_type: KeyType,
    pub features: Vec<FeatureSpec>,
    /// Max age of a value (from its event time) before reads report it EXPIRED; also the
    /// default TTL of the group's records. `None`: values never expire.
    pub ttl_s: Option<u32>,
    pub compression: Compression,
    /// Whether f32/f64 values may be NaN or infinite.
    pub allow_non_finite: bool,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    /// Keep superseded values (as-of reads, training sets); `None`: only the newest value.
    pub history: Option<HistoryPolicy>,
    /// What a put that breaks a feature's rule does.
    pub on_violation: ViolationMode,
    /// Freshness and drift objectives; `Default`: none.
    pub quality: QualitySlo,
}

impl GroupSpec {
    pub fn new(
        name: impl Into<String>,
        key_type: KeyType,
        features: Vec<FeatureSpec>,
    ) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            key_type,
            features,
            ttl_s: None,
            compression: Compression::None,
            allow_non_finite: false,
            description: String::new(),
            owner: String::new(),
            tags: Vec::new(),
            history: None,
            on_violation: ViolationMode::Reject,
            quality: QualitySlo::default(),
        }
    }
}

/// A group as the registry holds it. `version` starts at 1 and grows by one on every change.
///
/// ## Format
///
/// Stored under engine group 0, key `group/<id>` (ASCII, `<id>` in decimal), written with
/// `Durability::Sync`. Integers little-endian; "varint" is unsigned LEB128; "str" is a varint
/// byte length followed by that many UTF-8 bytes. The engine checksums the record, so the
/// format has a version byte and no checksum of its own.
///
/// | size | field |
/// | --- | --- |
/// | 1 | format version, `1` |
/// | 4 | group id, u32 |
/// | 4 | schema version, u32 (1 at creation, +1 per change) |
/// | str | group name (1..=63 bytes of `[a-z0-9_]`, starting with a letter) |
/// | 1 | key type: 1 = string, 2 = i64, 3 = bytes |
/// | 1 | flags: bit 0 = NaN/infinity allowed, bit 1 = a TTL is set, bit 2 = history is kept for a retention window, bit 3 = history is kept for a number of versions, bit 4 = a value that breaks a feature's rule is dropped from its put (clear: the put is refused), bit 5 = quality objectives follow the history setting; other bits 0 |
/// | 4 | TTL / max age in seconds, u32 (0 when flag bit 1 is clear) |
/// | 1 | compression: 0 = none, 1 = zstd |
/// | 4 | zstd level, i32 (0 when compression is none) |
/// | str | description (at most 1024 bytes) |
/// | str | owner (at most 255 bytes) |
/// | varint | tag count T (at most 32), then T × str tag (1..=63 bytes of printable ASCII) |
/// | varint | feature count F (at most 4096), then F features |
/// | 4 | only when flag bit 2 is set: history retention in seconds, u32 (1..=315360000) |
/// | 4 | only when flag bit 3 is set: history max versions, superseded versions kept per feature and entity, u32 (1..=100000) |
/// | 4 | only when flag bit 5 is set: max staleness in seconds, u32 (0 = none, else 1..=315360000) |
/// | 8 | only when flag bit 5 is set: drift PSI threshold, f64 (0 = none, else in (0, 1000]) |
/// | 8 | only when flag bit 5 is set: drift quantile-distance threshold, f64 (0 = none, else in (0, 1000]) |
///
/// A feature (its id is its position, 0-based: features are never removed, only deprecated,
/// so ids are never reused):
///
/// | size | field |
/// | --- | --- |
/// | str | feature name (same rule as group names, unique within the group) |
/// | 1 | type tag: 1 bool, 2 i64, 3 f32, 4 f64, 5 string, 6 bytes, 7 f32[N], 8 list<i64>, 9 list<f32>, 10 list<string> |
/// | 4 | only for tag 7: dimension N, u32, 1..=65536 |
/// | 1 | flags: bit 0 = deprecated, bit 1 = the feature has validation rules; other bits 0 |
/// | str | description (at most 1024 bytes) |
/// | str | owner (at most 255 bytes) |
/// | varint | tag count T (at most 32), then T × str tag |
/// | … | only when flag bit 1 is set: the feature's rules, as documented on [`FeatureRules`] |
///
/// Nothing follows the last feature but the history setting (when flag bit 2 or 3 is set) and
/// the quality objectives (when flag bit 5 is set).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSchema {
    pub id: u32,
    pub version: u32,
    pub name: String,
    pub key_type: KeyType,
    pub features: Vec<Feature>,
    pub ttl_s: Option<u32>,
    pub compression: Compression,
    pub allow_non_finite: bool,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    /// What the group keeps of superseded values; `None`: nothing (the default).
    pub history: Option<HistoryPolicy>,
    /// What a put that breaks a feature's rule does.
    pub on_violation: ViolationMode,
    /// Freshness and drift objectives.
    pub quality: QualitySlo,
}

/// One change to a group.
#[derive(Debug, Clone, PartialEq)]
pub enum Alter {
    AddFeature(FeatureSpec),
    DeprecateFeature(String),
    SetTtl(Option<u32>),
    SetDescription(String),
    SetOwner(String),
    SetTags(Vec<String>),
    /// Sets the history retention window (keeping the version count bound), turning history
    /// on for writes from now on; `None` turns history off (both bounds): versions already kept
    /// stay until the group is dropped, and reads of them are refused while history is off.
    SetHistoryRetention(Option<u32>),
    /// Sets the history version count bound (keeping the window), turning history on for
    /// writes from now on; `None` removes the count bound, refused when the group has no
    /// window (turn history off with `SetHistoryRetention(None)` instead).
    SetHistoryMaxVersions(Option<u32>),
    /// Always refused: stored values keep their type; add a new feature instead.
    ChangeFeatureType(String, FeatureType),
    /// Replaces all the rules of a feature (`FeatureRules::default()` removes them). Values
    /// already stored are not checked again.
    SetRules(String, FeatureRules),
    /// Sets what a put that breaks a rule does.
    SetViolationMode(ViolationMode),
    /// Sets (or with `None` removes) the freshness objective, seconds.
    SetMaxStaleness(Option<u32>),
    /// Sets (or removes) the drift threshold on the population stability index.
    SetDriftPsi(Option<f64>),
    /// Sets (or removes) the drift threshold on the quantile distance.
    SetDriftDistance(Option<f64>),
}

pub(crate) fn check_ttl(ttl_s: Option<u32>) -> Result<(), FeatureError> {
    match ttl_s {
        Some(t) if t == 0 || t > MAX_TTL_S => Err(FeatureError::InvalidTtl {
            ttl_s: t,
            max: MAX_TTL_S,
        }),
        _ => Ok(()),
    }
}

fn check_compression(compression: Compression) -> Result<(), FeatureError> {
    match compression {
        Compression::Zstd { level } if !(MIN_ZSTD_LEVEL..=MAX_ZSTD_LEVEL).contains(&level) => {
            Err(FeatureError::InvalidCompressionLevel {
                level,
                min: MIN_ZSTD_LEVEL,
                max: MAX_ZSTD_LEVEL,
            })
        }
        _ => Ok(()),
    }
}

fn check_feature_spec(group: &str, spec: &FeatureSpec) -> Result<(), FeatureError> {
    check_name("feature", &spec.name)?;
    spec.ty.validate()?;
    let what = format!("feature '{}' of group '{group}'", spec.name);
    check_description(&what, &spec.description)?;
    check_owner(&what, &spec.owner)?;
    check_tags(&what, &spec.tags)?;
    spec.rules.check(group, &spec.name, spec.ty)
}

impl GroupSchema {
    /// Validates `spec` and builds version 1 of the group with id `id`.
    pub fn from_spec(id: u32, spec: GroupSpec) -> Result<GroupSchema, FeatureError> {
        check_name("group", &spec.name)?;
        let what = format!("group '{}'", spec.name);
        check_description(&what, &spec.description)?;
        check_owner(&what, &spec.owner)?;
        check_tags(&what, &spec.tags)?;
        check_ttl(spec.ttl_s)?;
        check_compression(spec.compression)?;
        if let Some(policy) = &spec.history {
            policy.check(&spec.name)?;
        }
        spec.quality.check(&spec.name)?;
        let mut schema = GroupSchema {
            id,
            version: 1,
            name: spec.name,
            key_type: spec.key_type,
            features: Vec::with_capacity(spec.features.len()),
            ttl_s: spec.ttl_s,
            compression: spec.compression,
            allow_non_finite: spec.allow_non_finite,
            description: spec.description,
            owner: spec.owner,
            tags: spec.tags,
            history: spec.history,
            on_violation: spec.on_violation,
            quality: spec.quality,
        };
        for feature in spec.features {
            schema.push_feature(feature)?;
        }
        Ok(schema)
    }

    /// The feature named `name`, deprecated or not.
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// The feature whose id is `id`.
    pub fn feature_by_id(&self, id: u32) -> Option<&Feature> {
        self.features.get(id as usize)
    }

    fn unknown_feature(&self, name: &str) -> FeatureError {
        FeatureError::UnknownFeature {
            group: self.name.clone(),
            feature: name.to_string(),
        }
    }

    fn push_feature(&mut self, spec: FeatureSpec) -> Result<(), FeatureError> {
        check_feature_spec(&self.name, &spec)?;
        if self.feature(&spec.name).is_some() {
            return Err(FeatureError::FeatureExists {
                group: self.name.clone(),
                feature: spec.name,
            });
        }
        if self.features.len() >= MAX_FEATURES_PER_GROUP {
            return Err(FeatureError::TooManyFeatures {
                group: self.name.clone(),
                count: self.features.len() + 1,
                max: MAX_FEATURES_PER_GROUP,
            });
        }
        self.features.push(Feature {
            id: self.features.len() as u32,
            name: spec.name,
            ty: spec.ty,
            description: spec.description,
            owner: spec.owner,
            tags: spec.tags,
            deprecated: false,
            rules: spec.rules,
        });
        Ok(())
    }

    /// Returns the next version of this schema with `alter` applied, or why it is refused.
    /// Stored rows are never touched: a new feature simply reads NOT_FOUND in older rows.
    pub fn altered(&self, alter: Alter) -> Result<GroupSchema, FeatureError> {
        let mut next = self.clone();
        next.version = self
            .version
            .checked_add(1)
            .ok_or_else(|| FeatureError::VersionLimit {
                group: self.name.clone(),
            })?;
        let what = format!("group '{}'", self.name);
        match alter {
            Alter::AddFeature(spec) => next.push_feature(spec)?,
            Alter::DeprecateFeature(name) => {
                let index = self
                    .feature(&name)
                    .ok_or_else(|| self.unknown_feature(&name))?
                    .id as usize;
                if next.features[index].deprecated {
                    return Err(FeatureError::FeatureDeprecated {
                        group: self.name.clone(),
                        feature: name,
                    });
                }
                next.features[index].deprecated = true;
            }
            Alter::SetTtl(ttl_s) => {
                check_ttl(ttl_s)?;
                next.ttl_s = ttl_s;
            }
            Alter::SetDescription(text) => {
                check_description(&what, &text)?;
                next.description = text;
            }
            Alter::SetOwner(text) => {
                check_owner(&what, &text)?;
                next.owner = text;
            }
            Alter::SetTags(tags) => {
                check_tags(&what, &tags)?;
                next.tags = tags;
            }
            Alter::SetHistoryRetention(retention_s) => {
                next.history = retention_s.map(|r| HistoryPolicy {
                    retention_s: Some(r),
                    max_versions: self.history.and_then(|h| h.max_versions),
                });
            }
            Alter::SetHistoryMaxVersions(max_versions) => {
                let retention_s = self.history.and_then(|h| h.retention_s);
                if max_versions.is_none() && retention_s.is_none() {
                    return Err(FeatureError::InvalidHistory {
                        group: self.name.clone(),
                        reason: "removing the version count would leave history without a bound \
                                 (no retention window is set); turn history off instead"
                            .into(),
                    });
                }
                next.history = Some(HistoryPolicy {
                    retention_s,
                    max_versions,
                });
            }
            Alter::SetRules(name, rules) => {
                let index = self
                    .feature(&name)
                    .ok_or_else(|| self.unknown_feature(&name))?
                    .id as usize;
                rules.check(&self.name, &name, self.features[index].ty)?;
                next.features[index].rules = rules;
            }
            Alter::SetViolationMode(mode) => next.on_violation = mode,
            Alter::SetMaxStaleness(s) => next.quality.max_staleness_s = s,
            Alter::SetDriftPsi(v) => next.quality.drift_psi = v,
            Alter::SetDriftDistance(v) => next.quality.drift_distance = v,
            Alter::ChangeFeatureType(name, to) => {
                let feature = self
                    .feature(&name)
                    .ok_or_else(|| self.unknown_feature(&name))?;
                return Err(FeatureError::TypeChangeRefused {
                    group: self.name.clone(),
                    feature: name,
                    from: feature.ty,
                    to,
                });
            }
        }
        if let Some(policy) = &next.history {
            policy.check(&self.name)?;
        }
        next.quality.check(&self.name)?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GroupSpec {
        GroupSpec::new(
            "user",
            KeyType::String,
            vec![
                FeatureSpec::new("age", FeatureType::I64),
                FeatureSpec::new("emb", FeatureType::Vector(4)),
            ],
        )
    }

    #[test]
    fn ids_follow_order_and_versions_grow() {
        let s = GroupSchema::from_spec(7, spec()).unwrap();
        assert_eq!((s.id, s.version), (7, 1));
        assert_eq!(s.feature("emb").unwrap().id, 1);
        let s2 = s
            .altered(Alter::AddFeature(FeatureSpec::new("ctr", FeatureType::F32)))
            .unwrap();
        assert_eq!((s2.version, s2.feature("ctr").unwrap().id), (2, 2));
        let s3 = s2.altered(Alter::DeprecateFeature("age".into())).unwrap();
        assert!(s3.feature("age").unwrap().deprecated);
        assert_eq!(s3.version, 3);
        assert!(matches!(
            s3.altered(Alter::AddFeature(FeatureSpec::new("age", FeatureType::F64))),
            Err(FeatureError::FeatureExists { .. })
        ));
    }

    #[test]
    fn type_change_is_refused() {
        let s = GroupSchema::from_spec(1, spec()).unwrap();
        let err = s
            .altered(Alter::ChangeFeatureType("age".into(), FeatureType::F64))
            .unwrap_err();
        assert!(
            err.to_string().contains("add a new feature instead"),
            "{err}"
        );
        assert!(matches!(
            err,
            FeatureError::TypeChangeRefused {
                from: FeatureType::I64,
                to: FeatureType::F64,
                ..
            }
        ));
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut s = spec();
        s.features.push(FeatureSpec::new("age", FeatureType::Bool));
        assert!(matches!(
            GroupSchema::from_spec(1, s),
            Err(FeatureError::FeatureExists { .. })
        ));
        let mut s = spec();
        s.ttl_s = Some(0);
        assert!(matches!(
            GroupSchema::from_spec(1, s),
            Err(FeatureError::InvalidTtl { .. })
        ));
        let mut s = spec();
        s.compression = Compression::Zstd { level: 99 };
        assert!(matches!(
            GroupSchema::from_spec(1, s),
            Err(FeatureError::InvalidCompressionLevel { .. })
        ));
        let mut s = spec();
        s.features = (0..=MAX_FEATURES_PER_GROUP)
            .map(|i| FeatureSpec::new(format!("f{i}"), FeatureType::Bool))
            .collect();
        assert!(matches!(
            GroupSchema::from_spec(1, s),
            Err(FeatureError::TooManyFeatures { count: 4097, .. })
        ));
    }
}
