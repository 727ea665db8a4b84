//! The quiverd target against a server started in this process: pipelined gets, puts, batch
//! gets and read-modify-writes all succeed, measured by the same harness as the other targets.
use std::sync::Arc;
use std::time::Duration;

use quiver_engine::{Config, Store};
use quiver_server::config::ServerConfig;
use quiver_tools::bench::target::{self, TargetOptions};
use quiver_tools::bench::workload::RecordShape;
use quiver_tools::bench::{execute, parse_args};

#[test]
fn quiverd_target_runs_every_kind_of_operation() {
    let store = Arc::new(Store::open(Config::memory(64 << 20)).unwrap());
    let mut config = ServerConfig::for_memory(64 << 20);
    config.workers = 1;
    config.engine_threads = 2;
    let server = quiver_server::server::start(config, store).unwrap();
    let addr = server.local_addr().to_string();
    let opts = TargetOptions {
        shape: RecordShape {
            scalars: 3,
            vector_dim: 16,
        },
        records: 300,
        device_bytes: 0,
        sync_writes: false,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        auth_token: None,
        tls: Default::default(),
    };
    let mut load = true;
    for workload in ["ycsb-a", "batch-get", "ycsb-f", "ycsb-d"] {
        let mut flags = vec![
            format!("--target=quiverd:{addr}"),
            "--records=300".to_string(),
            "--scalars=3".into(),
            "--vector-dim=16".into(),
            format!("--workload={workload}"),
            "--batch=10".into(),
            "--rate=500".into(),
            "--connections=2".into(),
            "--pipeline=4".into(),
            "--warmup=20ms".into(),
            "--duration=200ms".into(),
            "--quiet".into(),
        ];
        if !load {
            flags.push("--no-load".into());
        }
        load = false;
        let args = parse_args(flags).unwrap();
        let target = target::open(&args.target, &opts).unwrap();
        let report = execute(&args, target).unwrap();
        assert_eq!(report.ops, report.expected_ops.unwrap(), "{workload}");
        assert_eq!(
            (report.errors, report.not_found),
            (0, 0),
            "{workload}: {:?}",
            report.first_error
        );
    }
    server.shutdown();
}
