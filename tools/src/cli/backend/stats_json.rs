//! The engine's stats snapshot as JSON, field names as in [`quiver_engine::Stats`].

use serde_json::{json, Value as Json};

pub fn engine_stats_json(s: &quiver_engine::Stats) -> Json {
    json!({
        "records": s.records,
        "live_bytes": s.live_bytes,
        "device_bytes": s.device_bytes,
        "used_bytes": s.used_bytes,
        "free_bytes": s.free_bytes,
        "write_block_bytes": s.write_block_bytes,
        "blocks_total": s.blocks_total,
        "blocks_used": s.blocks_used,
        "blocks_free": s.blocks_free,
        "index_bytes": s.index_bytes,
        "backend": s.backend,
        "puts": s.puts,
        "deletes": s.deletes,
        "gets": s.gets,
        "device_reads": s.device_reads,
        "memory_reads": s.memory_reads,
        "corrupt_reads": s.corrupt_reads,
        "user_bytes_written": s.user_bytes_written,
        "device_bytes_written": s.device_bytes_written,
        "flushes": s.flushes,
        "defrag_blocks_freed": s.defrag_blocks_freed,
        "defrag_records_moved": s.defrag_records_moved,
        "defrag_bytes_moved": s.defrag_bytes_moved,
        "defrag_queue": s.defrag_queue,
        "tombstones_kept": s.tombstones_kept,
        "tombstones_dropped": s.tombstones_dropped,
        "expired_swept": s.expired_swept,
        "checkpoints": s.checkpoints,
        "failed": s.failed,
    })
}
