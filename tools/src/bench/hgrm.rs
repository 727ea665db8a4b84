//! HdrHistogram's percentile-distribution text format (`.hgrm`), as written by the Java
//! `outputPercentileDistribution` and wrk2, with values in milliseconds.
//!
//! ## Format
//! A header line `Value Percentile TotalCount 1/(1-Percentile)` and a blank line; one line per
//! percentile step (5 ticks per half distance): value (ms), percentile as a fraction, count of
//! values at or below, and 1/(1-percentile) (omitted on the 100% line); then three footer
//! lines `#[Mean = .., StdDeviation = ..]`, `#[Max = .., Total count = ..]`,
//! `#[Buckets = .., SubBuckets = ..]`.
use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Percentile steps per halving of the distance to 100%, as HdrHistogram's default.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// Decimal places of the millisecond values (nanosecond resolution).
const DECIMALS: usize = 6;

/// Renders `hist` (values in nanoseconds) as an `.hgrm` percentile table in milliseconds.
pub fn render(hist: &Histogram<u64>) -> String {
    let ms = |ns: f64| ns / 1e6;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total: u64 = 0;
    if !hist.is_empty() {
        for step in hist.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += step.count_since_last_iteration();
            let value = ms(hist.highest_equivalent(step.value_iterated_to()) as f64);
            let quantile = step.quantile_iterated_to();
            if quantile < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:>12.DECIMALS$} {quantile:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - quantile)
                );
            } else {
                let _ = writeln!(out, "{value:>12.DECIMALS$} {quantile:>2.12} {total:>10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.DECIMALS$}, StdDeviation   = {:>12.DECIMALS$}]",
        ms(hist.mean()),
        ms(hist.stdev())
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.DECIMALS$}, Total count    = {:>12}]",
        ms(hist.max() as f64),
        hist.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        hist.buckets(),
        sub_bucket_count(hist.sigfig())
    );
    out
}

/// HdrHistogram's sub-bucket count for a precision: the power of two at or above 2 * 10^sigfig.
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(sigfig as u32)).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_at_the_maximum() {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            hist.record(v * 1000).unwrap();
        }
        let text = render(&hist);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(' ') && !l.contains("Value"))
            .collect();
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last.len(), 3, "the 100% line has no 1/(1-p) column");
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "1000");
        assert!(text.contains("SubBuckets     =         2048"));
    }
}
