//! Key choosers, after YCSB's generators: uniform, scrambled zipfian and skewed-latest.
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::SmallRng;
use rand::Rng;

/// YCSB's default zipfian constant.
pub const ZIPFIAN_THETA: f64 = 0.99;
/// YCSB's scrambled zipfian draws from this many items, then hashes into the key space.
const SCRAMBLED_ITEM_COUNT: u64 = 10_000_000_000;
/// zeta(SCRAMBLED_ITEM_COUNT, 0.99), precomputed by YCSB (ScrambledZipfianGenerator.ZETAN).
const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// How keys are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    Uniform,
    Zipfian,
    Latest,
}

impl FromStr for Distribution {
    type Err = String;

    fn from_str(text: &str) -> Result<Distribution, String> {
        match text {
            "uniform" => Ok(Distribution::Uniform),
            "zipfian" => Ok(Distribution::Zipfian),
            "latest" => Ok(Distribution::Latest),
            _ => Err(format!(
                "unknown distribution '{text}'; expected uniform, zipfian or latest"
            )),
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
            Distribution::Latest => "latest",
        })
    }
}

/// YCSB's `ZipfianGenerator`: item 0 is the most popular, with incremental zeta when the item
/// count grows (used by the latest distribution as records are inserted).
#[derive(Debug, Clone)]
pub struct Zipfian {
    theta: f64,
    alpha: f64,
    zeta2theta: f64,
    zetan: f64,
    eta: f64,
    count_for_zeta: u64,
}

impl Zipfian {
    /// A generator over `items` items (computes zeta in O(items)).
    pub fn new(items: u64, theta: f64) -> Zipfian {
        let zetan = zeta(0, items, theta, 0.0);
        Zipfian::with_zetan(items, theta, zetan)
    }

    /// A generator over `items` items whose zeta is already known.
    pub fn with_zetan(items: u64, theta: f64, zetan: f64) -> Zipfian {
        assert!(items >= 1, "a zipfian generator needs at least one item");
        let zeta2theta = zeta(0, 2, theta, 0.0);
        let mut gen = Zipfian {
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta2theta,
            zetan,
            eta: 0.0,
            count_for_zeta: items,
        };
        gen.eta = gen.eta_for(items);
        gen
    }

    fn eta_for(&self, items: u64) -> f64 {
        (1.0 - (2.0 / items as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2theta / self.zetan)
    }

    /// Draws a value in `0..items`; `items` may differ from the last call (zeta is updated).
    pub fn next(&mut self, items: u64, rng: &mut SmallRng) -> u64 {
        assert!(items >= 1, "a zipfian draw needs at least one item");
        if items != self.count_for_zeta {
            self.zetan = if items > self.count_for_zeta {
                zeta(self.count_for_zeta, items, self.theta, self.zetan)
            } else {
                zeta(0, items, self.theta, 0.0)
            };
            self.count_for_zeta = items;
            self.eta = self.eta_for(items);
        }
        let u: f64 = rng.gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(items - 1);
        }
        let value = (items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        value.min(items - 1)
    }
}

/// zeta(n) = sum over i in st..n of 1/(i+1)^theta, continuing from `initial`.
fn zeta(st: u64, n: u64, theta: f64, initial: f64) -> f64 {
    (st..n).fold(initial, |sum, i| sum + 1.0 / ((i + 1) as f64).powf(theta))
}

/// YCSB's 64-bit FNV-1a over the eight bytes of `value`, as `Utils.fnvhash64`.
pub fn fnv_hash64(mut value: u64) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for _ in 0..8 {
        hash ^= value & 0xff;
        hash = hash.wrapping_mul(1_099_511_628_211);
        value >>= 8;
    }
    (hash as i64).wrapping_abs() as u64
}

/// YCSB's `ScrambledZipfianGenerator`: zipfian popularity, with the popular keys spread over
/// the key space by hashing rather than clustered at the start.
#[derive(Debug, Clone)]
pub struct ScrambledZipfian {
    items: u64,
    gen: Zipfian,
}

impl ScrambledZipfian {
    pub fn new(items: u64) -> ScrambledZipfian {
        assert!(items >= 1, "a zipfian generator needs at least one item");
        ScrambledZipfian {
            items,
            gen: Zipfian::with_zetan(SCRAMBLED_ITEM_COUNT, ZIPFIAN_THETA, SCRAMBLED_ZETAN),
        }
    }

    /// Draws a key in `0..items`.
    pub fn next(&mut self, rng: &mut SmallRng) -> u64 {
        let raw = self.gen.next(SCRAMBLED_ITEM_COUNT, rng);
        fnv_hash64(raw) % self.items
    }
}

/// Counts inserted keys and how many of them are acknowledged: readers of the latest
/// distribution only pick keys below the acknowledged mark (YCSB's
/// `AcknowledgedCounterGenerator`), so they never read a key whose insert is still in flight.
#[derive(Debug)]
pub struct InsertCounter {
    next: AtomicU64,
    acked: AtomicU64,
    /// Acknowledged keys above the contiguous prefix, waiting for the gap below them to close.
    pending: Mutex<BTreeSet<u64>>,
}

impl InsertCounter {
    /// A counter after `loaded` keys (0..loaded) exist.
    pub fn new(loaded: u64) -> Arc<InsertCounter> {
        Arc::new(InsertCounter {
            next: AtomicU64::new(loaded),
            acked: AtomicU64::new(loaded),
            pending: Mutex::new(BTreeSet::new()),
        })
    }

    /// Reserves the next key to insert.
    pub fn reserve(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks `key`'s insert as done (successfully or not: a failed insert must not stall readers).
    pub fn acknowledge(&self, key: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.insert(key);
        let mut acked = self.acked.load(Ordering::Relaxed);
        while pending.remove(&acked) {
            acked += 1;
        }
        self.acked.store(acked, Ordering::Release);
    }

    /// Keys `0..acknowledged()` are safe to read.
    pub fn acknowledged(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }
}

/// Picks keys for one connection.
#[derive(Debug, Clone)]
pub enum KeyChooser {
    Uniform {
        items: u64,
    },
    Zipfian(ScrambledZipfian),
    /// YCSB's `SkewedLatestGenerator`: the newest keys are the most popular.
    Latest {
        zipf: Zipfian,
        inserts: Arc<InsertCounter>,
    },
}

impl KeyChooser {
    /// `latest_zipf` is shared so zeta over the loaded keys is computed once per run.
    pub fn new(
        dist: Distribution,
        items: u64,
        inserts: &Arc<InsertCounter>,
        latest_zipf: Option<&Zipfian>,
    ) -> KeyChooser {
        match dist {
            Distribution::Uniform => KeyChooser::Uniform { items },
            Distribution::Zipfian => KeyChooser::Zipfian(ScrambledZipfian::new(items)),
            Distribution::Latest => KeyChooser::Latest {
                zipf: latest_zipf
                    .cloned()
                    .unwrap_or_else(|| Zipfian::new(items, ZIPFIAN_THETA)),
                inserts: Arc::clone(inserts),
            },
        }
    }

    /// The next key to read or update.
    pub fn next(&mut self, rng: &mut SmallRng) -> u64 {
        match self {
            KeyChooser::Uniform { items } => rng.gen_range(0..*items),
            KeyChooser::Zipfian(gen) => gen.next(rng),
            KeyChooser::Latest { zipf, inserts } => {
                let count = inserts.acknowledged().max(1);
                count - 1 - zipf.next(count, rng)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn scrambled_zipfian_spreads_hot_keys() {
        // The two hottest raw items hash to different, far-apart keys.
        assert_ne!(fnv_hash64(0) % 1000, fnv_hash64(1) % 1000);
        let mut gen = ScrambledZipfian::new(10);
        let mut rng = SmallRng::seed_from_u64(1);
        assert!((0..1000).all(|_| gen.next(&mut rng) < 10));
    }

    #[test]
    fn latest_prefers_newest_and_stays_in_range() {
        let inserts = InsertCounter::new(1000);
        let mut chooser = KeyChooser::new(Distribution::Latest, 1000, &inserts, None);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut newest = 0;
        for _ in 0..10_000 {
            let key = chooser.next(&mut rng);
            assert!(key < 1000);
            if key == 999 {
                newest += 1;
            }
        }
        assert!(newest > 500, "key 999 drawn {newest} times");
    }

    #[test]
    fn acknowledged_waits_for_gaps() {
        let inserts = InsertCounter::new(10);
        let a = inserts.reserve();
        let b = inserts.reserve();
        inserts.acknowledge(b);
        assert_eq!(inserts.acknowledged(), 10);
        inserts.acknowledge(a);
        assert_eq!(inserts.acknowledged(), 12);
    }
}
