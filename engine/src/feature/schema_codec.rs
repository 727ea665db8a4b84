//! Binary encoding of group schemas and of the registry index. Both are stored as engine
//! records under the reserved group 0; the engine checksums every record, so these formats
//! carry only a version byte. The byte-by-byte layouts are documented on [`GroupSchema`] and
//! [`RegistryIndex`].

use super::bytes::{put_bytes, put_varint, Reader};
use super::error::FeatureError;
use super::limits::{
    MAX_DESCRIPTION_BYTES, MAX_FEATURES_PER_GROUP, MAX_GROUPS, MAX_NAME_BYTES, MAX_OWNER_BYTES,
    MAX_TAGS,
};
use super::name::{check_name, check_tags};
use super::rules::{FeatureRules, ViolationMode};
use super::schema::{Compression, Feature, GroupSchema};
use super::slo::QualitySlo;
use super::types::{FeatureType, KeyType};
use crate::history::HistoryPolicy;

pub(crate) const SCHEMA_FORMAT_VERSION: u8 = 1;
pub(crate) const REGISTRY_FORMAT_VERSION: u8 = 1;

const SCHEMA: &str = "group schema";

fn put_tags(out: &mut Vec<u8>, tags: &[String]) {
    put_varint(out, tags.len() as u64);
    for tag in tags {
        put_bytes(out, tag.as_bytes());
    }
}

fn read_tags(r: &mut Reader<'_>) -> Result<Vec<String>, FeatureError> {
    let count = r.varint_max(MAX_TAGS, "tag count")?;
    let tags = (0..count)
        .map(|_| r.string(MAX_NAME_BYTES, "tag"))
        .collect::<Result<Vec<_>, _>>()?;
    check_tags("stored schema", &tags).map_err(|e| FeatureError::corrupt(SCHEMA, e.to_string()))?;
    Ok(tags)
}

fn read_name(r: &mut Reader<'_>, what: &'static str) -> Result<String, FeatureError> {
    let name = r.string(MAX_NAME_BYTES, what)?;
    check_name(what, &name).map_err(|e| FeatureError::corrupt(SCHEMA, e.to_string()))?;
    Ok(name)
}

fn put_feature_type(out: &mut Vec<u8>, ty: FeatureType) {
    out.push(ty.tag());
    if let FeatureType::Vector(dim) = ty {
        out.extend_from_slice(&dim.to_le_bytes());
    }
}

fn read_feature_type(r: &mut Reader<'_>) -> Result<FeatureType, FeatureError> {
    let ty = match r.u8()? {
        1 => FeatureType::Bool,
        2 => FeatureType::I64,
        3 => FeatureType::F32,
        4 => FeatureType::F64,
        5 => FeatureType::String,
        6 => FeatureType::Bytes,
        7 => FeatureType::Vector(r.u32()?),
        8 => FeatureType::ListI64,
        9 => FeatureType::ListF32,
        10 => FeatureType::ListString,
        tag => return Err(r.err(format!("unknown feature type tag {tag}"))),
    };
    ty.validate().map_err(|e| r.err(e.to_string()))?;
    Ok(ty)
}

fn put_feature(out: &mut Vec<u8>, f: &Feature) {
    put_bytes(out, f.name.as_bytes());
    put_feature_type(out, f.ty);
    out.push(f.deprecated as u8 | (!f.rules.is_empty() as u8) << 1);
    put_bytes(out, f.description.as_bytes());
    put_bytes(out, f.owner.as_bytes());
    put_tags(out, &f.tags);
    if !f.rules.is_empty() {
        f.rules.put(out);
    }
}

fn read_feature(r: &mut Reader<'_>, id: u32) -> Result<Feature, FeatureError> {
    let name = read_name(r, "feature")?;
    let ty = read_feature_type(r)?;
    let flags = r.u8()?;
    if flags & !0b11 != 0 {
        return Err(r.err(format!("feature flags {flags:#x} has unknown bits")));
    }
    let description = r.string(MAX_DESCRIPTION_BYTES, "description")?;
    let owner = r.string(MAX_OWNER_BYTES, "owner")?;
    let tags = read_tags(r)?;
    let rules = if flags & 0b10 != 0 {
        let rules = FeatureRules::read(r)?;
        if rules.is_empty() {
            return Err(r.err("rules flag set with no rule"));
        }
        rules
            .check("stored schema", &name, ty)
            .map_err(|e| r.err(e.to_string()))?;
        rules
    } else {
        FeatureRules::default()
    };
    Ok(Feature {
        id,
        name,
        ty,
        deprecated: flags & 1 != 0,
        description,
        owner,
        tags,
        rules,
    })
}

impl GroupSchema {
    /// Encodes the schema as documented on [`GroupSchema`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.features.len() * 24);
        out.push(SCHEMA_FORMAT_VERSION);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        put_bytes(&mut out, self.name.as_bytes());
        out.push(self.key_type.tag());
        out.push(
            self.allow_non_finite as u8
                | (self.ttl_s.is_some() as u8) << 1
                | (self.history.is_some_and(|h| h.retention_s.is_some()) as u8) << 2
                | (self.history.is_some_and(|h| h.max_versions.is_some()) as u8) << 3
                | ((self.on_violation == ViolationMode::Drop) as u8) << 4
                | (!self.quality.is_empty() as u8) << 5,
        );
        out.extend_from_slice(&self.ttl_s.unwrap_or(0).to_le_bytes());
        let (codec, level) = match self.compression {
            Compression::None => (0u8, 0i32),
            Compression::Zstd { level } => (1, level),
        };
        out.push(codec);
        out.extend_from_slice(&level.to_le_bytes());
        put_bytes(&mut out, self.description.as_bytes());
        put_bytes(&mut out, self.owner.as_bytes());
        put_tags(&mut out, &self.tags);
        put_varint(&mut out, self.features.len() as u64);
        for (index, feature) in self.features.iter().enumerate() {
            assert_eq!(feature.id as usize, index, "feature ids are their index");
            put_feature(&mut out, feature);
        }
        if let Some(h) = &self.history {
            for bound in [h.retention_s, h.max_versions].into_iter().flatten() {
                out.extend_from_slice(&bound.to_le_bytes());
            }
        }
        if !self.quality.is_empty() {
            let q = &self.quality;
            out.extend_from_slice(&q.max_staleness_s.unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&q.drift_psi.unwrap_or(0.0).to_le_bytes());
            out.extend_from_slice(&q.drift_distance.unwrap_or(0.0).to_le_bytes());
        }
        out
    }

    /// Decodes a schema written by [`GroupSchema::encode`]; any inconsistency is `Corrupt`.
    pub fn decode(bytes: &[u8]) -> Result<GroupSchema, FeatureError> {
        let mut r = Reader::new(bytes, SCHEMA);
        let format = r.u8()?;
        if format != SCHEMA_FORMAT_VERSION {
            return Err(r.err(format!("unknown schema format version {format}")));
        }
        let id = r.u32()?;
        let version = r.u32()?;
        let name = read_name(&mut r, "group")?;
        let key_type = KeyType::from_tag(r.u8()?).ok_or_else(|| r.err("unknown key type"))?;
        let flags = r.u8()?;
        if flags & !0b11_1111 != 0 {
            return Err(r.err(format!("group flags {flags:#x} has unknown bits")));
        }
        let ttl_raw = r.u32()?;
        let ttl_s = (flags & 0b10 != 0).then_some(ttl_raw);
        let compression = match (r.u8()?, r.i32()?) {
            (0, _) => Compression::None,
            (1, level) => Compression::Zstd { level },
            (codec, _) => return Err(r.err(format!("unknown compression {codec}"))),
        };
        let description = r.string(MAX_DESCRIPTION_BYTES, "description")?;
        let owner = r.string(MAX_OWNER_BYTES, "owner")?;
        let tags = read_tags(&mut r)?;
        let count = r.varint_max(MAX_FEATURES_PER_GROUP, "feature count")?;
        let features = (0..count as u32)
            .map(|id| read_feature(&mut r, id))
            .collect::<Result<Vec<_>, _>>()?;
        let history = if flags & 0b1100 != 0 {
            let policy = HistoryPolicy {
                retention_s: (flags & 0b100 != 0).then(|| r.u32()).transpose()?,
                max_versions: (flags & 0b1000 != 0).then(|| r.u32()).transpose()?,
            };
            policy
                .check(&name)
                .map_err(|e| r.err(format!("history setting: {e}")))?;
            Some(policy)
        } else {
            None
        };
        let quality = if flags & 0b10_0000 != 0 {
            let staleness = r.u32()?;
            let psi = f64::from_bits(r.u64()?);
            let distance = f64::from_bits(r.u64()?);
            let q = QualitySlo {
                max_staleness_s: (staleness != 0).then_some(staleness),
                drift_psi: (psi != 0.0).then_some(psi),
                drift_distance: (distance != 0.0).then_some(distance),
            };
            if q.is_empty() {
                return Err(r.err("quality flag set with no objective"));
            }
            q.check(&name)
                .map_err(|e| r.err(format!("quality objectives: {e}")))?;
            q
        } else {
            QualitySlo::default()
        };
        if !r.is_empty() {
            return Err(r.err("trailing bytes"));
        }
        let schema = GroupSchema {
            id,
            version,
            name,
            key_type,
            features,
            ttl_s,
            compression,
            allow_non_finite: flags & 1 != 0,
            description,
            owner,
            tags,
            history,
            on_violation: if flags & 0b1_0000 != 0 {
                ViolationMode::Drop
            } else {
                ViolationMode::Reject
            },
            quality,
        };
        schema.check_unique_names()?;
        Ok(schema)
    }

    fn check_unique_names(&self) -> Result<(), FeatureError> {
        let mut names: Vec<&str> = self.features.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        match names.windows(2).find(|w| w[0] == w[1]) {
            Some(w) => Err(FeatureError::corrupt(
                SCHEMA,
                format!("feature '{}' appears twice", w[0]),
            )),
            None => Ok(()),
        }
    }
}

/// The registry's index record: which groups exist and the next group id.
///
/// ## Format
///
/// Stored under engine group 0, key `registry` (8 ASCII bytes), written with `Durability::Sync`.
///
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 1 | format version, `1` |
/// | 1 | 4 | `next_group_id`, u32 LE: the id the next created group gets (ids start at 1 and are never reused) |
/// | 5 | varint | `live` count L (LEB128, at most `MAX_GROUPS`) |
/// | … | 4 × L | live group ids, u32 LE each, ascending |
/// | … | varint | `dropping` count D (LEB128, at most `MAX_GROUPS`) |
/// | … | 4 × D | ids of dropped groups whose records may not yet be reclaimed, u32 LE, ascending |
///
/// Nothing follows. Each live id `N` has its schema under key `group/N` (ASCII decimal `N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryIndex {
    pub next_group_id: u32,
    pub live: Vec<u32>,
    pub dropping: Vec<u32>,
}

impl Default for RegistryIndex {
    fn default() -> RegistryIndex {
        RegistryIndex {
            next_group_id: 1,
            live: Vec::new(),
            dropping: Vec::new(),
        }
    }
}

impl RegistryIndex {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 4 * (self.live.len() + self.dropping.len()));
        out.push(REGISTRY_FORMAT_VERSION);
        out.extend_from_slice(&self.next_group_id.to_le_bytes());
        for ids in [&self.live, &self.dropping] {
            put_varint(&mut out, ids.len() as u64);
            ids.iter()
                .for_each(|id| out.extend_from_slice(&id.to_le_bytes()));
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<RegistryIndex, FeatureError> {
        let mut r = Reader::new(bytes, "registry index");
        let format = r.u8()?;
        if format != REGISTRY_FORMAT_VERSION {
            return Err(r.err(format!("unknown registry format version {format}")));
        }
        let next_group_id = r.u32()?;
        let mut lists = [Vec::new(), Vec::new()];
        for ids in &mut lists {
            let count = r.varint_max(MAX_GROUPS, "group count")?;
            for _ in 0..count {
                let id = r.u32()?;
                if id == 0 || id >= next_group_id || ids.last().is_some_and(|&last| last >= id) {
                    return Err(r.err(format!("group id {id} out of order or range")));
                }
                ids.push(id);
            }
        }
        if !r.is_empty() {
            return Err(r.err("trailing bytes"));
        }
        let [live, dropping] = lists;
        Ok(RegistryIndex {
            next_group_id,
            live,
            dropping,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::schema::{Alter, FeatureSpec, GroupSpec};

    fn schema() -> GroupSchema {
        let mut spec = GroupSpec::new(
            "user",
            KeyType::I64,
            vec![
                FeatureSpec::new("age", FeatureType::I64),
                FeatureSpec {
                    description: "embedding".into(),
                    owner: "ml".into(),
                    tags: vec!["pii".into()],
                    ..FeatureSpec::new("emb", FeatureType::Vector(128))
                },
                FeatureSpec::new("names", FeatureType::ListString),
            ],
        );
        spec.ttl_s = Some(3600);
        spec.compression = Compression::Zstd { level: 3 };
        spec.allow_non_finite = true;
        spec.description = "users".into();
        spec.tags = vec!["core".into(), "team:ads".into()];
        spec.on_violation = ViolationMode::Drop;
        for t in ["range=[0,1e6)", "norm=[0.5,2]", "finite"] {
            spec.features[1].rules.parse_rule(t).unwrap();
        }
        for t in [
            "in=a,b",
            "regex=[a-z]+",
            "len=[1,8]",
            "not-null",
            "lag=1d",
            "future=5m",
        ] {
            spec.features[2].rules.parse_rule(t).unwrap();
        }
        GroupSchema::from_spec(5, spec)
            .unwrap()
            .altered(Alter::DeprecateFeature("age".into()))
            .unwrap()
    }

    #[test]
    fn schema_round_trips() {
        let s = schema();
        assert_eq!(GroupSchema::decode(&s.encode()).unwrap(), s);
        let mut plain =
            GroupSchema::from_spec(1, GroupSpec::new("g", KeyType::Bytes, vec![])).unwrap();
        plain.ttl_s = None;
        assert_eq!(GroupSchema::decode(&plain.encode()).unwrap(), plain);
        let without = plain.encode();
        for (history, extra) in [
            (HistoryPolicy::retention(86_400), 4),
            (HistoryPolicy::retention(1), 4),
            (HistoryPolicy::versions(3), 4),
            (HistoryPolicy::retention(60).with_max_versions(1), 8),
        ] {
            let mut kept = plain.clone();
            kept.history = Some(history);
            let bytes = kept.encode();
            assert_eq!(
                bytes.len(),
                without.len() + extra,
                "a u32 per bound after the features"
            );
            assert_eq!(GroupSchema::decode(&bytes).unwrap(), kept);
            for len in without.len()..bytes.len() {
                assert!(GroupSchema::decode(&bytes[..len]).is_err(), "len {len}");
            }
        }
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        let bytes = schema().encode();
        for len in 0..bytes.len() {
            assert!(GroupSchema::decode(&bytes[..len]).is_err(), "len {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(GroupSchema::decode(&longer).is_err());
    }

    #[test]
    fn registry_round_trips_and_checks_order() {
        let idx = RegistryIndex {
            next_group_id: 9,
            live: vec![1, 4, 8],
            dropping: vec![2],
        };
        assert_eq!(RegistryIndex::decode(&idx.encode()).unwrap(), idx);
        let bad = RegistryIndex {
            next_group_id: 9,
            live: vec![4, 1],
            dropping: vec![],
        };
        assert!(RegistryIndex::decode(&bad.encode()).is_err());
        let bad = RegistryIndex {
            next_group_id: 4,
            live: vec![4],
            dropping: vec![],
        };
        assert!(RegistryIndex::decode(&bad.encode()).is_err());
    }
}
