//! The key generators stay in range, and zipfian is skewed far above uniform.
use rand::rngs::SmallRng;
use rand::SeedableRng;

use quiver_tools::bench::keys::{
    Distribution, InsertCounter, KeyChooser, ScrambledZipfian, Zipfian, ZIPFIAN_THETA,
};

const ITEMS: u64 = 1000;
const DRAWS: usize = 200_000;

fn counts(mut draw: impl FnMut() -> u64) -> Vec<u64> {
    let mut counts = vec![0u64; ITEMS as usize];
    for _ in 0..DRAWS {
        let key = draw();
        assert!(key < ITEMS, "key {key} out of 0..{ITEMS}");
        counts[key as usize] += 1;
    }
    counts
}

#[test]
fn scrambled_zipfian_is_in_range_and_skewed() {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut gen = ScrambledZipfian::new(ITEMS);
    let counts = counts(|| gen.next(&mut rng));
    let uniform = DRAWS as u64 / ITEMS;
    let hottest = *counts.iter().max().unwrap();
    // With theta 0.99 the hottest item draws about 1/zeta = 3.8% of all: ~38x uniform.
    assert!(
        hottest > 10 * uniform,
        "hottest {hottest}, uniform {uniform}"
    );
    // The hot keys are scrambled: the hottest is not simply key 0.
    let hottest_key = counts.iter().position(|&c| c == hottest).unwrap();
    assert_ne!(hottest_key, 0);
}

#[test]
fn plain_zipfian_prefers_low_items() {
    let mut rng = SmallRng::seed_from_u64(4);
    let mut gen = Zipfian::new(ITEMS, ZIPFIAN_THETA);
    let counts = counts(|| gen.next(ITEMS, &mut rng));
    assert_eq!(
        counts
            .iter()
            .position(|&c| c == *counts.iter().max().unwrap()),
        Some(0)
    );
    assert!(counts[0] > 20 * (DRAWS as u64 / ITEMS));
    assert!(counts[0] > counts[10] && counts[10] > counts[500]);
}

#[test]
fn uniform_is_not_skewed() {
    let mut rng = SmallRng::seed_from_u64(5);
    let inserts = InsertCounter::new(ITEMS);
    let mut chooser = KeyChooser::new(Distribution::Uniform, ITEMS, &inserts, None);
    let counts = counts(|| chooser.next(&mut rng));
    let hottest = *counts.iter().max().unwrap();
    assert!(hottest < 2 * (DRAWS as u64 / ITEMS), "hottest {hottest}");
}

#[test]
fn latest_follows_inserts() {
    let mut rng = SmallRng::seed_from_u64(6);
    let inserts = InsertCounter::new(500);
    let mut chooser = KeyChooser::new(Distribution::Latest, 500, &inserts, None);
    for _ in 0..500 {
        let key = inserts.reserve();
        inserts.acknowledge(key);
    }
    let counts = counts(|| chooser.next(&mut rng));
    let hottest = counts
        .iter()
        .position(|&c| c == *counts.iter().max().unwrap());
    assert_eq!(hottest, Some(999), "the newest key is the most read");
}
