//! The run's report: the summary printed to stdout and the JSON file.
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::keys::Distribution;
use super::runner::Measurement;
use super::slo::SloVerdict;
use super::units::format_ns;
use super::workload::{Mix, RecordShape};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(hist: &Histogram<u64>) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1e3;
        Percentiles {
            count: hist.len(),
            mean: hist.mean() / 1e3,
            p50: us(hist.value_at_percentile(50.0)),
            p90: us(hist.value_at_percentile(90.0)),
            p99: us(hist.value_at_percentile(99.0)),
            p99_9: us(hist.value_at_percentile(99.9)),
            p99_99: us(hist.value_at_percentile(99.99)),
            max: us(hist.max()),
        }
    }
}

/// The load phase's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub records: u64,
    pub seconds: f64,
    pub records_per_s: f64,
}

/// The SLO verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloReport {
    pub held: bool,
    pub targets: Vec<SloVerdict>,
    /// Failed or never-sent operations; any of them fails the SLO.
    pub failed_ops: u64,
}

/// Everything a run measured, as written to `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub workload: String,
    pub mix: Mix,
    pub distribution: Distribution,
    pub records: u64,
    pub shape: RecordShape,
    pub batch_keys: Option<u32>,
    /// "open" (fixed rate, coordinated omission corrected) or "closed".
    pub mode: &'static str,
    pub rate_ops: Option<u64>,
    pub connections: u32,
    pub threads: u32,
    pub pipeline: u32,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub load: Option<LoadReport>,
    pub ops: u64,
    /// Open loop: the number of intended starts in the measured window.
    pub expected_ops: Option<u64>,
    pub ops_per_s: f64,
    pub errors: u64,
    pub not_found: u64,
    pub not_issued: u64,
    pub lost_connections: u32,
    pub first_error: Option<String>,
    /// From intended start (open loop) or from send (closed loop).
    pub latency_us: Percentiles,
    /// From send to reply.
    pub service_time_us: Percentiles,
    /// CPU time of the generator's worker threads over the measured window, seconds.
    pub generator_cpu_s: f64,
    /// The generator's own CPU per measured operation, microseconds (what the client side
    /// costs; a run whose generator needs a whole core measures the generator).
    pub generator_cpu_us_per_op: f64,
    pub slo: Option<SloReport>,
    #[serde(skip)]
    pub measurement: Measurement,
}

impl Report {
    /// The JSON report, pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }

    /// The summary printed after a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let shape = &self.shape;
        let _ = writeln!(
            out,
            "target {}  workload {}  distribution {}  records {} ({} f32 + f32[{}])",
            self.target,
            self.workload,
            self.distribution,
            self.records,
            shape.scalars,
            shape.vector_dim
        );
        let loop_text = match self.rate_ops {
            Some(rate) => format!("open loop at {rate} ops/s"),
            None => "closed loop".to_string(),
        };
        let _ = writeln!(
            out,
            "{loop_text}, {} connections, {} threads, pipeline {}, warmup {}s, duration {}s",
            self.connections, self.threads, self.pipeline, self.warmup_s, self.duration_s
        );
        if let Some(load) = &self.load {
            let _ = writeln!(
                out,
                "load: {} records in {:.1}s ({:.0} records/s)",
                load.records, load.seconds, load.records_per_s
            );
        }
        self.write_counts(&mut out);
        self.write_latencies(&mut out);
        out
    }

    fn write_counts(&self, out: &mut String) {
        let _ = write!(out, "ops {} ({:.1} ops/s)", self.ops, self.ops_per_s);
        if let Some(expected) = self.expected_ops {
            let _ = write!(out, ", scheduled {expected}");
        }
        let _ = writeln!(
            out,
            ", errors {}, not found {}, not issued {}",
            self.errors, self.not_found, self.not_issued
        );
        if let Some(err) = &self.first_error {
            let _ = writeln!(out, "first error: {err}");
        }
        if self.lost_connections > 0 {
            let _ = writeln!(out, "connections lost: {}", self.lost_connections);
        }
        let _ = writeln!(
            out,
            "generator CPU {:.2} us per op ({:.2} s over {} threads)",
            self.generator_cpu_us_per_op, self.generator_cpu_s, self.threads
        );
    }

    fn write_latencies(&self, out: &mut String) {
        let hist = &self.measurement.latency;
        let service = &self.measurement.service;
        let heading = if self.rate_ops.is_some() {
            "latency from intended start (service time from send)"
        } else {
            "latency from send (closed loop: not corrected for coordinated omission)"
        };
        let _ = writeln!(out, "{heading}:");
        for (label, pct) in [
            ("p50", 50.0),
            ("p90", 90.0),
            ("p99", 99.0),
            ("p99.9", 99.9),
            ("p99.99", 99.99),
        ] {
            let _ = writeln!(
                out,
                "  {label:<7}{:>12}  ({})",
                format_ns(hist.value_at_percentile(pct)),
                format_ns(service.value_at_percentile(pct))
            );
        }
        let _ = writeln!(
            out,
            "  {:<7}{:>12}  ({})",
            "max",
            format_ns(hist.max()),
            format_ns(service.max())
        );
        if let Some(slo) = &self.slo {
            for verdict in &slo.targets {
                let _ = writeln!(out, "SLO {verdict}");
            }
            if slo.failed_ops > 0 {
                let _ = writeln!(
                    out,
                    "SLO MISSED: {} operations failed or were never sent",
                    slo.failed_ops
                );
            }
            let _ = writeln!(out, "SLO {}", if slo.held { "held" } else { "MISSED" });
        }
    }
}
