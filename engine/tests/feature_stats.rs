//! Live feature statistics: against exact values computed here on random data (within the
//! sketches' documented error), windows that roll over with the store's clock, and statistics
//! that survive a restart, a crash (as of their last save), and a damaged saved record.

use std::sync::Arc;

use quiver_engine::feature::{
    EntityKey, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Value,
};
use quiver_engine::quality::{FeatureWindowReport, GroupStatsReport};
use quiver_engine::store::Store;
use quiver_engine::{Config, ManualClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NOW_S: u32 = 1_700_000_000;

fn config(clock: &Arc<ManualClock>, path: Option<&std::path::Path>) -> Config {
    let mut config = match path {
        Some(p) => Config::file(p.join("store.db"), 64 << 20),
        None => Config::memory(64 << 20),
    };
    config.clock = clock.clone();
    config.stats_save_interval_s = 0;
    config
}

fn spec(name: &str) -> GroupSpec {
    let mut spec = GroupSpec::new(
        name,
        KeyType::I64,
        vec![
            FeatureSpec::new("x", FeatureType::F64),
            FeatureSpec::new("n", FeatureType::I64),
            FeatureSpec::new("city", FeatureType::String),
            FeatureSpec::new("flag", FeatureType::Bool),
            FeatureSpec::new("emb", FeatureType::Vector(3)),
        ],
    );
    spec.allow_non_finite = true;
    spec
}

/// What the test wrote, to compute the exact statistics from.
#[derive(Default)]
struct Written {
    x: Vec<f64>,
    x_nulls: u64,
    n: Vec<i64>,
    cities: Vec<String>,
    flags: Vec<bool>,
    norms: Vec<f64>,
    entities: std::collections::HashSet<i64>,
}

fn put_random(store: &Store, group: &str, rng: &mut StdRng, puts: usize, w: &mut Written) {
    let cities = ["paris", "lyon", "nice", "lille", "brest"];
    for _ in 0..puts {
        let entity = rng.gen_range(0..2000i64);
        w.entities.insert(entity);
        let x = if rng.gen_bool(0.1) {
            w.x_nulls += 1;
            Value::Null
        } else {
            // A skewed distribution: the sum of two uniforms, squared, shifted.
            let v = (rng.gen::<f64>() + rng.gen::<f64>()).powi(2) * 100.0 - 50.0;
            w.x.push(v);
            Value::F64(v)
        };
        let n = rng.gen_range(-1000..1000i64);
        w.n.push(n);
        // Zipf-like: the first city most often.
        let city = cities[(rng.gen::<f64>().powi(3) * cities.len() as f64) as usize].to_string();
        w.cities.push(city.clone());
        let flag = rng.gen_bool(0.3);
        w.flags.push(flag);
        let emb: Vec<f32> = (0..3).map(|_| rng.gen_range(-1.0..1.0f32)).collect();
        w.norms
            .push(emb.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt());
        let values = [
            ("x", x),
            ("n", Value::I64(n)),
            ("city", Value::String(city)),
            ("flag", Value::Bool(flag)),
            ("emb", Value::Vector(emb)),
        ];
        store
            .put(
                group,
                &EntityKey::I64(entity),
                1,
                &values,
                &PutOptions::default(),
            )
            .unwrap();
    }
}

fn window<'a>(r: &'a GroupStatsReport, feature: &str, window: &str) -> &'a FeatureWindowReport {
    r.features
        .iter()
        .find(|f| f.name == feature)
        .unwrap()
        .windows
        .iter()
        .find(|w| w.window == window)
        .unwrap()
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn stddev(xs: &[f64]) -> f64 {
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
}

/// The sketch answers q within 1% of a value whose rank is q's (lower rank q * (n - 1)).
fn assert_quantile(sorted: &[f64], q: f64, got: f64) {
    let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
    let near = &sorted[rank.saturating_sub(1)..(rank + 2).min(sorted.len())];
    assert!(
        near.iter()
            .any(|&x| (got - x).abs() <= 0.01 * x.abs() + 1e-9),
        "quantile {q}: got {got}, exact values near rank {rank}: {near:?}"
    );
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

#[test]
fn statistics_match_exact_values_on_random_data() {
    let clock = Arc::new(ManualClock::new(NOW_S));
    let store = Store::open(config(&clock, None)).unwrap();
    store.create_group(spec("g")).unwrap();
    let mut w = Written::default();
    let mut rng = StdRng::seed_from_u64(17);
    put_random(&store, "g", &mut rng, 20_000, &mut w);
    let r = store.feature_stats("g", None).unwrap();
    assert_eq!(r.puts, 20_000);
    assert_eq!(r.last_write_ms, Some(NOW_S as u64 * 1000));
    for win in ["1h", "24h"] {
        let x = window(&r, "x", win);
        assert_eq!(x.count, 20_000);
        assert_eq!(x.nulls, w.x_nulls);
        let nums = x.numbers.as_ref().unwrap();
        let mut sorted = w.x.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(nums.count, sorted.len() as u64);
        assert_eq!(nums.min, sorted[0]);
        assert_eq!(nums.max, *sorted.last().unwrap());
        assert!(
            close(nums.mean, mean(&w.x), 1e-9),
            "{} {}",
            nums.mean,
            mean(&w.x)
        );
        assert!(close(nums.stddev, stddev(&w.x), 1e-9));
        assert_eq!(nums.quantiles.len(), 7);
        for &(q, v) in &nums.quantiles {
            assert_quantile(&sorted, q, v);
        }
        // HyperLogLog at precision 10: standard error 3.25%; allow 4 of them.
        let exact_distinct = {
            let mut s: Vec<u64> = w.x.iter().map(|v| v.to_bits()).collect();
            s.sort();
            s.dedup();
            s.len() as f64
        };
        assert!(close(x.distinct.unwrap(), exact_distinct, 0.13));

        let n = window(&r, "n", win);
        let distinct_n = w.n.iter().collect::<std::collections::HashSet<_>>().len() as f64;
        assert!(close(n.distinct.unwrap(), distinct_n, 0.13));
        let nn: Vec<f64> = w.n.iter().map(|&v| v as f64).collect();
        assert!(close(n.numbers.as_ref().unwrap().mean, mean(&nn), 1e-9));

        // Five cities: under the top table's capacity, so the counts are exact.
        let city = window(&r, "city", win);
        let mut exact: Vec<(String, u64)> = Vec::new();
        for c in &w.cities {
            match exact.iter_mut().find(|e| &e.0 == c) {
                Some(e) => e.1 += 1,
                None => exact.push((c.clone(), 1)),
            }
        }
        exact.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        assert_eq!(city.top, exact);

        let flag = window(&r, "flag", win);
        let trues = w.flags.iter().filter(|&&f| f).count() as u64;
        assert!(flag.top.contains(&("true".to_string(), trues)));
        assert!(flag.top.contains(&("false".to_string(), 20_000 - trues)));
        let share = flag.numbers.as_ref().unwrap().mean;
        assert!(close(share, trues as f64 / 20_000.0, 1e-9));

        let emb = window(&r, "emb", win);
        let norms = emb.numbers.as_ref().unwrap();
        assert!(norms.is_norm);
        assert!(close(norms.mean, mean(&w.norms), 1e-6));
    }
    // Entities: HyperLogLog at precision 12 (1.6%); allow 4 standard errors.
    let entities = r
        .windows
        .iter()
        .find(|x| x.window == "1h")
        .unwrap()
        .entities;
    assert!(
        close(entities, w.entities.len() as f64, 0.065),
        "{entities}"
    );
    assert!(close(r.entities_total, w.entities.len() as f64, 0.065));
    // One feature only.
    let one = store.feature_stats("g", Some("city")).unwrap();
    assert_eq!(one.features.len(), 1);
    assert!(store.feature_stats("g", Some("nope")).is_err());
    assert!(store.feature_stats("nope", None).is_err());
    // Memory is bounded and reported.
    assert!(r.memory_bytes > 0);
    assert!(r.features.iter().all(|f| f.memory_bytes > 0));
}

#[test]
fn windows_roll_over_with_the_clock() {
    let clock = Arc::new(ManualClock::new(NOW_S));
    let store = Store::open(config(&clock, None)).unwrap();
    store.create_group(spec("g")).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    put_random(&store, "g", &mut rng, 100, &mut Written::default());
    clock.advance(30 * 60);
    put_random(&store, "g", &mut rng, 50, &mut Written::default());
    let counts = |store: &Store| {
        let r = store.feature_stats("g", Some("n")).unwrap();
        (
            window(&r, "n", "1h").count,
            window(&r, "n", "24h").count,
            r.features[0].count,
        )
    };
    assert_eq!(counts(&store), (150, 150, 150));
    // 65 minutes after the first puts: they have left the hour, not the day.
    clock.advance(35 * 60);
    assert_eq!(counts(&store), (50, 150, 150));
    clock.advance(60 * 60);
    assert_eq!(counts(&store), (0, 150, 150));
    clock.advance(24 * 3600);
    assert_eq!(counts(&store), (0, 0, 150), "totals outlive the windows");
    let r = store.feature_stats("g", Some("n")).unwrap();
    assert!(window(&r, "n", "1h").numbers.is_none());
}

#[test]
fn statistics_survive_restart_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_S));
    let mut rng = StdRng::seed_from_u64(3);
    let before = {
        let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
        store.create_group(spec("g")).unwrap();
        put_random(&store, "g", &mut rng, 3000, &mut Written::default());
        let r = store.feature_stats("g", None).unwrap();
        store.close().unwrap();
        r
    };
    let saved = {
        let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
        let r = store.feature_stats("g", None).unwrap();
        assert_eq!(r, before, "a clean restart keeps every statistic");
        // Saved, then more puts, then the process ends without closing: the statistics come
        // back as of the save.
        put_random(&store, "g", &mut rng, 500, &mut Written::default());
        store.save_stats().unwrap();
        store.flush().unwrap();
        let saved = store.feature_stats("g", None).unwrap();
        put_random(&store, "g", &mut rng, 700, &mut Written::default());
        drop(store);
        saved
    };
    let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
    let r = store.feature_stats("g", None).unwrap();
    assert_eq!(r.puts, 3500);
    assert_eq!(r, saved);
}

#[test]
fn a_damaged_saved_record_resets_that_group_only() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_S));
    let mut rng = StdRng::seed_from_u64(4);
    {
        let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
        store.create_group(spec("a")).unwrap();
        store.create_group(spec("b")).unwrap();
        put_random(&store, "a", &mut rng, 100, &mut Written::default());
        put_random(&store, "b", &mut rng, 200, &mut Written::default());
        store.close().unwrap();
    }
    {
        // Overwrite group a's saved statistics with bytes that are not a statistics record.
        let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
        let id = store.describe_group("a").unwrap().id;
        let mut config = config(&clock, Some(dir.path()));
        config.feature_stats = false;
        drop(store);
        let store = Store::open(config).unwrap();
        let key = quiver_engine::quality::stats_key(id);
        let mut bytes = store.engine().get(0, &key).unwrap().unwrap().value;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        store
            .engine()
            .put(0, &key, &bytes, &quiver_engine::WriteOptions::default())
            .unwrap();
        store.close().unwrap();
    }
    let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
    assert_eq!(store.feature_stats("a", None).unwrap().puts, 0);
    assert_eq!(store.feature_stats("b", None).unwrap().puts, 200);
    // The data itself is untouched.
    let (items, _) = store
        .scan("a", quiver_engine::ScanCursor::START, 1000)
        .unwrap();
    assert!(!items.is_empty());
}

#[test]
fn a_dropped_group_takes_its_statistics_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_S));
    let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
    store.create_group(spec("g")).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    put_random(&store, "g", &mut rng, 100, &mut Written::default());
    store.save_stats().unwrap();
    store.drop_group("g").unwrap();
    store.create_group(spec("g")).unwrap();
    assert_eq!(store.feature_stats("g", None).unwrap().puts, 0);
    store.close().unwrap();
    let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
    assert_eq!(store.feature_stats("g", None).unwrap().puts, 0);
}

#[test]
fn freshness_is_the_newest_write_and_the_share_of_entities_updated() {
    let clock = Arc::new(ManualClock::new(NOW_S));
    let store = Store::open(config(&clock, None)).unwrap();
    store.create_group(spec("g")).unwrap();
    let r = store.feature_stats("g", None).unwrap();
    assert_eq!((r.staleness_ms, r.windows[0].updated_share), (None, 0.0));
    let put = |entity: i64| {
        store
            .put(
                "g",
                &EntityKey::I64(entity),
                1,
                &[("n", Value::I64(1))],
                &PutOptions::default(),
            )
            .unwrap();
    };
    (0..4000).for_each(put);
    clock.advance(2 * 3600);
    (0..1000).for_each(put);
    clock.advance(600);
    let r = store.feature_stats("g", None).unwrap();
    assert_eq!(r.staleness_ms, Some(600_000));
    let hour = r.windows.iter().find(|w| w.window == "1h").unwrap();
    let day = r.windows.iter().find(|w| w.window == "24h").unwrap();
    // 1000 of 4000 entities in the last hour; every one in the day. Two HyperLogLog
    // estimates at 1.6% each: allow 5% on the ratio.
    assert!(
        (hour.updated_share - 0.25).abs() < 0.25 * 0.05,
        "{}",
        hour.updated_share
    );
    assert!(day.updated_share > 0.95, "{}", day.updated_share);
}

#[test]
fn a_group_is_stale_past_its_freshness_objective() {
    use quiver_engine::feature::{Alter, FeatureError, QualitySlo};
    let clock = Arc::new(ManualClock::new(NOW_S));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
    let mut s = spec("g");
    s.quality = QualitySlo {
        max_staleness_s: Some(900),
        ..QualitySlo::default()
    };
    store.create_group(s).unwrap();
    store.create_group(spec("free")).unwrap();
    // Never written: stale (nothing proves the group fresh).
    let r = store.feature_stats("g", None).unwrap();
    assert_eq!((r.max_staleness_ms, r.stale), (Some(900_000), Some(true)));
    // No objective: no verdict.
    assert_eq!(store.feature_stats("free", None).unwrap().stale, None);
    store
        .put(
            "g",
            &EntityKey::I64(1),
            1,
            &[("n", Value::I64(1))],
            &PutOptions::default(),
        )
        .unwrap();
    clock.advance(900);
    let r = store.feature_stats("g", None).unwrap();
    assert_eq!((r.staleness_ms, r.stale), (Some(900_000), Some(false)));
    clock.advance(1);
    let r = store.feature_stats("g", None).unwrap();
    assert_eq!((r.staleness_ms, r.stale), (Some(901_000), Some(true)));
    // Loosened by alter (a new schema version), kept across a restart.
    let altered = store
        .alter_group("g", Alter::SetMaxStaleness(Some(3600)))
        .unwrap();
    assert_eq!(altered.version, 2);
    store.close().unwrap();
    let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
    assert_eq!(
        store.describe_group("g").unwrap().quality.max_staleness_s,
        Some(3600)
    );
    assert_eq!(store.feature_stats("g", None).unwrap().stale, Some(false));
    store
        .alter_group("g", Alter::SetMaxStaleness(None))
        .unwrap();
    assert_eq!(store.feature_stats("g", None).unwrap().stale, None);
    // Bad objectives are refused with the limit.
    let err = store
        .alter_group("g", Alter::SetMaxStaleness(Some(0)))
        .unwrap_err();
    assert!(err.to_string().contains("1 s to"), "{err}");
    let err = store
        .alter_group("g", Alter::SetDriftPsi(Some(f64::INFINITY)))
        .unwrap_err();
    assert!(
        matches!(
            err,
            quiver_engine::Error::Feature(FeatureError::InvalidSlo { .. })
        ),
        "{err}"
    );
}

#[test]
fn a_save_writes_only_the_groups_that_changed() {
    let clock = Arc::new(ManualClock::new(NOW_S));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
    store.create_group(spec("a")).unwrap();
    store.create_group(spec("b")).unwrap();
    let put = |group: &str| {
        store
            .put(
                group,
                &EntityKey::I64(1),
                1,
                &[("n", Value::I64(1))],
                &PutOptions::default(),
            )
            .unwrap();
    };
    // Engine puts made by one save: the stats records it writes.
    let save = || {
        let before = store.stats().puts;
        store.save_stats().unwrap();
        store.stats().puts - before
    };
    assert_eq!(save(), 0, "nothing recorded yet");
    put("a");
    assert_eq!(save(), 1, "only group a changed");
    assert_eq!(save(), 0, "nothing changed since");
    clock.advance(3600);
    assert_eq!(save(), 0, "time alone changes nothing saved");
    put("a");
    put("b");
    assert_eq!(save(), 2);
    store.close().unwrap();
    // Reopened, the loaded statistics count as saved: a close with no put writes nothing.
    let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
    assert_eq!(store.feature_stats("a", None).unwrap().puts, 2);
    let before = store.stats().puts;
    store.save_stats().unwrap();
    assert_eq!(store.stats().puts, before);
    store.close().unwrap();
    let store = Store::open(config(&clock, Some(dir.path()))).unwrap();
    assert_eq!(store.feature_stats("b", None).unwrap().puts, 1);
}
