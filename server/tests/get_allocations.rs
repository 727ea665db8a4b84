//! A GET does no heap allocation on quiverd's io_uring loop in steady state.
//!
//! This test binary has a counting global allocator of its own: it counts every allocation
//! (and reallocation) made on a thread named `quiver-loop-*`, the io_uring loops that serve
//! GETs. A quiverd runs in this process (`quiver_server::server::start`) and a real client
//! drives GETs over loopback TCP, one at a time and pipelined, from a memory store (reads
//! copied in place on the loop) and from a file store read with O_DIRECT (reads on the loop's
//! ring). The 10,000 measured GETs must cost the loop no allocation at all. They use more
//! connections and pipeline deeper than the memory store's warm-up, so that a buffer that
//! grows with the load (rather than being reserved, or lent from the loop's pools) shows up.
//!
//! `QUIVER_ALLOC_TRACE=1` prints a backtrace of each counted allocation (to find its site).

use quiver_engine::feature::{
    EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Status, Value,
};
use quiver_engine::{Config, Store};
use quiver_server::client::{Client, ClientConfig};
use quiver_server::config::{DataConfig, ServerConfig};
use quiver_server::protocol::{Request, Response};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

struct Counting;

/// Allocations made on the loop threads while [`COUNTING`] is on.
static LOOP_ALLOCS: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);
static TRACE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// 0: not known yet, 1: a loop thread, 2: another thread.
    static ROLE: Cell<u8> = const { Cell::new(0) };
    /// Set while a trace is printed (its own allocations are not counted).
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

fn on_loop_thread() -> bool {
    ROLE.try_with(|role| {
        if role.get() == 0 {
            let mut name = [0u8; 16];
            // SAFETY: the buffer is 16 bytes, the most a thread name takes with its NUL, and
            // pthread_getname_np writes nothing beyond the length it is given.
            let rc = unsafe {
                libc::pthread_getname_np(libc::pthread_self(), name.as_mut_ptr().cast(), 16)
            };
            role.set(if rc == 0 && name.starts_with(b"quiver-loop-") {
                1
            } else {
                2
            });
        }
        role.get() == 1
    })
    .unwrap_or(false)
}

fn count() {
    if !COUNTING.load(Relaxed) || !on_loop_thread() {
        return;
    }
    if TRACING.try_with(|t| t.get()).unwrap_or(true) {
        return;
    }
    LOOP_ALLOCS.fetch_add(1, Relaxed);
    if TRACE.load(Relaxed) {
        TRACING.with(|t| t.set(true));
        eprintln!(
            "allocation on a loop thread:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        TRACING.with(|t| t.set(false));
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; the counting beside it
// allocates nothing (a thread-local byte and an atomic).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's promises about `layout` hold for System as for us.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by System (every allocation goes there) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Entities loaded; rows of 8 f32 and a 128-float vector (about 600 bytes), as `quiver bench`
/// writes them.
const ENTITIES: i64 = 2_000;
const SCALARS: usize = 8;
const DIM: usize = 128;
/// Connections the measured GETs use (all opened and handshaken before counting starts).
const MEASURED_CONNECTIONS: usize = 8;
/// The measured GETs as (connections, GETs, depth on each connection), 10,000 in all: one
/// at a time, then 8 connections 32 deep (about 22 KiB of answers queued per connection at
/// once), then one connection 256 deep (its 28 KiB of requests arrive in more than one
/// receive buffer, so frames are split between receives and carried over).
const MEASURED: &[(usize, usize, usize)] = &[(1, 1_040, 1), (8, 4_864, 32), (1, 4_096, 256)];
/// A short, shallow warm-up: fewer connections and less depth than [`MEASURED`].
const SHALLOW_WARM_UP: &[(usize, usize, usize)] = &[(1, 2_000, 1), (4, 2_000, 4)];

fn spec() -> GroupSpec {
    let mut features: Vec<FeatureSpec> = (0..SCALARS)
        .map(|i| FeatureSpec::new(format!("f{i}"), FeatureType::F32))
        .collect();
    features.push(FeatureSpec::new("v", FeatureType::Vector(DIM as u32)));
    GroupSpec::new("g", KeyType::I64, features)
}

fn refs() -> Vec<FeatureRef> {
    let mut refs: Vec<FeatureRef> = (0..SCALARS)
        .map(|i| FeatureRef::new("g", format!("f{i}")))
        .collect();
    refs.push(FeatureRef::new("g", "v"));
    refs
}

fn client(addr: &str) -> Client {
    let config = ClientConfig {
        io_timeout: Some(std::time::Duration::from_secs(20)),
        ..ClientConfig::default()
    };
    Client::connect(addr, config).unwrap()
}

fn load(c: &mut Client) {
    c.create_group(spec()).unwrap();
    let opts = PutOptions::default();
    let mut ids = Vec::new();
    for i in 0..ENTITIES {
        let mut values: Vec<(String, Value)> = (0..SCALARS)
            .map(|f| (format!("f{f}"), Value::F32((i * 10 + f as i64) as f32)))
            .collect();
        values.push(("v".into(), Value::Vector(vec![i as f32; DIM])));
        let put = Request::Put {
            group: "g".into(),
            key: EntityKey::I64(i),
            event_time_ms: 1_000,
            options: opts,
            values,
        };
        ids.push(c.send(&put).unwrap());
        if ids.len() == 64 {
            c.flush().unwrap();
            for id in ids.drain(..) {
                assert!(matches!(c.wait(id).unwrap(), Response::Put(_)));
            }
        }
    }
    c.flush().unwrap();
    for id in ids {
        assert!(matches!(c.wait(id).unwrap(), Response::Put(_)));
    }
}

/// Writes filler rows past the open write block and flushes, so that every row of group "g"
/// lies in a sealed block on the device (for a memory store, its memory "device").
fn seal(store: &Store) {
    let mut filler = spec();
    filler.name = "w".into();
    filler.features = vec![FeatureSpec::new("blob", FeatureType::Bytes)];
    store.create_group(filler).unwrap();
    for i in 0..64 {
        let blob = Value::Bytes(vec![i as u8; 8 << 10]);
        let opts = PutOptions::default();
        store
            .put("w", &EntityKey::I64(i), 1_000, &[("blob", blob)], &opts)
            .unwrap();
    }
    store.flush().unwrap();
}

/// `n` GETs of keys spread over every entity, `depth` in flight on each of `clients`;
/// checks every answer.
fn gets(clients: &mut [Client], n: usize, depth: usize) {
    let refs = refs();
    let mut key = 0i64;
    let mut done = 0;
    while done < n {
        let mut sent = Vec::new();
        for c in clients.iter_mut() {
            let ids: Vec<(i64, u64)> = (0..depth)
                .map(|_| {
                    key = (key + 7919) % ENTITIES;
                    let get = Request::Get {
                        key: EntityKey::I64(key),
                        features: refs.clone(),
                    };
                    (key, c.send(&get).unwrap())
                })
                .collect();
            c.flush().unwrap();
            sent.push(ids);
        }
        for (c, ids) in clients.iter_mut().zip(sent) {
            for (k, id) in ids {
                let Response::Get(values) = c.wait(id).unwrap() else {
                    panic!("GET of {k} did not get a GET response");
                };
                assert_eq!(values.len(), SCALARS + 1);
                assert!(values.iter().all(|v| v.status == Status::Present));
                assert_eq!(values[1].value, Value::F32((k * 10 + 1) as f32));
                assert_eq!(values[SCALARS].value, Value::Vector(vec![k as f32; DIM]));
                done += 1;
            }
        }
    }
}

/// Loads a store behind an in-process quiverd (one loop), warms the GET path up, then counts
/// the loop's allocations over GETs one at a time and pipelined from several connections.
fn assert_no_allocation_per_get(
    config: ServerConfig,
    engine: Config,
    warm_up: &[(usize, usize, usize)],
) -> u64 {
    // The counter is the process's: one test at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    TRACE.store(std::env::var_os("QUIVER_ALLOC_TRACE").is_some(), Relaxed);
    let store = Arc::new(Store::open(engine).unwrap());
    let handle = quiver_server::server::start(config, store.clone()).unwrap();
    assert_eq!(
        handle.event_loop().name(),
        "io_uring",
        "these GETs must be served by the io_uring loops"
    );
    let addr = handle.local_addr().to_string();
    let mut loader = client(&addr);
    load(&mut loader);
    seal(&store);
    let mut clients: Vec<Client> = (0..MEASURED_CONNECTIONS).map(|_| client(&addr)).collect();
    // Warm-up: plans cached and the engine's per-thread buffers touched. For a memory store
    // it is shorter and shallower than the measured GETs: whatever grows with the load must
    // have been reserved for it (or be lent from the loop's pools), not grown by the warm-up.
    for &(conns, n, depth) in warm_up {
        gets(&mut clients[..conns], n, depth);
    }
    let device_reads_before = handle.metrics().loop_device_reads.load(Relaxed);
    COUNTING.store(true, Relaxed);
    for &(conns, n, depth) in MEASURED {
        gets(&mut clients[..conns], n, depth);
    }
    COUNTING.store(false, Relaxed);
    let allocations = LOOP_ALLOCS.swap(0, Relaxed);
    let device_reads = handle.metrics().loop_device_reads.load(Relaxed) - device_reads_before;
    drop(clients);
    drop(loader);
    handle.shutdown();
    // Before the loop's buffers were reserved or pooled, this load counted 379 (memory
    // store): answers grew the connections' send buffers and split frames their read buffers.
    eprintln!("the io_uring loop allocated {allocations} times over 10,000 GETs in steady state");
    assert_eq!(
        allocations, 0,
        "the io_uring loop allocated {allocations} times over 10,000 GETs in steady state \
         (run with QUIVER_ALLOC_TRACE=1 to see where)"
    );
    device_reads
}

fn one_loop(mut config: ServerConfig) -> ServerConfig {
    config.workers = 1;
    config.engine_threads = 2;
    config
}

#[test]
fn a_memory_resident_get_allocates_nothing_on_the_loop() {
    let config = one_loop(ServerConfig::for_memory(256 << 20));
    assert_no_allocation_per_get(config, Config::memory(256 << 20), SHALLOW_WARM_UP);
}

#[test]
fn a_device_backed_get_allocates_nothing_on_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut config = one_loop(ServerConfig::for_memory(256 << 20));
    config.data = DataConfig::Path {
        path: path.clone(),
        size_bytes: 256 << 20,
    };
    let mut engine = Config::file(&path, 256 << 20);
    // Every GET reads the device: no block of recent writes kept in memory.
    engine.post_write_cache_bytes = 0;
    engine.write_block_bytes = 128 << 10;
    // A device-backed GET's own state (its PendingGet, the records its rows are read into,
    // the aligned read buffers) is pooled up to the most GETs the loop had waiting for the
    // device at once, not reserved up front: this warm-up reaches the measured depths.
    let device_reads = assert_no_allocation_per_get(config, engine, MEASURED);
    assert!(
        device_reads >= 10_000,
        "only {device_reads} of the 10,000 GETs read the device on the loop"
    );
}
