//! The STATS body (JSON) and the Prometheus text exposition.

use super::Shared;
use crate::protocol::Opcode;
use serde_json::{json, Map, Value};
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

/// Engine figures exported by both STATS and /metrics: (name, help, value).
fn engine_figures(shared: &Shared) -> Vec<(&'static str, &'static str, u64)> {
    let s = shared.store.stats();
    let r = shared.store.retention_stats();
    vec![
        (
            "history_retention_sweeps",
            "History retention sweeps completed (window and max versions of every group).",
            r.sweeps,
        ),
        (
            "history_entities_checked",
            "Entity histories retention sweeps looked at.",
            r.entities_checked,
        ),
        (
            "history_versions_removed",
            "History versions removed by retention (window and max versions).",
            r.versions_removed,
        ),
        (
            "history_segments_removed",
            "History segment records deleted by retention.",
            r.segments_removed,
        ),
        (
            "history_retention_errors",
            "History retention steps that failed.",
            r.errors,
        ),
        (
            "history_last_sweep_end_ms",
            "Unix ms when the last history retention sweep ended (0 = none yet).",
            r.last_sweep_end_ms,
        ),
        (
            "history_last_sweep_ms",
            "Duration of the last history retention sweep, ms.",
            r.last_sweep_ms,
        ),
        ("records", "Records stored, registry included.", s.records),
        (
            "live_bytes",
            "Bytes of live records on the device.",
            s.live_bytes,
        ),
        ("device_bytes", "Capacity of the device.", s.device_bytes),
        ("used_bytes", "Bytes of write blocks in use.", s.used_bytes),
        ("free_bytes", "Bytes of free write blocks.", s.free_bytes),
        (
            "index_bytes",
            "RAM held by the primary index.",
            s.index_bytes,
        ),
        (
            "blocks_total",
            "Write blocks on the device.",
            s.blocks_total,
        ),
        ("blocks_used", "Write blocks in use.", s.blocks_used),
        (
            "device_reads",
            "Record reads served from the device.",
            s.device_reads,
        ),
        (
            "memory_reads",
            "Record reads served from memory.",
            s.memory_reads,
        ),
        (
            "corrupt_reads",
            "Reads that found a bad checksum.",
            s.corrupt_reads,
        ),
        (
            "user_bytes_written",
            "Bytes appended by foreground writes.",
            s.user_bytes_written,
        ),
        (
            "device_bytes_written",
            "Bytes written to the device, defragmentation included.",
            s.device_bytes_written,
        ),
        ("flushes", "Write-block flushes.", s.flushes),
        (
            "defrag_blocks_freed",
            "Write blocks freed by defragmentation.",
            s.defrag_blocks_freed,
        ),
        (
            "defrag_records_moved",
            "Records moved by defragmentation.",
            s.defrag_records_moved,
        ),
        (
            "defrag_bytes_moved",
            "Bytes moved by defragmentation.",
            s.defrag_bytes_moved,
        ),
        (
            "defrag_queue",
            "Write blocks waiting for defragmentation.",
            s.defrag_queue,
        ),
        ("checkpoints", "Index checkpoints written.", s.checkpoints),
        (
            "damaged_keys",
            "Keys whose newest record is damaged on the device: they read CORRUPT until rewritten or deleted.",
            s.damaged_keys,
        ),
        (
            "damaged_reads",
            "Reads answered CORRUPT because their key is damaged.",
            s.damaged_reads,
        ),
    ]
}

/// Engine figures that only grow: typed `counter` (named `..._total`) in /metrics.
const ENGINE_COUNTERS: [&str; 6] = [
    "damaged_reads",
    "history_retention_sweeps",
    "history_entities_checked",
    "history_versions_removed",
    "history_segments_removed",
    "history_retention_errors",
];

/// The STATS response body: server counters, latency per opcode, engine figures.
pub fn stats_json(shared: &Shared) -> String {
    let m = &shared.metrics;
    let mut ops = Map::new();
    for op in Opcode::ALL {
        let l = m.latency(op);
        ops.insert(
            op.name().into(),
            json!({ "count": m.ops(op), "errors": m.errors(op), "p50_us": l.p50_us,
                    "p99_us": l.p99_us, "p999_us": l.p999_us, "max_us": l.max_us }),
        );
    }
    let engine: Map<String, Value> = engine_figures(shared)
        .into_iter()
        .map(|(k, _, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "server": {
            "version": env!("CARGO_PKG_VERSION"),
            "connections_open": m.connections_open.load(Relaxed),
            "connections_accepted": m.connections_accepted.load(Relaxed),
            "connections_refused": m.connections_refused.load(Relaxed),
            "connections_timed_out": m.connections_timed_out.load(Relaxed),
            "frames_malformed": m.frames_malformed.load(Relaxed),
            "engine_batches": m.engine_batches.load(Relaxed),
            "engine_batched_gets": m.engine_batched_gets.load(Relaxed),
            "busy_rejections": m.busy_rejections.load(Relaxed),
            "event_loop": shared.event_loop.name(),
            "loop_device_reads": m.loop_device_reads.load(Relaxed),
            "loop_buffer_allocations": m.loop_buffer_allocations.load(Relaxed),
            "loop_gets_diverted": m.loop_gets_diverted.load(Relaxed),
        },
        "ops": ops,
        "engine": engine,
        "engine_backend": shared.store.stats().backend,
    })
    .to_string()
}

/// Prometheus text format, version 0.0.4.
pub fn prometheus_text(shared: &Shared) -> String {
    let mut out = String::with_capacity(8192);
    shared.metrics.render_prometheus(&mut out);
    for (name, help, value) in engine_figures(shared) {
        let (name, kind) = if ENGINE_COUNTERS.contains(&name) {
            (format!("{name}_total"), "counter")
        } else {
            (name.to_string(), "gauge")
        };
        let _ = writeln!(out, "# HELP quiver_engine_{name} {help}\n# TYPE quiver_engine_{name} {kind}\nquiver_engine_{name} {value}");
    }
    crate::quality::render_prometheus(&shared.store, &mut out);
    out
}
