//! The one-line text of a rule, as the CLI takes it and error messages and `describe` print it:
//!
//! | text | rule |
//! | --- | --- |
//! | `not-null` | refuse null values |
//! | `finite` | refuse NaN and infinity |
//! | `range=[0,150)` | numbers (or each element) in the range; `[`/`]` include the end, `(`/`)` exclude it, an empty end is open: `range=(0,)` |
//! | `norm=[0.9,1.1]` | Euclidean norm of a vector or list<f32> in the range |
//! | `len=[1,10]` | element count of a list, byte length of a string or bytes, in the range (integers) |
//! | `in=a,b,c` | only these values (strings, i64 or bool; a value cannot contain a comma) |
//! | `regex=PATTERN` | the whole string (or each element) matches PATTERN (Rust regex syntax) |
//! | `lag=1h` | refuse event times more than this before now (`s`, `m`, `h`, `d`; plain digits are seconds) |
//! | `future=5m` | refuse event times more than this after now |

use super::{Bound, FeatureRules, Range};

/// The text of a range: `[0,150)`, `(0,)`, `(,1]`.
pub fn range(r: &Range) -> String {
    let lo = match r.min {
        Some(b) => format!("{}{}", if b.inclusive { "[" } else { "(" }, b.value),
        None => "(".into(),
    };
    let hi = match r.max {
        Some(b) => format!("{}{}", b.value, if b.inclusive { "]" } else { ")" }),
        None => ")".into(),
    };
    format!("{lo},{hi}")
}

/// The text of length bounds: `[1,10]`, `[1,)`, `[0,10]`.
pub fn len(lo: Option<u32>, hi: Option<u32>) -> String {
    let hi = hi.map_or(")".into(), |h| format!("{h}]"));
    format!("[{},{hi}", lo.unwrap_or(0))
}

/// The text of an allowed set: `in=a,b`.
pub fn allowed(values: &[String]) -> String {
    format!("in={}", values.join(","))
}

/// Seconds in the largest unit that divides them: `90s`, `15m`, `1h`, `7d`.
pub fn duration(secs: u32) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs > 0 && secs / size * size == secs {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// Parses a duration: digits then `s`, `m`, `h` or `d` (plain digits are seconds).
pub fn parse_duration(text: &str) -> Result<u32, String> {
    let (digits, size) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1u64),
        Some((i, 'm')) => (&text[..i], 60),
        Some((i, 'h')) => (&text[..i], 3600),
        Some((i, 'd')) => (&text[..i], 86_400),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(size))
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| format!("invalid duration '{text}': expected digits then s, m, h or d"))
}

fn parse_range(text: &str) -> Result<Range, String> {
    let bad = || {
        format!("invalid range '{text}': expected [MIN,MAX] with [ or ( and ] or ), an end may be empty")
    };
    let open = text.chars().next().ok_or_else(bad)?;
    let close = text.chars().last().ok_or_else(bad)?;
    if !matches!(open, '[' | '(') || !matches!(close, ']' | ')') || text.len() < 3 {
        return Err(bad());
    }
    let (lo, hi) = text[1..text.len() - 1].split_once(',').ok_or_else(bad)?;
    let bound = |s: &str, inclusive: bool| -> Result<Option<Bound>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let value = s.parse::<f64>().map_err(|_| bad())?;
        Ok(Some(Bound { value, inclusive }))
    };
    Ok(Range {
        min: bound(lo, open == '[')?,
        max: bound(hi, close == ']')?,
    })
}

fn parse_len(text: &str) -> Result<(Option<u32>, Option<u32>), String> {
    let r = parse_range(text)?;
    let int = |b: Option<Bound>, step: i64| -> Result<Option<u32>, String> {
        let Some(b) = b else { return Ok(None) };
        if b.value.fract() != 0.0 {
            return Err(format!("length bound {} is not an integer", b.value));
        }
        let v = b.value as i64 + if b.inclusive { 0 } else { step };
        u32::try_from(v)
            .map(Some)
            .map_err(|_| format!("length bound {v} is outside 0..={}", u32::MAX))
    };
    Ok((int(r.min, 1)?, int(r.max, -1)?))
}

impl FeatureRules {
    /// Sets the rule written as `text` (see the module doc); each rule at most once.
    pub fn parse_rule(&mut self, text: &str) -> Result<(), String> {
        let (name, arg) = text.split_once('=').unwrap_or((text, ""));
        let twice = || format!("rule '{name}' is given twice");
        let set = |slot: bool| if slot { Err(twice()) } else { Ok(()) };
        match (name, arg) {
            ("not-null", "") => {
                set(self.not_null)?;
                self.not_null = true;
            }
            ("finite", "") => {
                set(self.finite)?;
                self.finite = true;
            }
            ("range", a) => {
                set(self.range.is_set())?;
                self.range = parse_range(a)?;
            }
            ("norm", a) => {
                set(self.norm.is_set())?;
                self.norm = parse_range(a)?;
            }
            ("len", a) => {
                set(self.len_min.is_some() || self.len_max.is_some())?;
                (self.len_min, self.len_max) = parse_len(a)?;
            }
            ("in", a) if !a.is_empty() => {
                set(!self.allowed.is_empty())?;
                self.allowed = a.split(',').map(str::to_string).collect();
            }
            ("regex", a) if !a.is_empty() => {
                set(self.pattern.is_some())?;
                self.pattern = Some(a.to_string());
            }
            ("lag", a) => {
                set(self.max_lag_s.is_some())?;
                self.max_lag_s = Some(parse_duration(a)?);
            }
            ("future", a) => {
                set(self.max_future_s.is_some())?;
                self.max_future_s = Some(parse_duration(a)?);
            }
            _ => {
                return Err(format!(
                    "invalid rule '{text}': expected not-null, finite, range=[A,B], norm=[A,B], len=[A,B], in=V,V, regex=PATTERN, lag=DURATION or future=DURATION"
                ))
            }
        }
        Ok(())
    }

    /// The rules as texts that [`FeatureRules::parse_rule`] reads back.
    pub fn texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.not_null {
            out.push("not-null".to_string());
        }
        if self.finite {
            out.push("finite".to_string());
        }
        if self.range.is_set() {
            out.push(format!("range={}", range(&self.range)));
        }
        if self.norm.is_set() {
            out.push(format!("norm={}", range(&self.norm)));
        }
        if self.len_min.is_some() || self.len_max.is_some() {
            out.push(format!("len={}", len(self.len_min, self.len_max)));
        }
        if !self.allowed.is_empty() {
            out.push(allowed(&self.allowed));
        }
        if let Some(p) = &self.pattern {
            out.push(format!("regex={p}"));
        }
        if let Some(s) = self.max_lag_s {
            out.push(format!("lag={}", duration(s)));
        }
        if let Some(s) = self.max_future_s {
            out.push(format!("future={}", duration(s)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_text_round_trips() {
        let mut rules = FeatureRules::default();
        for t in [
            "not-null",
            "finite",
            "range=[0,150)",
            "norm=(0.5,)",
            "len=[1,10]",
            "in=a,b,c",
            "regex=[a-z]+",
            "lag=1h",
            "future=90s",
        ] {
            rules.parse_rule(t).unwrap();
        }
        assert_eq!(
            rules.range.max,
            Some(Bound {
                value: 150.0,
                inclusive: false
            })
        );
        assert_eq!(
            rules.norm.min,
            Some(Bound {
                value: 0.5,
                inclusive: false
            })
        );
        assert_eq!(rules.max_lag_s, Some(3600));
        let mut again = FeatureRules::default();
        for t in rules.texts() {
            again.parse_rule(&t).unwrap();
        }
        assert_eq!(again, rules);
    }

    #[test]
    fn bad_texts_are_refused_by_name() {
        let mut rules = FeatureRules::default();
        for (t, needle) in [
            ("range=0,1", "invalid range"),
            ("range=[a,1]", "invalid range"),
            ("len=[0.5,1]", "not an integer"),
            ("lag=5x", "invalid duration"),
            ("max=3", "invalid rule"),
            ("in=", "invalid rule"),
        ] {
            let err = rules.parse_rule(t).unwrap_err();
            assert!(err.contains(needle), "{t}: {err}");
        }
        rules.parse_rule("not-null").unwrap();
        assert!(rules.parse_rule("not-null").unwrap_err().contains("twice"));
        let mut len = FeatureRules::default();
        len.parse_rule("len=(0,10)").unwrap();
        assert_eq!((len.len_min, len.len_max), (Some(1), Some(9)));
    }
}
