//! Latency SLOs: `--slo p99=1ms,p99.9=5ms` and the verdict against a measured histogram.
use std::fmt;
use std::str::FromStr;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::units::format_ns;

/// At most this many percentile targets in one SLO.
pub const MAX_SLO_TARGETS: usize = 16;

/// One bound: the latency at `percentile` must not exceed `limit_ns`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloTarget {
    /// As written: "p99.9" or "max".
    pub label: String,
    /// 0 < percentile <= 100; "max" is 100.
    pub percentile: f64,
    pub limit_ns: u64,
}

/// A whole SLO: every target must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Slo {
    pub targets: Vec<SloTarget>,
}

/// What was wrong with an SLO, naming the offending part.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("bad SLO part '{part}': {reason}")]
pub struct SloParseError {
    pub part: String,
    pub reason: String,
}

/// How one target fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloVerdict {
    pub label: String,
    pub percentile: f64,
    pub limit_ns: u64,
    pub actual_ns: u64,
    pub held: bool,
}

impl FromStr for Slo {
    type Err = SloParseError;

    fn from_str(text: &str) -> Result<Slo, SloParseError> {
        let mut targets: Vec<SloTarget> = Vec::new();
        for part in text.split(',') {
            let target = parse_target(part)?;
            if targets.iter().any(|t| t.percentile == target.percentile) {
                return Err(bad(part, "this percentile is given twice"));
            }
            if targets.len() == MAX_SLO_TARGETS {
                return Err(bad(
                    part,
                    &format!("an SLO has at most {MAX_SLO_TARGETS} targets"),
                ));
            }
            targets.push(target);
        }
        Ok(Slo { targets })
    }
}

fn bad(part: &str, reason: &str) -> SloParseError {
    SloParseError {
        part: part.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_target(part: &str) -> Result<SloTarget, SloParseError> {
    let trimmed = part.trim();
    if trimmed.is_empty() {
        return Err(bad(part, "empty; expected e.g. p99=1ms"));
    }
    let (name, value) = trimmed
        .split_once('=')
        .ok_or_else(|| bad(part, "expected PERCENTILE=LATENCY, e.g. p99=1ms"))?;
    let percentile = parse_percentile(name.trim()).map_err(|reason| bad(part, &reason))?;
    let limit_ns = parse_latency_ns(value.trim()).map_err(|reason| bad(part, &reason))?;
    Ok(SloTarget {
        label: name.trim().to_string(),
        percentile,
        limit_ns,
    })
}

fn parse_percentile(name: &str) -> Result<f64, String> {
    if name == "max" {
        return Ok(100.0);
    }
    let digits = name
        .strip_prefix('p')
        .ok_or_else(|| format!("percentile '{name}' must look like p50, p99.9 or max"))?;
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("percentile '{name}' must look like p50, p99.9 or max"))?;
    if !(value > 0.0 && value <= 100.0) {
        return Err(format!(
            "percentile '{name}' must be above 0 and at most 100"
        ));
    }
    Ok(value)
}

fn parse_latency_ns(value: &str) -> Result<u64, String> {
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("latency '{value}' has no unit; use us, ms or s"))?;
    let (number, unit) = value.split_at(split);
    let scale_ns = match unit {
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => {
            return Err(format!(
                "latency '{value}' has unknown unit '{unit}'; use us, ms or s"
            ))
        }
    };
    let amount: f64 = number
        .parse()
        .map_err(|_| format!("latency '{value}' does not start with a number"))?;
    let ns = amount * scale_ns;
    if !(1.0..=3600e9).contains(&ns) {
        return Err(format!("latency '{value}' must be between 1 ns and 1 hour"));
    }
    Ok(ns.round() as u64)
}

impl Slo {
    /// Checks every target against `hist` (values in nanoseconds).
    pub fn check(&self, hist: &Histogram<u64>) -> Vec<SloVerdict> {
        self.targets
            .iter()
            .map(|t| {
                let actual_ns = if t.percentile >= 100.0 {
                    hist.max()
                } else {
                    hist.value_at_percentile(t.percentile)
                };
                SloVerdict {
                    label: t.label.clone(),
                    percentile: t.percentile,
                    limit_ns: t.limit_ns,
                    actual_ns,
                    held: actual_ns <= t.limit_ns,
                }
            })
            .collect()
    }
}

impl fmt::Display for SloVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actual = format_ns(self.actual_ns);
        let limit = format_ns(self.limit_ns);
        if self.held {
            let margin = format_ns(self.limit_ns - self.actual_ns);
            write!(
                f,
                "{} = {actual} <= {limit}: held ({margin} to spare)",
                self.label
            )
        } else {
            let over = format_ns(self.actual_ns - self.limit_ns);
            let ratio = self.actual_ns as f64 / self.limit_ns as f64;
            write!(
                f,
                "{} = {actual} > {limit}: MISSED by {over} ({ratio:.2}x the limit)",
                self.label
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_reports_the_miss() {
        let slo: Slo = "p50=1ms".parse().unwrap();
        let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        hist.record(3_000_000).unwrap();
        let verdicts = slo.check(&hist);
        assert!(!verdicts[0].held);
        let text = verdicts[0].to_string();
        assert!(text.contains("MISSED by 2."), "{text}");
    }
}
