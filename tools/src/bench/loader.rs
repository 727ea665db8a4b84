//! The load phase: writes records `0..records` through the target before the measurement,
//! over several connections, printing progress to stderr.
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::BenchError;
use super::report::LoadReport;
use super::target::{Op, Outcome, Target};

/// Most connections the load phase opens.
pub const MAX_LOAD_CONNECTIONS: u32 = 64;
/// Progress is printed this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Writes every record; stops at the first failure.
pub fn load(
    target: &dyn Target,
    records: u64,
    connections: u32,
    pipeline: u32,
    progress: bool,
) -> Result<LoadReport, BenchError> {
    let workers = connections.clamp(1, MAX_LOAD_CONNECTIONS) as u64;
    let batch = pipeline.max(16) as u64;
    let loaded = AtomicU64::new(0);
    let finished = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<String>> = Mutex::new(None);
    let started = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..workers {
        conns.push(target.connect()?);
    }
    std::thread::scope(|scope| {
        for (w, mut conn) in conns.into_iter().enumerate() {
            let (loaded, finished, failed, first_error) =
                (&loaded, &finished, &failed, &first_error);
            scope.spawn(move || {
                let mut next = w as u64;
                let fail = |text: String| {
                    failed.store(true, Ordering::Relaxed);
                    first_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(text);
                };
                while next < records && !failed.load(Ordering::Relaxed) {
                    let ops: Vec<Op> = (0..batch)
                        .map(|i| next + i * workers)
                        .take_while(|&k| k < records)
                        .map(Op::Insert)
                        .collect();
                    next += batch * workers;
                    let count = ops.len() as u64;
                    let sent = conn.send(&ops).and_then(|()| {
                        conn.receive(&mut |_, outcome| {
                            if let Outcome::Error(text) = outcome {
                                fail(text);
                            }
                        })
                    });
                    match sent {
                        Ok(()) => loaded.fetch_add(count, Ordering::Relaxed),
                        Err(e) => {
                            fail(e.to_string());
                            break;
                        }
                    };
                }
                finished.fetch_add(1, Ordering::Release);
            });
        }
        report_progress(
            &loaded,
            &finished,
            workers as usize,
            records,
            started,
            progress,
        );
    });
    let seconds = started.elapsed().as_secs_f64();
    let done = loaded.load(Ordering::Relaxed);
    if let Some(reason) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(BenchError::Load {
            loaded: done,
            records,
            reason,
        });
    }
    Ok(LoadReport {
        records,
        seconds,
        records_per_s: records as f64 / seconds.max(1e-9),
    })
}

fn report_progress(
    loaded: &AtomicU64,
    finished: &AtomicUsize,
    workers: usize,
    records: u64,
    started: Instant,
    progress: bool,
) {
    let mut last_print = Instant::now();
    while finished.load(Ordering::Acquire) < workers {
        std::thread::sleep(Duration::from_millis(20));
        if progress && last_print.elapsed() >= PROGRESS_EVERY {
            last_print = Instant::now();
            let done = loaded.load(Ordering::Relaxed);
            let rate = done as f64 / started.elapsed().as_secs_f64();
            eprintln!(
                "load: {done}/{records} records ({:.0}%), {rate:.0} records/s",
                100.0 * done as f64 / records.max(1) as f64
            );
        }
    }
}
