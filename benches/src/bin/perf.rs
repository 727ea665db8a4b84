//! `quiver-perf`: measures the embedded engine on a file store, one subcommand per figure of
//! `docs/BENCHMARKS.md`. Every run is bounded by its flags; results are printed as one JSON
//! line on stdout and, with `--out DIR`, saved as JSON and appended to `DIR/results.csv`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use quiver_benches::store::{
    check_range, check_threads, evict_page_cache, frame_bytes, io_err, open_loaded, put_waiting,
    PerfError, Result, StoreSpec,
};
use quiver_benches::workload::{self, median, run_timed, run_until, Phase, Report, Uniform, GROUP};
use quiver_engine::{Durability, Engine, WriteOptions};

/// Longest phase a flag may ask for.
const MAX_SECS: f64 = 3600.0;
/// Most alternating rounds.
const MAX_ROUNDS: usize = 100;
/// Largest store file a flag may ask for.
const MAX_DEVICE_GIB: f64 = 1024.0;

#[derive(Parser)]
#[command(
    name = "quiver-perf",
    about = "Quiver engine measurements on a file store"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Random point gets from the device (post-write cache off): 1 thread, N threads, batches.
    Get(GetArgs),
    /// Latency of get_many(batch) against a single get, alternating.
    Batch(BatchArgs),
    /// Buffered and sync puts/s of fresh keys, alternating with the device's fsync rate.
    Put(PutArgs),
    /// Index bytes and RSS per record (loads the store when it is missing).
    IndexRam(IndexRamArgs),
    /// Write amplification under random overwrites, and get p99 with defragmentation running.
    Defrag(DefragArgs),
    /// Reopen time from a checkpoint against a full scan, alternating.
    Restart(RestartArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Directory of the store files (the same one fio measures).
    #[arg(long, default_value = "/var/tmp/quiver-bench")]
    dir: PathBuf,
    /// Directory for JSON reports and results.csv.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Records in the store.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Value bytes per record.
    #[arg(long, default_value_t = 600)]
    value_bytes: usize,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Alternating rounds; the report gives medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Threads that load a missing store.
    #[arg(long, default_value_t = 2)]
    load_threads: usize,
    /// Seed of the key choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl Common {
    fn check(&self) -> Result<()> {
        check_range("secs", self.secs, 0.05, MAX_SECS)?;
        check_range("rounds", self.rounds as f64, 1.0, MAX_ROUNDS as f64)?;
        quiver_benches::store::check_workload(self.records, self.value_bytes)
    }

    fn phase_time(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }

    /// A store in `dir/name` sized `headroom` times the data (at least 64 MiB).
    fn spec(&self, name: &str, headroom: f64) -> StoreSpec {
        let data = self.records as f64 * frame_bytes(self.value_bytes) as f64;
        let bytes = ((data * headroom) as u64)
            .max(64 << 20)
            .next_multiple_of(1 << 20);
        let mut spec = StoreSpec::new(self.dir.join(name), bytes);
        spec.expected_records = self.records as usize;
        spec
    }

    fn report(&self, bench: &str) -> Report {
        let mut r = Report::new("quiver", bench);
        r.param("records", self.records)
            .param("value_bytes", self.value_bytes)
            .param("secs", self.secs)
            .param("rounds", self.rounds)
            .param("dir", self.dir.display());
        r
    }
}

#[derive(Args)]
struct GetArgs {
    #[command(flatten)]
    c: Common,
    /// Threads doing single gets (reads in flight).
    #[arg(long, default_value_t = 32)]
    threads: usize,
    /// Threads doing get_many batches.
    #[arg(long, default_value_t = 2)]
    batch_threads: usize,
    /// Keys per get_many batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
}

#[derive(Args)]
struct BatchArgs {
    #[command(flatten)]
    c: Common,
    /// Keys per get_many.
    #[arg(long, default_value_t = 100)]
    batch: usize,
}

#[derive(Args)]
struct PutArgs {
    #[command(flatten)]
    c: Common,
    /// Threads doing buffered puts.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Threads doing sync puts.
    #[arg(long, default_value_t = 64)]
    sync_threads: usize,
    /// Seconds of each fsync-rate probe.
    #[arg(long, default_value_t = 2.0)]
    fsync_secs: f64,
    /// Store file size in GiB (fresh keys are appended for every phase of every round).
    #[arg(long, default_value_t = 8.0)]
    device_gib: f64,
}

#[derive(Args)]
struct IndexRamArgs {
    #[command(flatten)]
    c: Common,
}

#[derive(Args)]
struct DefragArgs {
    #[command(flatten)]
    c: Common,
    /// Store file size in MiB; the record count follows from each fill level.
    #[arg(long, default_value_t = 1024)]
    device_mib: u64,
    /// Device fill levels (percent of the store) at which write amplification is measured.
    #[arg(long, value_delimiter = ',', default_value = "50,80")]
    fills: Vec<u8>,
    /// Overwrites per fill level, as a multiple of the record count.
    #[arg(long, default_value_t = 3.0)]
    overwrite_x: f64,
    /// Longest overwrite phase in seconds.
    #[arg(long, default_value_t = 120.0)]
    max_overwrite_secs: f64,
    /// Threads doing overwrites.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Reader threads of the latency test.
    #[arg(long, default_value_t = 4)]
    readers: usize,
}

#[derive(Args)]
struct RestartArgs {
    #[command(flatten)]
    c: Common,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Get(a) => get(a),
        Cmd::Batch(a) => batch(a),
        Cmd::Put(a) => put(a),
        Cmd::IndexRam(a) => index_ram(a),
        Cmd::Defrag(a) => defrag(a),
        Cmd::Restart(a) => restart(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quiver-perf: {e}");
            ExitCode::from(2)
        }
    }
}

fn emit(r: &Report, c: &Common) -> Result<()> {
    let out = c.out.as_deref();
    r.emit(out).map_err(io_err(out.unwrap_or(Path::new("."))))?;
    Ok(())
}

/// One get of a random record; 1 when it came back whole, 0 otherwise.
fn one_get(e: &Engine, u: &mut Uniform, value_bytes: usize) -> u64 {
    let k = workload::key(u.next_index());
    match e.get(GROUP, &k) {
        Ok(Some(r)) if r.value.len() == value_bytes => 1,
        _ => 0,
    }
}

/// One get_many of `n` random records; the number that came back whole.
fn many_get(e: &Engine, u: &mut Uniform, n: usize, value_bytes: usize) -> u64 {
    let keys: Vec<[u8; workload::KEY_BYTES]> =
        (0..n).map(|_| workload::key(u.next_index())).collect();
    let refs: Vec<(u32, &[u8])> = keys.iter().map(|k| (GROUP, &k[..])).collect();
    match e.get_many(&refs) {
        Ok(v) => v
            .iter()
            .filter(|r| r.as_ref().is_some_and(|r| r.value.len() == value_bytes))
            .count() as u64,
        Err(_) => 0,
    }
}

/// Per-thread key choosers, seeded apart.
fn choosers(c: &Common, threads: usize, salt: u64) -> Vec<parking_lot_free::Cell> {
    (0..threads)
        .map(|t| {
            parking_lot_free::Cell::new(Uniform::new(c.seed ^ salt ^ ((t as u64) << 20), c.records))
        })
        .collect()
}

/// A `Uniform` per thread behind a mutex each thread alone takes (no contention).
mod parking_lot_free {
    use std::sync::Mutex;

    pub struct Cell(Mutex<quiver_benches::workload::Uniform>);

    impl Cell {
        pub fn new(u: quiver_benches::workload::Uniform) -> Cell {
            Cell(Mutex::new(u))
        }

        pub fn with<T>(&self, f: impl FnOnce(&mut quiver_benches::workload::Uniform) -> T) -> T {
            f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
        }
    }
}

fn get(a: GetArgs) -> Result<()> {
    a.c.check()?;
    check_threads("threads", a.threads)?;
    check_threads("batch threads", a.batch_threads)?;
    check_range("batch", a.batch as f64, 1.0, 10_000.0)?;
    let spec = a.c.spec("quiver.db", 1.5);
    let (e, load) = open_loaded(&spec, a.c.records, a.c.value_bytes, a.c.load_threads)?;
    let vb = a.c.value_bytes;
    let d = a.c.phase_time();
    let (mut qd1, mut qdn, mut many) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..a.c.rounds {
        let salt = (round as u64) << 40;
        let ch = choosers(&a.c, 1, salt);
        qd1.push(run_timed(1, d, |t, _| ch[t].with(|u| one_get(&e, u, vb))));
        let ch = choosers(&a.c, a.threads, salt | 1);
        qdn.push(run_timed(a.threads, d, |t, _| {
            ch[t].with(|u| one_get(&e, u, vb))
        }));
        let ch = choosers(&a.c, a.batch_threads, salt | 2);
        many.push(run_timed(a.batch_threads, d, |t, _| {
            ch[t].with(|u| many_get(&e, u, a.batch, vb))
        }));
    }
    let stats = e.stats();
    let rss = workload::rss_bytes();
    e.close()?;
    let mut r = a.c.report("get");
    r.metric("rss_bytes", rss as f64).metric(
        "index_bytes_per_record",
        stats.index_bytes as f64 / stats.records.max(1) as f64,
    );
    r.param("threads", a.threads)
        .param("batch_threads", a.batch_threads)
        .param("batch", a.batch)
        .param("backend", &stats.backend)
        .metric("load_s", load.as_secs_f64())
        .metric("memory_reads", stats.memory_reads as f64)
        .metric("device_reads", stats.device_reads as f64);
    medians(&mut r, "get_qd1", &qd1);
    medians(&mut r, &format!("get_t{}", a.threads), &qdn);
    medians(&mut r, &format!("get_many{}_keys", a.batch), &many);
    emit(&r, &a.c)
}

/// Median over rounds of ops/s, p50, p99 and the error total.
fn medians(r: &mut Report, prefix: &str, phases: &[Phase]) {
    let m = |f: &dyn Fn(&Phase) -> f64| median(&phases.iter().map(f).collect::<Vec<_>>());
    r.metric(&format!("{prefix}_ops_s"), m(&|p| p.ops_per_s()));
    r.metric(&format!("{prefix}_p50_us"), m(&|p| p.p_us(0.50)));
    r.metric(&format!("{prefix}_p99_us"), m(&|p| p.p_us(0.99)));
    r.metric(
        &format!("{prefix}_errors"),
        phases.iter().map(|p| p.errors as f64).sum(),
    );
}

fn batch(a: BatchArgs) -> Result<()> {
    a.c.check()?;
    check_range("batch", a.batch as f64, 1.0, 10_000.0)?;
    let spec = a.c.spec("quiver.db", 1.5);
    let (e, _) = open_loaded(&spec, a.c.records, a.c.value_bytes, a.c.load_threads)?;
    let vb = a.c.value_bytes;
    let d = a.c.phase_time();
    let (mut single, mut many) = (Vec::new(), Vec::new());
    for round in 0..a.c.rounds {
        let ch = choosers(&a.c, 1, (round as u64) << 40);
        single.push(run_timed(1, d, |t, _| ch[t].with(|u| one_get(&e, u, vb))));
        many.push(run_timed(1, d, |t, _| {
            ch[t].with(|u| many_get(&e, u, a.batch, vb))
        }));
    }
    e.close()?;
    let ratio = |q: f64| {
        let v: Vec<f64> = single
            .iter()
            .zip(&many)
            .map(|(s, m)| m.p_us(q) / s.p_us(q))
            .collect();
        median(&v)
    };
    let mut r = a.c.report("batch");
    r.param("batch", a.batch);
    medians(&mut r, "single_get", &single);
    medians(&mut r, &format!("get_many{}", a.batch), &many);
    r.metric("ratio_p50", ratio(0.50))
        .metric("ratio_p99", ratio(0.99));
    emit(&r, &a.c)
}

fn put(a: PutArgs) -> Result<()> {
    a.c.check()?;
    check_threads("threads", a.threads)?;
    check_threads("sync threads", a.sync_threads)?;
    check_range("fsync secs", a.fsync_secs, 0.05, MAX_SECS)?;
    check_range("device GiB", a.device_gib, 0.0625, MAX_DEVICE_GIB)?;
    let mut spec = StoreSpec::new(
        a.c.dir.join("put.db"),
        (a.device_gib * (1u64 << 30) as f64) as u64,
    );
    spec.expected_records = a.c.records as usize;
    spec.remove()?;
    std::fs::create_dir_all(&a.c.dir).map_err(io_err(&a.c.dir))?;
    let e = spec.open()?;
    let next = AtomicU64::new(0);
    let vb = a.c.value_bytes;
    let d = a.c.phase_time();
    let fsync_d = Duration::from_secs_f64(a.fsync_secs);
    let writer = |opts: WriteOptions| {
        let next = &next;
        let e = &e;
        move |_t: usize, _i: u64| -> u64 {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let mut v = Vec::with_capacity(vb);
            workload::value(i, 0, vb, &mut v);
            u64::from(e.put(GROUP, &workload::key(i), &v, &opts).is_ok())
        }
    };
    let sync = WriteOptions {
        durability: Some(Durability::Sync),
        ttl_s: None,
    };
    let (mut fs, mut buf, mut syn, mut ratio) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..a.c.rounds {
        let f1 = workload::fsync_loop(&a.c.dir, fsync_d).map_err(io_err(&a.c.dir))?;
        buf.push(run_timed(a.threads, d, writer(WriteOptions::default())));
        e.flush()?;
        let f2 = workload::fsync_loop(&a.c.dir, fsync_d).map_err(io_err(&a.c.dir))?;
        let s = run_timed(a.sync_threads, d, writer(sync));
        ratio.push(s.ops_per_s() / ((f1.ops_per_s() + f2.ops_per_s()) / 2.0));
        fs.extend([f1, f2]);
        syn.push(s);
    }
    let stats = e.stats();
    e.close()?;
    spec.remove()?;
    let mut r = a.c.report("put");
    r.param("threads", a.threads)
        .param("sync_threads", a.sync_threads);
    medians(&mut r, "put_buffered", &buf);
    medians(&mut r, "put_sync", &syn);
    medians(&mut r, "fsync", &fs);
    r.metric("sync_puts_per_fsync", median(&ratio))
        .metric("flushes", stats.flushes as f64)
        .metric("puts", stats.puts as f64);
    emit(&r, &a.c)
}

fn index_ram(a: IndexRamArgs) -> Result<()> {
    a.c.check()?;
    let spec = a.c.spec("small.db", 1.5);
    let rss0 = workload::rss_bytes();
    let (e, load) = open_loaded(&spec, a.c.records, a.c.value_bytes, a.c.load_threads)?;
    let rss1 = workload::rss_bytes();
    let s = e.stats();
    let mode = e.recovery_report().mode.clone();
    e.close()?;
    let n = s.records.max(1) as f64;
    let mut r = a.c.report("index-ram");
    r.param(
        "opened_by",
        if load.is_zero() {
            mode
        } else {
            "load".to_string()
        },
    )
    .metric("records", s.records as f64)
    .metric("index_bytes", s.index_bytes as f64)
    .metric("index_bytes_per_record", s.index_bytes as f64 / n)
    .metric("rss_bytes", rss1 as f64)
    .metric("rss_delta_per_record", rss1.saturating_sub(rss0) as f64 / n)
    .metric("load_s", load.as_secs_f64());
    emit(&r, &a.c)
}

fn restart(a: RestartArgs) -> Result<()> {
    a.c.check()?;
    let spec = a.c.spec("small.db", 1.5);
    let (e, load) = open_loaded(&spec, a.c.records, a.c.value_bytes, a.c.load_threads)?;
    e.close()?;
    let (mut ckpt, mut scan, mut mbs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..a.c.rounds {
        evict_page_cache(&spec.checkpoint_path());
        let (t, e) = timed_open(&spec)?;
        expect_mode(&e, "checkpoint", a.c.records)?;
        ckpt.push(t);
        e.close()?;
        spec.remove_checkpoint()?;
        let (t, e) = timed_open(&spec)?;
        expect_mode(&e, "scan", a.c.records)?;
        let rep = e.recovery_report().clone();
        scan.push(t);
        mbs.push(rep.bytes_scanned as f64 / 1e6 / t);
        e.close()?;
    }
    let mut r = a.c.report("restart");
    r.metric("load_s", load.as_secs_f64())
        .metric("restart_checkpoint_s", median(&ckpt))
        .metric("restart_scan_s", median(&scan))
        .metric("scan_mb_s", median(&mbs))
        .metric("records", a.c.records as f64)
        .metric("file_mb", spec.device_bytes as f64 / 1e6);
    emit(&r, &a.c)
}

trait RemoveCheckpoint {
    fn remove_checkpoint(&self) -> Result<()>;
}

impl RemoveCheckpoint for StoreSpec {
    fn remove_checkpoint(&self) -> Result<()> {
        let p = self.checkpoint_path();
        std::fs::remove_file(&p).map_err(io_err(&p))
    }
}

fn timed_open(spec: &StoreSpec) -> Result<(f64, Engine)> {
    let t0 = Instant::now();
    let e = spec.open()?;
    Ok((t0.elapsed().as_secs_f64(), e))
}

fn expect_mode(e: &Engine, mode: &str, records: u64) -> Result<()> {
    let got = &e.recovery_report().mode;
    let n = e.stats().records;
    if got != mode || n != records {
        return Err(PerfError::Check(format!(
            "reopen was by {got} with {n} records, expected {mode} with {records}"
        )));
    }
    Ok(())
}

fn defrag(a: DefragArgs) -> Result<()> {
    a.c.check()?;
    check_range(
        "device MiB",
        a.device_mib as f64,
        64.0,
        MAX_DEVICE_GIB * 1024.0,
    )?;
    check_range("overwrite x", a.overwrite_x, 0.01, 100.0)?;
    check_range("max overwrite secs", a.max_overwrite_secs, 0.1, MAX_SECS)?;
    check_threads("threads", a.threads)?;
    check_threads("readers", a.readers)?;
    let mut r = a.c.report("defrag");
    r.param("device_mib", a.device_mib)
        .param("overwrite_x", a.overwrite_x);
    for &fill in &a.fills {
        check_range("fill percent", fill as f64, 1.0, 95.0)?;
        write_amp(&a, fill, &mut r)?;
    }
    defrag_latency(&a, &mut r)?;
    emit(&r, &a.c)
}

fn records_at_fill(a: &DefragArgs, fill: u8) -> u64 {
    (a.device_mib << 20) * fill as u64 / 100 / frame_bytes(a.c.value_bytes)
}

/// Loads the store to `fill` percent and overwrites uniformly random records with the
/// background defragmentation running; write amplification is measured on the overwrites.
fn write_amp(a: &DefragArgs, fill: u8, r: &mut Report) -> Result<()> {
    let n = records_at_fill(a, fill);
    let spec = StoreSpec::new(a.c.dir.join("defrag.db"), a.device_mib << 20);
    spec.remove()?;
    let (e, _) = open_loaded(&spec, n, a.c.value_bytes, a.c.load_threads)?;
    let s0 = e.stats();
    let total = (n as f64 * a.overwrite_x) as u64;
    let next = AtomicU64::new(0);
    let waited_us = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(a.max_overwrite_secs);
    std::thread::scope(|s| {
        for t in 0..a.threads {
            let (e, next, waited_us, failed) = (&e, &next, &waited_us, &failed);
            s.spawn(move || {
                let mut u = Uniform::new(a.c.seed ^ (t as u64) << 32 ^ fill as u64, n);
                let mut v = Vec::with_capacity(a.c.value_bytes);
                while next.fetch_add(1, Ordering::Relaxed) < total && t0.elapsed() < limit {
                    let i = u.next_index();
                    workload::value(i, 1, a.c.value_bytes, &mut v);
                    match put_waiting(e, &workload::key(i), &v, &WriteOptions::default()) {
                        Ok(w) => waited_us.fetch_add(w.as_micros() as u64, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
    });
    let elapsed = t0.elapsed().as_secs_f64();
    e.flush()?;
    let s1 = e.stats();
    e.close()?;
    spec.remove()?;
    let user = (s1.user_bytes_written - s0.user_bytes_written) as f64;
    let dev = (s1.device_bytes_written - s0.device_bytes_written) as f64;
    let done = next.load(Ordering::Relaxed).min(total);
    let p = format!("fill{fill}");
    r.metric(&format!("{p}_records"), n as f64)
        .metric(&format!("{p}_overwrites"), done as f64)
        .metric(&format!("{p}_overwrite_ops_s"), done as f64 / elapsed)
        .metric(&format!("{p}_write_amp"), dev / user.max(1.0))
        .metric(
            &format!("{p}_defrag_blocks_freed"),
            (s1.defrag_blocks_freed - s0.defrag_blocks_freed) as f64,
        )
        .metric(
            &format!("{p}_full_wait_s"),
            waited_us.load(Ordering::Relaxed) as f64 / 1e6,
        )
        .metric(
            &format!("{p}_failed_puts"),
            failed.load(Ordering::Relaxed) as f64,
        );
    Ok(())
}

/// Device fill of the defragmentation latency test.
const LATENCY_FILL_PCT: u8 = 40;

/// Get p99 of `readers` threads without defragmentation, then while `Engine::defragment`
/// (the same pass the background worker runs, with its throttle) works through blocks left
/// under the threshold by random overwrites; alternating, one fragmentation per round.
fn defrag_latency(a: &DefragArgs, r: &mut Report) -> Result<()> {
    // 40% live plus 80% of it overwritten leaves 72% in use, under the 95% write floor.
    let n = records_at_fill(a, LATENCY_FILL_PCT);
    let mut spec = StoreSpec::new(a.c.dir.join("defrag-lat.db"), a.device_mib << 20);
    spec.background = false;
    spec.remove()?;
    let (e, _) = open_loaded(&spec, n, a.c.value_bytes, a.c.load_threads)?;
    let vb = a.c.value_bytes;
    let (mut quiet, mut busy, mut freed) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..a.c.rounds {
        fragment(&e, n, vb, round as u64 + 1)?;
        let ch = choosers(&a.c, a.readers, (round as u64) << 40);
        quiet.push(run_timed(a.readers, a.c.phase_time(), |t, _| {
            ch[t].with(|u| ranged_get(&e, u, n, vb))
        }));
        let done = AtomicBool::new(false);
        let (phase, blocks) = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let res = e.defragment(usize::MAX);
                done.store(true, Ordering::Relaxed);
                res
            });
            let p = run_until(
                a.readers,
                Duration::from_secs_f64(MAX_SECS),
                Some(&done),
                |t, _| ch[t].with(|u| ranged_get(&e, u, n, vb)),
            );
            (p, worker.join().expect("defragment thread panicked"))
        });
        freed.push(blocks? as f64);
        busy.push(phase);
    }
    e.close()?;
    spec.remove()?;
    medians(r, "get_no_defrag", &quiet);
    medians(r, "get_during_defrag", &busy);
    let ratios: Vec<f64> = quiet
        .iter()
        .zip(&busy)
        .map(|(q, b)| b.p_us(0.99) / q.p_us(0.99))
        .collect();
    r.metric("p99_ratio_during_defrag", median(&ratios))
        .metric(
            "defrag_phase_s",
            median(
                &busy
                    .iter()
                    .map(|p| p.elapsed.as_secs_f64())
                    .collect::<Vec<_>>(),
            ),
        )
        .metric("defrag_blocks_per_round", median(&freed));
    Ok(())
}

/// A get of a random record among the first `n` (the chooser's range may be wider).
fn ranged_get(e: &Engine, u: &mut Uniform, n: u64, vb: usize) -> u64 {
    let k = workload::key(u.next_index() % n.max(1));
    match e.get(GROUP, &k) {
        Ok(Some(rec)) if rec.value.len() == vb => 1,
        _ => 0,
    }
}

/// Overwrites 80% as many random records as there are, leaving most blocks under 50% live.
fn fragment(e: &Engine, n: u64, vb: usize, version: u64) -> Result<()> {
    let mut u = Uniform::new(version, n);
    let mut v = Vec::with_capacity(vb);
    for _ in 0..n * 4 / 5 {
        let i = u.next_index();
        workload::value(i, version, vb, &mut v);
        put_waiting(e, &workload::key(i), &v, &WriteOptions::default())?;
    }
    e.flush()?;
    Ok(())
}
