//! The engine's clock: the time expiry is judged by (reads, writes, the expiry sweep,
//! defragmentation and recovery all ask it). The system clock by default; tests inject a
//! [`ManualClock`] so that records expire when the test says, inside one run.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// A source of the current time in unix seconds.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_s(&self) -> u32;

    /// Now in unix milliseconds: the feature store's wall time (value ages, history write
    /// times and retention). A clock that only knows seconds gives whole seconds.
    fn now_ms(&self) -> u64 {
        self.now_s() as u64 * 1000
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_s(&self) -> u32 {
        (quiver_wal::writer::now_ms() / 1000) as u32
    }

    fn now_ms(&self) -> u64 {
        quiver_wal::writer::now_ms()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicU32);

impl ManualClock {
    pub fn new(now_s: u32) -> ManualClock {
        ManualClock(AtomicU32::new(now_s))
    }

    pub fn set(&self, now_s: u32) {
        self.0.store(now_s, Ordering::SeqCst);
    }

    /// Moves the clock forward by `by_s` seconds (saturating).
    pub fn advance(&self, by_s: u32) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(by_s))
            });
    }
}

impl Clock for ManualClock {
    fn now_s(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(100);
        assert_eq!(c.now_s(), 100);
        assert_eq!(c.now_ms(), 100_000);
        c.advance(5);
        assert_eq!(c.now_s(), 105);
        c.set(7);
        assert_eq!(c.now_s(), 7);
        c.set(u32::MAX - 1);
        c.advance(10);
        assert_eq!(c.now_s(), u32::MAX, "saturates");
        assert!(
            SystemClock.now_s() > 1_600_000_000,
            "the system clock is unix seconds"
        );
    }
}
