//! The compiled form of a feature's rules, and the check of one value against them.

use std::collections::HashSet;

use regex::Regex;

use super::{text, FeatureRules};
use crate::feature::error::FeatureError;
use crate::feature::limits::MAX_PATTERN_BYTES;
use crate::feature::types::Value;

/// Largest compiled program of a pattern, in bytes (the regex crate's `size_limit`): bounds the
/// memory one rule may take and the time of compiling it.
const MAX_PATTERN_PROGRAM_BYTES: usize = 1 << 20;
/// Longest text of a refused value that an error message shows.
const MAX_SHOWN_CHARS: usize = 64;

/// Compiles `pattern` anchored at both ends: the whole value must match.
pub(super) fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_BYTES {
        return Err(format!(
            "pattern of {} bytes is outside 1..={MAX_PATTERN_BYTES} bytes",
            pattern.len()
        ));
    }
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(MAX_PATTERN_PROGRAM_BYTES)
        .build()
        .map_err(|e| format!("invalid regex '{pattern}': {e}"))
}

/// A feature's rules ready for the write path. Built only from rules that passed
/// [`FeatureRules::check`].
#[derive(Debug, Clone)]
pub struct RuleChecker {
    rules: FeatureRules,
    strings: HashSet<String>,
    ints: HashSet<i64>,
    bools: [bool; 2],
    pattern: Option<Regex>,
}

/// Why a value was refused: the rule (as its text) and the value as shown.
#[derive(Debug)]
pub struct Broken {
    pub rule: String,
    pub value: String,
}

fn shown(text: String) -> String {
    match text.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn broken(rule: String, value: impl std::fmt::Display) -> Broken {
    Broken {
        rule,
        value: shown(value.to_string()),
    }
}

impl RuleChecker {
    /// Compiles checked rules. Panics if they do not compile: every schema is checked when it is
    /// created, altered or decoded, so that is a broken invariant.
    pub fn new(rules: &FeatureRules) -> RuleChecker {
        let pattern = rules
            .pattern
            .as_deref()
            .map(|p| compile_pattern(p).expect("rules were checked before they were compiled"));
        RuleChecker {
            strings: rules.allowed.iter().cloned().collect(),
            ints: rules
                .allowed
                .iter()
                .filter_map(|v| v.parse().ok())
                .collect(),
            bools: [
                rules.allowed.iter().any(|v| v == "false"),
                rules.allowed.iter().any(|v| v == "true"),
            ],
            pattern,
            rules: rules.clone(),
        }
    }

    pub fn rules(&self) -> &FeatureRules {
        &self.rules
    }

    /// Checks one value written with `event_time_ms` when the clock reads `now_ms`, naming the
    /// feature and the group in the error.
    pub fn check(
        &self,
        group: &str,
        feature: &str,
        value: &Value,
        event_time_ms: u64,
        now_ms: u64,
    ) -> Result<(), FeatureError> {
        self.broken(value, event_time_ms, now_ms)
            .map_err(|b| FeatureError::RuleViolation {
                group: group.to_string(),
                feature: feature.to_string(),
                rule: b.rule,
                value: b.value,
            })
    }

    fn broken(&self, value: &Value, event_time_ms: u64, now_ms: u64) -> Result<(), Broken> {
        self.check_time(event_time_ms, now_ms)?;
        let r = &self.rules;
        match value {
            Value::Null if r.not_null => Err(broken("not-null".into(), "null")),
            Value::Null => Ok(()),
            Value::Bool(b) => self.allowed(|| self.bools[*b as usize], b),
            Value::I64(x) => {
                self.range(*x as f64, x)?;
                self.allowed(|| self.ints.contains(x), x)
            }
            Value::F32(x) => self.float(*x as f64),
            Value::F64(x) => self.float(*x),
            Value::String(s) => {
                self.len(s.len(), "bytes")?;
                self.string(s)
            }
            Value::Bytes(b) => self.len(b.len(), "bytes"),
            Value::Vector(v) => self.floats(v),
            Value::ListF32(v) => {
                self.len(v.len(), "elements")?;
                self.floats(v)
            }
            Value::ListI64(v) => {
                self.len(v.len(), "elements")?;
                v.iter().try_for_each(|x| self.range(*x as f64, x))
            }
            Value::ListString(v) => {
                self.len(v.len(), "elements")?;
                v.iter().try_for_each(|s| self.string(s))
            }
        }
    }

    fn check_time(&self, event_time_ms: u64, now_ms: u64) -> Result<(), Broken> {
        if let Some(lag_s) = self.rules.max_lag_s {
            let age_ms = now_ms.saturating_sub(event_time_ms);
            if age_ms > u64::from(lag_s) * 1000 {
                return Err(broken(
                    format!("lag={}", text::duration(lag_s)),
                    format_args!("event time {event_time_ms} ms, {age_ms} ms before now"),
                ));
            }
        }
        if let Some(skew_s) = self.rules.max_future_s {
            let ahead_ms = event_time_ms.saturating_sub(now_ms);
            if ahead_ms > u64::from(skew_s) * 1000 {
                return Err(broken(
                    format!("future={}", text::duration(skew_s)),
                    format_args!("event time {event_time_ms} ms, {ahead_ms} ms after now"),
                ));
            }
        }
        Ok(())
    }

    fn allowed(
        &self,
        ok: impl FnOnce() -> bool,
        value: impl std::fmt::Display,
    ) -> Result<(), Broken> {
        if self.rules.allowed.is_empty() || ok() {
            return Ok(());
        }
        Err(broken(text::allowed(&self.rules.allowed), value))
    }

    fn range(&self, x: f64, value: impl std::fmt::Display) -> Result<(), Broken> {
        if !self.rules.range.is_set() || self.rules.range.contains(x) {
            return Ok(());
        }
        Err(broken(
            format!("range={}", text::range(&self.rules.range)),
            value,
        ))
    }

    fn float(&self, x: f64) -> Result<(), Broken> {
        if self.rules.finite && !x.is_finite() {
            return Err(broken("finite".into(), x));
        }
        self.range(x, x)
    }

    fn floats(&self, v: &[f32]) -> Result<(), Broken> {
        v.iter().try_for_each(|&x| self.float(x as f64))?;
        if !self.rules.norm.is_set() {
            return Ok(());
        }
        let norm = v
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt();
        if self.rules.norm.contains(norm) {
            return Ok(());
        }
        Err(broken(
            format!("norm={}", text::range(&self.rules.norm)),
            format_args!("a vector of norm {norm}"),
        ))
    }

    fn len(&self, len: usize, unit: &str) -> Result<(), Broken> {
        let (lo, hi) = (self.rules.len_min, self.rules.len_max);
        let short = lo.is_some_and(|lo| len < lo as usize);
        let long = hi.is_some_and(|hi| len > hi as usize);
        if short || long {
            return Err(broken(
                format!("len={}", text::len(lo, hi)),
                format_args!("a value of {len} {unit}"),
            ));
        }
        Ok(())
    }

    fn string(&self, s: &str) -> Result<(), Broken> {
        self.allowed(|| self.strings.contains(s), format_args!("'{s}'"))?;
        match &self.pattern {
            Some(re) if !re.is_match(s) => Err(broken(
                format!(
                    "regex={}",
                    self.rules.pattern.as_deref().unwrap_or_default()
                ),
                format_args!("'{s}'"),
            )),
            _ => Ok(()),
        }
    }
}
