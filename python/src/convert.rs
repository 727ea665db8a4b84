//! Python objects to the feature model's types and back: schemas travel as plain dicts
//! (`quiver.schema` wraps them in dataclasses), keys and values as Python scalars, sequences
//! and numpy arrays.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use quiver_engine::feature::{
    Alter, Compression, EntityKey, Feature, FeatureRef, FeatureRules, FeatureSpec, FeatureType,
    GroupSchema, GroupSpec, KeyType, QualitySlo, Value, ViolationMode,
};
use quiver_engine::history::HistoryPolicy;

use crate::error::{Failure, Result};

/// The entry `name` of a schema dict; `None` when missing or None.
fn entry<'py>(d: &Bound<'py, PyDict>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(d.get_item(name)?.filter(|v| !v.is_none()))
}

/// `field!(dict, "name", Type)`: the entry converted, or `None`.
macro_rules! field {
    ($d:expr, $name:expr, $t:ty) => {
        match entry($d, $name)? {
            Some(v) => Some(v.extract::<$t>()?),
            None => None,
        }
    };
}

/// `required!(dict, "name", Type)`: the entry converted, or an INVALID_ARGUMENT error.
macro_rules! required {
    ($d:expr, $name:expr, $t:ty) => {
        field!($d, $name, $t).ok_or_else(|| {
            PyErr::from(Failure::invalid(format!(
                "the schema dict lacks its '{}' entry",
                $name
            )))
        })?
    };
}

pub fn parse_type(text: &str) -> Result<FeatureType> {
    Ok(text.parse::<FeatureType>()?)
}

fn parse_key_type(text: &str) -> Result<KeyType> {
    Ok(text.parse::<KeyType>()?)
}

fn feature_spec(d: &Bound<'_, PyDict>) -> PyResult<FeatureSpec> {
    let ty = required!(d, "type", String);
    let name = required!(d, "name", String);
    let rules = rules(&name, &field!(d, "rules", Vec<String>).unwrap_or_default())?;
    Ok(FeatureSpec {
        name,
        ty: parse_type(&ty)?,
        description: field!(d, "description", String).unwrap_or_default(),
        owner: field!(d, "owner", String).unwrap_or_default(),
        tags: field!(d, "tags", Vec<String>).unwrap_or_default(),
        rules,
    })
}

/// A feature's rules from their texts, written as in the CLI (`range=[0,150]`, `not-null`,
/// `in=a,b`; docs/CLI.md). Whether they fit the feature's type is checked by the store.
fn rules(feature: &str, texts: &[String]) -> Result<FeatureRules> {
    let mut rules = FeatureRules::default();
    for text in texts {
        rules
            .parse_rule(text)
            .map_err(|e| Failure::invalid(format!("feature '{feature}': {e}")))?;
    }
    Ok(rules)
}

fn violation_mode(text: &str) -> Result<ViolationMode> {
    match text {
        "reject" => Ok(ViolationMode::Reject),
        "drop" => Ok(ViolationMode::Drop),
        other => Err(Failure::invalid(format!(
            "invalid on_violation '{other}': expected reject or drop"
        ))),
    }
}

fn violation_name(mode: ViolationMode) -> &'static str {
    match mode {
        ViolationMode::Reject => "reject",
        ViolationMode::Drop => "drop",
    }
}

fn compression(level: Option<i32>) -> Compression {
    match level {
        Some(level) => Compression::Zstd { level },
        None => Compression::None,
    }
}

/// A `GroupSpec` from the dict `quiver.GroupSpec.to_dict()` makes.
pub fn group_spec(d: &Bound<'_, PyDict>) -> PyResult<GroupSpec> {
    let key_type = required!(d, "key_type", String);
    let features = field!(d, "features", Vec<Bound<'_, PyDict>>).unwrap_or_default();
    Ok(GroupSpec {
        name: required!(d, "name", String),
        key_type: parse_key_type(&key_type)?,
        features: features.iter().map(feature_spec).collect::<PyResult<_>>()?,
        ttl_s: field!(d, "ttl_s", u32),
        compression: compression(field!(d, "compression_level", i32)),
        allow_non_finite: field!(d, "allow_non_finite", bool).unwrap_or(false),
        description: field!(d, "description", String).unwrap_or_default(),
        owner: field!(d, "owner", String).unwrap_or_default(),
        tags: field!(d, "tags", Vec<String>).unwrap_or_default(),
        history: match (
            field!(d, "history_retention_s", u32),
            field!(d, "history_max_versions", u32),
        ) {
            (None, None) => None,
            (retention_s, max_versions) => Some(HistoryPolicy {
                retention_s,
                max_versions,
            }),
        },
        on_violation: match field!(d, "on_violation", String) {
            Some(text) => violation_mode(&text)?,
            None => ViolationMode::default(),
        },
        quality: QualitySlo {
            max_staleness_s: field!(d, "max_staleness_s", u32),
            drift_psi: field!(d, "drift_psi", f64),
            drift_distance: field!(d, "drift_distance", f64),
        },
    })
}

fn feature_dict<'py>(py: Python<'py>, f: &Feature) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", f.id)?;
    d.set_item("name", &f.name)?;
    d.set_item("type", f.ty.to_string())?;
    d.set_item("description", &f.description)?;
    d.set_item("owner", &f.owner)?;
    d.set_item("tags", &f.tags)?;
    d.set_item("deprecated", f.deprecated)?;
    d.set_item("rules", f.rules.texts())?;
    Ok(d)
}

/// A schema as the dict `quiver.GroupSchema.from_dict()` reads.
pub fn schema_dict<'py>(py: Python<'py>, g: &GroupSchema) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", g.id)?;
    d.set_item("version", g.version)?;
    d.set_item("name", &g.name)?;
    d.set_item("key_type", g.key_type.to_string())?;
    let features = g
        .features
        .iter()
        .map(|f| feature_dict(py, f))
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("features", features)?;
    d.set_item("ttl_s", g.ttl_s)?;
    d.set_item(
        "compression_level",
        match g.compression {
            Compression::Zstd { level } => Some(level),
            Compression::None => None,
        },
    )?;
    d.set_item("allow_non_finite", g.allow_non_finite)?;
    d.set_item("description", &g.description)?;
    d.set_item("owner", &g.owner)?;
    d.set_item("tags", &g.tags)?;
    d.set_item("history_retention_s", g.history.and_then(|h| h.retention_s))?;
    d.set_item(
        "history_max_versions",
        g.history.and_then(|h| h.max_versions),
    )?;
    d.set_item("on_violation", violation_name(g.on_violation))?;
    d.set_item("max_staleness_s", g.quality.max_staleness_s)?;
    d.set_item("drift_psi", g.quality.drift_psi)?;
    d.set_item("drift_distance", g.quality.drift_distance)?;
    Ok(d)
}

/// An alteration from `(kind, argument)`, as `quiver.Client.alter_group` builds it.
pub fn alter(kind: &str, arg: &Bound<'_, PyAny>) -> PyResult<Alter> {
    Ok(match kind {
        "add_feature" => Alter::AddFeature(feature_spec(arg.cast::<PyDict>()?)?),
        "deprecate_feature" => Alter::DeprecateFeature(arg.extract()?),
        "set_ttl" => Alter::SetTtl(arg.extract()?),
        "set_description" => Alter::SetDescription(arg.extract()?),
        "set_owner" => Alter::SetOwner(arg.extract()?),
        "set_tags" => Alter::SetTags(arg.extract()?),
        "set_history" => Alter::SetHistoryRetention(arg.extract()?),
        "set_history_max_versions" => Alter::SetHistoryMaxVersions(arg.extract()?),
        "change_feature_type" => {
            let (name, ty): (String, String) = arg.extract()?;
            Alter::ChangeFeatureType(name, parse_type(&ty)?)
        }
        "set_rules" => {
            let (name, texts): (String, Vec<String>) = arg.extract()?;
            let rules = rules(&name, &texts)?;
            Alter::SetRules(name, rules)
        }
        "set_on_violation" => Alter::SetViolationMode(violation_mode(&arg.extract::<String>()?)?),
        "set_max_staleness" => Alter::SetMaxStaleness(arg.extract()?),
        "set_drift_psi" => Alter::SetDriftPsi(arg.extract()?),
        "set_drift_distance" => Alter::SetDriftDistance(arg.extract()?),
        other => {
            return Err(Failure::invalid(format!(
                "unknown alteration '{other}' (add_feature, deprecate_feature, set_ttl, \
                 set_description, set_owner, set_tags, set_history, set_history_max_versions, \
                 change_feature_type, set_rules, set_on_violation, set_max_staleness, \
                 set_drift_psi, set_drift_distance)"
            ))
            .into())
        }
    })
}

/// An entity key from a Python `str`, `int` (or numpy integer) or `bytes`.
pub fn entity_key(obj: &Bound<'_, PyAny>) -> PyResult<EntityKey> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(EntityKey::String(s.to_cow()?.into_owned()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(EntityKey::Bytes(b.as_bytes().to_vec()));
    }
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(bad_key(obj));
    }
    match obj.extract::<i64>() {
        Ok(v) => Ok(EntityKey::I64(v)),
        Err(_) => Err(bad_key(obj)),
    }
}

fn bad_key(obj: &Bound<'_, PyAny>) -> PyErr {
    let ty = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    Failure::type_mismatch(format!("an entity key must be str, int or bytes, got {ty}")).into()
}

pub fn feature_refs(refs: &[String]) -> Result<Vec<FeatureRef>> {
    refs.iter()
        .map(|r| r.parse::<FeatureRef>().map_err(Failure::from))
        .collect()
}

fn mismatch(group: &str, feature: &str, ty: FeatureType, obj: &Bound<'_, PyAny>) -> PyErr {
    let got = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    Failure::type_mismatch(format!(
        "feature '{group}:{feature}' expects {ty}, got a Python {got}"
    ))
    .into()
}

/// A Python value as a value of a feature of type `ty` (`None` is a stored null).
pub fn value(
    group: &str,
    feature: &str,
    ty: FeatureType,
    obj: &Bound<'_, PyAny>,
) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    let bad = || mismatch(group, feature, ty, obj);
    let v = match ty {
        FeatureType::Bool => Value::Bool(obj.extract().map_err(|_| bad())?),
        FeatureType::I64 => {
            if obj.is_instance_of::<pyo3::types::PyFloat>() {
                return Err(bad());
            }
            Value::I64(obj.extract().map_err(|_| bad())?)
        }
        FeatureType::F32 => Value::F32(obj.extract::<f64>().map_err(|_| bad())? as f32),
        FeatureType::F64 => Value::F64(obj.extract().map_err(|_| bad())?),
        FeatureType::String => Value::String(obj.extract().map_err(|_| bad())?),
        FeatureType::Bytes => Value::Bytes(obj.extract().map_err(|_| bad())?),
        FeatureType::Vector(_) => Value::Vector(f32s(obj).map_err(|_| bad())?),
        FeatureType::ListF32 => Value::ListF32(f32s(obj).map_err(|_| bad())?),
        FeatureType::ListI64 => Value::ListI64(obj.extract().map_err(|_| bad())?),
        FeatureType::ListString => Value::ListString(obj.extract().map_err(|_| bad())?),
    };
    Ok(v)
}

/// Floats from a float32 numpy array (one copy of its buffer) or any sequence of numbers.
fn f32s(obj: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    if let Ok(a) = obj.extract::<numpy::PyReadonlyArray1<'_, f32>>() {
        return Ok(a.as_array().iter().copied().collect());
    }
    if obj.is_instance_of::<PyString>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "a string is not a vector",
        ));
    }
    let v: Vec<f64> = obj.extract()?;
    Ok(v.into_iter().map(|x| x as f32).collect())
}

/// Per-feature values of one entity from a dict, typed by the group's schema.
pub fn row_values(
    schema: &GroupSchema,
    values: &Bound<'_, PyDict>,
) -> PyResult<Vec<(String, Value)>> {
    let mut out = Vec::with_capacity(values.len());
    for (name, obj) in values.iter() {
        let name: String = name.extract()?;
        let Some(feature) = schema.features.iter().find(|f| f.name == name) else {
            return Err(
                Failure::from(quiver_engine::feature::FeatureError::UnknownFeature {
                    group: schema.name.clone(),
                    feature: name,
                })
                .into(),
            );
        };
        out.push((name.clone(), value(&schema.name, &name, feature.ty, &obj)?));
    }
    Ok(out)
}

/// A history entry as `(feature, event_time_ms, write_time_ms, status, value)`.
pub fn value_object<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::I64(x) => x.into_pyobject(py)?.into_any(),
        Value::F32(x) => (*x as f64).into_pyobject(py)?.into_any(),
        Value::F64(x) => x.into_pyobject(py)?.into_any(),
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::Vector(v) | Value::ListF32(v) => numpy::PyArray1::from_slice(py, v).into_any(),
        Value::ListI64(v) => numpy::PyArray1::from_slice(py, v).into_any(),
        Value::ListString(v) => PyList::new(py, v)?.into_any(),
    })
}

pub fn tuple_of<'py>(
    py: Python<'py>,
    items: Vec<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, items)
}
