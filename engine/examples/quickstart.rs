//! Opens a store in a file, writes, closes, reopens and reads back.
//!
//! `cargo run --release -p quiver-engine --example quickstart`

use quiver_engine::{Config, Durability, Engine, WriteOptions};

fn main() -> Result<(), quiver_engine::Error> {
    let path = std::path::Path::new("quiver-data/quickstart.db");
    // 256 MiB preallocated on first run; later runs reopen (and recover) the same store.
    let config = Config::file(path, 256 << 20);

    let engine = Engine::open(config.clone())?;
    println!(
        "opened {} ({:?}, recovery: {})",
        path.display(),
        engine.stats().backend,
        engine.recovery_report().mode
    );
    let sync = WriteOptions {
        durability: Some(Durability::Sync),
        ttl_s: None,
    };
    for user in 0..1000u32 {
        let key = format!("user:{user}");
        let value = format!("{{\"clicks_7d\": {}, \"country\": \"NZ\"}}", user * 3);
        engine.put(
            1,
            key.as_bytes(),
            value.as_bytes(),
            &WriteOptions::default(),
        )?;
    }
    engine.put(1, b"user:42", b"{\"clicks_7d\": 9001}", &sync)?;
    engine.delete(1, b"user:7", &sync)?;
    engine.close()?;

    let engine = Engine::open(config)?;
    let report = engine.recovery_report();
    println!(
        "reopened: {} records via {} in {} ms",
        engine.stats().records,
        report.mode,
        report.elapsed_ms
    );
    let got = engine.get(1, b"user:42")?.expect("user:42 was written");
    println!(
        "user:42 -> {} (generation {})",
        String::from_utf8_lossy(&got.value),
        got.generation
    );
    assert!(
        engine.get(1, b"user:7")?.is_none(),
        "a deleted record never comes back"
    );
    let batch: Vec<String> = (0..5).map(|i| format!("user:{i}")).collect();
    let keys: Vec<(u32, &[u8])> = batch.iter().map(|k| (1, k.as_bytes())).collect();
    for (k, r) in batch.iter().zip(engine.get_many(&keys)?) {
        println!(
            "{k} -> {}",
            r.map(|r| String::from_utf8_lossy(&r.value).into_owned())
                .unwrap_or_default()
        );
    }
    let s = engine.stats();
    println!(
        "records {} | live {} KiB | device {} MiB used of {} | index {} KiB",
        s.records,
        s.live_bytes >> 10,
        s.used_bytes >> 20,
        s.device_bytes >> 20,
        s.index_bytes >> 10
    );
    engine.close()
}
