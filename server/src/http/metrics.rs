//! Requests and latency of the HTTP/JSON API, per endpoint, for the Prometheus endpoint
//! (`--metrics`): `quiver_http_requests_total{endpoint,code}` and
//! `quiver_http_request_latency_us{endpoint,quantile}`.
//!
//! Endpoints are a fixed set (an unknown path counts as `other`, and every group's describe
//! as `/groups/{name}`), so a client cannot grow the label set.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Latencies above one minute are clamped into the top bucket.
const MAX_LATENCY_US: u64 = 60_000_000;

/// What a request asked for, as its metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    GetOnlineFeatures,
    WriteToOnlineStore,
    ListGroups,
    DescribeGroup,
    Health,
    /// Any other path (answered 404 or 405).
    Other,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::GetOnlineFeatures,
        Endpoint::WriteToOnlineStore,
        Endpoint::ListGroups,
        Endpoint::DescribeGroup,
        Endpoint::Health,
        Endpoint::Other,
    ];

    /// The endpoint of a request's path (whatever its method: a wrong method counts against
    /// the path it was sent to).
    pub fn of(path: &str) -> Endpoint {
        match path {
            "/get-online-features" => Endpoint::GetOnlineFeatures,
            "/write-to-online-store" => Endpoint::WriteToOnlineStore,
            "/groups" => Endpoint::ListGroups,
            "/health" => Endpoint::Health,
            p if p.starts_with("/groups/") => Endpoint::DescribeGroup,
            _ => Endpoint::Other,
        }
    }

    /// The `endpoint` label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::GetOnlineFeatures => "/get-online-features",
            Endpoint::WriteToOnlineStore => "/write-to-online-store",
            Endpoint::ListGroups => "/groups",
            Endpoint::DescribeGroup => "/groups/{name}",
            Endpoint::Health => "/health",
            Endpoint::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `code` label: the class of the HTTP status.
const CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

fn class(http: u16) -> usize {
    match http {
        500.. => 2,
        400..=499 => 1,
        _ => 0,
    }
}

const ENDPOINTS: usize = Endpoint::ALL.len();

/// Counters and latency histograms of the HTTP API.
pub struct HttpMetrics {
    requests: [[AtomicU64; CLASSES.len()]; ENDPOINTS],
    latency_us: [Mutex<Histogram<u64>>; ENDPOINTS],
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            // 3 significant digits from 1 us to 60 s; these bounds are valid constants.
            latency_us: std::array::from_fn(|_| {
                Mutex::new(
                    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                        .expect("valid histogram bounds"),
                )
            }),
        }
    }
}

impl HttpMetrics {
    /// Records one answered request: from its head read to its answer built.
    pub fn record(&self, endpoint: Endpoint, http: u16, micros: u64) {
        self.requests[endpoint.index()][class(http)].fetch_add(1, Relaxed);
        self.latency_us[endpoint.index()]
            .lock()
            .saturating_record(micros.clamp(1, MAX_LATENCY_US));
    }

    /// Requests answered on `endpoint` with a status of `class` ("2xx", "4xx", "5xx").
    pub fn requests(&self, endpoint: Endpoint, class: &str) -> u64 {
        CLASSES
            .iter()
            .position(|c| *c == class)
            .map_or(0, |i| self.requests[endpoint.index()][i].load(Relaxed))
    }

    /// Prometheus text of the HTTP API's metrics.
    pub fn render_prometheus(&self, out: &mut String) {
        out.push_str("# HELP quiver_http_requests_total HTTP API requests answered, by endpoint and status class.\n# TYPE quiver_http_requests_total counter\n");
        for e in Endpoint::ALL {
            for (i, code) in CLASSES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "quiver_http_requests_total{{endpoint=\"{}\",code=\"{code}\"}} {}",
                    e.label(),
                    self.requests[e.index()][i].load(Relaxed)
                );
            }
        }
        out.push_str("# HELP quiver_http_request_latency_us HTTP API request latency in microseconds, from the request head read to the answer built.\n# TYPE quiver_http_request_latency_us summary\n");
        for e in Endpoint::ALL {
            let h = self.latency_us[e.index()].lock();
            for q in [0.5, 0.99, 0.999] {
                let _ = writeln!(
                    out,
                    "quiver_http_request_latency_us{{endpoint=\"{}\",quantile=\"{q}\"}} {}",
                    e.label(),
                    h.value_at_quantile(q)
                );
            }
            let _ = writeln!(
                out,
                "quiver_http_request_latency_us_count{{endpoint=\"{}\"}} {}",
                e.label(),
                h.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_a_fixed_set_of_endpoints() {
        assert_eq!(
            Endpoint::of("/get-online-features"),
            Endpoint::GetOnlineFeatures
        );
        assert_eq!(Endpoint::of("/groups/users"), Endpoint::DescribeGroup);
        assert_eq!(Endpoint::of("/x/y"), Endpoint::Other);
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }

    #[test]
    fn requests_are_counted_by_endpoint_and_class() {
        let m = HttpMetrics::default();
        m.record(Endpoint::Health, 200, 10);
        m.record(Endpoint::Health, 503, 10);
        m.record(Endpoint::Other, 404, 0);
        assert_eq!(m.requests(Endpoint::Health, "2xx"), 1);
        assert_eq!(m.requests(Endpoint::Health, "5xx"), 1);
        assert_eq!(m.requests(Endpoint::Other, "4xx"), 1);
        let mut text = String::new();
        m.render_prometheus(&mut text);
        assert!(text.contains("quiver_http_requests_total{endpoint=\"/health\",code=\"5xx\"} 1"));
        assert!(text.contains("quiver_http_request_latency_us_count{endpoint=\"/health\"} 2"));
    }
}
