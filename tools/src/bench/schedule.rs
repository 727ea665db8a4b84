//! The open-loop schedule: operation number `g` (counted over all connections) is meant to
//! start `g / rate` seconds after the run starts, and belongs to connection `g % connections`.
//! Latency is measured from that intended start, so a stall delays the start of every
//! operation behind it and their waiting counts (coordinated omission corrected, as wrk2).

/// Most operations per second the open loop schedules.
pub const MAX_RATE_OPS: u64 = 10_000_000;

/// Intended start of operation `g`, in nanoseconds from the start of the run.
pub fn start_ns(g: u64, rate: u64) -> u64 {
    (g as u128 * 1_000_000_000 / rate as u128) as u64
}

/// The first operation number whose intended start is at or after `t_ns`.
pub fn first_at_or_after(t_ns: u64, rate: u64) -> u64 {
    (t_ns as u128 * rate as u128).div_ceil(1_000_000_000) as u64
}

/// Number of intended starts in `[warmup_ns, warmup_ns + duration_ns)`: exactly how many
/// operations an open-loop run measures (over all connections).
pub fn intended_starts(rate: u64, warmup_ns: u64, duration_ns: u64) -> u64 {
    first_at_or_after(warmup_ns + duration_ns, rate) - first_at_or_after(warmup_ns, rate)
}

/// Operation numbers in `[from, to)` that belong to connection `c` of `n`.
pub fn owned_in(from: u64, to: u64, c: u64, n: u64) -> u64 {
    // Numbers below x owned by c: c, c+n, c+2n, ...
    let below = |x: u64| if x <= c { 0 } else { (x - c - 1) / n + 1 };
    if to <= from {
        0
    } else {
        below(to) - below(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_brute_force() {
        for &(rate, warmup, duration) in &[
            (1000u64, 0u64, 1_000_000_000u64),
            (7, 333, 999_999_999),
            (3001, 5_000_000, 17_000_001),
        ] {
            let end = warmup + duration;
            let brute = (0..rate * 3)
                .filter(|&g| (warmup..end).contains(&start_ns(g, rate)))
                .count() as u64;
            assert_eq!(
                intended_starts(rate, warmup, duration),
                brute,
                "rate {rate}"
            );
        }
    }

    #[test]
    fn ownership_partitions() {
        let total: u64 = (0..4).map(|c| owned_in(5, 23, c, 4)).sum();
        assert_eq!(total, 18);
        assert_eq!(owned_in(0, 10, 1, 4), 3); // 1, 5, 9
    }
}
