//! Feature statistics as JSON: the body of a FEATURE_STATS response, `quiver stats --group
//! --json`, and the source of the Prometheus gauges. One shape for all three (docs/PROTOCOL.md).

use quiver_engine::quality::{
    Baseline, FeatureDrift, FeatureStatsReport, FeatureWindowReport, GroupStatsReport, NumberStats,
    Shape,
};
use std::fmt::Write;

use serde_json::{json, Value};

pub fn report_json(r: &GroupStatsReport) -> Value {
    json!({
        "group": r.group,
        "now_ms": r.now_ms,
        "puts": r.puts,
        "last_write_ms": r.last_write_ms,
        "entities_total": r.entities_total.round(),
        "staleness_ms": r.staleness_ms,
        "max_staleness_ms": r.max_staleness_ms,
        "stale": r.stale,
        "memory_bytes": r.memory_bytes,
        "windows": r.windows.iter().map(|w| json!({
            "window": w.window,
            "span_ms": w.span_ms,
            "puts": w.puts,
            "entities": w.entities.round(),
            "updated_share": w.updated_share,
        })).collect::<Vec<_>>(),
        "features": r.features.iter().map(feature_json).collect::<Vec<_>>(),
    })
}

fn feature_json(f: &FeatureStatsReport) -> Value {
    json!({
        "name": f.name,
        "type": f.type_name,
        "count": f.count,
        "nulls": f.nulls,
        "last_write_ms": f.last_write_ms,
        "memory_bytes": f.memory_bytes,
        "windows": f.windows.iter().map(window_json).collect::<Vec<_>>(),
        "drift": f.drift.as_ref().map(drift_json),
    })
}

fn drift_json(d: &FeatureDrift) -> Value {
    json!({
        "baseline": {
            "source": d.baseline.source,
            "created_ms": d.baseline.created_ms,
            "count": d.baseline.count,
        },
        "psi_threshold": d.psi_threshold,
        "distance_threshold": d.distance_threshold,
        "windows": d.windows.iter().map(|w| json!({
            "window": w.window,
            "count": w.count,
            "psi": w.psi,
            "distance": w.distance,
            "drifted": w.drifted,
        })).collect::<Vec<_>>(),
    })
}

/// One baseline as JSON (BASELINE responses, `quiver baseline show`): the feature's name is
/// given by the caller, who holds the schema.
pub fn baseline_json(feature: &str, b: &Baseline) -> Value {
    let mut out = json!({
        "feature": feature,
        "feature_id": b.feature_id,
        "source": b.source,
        "created_ms": b.created_ms,
        "count": b.count,
    });
    match &b.shape {
        Shape::Numbers {
            edges,
            shares,
            deciles,
            spread,
        } => {
            out["kind"] = json!("numbers");
            out["edges"] = json!(edges);
            out["shares"] = json!(shares);
            out["deciles"] = json!(deciles);
            out["spread"] = json!(spread);
        }
        Shape::Categories { values, other } => {
            out["kind"] = json!("categories");
            out["values"] = values
                .iter()
                .map(|(v, s)| json!({"value": v, "share": s}))
                .collect();
            out["other"] = json!(other);
        }
    }
    out
}

fn window_json(w: &FeatureWindowReport) -> Value {
    let mut out = json!({
        "window": w.window,
        "count": w.count,
        "nulls": w.nulls,
        "non_finite": w.non_finite,
    });
    if let Some(n) = &w.numbers {
        out[if n.is_norm { "norm" } else { "numbers" }] = numbers_json(n);
    }
    if let Some(d) = w.distinct {
        out["distinct"] = json!(d.round());
    }
    if !w.top.is_empty() {
        out["top"] = w
            .top
            .iter()
            .map(|(v, c)| json!({"value": v, "count": c}))
            .collect();
    }
    out
}

fn numbers_json(n: &NumberStats) -> Value {
    json!({
        "count": n.count,
        "min": n.min,
        "max": n.max,
        "mean": n.mean,
        "stddev": n.stddev,
        "quantiles": n.quantiles.iter().map(|(q, v)| json!({"q": q, "value": v})).collect::<Vec<_>>(),
    })
}

/// Runs a BASELINE request; the answer is JSON: `{"group", "baselines": [...]}` for save,
/// put and show, `{"group", "dropped": n}` for drop.
pub fn execute_baseline(
    store: &quiver_engine::Store,
    req: crate::protocol::BaselineRequest,
) -> Result<String, quiver_engine::Error> {
    use crate::protocol::BaselineRequest as B;
    let listed = |group: &str, made: &[Baseline]| -> Result<String, quiver_engine::Error> {
        let schema = store.describe_group(group)?;
        Ok(baselines_json(&schema, made).to_string())
    };
    match req {
        B::SaveWindow {
            group,
            feature,
            window,
        } => {
            let made = store.save_baseline_from_window(&group, feature.as_deref(), &window)?;
            listed(&group, &made)
        }
        B::Put { group, record } => {
            let mut one = quiver_engine::quality::baseline::decode(0, &record)?;
            if one.len() != 1 {
                return Err(quiver_engine::feature::FeatureError::InvalidBaseline {
                    group,
                    reason: format!("the record holds {} baselines, not 1", one.len()),
                }
                .into());
            }
            let made = store.put_baseline(&group, one.remove(0))?;
            listed(&group, &[made])
        }
        B::Show { group, feature } => {
            let (schema, all) = store.baselines(&group, feature.as_deref())?;
            Ok(baselines_json(&schema, &all).to_string())
        }
        B::Drop { group, feature } => {
            let dropped = store.drop_baselines(&group, feature.as_deref())?;
            Ok(json!({"group": group, "dropped": dropped}).to_string())
        }
    }
}

/// `{"group", "baselines": [baseline_json, ...]}`.
pub fn baselines_json(schema: &quiver_engine::feature::GroupSchema, all: &[Baseline]) -> Value {
    json!({
        "group": schema.name,
        "baselines": all.iter().map(|b| {
            let name = schema.feature_by_id(b.feature_id).map_or("?", |f| f.name.as_str());
            baseline_json(name, b)
        }).collect::<Vec<_>>(),
    })
}

/// The headline statistics of every group and feature as Prometheus gauges and counters.
pub fn render_prometheus(store: &quiver_engine::Store, out: &mut String) {
    let reports: Vec<GroupStatsReport> = store
        .list_groups(None)
        .iter()
        .filter_map(|g| store.feature_stats(&g.name, None).ok())
        .collect();
    let series: [(&str, &str, &str); 16] = [
        (
            "quiver_group_puts_total",
            "counter",
            "Puts into the group since its statistics began.",
        ),
        (
            "quiver_group_last_write_timestamp_seconds",
            "gauge",
            "Store time of the group's newest write, unix seconds.",
        ),
        (
            "quiver_group_entities_updated",
            "gauge",
            "Approximate distinct entities written in the window.",
        ),
        (
            "quiver_group_staleness_seconds",
            "gauge",
            "Age of the group's newest write, seconds.",
        ),
        (
            "quiver_group_max_staleness_seconds",
            "gauge",
            "The group's freshness objective: the oldest its newest write may be, seconds.",
        ),
        (
            "quiver_group_fresh",
            "gauge",
            "1 when the group's newest write is within its freshness objective, else 0.",
        ),
        (
            "quiver_group_updated_share",
            "gauge",
            "Share of the group's entities (ever written) written in the window, 0 to 1.",
        ),
        (
            "quiver_group_stats_memory_bytes",
            "gauge",
            "Heap bytes held by the group's feature statistics.",
        ),
        (
            "quiver_feature_values_total",
            "counter",
            "Values written to the feature since its statistics began, nulls included.",
        ),
        (
            "quiver_feature_nulls_total",
            "counter",
            "Null values written to the feature since its statistics began.",
        ),
        (
            "quiver_feature_mean",
            "gauge",
            "Mean of the feature's numbers (norms for vectors) in the window.",
        ),
        (
            "quiver_feature_stddev",
            "gauge",
            "Standard deviation of the feature's numbers (norms for vectors) in the window.",
        ),
        (
            "quiver_feature_distinct",
            "gauge",
            "Approximate distinct values of the feature in the window.",
        ),
        (
            "quiver_feature_drift_psi",
            "gauge",
            "Population stability index of the feature in the window against its baseline.",
        ),
        (
            "quiver_feature_drift_distance",
            "gauge",
            "Quantile distance of the feature in the window from its baseline (share of the baseline's p1-p99 spread).",
        ),
        (
            "quiver_feature_drifted",
            "gauge",
            "1 when the feature in the window is past a drift threshold of its group, else 0.",
        ),
    ];
    for (name, kind, help) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for r in &reports {
            group_series(name, r, out);
        }
    }
}

fn group_series(name: &str, r: &GroupStatsReport, out: &mut String) {
    let g = label(&r.group);
    match name {
        "quiver_group_puts_total" => line(out, name, &format!("group=\"{g}\""), r.puts as f64),
        "quiver_group_last_write_timestamp_seconds" => {
            if let Some(ms) = r.last_write_ms {
                line(out, name, &format!("group=\"{g}\""), ms as f64 / 1000.0);
            }
        }
        "quiver_group_entities_updated" | "quiver_group_updated_share" => {
            for w in &r.windows {
                let labels = format!("group=\"{g}\",window=\"{}\"", w.window);
                let value = match name {
                    "quiver_group_entities_updated" => w.entities.round(),
                    _ => w.updated_share,
                };
                line(out, name, &labels, value);
            }
        }
        "quiver_group_staleness_seconds" => {
            if let Some(ms) = r.staleness_ms {
                line(out, name, &format!("group=\"{g}\""), ms as f64 / 1000.0);
            }
        }
        "quiver_group_max_staleness_seconds" => {
            if let Some(ms) = r.max_staleness_ms {
                line(out, name, &format!("group=\"{g}\""), ms as f64 / 1000.0);
            }
        }
        "quiver_group_fresh" => {
            if let Some(stale) = r.stale {
                line(
                    out,
                    name,
                    &format!("group=\"{g}\""),
                    f64::from(u8::from(!stale)),
                );
            }
        }
        "quiver_group_stats_memory_bytes" => {
            line(out, name, &format!("group=\"{g}\""), r.memory_bytes as f64)
        }
        _ => {
            for f in &r.features {
                feature_series(name, &g, f, out);
            }
        }
    }
}

fn feature_series(name: &str, g: &str, f: &FeatureStatsReport, out: &mut String) {
    let base = format!("group=\"{g}\",feature=\"{}\"", label(&f.name));
    match name {
        "quiver_feature_values_total" => line(out, name, &base, f.count as f64),
        "quiver_feature_nulls_total" => line(out, name, &base, f.nulls as f64),
        "quiver_feature_drift_psi" | "quiver_feature_drift_distance" | "quiver_feature_drifted" => {
            for w in f.drift.iter().flat_map(|d| &d.windows) {
                let labels = format!("{base},window=\"{}\"", w.window);
                let value = match name {
                    "quiver_feature_drift_psi" => w.psi,
                    "quiver_feature_drift_distance" => w.distance,
                    _ => Some(f64::from(u8::from(w.drifted))),
                };
                if let Some(v) = value {
                    line(out, name, &labels, v);
                }
            }
        }
        _ => {
            for w in &f.windows {
                let labels = format!("{base},window=\"{}\"", w.window);
                let value = match name {
                    "quiver_feature_mean" => w.numbers.as_ref().map(|n| n.mean),
                    "quiver_feature_stddev" => w.numbers.as_ref().map(|n| n.stddev),
                    _ => w.distinct.map(f64::round),
                };
                if let Some(v) = value {
                    line(out, name, &labels, v);
                }
            }
        }
    }
}

fn line(out: &mut String, name: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "{name}{{{labels}}} {value}");
}

/// A label value escaped as the text format asks (backslash, quote, newline).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
