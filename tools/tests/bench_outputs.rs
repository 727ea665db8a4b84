//! The .hgrm, JSON and SVG reports are well-formed.
use quiver_tools::bench::error::TargetError;
use quiver_tools::bench::target::{Connection, Op, Outcome, Target};
use quiver_tools::bench::{parse_args, run_with_target, EXIT_OK};

struct Echo;
struct EchoConnection(usize);

impl Target for Echo {
    fn describe(&self) -> String {
        "echo".into()
    }
    fn connect(&self) -> Result<Box<dyn Connection>, TargetError> {
        Ok(Box::new(EchoConnection(0)))
    }
}

impl Connection for EchoConnection {
    fn send(&mut self, ops: &[Op]) -> Result<(), TargetError> {
        self.0 = ops.len();
        Ok(())
    }
    fn receive(&mut self, done: &mut dyn FnMut(usize, Outcome)) -> Result<(), TargetError> {
        (0..self.0).for_each(|i| done(i, Outcome::Ok));
        Ok(())
    }
}

#[test]
fn reports_are_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let args = parse_args([
        "--no-load",
        "--records=500",
        "--workload=ycsb-a",
        "--rate=2000",
        "--connections=2",
        "--warmup=50ms",
        "--duration=300ms",
        "--slo=p99=5s,p99.9=6s",
        &format!("--hgrm={}", path("run.hgrm")),
        &format!("--json={}", path("run.json")),
        &format!("--svg={}", path("run.svg")),
    ])
    .unwrap();
    assert_eq!(run_with_target(&args, Box::new(Echo)), EXIT_OK);

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path("run.json")).unwrap()).unwrap();
    assert_eq!(json["workload"], "ycsb-a");
    assert_eq!(json["distribution"], "zipfian");
    assert_eq!(json["mode"], "open");
    assert_eq!(json["ops"], json["expected_ops"]);
    assert_eq!(json["ops"], 600);
    assert_eq!(json["mix"]["update"], 50);
    assert_eq!(json["slo"]["held"], true);
    assert_eq!(json["slo"]["targets"][1]["label"], "p99.9");
    assert!(
        json["latency_us"]["p99"].as_f64().unwrap() >= json["latency_us"]["p50"].as_f64().unwrap()
    );

    let hgrm = std::fs::read_to_string(path("run.hgrm")).unwrap();
    let first = hgrm.lines().next().unwrap();
    assert_eq!(
        first.split_whitespace().collect::<Vec<_>>(),
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert!(hgrm.contains("#[Max     = "));
    assert!(hgrm.contains("Total count    =          600]"));
    let rows: Vec<Vec<f64>> = hgrm
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(|f| f.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() > 10);
    assert!(
        rows.windows(2)
            .all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1]),
        "monotone table"
    );
    assert_eq!(rows.last().unwrap()[1], 1.0);
    assert_eq!(rows.last().unwrap()[2], 600.0);

    let svg = std::fs::read_to_string(path("run.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<path d=\"M "));
    assert!(svg.contains(">99.9%<"));
    assert!(svg.contains("SLO p99.9"));
}

#[test]
fn unwritable_report_is_a_usage_error() {
    let args = parse_args([
        "--no-load",
        "--rate=100",
        "--warmup=0s",
        "--duration=20ms",
        "--json=/nonexistent-dir/x.json",
    ])
    .unwrap();
    assert_eq!(
        run_with_target(&args, Box::new(Echo)),
        quiver_tools::bench::EXIT_USAGE
    );
}
