//! Drift: a live window of a feature against its saved [`Baseline`].
//!
//! - **PSI** (population stability index): Σ (live − base) × ln(live / base) over the
//!   baseline's bins: for numbers the bins its deciles cut (the live shares from the window's
//!   quantile sketch), for categories its top values and "every other value". A share of 0 is
//!   taken as [`MIN_SHARE`]. Rule of thumb: under 0.1 no change, 0.1-0.25 some, over 0.25 a
//!   shift.
//! - **Quantile distance** (numbers only): the mean absolute difference of the live and the
//!   baseline deciles, over the baseline's p99 − p1 spread (1 when the spread is 0): about the
//!   share of the baseline's range the distribution moved.
//!
//! A window with fewer than [`MIN_DRIFT_VALUES`] values is not judged (its figures are noise).

use super::baseline::{bin_shares, Baseline, Shape, DECILES};
use super::bucket::FeatureBucket;

/// Fewest values a window needs to be judged.
pub const MIN_DRIFT_VALUES: u64 = 100;
/// Share a bin empty on one side is taken to have.
pub const MIN_SHARE: f64 = 1e-4;

/// One window against the baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowDrift {
    pub window: String,
    /// Values of the window that count (numbers, or non-null categories).
    pub count: u64,
    pub psi: Option<f64>,
    pub distance: Option<f64>,
    /// Whether a figure exceeds its threshold (never with too few values).
    pub drifted: bool,
}

pub fn psi(base: &[f64], live: &[f64]) -> f64 {
    base.iter()
        .zip(live)
        .map(|(&b, &l)| {
            let (b, l) = (b.max(MIN_SHARE), l.max(MIN_SHARE));
            (l - b) * (l / b).ln()
        })
        .sum()
}

/// Compares window `name` (bucket `live`, `None` when the feature has no value in it) with
/// `base`, judged against the thresholds.
pub fn compare(
    name: &str,
    base: &Baseline,
    live: Option<&FeatureBucket>,
    psi_threshold: Option<f64>,
    distance_threshold: Option<f64>,
) -> WindowDrift {
    let mut out = WindowDrift {
        window: name.to_string(),
        count: 0,
        psi: None,
        distance: None,
        drifted: false,
    };
    let Some(live) = live else {
        return out;
    };
    match &base.shape {
        Shape::Numbers {
            edges,
            shares,
            deciles,
            spread,
        } => {
            let Some(q) = live.quantiles.as_deref() else {
                return out;
            };
            out.count = q.count();
            if out.count < MIN_DRIFT_VALUES {
                return out;
            }
            out.psi = Some(psi(shares, &bin_shares(q, edges)));
            let scale = if *spread > 0.0 { *spread } else { 1.0 };
            let diff: f64 = DECILES
                .iter()
                .zip(deciles)
                .map(|(&d, &b)| (q.quantile(d).unwrap_or(b) - b).abs())
                .sum();
            out.distance = Some(diff / DECILES.len() as f64 / scale);
        }
        Shape::Categories { values, other } => {
            out.count = live.count - live.nulls;
            if out.count < MIN_DRIFT_VALUES {
                return out;
            }
            let top = live
                .top
                .as_deref()
                .map(|t| t.top(usize::MAX))
                .unwrap_or_default();
            let share = |v: &str| {
                top.iter()
                    .find(|(t, _)| t == v)
                    .map_or(0.0, |(_, c)| *c as f64 / out.count as f64)
            };
            let mut live_shares: Vec<f64> = values.iter().map(|(v, _)| share(v)).collect();
            let known: f64 = live_shares.iter().sum();
            live_shares.push((1.0 - known).max(0.0));
            let base_shares: Vec<f64> = values.iter().map(|v| v.1).chain([*other]).collect();
            out.psi = Some(psi(&base_shares, &live_shares));
        }
    }
    out.drifted = matches!((out.psi, psi_threshold), (Some(v), Some(t)) if v > t)
        || matches!((out.distance, distance_threshold), (Some(v), Some(t)) if v > t);
    out
}

#[cfg(test)]
mod tests {
    use super::super::baseline::Builder;
    use super::*;
    use crate::feature::{Feature, FeatureType, Value};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn feature() -> Feature {
        Feature {
            id: 0,
            name: "x".into(),
            ty: FeatureType::F64,
            description: String::new(),
            owner: String::new(),
            tags: Vec::new(),
            deprecated: false,
            rules: Default::default(),
        }
    }

    fn normal(rng: &mut StdRng, mean: f64) -> f64 {
        // Box-Muller.
        let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
        mean + (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn bucket(rng: &mut StdRng, mean: f64, n: usize) -> FeatureBucket {
        let mut b = Builder::default();
        (0..n).for_each(|_| b.add(&Value::F64(normal(rng, mean))));
        b.finish()
    }

    #[test]
    fn the_same_distribution_stays_quiet_and_a_shifted_one_fires() {
        let mut rng = StdRng::seed_from_u64(17);
        let base =
            Baseline::from_bucket(&feature(), &bucket(&mut rng, 10.0, 20_000), "t".into(), 1)
                .unwrap();
        let same = compare(
            "1h",
            &base,
            Some(&bucket(&mut rng, 10.0, 5000)),
            Some(0.1),
            Some(0.05),
        );
        assert!(!same.drifted, "{same:?}");
        assert!(same.psi.unwrap() < 0.02, "{same:?}");
        assert!(same.distance.unwrap() < 0.02, "{same:?}");
        let moved = compare(
            "1h",
            &base,
            Some(&bucket(&mut rng, 11.0, 5000)),
            Some(0.1),
            Some(0.05),
        );
        assert!(moved.drifted, "{moved:?}");
        assert!(moved.psi.unwrap() > 0.5, "{moved:?}");
        // One standard deviation over a spread of ~4.65 standard deviations.
        assert!(
            (moved.distance.unwrap() - 1.0 / 4.65).abs() < 0.03,
            "{moved:?}"
        );
        let few = compare(
            "1h",
            &base,
            Some(&bucket(&mut rng, 20.0, 50)),
            Some(0.1),
            None,
        );
        assert_eq!((few.psi, few.drifted), (None, false));
    }
}
