//! `rocksdb-perf`: the RocksDB side of Quiver's comparisons. Same records, keys, key choice
//! and report format as `quiver-perf` (the workload module is shared through `#[path]`);
//! direct I/O for reads, flushes and compactions; a block cache far smaller than the data.

#[path = "../../src/workload.rs"]
#[allow(dead_code)]
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, DBCompressionType, Options, WriteOptions, DB,
    DEFAULT_COLUMN_FAMILY_NAME,
};
use workload::{median, run_timed, Phase, Report, Uniform};

const MAX_SECS: f64 = 3600.0;
const MAX_ROUNDS: usize = 100;

/// What can go wrong in a run.
#[derive(Debug)]
enum PerfError {
    Limit {
        what: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    Rocks(rocksdb::Error),
    NoColumnFamily(&'static str),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl std::fmt::Display for PerfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PerfError::Limit {
                what,
                value,
                min,
                max,
            } => {
                write!(f, "{what} is {value}, outside the limit of {min} to {max}")
            }
            PerfError::Rocks(e) => write!(f, "rocksdb: {e}"),
            PerfError::NoColumnFamily(name) => {
                write!(
                    f,
                    "rocksdb: the database has no handle for column family {name}"
                )
            }
            PerfError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for PerfError {}

impl From<rocksdb::Error> for PerfError {
    fn from(e: rocksdb::Error) -> PerfError {
        PerfError::Rocks(e)
    }
}

type Result<T> = std::result::Result<T, PerfError>;

fn check_range(what: &'static str, value: f64, min: f64, max: f64) -> Result<()> {
    if value.is_nan() || value < min || value > max {
        return Err(PerfError::Limit {
            what,
            value,
            min,
            max,
        });
    }
    Ok(())
}

fn check_threads(what: &'static str, n: usize) -> Result<()> {
    check_range(what, n as f64, 1.0, workload::MAX_THREADS as f64)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PerfError + '_ {
    move |source| PerfError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Parser)]
#[command(
    name = "rocksdb-perf",
    about = "RocksDB measurements matching quiver-perf"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Random point gets (N threads) and multi_get batches; RSS per record.
    Get(GetArgs),
    /// Buffered (WAL, no sync) and sync puts/s of fresh keys.
    Put(PutArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Directory of the databases (the same one Quiver and fio use).
    #[arg(long, default_value = "/var/tmp/quiver-bench")]
    dir: PathBuf,
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    #[arg(long, default_value_t = 600)]
    value_bytes: usize,
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 2)]
    load_threads: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Block cache in MiB (keep it far below the data).
    #[arg(long, default_value_t = 8)]
    cache_mib: usize,
}

impl Common {
    fn check(&self) -> Result<()> {
        check_range("secs", self.secs, 0.05, MAX_SECS)?;
        check_range("rounds", self.rounds as f64, 1.0, MAX_ROUNDS as f64)?;
        check_range(
            "records",
            self.records as f64,
            1.0,
            workload::MAX_RECORDS as f64,
        )?;
        check_range(
            "value bytes",
            self.value_bytes as f64,
            1.0,
            workload::MAX_VALUE_BYTES as f64,
        )?;
        check_threads("load threads", self.load_threads)?;
        check_range("cache MiB", self.cache_mib as f64, 1.0, 65536.0)
    }

    fn report(&self, bench: &str) -> Report {
        let mut r = Report::new("rocksdb", bench);
        r.param("records", self.records)
            .param("value_bytes", self.value_bytes)
            .param("secs", self.secs)
            .param("rounds", self.rounds)
            .param("cache_mib", self.cache_mib)
            .param("dir", self.dir.display());
        r
    }
}

#[derive(Args)]
struct GetArgs {
    #[command(flatten)]
    c: Common,
    #[arg(long, default_value_t = 32)]
    threads: usize,
    #[arg(long, default_value_t = 2)]
    batch_threads: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
}

#[derive(Args)]
struct PutArgs {
    #[command(flatten)]
    c: Common,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 64)]
    sync_threads: usize,
}

fn options(c: &Common) -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.set_use_direct_reads(true);
    o.set_use_direct_io_for_flush_and_compaction(true);
    o.set_compression_type(DBCompressionType::None);
    o.increase_parallelism(2);
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(&Cache::new_lru_cache(c.cache_mib << 20));
    t.set_bloom_filter(10.0, false);
    o.set_block_based_table_factory(&t);
    o
}

/// Opens (creating if missing) the database at `path` with [`options`]. The default column
/// family is named explicitly, with the same options, so that `cf_handle` knows it: a plain
/// `DB::open` registers no handle at all, not even the default one, and the batched
/// `multi_get` needs a handle.
fn open_db(c: &Common, path: &Path) -> Result<DB> {
    let o = options(c);
    let cf = o.clone();
    Ok(DB::open_cf_with_opts(
        &o,
        path,
        [(DEFAULT_COLUMN_FAMILY_NAME, cf)],
    )?)
}

fn main() -> ExitCode {
    let result = match Cli::parse().cmd {
        Cmd::Get(a) => get(a),
        Cmd::Put(a) => put(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rocksdb-perf: {e}");
            ExitCode::from(2)
        }
    }
}

fn emit(r: &Report, c: &Common) -> Result<()> {
    let out = c.out.as_deref();
    r.emit(out).map_err(io_err(out.unwrap_or(Path::new("."))))?;
    Ok(())
}

/// Opens the read database, loading records `0..records` (then flushing and compacting
/// fully, RocksDB's best read shape) unless a marker says it holds exactly that.
fn open_loaded(c: &Common) -> Result<(DB, f64)> {
    let path = c.dir.join("rocksdb-read");
    let marker = path.join(format!(
        "QUIVER-BENCH-LOADED-{}-{}",
        c.records, c.value_bytes
    ));
    if marker.exists() {
        return Ok((open_db(c, &path)?, 0.0));
    }
    if path.exists() {
        std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
    }
    std::fs::create_dir_all(&path).map_err(io_err(&path))?;
    let db = open_db(c, &path)?;
    let t0 = Instant::now();
    let next = AtomicU64::new(0);
    let mut w = WriteOptions::default();
    w.disable_wal(true);
    std::thread::scope(|s| -> Result<()> {
        let hs: Vec<_> = (0..c.load_threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut v = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= c.records {
                            return Ok(());
                        }
                        workload::value(i, 0, c.value_bytes, &mut v);
                        db.put_opt(workload::key(i), &v, &w)?;
                    }
                })
            })
            .collect();
        hs.into_iter()
            .try_for_each(|h| h.join().expect("load thread panicked"))
    })?;
    db.flush()?;
    db.compact_range::<&[u8], &[u8]>(None, None);
    let took = t0.elapsed().as_secs_f64();
    std::fs::write(&marker, b"").map_err(io_err(&marker))?;
    Ok((db, took))
}

fn choosers(c: &Common, threads: usize, salt: u64) -> Vec<Mutex<Uniform>> {
    (0..threads)
        .map(|t| Mutex::new(Uniform::new(c.seed ^ salt ^ ((t as u64) << 20), c.records)))
        .collect()
}

fn with<T>(m: &Mutex<Uniform>, f: impl FnOnce(&mut Uniform) -> T) -> T {
    f(&mut m.lock().unwrap_or_else(|p| p.into_inner()))
}

fn one_get(db: &DB, u: &mut Uniform, vb: usize) -> u64 {
    match db.get_pinned(workload::key(u.next_index())) {
        Ok(Some(v)) if v.len() == vb => 1,
        _ => 0,
    }
}

/// One batched multi_get of `n` random records; the number that came back whole.
fn many_get(db: &DB, cf: &ColumnFamily, u: &mut Uniform, n: usize, vb: usize) -> u64 {
    let keys: Vec<[u8; workload::KEY_BYTES]> =
        (0..n).map(|_| workload::key(u.next_index())).collect();
    db.batched_multi_get_cf(cf, keys.iter(), false)
        .into_iter()
        .filter(|r| matches!(r, Ok(Some(v)) if v.len() == vb))
        .count() as u64
}

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

fn get(a: GetArgs) -> Result<()> {
    a.c.check()?;
    check_threads("threads", a.threads)?;
    check_threads("batch threads", a.batch_threads)?;
    check_range("batch", a.batch as f64, 1.0, 10_000.0)?;
    let rss0 = workload::rss_bytes();
    let (db, load) = open_loaded(&a.c)?;
    let cf = db
        .cf_handle(DEFAULT_COLUMN_FAMILY_NAME)
        .ok_or(PerfError::NoColumnFamily(DEFAULT_COLUMN_FAMILY_NAME))?;
    let vb = a.c.value_bytes;
    let d = Duration::from_secs_f64(a.c.secs);
    let (mut qd1, mut qdn, mut many) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..a.c.rounds {
        let salt = (round as u64) << 40;
        let ch = choosers(&a.c, 1, salt);
        qd1.push(run_timed(1, d, |t, _| {
            with(&ch[t], |u| one_get(&db, u, vb))
        }));
        let ch = choosers(&a.c, a.threads, salt | 1);
        qdn.push(run_timed(a.threads, d, |t, _| {
            with(&ch[t], |u| one_get(&db, u, vb))
        }));
        let ch = choosers(&a.c, a.batch_threads, salt | 2);
        many.push(run_timed(a.batch_threads, d, |t, _| {
            with(&ch[t], |u| many_get(&db, cf, u, a.batch, vb))
        }));
    }
    let rss1 = workload::rss_bytes();
    let sst = db
        .property_int_value("rocksdb.total-sst-files-size")?
        .unwrap_or(0);
    drop(db);
    let mut r = a.c.report("get");
    r.param("threads", a.threads)
        .param("batch_threads", a.batch_threads)
        .param("batch", a.batch);
    r.metric("load_s", load)
        .metric("rss_bytes", rss1 as f64)
        .metric(
            "rss_delta_per_record",
            rss1.saturating_sub(rss0) as f64 / a.c.records as f64,
        )
        .metric("sst_bytes_per_record", sst as f64 / a.c.records as f64);
    medians(&mut r, "get_qd1", &qd1);
    medians(&mut r, &format!("get_t{}", a.threads), &qdn);
    medians(&mut r, &format!("get_many{}_keys", a.batch), &many);
    emit(&r, &a.c)
}

fn put(a: PutArgs) -> Result<()> {
    a.c.check()?;
    check_threads("threads", a.threads)?;
    check_threads("sync threads", a.sync_threads)?;
    let path = a.c.dir.join("rocksdb-put");
    if path.exists() {
        std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
    }
    std::fs::create_dir_all(&path).map_err(io_err(&path))?;
    let db = DB::open(&options(&a.c), &path)?;
    let next = AtomicU64::new(0);
    let vb = a.c.value_bytes;
    let d = Duration::from_secs_f64(a.c.secs);
    let writer = |sync: bool| {
        let (db, next) = (&db, &next);
        move |_t: usize, _i: u64| -> u64 {
            let mut w = WriteOptions::default();
            w.set_sync(sync);
            let i = next.fetch_add(1, Ordering::Relaxed);
            let mut v = Vec::with_capacity(vb);
            workload::value(i, 0, vb, &mut v);
            u64::from(db.put_opt(workload::key(i), &v, &w).is_ok())
        }
    };
    let (mut buf, mut syn) = (Vec::new(), Vec::new());
    for _ in 0..a.c.rounds {
        buf.push(run_timed(a.threads, d, writer(false)));
        syn.push(run_timed(a.sync_threads, d, writer(true)));
    }
    drop(db);
    std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
    let mut r = a.c.report("put");
    r.param("threads", a.threads)
        .param("sync_threads", a.sync_threads);
    medians(&mut r, "put_buffered", &buf);
    medians(&mut r, "put_sync", &syn);
    emit(&r, &a.c)
}
