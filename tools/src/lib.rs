//! quiver-tools: the `quiver` command-line tool and its latency-SLO benchmark harness.
//!
//! The library half exists so that integration tests (and the `quiver` binary) share one
//! implementation. It must never reach into the engine's internals: it talks to Quiver only
//! through `quiver_engine::Store` and the `quiver_server` client, like any other user.
pub mod bench;
pub mod cli;
