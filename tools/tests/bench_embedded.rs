//! The embedded target runs the engine in-process, in memory and over a file: the load phase
//! writes every record, every workload reads what it wrote, and a reopened file keeps them.
use quiver_tools::bench::target::{self, TargetOptions};
use quiver_tools::bench::workload::RecordShape;
use quiver_tools::bench::{execute, parse_args, run, EXIT_OK, EXIT_USAGE};
use std::time::Duration;

fn flags(target: &str, workload: &str, extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = [
        format!("--target={target}"),
        "--records=500".into(),
        "--scalars=4".into(),
        "--vector-dim=8".into(),
        format!("--workload={workload}"),
        "--rate=1000".into(),
        "--connections=2".into(),
        "--pipeline=2".into(),
        "--warmup=20ms".into(),
        "--duration=200ms".into(),
        "--device-bytes=67108864".into(),
        "--quiet".into(),
    ]
    .into();
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
}

fn options() -> TargetOptions {
    TargetOptions {
        shape: RecordShape {
            scalars: 4,
            vector_dim: 8,
        },
        records: 500,
        device_bytes: 64 << 20,
        sync_writes: false,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        auth_token: None,
        tls: Default::default(),
    }
}

#[test]
fn every_workload_runs_in_memory() {
    for workload in [
        "read-only",
        "95/5",
        "50/50",
        "batch-get",
        "ycsb-d",
        "ycsb-f",
    ] {
        let args = parse_args(flags("embedded:memory", workload, &["--batch=20"])).unwrap();
        let target = target::open(&args.target, &options()).unwrap();
        let report = execute(&args, target).unwrap();
        assert_eq!(report.ops, report.expected_ops.unwrap(), "{workload}");
        assert_eq!(
            (report.errors, report.not_found),
            (0, 0),
            "{workload}: {:?}",
            report.first_error
        );
        assert_eq!(report.load.as_ref().unwrap().records, 500);
    }
}

#[test]
fn a_file_store_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let target = format!("embedded:{}", dir.path().join("bench.dev").display());
    let args = parse_args(flags(&target, "read-only", &[])).unwrap();
    assert_eq!(run(&args), EXIT_OK);
    // Reopened without a load phase: every read finds its record.
    let args = parse_args(flags(&target, "read-only", &["--no-load"])).unwrap();
    let report = execute(&args, target::open(&args.target, &options()).unwrap()).unwrap();
    assert_eq!(
        (report.errors, report.not_found),
        (0, 0),
        "{:?}",
        report.first_error
    );
    assert!(report.ops > 0);
    // Another shape over the same file is refused, naming the difference.
    let mut other = options();
    other.shape.vector_dim = 16;
    let err = target::open(&args.target, &other)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("f32[16]"), "{err}");
    let mut wider = flags(&target, "read-only", &["--vector-dim=16"]);
    wider.retain(|f| f != "--vector-dim=8");
    let args = parse_args(wider).unwrap();
    assert_eq!(run(&args), EXIT_USAGE);
}
