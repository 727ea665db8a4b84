//! Validation rules of a feature: what values a put may store beyond matching the feature's
//! type. Rules are part of the group schema (set on create, changed by alter, versioned with the
//! rest of it). Each group chooses what a broken rule does ([`ViolationMode`]): refuse the whole
//! put, or drop the offending values and count them.
//!
//! The rules are plain data here; [`RuleChecker`] is the compiled form (hash sets, a regular
//! expression) the write path uses. The schema record stores them as documented on
//! [`FeatureRules`]; [`text`] is the one-line syntax of the CLI and the docs.

mod check;
mod codec;
pub mod text;

pub use check::RuleChecker;

use super::error::FeatureError;
use super::limits::{
    MAX_ALLOWED_VALUES, MAX_ALLOWED_VALUE_BYTES, MAX_LIST_LEN, MAX_TTL_S, MAX_VALUE_BYTES,
};
use super::types::FeatureType;

/// One end of a range: the value, and whether the value itself is allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

/// A range of numbers; an absent end leaves that side open.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    pub min: Option<Bound>,
    pub max: Option<Bound>,
}

impl Range {
    pub fn is_set(&self) -> bool {
        self.min.is_some() || self.max.is_some()
    }

    /// Whether `x` lies in the range. NaN lies in no set range.
    pub fn contains(&self, x: f64) -> bool {
        let above = match self.min {
            Some(b) if b.inclusive => x >= b.value,
            Some(b) => x > b.value,
            None => !x.is_nan(),
        };
        let below = match self.max {
            Some(b) if b.inclusive => x <= b.value,
            Some(b) => x < b.value,
            None => !x.is_nan(),
        };
        above && below
    }

    fn check(&self, what: &str) -> Result<(), String> {
        for b in [self.min, self.max].into_iter().flatten() {
            if !b.value.is_finite() {
                return Err(format!("{what} bound {} is not a finite number", b.value));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max) {
            let empty =
                lo.value > hi.value || (lo.value == hi.value && !(lo.inclusive && hi.inclusive));
            if empty {
                return Err(format!("{what} {} admits no value", text::range(self)));
            }
        }
        Ok(())
    }
}

/// What a group does with a value that breaks a rule of its feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViolationMode {
    /// The whole put is refused, naming the feature, the rule and the value (the default).
    #[default]
    Reject,
    /// The offending values are left out of the put and counted in its result; the rest is
    /// written.
    Drop,
}

/// The validation rules of one feature. `Default` is no rule at all.
///
/// Which rules apply to which types (others are refused when the schema is created or altered):
///
/// | rule | types |
/// | --- | --- |
/// | `not_null` | all |
/// | `finite` | f32, f64, f32[N], list<f32> (refuses NaN and infinity even when the group allows them) |
/// | `range` | i64, f32, f64 (the value), f32[N], list<i64>, list<f32> (each element); compared as f64 |
/// | `allowed` | string, list<string> (each element), i64 (decimal), bool (`true`/`false`) |
/// | `pattern` | string, list<string> (each element); the whole value must match |
/// | `len_min`, `len_max` | list<i64>, list<f32>, list<string> (elements), string, bytes (bytes) |
/// | `norm` | f32[N], list<f32> (Euclidean norm) |
/// | `max_lag_s`, `max_future_s` | all (the put's event time against the store's clock) |
///
/// A null value passes every rule but `not_null`.
///
/// ## Format
///
/// Stored in the group schema after a feature's tags when bit 1 of the feature's flags is set
/// (see [`crate::feature::GroupSchema`]); the wire protocol carries the same bytes. Little-endian;
/// "str" is a varint byte length and UTF-8 bytes.
///
/// | size | field |
/// | --- | --- |
/// | 2 | flags, u16: bit 0 not-null, bit 1 finite, bit 2 range min set, bit 3 range min inclusive, bit 4 range max set, bit 5 range max inclusive, bit 6 allowed values, bit 7 pattern, bit 8 min length, bit 9 max length, bit 10 norm min set, bit 11 norm min inclusive, bit 12 norm max set, bit 13 norm max inclusive, bit 14 max lag, bit 15 max future skew. An "inclusive" bit is 0 when its bound is not set |
/// | 8 | bit 2: range min, f64 |
/// | 8 | bit 4: range max, f64 |
/// | varint + str… | bit 6: count V (1..=1024), then V × str (each at most 1024 bytes) |
/// | str | bit 7: pattern (1..=1024 bytes) |
/// | 4 | bit 8: min length, u32 |
/// | 4 | bit 9: max length, u32 |
/// | 8 | bit 10: norm min, f64 |
/// | 8 | bit 12: norm max, f64 |
/// | 4 | bit 14: max lag in seconds, u32 (1..=315360000) |
/// | 4 | bit 15: max future skew in seconds, u32 (1..=315360000) |
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureRules {
    /// Refuse null values.
    pub not_null: bool,
    /// Refuse NaN and infinity, whatever the group's `allow_non_finite`.
    pub finite: bool,
    pub range: Range,
    /// The values allowed, as text; empty: any value.
    pub allowed: Vec<String>,
    /// A regular expression (Rust `regex` syntax) the whole value must match.
    pub pattern: Option<String>,
    pub len_min: Option<u32>,
    pub len_max: Option<u32>,
    pub norm: Range,
    /// Refuse values whose event time is more than this many seconds before now.
    pub max_lag_s: Option<u32>,
    /// Refuse values whose event time is more than this many seconds after now.
    pub max_future_s: Option<u32>,
}

fn is_numeric(ty: FeatureType) -> bool {
    matches!(
        ty,
        FeatureType::I64
            | FeatureType::F32
            | FeatureType::F64
            | FeatureType::Vector(_)
            | FeatureType::ListI64
            | FeatureType::ListF32
    )
}

fn has_floats(ty: FeatureType) -> bool {
    matches!(
        ty,
        FeatureType::F32 | FeatureType::F64 | FeatureType::Vector(_) | FeatureType::ListF32
    )
}

fn has_strings(ty: FeatureType) -> bool {
    matches!(ty, FeatureType::String | FeatureType::ListString)
}

fn has_length(ty: FeatureType) -> bool {
    matches!(
        ty,
        FeatureType::String
            | FeatureType::Bytes
            | FeatureType::ListI64
            | FeatureType::ListF32
            | FeatureType::ListString
    )
}

impl FeatureRules {
    /// No rule is set.
    pub fn is_empty(&self) -> bool {
        *self == FeatureRules::default()
    }

    /// How many rules are set (the range and the norm count as one each).
    pub fn count(&self) -> usize {
        [
            self.not_null,
            self.finite,
            self.range.is_set(),
            !self.allowed.is_empty(),
            self.pattern.is_some(),
            self.len_min.is_some() || self.len_max.is_some(),
            self.norm.is_set(),
            self.max_lag_s.is_some(),
            self.max_future_s.is_some(),
        ]
        .iter()
        .filter(|&&set| set)
        .count()
    }

    /// Checks that the rules are consistent, within their limits, and apply to `ty`.
    pub fn check(&self, group: &str, feature: &str, ty: FeatureType) -> Result<(), FeatureError> {
        self.check_reason(ty)
            .map_err(|reason| FeatureError::InvalidRule {
                group: group.to_string(),
                feature: feature.to_string(),
                reason,
            })
    }

    fn check_reason(&self, ty: FeatureType) -> Result<(), String> {
        let refuse = |rule: &str, types: &str| {
            Err(format!(
                "rule {rule} does not apply to a feature of type {ty} (only to {types})"
            ))
        };
        if self.finite && !has_floats(ty) {
            return refuse("finite", "f32, f64, f32[N] and list<f32>");
        }
        if self.range.is_set() && !is_numeric(ty) {
            return refuse("range", "i64, f32, f64, f32[N], list<i64> and list<f32>");
        }
        self.range.check("range")?;
        if !self.allowed.is_empty() {
            self.check_allowed(ty)?;
        }
        if let Some(pattern) = &self.pattern {
            if !has_strings(ty) {
                return refuse("regex", "string and list<string>");
            }
            check::compile_pattern(pattern)?;
        }
        if self.len_min.is_some() || self.len_max.is_some() {
            if !has_length(ty) {
                let why = if matches!(ty, FeatureType::Vector(_)) {
                    " (a vector's length is its fixed dimension)"
                } else {
                    ""
                };
                return Err(format!(
                    "rule len does not apply to a feature of type {ty}{why}; only to string, bytes, list<i64>, list<f32> and list<string>"
                ));
            }
            let max = if ty == FeatureType::String || ty == FeatureType::Bytes {
                MAX_VALUE_BYTES
            } else {
                MAX_LIST_LEN
            } as u32;
            let (lo, hi) = (self.len_min.unwrap_or(0), self.len_max.unwrap_or(max));
            if lo > hi || hi > max {
                return Err(format!(
                    "length bounds {lo}..={hi} are empty or beyond the limit of {max}"
                ));
            }
        }
        if self.norm.is_set() && !matches!(ty, FeatureType::Vector(_) | FeatureType::ListF32) {
            return refuse("norm", "f32[N] and list<f32>");
        }
        self.norm.check("norm")?;
        for (name, secs) in [("lag", self.max_lag_s), ("future", self.max_future_s)] {
            if let Some(s) = secs.filter(|&s| s == 0 || s > MAX_TTL_S) {
                return Err(format!("{name} of {s} s is outside 1..={MAX_TTL_S} s"));
            }
        }
        Ok(())
    }

    fn check_allowed(&self, ty: FeatureType) -> Result<(), String> {
        if self.allowed.len() > MAX_ALLOWED_VALUES {
            return Err(format!(
                "{} allowed values, over the limit of {MAX_ALLOWED_VALUES}",
                self.allowed.len()
            ));
        }
        for value in &self.allowed {
            if value.len() > MAX_ALLOWED_VALUE_BYTES {
                return Err(format!(
                    "an allowed value is {} bytes, over the limit of {MAX_ALLOWED_VALUE_BYTES}",
                    value.len()
                ));
            }
            let parses = match ty {
                FeatureType::String | FeatureType::ListString => true,
                FeatureType::I64 => value.parse::<i64>().is_ok(),
                FeatureType::Bool => value == "true" || value == "false",
                _ => {
                    return Err(format!(
                        "rule in does not apply to a feature of type {ty} (only to string, list<string>, i64 and bool)"
                    ))
                }
            };
            if !parses {
                return Err(format!("allowed value '{value}' is not a {ty}"));
            }
        }
        Ok(())
    }
}
