//! Request bodies shared by the endpoints: entity columns kept in the order they were sent.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value as Json;
use std::fmt;

/// A JSON object of named columns, `{"name": [v, ...], ...}`, in the order of the request
/// (Feast answers entity columns in that order).
#[derive(Debug, Default)]
pub struct Columns(pub Vec<(String, Vec<Json>)>);

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Columns, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = Columns;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of named arrays")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Columns, A::Error> {
                let mut out = Vec::new();
                while let Some((name, values)) = map.next_entry::<String, Vec<Json>>()? {
                    out.push((name, values));
                }
                Ok(Columns(out))
            }
        }
        d.deserialize_map(Ordered)
    }
}

impl Columns {
    pub fn get(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|(n, _)| n == name)
    }

    /// The common length of the columns, checked: every column as long as the first, and
    /// 1..=`max_rows` rows. `what` names the object in errors ("entities", "df").
    pub fn rows(&self, what: &str, max_rows: u32) -> Result<usize, super::ApiError> {
        let Some((first, values)) = self.0.first() else {
            return Err(super::ApiError::invalid(format!("{what} has no columns")));
        };
        let n = values.len();
        if let Some((name, v)) = self.0.iter().find(|(_, v)| v.len() != n) {
            return Err(super::ApiError::invalid(format!(
                "{what} column '{name}' has {} values but '{first}' has {n}; every column \
                 holds one value per row",
                v.len()
            )));
        }
        if n == 0 {
            return Err(super::ApiError::invalid(format!("{what} has no rows")));
        }
        if n > max_rows as usize {
            return Err(super::ApiError::limit(format!(
                "{what} has {n} rows, over the max_batch_keys limit of {max_rows}"
            )));
        }
        Ok(n)
    }
}

/// Parses a request body, or a 400 naming the endpoint and what serde found wrong.
pub fn parse<'a, T: Deserialize<'a>>(endpoint: &str, body: &'a [u8]) -> Result<T, super::ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        super::ApiError::invalid(format!(
            "the body of {endpoint} is not a valid request: {e}"
        ))
    })
}
