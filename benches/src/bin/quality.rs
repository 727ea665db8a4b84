//! `quiver-quality-bench`: the cost of live feature statistics (and rules) on the write path.
//! Buffered puts of 8 f64 features into two in-memory stores: one keeping no statistics and
//! with no rules, one keeping statistics with two rules per feature (`finite` and
//! `range=[-1e9,1e9]`), the comparison. Rounds alternate between the stores (A, B,
//! A, B, ...) so that both see the same machine load; it prints one JSON line with the median
//! rate of each, their ratio, and the statistics' memory per feature.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use quiver_engine::feature::{
    EntityKey, FeatureRules, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Value,
};
use quiver_engine::{Config, Durability, Store};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const FEATURES: usize = 8;
/// Most puts one round may ask for.
const MAX_PUTS: u64 = 10_000_000;

#[derive(Parser)]
#[command(
    name = "quiver-quality-bench",
    about = "Buffered put rate with and without feature statistics"
)]
struct Cli {
    /// Puts per round and store.
    #[arg(long, default_value_t = 200_000)]
    puts: u64,
    /// Rounds per store (the median is reported).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Distinct entities written.
    #[arg(long, default_value_t = 100_000)]
    entities: u64,
}

fn spec(with_rules: bool) -> GroupSpec {
    let mut rules = FeatureRules::default();
    if with_rules {
        rules.parse_rule("finite").expect("rule");
        rules.parse_rule("range=[-1e9,1e9]").expect("rule");
    }
    let features = (0..FEATURES)
        .map(|i| FeatureSpec {
            rules: rules.clone(),
            ..FeatureSpec::new(format!("f{i}"), FeatureType::F64)
        })
        .collect();
    GroupSpec::new("g", KeyType::I64, features)
}

fn store(stats: bool) -> Store {
    let mut config = Config::memory(1 << 30);
    config.feature_stats = stats;
    let store = Store::open(config).expect("open an in-memory store");
    store.create_group(spec(stats)).expect("create");
    store
}

/// Puts per second of one round into `store`.
fn round(store: &Store, cli: &Cli, seed: u64) -> f64 {
    let names: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    let opts = PutOptions {
        durability: Some(Durability::Buffered),
        ..PutOptions::default()
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    let start = Instant::now();
    for i in 0..cli.puts {
        let key = EntityKey::I64(rng.gen_range(0..cli.entities) as i64);
        let values: Vec<(&str, Value)> = names
            .iter()
            .map(|n| (n.as_str(), Value::F64(rng.gen_range(-1e6..1e6))))
            .collect();
        store
            .put("g", &key, 1_700_000_000_000 + i, &values, &opts)
            .expect("put");
    }
    cli.puts as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.puts == 0 || cli.puts > MAX_PUTS || cli.rounds == 0 || cli.entities == 0 {
        eprintln!("--puts must be 1..={MAX_PUTS}, --rounds and --entities at least 1");
        return ExitCode::from(2);
    }
    let (bare, watched) = (store(false), store(true));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in 0..cli.rounds {
        let seed = r as u64;
        a.push(round(&bare, &cli, seed));
        b.push(round(&watched, &cli, seed));
    }
    let report = watched.feature_stats("g", None).expect("stats");
    let per_feature: Vec<u64> = report.features.iter().map(|f| f.memory_bytes).collect();
    let (p, q) = (median(a.clone()), median(b.clone()));
    println!(
        "{}",
        serde_json::json!({
            "puts_per_round": cli.puts, "rounds": cli.rounds, "features": FEATURES,
            "plain_puts_per_s": p.round(), "stats_and_rules_puts_per_s": q.round(), "ratio": q / p,
            "plain_rounds": a.iter().map(|x| x.round()).collect::<Vec<_>>(),
            "stats_and_rules_rounds": b.iter().map(|x| x.round()).collect::<Vec<_>>(),
            "stats_memory_bytes_per_feature": per_feature,
            "stats_memory_bytes_group": report.memory_bytes,
        })
    );
    ExitCode::SUCCESS
}
