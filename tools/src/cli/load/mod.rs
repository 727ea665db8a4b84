//! `quiver load GROUP FILE`: bulk load from CSV, JSON Lines or Parquet.
//!
//! A reader thread parses the file into batches while this thread writes the previous batch,
//! many puts in flight at once ([`Backend::put_batch`]). A bad row is reported (line, column,
//! reason) and skipped; more than `--max-errors` of them abort the load.

mod csv;
mod format;
mod jsonl;
mod parquet;
pub mod row;

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;

use quiver_engine::feature::{check_value, GroupSchema, PutOptions, RuleChecker, ViolationMode};
use serde_json::json;

pub use format::{resolve_format, sniff, FileFormat};
use row::{Batch, LoadSpec, Rejection, RowSource, READ_AHEAD_BATCHES};

use super::backend::Backend;
use super::command::LoadArgs;
use super::error::{exit, CliError, CliResult};
use super::output::Out;
use super::progress::{bar, thousands};

/// Rejections kept for the report; past this only their count grows.
pub const MAX_REPORTED_REJECTIONS: usize = 1000;
/// Rejections printed in the text report (all of the kept ones go to --json).
const MAX_PRINTED_REJECTIONS: usize = 20;

enum Msg {
    Started { total: u64, counts_bytes: bool },
    Batch(Batch),
    Failed(CliError),
}

/// What a load did.
#[derive(Debug, Default)]
pub struct Tally {
    pub rows_read: u64,
    pub rows_written: u64,
    pub values_written: u64,
    pub skipped_stale: u64,
    /// Values left out for breaking a rule (groups whose violation mode is drop).
    pub values_dropped: u64,
    /// Rows that had values dropped, and why (the first [`MAX_REPORTED_REJECTIONS`]).
    pub drops: Vec<Rejection>,
    /// Rows that had values dropped.
    pub rows_with_drops: u64,
    pub rejected: u64,
    pub rejections: Vec<Rejection>,
    pub aborted: bool,
}

impl Tally {
    fn reject(&mut self, rejection: Rejection) {
        self.rejected += 1;
        if self.rejections.len() < MAX_REPORTED_REJECTIONS {
            self.rejections.push(rejection);
        }
    }

    /// Notes the values a written row had dropped, one entry per broken rule as `rules` finds
    /// them (a rule that depends on the clock may have fired at the store and not here: then
    /// the entry gives the count alone).
    fn dropped(&mut self, line: u64, count: u32, mut why: Vec<Rejection>) {
        self.values_dropped += u64::from(count);
        self.rows_with_drops += 1;
        if why.is_empty() {
            why.push(Rejection::new(
                line,
                "",
                format!("{count} values dropped for breaking a rule"),
            ));
        }
        let room = MAX_REPORTED_REJECTIONS.saturating_sub(self.drops.len());
        self.drops.extend(why.into_iter().take(room));
    }
}

/// The rules of a group whose violation mode is drop, checked again by the loader so that the
/// report can say which value of which row was dropped, and why (the store only counts them).
struct DropRules {
    schema: std::sync::Arc<GroupSchema>,
    checkers: Vec<Option<RuleChecker>>,
}

impl DropRules {
    fn of(schema: &std::sync::Arc<GroupSchema>) -> Option<DropRules> {
        (schema.on_violation == ViolationMode::Drop).then(|| DropRules {
            schema: schema.clone(),
            checkers: schema
                .features
                .iter()
                .map(|f| (!f.rules.is_empty()).then(|| RuleChecker::new(&f.rules)))
                .collect(),
        })
    }

    /// Why each value of `put` would be dropped, as row-by-row report entries.
    fn broken(&self, line: u64, put: &super::backend::PutRow, now_ms: u64) -> Vec<Rejection> {
        let mut why = Vec::new();
        for (name, value) in &put.values {
            let Some(feature) = self.schema.feature(name) else {
                continue;
            };
            let checked = check_value(&self.schema, feature, value).and_then(|()| {
                match self
                    .checkers
                    .get(feature.id as usize)
                    .and_then(Option::as_ref)
                {
                    Some(c) => c.check(&self.schema.name, name, value, put.event_time_ms, now_ms),
                    None => Ok(()),
                }
            });
            if let Err(e) = checked {
                why.push(Rejection::new(line, name.as_str(), format!("dropped: {e}")));
            }
        }
        why
    }
}

pub fn run(args: &LoadArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let format = resolve_format(&args.file, args.format)?;
    sniff(&args.file, format)?;
    let schema = backend.describe_group(&args.group)?;
    if args.write_time_column.is_some() && schema.history.is_none() {
        return Err(CliError::usage(format!(
            "--write-time-column sets the write time of history versions, and group '{}' keeps no history (turn it on with: quiver group alter {} --history 90d)",
            args.group, args.group
        )));
    }
    let drop_rules = DropRules::of(&schema);
    let spec = LoadSpec {
        schema,
        key_column: args.key_column.clone(),
        ts_column: args.ts_column.clone(),
        default_ts_ms: super::now_ms(),
        write_time_column: args.write_time_column.clone(),
    };
    let opts = PutOptions {
        mode: super::data::write_mode(args.mode),
        ..PutOptions::default()
    };
    let start = Instant::now();
    let (tx, rx) = sync_channel(READ_AHEAD_BATCHES);
    let batch_rows = args.batch_rows as usize;
    let file = args.file.clone();
    let tally = std::thread::scope(|scope| {
        scope.spawn(move || read_loop(&file, format, spec, batch_rows, tx));
        write_loop(
            rx,
            backend,
            &args.group,
            &opts,
            args.max_errors,
            drop_rules.as_ref(),
            out,
        )
        // Returning drops `rx`: a reader still sending sees the hang-up and stops.
    })?;
    let seconds = start.elapsed().as_secs_f64();
    report(args, format, &tally, seconds, out);
    if tally.aborted {
        return Err(CliError::LoadAborted {
            rejected: tally.rejected,
            max_errors: args.max_errors,
        });
    }
    Ok(())
}

fn read_loop(
    path: &Path,
    format: FileFormat,
    spec: LoadSpec,
    batch_rows: usize,
    tx: SyncSender<Msg>,
) {
    let mut source: Box<dyn RowSource> = match format::open(path, format, spec) {
        Ok(source) => source,
        Err(err) => {
            let _ = tx.send(Msg::Failed(err));
            return;
        }
    };
    if tx
        .send(Msg::Started {
            total: source.total(),
            counts_bytes: source.counts_bytes(),
        })
        .is_err()
    {
        return;
    }
    loop {
        let msg = match source.next_batch(batch_rows) {
            Ok(Some(batch)) => Msg::Batch(batch),
            Ok(None) => return,
            Err(err) => Msg::Failed(err),
        };
        let failed = matches!(msg, Msg::Failed(_));
        if tx.send(msg).is_err() || failed {
            return;
        }
    }
}

/// A failure of the store or the connection ends the load; anything else only refuses a row.
fn is_fatal(err: &CliError) -> bool {
    matches!(
        err.exit_code(),
        exit::CONNECT | exit::AUTH | exit::STORE | exit::CORRUPTION | exit::INTERNAL
    )
}

fn write_loop(
    rx: Receiver<Msg>,
    backend: &mut dyn Backend,
    group: &str,
    opts: &PutOptions,
    max_errors: u64,
    drop_rules: Option<&DropRules>,
    out: Out,
) -> CliResult<Tally> {
    let mut tally = Tally::default();
    let mut progress = None;
    let start = Instant::now();
    for msg in rx {
        let batch = match msg {
            Msg::Started {
                total,
                counts_bytes,
            } => {
                progress = Some(bar(total, counts_bytes, out.json));
                continue;
            }
            Msg::Failed(err) => return Err(err),
            Msg::Batch(batch) => batch,
        };
        write_batch(batch.rows, backend, group, opts, drop_rules, &mut tally)?;
        if let Some(bar) = &progress {
            bar.set_position(batch.position);
            let rate = tally.rows_read as f64 / start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{} rows, {} rows/s, {} rejected",
                thousands(tally.rows_read),
                thousands(rate as u64),
                tally.rejected
            ));
        }
        if tally.rejected > max_errors {
            tally.aborted = true;
            break;
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(tally)
}

fn write_batch(
    rows: Vec<row::ReadRow>,
    backend: &mut dyn Backend,
    group: &str,
    opts: &PutOptions,
    drop_rules: Option<&DropRules>,
    tally: &mut Tally,
) -> CliResult<()> {
    let mut lines = Vec::with_capacity(rows.len());
    let mut broken = Vec::new();
    let now_ms = super::now_ms();
    let mut puts = Vec::with_capacity(rows.len());
    for row in rows {
        tally.rows_read += 1;
        match row {
            Ok((line, put)) => {
                if let Some(rules) = drop_rules {
                    broken.push(rules.broken(line, &put, now_ms));
                }
                lines.push(line);
                puts.push(put);
            }
            Err(rejection) => tally.reject(rejection),
        }
    }
    if puts.is_empty() {
        return Ok(());
    }
    let outcomes = backend.put_batch(group, puts, opts)?;
    let mut broken = broken.into_iter();
    for (line, outcome) in lines.into_iter().zip(outcomes) {
        let why = broken.next().unwrap_or_default();
        match outcome {
            Ok(result) => {
                tally.rows_written += 1;
                tally.values_written += u64::from(result.written);
                tally.skipped_stale += u64::from(result.skipped_stale);
                if result.dropped > 0 {
                    tally.dropped(line, result.dropped, why);
                }
            }
            Err(err) if is_fatal(&err) => return Err(err),
            Err(err) => tally.reject(Rejection::new(line, "", err.to_string())),
        }
    }
    Ok(())
}

fn report(args: &LoadArgs, format: FileFormat, tally: &Tally, seconds: f64, out: Out) {
    let mut rejections = tally.rejections.clone();
    rejections.sort_by_key(|r| r.line);
    let rate = tally.rows_read as f64 / seconds.max(1e-9);
    let doc = json!({
        "group": args.group, "file": args.file.display().to_string(), "format": format.name(),
        "rows_read": tally.rows_read, "rows_written": tally.rows_written,
        "values_written": tally.values_written, "skipped_stale": tally.skipped_stale,
        "values_dropped": tally.values_dropped, "rows_with_drops": tally.rows_with_drops,
        "rows_rejected": tally.rejected, "aborted": tally.aborted,
        "seconds": seconds, "rows_per_s": rate.round(),
        "rejected": rejections.iter().map(|r| json!({"line": r.line, "column": r.column, "reason": r.reason})).collect::<Vec<_>>(),
        "dropped": tally.drops.iter().map(|r| json!({"line": r.line, "column": r.column, "reason": r.reason})).collect::<Vec<_>>(),
    });
    out.emit(doc, || {
        println!(
            "loaded {} of {} rows into '{}' in {seconds:.2} s ({} rows/s); {} values written, {} skipped as stale",
            thousands(tally.rows_written), thousands(tally.rows_read), args.group, thousands(rate as u64),
            thousands(tally.values_written), thousands(tally.skipped_stale)
        );
        if tally.values_dropped > 0 {
            println!(
                "{} values dropped for breaking a rule of their feature, in {} rows:",
                thousands(tally.values_dropped),
                thousands(tally.rows_with_drops)
            );
            print_entries(&tally.drops, tally.rows_with_drops, format);
        }
        print_rejections(tally, &rejections, format);
    });
}

fn print_rejections(tally: &Tally, rejections: &[Rejection], format: FileFormat) {
    if tally.rejected == 0 {
        return;
    }
    println!("{} rows rejected:", thousands(tally.rejected));
    print_entries(rejections, tally.rejected, format);
}

/// The first [`MAX_PRINTED_REJECTIONS`] entries of a row-by-row report about `rows` rows.
fn print_entries(entries: &[Rejection], rows: u64, format: FileFormat) {
    let unit = if format == FileFormat::Parquet {
        "row"
    } else {
        "line"
    };
    for r in entries.iter().take(MAX_PRINTED_REJECTIONS) {
        match r.column.as_str() {
            "" => println!("  {unit} {}: {}", r.line, r.reason),
            column => println!("  {unit} {}, column '{column}': {}", r.line, r.reason),
        }
    }
    let shown = entries.len().min(MAX_PRINTED_REJECTIONS) as u64;
    if rows > shown || entries.len() as u64 > shown {
        println!(
            "  ... and more (use --json for the first {MAX_REPORTED_REJECTIONS}; {} rows in all)",
            thousands(rows)
        );
    }
}
