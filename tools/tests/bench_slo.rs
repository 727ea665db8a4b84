//! A slow target fails a tight SLO (exit code 1) and passes a loose one (exit code 0); the SLO
//! parser names the bad part.
use std::time::Duration;

use quiver_tools::bench::error::TargetError;
use quiver_tools::bench::slo::Slo;
use quiver_tools::bench::target::{Connection, Op, Outcome, Target};
use quiver_tools::bench::{parse_args, run_with_target, EXIT_OK, EXIT_SLO_MISSED, EXIT_USAGE};

/// Sleeps before answering each operation.
struct SleepyTarget {
    delay: Duration,
}

struct SleepyConnection {
    delay: Duration,
    pending: usize,
}

impl Target for SleepyTarget {
    fn describe(&self) -> String {
        format!("sleepy:{:?}", self.delay)
    }
    fn connect(&self) -> Result<Box<dyn Connection>, TargetError> {
        Ok(Box::new(SleepyConnection {
            delay: self.delay,
            pending: 0,
        }))
    }
}

impl Connection for SleepyConnection {
    fn send(&mut self, ops: &[Op]) -> Result<(), TargetError> {
        self.pending = ops.len();
        Ok(())
    }
    fn receive(&mut self, done: &mut dyn FnMut(usize, Outcome)) -> Result<(), TargetError> {
        for i in 0..self.pending {
            std::thread::sleep(self.delay);
            done(i, Outcome::Ok);
        }
        Ok(())
    }
}

fn run_with_slo(slo: &str) -> i32 {
    let args = parse_args([
        "--no-load",
        "--records=100",
        "--rate=200",
        "--connections=2",
        "--warmup=50ms",
        "--duration=400ms",
        &format!("--slo={slo}"),
    ])
    .unwrap();
    run_with_target(
        &args,
        Box::new(SleepyTarget {
            delay: Duration::from_millis(3),
        }),
    )
}

#[test]
fn slow_target_misses_a_tight_slo() {
    // Every operation sleeps 3 ms, so even the median is above 1 ms.
    assert_eq!(run_with_slo("p50=1ms,p99=2ms"), EXIT_SLO_MISSED);
}

#[test]
fn slow_target_meets_a_loose_slo() {
    assert_eq!(run_with_slo("p99=30s,max=60s"), EXIT_OK);
}

#[test]
fn errors_fail_the_slo() {
    struct Failing;
    struct FailingConnection(usize);
    impl Target for Failing {
        fn describe(&self) -> String {
            "failing".into()
        }
        fn connect(&self) -> Result<Box<dyn Connection>, TargetError> {
            Ok(Box::new(FailingConnection(0)))
        }
    }
    impl Connection for FailingConnection {
        fn send(&mut self, ops: &[Op]) -> Result<(), TargetError> {
            self.0 = ops.len();
            Ok(())
        }
        fn receive(&mut self, done: &mut dyn FnMut(usize, Outcome)) -> Result<(), TargetError> {
            (0..self.0).for_each(|i| done(i, Outcome::Error("refused".into())));
            Ok(())
        }
    }
    let args = parse_args([
        "--no-load",
        "--rate=100",
        "--warmup=0s",
        "--duration=100ms",
        "--slo=p99=10s",
    ])
    .unwrap();
    assert_eq!(run_with_target(&args, Box::new(Failing)), EXIT_SLO_MISSED);
}

#[test]
fn slo_parser_accepts_units_and_percentiles() {
    let slo: Slo = "p99=1ms,p99.9=5ms,p50=250us,max=1.5s".parse().unwrap();
    let got: Vec<(f64, u64)> = slo
        .targets
        .iter()
        .map(|t| (t.percentile, t.limit_ns))
        .collect();
    assert_eq!(
        got,
        vec![
            (99.0, 1_000_000),
            (99.9, 5_000_000),
            (50.0, 250_000),
            (100.0, 1_500_000_000)
        ]
    );
}

#[test]
fn slo_parser_names_the_bad_part() {
    let cases = [
        (
            "p99=1ms,p99.9=5",
            "bad SLO part 'p99.9=5': latency '5' has no unit",
        ),
        (
            "p99=1ms,q9=1ms",
            "bad SLO part 'q9=1ms': percentile 'q9' must look like",
        ),
        ("p101=1ms", "must be above 0 and at most 100"),
        ("p99=3xs", "unknown unit 'xs'"),
        ("p99", "expected PERCENTILE=LATENCY"),
        ("p99=1ms,", "bad SLO part '': empty"),
        ("p99=1ms,p99=2ms", "given twice"),
        ("p99=ms", "does not start with a number"),
    ];
    for (text, wanted) in cases {
        let err = text.parse::<Slo>().unwrap_err().to_string();
        assert!(
            err.contains(wanted),
            "{text}: got '{err}', wanted '{wanted}'"
        );
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    let err = parse_args(["--workload=ycsb-q"]).unwrap_err().to_string();
    assert!(err.contains("unknown workload 'ycsb-q'"), "{err}");
    assert!(parse_args(["--rate=fast"]).is_err());
    assert!(parse_args(["--slo=p99=1"])
        .unwrap_err()
        .to_string()
        .contains("no unit"));
    let args = parse_args(["--rate=20000000", "--no-load"]).unwrap();
    assert_eq!(quiver_tools::bench::run(&args), EXIT_USAGE);
    let args = parse_args(["--rate=100", "--closed"]).unwrap();
    assert_eq!(quiver_tools::bench::run(&args), EXIT_USAGE);
}
