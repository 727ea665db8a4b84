//! Quiver's benchmarks: the shared workload (keys, values, timing loops, reports) and the
//! helpers that build a loaded store for `quiver-perf`.
//!
//! `cargo bench -p quiver-benches` runs the criterion microbenchmarks; the `quiver-perf`
//! binary measures the engine on a file store; `scripts/bench-compare.sh` runs both next to
//! fio, RocksDB (`benches/peers`) and Redis. See `docs/BENCHMARKS.md`.

pub mod store;
pub mod workload;
