//! Wire encodings of the engine's feature types (`quiver_engine::feature`).
//! Each function pair is documented byte by byte in `docs/PROTOCOL.md`, section "Types".

use super::wire::{
    put_bytes, put_len, put_opt_u32, put_str, put_strs, put_u16, put_u32, put_u64, zero_unless,
    WireReader,
};
use super::DecodeError;
use quiver_engine::feature::{
    Alter, Compression, EntityKey, Feature, FeatureRef, FeatureRules, FeatureSpec, FeatureType,
    FeatureValue, GroupSchema, GroupSpec, KeyType, PutOptions, PutResult, QualitySlo, ScanItem,
    Status, Value, ViolationMode, WriteMode,
};
use quiver_engine::history::HistoryPolicy;
use quiver_engine::Durability;

pub fn put_key(out: &mut Vec<u8>, key: &EntityKey) {
    match key {
        EntityKey::String(s) => {
            out.push(0);
            put_str(out, s);
        }
        EntityKey::I64(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        EntityKey::Bytes(b) => {
            out.push(2);
            put_bytes(out, b);
        }
    }
}

pub fn get_key(r: &mut WireReader<'_>) -> Result<EntityKey, DecodeError> {
    match r.u8("entity key tag")? {
        0 => Ok(EntityKey::String(r.string("entity key")?)),
        1 => Ok(EntityKey::I64(r.i64("entity key")?)),
        2 => Ok(EntityKey::Bytes(r.bytes("entity key")?.to_vec())),
        tag => Err(DecodeError::UnknownTag {
            what: "entity key",
            tag,
        }),
    }
}

pub fn put_key_type(out: &mut Vec<u8>, key_type: KeyType) {
    out.push(match key_type {
        KeyType::String => 0,
        KeyType::I64 => 1,
        KeyType::Bytes => 2,
    });
}

pub fn get_key_type(r: &mut WireReader<'_>) -> Result<KeyType, DecodeError> {
    match r.u8("key type")? {
        0 => Ok(KeyType::String),
        1 => Ok(KeyType::I64),
        2 => Ok(KeyType::Bytes),
        tag => Err(DecodeError::UnknownTag {
            what: "key type",
            tag,
        }),
    }
}

/// Always 5 bytes: tag, then u32 dimension (0 unless the type is a vector).
pub fn put_feature_type(out: &mut Vec<u8>, ty: FeatureType) {
    let (tag, dim) = match ty {
        FeatureType::Bool => (0, 0),
        FeatureType::I64 => (1, 0),
        FeatureType::F32 => (2, 0),
        FeatureType::F64 => (3, 0),
        FeatureType::String => (4, 0),
        FeatureType::Bytes => (5, 0),
        FeatureType::Vector(dim) => (6, dim),
        FeatureType::ListI64 => (7, 0),
        FeatureType::ListF32 => (8, 0),
        FeatureType::ListString => (9, 0),
    };
    out.push(tag);
    put_u32(out, dim);
}

pub fn get_feature_type(r: &mut WireReader<'_>) -> Result<FeatureType, DecodeError> {
    let tag = r.u8("feature type")?;
    let dim = r.u32("feature type dimension")?;
    zero_unless(
        tag == 6,
        "feature type dimension",
        "for a type other than a vector (tag 6)",
        dim.into(),
    )?;
    Ok(match tag {
        0 => FeatureType::Bool,
        1 => FeatureType::I64,
        2 => FeatureType::F32,
        3 => FeatureType::F64,
        4 => FeatureType::String,
        5 => FeatureType::Bytes,
        6 => FeatureType::Vector(dim),
        7 => FeatureType::ListI64,
        8 => FeatureType::ListF32,
        9 => FeatureType::ListString,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "feature type",
                tag,
            })
        }
    })
}

fn put_f32s(out: &mut Vec<u8>, v: &[f32]) {
    put_len(out, v.len());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

fn get_f32s(r: &mut WireReader<'_>, what: &'static str) -> Result<Vec<f32>, DecodeError> {
    let n = r.count(what, 4)?;
    let raw = r.take(n * 4, what)?;
    Ok(raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

pub fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, *b as u8]),
        Value::I64(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::F32(v) => {
            out.push(3);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::F64(v) => {
            out.push(4);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::String(s) => {
            out.push(5);
            put_str(out, s);
        }
        Value::Bytes(b) => {
            out.push(6);
            put_bytes(out, b);
        }
        Value::Vector(v) => {
            out.push(7);
            put_f32s(out, v);
        }
        Value::ListI64(v) => {
            out.push(8);
            put_len(out, v.len());
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        Value::ListF32(v) => {
            out.push(9);
            put_f32s(out, v);
        }
        Value::ListString(v) => {
            out.push(10);
            put_strs(out, v);
        }
    }
}

pub fn get_value(r: &mut WireReader<'_>) -> Result<Value, DecodeError> {
    Ok(match r.u8("value tag")? {
        0 => Value::Null,
        1 => Value::Bool(r.bool("bool value")?),
        2 => Value::I64(r.i64("i64 value")?),
        3 => Value::F32(r.f32("f32 value")?),
        4 => Value::F64(r.f64("f64 value")?),
        5 => Value::String(r.string("string value")?),
        6 => Value::Bytes(r.bytes("bytes value")?.to_vec()),
        7 => Value::Vector(get_f32s(r, "vector value")?),
        8 => {
            let n = r.count("list<i64> value", 8)?;
            let raw = r.take(n * 8, "list<i64> value")?;
            let mut v = Vec::with_capacity(n);
            for c in raw.chunks_exact(8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                v.push(i64::from_le_bytes(b));
            }
            Value::ListI64(v)
        }
        9 => Value::ListF32(get_f32s(r, "list<f32> value")?),
        10 => Value::ListString(r.strings("list<string> value")?),
        tag => return Err(DecodeError::UnknownTag { what: "value", tag }),
    })
}

pub fn status_code(status: Status) -> u8 {
    match status {
        Status::Present => 0,
        Status::Null => 1,
        Status::NotFound => 2,
        Status::Expired => 3,
        Status::Corrupt => 4,
    }
}

pub fn put_feature_value(out: &mut Vec<u8>, fv: &FeatureValue) {
    out.push(status_code(fv.status));
    put_u64(out, fv.event_time_ms);
    put_value(out, &fv.value);
}

/// The inverse of [`status_code`].
pub fn get_status(r: &mut WireReader<'_>) -> Result<Status, DecodeError> {
    Ok(match r.u8("feature status")? {
        0 => Status::Present,
        1 => Status::Null,
        2 => Status::NotFound,
        3 => Status::Expired,
        4 => Status::Corrupt,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "feature status",
                tag,
            })
        }
    })
}

pub fn get_feature_value(r: &mut WireReader<'_>) -> Result<FeatureValue, DecodeError> {
    let status = get_status(r)?;
    let event_time_ms = r.u64("event time")?;
    let value = get_value(r)?;
    Ok(FeatureValue {
        status,
        value,
        event_time_ms,
    })
}

pub fn put_feature_values(out: &mut Vec<u8>, values: &[FeatureValue]) {
    put_len(out, values.len());
    for fv in values {
        put_feature_value(out, fv);
    }
}

pub fn get_feature_values(r: &mut WireReader<'_>) -> Result<Vec<FeatureValue>, DecodeError> {
    let n = r.count("feature values", 10)?;
    (0..n).map(|_| get_feature_value(r)).collect()
}

/// A feature reference travels as one string "group:feature".
pub fn put_refs(out: &mut Vec<u8>, refs: &[FeatureRef]) {
    put_len(out, refs.len());
    for f in refs {
        put_len(out, f.group.len() + 1 + f.feature.len());
        out.extend_from_slice(f.group.as_bytes());
        out.push(b':');
        out.extend_from_slice(f.feature.as_bytes());
    }
}

pub fn get_refs(r: &mut WireReader<'_>) -> Result<Vec<FeatureRef>, DecodeError> {
    let n = r.count("feature references", 4)?;
    let mut refs = Vec::with_capacity(n);
    for _ in 0..n {
        let s = r.string("feature reference")?;
        let Some((group, feature)) = s.split_once(':') else {
            return Err(DecodeError::BadFeatureRef { got: s });
        };
        refs.push(FeatureRef {
            group: group.to_owned(),
            feature: feature.to_owned(),
        });
    }
    Ok(refs)
}

fn put_compression(out: &mut Vec<u8>, c: Compression) {
    let (tag, level) = match c {
        Compression::None => (0u8, 0i32),
        Compression::Zstd { level } => (1, level),
    };
    out.push(tag);
    out.extend_from_slice(&level.to_le_bytes());
}

fn get_compression(r: &mut WireReader<'_>) -> Result<Compression, DecodeError> {
    let tag = r.u8("compression")?;
    let level = r.i32("compression level")?;
    zero_unless(
        tag != 0,
        "compression level",
        "when compression is none (tag 0)",
        level as u32 as u64,
    )?;
    match tag {
        0 => Ok(Compression::None),
        1 => Ok(Compression::Zstd { level }),
        tag => Err(DecodeError::UnknownTag {
            what: "compression",
            tag,
        }),
    }
}

/// A feature's rules as `bytes`: the encoding documented in docs/FORMAT.md ("Feature rules"),
/// empty for no rules.
fn put_rules(out: &mut Vec<u8>, rules: &FeatureRules) {
    put_bytes(out, &rules.to_bytes());
}

fn get_rules(r: &mut WireReader<'_>) -> Result<FeatureRules, DecodeError> {
    FeatureRules::from_bytes(r.bytes("feature rules")?).map_err(|e| DecodeError::Invalid {
        what: "feature rules",
        reason: e.to_string(),
    })
}

fn put_violation_mode(out: &mut Vec<u8>, mode: ViolationMode) {
    out.push(match mode {
        ViolationMode::Reject => 0,
        ViolationMode::Drop => 1,
    });
}

fn get_violation_mode(r: &mut WireReader<'_>) -> Result<ViolationMode, DecodeError> {
    match r.u8("violation mode")? {
        0 => Ok(ViolationMode::Reject),
        1 => Ok(ViolationMode::Drop),
        tag => Err(DecodeError::UnknownTag {
            what: "violation mode",
            tag,
        }),
    }
}

pub fn put_feature_spec(out: &mut Vec<u8>, f: &FeatureSpec) {
    put_str(out, &f.name);
    put_feature_type(out, f.ty);
    put_str(out, &f.description);
    put_str(out, &f.owner);
    put_strs(out, &f.tags);
    put_rules(out, &f.rules);
}

pub fn get_feature_spec(r: &mut WireReader<'_>) -> Result<FeatureSpec, DecodeError> {
    Ok(FeatureSpec {
        name: r.string("feature name")?,
        ty: get_feature_type(r)?,
        description: r.string("feature description")?,
        owner: r.string("feature owner")?,
        tags: r.strings("feature tags")?,
        rules: get_rules(r)?,
    })
}

pub fn put_group_spec(out: &mut Vec<u8>, g: &GroupSpec) {
    put_str(out, &g.name);
    put_key_type(out, g.key_type);
    put_len(out, g.features.len());
    for f in &g.features {
        put_feature_spec(out, f);
    }
    put_opt_u32(out, g.ttl_s);
    put_compression(out, g.compression);
    out.push(g.allow_non_finite as u8);
    put_str(out, &g.description);
    put_str(out, &g.owner);
    put_strs(out, &g.tags);
    put_history(out, g.history);
    put_violation_mode(out, g.on_violation);
    put_quality(out, &g.quality);
}

/// Quality objectives: max staleness as `opt_u32` (seconds), then the PSI and the quantile
/// distance thresholds as `opt_f64` each.
fn put_quality(out: &mut Vec<u8>, q: &QualitySlo) {
    put_opt_u32(out, q.max_staleness_s);
    put_opt_f64(out, q.drift_psi);
    put_opt_f64(out, q.drift_distance);
}

fn get_quality(r: &mut WireReader<'_>) -> Result<QualitySlo, DecodeError> {
    Ok(QualitySlo {
        max_staleness_s: r.opt_u32("max staleness")?,
        drift_psi: get_opt_f64(r, "drift psi threshold")?,
        drift_distance: get_opt_f64(r, "drift distance threshold")?,
    })
}

/// `opt_f64`: a presence byte (0 or 1), then the f64 when present.
pub fn put_opt_f64(out: &mut Vec<u8>, v: Option<f64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

pub fn get_opt_f64(r: &mut WireReader<'_>, what: &'static str) -> Result<Option<f64>, DecodeError> {
    match r.bool(what)? {
        false => Ok(None),
        true => Ok(Some(r.f64(what)?)),
    }
}

/// History bounds as two `opt_u32`s, retention seconds then max versions: both absent = the
/// group keeps no history.
fn put_history(out: &mut Vec<u8>, h: Option<HistoryPolicy>) {
    put_opt_u32(out, h.and_then(|h| h.retention_s));
    put_opt_u32(out, h.and_then(|h| h.max_versions));
}

fn get_history(r: &mut WireReader<'_>) -> Result<Option<HistoryPolicy>, DecodeError> {
    let retention_s = r.opt_u32("history retention")?;
    let max_versions = r.opt_u32("history max versions")?;
    Ok(
        (retention_s.is_some() || max_versions.is_some()).then_some(HistoryPolicy {
            retention_s,
            max_versions,
        }),
    )
}

pub fn get_group_spec(r: &mut WireReader<'_>) -> Result<GroupSpec, DecodeError> {
    let name = r.string("group name")?;
    let key_type = get_key_type(r)?;
    let n = r.count("group features", 25)?;
    let features = (0..n)
        .map(|_| get_feature_spec(r))
        .collect::<Result<_, _>>()?;
    Ok(GroupSpec {
        name,
        key_type,
        features,
        ttl_s: r.opt_u32("group ttl")?,
        compression: get_compression(r)?,
        allow_non_finite: r.bool("allow_non_finite")?,
        description: r.string("group description")?,
        owner: r.string("group owner")?,
        tags: r.strings("group tags")?,
        history: get_history(r)?,
        on_violation: get_violation_mode(r)?,
        quality: get_quality(r)?,
    })
}

fn put_feature(out: &mut Vec<u8>, f: &Feature) {
    put_u32(out, f.id);
    put_str(out, &f.name);
    put_feature_type(out, f.ty);
    put_str(out, &f.description);
    put_str(out, &f.owner);
    put_strs(out, &f.tags);
    out.push(f.deprecated as u8);
    put_rules(out, &f.rules);
}

fn get_feature(r: &mut WireReader<'_>) -> Result<Feature, DecodeError> {
    Ok(Feature {
        id: r.u32("feature id")?,
        name: r.string("feature name")?,
        ty: get_feature_type(r)?,
        description: r.string("feature description")?,
        owner: r.string("feature owner")?,
        tags: r.strings("feature tags")?,
        deprecated: r.bool("feature deprecated")?,
        rules: get_rules(r)?,
    })
}

pub fn put_group_schema(out: &mut Vec<u8>, g: &GroupSchema) {
    put_u32(out, g.id);
    put_u32(out, g.version);
    put_str(out, &g.name);
    put_key_type(out, g.key_type);
    put_len(out, g.features.len());
    for f in &g.features {
        put_feature(out, f);
    }
    put_opt_u32(out, g.ttl_s);
    put_compression(out, g.compression);
    out.push(g.allow_non_finite as u8);
    put_str(out, &g.description);
    put_str(out, &g.owner);
    put_strs(out, &g.tags);
    put_history(out, g.history);
    put_violation_mode(out, g.on_violation);
    put_quality(out, &g.quality);
}

pub fn get_group_schema(r: &mut WireReader<'_>) -> Result<GroupSchema, DecodeError> {
    let id = r.u32("group id")?;
    let version = r.u32("group version")?;
    let name = r.string("group name")?;
    let key_type = get_key_type(r)?;
    let n = r.count("group features", 30)?;
    let features = (0..n).map(|_| get_feature(r)).collect::<Result<_, _>>()?;
    Ok(GroupSchema {
        id,
        version,
        name,
        key_type,
        features,
        ttl_s: r.opt_u32("group ttl")?,
        compression: get_compression(r)?,
        allow_non_finite: r.bool("allow_non_finite")?,
        description: r.string("group description")?,
        owner: r.string("group owner")?,
        tags: r.strings("group tags")?,
        history: get_history(r)?,
        on_violation: get_violation_mode(r)?,
        quality: get_quality(r)?,
    })
}

pub fn put_alter(out: &mut Vec<u8>, alter: &Alter) {
    match alter {
        Alter::AddFeature(spec) => {
            out.push(0);
            put_feature_spec(out, spec);
        }
        Alter::DeprecateFeature(name) => {
            out.push(1);
            put_str(out, name);
        }
        Alter::SetTtl(ttl) => {
            out.push(2);
            put_opt_u32(out, *ttl);
        }
        Alter::SetDescription(s) => {
            out.push(3);
            put_str(out, s);
        }
        Alter::SetOwner(s) => {
            out.push(4);
            put_str(out, s);
        }
        Alter::SetTags(tags) => {
            out.push(5);
            put_strs(out, tags);
        }
        Alter::ChangeFeatureType(name, ty) => {
            out.push(6);
            put_str(out, name);
            put_feature_type(out, *ty);
        }
        Alter::SetHistoryRetention(retention_s) => {
            out.push(7);
            put_opt_u32(out, *retention_s);
        }
        Alter::SetHistoryMaxVersions(max_versions) => {
            out.push(8);
            put_opt_u32(out, *max_versions);
        }
        Alter::SetRules(name, rules) => {
            out.push(9);
            put_str(out, name);
            put_rules(out, rules);
        }
        Alter::SetViolationMode(mode) => {
            out.push(10);
            put_violation_mode(out, *mode);
        }
        Alter::SetMaxStaleness(s) => {
            out.push(11);
            put_opt_u32(out, *s);
        }
        Alter::SetDriftPsi(v) => {
            out.push(12);
            put_opt_f64(out, *v);
        }
        Alter::SetDriftDistance(v) => {
            out.push(13);
            put_opt_f64(out, *v);
        }
    }
}

pub fn get_alter(r: &mut WireReader<'_>) -> Result<Alter, DecodeError> {
    Ok(match r.u8("alter tag")? {
        0 => Alter::AddFeature(get_feature_spec(r)?),
        1 => Alter::DeprecateFeature(r.string("feature name")?),
        2 => Alter::SetTtl(r.opt_u32("group ttl")?),
        3 => Alter::SetDescription(r.string("group description")?),
        4 => Alter::SetOwner(r.string("group owner")?),
        5 => Alter::SetTags(r.strings("group tags")?),
        6 => Alter::ChangeFeatureType(r.string("feature name")?, get_feature_type(r)?),
        7 => Alter::SetHistoryRetention(r.opt_u32("history retention")?),
        8 => Alter::SetHistoryMaxVersions(r.opt_u32("history max versions")?),
        9 => Alter::SetRules(r.string("feature name")?, get_rules(r)?),
        10 => Alter::SetViolationMode(get_violation_mode(r)?),
        11 => Alter::SetMaxStaleness(r.opt_u32("max staleness")?),
        12 => Alter::SetDriftPsi(get_opt_f64(r, "drift psi threshold")?),
        13 => Alter::SetDriftDistance(get_opt_f64(r, "drift distance threshold")?),
        tag => return Err(DecodeError::UnknownTag { what: "alter", tag }),
    })
}

/// 0 = the store's default, 1 = buffered, 2 = sync.
pub fn put_durability(out: &mut Vec<u8>, d: Option<Durability>) {
    out.push(match d {
        None => 0,
        Some(Durability::Buffered) => 1,
        Some(Durability::Sync) => 2,
    });
}

pub fn get_durability(r: &mut WireReader<'_>) -> Result<Option<Durability>, DecodeError> {
    match r.u8("durability")? {
        0 => Ok(None),
        1 => Ok(Some(Durability::Buffered)),
        2 => Ok(Some(Durability::Sync)),
        tag => Err(DecodeError::UnknownTag {
            what: "durability",
            tag,
        }),
    }
}

const HAS_GENERATION: u8 = 0x01;
const HAS_TTL: u8 = 0x02;
const HAS_WRITE_TIME: u8 = 0x04;
const PUT_OPTION_BITS: u8 = HAS_GENERATION | HAS_TTL | HAS_WRITE_TIME;

/// 9 bytes: mode, presence bits, expected generation, ttl, durability; then a `u64` write
/// time when its presence bit is set.
pub fn put_put_options(out: &mut Vec<u8>, o: &PutOptions) {
    out.push(match o.mode {
        WriteMode::Merge => 0,
        WriteMode::ReplaceRow => 1,
        WriteMode::CreateOnly => 2,
        WriteMode::UpdateOnly => 3,
    });
    let bits = if o.expected_generation.is_some() {
        HAS_GENERATION
    } else {
        0
    } | if o.ttl_s.is_some() { HAS_TTL } else { 0 }
        | if o.write_time_ms.is_some() {
            HAS_WRITE_TIME
        } else {
            0
        };
    out.push(bits);
    put_u16(out, o.expected_generation.unwrap_or(0));
    put_u32(out, o.ttl_s.unwrap_or(0));
    put_durability(out, o.durability);
    if let Some(t) = o.write_time_ms {
        put_u64(out, t);
    }
}

pub fn get_put_options(r: &mut WireReader<'_>) -> Result<PutOptions, DecodeError> {
    let mode = match r.u8("write mode")? {
        0 => WriteMode::Merge,
        1 => WriteMode::ReplaceRow,
        2 => WriteMode::CreateOnly,
        3 => WriteMode::UpdateOnly,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "write mode",
                tag,
            })
        }
    };
    let bits = r.u8("put option bits")?;
    if bits & !PUT_OPTION_BITS != 0 {
        return Err(DecodeError::UnknownTag {
            what: "put option bits",
            tag: bits,
        });
    }
    let generation = r.u16("expected generation")?;
    zero_unless(
        bits & HAS_GENERATION != 0,
        "expected generation",
        "when put option bit 0x01 is clear",
        generation.into(),
    )?;
    let ttl = r.u32("put ttl")?;
    zero_unless(
        bits & HAS_TTL != 0,
        "put ttl",
        "when put option bit 0x02 is clear",
        ttl.into(),
    )?;
    Ok(PutOptions {
        mode,
        expected_generation: (bits & HAS_GENERATION != 0).then_some(generation),
        ttl_s: (bits & HAS_TTL != 0).then_some(ttl),
        durability: get_durability(r)?,
        write_time_ms: if bits & HAS_WRITE_TIME != 0 {
            Some(r.u64("write time")?)
        } else {
            None
        },
    })
}

pub fn put_put_result(out: &mut Vec<u8>, p: &PutResult) {
    put_u32(out, p.written);
    put_u32(out, p.skipped_stale);
    put_u16(out, p.generation);
    put_u32(out, p.dropped);
}

pub fn get_put_result(r: &mut WireReader<'_>) -> Result<PutResult, DecodeError> {
    Ok(PutResult {
        written: r.u32("written")?,
        skipped_stale: r.u32("skipped_stale")?,
        generation: r.u16("generation")?,
        dropped: r.u32("dropped")?,
    })
}

pub fn put_scan_item(out: &mut Vec<u8>, item: &ScanItem) {
    put_key(out, &item.key);
    put_len(out, item.values.len());
    for (name, fv) in &item.values {
        put_str(out, name);
        put_feature_value(out, fv);
    }
}

pub fn get_scan_item(r: &mut WireReader<'_>) -> Result<ScanItem, DecodeError> {
    let key = get_key(r)?;
    let n = r.count("scan item values", 14)?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string("feature name")?;
        values.push((name, get_feature_value(r)?));
    }
    Ok(ScanItem { key, values })
}
