//! `quiver-training-bench load`: builds the store and files that `scripts/training-set-bench.sh`
//! measures: two feature groups keeping history (`user`, string keys; `shop`, i64 keys; two
//! features each) filled with random versions (late events, backfills), the same history as
//! CSV files for DuckDB (one row per put, like a Feast offline source), and a spine CSV. It
//! prints one JSON line: the load's rate and the history's device bytes per version, with and
//! without the write time, against the raw bytes of the values.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use quiver_benches::store::{check_range, io_err, PerfError, Result};
use quiver_engine::feature::{
    EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Value,
};
use quiver_engine::history::codec::{decode_segment, Head, Version};
use quiver_engine::history::{history_group, AsOf, HistoryPolicy};
use quiver_engine::{Config, ScanCursor, Store};
use quiver_wal::format::{padded_frame_len, RECORD_HEADER_BYTES};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const DAY_MS: u64 = 86_400_000;
/// Event times span this many days before the load.
const SPAN_DAYS: u64 = 30;
/// Most versions a run may ask for.
const MAX_VERSIONS: f64 = 100_000_000.0;

#[derive(Parser)]
#[command(
    name = "quiver-training-bench",
    about = "Builds the store, history files and spine of the training-set benchmark"
)]
struct Cli {
    /// Directory for store.db, user_hist.csv, shop_hist.csv and spine.csv.
    #[arg(long, default_value = "/var/tmp/quiver-training-bench")]
    dir: PathBuf,
    /// Entities per group.
    #[arg(long, default_value_t = 10_000)]
    entities: u64,
    /// Versions (feature values) over both groups; each put writes two.
    #[arg(long, default_value_t = 1_000_000)]
    versions: u64,
    /// Rows of the spine.
    #[arg(long, default_value_t = 100_000)]
    spine_rows: u64,
    /// Size of the store file, GiB (zeroed at creation: 1 for 1M versions, 4 for 10M).
    #[arg(long, default_value_t = 1.0)]
    device_gib: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Instead of loading: opens the store of the last load and measures this many as-of reads
    /// of a recent time against as many plain gets, one at a time, alternating A,B per round.
    #[arg(long)]
    reads: Option<u64>,
    /// Rounds of `--reads`.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Threads writing the puts (each entity's puts stay in one thread, in order).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> ExitCode {
    match run(&Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quiver-training-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn spec(name: &str, key_type: KeyType, features: [&str; 2]) -> GroupSpec {
    let mut spec = GroupSpec::new(
        name,
        key_type,
        vec![
            FeatureSpec::new(features[0], FeatureType::I64),
            FeatureSpec::new(features[1], FeatureType::F64),
        ],
    );
    spec.ttl_s = Some(7 * 86_400);
    spec.history = Some(HistoryPolicy::retention(365 * 86_400));
    spec
}

fn writer(path: &Path, header: &str) -> Result<BufWriter<File>> {
    let mut w = BufWriter::new(File::create(path).map_err(io_err(path))?);
    writeln!(w, "{header}").map_err(io_err(path))?;
    Ok(w)
}

fn run(cli: &Cli) -> Result<()> {
    if let Some(reads) = cli.reads {
        check_range("--reads", reads as f64, 1.0, 10_000_000.0)?;
        return measure_reads(cli, reads);
    }
    check_range("--entities", cli.entities as f64, 1.0, 100_000_000.0)?;
    check_range("--versions", cli.versions as f64, 4.0, MAX_VERSIONS)?;
    check_range("--spine-rows", cli.spine_rows as f64, 1.0, MAX_VERSIONS)?;
    check_range("--device-gib", cli.device_gib, 0.1, 1024.0)?;
    std::fs::create_dir_all(&cli.dir).map_err(io_err(&cli.dir))?;
    let db = cli.dir.join("store.db");
    let _ = std::fs::remove_file(&db);
    let store = Store::open(Config::file(
        &db,
        (cli.device_gib * (1u64 << 30) as f64) as u64,
    ))?;
    store.create_group(spec("user", KeyType::String, ["clicks", "score"]))?;
    store.create_group(spec("shop", KeyType::I64, ["orders", "rating"]))?;
    let now = store.now_ms();
    let t0 = now - SPAN_DAYS * DAY_MS;
    let start = Instant::now();
    let puts = load(cli, &store, t0, now)?;
    store.flush()?;
    let load_s = start.elapsed().as_secs_f64();
    write_spine(cli, t0)?;
    let bytes = history_bytes(&store)?;
    store.close()?;
    let versions = puts * 2;
    let doc = serde_json::json!({
        "bench": "training-set-load",
        "entities_per_group": cli.entities,
        "versions": versions,
        "puts": puts,
        "load_s": load_s,
        "puts_per_s": puts as f64 / load_s,
        "history_records": bytes.records,
        "history_device_bytes_per_version": bytes.frames as f64 / bytes.versions as f64,
        "write_time_bytes_per_version": bytes.write_time as f64 / bytes.versions as f64,
        "history_device_bytes_per_version_without_write_time":
            (bytes.frames - bytes.write_time) as f64 / bytes.versions as f64,
        "raw_value_bytes_per_version": 8,
        "versions_seen": bytes.versions,
    });
    println!("{doc}");
    Ok(())
}

/// Writes `cli.versions / 2` puts over both groups in random order: event times uniform over
/// the span, written 1 s to 1 h later, 5% backfilled up to 10 days later. Returns the puts.
fn load(cli: &Cli, store: &Store, t0: u64, now: u64) -> Result<u64> {
    let mut rng = SmallRng::seed_from_u64(cli.seed);
    let paths = [cli.dir.join("user_hist.csv"), cli.dir.join("shop_hist.csv")];
    let mut files = [
        writer(&paths[0], "entity,event_time,write_time,clicks,score")?,
        writer(&paths[1], "entity,event_time,write_time,orders,rating")?,
    ];
    let puts = cli.versions / 2;
    let mut chunk: Vec<Put> = Vec::with_capacity(LOAD_CHUNK);
    for i in 0..puts {
        let g = rng.gen_range(0..2usize);
        let e = rng.gen_range(0..cli.entities);
        let event = t0 + rng.gen_range(0..SPAN_DAYS * DAY_MS);
        let lag = if rng.gen_bool(0.05) {
            rng.gen_range(0..10 * DAY_MS)
        } else {
            rng.gen_range(1_000..3_600_000)
        };
        let write = (event + lag).min(now);
        let a = rng.gen_range(0..1_000i64);
        let b = rng.gen_range(0..100_000) as f64 / 64.0;
        let entity = match g {
            0 => format!("u{e}"),
            _ => e.to_string(),
        };
        writeln!(files[g], "{entity},{event},{write},{a},{b}").map_err(io_err(&paths[g]))?;
        chunk.push(Put {
            group: g,
            entity: e,
            event,
            write,
            a,
            b,
        });
        if chunk.len() == LOAD_CHUNK || i + 1 == puts {
            write_chunk(store, &chunk, cli.threads.clamp(1, 64))?;
            chunk.clear();
        }
    }
    for (f, p) in files.iter_mut().zip(&paths) {
        f.flush().map_err(io_err(p))?;
    }
    Ok(puts)
}

/// Puts generated before they are written, a chunk at a time.
const LOAD_CHUNK: usize = 65_536;

struct Put {
    group: usize,
    entity: u64,
    event: u64,
    write: u64,
    a: i64,
    b: f64,
}

/// Writes a chunk of puts on `threads` threads, each entity's on one of them, in order.
fn write_chunk(store: &Store, chunk: &[Put], threads: usize) -> Result<()> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<()> {
                    for p in chunk.iter().filter(|p| p.entity as usize % threads == t) {
                        let (group, key, names) = match p.group {
                            0 => (
                                "user",
                                EntityKey::String(format!("u{}", p.entity)),
                                ["clicks", "score"],
                            ),
                            _ => (
                                "shop",
                                EntityKey::I64(p.entity as i64),
                                ["orders", "rating"],
                            ),
                        };
                        let opts = PutOptions {
                            write_time_ms: Some(p.write),
                            ..PutOptions::default()
                        };
                        let values = [(names[0], Value::I64(p.a)), (names[1], Value::F64(p.b))];
                        store.put(group, &key, p.event, &values, &opts)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a load thread panicked"))
    })
}

/// Reads of random `user` entities (both features), one at a time on a store just opened
/// (O_DIRECT: every record comes from the device): plain gets of the online row against
/// as-of reads of the current time (the history's head and directory). Prints one JSON line
/// per round and kind, A,B,A,B.
fn measure_reads(cli: &Cli, reads: u64) -> Result<()> {
    let db = cli.dir.join("store.db");
    let size = std::fs::metadata(&db).map_err(io_err(&db))?.len();
    let store = Store::open(Config::file(&db, size))?;
    let features = [
        FeatureRef::new("user", "clicks"),
        FeatureRef::new("user", "score"),
    ];
    let mut rng = SmallRng::seed_from_u64(cli.seed ^ 0xa50f);
    for round in 1..=cli.rounds {
        for kind in ["get", "as_of"] {
            let reads_before = store.stats().device_reads;
            let mut us: Vec<f64> = Vec::with_capacity(reads as usize);
            let start = Instant::now();
            for _ in 0..reads {
                let key = EntityKey::String(format!("u{}", rng.gen_range(0..cli.entities)));
                let t = Instant::now();
                let values = match kind {
                    "get" => store.get(&key, &features)?,
                    _ => store.get_as_of(&key, &features, AsOf::event_time(store.now_ms()))?,
                };
                us.push(t.elapsed().as_secs_f64() * 1e6);
                std::hint::black_box(values);
            }
            let secs = start.elapsed().as_secs_f64();
            us.sort_by(f64::total_cmp);
            let q = |p: f64| us[((us.len() - 1) as f64 * p).round() as usize];
            let doc = serde_json::json!({
                "bench": "training-set-reads",
                "round": round,
                "kind": kind,
                "reads": reads,
                "reads_per_s": reads as f64 / secs,
                "p50_us": q(0.5),
                "p99_us": q(0.99),
                "p999_us": q(0.999),
                "device_reads_per_read":
                    (store.stats().device_reads - reads_before) as f64 / reads as f64,
            });
            println!("{doc}");
        }
    }
    store.close()?;
    Ok(())
}

/// The spine: a user and a shop per row (10% of entity ids never written), a time inside the
/// span, a label.
fn write_spine(cli: &Cli, t0: u64) -> Result<()> {
    let mut rng = SmallRng::seed_from_u64(cli.seed ^ 0x5b1e);
    let path = cli.dir.join("spine.csv");
    let mut w = writer(&path, "row_id,user_id,shop_id,ts,label")?;
    let ids = cli.entities + cli.entities / 10;
    for row in 0..cli.spine_rows {
        let ts = t0 + rng.gen_range(DAY_MS..SPAN_DAYS * DAY_MS);
        let (u, s) = (rng.gen_range(0..ids), rng.gen_range(0..ids));
        let label = rng.gen_range(0..2);
        writeln!(w, "{row},u{u},{s},{ts},{label}").map_err(io_err(&path))?;
    }
    w.flush().map_err(io_err(&path))
}

#[derive(Default)]
struct HistoryBytes {
    records: u64,
    /// Device bytes of the history records' frames.
    frames: u64,
    /// Bytes the write times take in them (each version's varint and each list's base).
    write_time: u64,
    versions: u64,
}

fn varint_len(mut v: u64) -> u64 {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn write_time_bytes(list: &[Version<'_>]) -> u64 {
    let base = list.iter().map(|v| v.write_time_ms).min().unwrap_or(0);
    8 + list
        .iter()
        .map(|v| varint_len(v.write_time_ms - base))
        .sum::<u64>()
}

/// Scans both history groups: frame bytes, and the bytes write times take.
fn history_bytes(store: &Store) -> Result<HistoryBytes> {
    let mut out = HistoryBytes::default();
    for group in store.list_groups(None) {
        let hg = history_group(group.id);
        let mut cursor = ScanCursor::START;
        loop {
            let chunk = store.engine().scan(hg, cursor, 4096)?;
            for (_, record) in &chunk.records {
                out.records += 1;
                let frame = RECORD_HEADER_BYTES + record.key.len() + record.value.len();
                out.frames += padded_frame_len(frame) as u64;
                let tail = &record.key[record.key.len() - 4..];
                let list = match tail {
                    [0xFF, 0xFF, 0xFF, 0xFE] => continue,
                    [0xFF, 0xFF, 0xFF, 0xFF] => Head::decode(&record.value).map(|h| h.open),
                    _ => decode_segment(&record.value),
                }
                .map_err(|e| PerfError::Check(format!("history record: {e}")))?;
                out.versions += list.len() as u64;
                out.write_time += write_time_bytes(&list);
            }
            match chunk.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
    }
    Ok(out)
}
