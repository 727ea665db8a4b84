//! The load generator: worker threads drive connections, open loop (fixed rate, latency from
//! each operation's intended start) or closed loop (as fast as replies come back).
use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::error::{BenchError, TargetError};
use super::schedule::{first_at_or_after, owned_in, start_ns};
use super::target::{Connection, Op, Outcome, Target};
use super::workload::OpGenerator;

/// Largest latency the histograms hold (longer ones saturate at this value).
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Open loop at a fixed rate, or closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open { rate_ops: u64 },
    Closed,
}

/// How to drive the target.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub connections: u32,
    pub threads: u32,
    pub pipeline: u32,
    pub warmup_ns: u64,
    pub duration_ns: u64,
    /// After the measured window, how long an open loop that fell behind may keep issuing.
    pub drain_ns: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// From intended start (open loop) or from send (closed loop), nanoseconds.
    pub latency: Histogram<u64>,
    /// From send to reply, nanoseconds: what the target alone took, queueing in the client excluded.
    pub service: Histogram<u64>,
    /// Measured operations that ended: ok, not found or failed.
    pub ops: u64,
    pub errors: u64,
    pub not_found: u64,
    /// Open-loop operations still unsent when the drain time ran out; recorded with the
    /// latency they had reached by then, a lower bound.
    pub not_issued: u64,
    pub first_error: Option<String>,
    /// Connections lost and not reopened.
    pub lost_connections: u32,
    /// CPU time the generator's worker threads used over the measured window (from the end of
    /// the warm-up to the end of the run), nanoseconds.
    pub cpu_ns: u64,
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static histogram bounds are valid")
}

impl Measurement {
    fn empty() -> Measurement {
        Measurement {
            latency: new_histogram(),
            service: new_histogram(),
            ops: 0,
            errors: 0,
            not_found: 0,
            not_issued: 0,
            first_error: None,
            lost_connections: 0,
            cpu_ns: 0,
        }
    }

    fn merge(&mut self, other: Measurement) {
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
        self.service
            .add(&other.service)
            .expect("histograms share their bounds");
        self.ops += other.ops;
        self.errors += other.errors;
        self.not_found += other.not_found;
        self.not_issued += other.not_issued;
        self.lost_connections += other.lost_connections;
        self.cpu_ns += other.cpu_ns;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn record(&mut self, outcome: Outcome, latency_ns: u64, service_ns: u64) {
        self.ops += 1;
        match outcome {
            Outcome::Ok => {}
            Outcome::NotFound => self.not_found += 1,
            Outcome::Error(text) => {
                self.errors += 1;
                self.first_error.get_or_insert(text);
                return;
            }
        }
        self.latency.saturating_record(latency_ns.max(1));
        self.service.saturating_record(service_ns.max(1));
    }

    fn fail(&mut self, count: u64, reason: &str) {
        self.ops += count;
        self.errors += count;
        if count > 0 {
            self.first_error.get_or_insert_with(|| reason.to_string());
        }
    }
}

/// One connection and its share of the schedule.
struct Slot {
    /// Connection number `c` in `0..connections`.
    index: u64,
    conn: Option<Box<dyn Connection>>,
    gen: OpGenerator,
    /// Open loop: the next operation number this connection owns.
    next_g: u64,
    batch: Vec<Op>,
    /// Per operation of the batch: when its latency starts counting, ns from the run start.
    starts: Vec<u64>,
    sent_ns: u64,
}

/// Runs the plan; `generators` holds one operation generator per connection.
pub fn measure(
    target: &dyn Target,
    plan: &Plan,
    generators: Vec<OpGenerator>,
) -> Result<Measurement, BenchError> {
    assert_eq!(generators.len(), plan.connections as usize);
    let threads = plan.threads.min(plan.connections).max(1) as usize;
    let mut per_thread: Vec<Vec<Slot>> = (0..threads).map(|_| Vec::new()).collect();
    for (c, gen) in generators.into_iter().enumerate() {
        let conn = target.connect()?;
        per_thread[c % threads].push(Slot {
            index: c as u64,
            conn: Some(conn),
            gen,
            next_g: c as u64,
            batch: Vec::with_capacity(plan.pipeline as usize),
            starts: Vec::with_capacity(plan.pipeline as usize),
            sent_ns: 0,
        });
    }
    let barrier = Barrier::new(threads);
    let mut total = Measurement::empty();
    std::thread::scope(|scope| {
        let handles: Vec<_> = per_thread
            .into_iter()
            .map(|slots| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut worker = Worker {
                        target,
                        plan,
                        t0: Instant::now(),
                        stats: Measurement::empty(),
                        cpu_from_ns: None,
                    };
                    worker.run(slots);
                    worker.stats
                })
            })
            .collect();
        for handle in handles {
            total.merge(handle.join().expect("a load-generator thread panicked"));
        }
    });
    Ok(total)
}

struct Worker<'a> {
    target: &'a dyn Target,
    plan: &'a Plan,
    t0: Instant,
    stats: Measurement,
    /// This thread's CPU time when the warm-up ended.
    cpu_from_ns: Option<u64>,
}

/// CPU time the calling thread has used, nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Worker<'_> {
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn end_ns(&self) -> u64 {
        self.plan.warmup_ns + self.plan.duration_ns
    }

    fn run(&mut self, mut slots: Vec<Slot>) {
        match self.plan.mode {
            Mode::Open { rate_ops } => self.run_open(&mut slots, rate_ops),
            Mode::Closed => self.run_closed(&mut slots),
        }
        let from = self.cpu_from_ns.unwrap_or_else(thread_cpu_ns);
        self.stats.cpu_ns = thread_cpu_ns().saturating_sub(from);
    }

    /// Starts counting this thread's CPU time once the warm-up is over.
    fn note_warmup(&mut self, now_ns: u64) {
        if self.cpu_from_ns.is_none() && now_ns >= self.plan.warmup_ns {
            self.cpu_from_ns = Some(thread_cpu_ns());
        }
    }

    fn run_open(&mut self, slots: &mut [Slot], rate: u64) {
        let end = self.end_ns();
        let n = self.plan.connections as u64;
        loop {
            let active = slots
                .iter()
                .filter(|s| s.conn.is_some() && start_ns(s.next_g, rate) < end);
            let Some(earliest) = active.map(|s| start_ns(s.next_g, rate)).min() else {
                break;
            };
            let now = self.now_ns();
            self.note_warmup(now);
            if now > end + self.plan.drain_ns {
                self.give_up(slots, rate, now);
                break;
            }
            if earliest > now {
                std::thread::sleep(Duration::from_nanos(earliest - now));
                continue;
            }
            for slot in slots.iter_mut() {
                while slot.conn.is_some()
                    && slot.batch.len() < self.plan.pipeline as usize
                    && start_ns(slot.next_g, rate) <= now
                    && start_ns(slot.next_g, rate) < end
                {
                    slot.starts.push(start_ns(slot.next_g, rate));
                    slot.batch.push(slot.gen.next_op());
                    slot.next_g += n;
                }
            }
            self.exchange(slots);
        }
        self.count_dead_connections(slots, rate);
    }

    fn run_closed(&mut self, slots: &mut [Slot]) {
        let end = self.end_ns();
        loop {
            let now = self.now_ns();
            if now >= end || slots.iter().all(|s| s.conn.is_none()) {
                break;
            }
            self.note_warmup(now);
            for slot in slots.iter_mut().filter(|s| s.conn.is_some()) {
                for _ in 0..self.plan.pipeline {
                    slot.batch.push(slot.gen.next_op());
                }
            }
            self.exchange(slots);
        }
    }

    /// Sends every slot's batch, then receives every reply.
    fn exchange(&mut self, slots: &mut [Slot]) {
        let closed = self.plan.mode == Mode::Closed;
        for slot in slots.iter_mut().filter(|s| !s.batch.is_empty()) {
            slot.sent_ns = self.now_ns();
            if closed {
                slot.starts.clear();
                slot.starts.resize(slot.batch.len(), slot.sent_ns);
            }
            let conn = slot
                .conn
                .as_mut()
                .expect("only live connections get batches");
            if let Err(e) = conn.send(&slot.batch) {
                let reported = vec![false; slot.batch.len()];
                self.connection_failed(slot, &reported, &e);
            }
        }
        for slot in slots.iter_mut().filter(|s| !s.batch.is_empty()) {
            self.receive(slot);
        }
    }

    fn receive(&mut self, slot: &mut Slot) {
        let mut reported = vec![false; slot.batch.len()];
        let t0 = self.t0;
        let warmup = self.plan.warmup_ns;
        let stats = &mut self.stats;
        let Slot {
            conn,
            gen,
            batch,
            starts,
            sent_ns,
            ..
        } = slot;
        let conn = conn.as_mut().expect("only live connections get batches");
        let result = conn.receive(&mut |i, outcome| {
            let now = t0.elapsed().as_nanos() as u64;
            reported[i] = true;
            gen.finished(&batch[i]);
            if starts[i] >= warmup {
                stats.record(outcome, now - starts[i].min(now), now - (*sent_ns).min(now));
            }
        });
        match result {
            Ok(()) => {
                slot.batch.clear();
                slot.starts.clear();
            }
            Err(e) => self.connection_failed(slot, &reported, &e),
        }
    }

    /// Counts the batch's unreported operations as failed, then tries one reconnect.
    fn connection_failed(&mut self, slot: &mut Slot, reported: &[bool], err: &TargetError) {
        let reason = err.to_string();
        let warmup = self.plan.warmup_ns;
        for (i, op) in slot.batch.iter().enumerate() {
            if !reported[i] {
                slot.gen.finished(op);
                if slot.starts[i] >= warmup {
                    self.stats.fail(1, &reason);
                }
            }
        }
        slot.batch.clear();
        slot.starts.clear();
        slot.conn = match self.target.connect() {
            Ok(conn) => Some(conn),
            Err(e) => {
                self.stats.first_error.get_or_insert(e.to_string());
                self.stats.lost_connections += 1;
                None
            }
        };
    }

    /// The drain time ran out: every measured operation not yet sent gets the latency it has
    /// reached by `now`, a lower bound on what it would have seen.
    fn give_up(&mut self, slots: &mut [Slot], rate: u64, now: u64) {
        let (warmup, end) = (self.plan.warmup_ns, self.end_ns());
        let n = self.plan.connections as u64;
        for slot in slots.iter_mut().filter(|s| s.conn.is_some()) {
            let mut g = slot
                .next_g
                .max(first_owned_at_or_after(warmup, rate, slot.index, n));
            while start_ns(g, rate) < end {
                self.stats
                    .latency
                    .saturating_record(now - start_ns(g, rate));
                self.stats.not_issued += 1;
                self.stats.ops += 1;
                g += n;
            }
            slot.next_g = g;
        }
    }

    /// Measured operations a lost connection never sent count as failed.
    fn count_dead_connections(&mut self, slots: &[Slot], rate: u64) {
        let (warmup, end) = (self.plan.warmup_ns, self.end_ns());
        let n = self.plan.connections as u64;
        for slot in slots.iter().filter(|s| s.conn.is_none()) {
            let from = slot.next_g.max(first_at_or_after(warmup, rate));
            let count = owned_in(from, first_at_or_after(end, rate), slot.index, n);
            self.stats.fail(count, "connection lost");
        }
    }
}

/// The first operation number owned by connection `c` whose start is at or after `t_ns`.
fn first_owned_at_or_after(t_ns: u64, rate: u64, c: u64, n: u64) -> u64 {
    let g = first_at_or_after(t_ns, rate);
    g + (c + n - g % n) % n
}
