//! `quiver inspect PATH`: verifies a data file or device offline (the store must not be open)
//! through `quiver_engine::inspect`, and prints counts, the live fraction of every block in use
//! as a 10-bucket histogram, every damaged place, and the keys the damage hits (they read
//! CORRUPT until rewritten or deleted). Damage exits with code 3.

use quiver_engine::inspect::{inspect, Damage, DamagedKeyReport, InspectReport};
use serde_json::json;

use super::command::InspectArgs;
use super::error::{CliError, CliResult};
use super::output::Out;
use super::progress::thousands;

/// Buckets of the live-fraction histogram: 0.0-0.1, ..., 0.9-1.0.
pub const HISTOGRAM_BUCKETS: usize = 10;
/// Width of the longest histogram bar, in characters.
const BAR_WIDTH: u64 = 40;
/// Damaged places printed in text (all of them go to --json).
const MAX_PRINTED_DAMAGE: usize = 50;

pub fn run(args: &InspectArgs, out: Out) -> CliResult<()> {
    let path = &args.path;
    std::fs::metadata(path).map_err(|e| CliError::file(path, format!("cannot open: {e}")))?;
    let report = inspect(path).map_err(|e| match e {
        quiver_engine::Error::Io(io) => CliError::file(path, format!("cannot read: {io}")),
        other => CliError::Corruption {
            place: path.display().to_string(),
            detail: other.to_string(),
        },
    })?;
    let histogram = histogram(&report.live_fractions());
    out.emit(report_json(&report, &histogram, path), || {
        print_report(&report, &histogram, path)
    });
    if !report.is_damaged() {
        return Ok(());
    }
    let places = match report.damage.first() {
        Some(first) => format!(
            "{} damaged place(s), the first in block {} at offset {}: {}",
            report.damage.len(),
            first.block,
            first.offset,
            first.what
        ),
        None => "no damaged place left (keys found damaged earlier)".to_string(),
    };
    let keys = match report.damaged_keys.first() {
        Some(k) => format!(
            "{} damaged key(s) read CORRUPT, the first {}",
            report.damaged_keys.len(),
            k.describe()
        ),
        None => "no key is damaged".to_string(),
    };
    Err(CliError::Corruption {
        place: path.display().to_string(),
        detail: format!("{places}; {keys}"),
    })
}

/// Counts blocks per tenth of live fraction; 1.0 falls in the last bucket.
pub fn histogram(fractions: &[f64]) -> [u64; HISTOGRAM_BUCKETS] {
    let mut buckets = [0u64; HISTOGRAM_BUCKETS];
    for f in fractions {
        let index = (f.clamp(0.0, 1.0) * HISTOGRAM_BUCKETS as f64) as usize;
        buckets[index.min(HISTOGRAM_BUCKETS - 1)] += 1;
    }
    buckets
}

fn damage_json(list: &[Damage]) -> Vec<serde_json::Value> {
    list.iter()
        .map(|d| json!({ "block": d.block, "offset": d.offset, "what": d.what }))
        .collect()
}

fn damaged_keys_json(list: &[DamagedKeyReport]) -> Vec<serde_json::Value> {
    list.iter()
        .map(|k| {
            json!({
                "group": k.group, "group_name": k.group_name, "key": k.key,
                "tag": format!("{:#016x}", k.tag), "lsn": k.lsn, "block": k.block,
                "offset": k.offset,
            })
        })
        .collect()
}

fn report_json(r: &InspectReport, histogram: &[u64], path: &std::path::Path) -> serde_json::Value {
    let fractions = r.live_fractions();
    let blocks: Vec<_> = r
        .blocks
        .iter()
        .zip(&fractions)
        .map(|(b, f)| {
            json!({
                "block": b.block, "seq": b.seq, "kind": b.kind, "used_bytes": b.used_bytes,
                "live_bytes": b.live_bytes, "records": b.records, "live_fraction": f,
            })
        })
        .collect();
    json!({
        "path": path.display().to_string(), "device_bytes": r.device_bytes,
        "write_block_bytes": r.write_block_bytes, "store_id": format!("{:032x}", r.store_id),
        "blocks_total": r.blocks_total, "blocks_in_use": r.blocks.len(),
        "records_seen": r.records_seen, "records_live": r.records_live, "tombstones": r.tombstones,
        "live_fraction_histogram": histogram, "blocks": blocks,
        "damaged": r.is_damaged(), "damage": damage_json(&r.damage), "crash_tails": damage_json(&r.crash_tails),
        "damaged_keys": damaged_keys_json(&r.damaged_keys),
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn print_report(r: &InspectReport, histogram: &[u64], path: &std::path::Path) {
    println!("inspect {}", path.display());
    println!(
        "  device      {}, write blocks of {}, {} blocks ({} in use)",
        mib(r.device_bytes),
        mib(u64::from(r.write_block_bytes)),
        r.blocks_total,
        r.blocks.len()
    );
    println!("  store id    {:032x}", r.store_id);
    println!(
        "  records     {} seen, {} live, {} tombstones",
        thousands(r.records_seen),
        thousands(r.records_live),
        thousands(r.tombstones)
    );
    println!("  live fraction of the blocks in use:");
    let peak = histogram.iter().copied().max().unwrap_or(0).max(1);
    for (i, count) in histogram.iter().enumerate() {
        let bar = "#".repeat((count * BAR_WIDTH).div_ceil(peak) as usize);
        println!(
            "    {:.1}-{:.1}  {bar:<width$}  {count}",
            i as f64 / 10.0,
            (i + 1) as f64 / 10.0,
            width = BAR_WIDTH as usize
        );
    }
    if !r.crash_tails.is_empty() {
        println!("  crash tails (an unacknowledged write cut by a crash; not damage):");
        print_places(&r.crash_tails);
    }
    if r.damage.is_empty() {
        println!("  damage      none");
    } else {
        println!("  damage      {} place(s):", r.damage.len());
        print_places(&r.damage);
    }
    if !r.damaged_keys.is_empty() {
        println!(
            "  damaged keys {} (they read CORRUPT, never an older value, until rewritten or deleted):",
            r.damaged_keys.len()
        );
        for k in r.damaged_keys.iter().take(MAX_PRINTED_DAMAGE) {
            println!("    {}", k.describe());
        }
        if r.damaged_keys.len() > MAX_PRINTED_DAMAGE {
            println!(
                "    ... and {} more (use --json for all)",
                r.damaged_keys.len() - MAX_PRINTED_DAMAGE
            );
        }
    }
}

fn print_places(list: &[Damage]) {
    for d in list.iter().take(MAX_PRINTED_DAMAGE) {
        println!("    block {}, offset {}: {}", d.block, d.offset, d.what);
    }
    if list.len() > MAX_PRINTED_DAMAGE {
        println!(
            "    ... and {} more (use --json for all)",
            list.len() - MAX_PRINTED_DAMAGE
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn histogram_buckets() {
        let h = super::histogram(&[0.0, 0.05, 0.1, 0.55, 0.99, 1.0, 1.5]);
        assert_eq!(h, [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]);
    }
}
