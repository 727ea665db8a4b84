//! `quiver-rules-bench`: the cost of validation rules on the write path. Buffered puts of 8
//! f64 features into an in-memory store, the same random values into two groups: one without
//! rules, one with two rules per feature (`finite` and `range=[-1e9,1e9]`). Rounds alternate
//! between the groups so that both see the same machine load; it prints one JSON line with the
//! median rate of each and their ratio.

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
    name = "quiver-rules-bench",
    about = "Buffered put rate with and without rules"
)]
struct Cli {
    /// Puts per round and group.
    #[arg(long, default_value_t = 200_000)]
    puts: u64,
    /// Rounds per group (the median is reported).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Distinct entities written.
    #[arg(long, default_value_t = 100_000)]
    entities: u64,
}

fn spec(name: &str, with_rules: bool) -> GroupSpec {
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
    GroupSpec::new(name, KeyType::I64, features)
}

/// Puts per second of one round into `group`.
fn round(store: &Store, group: &str, cli: &Cli, seed: u64) -> f64 {
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
            .put(group, &key, 1_700_000_000_000 + i, &values, &opts)
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
    let store = Store::open(Config::memory(1 << 30)).expect("open an in-memory store");
    store.create_group(spec("plain", false)).expect("create");
    store.create_group(spec("ruled", true)).expect("create");
    let (mut plain, mut ruled) = (Vec::new(), Vec::new());
    for r in 0..cli.rounds {
        let seed = r as u64;
        plain.push(round(&store, "plain", &cli, seed));
        ruled.push(round(&store, "ruled", &cli, seed));
    }
    let (p, q) = (median(plain.clone()), median(ruled.clone()));
    println!(
        "{}",
        serde_json::json!({
            "puts_per_round": cli.puts, "rounds": cli.rounds, "features": FEATURES,
            "plain_puts_per_s": p.round(), "ruled_puts_per_s": q.round(), "ratio": q / p,
            "plain_rounds": plain.iter().map(|x| x.round()).collect::<Vec<_>>(),
            "ruled_rounds": ruled.iter().map(|x| x.round()).collect::<Vec<_>>(),
        })
    );
    ExitCode::SUCCESS
}
