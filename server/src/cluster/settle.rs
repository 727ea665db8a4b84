//! Writes a master applied but its replicas have not all answered yet ("open"), per partition.
//!
//! A master applies a write before it forwards it (the master decides what a conditional write
//! does), so the write is in the local store while the replicas receive it. A read that
//! answered with such a value and then lost it to a failover (the master dies before any
//! replica has the write) would break linearizability: a later read on the new master sees the
//! older value. So a read on a master waits, after reading and before answering, until every
//! write of its partitions that was open when the read finished has been answered (confirmed,
//! or refused after the replicas' deadline). A read that saw a value saw it after the write
//! was applied, so that write is among those waited for.
//!
//! The common case costs one atomic load: a partition with no open write is not locked.

use parking_lot::{Condvar, Mutex};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Default)]
struct Open {
    next: u64,
    /// The numbers of the open writes, in the order they were applied.
    seqs: BTreeSet<u64>,
}

#[derive(Default)]
struct Part {
    /// `open.seqs.len()`, readable without the lock.
    count: AtomicU32,
    open: Mutex<Open>,
    answered: Condvar,
}

/// The open writes of every partition.
pub(super) struct Settling {
    parts: Arc<[Part]>,
}

/// One open write: answered (and no longer waited for) when dropped. It owns its place, so
/// it can travel with a write whose replicas answer on another thread.
pub(super) struct OpenWrite {
    parts: Arc<[Part]>,
    p: usize,
    seq: u64,
}

impl Drop for OpenWrite {
    fn drop(&mut self) {
        let part = &self.parts[self.p];
        let mut open = part.open.lock();
        open.seqs.remove(&self.seq);
        part.count.fetch_sub(1, Ordering::SeqCst);
        drop(open);
        part.answered.notify_all();
    }
}

impl Settling {
    pub(super) fn new(partitions: usize) -> Settling {
        Settling {
            parts: (0..partitions).map(|_| Part::default()).collect(),
        }
    }

    /// Opens a write of partition `p`; called before the write is applied, so that a read
    /// that sees its effect also sees it open.
    pub(super) fn open(&self, p: usize) -> OpenWrite {
        let part = &self.parts[p];
        let mut open = part.open.lock();
        let seq = open.next;
        open.next += 1;
        open.seqs.insert(seq);
        part.count.fetch_add(1, Ordering::SeqCst);
        OpenWrite {
            parts: self.parts.clone(),
            p,
            seq,
        }
    }

    /// Whether partition `p` has a write that is applied and not yet answered.
    pub(super) fn any_open(&self, p: usize) -> bool {
        self.parts[p].count.load(Ordering::SeqCst) > 0
    }

    /// Waits until every write of partition `p` open now has been answered, or `deadline`
    /// passed. False when the deadline cut the wait short.
    pub(super) fn wait(&self, p: usize, deadline: Instant) -> bool {
        let part = &self.parts[p];
        if part.count.load(Ordering::SeqCst) == 0 {
            return true;
        }
        let mut open = part.open.lock();
        let Some(&last) = open.seqs.last() else {
            return true;
        };
        while open.seqs.first().is_some_and(|&first| first <= last) {
            if part.answered.wait_until(&mut open, deadline).timed_out() {
                return open.seqs.first().is_none_or(|&first| first > last);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_read_waits_until_the_open_writes_are_answered() {
        let s = Arc::new(Settling::new(4));
        assert!(!s.any_open(1));
        assert!(s.wait(1, Instant::now()));
        let first = s.open(1);
        let second = s.open(1);
        assert!(s.any_open(1));
        assert!(!s.any_open(2), "partitions are apart");
        assert!(s.wait(2, Instant::now()));
        // Cut short by the deadline while the writes are open.
        assert!(!s.wait(1, Instant::now() + Duration::from_millis(20)));
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.wait(1, Instant::now() + Duration::from_secs(60)))
        };
        drop(second);
        assert!(s.any_open(1));
        drop(first);
        assert!(
            waiter.join().unwrap(),
            "the wait ends when both writes are answered"
        );
        assert!(!s.any_open(1));
    }
}
