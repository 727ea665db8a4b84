//! Request counters and latency histograms, shared by workers, read by STATS and /metrics.

use crate::http::HttpMetrics;
use crate::protocol::Opcode;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const OPS: usize = Opcode::ALL.len();
/// Latencies above one minute are clamped into the top bucket.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Server-side counters. Workers record whole batches at a time, so each histogram lock is
/// taken once per completion, not once per request.
pub struct Metrics {
    ops: [AtomicU64; OPS],
    errors: [AtomicU64; OPS],
    latency_us: [Mutex<Histogram<u64>>; OPS],
    pub connections_open: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub frames_malformed: AtomicU64,
    pub connections_timed_out: AtomicU64,
    pub engine_batches: AtomicU64,
    pub engine_batched_gets: AtomicU64,
    pub busy_rejections: AtomicU64,
    /// Device reads of GETs submitted by the io_uring loops to their own rings.
    pub loop_device_reads: AtomicU64,
    /// Send and carry buffers the io_uring loops allocated because their pools were empty.
    pub loop_buffer_allocations: AtomicU64,
    /// Cluster mode: GETs of the io_uring loops answered on an engine thread instead, because
    /// their partition had a write applied and not yet confirmed by its replicas.
    pub loop_gets_diverted: AtomicU64,
    /// The HTTP/JSON API's requests and latency, per endpoint.
    pub http: HttpMetrics,
}

fn histogram() -> Mutex<Histogram<u64>> {
    // 3 significant digits from 1 us to 60 s; these bounds are valid constants.
    Mutex::new(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            ops: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_us: std::array::from_fn(|_| histogram()),
            connections_open: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            frames_malformed: AtomicU64::new(0),
            connections_timed_out: AtomicU64::new(0),
            engine_batches: AtomicU64::new(0),
            engine_batched_gets: AtomicU64::new(0),
            busy_rejections: AtomicU64::new(0),
            loop_device_reads: AtomicU64::new(0),
            loop_buffer_allocations: AtomicU64::new(0),
            loop_gets_diverted: AtomicU64::new(0),
            http: HttpMetrics::default(),
        }
    }
}

/// Quantiles of one operation's latency.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Metrics {
    /// Records finished requests of one opcode: (latency in us, failed).
    pub fn record(&self, op: Opcode, samples: &[(u64, bool)]) {
        let i = op.index();
        self.ops[i].fetch_add(samples.len() as u64, Relaxed);
        let failed = samples.iter().filter(|s| s.1).count() as u64;
        if failed > 0 {
            self.errors[i].fetch_add(failed, Relaxed);
        }
        let mut h = self.latency_us[i].lock();
        for (us, _) in samples {
            h.saturating_record((*us).clamp(1, MAX_LATENCY_US));
        }
    }

    pub fn ops(&self, op: Opcode) -> u64 {
        self.ops[op.index()].load(Relaxed)
    }

    pub fn errors(&self, op: Opcode) -> u64 {
        self.errors[op.index()].load(Relaxed)
    }

    pub fn latency(&self, op: Opcode) -> LatencySummary {
        let h = self.latency_us[op.index()].lock();
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }

    /// Prometheus text exposition of the server's own metrics.
    pub fn render_prometheus(&self, out: &mut String) {
        out.push_str("# HELP quiver_requests_total Requests finished, by opcode.\n# TYPE quiver_requests_total counter\n");
        for op in Opcode::ALL {
            let _ = writeln!(
                out,
                "quiver_requests_total{{op=\"{}\"}} {}",
                op.name(),
                self.ops(op)
            );
        }
        out.push_str("# HELP quiver_request_errors_total Requests answered with a non-OK status, by opcode.\n# TYPE quiver_request_errors_total counter\n");
        for op in Opcode::ALL {
            let _ = writeln!(
                out,
                "quiver_request_errors_total{{op=\"{}\"}} {}",
                op.name(),
                self.errors(op)
            );
        }
        out.push_str("# HELP quiver_request_latency_us Request latency in microseconds, from frame decoded to response queued.\n# TYPE quiver_request_latency_us summary\n");
        for op in Opcode::ALL {
            let l = self.latency(op);
            for (q, v) in [("0.5", l.p50_us), ("0.99", l.p99_us), ("0.999", l.p999_us)] {
                let _ = writeln!(
                    out,
                    "quiver_request_latency_us{{op=\"{}\",quantile=\"{q}\"}} {v}",
                    op.name()
                );
            }
            let _ = writeln!(
                out,
                "quiver_request_latency_us_count{{op=\"{}\"}} {}",
                op.name(),
                l.count
            );
        }
        let gauges = [
            (
                "quiver_connections_open",
                "gauge",
                "Open client connections.",
                &self.connections_open,
            ),
            (
                "quiver_connections_accepted_total",
                "counter",
                "Connections accepted.",
                &self.connections_accepted,
            ),
            (
                "quiver_connections_refused_total",
                "counter",
                "Connections refused at the connection limit.",
                &self.connections_refused,
            ),
            (
                "quiver_connections_timed_out_total",
                "counter",
                "Connections closed by the idle or frame deadline.",
                &self.connections_timed_out,
            ),
            (
                "quiver_frames_malformed_total",
                "counter",
                "Frames answered with BAD_FRAME, UNKNOWN_OPCODE or a framing error.",
                &self.frames_malformed,
            ),
            (
                "quiver_engine_batches_total",
                "counter",
                "Engine get_many calls made for pipelined GETs.",
                &self.engine_batches,
            ),
            (
                "quiver_engine_batched_gets_total",
                "counter",
                "GET requests served through those calls.",
                &self.engine_batched_gets,
            ),
            (
                "quiver_busy_rejections_total",
                "counter",
                "Requests answered BUSY because the engine queue was full.",
                &self.busy_rejections,
            ),
            (
                "quiver_loop_device_reads_total",
                "counter",
                "Device reads of GETs submitted by the io_uring event loops to their own rings.",
                &self.loop_device_reads,
            ),
            (
                "quiver_loop_buffer_allocations_total",
                "counter",
                "Send and carry buffers the io_uring event loops allocated because their pools were empty.",
                &self.loop_buffer_allocations,
            ),
            (
                "quiver_loop_gets_diverted_total",
                "counter",
                "Cluster mode: GETs of the io_uring loops answered on an engine thread, after a write of their partition not yet confirmed by its replicas.",
                &self.loop_gets_diverted,
            ),
        ];
        for (name, kind, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
        self.http.render_prometheus(out);
    }
}
