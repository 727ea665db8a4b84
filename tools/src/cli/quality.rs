//! `quiver stats --group G [--feature F]`: live feature statistics, as text or `--json` (the
//! JSON is the FEATURE_STATS response body of docs/PROTOCOL.md, on both back ends).

use serde_json::Value as Json;

use super::backend::Backend;
use super::error::CliResult;
use super::output::{time_text, Out};

pub fn stats(
    group: &str,
    feature: Option<&str>,
    backend: &mut dyn Backend,
    out: Out,
) -> CliResult<()> {
    let report = backend.feature_stats(group, feature)?;
    out.emit(report.clone(), || print_report(&report));
    Ok(())
}

fn num(j: &Json) -> String {
    match j.as_f64() {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.6}"),
        None => "-".to_string(),
    }
}

fn when(j: &Json) -> String {
    j.as_u64().map_or_else(|| "never".to_string(), time_text)
}

fn print_report(r: &Json) {
    println!(
        "group {}: {} puts, last write {}, statistics {} bytes",
        r["group"].as_str().unwrap_or("?"),
        num(&r["puts"]),
        when(&r["last_write_ms"]),
        num(&r["memory_bytes"]),
    );
    for w in r["windows"].as_array().into_iter().flatten() {
        println!(
            "  last {}: {} puts, ~{} entities",
            w["window"].as_str().unwrap_or("?"),
            num(&w["puts"]),
            num(&w["entities"]),
        );
    }
    for f in r["features"].as_array().into_iter().flatten() {
        println!(
            "feature {} ({}): {} values, {} nulls, last write {}",
            f["name"].as_str().unwrap_or("?"),
            f["type"].as_str().unwrap_or("?"),
            num(&f["count"]),
            num(&f["nulls"]),
            when(&f["last_write_ms"]),
        );
        for w in f["windows"].as_array().into_iter().flatten() {
            print_window(w);
        }
    }
}

fn print_window(w: &Json) {
    let mut line = format!(
        "  last {}: {} values, {} nulls",
        w["window"].as_str().unwrap_or("?"),
        num(&w["count"]),
        num(&w["nulls"]),
    );
    if w["non_finite"].as_u64().unwrap_or(0) > 0 {
        line += &format!(", {} NaN/inf", num(&w["non_finite"]));
    }
    if !w["distinct"].is_null() {
        line += &format!(", ~{} distinct", num(&w["distinct"]));
    }
    println!("{line}");
    for (key, label) in [("numbers", "values"), ("norm", "norms")] {
        let n = &w[key];
        if n.is_null() {
            continue;
        }
        let quantiles: Vec<String> = n["quantiles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|q| {
                format!(
                    "p{}={}",
                    num(&(q["q"].as_f64().unwrap_or(0.0) * 100.0).into()),
                    num(&q["value"])
                )
            })
            .collect();
        println!(
            "    {label}: min {} max {} mean {} stddev {}; {}",
            num(&n["min"]),
            num(&n["max"]),
            num(&n["mean"]),
            num(&n["stddev"]),
            quantiles.join(" "),
        );
    }
    if let Some(top) = w["top"].as_array() {
        let top: Vec<String> = top
            .iter()
            .map(|t| {
                format!(
                    "{} ({})",
                    t["value"].as_str().unwrap_or("?"),
                    num(&t["count"])
                )
            })
            .collect();
        println!("    top: {}", top.join(", "));
    }
}
