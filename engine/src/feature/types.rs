//! The value types of the feature model: entity keys, feature types, values, statuses.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use super::error::FeatureError;
use super::limits::{MAX_KEY_BYTES, MAX_VECTOR_DIM, MIN_KEY_BYTES};

/// The type of a group's entity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    String,
    I64,
    Bytes,
}

impl KeyType {
    pub(crate) fn tag(self) -> u8 {
        match self {
            KeyType::String => 1,
            KeyType::I64 => 2,
            KeyType::Bytes => 3,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<KeyType> {
        match tag {
            1 => Some(KeyType::String),
            2 => Some(KeyType::I64),
            3 => Some(KeyType::Bytes),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::String => "string",
            KeyType::I64 => "i64",
            KeyType::Bytes => "bytes",
        })
    }
}

impl FromStr for KeyType {
    type Err = FeatureError;
    fn from_str(text: &str) -> Result<KeyType, FeatureError> {
        match text {
            "string" => Ok(KeyType::String),
            "i64" => Ok(KeyType::I64),
            "bytes" => Ok(KeyType::Bytes),
            _ => Err(FeatureError::InvalidKeyType {
                text: text.to_string(),
            }),
        }
    }
}

/// An entity key. Its engine key is: string = its UTF-8 bytes, i64 = 8 bytes little-endian,
/// bytes = the bytes themselves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntityKey {
    String(String),
    I64(i64),
    Bytes(Vec<u8>),
}

impl EntityKey {
    pub fn key_type(&self) -> KeyType {
        match self {
            EntityKey::String(_) => KeyType::String,
            EntityKey::I64(_) => KeyType::I64,
            EntityKey::Bytes(_) => KeyType::Bytes,
        }
    }

    /// The engine key, checked against the key-size limit.
    pub fn to_key_bytes(&self) -> Result<Cow<'_, [u8]>, FeatureError> {
        let bytes: Cow<'_, [u8]> = match self {
            EntityKey::String(s) => Cow::Borrowed(s.as_bytes()),
            EntityKey::I64(v) => Cow::Owned(v.to_le_bytes().to_vec()),
            EntityKey::Bytes(b) => Cow::Borrowed(b.as_slice()),
        };
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&bytes.len()) {
            return Err(FeatureError::KeySize {
                len: bytes.len(),
                min: MIN_KEY_BYTES,
                max: MAX_KEY_BYTES,
            });
        }
        Ok(bytes)
    }

    /// [`EntityKey::to_key_bytes`] appended to `out` (no allocation when `out` has room).
    pub fn put_key_bytes(&self, out: &mut Vec<u8>) -> Result<(), FeatureError> {
        let start = out.len();
        match self {
            EntityKey::String(s) => out.extend_from_slice(s.as_bytes()),
            EntityKey::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            EntityKey::Bytes(b) => out.extend_from_slice(b),
        }
        let len = out.len() - start;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&len) {
            out.truncate(start);
            return Err(FeatureError::KeySize {
                len,
                min: MIN_KEY_BYTES,
                max: MAX_KEY_BYTES,
            });
        }
        Ok(())
    }

    /// Decodes an engine key stored under a group of `key_type`.
    pub fn from_key_bytes(key_type: KeyType, bytes: &[u8]) -> Result<EntityKey, FeatureError> {
        match key_type {
            KeyType::String => String::from_utf8(bytes.to_vec())
                .map(EntityKey::String)
                .map_err(|_| FeatureError::corrupt("entity key", "string key is not UTF-8")),
            KeyType::I64 => <[u8; 8]>::try_from(bytes)
                .map(|b| EntityKey::I64(i64::from_le_bytes(b)))
                .map_err(|_| {
                    FeatureError::corrupt(
                        "entity key",
                        format!("i64 key of {} bytes, expected 8", bytes.len()),
                    )
                }),
            KeyType::Bytes => Ok(EntityKey::Bytes(bytes.to_vec())),
        }
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityKey::String(s) => write!(f, "{s}"),
            EntityKey::I64(v) => write!(f, "{v}"),
            EntityKey::Bytes(b) => b.iter().try_for_each(|x| write!(f, "{x:02x}")),
        }
    }
}

/// The type of a feature. It never changes once the feature exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureType {
    Bool,
    I64,
    F32,
    F64,
    String,
    Bytes,
    /// A fixed-size vector of f32, dimension 1..=[`MAX_VECTOR_DIM`].
    Vector(u32),
    ListI64,
    ListF32,
    ListString,
}

impl FeatureType {
    /// The one-byte tag used in schemas and rows (0 is reserved for a null value in rows).
    pub(crate) fn tag(self) -> u8 {
        match self {
            FeatureType::Bool => 1,
            FeatureType::I64 => 2,
            FeatureType::F32 => 3,
            FeatureType::F64 => 4,
            FeatureType::String => 5,
            FeatureType::Bytes => 6,
            FeatureType::Vector(_) => 7,
            FeatureType::ListI64 => 8,
            FeatureType::ListF32 => 9,
            FeatureType::ListString => 10,
        }
    }

    /// Checks the vector dimension against its limit (other types are always valid).
    pub fn validate(self) -> Result<(), FeatureError> {
        match self {
            FeatureType::Vector(dim) if dim == 0 || dim > MAX_VECTOR_DIM => {
                Err(FeatureError::InvalidVectorDim {
                    dim: dim as u64,
                    max: MAX_VECTOR_DIM,
                })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for FeatureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureType::Bool => f.write_str("bool"),
            FeatureType::I64 => f.write_str("i64"),
            FeatureType::F32 => f.write_str("f32"),
            FeatureType::F64 => f.write_str("f64"),
            FeatureType::String => f.write_str("string"),
            FeatureType::Bytes => f.write_str("bytes"),
            FeatureType::Vector(dim) => write!(f, "f32[{dim}]"),
            FeatureType::ListI64 => f.write_str("list<i64>"),
            FeatureType::ListF32 => f.write_str("list<f32>"),
            FeatureType::ListString => f.write_str("list<string>"),
        }
    }
}

impl FromStr for FeatureType {
    type Err = FeatureError;
    fn from_str(text: &str) -> Result<FeatureType, FeatureError> {
        let ty = match text {
            "bool" => FeatureType::Bool,
            "i64" => FeatureType::I64,
            "f32" => FeatureType::F32,
            "f64" => FeatureType::F64,
            "string" => FeatureType::String,
            "bytes" => FeatureType::Bytes,
            "list<i64>" => FeatureType::ListI64,
            "list<f32>" => FeatureType::ListF32,
            "list<string>" => FeatureType::ListString,
            _ => return parse_vector_type(text),
        };
        Ok(ty)
    }
}

fn parse_vector_type(text: &str) -> Result<FeatureType, FeatureError> {
    let invalid = || FeatureError::InvalidType {
        text: text.to_string(),
    };
    let digits = text
        .strip_prefix("f32[")
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(invalid)?;
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let dim: u64 = digits.parse().map_err(|_| invalid())?;
    if dim == 0 || dim > MAX_VECTOR_DIM as u64 {
        return Err(FeatureError::InvalidVectorDim {
            dim,
            max: MAX_VECTOR_DIM,
        });
    }
    Ok(FeatureType::Vector(dim as u32))
}

/// One feature value. `Null` is a stored "no value", distinct from a feature never written.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    I64(i64),
    F32(f32),
    F64(f64),
    String(String),
    Bytes(Vec<u8>),
    Vector(Vec<f32>),
    ListI64(Vec<i64>),
    ListF32(Vec<f32>),
    ListString(Vec<String>),
}

impl Value {
    /// The name of this value's type as the error messages print it ("f32[3]" for a vector).
    pub fn type_name(&self) -> String {
        match self {
            Value::Null => "null".to_string(),
            Value::Bool(_) => "bool".to_string(),
            Value::I64(_) => "i64".to_string(),
            Value::F32(_) => "f32".to_string(),
            Value::F64(_) => "f64".to_string(),
            Value::String(_) => "string".to_string(),
            Value::Bytes(_) => "bytes".to_string(),
            Value::Vector(v) => format!("f32[{}]", v.len()),
            Value::ListI64(_) => "list<i64>".to_string(),
            Value::ListF32(_) => "list<f32>".to_string(),
            Value::ListString(_) => "list<string>".to_string(),
        }
    }

    /// Size of the value's payload, as a caller would count it (8 for an i64, 4 per f32, ...).
    pub fn raw_bytes(&self) -> usize {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::I64(_) | Value::F64(_) => 8,
            Value::F32(_) => 4,
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Vector(v) | Value::ListF32(v) => v.len() * 4,
            Value::ListI64(v) => v.len() * 8,
            Value::ListString(v) => v.iter().map(String::len).sum(),
        }
    }
}

/// The status of one feature in a get, as Feast reports it (plus `Corrupt`). On the wire: one
/// byte, 0..=4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    Present = 0,
    Null = 1,
    NotFound = 2,
    /// The value's event time is older than the group's max age (its TTL).
    Expired = 3,
    /// The entity's row of this feature's group is damaged on the device: its value is unknown,
    /// and no older version is served in its place. It reads so until the row is rewritten or
    /// deleted.
    Corrupt = 4,
}

impl Status {
    pub fn from_u8(byte: u8) -> Option<Status> {
        match byte {
            0 => Some(Status::Present),
            1 => Some(Status::Null),
            2 => Some(Status::NotFound),
            3 => Some(Status::Expired),
            4 => Some(Status::Corrupt),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Present => "PRESENT",
            Status::Null => "NULL",
            Status::NotFound => "NOT_FOUND",
            Status::Expired => "EXPIRED",
            Status::Corrupt => "CORRUPT",
        })
    }
}

/// A reference to one feature of one group: "group:feature".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureRef {
    pub group: String,
    pub feature: String,
}

impl FeatureRef {
    pub fn new(group: impl Into<String>, feature: impl Into<String>) -> FeatureRef {
        FeatureRef {
            group: group.into(),
            feature: feature.into(),
        }
    }
}

impl FromStr for FeatureRef {
    type Err = FeatureError;
    fn from_str(text: &str) -> Result<FeatureRef, FeatureError> {
        match text.split_once(':') {
            Some((g, f)) if !g.is_empty() && !f.is_empty() && !f.contains(':') => {
                Ok(FeatureRef::new(g, f))
            }
            _ => Err(FeatureError::InvalidFeatureRef {
                text: text.to_string(),
            }),
        }
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.group, self.feature)
    }
}

/// One feature as a get returns it. `value` is `Null` unless `status` is `Present`;
/// `event_time_ms` is 0 for `NotFound` and `Corrupt`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureValue {
    pub status: Status,
    pub value: Value,
    pub event_time_ms: u64,
}

impl FeatureValue {
    pub fn not_found() -> FeatureValue {
        FeatureValue {
            status: Status::NotFound,
            value: Value::Null,
            event_time_ms: 0,
        }
    }

    /// The answer for a feature whose row is damaged on the device.
    pub fn corrupt() -> FeatureValue {
        FeatureValue {
            status: Status::Corrupt,
            value: Value::Null,
            event_time_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_type_round_trips_through_text() {
        let all = [
            FeatureType::Bool,
            FeatureType::I64,
            FeatureType::F32,
            FeatureType::F64,
            FeatureType::String,
            FeatureType::Bytes,
            FeatureType::Vector(128),
            FeatureType::ListI64,
            FeatureType::ListF32,
            FeatureType::ListString,
        ];
        for ty in all {
            assert_eq!(ty.to_string().parse::<FeatureType>().unwrap(), ty);
        }
    }

    #[test]
    fn bad_types_are_refused() {
        for text in [
            "f32[0]",
            "f32[]",
            "f32[-1]",
            "f32[65537]",
            "f32[99999999999]",
            "F32",
            "list<bool>",
            "",
        ] {
            assert!(text.parse::<FeatureType>().is_err(), "{text}");
        }
        assert!(matches!(
            "f32[65537]".parse::<FeatureType>(),
            Err(FeatureError::InvalidVectorDim { dim: 65537, .. })
        ));
        assert_eq!(
            "f32[65536]".parse::<FeatureType>().unwrap(),
            FeatureType::Vector(65536)
        );
    }

    #[test]
    fn feature_refs_parse() {
        assert_eq!(
            "user:ctr_7d".parse::<FeatureRef>().unwrap(),
            FeatureRef::new("user", "ctr_7d")
        );
        for text in ["user", ":x", "x:", "a:b:c", ""] {
            assert!(text.parse::<FeatureRef>().is_err(), "{text}");
        }
    }

    #[test]
    fn entity_keys_round_trip() {
        for key in [
            EntityKey::String("u1".into()),
            EntityKey::I64(-5),
            EntityKey::Bytes(vec![0, 1, 2]),
        ] {
            let bytes = key.to_key_bytes().unwrap().into_owned();
            assert_eq!(
                EntityKey::from_key_bytes(key.key_type(), &bytes).unwrap(),
                key
            );
        }
        assert_eq!(
            EntityKey::I64(1).to_key_bytes().unwrap().as_ref(),
            &[1, 0, 0, 0, 0, 0, 0, 0]
        );
        assert!(EntityKey::String(String::new()).to_key_bytes().is_err());
        assert!(EntityKey::Bytes(vec![0; 1025]).to_key_bytes().is_err());
        assert!(EntityKey::from_key_bytes(KeyType::I64, &[1, 2]).is_err());
    }
}
