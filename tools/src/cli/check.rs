//! `quiver check [--group G ...]`: every group (or the ones named) against its freshness and
//! drift objectives, from the same statistics `quiver stats` shows. Exits 0 when every group
//! meets them, 12 otherwise, listing what is wrong (text, or one `--json` document).

use serde_json::{json, Value as Json};

use super::backend::Backend;
use super::command::CheckArgs;
use super::error::{CliError, CliResult};
use super::output::Out;

pub fn run(args: &CheckArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let names: Vec<String> = if args.groups.is_empty() {
        backend
            .list_groups(None)?
            .iter()
            .map(|g| g.name.clone())
            .collect()
    } else {
        args.groups.clone()
    };
    let mut groups = Vec::with_capacity(names.len());
    for name in &names {
        let report = backend.feature_stats(name, None)?;
        groups.push(check_group(name, &report));
    }
    let failed: Vec<&Json> = groups.iter().filter(|g| g["ok"] == false).collect();
    let summary = failed
        .iter()
        .map(|g| {
            let kinds: Vec<&str> = g["problems"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["kind"].as_str())
                .collect();
            format!(
                "{} ({})",
                g["group"].as_str().unwrap_or("?"),
                kinds.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let failures = failed.len();
    let doc = json!({ "ok": failures == 0, "groups": groups });
    out.emit(doc.clone(), || print_check(&doc));
    if failures > 0 {
        return Err(CliError::CheckFailed(format!(
            "{failures} of {} groups failed: {summary}",
            names.len()
        )));
    }
    Ok(())
}

/// One group's verdict from its FEATURE_STATS report: `{group, ok, checked, problems}`.
pub fn check_group(name: &str, report: &Json) -> Json {
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    if let Some(max_ms) = report["max_staleness_ms"].as_u64() {
        checked.push("freshness");
        if report["stale"] == true {
            let message = match report["staleness_ms"].as_u64() {
                Some(age) => format!(
                    "newest write is {} old, objective {}",
                    duration_text(age),
                    duration_text(max_ms)
                ),
                None => format!("no write recorded, objective {}", duration_text(max_ms)),
            };
            problems.push(json!({
                "kind": "stale",
                "staleness_ms": report["staleness_ms"],
                "max_staleness_ms": max_ms,
                "message": message,
            }));
        }
    }
    for f in report["features"].as_array().into_iter().flatten() {
        let Some(drift) = f.get("drift").filter(|d| !d.is_null()) else {
            continue;
        };
        if !checked.contains(&"drift") {
            checked.push("drift");
        }
        for w in drift["windows"].as_array().into_iter().flatten() {
            if w["drifted"] != true {
                continue;
            }
            let feature = f["name"].as_str().unwrap_or("?");
            let window = w["window"].as_str().unwrap_or("?");
            problems.push(json!({
                "kind": "drift",
                "feature": feature,
                "window": window,
                "psi": w["psi"],
                "distance": w["distance"],
                "psi_threshold": drift["psi_threshold"],
                "distance_threshold": drift["distance_threshold"],
                "message": format!(
                    "feature '{feature}' drifted from its baseline in the last {window}: {}",
                    drift_text(w, drift)
                ),
            }));
        }
    }
    json!({
        "group": name,
        "ok": problems.is_empty(),
        "checked": checked,
        "problems": problems,
    })
}

fn drift_text(w: &Json, drift: &Json) -> String {
    let mut parts = Vec::new();
    for (key, limit, label) in [
        ("psi", "psi_threshold", "PSI"),
        ("distance", "distance_threshold", "distance"),
    ] {
        if let (Some(v), Some(max)) = (w[key].as_f64(), drift[limit].as_f64()) {
            let verdict = if v > max { ">" } else { "<=" };
            parts.push(format!("{label} {v:.4} {verdict} {max}"));
        }
    }
    parts.join(", ")
}

/// A duration in ms as 1h2m3s (whole seconds; under a second as ms).
pub fn duration_text(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out += &format!("{n}{unit}");
        }
    }
    out
}

fn print_check(doc: &Json) {
    for g in doc["groups"].as_array().into_iter().flatten() {
        let name = g["group"].as_str().unwrap_or("?");
        let checked: Vec<&str> = g["checked"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        if g["ok"] == true {
            if checked.is_empty() {
                println!("ok     {name}: no freshness or drift objective to check");
            } else {
                println!("ok     {name}: {}", checked.join(", "));
            }
            continue;
        }
        for p in g["problems"].as_array().into_iter().flatten() {
            println!(
                "FAIL   {name}: {}: {}",
                p["kind"].as_str().unwrap_or("?"),
                p["message"].as_str().unwrap_or("?")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_units() {
        assert_eq!(duration_text(500), "500ms");
        assert_eq!(duration_text(15 * 60 * 1000), "15m");
        assert_eq!(duration_text((86_400 + 3600 + 61) * 1000), "1d1h1m1s");
    }

    #[test]
    fn a_stale_report_fails_and_a_fresh_one_passes() {
        let fresh = json!({"max_staleness_ms": 900_000, "staleness_ms": 1000, "stale": false, "features": []});
        assert_eq!(check_group("g", &fresh)["ok"], true);
        let stale = json!({"max_staleness_ms": 900_000, "staleness_ms": 1_000_000, "stale": true, "features": []});
        let verdict = check_group("g", &stale);
        assert_eq!(verdict["ok"], false);
        assert_eq!(verdict["problems"][0]["kind"], "stale");
        let never = json!({"max_staleness_ms": 900_000, "staleness_ms": null, "stale": true, "features": []});
        let message = check_group("g", &never)["problems"][0]["message"].clone();
        assert!(message.as_str().unwrap().contains("no write"), "{message}");
        let none = json!({"max_staleness_ms": null, "stale": null, "features": []});
        assert_eq!(check_group("g", &none)["checked"], json!([]));
    }
}
