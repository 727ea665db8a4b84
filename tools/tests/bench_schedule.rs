//! The open loop issues exactly the operations its schedule intends, whatever the pipeline
//! depth and connection count; the closed loop measures what completes.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quiver_tools::bench::error::TargetError;
use quiver_tools::bench::schedule::intended_starts;
use quiver_tools::bench::target::{Connection, Op, Outcome, Target};
use quiver_tools::bench::{execute, parse_args};

/// Answers every operation at once and counts them.
struct InstantTarget {
    served: Arc<AtomicU64>,
}

struct InstantConnection {
    pending: usize,
    served: Arc<AtomicU64>,
}

impl Target for InstantTarget {
    fn describe(&self) -> String {
        "instant".into()
    }
    fn connect(&self) -> Result<Box<dyn Connection>, TargetError> {
        Ok(Box::new(InstantConnection {
            pending: 0,
            served: Arc::clone(&self.served),
        }))
    }
}

impl Connection for InstantConnection {
    fn send(&mut self, ops: &[Op]) -> Result<(), TargetError> {
        self.pending = ops.len();
        Ok(())
    }
    fn receive(&mut self, done: &mut dyn FnMut(usize, Outcome)) -> Result<(), TargetError> {
        for i in 0..self.pending {
            done(i, Outcome::Ok);
        }
        self.served
            .fetch_add(self.pending as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn run_open(rate: u64, connections: u32, pipeline: u32) {
    let args = parse_args([
        "--no-load",
        "--records=1000",
        &format!("--rate={rate}"),
        &format!("--connections={connections}"),
        &format!("--pipeline={pipeline}"),
        "--warmup=150ms",
        "--duration=700ms",
    ])
    .unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let target = InstantTarget {
        served: Arc::clone(&served),
    };
    let report = execute(&args, Box::new(target)).unwrap();
    let expected = intended_starts(rate, 150_000_000, 700_000_000);
    assert_eq!(report.expected_ops, Some(expected));
    assert_eq!(
        report.ops, expected,
        "rate {rate}, {connections} connections"
    );
    assert_eq!(report.latency_us.count, expected);
    assert_eq!(report.errors + report.not_issued, 0);
    // Warm-up operations were sent too, but not measured.
    let all = intended_starts(rate, 0, 850_000_000);
    assert_eq!(served.load(Ordering::Relaxed), all);
}

#[test]
fn open_loop_issues_every_intended_start() {
    run_open(2000, 1, 1);
    run_open(3001, 3, 1);
    run_open(5000, 4, 8);
}

#[test]
fn closed_loop_counts_what_completed() {
    let args = parse_args([
        "--no-load",
        "--records=100",
        "--closed",
        "--connections=2",
        "--pipeline=4",
        "--warmup=50ms",
        "--duration=200ms",
    ])
    .unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let report = execute(
        &args,
        Box::new(InstantTarget {
            served: Arc::clone(&served),
        }),
    )
    .unwrap();
    assert_eq!(report.mode, "closed");
    assert!(report.ops > 0);
    assert!(report.ops <= served.load(Ordering::Relaxed));
    assert_eq!(report.ops % 4, 0, "whole pipelines are measured");
    assert_eq!(report.latency_us.count, report.ops);
}

#[test]
fn load_phase_writes_every_record_once() {
    let args = parse_args([
        "--records=1234",
        "--rate=100",
        "--warmup=0s",
        "--duration=10ms",
        "--quiet",
    ])
    .unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let report = execute(
        &args,
        Box::new(InstantTarget {
            served: Arc::clone(&served),
        }),
    )
    .unwrap();
    assert_eq!(report.load.as_ref().map(|l| l.records), Some(1234));
    assert_eq!(served.load(Ordering::Relaxed), 1234 + report.ops);
}
