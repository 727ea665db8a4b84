//! Encoding of [`FeatureRules`], as documented on the type. The schema record embeds it after a
//! feature's tags; the wire protocol carries the same bytes.

use super::{Bound, FeatureRules, Range};
use crate::feature::bytes::{put_bytes, put_varint, Reader};
use crate::feature::error::FeatureError;
use crate::feature::limits::{MAX_ALLOWED_VALUES, MAX_ALLOWED_VALUE_BYTES, MAX_PATTERN_BYTES};

const NOT_NULL: u16 = 1;
const FINITE: u16 = 1 << 1;
const RANGE: u16 = 2; // bits 2..=5
const ALLOWED: u16 = 1 << 6;
const PATTERN: u16 = 1 << 7;
const LEN_MIN: u16 = 1 << 8;
const LEN_MAX: u16 = 1 << 9;
const NORM: u16 = 10; // bits 10..=13
const MAX_LAG: u16 = 1 << 14;
const MAX_FUTURE: u16 = 1 << 15;

/// The four flag bits of a range starting at bit `at`: min set, min inclusive, max set, max
/// inclusive.
fn range_flags(r: &Range, at: u16) -> u16 {
    let end = |b: Option<Bound>| match b {
        Some(b) => 1 | (b.inclusive as u16) << 1,
        None => 0,
    };
    (end(r.min) | end(r.max) << 2) << at
}

fn read_range(r: &mut Reader<'_>, flags: u16, at: u16) -> Result<Range, FeatureError> {
    let mut end = |shift: u16| -> Result<Option<Bound>, FeatureError> {
        let bits = (flags >> (at + shift)) & 0b11;
        match bits {
            0 => Ok(None),
            0b10 => Err(r.err("an inclusive bit is set for an absent bound")),
            _ => Ok(Some(Bound {
                value: f64::from_bits(r.u64()?),
                inclusive: bits & 0b10 != 0,
            })),
        }
    };
    let min = end(0)?;
    let max = end(2)?;
    Ok(Range { min, max })
}

fn put_range(out: &mut Vec<u8>, r: &Range) {
    for b in [r.min, r.max].into_iter().flatten() {
        out.extend_from_slice(&b.value.to_bits().to_le_bytes());
    }
}

impl FeatureRules {
    fn flags(&self) -> u16 {
        let bit = |set: bool, b: u16| if set { b } else { 0 };
        bit(self.not_null, NOT_NULL)
            | bit(self.finite, FINITE)
            | range_flags(&self.range, RANGE)
            | bit(!self.allowed.is_empty(), ALLOWED)
            | bit(self.pattern.is_some(), PATTERN)
            | bit(self.len_min.is_some(), LEN_MIN)
            | bit(self.len_max.is_some(), LEN_MAX)
            | range_flags(&self.norm, NORM)
            | bit(self.max_lag_s.is_some(), MAX_LAG)
            | bit(self.max_future_s.is_some(), MAX_FUTURE)
    }

    /// Appends the encoding (see the `## Format` section of [`FeatureRules`]).
    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.flags().to_le_bytes());
        put_range(out, &self.range);
        if !self.allowed.is_empty() {
            put_varint(out, self.allowed.len() as u64);
            self.allowed
                .iter()
                .for_each(|v| put_bytes(out, v.as_bytes()));
        }
        if let Some(p) = &self.pattern {
            put_bytes(out, p.as_bytes());
        }
        for v in [self.len_min, self.len_max].into_iter().flatten() {
            out.extend_from_slice(&v.to_le_bytes());
        }
        put_range(out, &self.norm);
        for v in [self.max_lag_s, self.max_future_s].into_iter().flatten() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Reads what [`FeatureRules::put`] wrote. Whether the rules fit the feature's type is the
    /// caller's check ([`FeatureRules::check`]).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<FeatureRules, FeatureError> {
        let flags = u16::from_le_bytes([r.u8()?, r.u8()?]);
        let opt_u32 =
            |r: &mut Reader<'_>, bit: u16| (flags & bit != 0).then(|| r.u32()).transpose();
        let range = read_range(r, flags, RANGE)?;
        let allowed = if flags & ALLOWED != 0 {
            let count = r.varint_max(MAX_ALLOWED_VALUES, "allowed value count")?;
            if count == 0 {
                return Err(r.err("an allowed set of 0 values"));
            }
            (0..count)
                .map(|_| r.string(MAX_ALLOWED_VALUE_BYTES, "allowed value"))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let pattern = (flags & PATTERN != 0)
            .then(|| r.string(MAX_PATTERN_BYTES, "pattern"))
            .transpose()?;
        Ok(FeatureRules {
            not_null: flags & NOT_NULL != 0,
            finite: flags & FINITE != 0,
            range,
            allowed,
            pattern,
            len_min: opt_u32(r, LEN_MIN)?,
            len_max: opt_u32(r, LEN_MAX)?,
            norm: read_range(r, flags, NORM)?,
            max_lag_s: opt_u32(r, MAX_LAG)?,
            max_future_s: opt_u32(r, MAX_FUTURE)?,
        })
    }

    /// The encoding alone; empty for no rules (how the wire protocol says "none").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.is_empty() {
            self.put(&mut out);
        }
        out
    }

    /// Decodes [`FeatureRules::to_bytes`]: the whole slice, nothing after it; empty is no rules.
    /// A non-empty encoding of no rules is refused, so that each rule set has one encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<FeatureRules, FeatureError> {
        if bytes.is_empty() {
            return Ok(FeatureRules::default());
        }
        let mut r = Reader::new(bytes, "feature rules");
        let rules = FeatureRules::read(&mut r)?;
        if !r.is_empty() {
            return Err(r.err("trailing bytes"));
        }
        if rules.is_empty() {
            return Err(r.err("an encoding of no rules must be empty"));
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_rule() -> FeatureRules {
        let mut rules = FeatureRules::default();
        for t in [
            "not-null",
            "finite",
            "range=(0,1.5]",
            "norm=[1,)",
            "len=[2,9]",
            "in=x,y",
            "regex=a.*",
            "lag=2h",
            "future=1m",
        ] {
            rules.parse_rule(t).unwrap();
        }
        rules
    }

    #[test]
    fn rules_round_trip_and_truncations_fail() {
        let rules = every_rule();
        let bytes = rules.to_bytes();
        assert_eq!(FeatureRules::from_bytes(&bytes).unwrap(), rules);
        for len in 1..bytes.len() {
            assert!(
                FeatureRules::from_bytes(&bytes[..len]).is_err(),
                "len {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(FeatureRules::from_bytes(&longer).is_err());
        assert!(FeatureRules::default().to_bytes().is_empty());
        assert!(
            FeatureRules::from_bytes(&[0, 0]).is_err(),
            "one encoding of none"
        );
        // Inclusive bit of an absent range min.
        assert!(FeatureRules::from_bytes(&[0b1000, 0]).is_err());
    }

    #[test]
    fn each_rule_alone_round_trips() {
        for t in every_rule().texts() {
            let mut one = FeatureRules::default();
            one.parse_rule(&t).unwrap();
            assert_eq!(
                FeatureRules::from_bytes(&one.to_bytes()).unwrap(),
                one,
                "{t}"
            );
        }
    }
}
