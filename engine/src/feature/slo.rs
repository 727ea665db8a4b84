//! A group's data-quality objectives: how fresh its data must be, and how far the live
//! distribution of a feature may move from its saved baseline. Checked by `quiver check`,
//! reported by `quiver stats` and the metrics; never enforced on writes.

use super::error::FeatureError;
use super::limits::{MAX_DRIFT_THRESHOLD, MAX_STALENESS_S};

/// Freshness and drift objectives of a group. `Default`: none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QualitySlo {
    /// The newest write of the group must be at most this old, in seconds.
    pub max_staleness_s: Option<u32>,
    /// A feature has drifted when the population stability index of a live window against
    /// its baseline exceeds this.
    pub drift_psi: Option<f64>,
    /// A feature has drifted when the quantile distance of a live window against its
    /// baseline exceeds this (mean absolute difference of the deciles, over the baseline's
    /// 1%-99% spread).
    pub drift_distance: Option<f64>,
}

impl QualitySlo {
    pub fn is_empty(&self) -> bool {
        *self == QualitySlo::default()
    }

    /// Checks every bound against its limit.
    pub fn check(&self, group: &str) -> Result<(), FeatureError> {
        if let Some(s) = self.max_staleness_s {
            if s == 0 || s > MAX_STALENESS_S {
                return Err(FeatureError::InvalidSlo {
                    group: group.to_string(),
                    reason: format!(
                        "max staleness {s} s is out of range: 1 s to {MAX_STALENESS_S} s (10 years)"
                    ),
                });
            }
        }
        for (what, v) in [("PSI", self.drift_psi), ("distance", self.drift_distance)] {
            if let Some(v) = v {
                check_threshold(group, what, v)?;
            }
        }
        Ok(())
    }
}

/// A drift threshold must be a finite number in (0, [`MAX_DRIFT_THRESHOLD`]].
pub fn check_threshold(group: &str, what: &str, v: f64) -> Result<(), FeatureError> {
    if !(v.is_finite() && v > 0.0 && v <= MAX_DRIFT_THRESHOLD) {
        return Err(FeatureError::InvalidSlo {
            group: group.to_string(),
            reason: format!(
                "drift {what} threshold {v} is out of range: above 0, at most {MAX_DRIFT_THRESHOLD}"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let ok = QualitySlo {
            max_staleness_s: Some(900),
            drift_psi: Some(0.2),
            drift_distance: Some(0.1),
        };
        ok.check("g").unwrap();
        for bad in [
            QualitySlo {
                max_staleness_s: Some(0),
                ..ok
            },
            QualitySlo {
                max_staleness_s: Some(MAX_STALENESS_S + 1),
                ..ok
            },
            QualitySlo {
                drift_psi: Some(f64::NAN),
                ..ok
            },
            QualitySlo {
                drift_psi: Some(-1.0),
                ..ok
            },
            QualitySlo {
                drift_distance: Some(MAX_DRIFT_THRESHOLD * 2.0),
                ..ok
            },
        ] {
            let err = bad.check("g").unwrap_err().to_string();
            assert!(err.contains("out of range"), "{err}");
        }
    }
}
