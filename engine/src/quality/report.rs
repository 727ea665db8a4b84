//! What `quiver stats` shows: a group's windows turned into numbers, per feature.

use crate::feature::GroupSchema;

use super::baseline::Baseline;
use super::bucket::FeatureBucket;
use super::drift::{compare, WindowDrift};
use super::group::Windows;

/// The quantiles every report gives.
pub const REPORTED_QUANTILES: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];
/// Top values a report lists per feature and window.
pub const REPORTED_TOP_VALUES: usize = 10;

#[derive(Clone, Debug, PartialEq)]
pub struct GroupStatsReport {
    pub group: String,
    /// The store's clock when the report was made, unix ms.
    pub now_ms: u64,
    /// Puts since the statistics began (that wrote at least one value).
    pub puts: u64,
    pub last_write_ms: Option<u64>,
    /// Approximate distinct entities written since the statistics began (deletes and expiry
    /// are not subtracted).
    pub entities_total: f64,
    /// Freshness: the age of the newest write at `now_ms` (None before any write).
    pub staleness_ms: Option<u64>,
    /// The group's freshness objective (max staleness), when it has one.
    pub max_staleness_ms: Option<u64>,
    /// Whether the group misses its freshness objective: its newest write is older than
    /// `max_staleness_ms`, or nothing was ever written. `None` without an objective.
    pub stale: Option<bool>,
    /// Heap bytes held by the group's statistics.
    pub memory_bytes: u64,
    pub windows: Vec<GroupWindowReport>,
    pub features: Vec<FeatureStatsReport>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupWindowReport {
    pub window: String,
    pub span_ms: u64,
    pub puts: u64,
    /// Approximate number of distinct entities written in the window.
    pub entities: f64,
    /// Freshness: `entities` over the entities written since the statistics began (0 to 1).
    pub updated_share: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FeatureStatsReport {
    pub name: String,
    pub type_name: String,
    /// Since the statistics began.
    pub count: u64,
    pub nulls: u64,
    pub last_write_ms: Option<u64>,
    /// Heap bytes held by this feature's statistics, all windows.
    pub memory_bytes: u64,
    pub windows: Vec<FeatureWindowReport>,
    /// The live windows against the feature's baseline, when it has one.
    pub drift: Option<FeatureDrift>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FeatureDrift {
    pub baseline: Baseline,
    pub psi_threshold: Option<f64>,
    pub distance_threshold: Option<f64>,
    pub windows: Vec<WindowDrift>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FeatureWindowReport {
    pub window: String,
    pub count: u64,
    pub nulls: u64,
    pub non_finite: u64,
    /// Numbers, or for vectors their L2 norms (`is_norm`).
    pub numbers: Option<NumberStats>,
    pub distinct: Option<f64>,
    /// Most frequent strings or bools, most first.
    pub top: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NumberStats {
    pub is_norm: bool,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub stddev: f64,
    /// (q, value) for each of [`REPORTED_QUANTILES`].
    pub quantiles: Vec<(f64, f64)>,
}

/// Reports the features of `schema` (only `feature` when given; deprecated ones are left out
/// unless named) from `w` at `now_ms`, each against its baseline among `baselines`.
pub fn report(
    schema: &GroupSchema,
    w: &Windows,
    feature: Option<&str>,
    now_ms: u64,
    baselines: &[Baseline],
) -> GroupStatsReport {
    let merged: Vec<_> = w.rings.iter().map(|r| r.window(now_ms)).collect();
    let entities_total = if w.totals.puts == 0 {
        0.0
    } else {
        w.totals.entities.estimate()
    };
    let windows = w
        .rings
        .iter()
        .zip(&merged)
        .map(|(r, b)| {
            let entities = if b.puts == 0 {
                0.0
            } else {
                b.entities.estimate()
            };
            GroupWindowReport {
                window: r.spec.name.to_string(),
                span_ms: r.spec.span_ms(),
                puts: b.puts,
                entities,
                // Two estimates of one sketch family: the window's may exceed the total's by
                // their error, never by more in truth.
                updated_share: if entities_total > 0.0 {
                    (entities / entities_total).min(1.0)
                } else {
                    0.0
                },
            }
        })
        .collect();
    let features = schema
        .features
        .iter()
        .filter(|f| match feature {
            Some(name) => f.name == name,
            None => !f.deprecated,
        })
        .map(|f| {
            let (count, nulls, last) = w
                .totals
                .features
                .get(f.id as usize)
                .copied()
                .unwrap_or_default();
            let memory: usize = w
                .rings
                .iter()
                .flat_map(|r| r.slots.iter().flatten())
                .filter_map(|(_, b)| b.feature(f.id))
                .map(|fb| fb.heap_bytes() + std::mem::size_of::<FeatureBucket>())
                .sum();
            FeatureStatsReport {
                name: f.name.clone(),
                type_name: f.ty.to_string(),
                count,
                nulls,
                last_write_ms: (last > 0).then_some(last),
                memory_bytes: memory as u64,
                windows: w
                    .rings
                    .iter()
                    .zip(&merged)
                    .map(|(r, b)| window_report(r.spec.name, b.feature(f.id), is_vector(f)))
                    .collect(),
                drift: baselines
                    .iter()
                    .find(|b| b.feature_id == f.id)
                    .map(|base| FeatureDrift {
                        baseline: base.clone(),
                        psi_threshold: schema.quality.drift_psi,
                        distance_threshold: schema.quality.drift_distance,
                        windows: w
                            .rings
                            .iter()
                            .zip(&merged)
                            .map(|(r, b)| {
                                compare(
                                    r.spec.name,
                                    base,
                                    b.feature(f.id),
                                    schema.quality.drift_psi,
                                    schema.quality.drift_distance,
                                )
                            })
                            .collect(),
                    }),
            }
        })
        .collect();
    let staleness_ms =
        (w.totals.last_write_ms > 0).then(|| now_ms.saturating_sub(w.totals.last_write_ms));
    let max_staleness_ms = schema.quality.max_staleness_s.map(|s| u64::from(s) * 1000);
    GroupStatsReport {
        group: schema.name.clone(),
        now_ms,
        puts: w.totals.puts,
        last_write_ms: (w.totals.last_write_ms > 0).then_some(w.totals.last_write_ms),
        entities_total,
        staleness_ms,
        max_staleness_ms,
        stale: max_staleness_ms.map(|max| !matches!(staleness_ms, Some(s) if s <= max)),
        memory_bytes: w.heap_bytes() as u64,
        windows,
        features,
    }
}

fn is_vector(f: &crate::feature::Feature) -> bool {
    matches!(f.ty, crate::feature::FeatureType::Vector(_))
}

fn window_report(name: &str, f: Option<&FeatureBucket>, is_norm: bool) -> FeatureWindowReport {
    let Some(f) = f else {
        return FeatureWindowReport {
            window: name.to_string(),
            count: 0,
            nulls: 0,
            non_finite: 0,
            numbers: None,
            distinct: None,
            top: Vec::new(),
        };
    };
    let numbers = (f.numbers.count > 0).then(|| NumberStats {
        is_norm,
        count: f.numbers.count,
        min: f.numbers.min,
        max: f.numbers.max,
        mean: f.numbers.mean,
        stddev: f.numbers.stddev(),
        quantiles: f
            .quantiles
            .as_ref()
            .map(|q| {
                REPORTED_QUANTILES
                    .iter()
                    .filter_map(|&p| q.quantile(p).map(|v| (p, v)))
                    .collect()
            })
            .unwrap_or_default(),
    });
    FeatureWindowReport {
        window: name.to_string(),
        count: f.count,
        nulls: f.nulls,
        non_finite: f.non_finite,
        numbers,
        distinct: f.distinct.as_ref().map(|d| d.estimate()),
        top: f
            .top
            .as_ref()
            .map(|t| t.top(REPORTED_TOP_VALUES))
            .unwrap_or_default(),
    }
}
