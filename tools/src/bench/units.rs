//! Durations on the command line ("500ms", "5s", "2m") and latencies in reports.

/// The longest warm-up, measurement or drain period the harness accepts.
pub const MAX_PERIOD_NS: u64 = 24 * 3600 * 1_000_000_000;

/// Parses a duration with a unit: `us`, `ms`, `s`, `m` or `h` ("1.5ms", "30s").
/// A bare number is refused: the unit is part of the value.
pub fn parse_duration_ns(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("'{text}' has no unit; use us, ms, s, m or h (e.g. 5s)"))?;
    let (number, unit) = text.split_at(split);
    let scale_ns: f64 = match unit {
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => {
            return Err(format!(
                "'{text}' has unknown unit '{unit}'; use us, ms, s, m or h"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' does not start with a number"))?;
    let ns = value * scale_ns;
    if !ns.is_finite() || ns > MAX_PERIOD_NS as f64 {
        return Err(format!("'{text}' exceeds the limit of 24h"));
    }
    Ok(ns.round() as u64)
}

/// Parses a duration for clap (`--warmup 5s`).
pub fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    parse_duration_ns(text).map(std::time::Duration::from_nanos)
}

/// Formats nanoseconds with a unit that keeps three significant decimals readable.
pub fn format_ns(ns: u64) -> String {
    let ns_f = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} us", ns_f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.3} ms", ns_f / 1e6)
    } else {
        format!("{:.3} s", ns_f / 1e9)
    }
}

/// Formats a signed nanosecond difference (an SLO margin).
pub fn format_ns_abs(ns: i128) -> String {
    format_ns(ns.unsigned_abs().min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration_ns("5s"), Ok(5_000_000_000));
        assert_eq!(parse_duration_ns("1.5ms"), Ok(1_500_000));
        assert_eq!(parse_duration_ns("250us"), Ok(250_000));
        assert_eq!(parse_duration_ns("2m"), Ok(120_000_000_000));
        assert!(parse_duration_ns("5").unwrap_err().contains("no unit"));
        assert!(parse_duration_ns("5d")
            .unwrap_err()
            .contains("unknown unit 'd'"));
        assert!(parse_duration_ns("ms").unwrap_err().contains("number"));
        assert!(parse_duration_ns("25h").unwrap_err().contains("24h"));
    }

    #[test]
    fn formats_latencies() {
        assert_eq!(format_ns(999), "999 ns");
        assert_eq!(format_ns(1_500), "1.5 us");
        assert_eq!(format_ns(2_345_000), "2.345 ms");
        assert_eq!(format_ns(3_000_000_000), "3.000 s");
    }
}
