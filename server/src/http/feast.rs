//! How the Feast online store of the Python package (`quiver.feast`, see
//! `python/quiver/feast/mapping.py`) lays Feast objects onto Quiver, read back here so that
//! `/get-online-features` answers Feast's feature-view references with the keys and values
//! Feast's own store wrote.
//!
//! - A feature view is a group tagged `feast` whose description is
//!   `Feast feature view <project>/<view>; entity key {"join_keys": [[NAME, TYPE], ...],
//!   "version": V}`: the view's join keys with their Feast value types, and Feast's
//!   `entity_key_serialization_version`.
//! - A Feast feature is the group's feature whose description is the Feast name.
//! - The entity key is Feast's `serialize_entity_key` of the view's join keys ([`FeastView::key`]).
//! - The hidden feature [`TS_FEATURE`] holds each row's Feast event timestamp in Unix
//!   microseconds; a feature tagged [`PROTO_TAG`] holds serialized Feast `Value` protos
//!   (types Quiver has no native form for), decoded by [`write_value_proto`].

use super::values::{write_base64, write_f32, write_f64, write_json};
use quiver_engine::feature::GroupSchema;
use serde_json::Value as Json;

/// The tag every group made for a Feast feature view carries.
pub const FEAST_TAG: &str = "feast";
/// The hidden feature holding a row's exact event timestamp, Unix microseconds.
pub const TS_FEATURE: &str = "feast_event_time_us";
/// The tag of a `bytes` feature holding serialized Feast `Value` protos.
pub const PROTO_TAG: &str = "feast:value_proto";
const PREFIX: &str = "Feast feature view ";
const KEY_MARK: &str = "; entity key ";

/// A Feast value type a join key may have, with Feast's `ValueType` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValueType {
    Bytes = 1,
    String = 2,
    Int32 = 3,
    Int64 = 4,
    UnixTimestamp = 8,
}

impl KeyValueType {
    /// Feast's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            KeyValueType::Bytes => "BYTES",
            KeyValueType::String => "STRING",
            KeyValueType::Int32 => "INT32",
            KeyValueType::Int64 => "INT64",
            KeyValueType::UnixTimestamp => "UNIX_TIMESTAMP",
        }
    }

    fn parse(name: &str) -> Option<KeyValueType> {
        Some(match name {
            "BYTES" => KeyValueType::Bytes,
            "STRING" => KeyValueType::String,
            "INT32" => KeyValueType::Int32,
            "INT64" => KeyValueType::Int64,
            "UNIX_TIMESTAMP" => KeyValueType::UnixTimestamp,
            _ => return None,
        })
    }
}

/// A Feast feature view as its group describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeastView {
    pub project: String,
    pub view: String,
    /// Join keys sorted by name (the order Feast serializes them in), with their types;
    /// `None` for a group made by a release that did not record them.
    pub join_keys: Option<Vec<(String, KeyValueType)>>,
    pub version: u32,
}

impl FeastView {
    /// The view a group stands for, or `None` for a group that is not a Feast view's.
    pub fn of(schema: &GroupSchema) -> Option<FeastView> {
        if !schema.tags.iter().any(|t| t == FEAST_TAG) {
            return None;
        }
        let rest = schema.description.strip_prefix(PREFIX)?;
        let (names, key) = match rest.split_once(KEY_MARK) {
            Some((names, key)) => (names, Some(key)),
            None => (rest, None),
        };
        let (project, view) = names.split_once('/')?;
        let (join_keys, version) = match key.map(parse_key_spec) {
            Some(Some((keys, version))) => (Some(keys), version),
            Some(None) => return None,
            None => (None, 3),
        };
        Some(FeastView {
            project: project.to_owned(),
            view: view.to_owned(),
            join_keys,
            version,
        })
    }

    /// Feast's `serialize_entity_key` of one entity: `values[i]` is the value of join key
    /// `i` (in [`FeastView::join_keys`] order). Version 3: `u32` key count, then per key
    /// `u32` 2 (STRING), `u32` length, name bytes; then per value `u32` value type, `u32`
    /// length, value bytes (all little-endian). Version 2 has no count and no name lengths.
    pub fn key(&self, values: &[&Json]) -> Result<Vec<u8>, String> {
        let keys = self.join_keys.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(64);
        if self.version > 2 {
            out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        }
        for (name, _) in keys {
            out.extend_from_slice(&2u32.to_le_bytes());
            if self.version > 2 {
                out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            }
            out.extend_from_slice(name.as_bytes());
        }
        for ((name, ty), v) in keys.iter().zip(values) {
            let bytes = key_value_bytes(*ty, v)
                .ok_or_else(|| format!("entity {v} of join key '{name}' is not a {ty:?} value"))?;
            out.extend_from_slice(&(*ty as u32).to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }
}

fn parse_key_spec(text: &str) -> Option<(Vec<(String, KeyValueType)>, u32)> {
    let spec: Json = serde_json::from_str(text).ok()?;
    let version = u32::try_from(spec.get("version")?.as_u64()?).ok()?;
    let mut keys = Vec::new();
    for pair in spec.get("join_keys")?.as_array()? {
        let [name, ty] = pair.as_array()?.as_slice() else {
            return None;
        };
        keys.push((
            name.as_str()?.to_owned(),
            KeyValueType::parse(ty.as_str()?)?,
        ));
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    (version >= 2).then_some((keys, version))
}

fn key_value_bytes(ty: KeyValueType, v: &Json) -> Option<Vec<u8>> {
    Some(match ty {
        KeyValueType::String => v.as_str()?.as_bytes().to_vec(),
        KeyValueType::Bytes => super::values::base64(v).ok()?,
        KeyValueType::Int32 => i32::try_from(v.as_i64()?).ok()?.to_le_bytes().to_vec(),
        KeyValueType::Int64 | KeyValueType::UnixTimestamp => v.as_i64()?.to_le_bytes().to_vec(),
    })
}

/// Appends a serialized Feast `Value` proto as Feast's feature server writes it: scalars,
/// lists and sets as plain JSON; a null or empty value as `null`. Kinds with no plain form
/// here (maps, structs, nested lists, zoned timestamps) come back as the base64 of the proto.
pub fn write_value_proto(out: &mut Vec<u8>, proto: &[u8]) {
    let before = out.len();
    if proto::write(out, proto).is_none() {
        out.truncate(before);
        write_base64(out, proto);
    }
}

/// A decoder for the few shapes of Feast's `Value` message (protobuf wire format).
mod proto {
    use super::*;

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn varint(&mut self) -> Option<u64> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let (&b, rest) = self.0.split_first()?;
                self.0 = rest;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Some(v);
                }
            }
            None
        }

        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if n > self.0.len() {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }

        /// One field: (number, wire type, payload); varints come back in `u64`.
        fn field(&mut self) -> Option<(u64, u8, &'a [u8], u64)> {
            let tag = self.varint()?;
            let wire = (tag & 7) as u8;
            match wire {
                0 => Some((tag >> 3, wire, &[], self.varint()?)),
                1 => Some((tag >> 3, wire, self.take(8)?, 0)),
                2 => {
                    let n = usize::try_from(self.varint()?).ok()?;
                    Some((tag >> 3, wire, self.take(n)?, 0))
                }
                5 => Some((tag >> 3, wire, self.take(4)?, 0)),
                _ => None,
            }
        }
    }

    #[derive(Clone, Copy)]
    enum Kind {
        Bytes,
        Str,
        I32,
        I64,
        F64,
        F32,
        Bool,
    }

    fn kind(field: u64) -> Option<Kind> {
        Some(match field {
            1 | 11 | 22 => Kind::Bytes,
            2 | 12 | 23 | 32 | 33 | 36 | 37 | 38..=41 | 44..=46 => Kind::Str,
            3 | 13 | 24 => Kind::I32,
            4 | 8 | 14 | 18 | 25 | 29 => Kind::I64,
            5 | 15 | 26 => Kind::F64,
            6 | 16 | 27 => Kind::F32,
            7 | 17 | 28 => Kind::Bool,
            _ => return None,
        })
    }

    fn is_list(field: u64) -> bool {
        (11..=18).contains(&field)
            || (22..=29).contains(&field)
            || [33, 38, 39, 40, 41, 45, 46].contains(&field)
    }

    /// Scalars of `kind` in one field payload (a packed run, or one element).
    fn scalars(
        kind: Kind,
        wire: u8,
        payload: &[u8],
        varint: u64,
        out: &mut Vec<Scalar>,
    ) -> Option<()> {
        let mut r = Reader(payload);
        match (kind, wire) {
            (Kind::Bytes | Kind::Str, 2) => out.push(Scalar::Raw(kind, payload.to_vec())),
            (Kind::I32 | Kind::I64 | Kind::Bool, 0) => out.push(Scalar::Int(kind, varint)),
            (Kind::I32 | Kind::I64 | Kind::Bool, 2) => {
                while !r.0.is_empty() {
                    out.push(Scalar::Int(kind, r.varint()?));
                }
            }
            (Kind::F64, 1) => out.push(Scalar::F64(f64::from_le_bytes(payload.try_into().ok()?))),
            (Kind::F32, 5) => out.push(Scalar::F32(f32::from_le_bytes(payload.try_into().ok()?))),
            (Kind::F64, 2) => {
                while !r.0.is_empty() {
                    out.push(Scalar::F64(f64::from_le_bytes(r.take(8)?.try_into().ok()?)));
                }
            }
            (Kind::F32, 2) => {
                while !r.0.is_empty() {
                    out.push(Scalar::F32(f32::from_le_bytes(r.take(4)?.try_into().ok()?)));
                }
            }
            _ => return None,
        }
        Some(())
    }

    enum Scalar {
        Raw(Kind, Vec<u8>),
        Int(Kind, u64),
        F64(f64),
        F32(f32),
    }

    fn write_scalar(out: &mut Vec<u8>, s: &Scalar) -> Option<()> {
        match s {
            Scalar::Raw(Kind::Bytes, b) => write_base64(out, b),
            Scalar::Raw(_, b) => write_json(out, std::str::from_utf8(b).ok()?),
            Scalar::Int(Kind::Bool, v) => write_json(out, &(*v != 0)),
            Scalar::Int(Kind::I32, v) => write_json(out, &(*v as i32)),
            Scalar::Int(_, v) => write_json(out, &(*v as i64)),
            Scalar::F64(f) => write_f64(out, *f),
            Scalar::F32(f) => write_f32(out, *f),
        }
        Some(())
    }

    /// Writes the value; `None` when its kind has no plain form here or it is malformed.
    pub fn write(out: &mut Vec<u8>, proto: &[u8]) -> Option<()> {
        let mut r = Reader(proto);
        let mut last = None;
        while !r.0.is_empty() {
            last = Some(r.field()?);
        }
        let Some((field, wire, payload, varint)) = last else {
            out.extend_from_slice(b"null");
            return Some(());
        };
        if field == 19 {
            out.extend_from_slice(b"null");
            return Some(());
        }
        let kind = kind(field)?;
        let mut got = Vec::new();
        if is_list(field) {
            let mut list = Reader(payload);
            while !list.0.is_empty() {
                let (n, w, p, v) = list.field()?;
                if n == 1 {
                    scalars(kind, w, p, v, &mut got)?;
                }
            }
            out.push(b'[');
            for (i, s) in got.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(out, s)?;
            }
            out.push(b']');
            return Some(());
        }
        scalars(kind, wire, payload, varint, &mut got)?;
        write_scalar(out, got.first()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_engine::feature::KeyType;
    use serde_json::json;

    fn view(join_keys: &str, version: u32) -> FeastView {
        let mut schema = GroupSchema::from_spec(
            1,
            quiver_engine::feature::GroupSpec::new("p__v", KeyType::Bytes, vec![]),
        )
        .unwrap();
        schema.tags = vec![FEAST_TAG.into()];
        schema.description =
            format!("Feast feature view p/v{KEY_MARK}{{\"join_keys\": {join_keys}, \"version\": {version}}}");
        FeastView::of(&schema).expect("a Feast view")
    }

    #[test]
    fn keys_are_feast_serialize_entity_key() {
        // serialize_entity_key(EntityKey(join_keys=["driver_id"], entity_values=[int64 1001]), 3)
        let v = view(r#"[["driver_id", "INT64"]]"#, 3);
        let mut want = vec![1, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0];
        want.extend_from_slice(b"driver_id");
        want.extend_from_slice(&[4, 0, 0, 0, 8, 0, 0, 0]);
        want.extend_from_slice(&1001i64.to_le_bytes());
        assert_eq!(v.key(&[&json!(1001)]).unwrap(), want);
        assert!(v.key(&[&json!("1001")]).is_err());
        // Two keys are sorted by name; version 2 has no count and no name lengths.
        let v = view(r#"[["b", "STRING"], ["a", "INT32"]]"#, 2);
        let mut want = vec![2, 0, 0, 0, b'a', 2, 0, 0, 0, b'b'];
        want.extend_from_slice(&[3, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0]);
        want.extend_from_slice(&[2, 0, 0, 0, 1, 0, 0, 0, b'x']);
        assert_eq!(v.key(&[&json!(7), &json!("x")]).unwrap(), want);
    }

    #[test]
    fn value_protos_decode_to_plain_json() {
        let text = |p: &[u8]| {
            let mut out = Vec::new();
            write_value_proto(&mut out, p);
            String::from_utf8(out).unwrap()
        };
        // A field's tag as a varint (fields over 15 take two bytes).
        let tag = |field: u8, wire: u8| -> Vec<u8> {
            let t = (u16::from(field) << 3) | u16::from(wire);
            if t < 0x80 {
                vec![t as u8]
            } else {
                vec![(t as u8) | 0x80, (t >> 7) as u8]
            }
        };
        // double_list_val (15) = [1.5, -2.0], packed.
        let mut p = tag(15, 2);
        p.extend_from_slice(&[18, 1 << 3 | 2, 16]);
        p.extend_from_slice(&1.5f64.to_le_bytes());
        p.extend_from_slice(&(-2.0f64).to_le_bytes());
        assert_eq!(text(&p), "[1.5,-2.0]");
        // bool_list_val (17) = [true, false].
        let mut p = tag(17, 2);
        p.extend_from_slice(&[4, 1 << 3 | 2, 2, 1, 0]);
        assert_eq!(text(&p), "[true,false]");
        // int32_val (3) = -1 (sign-extended to ten bytes); string_list_val (12) unpacked.
        let mut p = tag(3, 0);
        p.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(text(&p), "-1");
        let mut p = tag(12, 2);
        p.extend_from_slice(&[6, 1 << 3 | 2, 1, b'a', 1 << 3 | 2, 1, b'b']);
        assert_eq!(text(&p), r#"["a","b"]"#);
        // null_val (19), and an empty Value.
        let mut p = tag(19, 0);
        p.push(0);
        assert_eq!(text(&p), "null");
        assert_eq!(text(&[]), "null");
        // A map (20) has no plain form here: the proto's base64; so has a malformed one,
        // never a panic.
        let mut p = tag(20, 2);
        p.push(0);
        assert_eq!(text(&p), "\"ogEA\"");
        assert_eq!(text(&[15 << 3 | 2, 9, 1]), "\"egkB\"");
    }
}
