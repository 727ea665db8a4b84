//! Feature statistics as JSON: the body of a FEATURE_STATS response, `quiver stats --group
//! --json`, and the source of the Prometheus gauges. One shape for all three (docs/PROTOCOL.md).

use quiver_engine::quality::{
    FeatureStatsReport, FeatureWindowReport, GroupStatsReport, NumberStats,
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
    })
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

/// The headline statistics of every group and feature as Prometheus gauges and counters.
pub fn render_prometheus(store: &quiver_engine::Store, out: &mut String) {
    let reports: Vec<GroupStatsReport> = store
        .list_groups(None)
        .iter()
        .filter_map(|g| store.feature_stats(&g.name, None).ok())
        .collect();
    let series: [(&str, &str, &str); 11] = [
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
