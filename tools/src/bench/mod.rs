//! `quiver bench`: the latency-SLO harness. Drives a target (quiverd over the network, the
//! engine in-process, or Redis) with a YCSB-like workload, open loop at a fixed rate with
//! latency measured from each operation's intended start, or closed loop; reports HdrHistogram
//! percentiles and whether an SLO held.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

pub mod error;
pub mod hgrm;
pub mod keys;
pub mod loader;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod slo;
pub mod svg;
pub mod target;
pub mod units;
pub mod workload;

use error::BenchError;
use keys::{Distribution, InsertCounter, KeyChooser, Zipfian, ZIPFIAN_THETA};
use report::{Percentiles, Report, SloReport};
use runner::{Mode, Plan};
use slo::Slo;
use target::{Target, TargetOptions, TargetSpec};
use units::duration_arg;
use workload::{OpGenerator, RecordShape, Workload, MAX_BATCH_KEYS};

/// Most records a run may load or address.
pub const MAX_RECORDS: u64 = 1_000_000_000;
/// Most connections.
pub const MAX_CONNECTIONS: u32 = 4096;
/// Most load-generator threads.
pub const MAX_THREADS: u32 = 1024;
/// Deepest pipeline per connection.
pub const MAX_PIPELINE: u32 = 1024;

/// Exit code: the run finished and the SLO held (or none was given).
pub const EXIT_OK: i32 = 0;
/// Exit code: the SLO did not hold.
pub const EXIT_SLO_MISSED: i32 = 1;
/// Exit code: bad flags, unreachable target, failed load or unwritable report.
pub const EXIT_USAGE: i32 = 2;

/// Flags of `quiver bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// What to measure: quiverd:ADDR, embedded:PATH, embedded:memory or redis:ADDR.
    #[arg(long, default_value = "embedded:memory")]
    pub target: TargetSpec,
    /// read-only, read-mostly (95/5), read-update (50/50), batch-get, ycsb-a, ycsb-b, ycsb-c,
    /// ycsb-d or ycsb-f.
    #[arg(long, default_value = "read-only")]
    pub workload: Workload,
    /// Key distribution: uniform, zipfian (YCSB scrambled, theta 0.99) or latest. Default: the
    /// workload's (zipfian for ycsb-a/b/c/f, latest for ycsb-d, uniform otherwise).
    #[arg(long)]
    pub distribution: Option<Distribution>,
    /// Number of records: loaded first (unless --no-load) and addressed by the workload.
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Skip the load phase (the records are already there).
    #[arg(long)]
    pub no_load: bool,
    /// Scalar f32 features per record.
    #[arg(long, default_value_t = 10)]
    pub scalars: u32,
    /// Dimension of the record's f32 vector feature (0 = no vector).
    #[arg(long, default_value_t = 128)]
    pub vector_dim: u32,
    /// Entities per batch get (workload batch-get).
    #[arg(long = "batch", default_value_t = 100)]
    pub batch_keys: u32,
    /// Operations per second over all connections, open loop; 0 = closed loop.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Closed loop: each connection sends as soon as its previous replies arrive.
    #[arg(long)]
    pub closed: bool,
    /// Connections (for embedded targets: concurrent callers).
    #[arg(long, default_value_t = 4)]
    pub connections: u32,
    /// Load-generator threads; connections are shared out among them. Default: one per connection.
    #[arg(long)]
    pub threads: Option<u32>,
    /// Operations in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: u32,
    /// Time run but not measured before the measurement.
    #[arg(long, default_value = "5s", value_parser = duration_arg)]
    pub warmup: Duration,
    /// Measured time.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    pub duration: Duration,
    /// Open loop: how long past the measured window a run that fell behind may go on sending.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub drain: Duration,
    /// Latency SLO, e.g. p99=1ms,p99.9=5ms (units us, ms, s); exit code 1 when it does not hold.
    #[arg(long)]
    pub slo: Option<Slo>,
    /// Write the full percentile table in HdrHistogram's .hgrm text format.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write the report as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a latency-by-percentile chart as SVG.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Seed of the key and operation choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Embedded targets: device size in bytes (0 = three times the data, at least 256 MiB).
    #[arg(long, default_value_t = 0)]
    pub device_bytes: u64,
    /// Quiver targets: writes wait until durable (durability sync) instead of buffered.
    #[arg(long)]
    pub sync: bool,
    /// quiverd: the token presented in the handshake.
    #[arg(long, env = "QUIVER_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// quiverd: speak TLS (with --ca; --cert/--key for a server that asks for a client
    /// certificate).
    #[arg(long)]
    pub tls: bool,
    /// quiverd over TLS: PEM CA certificate that signed the server's certificate.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// quiverd over TLS: PEM client certificate.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// quiverd over TLS: PEM private key of --cert.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Network targets: longest wait to connect.
    #[arg(long, default_value = "5s", value_parser = duration_arg)]
    pub connect_timeout: Duration,
    /// Network targets: longest wait for one reply.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub request_timeout: Duration,
    /// No load-phase progress on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Parses `quiver bench` flags (without the program name), for tests and embedders.
pub fn parse_args<I, S>(args: I) -> Result<BenchArgs, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    #[derive(clap::Parser)]
    #[command(name = "quiver bench")]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }
    use clap::Parser;
    let argv = std::iter::once(std::ffi::OsString::from("quiver bench"))
        .chain(args.into_iter().map(Into::into));
    Cli::try_parse_from(argv).map(|cli| cli.bench)
}

/// Runs the benchmark; returns the process exit code (0 = ran and SLO held or no SLO;
/// 1 = SLO missed; 2 = usage/setup error).
pub fn run(args: &BenchArgs) -> i32 {
    let result = check_args(args).and_then(|()| {
        let target = target::open(&args.target, &target_options(args))?;
        Ok(target)
    });
    match result {
        Ok(target) => run_with_target(args, target),
        Err(e) => {
            eprintln!("quiver bench: {e}");
            EXIT_USAGE
        }
    }
}

/// Runs the benchmark against an already opened target (tests use their own targets).
pub fn run_with_target(args: &BenchArgs, target: Box<dyn Target>) -> i32 {
    let report = match execute(args, target) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("quiver bench: {e}");
            return EXIT_USAGE;
        }
    };
    print!("{}", report.summary());
    if let Err(e) = write_outputs(args, &report) {
        eprintln!("quiver bench: {e}");
        return EXIT_USAGE;
    }
    match &report.slo {
        Some(slo) if !slo.held => EXIT_SLO_MISSED,
        _ => EXIT_OK,
    }
}

/// Loads, measures and builds the report, without printing or writing files.
pub fn execute(args: &BenchArgs, target: Box<dyn Target>) -> Result<Report, BenchError> {
    check_args(args)?;
    let load = if args.no_load {
        None
    } else {
        let progress = !args.quiet;
        Some(loader::load(
            &*target,
            args.records,
            args.connections,
            args.pipeline,
            progress,
        )?)
    };
    let plan = plan(args);
    let generators = generators(args);
    let measurement = runner::measure(&*target, &plan, generators)?;
    let describe = target.describe();
    target.finish()?;
    Ok(build_report(args, &plan, describe, load, measurement))
}

fn usage(text: String) -> BenchError {
    BenchError::Usage(text)
}

/// Checks the flags against the harness's limits.
pub fn check_args(args: &BenchArgs) -> Result<(), BenchError> {
    let shape = shape(args);
    shape.validate().map_err(usage)?;
    let limit = |name: &str, value: u64, min: u64, max: u64| {
        if value < min || value > max {
            Err(usage(format!("--{name} {value} is outside {min}..={max}")))
        } else {
            Ok(())
        }
    };
    limit("records", args.records, 1, MAX_RECORDS)?;
    limit(
        "connections",
        args.connections as u64,
        1,
        MAX_CONNECTIONS as u64,
    )?;
    limit("pipeline", args.pipeline as u64, 1, MAX_PIPELINE as u64)?;
    limit("batch", args.batch_keys as u64, 1, MAX_BATCH_KEYS as u64)?;
    limit("rate", args.rate, 0, schedule::MAX_RATE_OPS)?;
    if let Some(threads) = args.threads {
        limit("threads", threads as u64, 1, MAX_THREADS as u64)?;
    }
    if args.closed && args.rate > 0 {
        return Err(usage(format!(
            "--closed and --rate {} contradict each other; use one",
            args.rate
        )));
    }
    if args.duration.is_zero() {
        return Err(usage("--duration must be above zero".into()));
    }
    Ok(())
}

fn shape(args: &BenchArgs) -> RecordShape {
    RecordShape {
        scalars: args.scalars,
        vector_dim: args.vector_dim,
    }
}

fn target_options(args: &BenchArgs) -> TargetOptions {
    TargetOptions {
        shape: shape(args),
        records: args.records,
        device_bytes: args.device_bytes,
        sync_writes: args.sync,
        connect_timeout: args.connect_timeout,
        request_timeout: args.request_timeout,
        auth_token: args.auth_token.clone(),
        tls: target::TlsFlags {
            enabled: args.tls,
            ca: args.ca.clone(),
            cert: args.cert.clone(),
            key: args.key.clone(),
        },
    }
}

fn plan(args: &BenchArgs) -> Plan {
    let threads = args
        .threads
        .unwrap_or(args.connections)
        .clamp(1, MAX_THREADS)
        .min(args.connections);
    Plan {
        mode: if args.closed || args.rate == 0 {
            Mode::Closed
        } else {
            Mode::Open {
                rate_ops: args.rate,
            }
        },
        connections: args.connections,
        threads,
        pipeline: args.pipeline,
        warmup_ns: args.warmup.as_nanos() as u64,
        duration_ns: args.duration.as_nanos() as u64,
        drain_ns: args.drain.as_nanos() as u64,
    }
}

fn distribution(args: &BenchArgs) -> Distribution {
    args.distribution
        .unwrap_or_else(|| args.workload.default_distribution())
}

/// One operation generator per connection, seeded from `--seed`.
fn generators(args: &BenchArgs) -> Vec<OpGenerator> {
    let inserts = InsertCounter::new(args.records);
    let dist = distribution(args);
    let latest = (dist == Distribution::Latest).then(|| Zipfian::new(args.records, ZIPFIAN_THETA));
    (0..args.connections)
        .map(|c| {
            let keys = KeyChooser::new(dist, args.records, &inserts, latest.as_ref());
            let rng =
                SmallRng::seed_from_u64(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ c as u64);
            OpGenerator::new(
                args.workload,
                args.batch_keys,
                keys,
                Arc::clone(&inserts),
                rng,
            )
        })
        .collect()
}

fn build_report(
    args: &BenchArgs,
    plan: &Plan,
    target: String,
    load: Option<report::LoadReport>,
    m: runner::Measurement,
) -> Report {
    let rate_ops = match plan.mode {
        Mode::Open { rate_ops } => Some(rate_ops),
        Mode::Closed => None,
    };
    let expected_ops =
        rate_ops.map(|rate| schedule::intended_starts(rate, plan.warmup_ns, plan.duration_ns));
    let duration_s = args.duration.as_secs_f64();
    let slo = args.slo.as_ref().map(|slo| {
        let targets = slo.check(&m.latency);
        let failed_ops = m.errors + m.not_issued;
        SloReport {
            held: failed_ops == 0 && !m.latency.is_empty() && targets.iter().all(|t| t.held),
            targets,
            failed_ops,
        }
    });
    Report {
        target,
        workload: args.workload.to_string(),
        mix: args.workload.mix(),
        distribution: distribution(args),
        records: args.records,
        shape: shape(args),
        batch_keys: (args.workload.mix().batch_read > 0).then_some(args.batch_keys),
        mode: if rate_ops.is_some() { "open" } else { "closed" },
        rate_ops,
        connections: plan.connections,
        threads: plan.threads,
        pipeline: plan.pipeline,
        warmup_s: args.warmup.as_secs_f64(),
        duration_s,
        load,
        ops: m.ops,
        expected_ops,
        ops_per_s: m.ops as f64 / duration_s,
        errors: m.errors,
        not_found: m.not_found,
        not_issued: m.not_issued,
        lost_connections: m.lost_connections,
        first_error: m.first_error.clone(),
        latency_us: Percentiles::of(&m.latency),
        service_time_us: Percentiles::of(&m.service),
        generator_cpu_s: m.cpu_ns as f64 / 1e9,
        generator_cpu_us_per_op: m.cpu_ns as f64 / 1e3 / m.ops.max(1) as f64,
        slo,
        measurement: m,
    }
}

fn write_outputs(args: &BenchArgs, report: &Report) -> Result<(), BenchError> {
    let write = |what: &'static str, path: &PathBuf, text: String| {
        std::fs::write(path, text).map_err(|source| BenchError::Output {
            what,
            path: path.clone(),
            source,
        })
    };
    if let Some(path) = &args.hgrm {
        write("hgrm", path, hgrm::render(&report.measurement.latency))?;
    }
    if let Some(path) = &args.json {
        write("JSON", path, report.to_json())?;
    }
    if let Some(path) = &args.svg {
        let title = format!(
            "{} {} ({})",
            report.target,
            report.workload,
            match report.rate_ops {
                Some(rate) => format!("{rate} ops/s"),
                None => "closed loop".to_string(),
            }
        );
        let slo_targets = args.slo.as_ref().map_or(&[][..], |s| &s.targets[..]);
        write(
            "SVG",
            path,
            svg::render(&report.measurement.latency, &title, slo_targets),
        )?;
    }
    Ok(())
}
