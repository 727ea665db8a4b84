//! How many response bytes one connection has waiting, seen by its worker and by the engine
//! threads that build its responses.
//!
//! The worker stops reading a connection whose queued output is over
//! `max_output_bytes_per_connection`, but requests it already admitted keep completing into
//! that queue. So an engine thread looks at the gauge before it builds a response and refuses
//! (BUSY) when the connection's unsent bytes are already at the limit: a connection's output
//! stays under the limit plus one frame per engine thread, whatever it pipelines.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Debug, Default)]
pub struct OutputGauge {
    /// Bytes in the connection's write buffer, as its worker last stored them.
    queued: AtomicU64,
    /// Bytes built by engine threads and not yet taken into the write buffer.
    built: AtomicU64,
}

impl OutputGauge {
    /// Response bytes of the connection not yet written to its socket.
    pub fn unsent(&self) -> u64 {
        self.queued.load(Relaxed) + self.built.load(Relaxed)
    }

    /// An engine thread built `n` response bytes for the connection.
    pub fn add_built(&self, n: usize) {
        self.built.fetch_add(n as u64, Relaxed);
    }

    /// The worker took `n` built bytes into the write buffer.
    pub fn take_built(&self, n: usize) {
        let _ = self
            .built
            .fetch_update(Relaxed, Relaxed, |b| Some(b.saturating_sub(n as u64)));
    }

    /// The worker's write buffer now holds `n` unsent bytes.
    pub fn set_queued(&self, n: usize) {
        self.queued.store(n as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsent_counts_built_and_queued_bytes() {
        let g = OutputGauge::default();
        g.add_built(100);
        g.set_queued(30);
        assert_eq!(g.unsent(), 130);
        g.take_built(100);
        g.set_queued(130);
        assert_eq!(g.unsent(), 130);
        g.take_built(5);
        assert_eq!(g.unsent(), 130, "never below zero");
        g.set_queued(0);
        assert_eq!(g.unsent(), 0);
    }
}
