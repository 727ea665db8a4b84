//! The bounded pool of engine threads. Workers never call the store themselves: a device
//! read must not stall the other connections of a worker. Jobs go in through a bounded
//! queue; results come back to the owning worker through its mailbox and `mio::Waker`.

use super::commit::Pending;
use super::conn::Conn;
use super::job::{execute, Job, Route};
use super::wake::EventFd;
use super::Shared;
use crossbeam::channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Response bytes for one connection, and the requests they finish.
pub struct Completion {
    pub conn: u64,
    pub out: Vec<u8>,
    /// Finished requests: opcode index, start time, failed.
    pub finished: Vec<(crate::protocol::Opcode, Instant, bool)>,
    /// The outcome of a password login checked on an engine thread.
    pub login: Option<Login>,
    /// A write's answer that may leave only once the log is durable up to a mark: it goes
    /// through the commit thread (`commit.rs`), not straight to the loop.
    pub durable: Option<super::commit::DurableWait>,
}

/// A password login checked off the loop (its hash costs milliseconds).
pub enum Login {
    Accepted(crate::security::Access),
    Refused,
}

/// Where a worker receives completions.
pub struct Mailbox {
    pub tx: Sender<Completion>,
    pub waker: Arc<EventFd>,
}

/// Records a completion's finished requests in the metrics: one histogram lock per run of
/// requests of one opcode.
pub fn record_completion(shared: &Shared, c: &Completion) {
    let now = Instant::now();
    let mut run_start = 0;
    let mut samples: Vec<(u64, bool)> = Vec::with_capacity(c.finished.len());
    for i in 1..=c.finished.len() {
        if i == c.finished.len() || c.finished[i].0 != c.finished[run_start].0 {
            samples.clear();
            samples.extend(c.finished[run_start..i].iter().map(|(_, start, failed)| {
                (now.duration_since(*start).as_micros() as u64, *failed)
            }));
            shared.metrics.record(c.finished[run_start].0, &samples);
            run_start = i;
        }
    }
}

impl Conn {
    /// Takes a completion's response bytes into the write buffer.
    pub fn take_completion(&mut self, c: Completion) {
        match c.login {
            Some(Login::Accepted(access)) => {
                self.access = Some(access);
                self.handshaken = true;
                self.login_pending = false;
            }
            Some(Login::Refused) => {
                self.login_pending = false;
                self.closing = true;
            }
            None => {}
        }
        self.inflight = self.inflight.saturating_sub(c.finished.len() as u32);
        self.output.take_built(c.out.len());
        if self.wbuf.is_empty() && self.wpos == 0 {
            self.wbuf = c.out;
        } else {
            self.wbuf.extend_from_slice(&c.out);
        }
        self.output.set_queued(self.queued_output());
    }
}

/// A job and the worker it belongs to.
pub struct Envelope {
    pub worker: usize,
    pub job: Job,
}

pub struct EnginePool {
    tx: Option<Sender<Envelope>>,
    threads: Vec<JoinHandle<()>>,
    /// The commit thread: ends once every engine thread has ended.
    commit: Option<JoinHandle<()>>,
}

impl EnginePool {
    pub fn start(shared: Arc<Shared>, mailboxes: Arc<Vec<Mailbox>>) -> std::io::Result<EnginePool> {
        let (tx, rx) = bounded::<Envelope>(shared.config.engine_queue);
        let (commit_tx, commit_rx) = unbounded::<Pending>();
        let (s, m) = (shared.clone(), mailboxes.clone());
        let commit = std::thread::Builder::new()
            .name("quiver-commit".into())
            .spawn(move || super::commit::run(commit_rx, s, m))?;
        let mut threads = Vec::with_capacity(shared.config.engine_threads);
        for i in 0..shared.config.engine_threads {
            let (rx, shared, mailboxes) = (rx.clone(), shared.clone(), mailboxes.clone());
            let commit = commit_tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("quiver-engine-{i}"))
                    .spawn(move || run(rx, &shared, &mailboxes, &commit))?,
            );
        }
        Ok(EnginePool {
            tx: Some(tx),
            threads,
            commit: Some(commit),
        })
    }

    pub fn sender(&self) -> Sender<Envelope> {
        self.tx.clone().expect("the pool's sender lives until stop")
    }

    /// Lets the threads finish every queued job, then joins them.
    pub fn stop(mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(commit) = self.commit.take() {
            let _ = commit.join();
        }
    }
}

/// Queues a job; when the queue is full the job comes back so the worker can answer BUSY.
pub fn submit(tx: &Sender<Envelope>, env: Envelope) -> Result<(), Envelope> {
    tx.try_send(env).map_err(|e| match e {
        TrySendError::Full(env) | TrySendError::Disconnected(env) => env,
    })
}

fn run(
    rx: Receiver<Envelope>,
    shared: &Shared,
    mailboxes: &Arc<Vec<Mailbox>>,
    commit: &Sender<Pending>,
) {
    let mut route = Route {
        worker: 0,
        mailboxes: mailboxes.clone(),
        commit: commit.clone(),
    };
    while let Ok(Envelope { worker, job }) = rx.recv() {
        let targets = job.targets();
        route.worker = worker;
        let completions = match catch_unwind(AssertUnwindSafe(|| execute(shared, job, &route))) {
            Ok(c) => c,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(panic = %what, "engine call panicked; answering INTERNAL");
                super::job::internal_error_completions(shared, &targets, &what)
            }
        };
        let mailbox = &mailboxes[worker];
        // A replicated write's answer is not among them: it is given later, by the thread
        // that receives its replicas' last confirmation.
        let mut to_loop = false;
        for c in completions {
            if c.durable.is_some() {
                // Answered by the commit thread once durable.
                if commit.send((worker, c)).is_err() {
                    return;
                }
                continue;
            }
            to_loop = true;
            if mailbox.tx.send(c).is_err() {
                return;
            }
        }
        if to_loop {
            mailbox.waker.wake();
        }
    }
}
