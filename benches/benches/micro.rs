//! Criterion microbenchmarks: the index at 10 million records, the record frame codec, the
//! checksum, a put through the log writer, and the server's frame codec.
//!
//! `QUIVER_BENCH_INDEX_RECORDS` sets the index size (default 10,000,000; the index is built
//! once, before its benchmarks run, and takes about 400 MB).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use quiver_engine::feature::{EntityKey, FeatureRef, FeatureValue, Status, Value};
use quiver_engine::{Config, Engine, WriteOptions};
use quiver_index::{digest, Digest, Entry, Index, Location};
use quiver_server::protocol::{
    decode_request, decode_response, encode_request, encode_response, FrameHeader, Opcode, Request,
    Response, HEADER_LEN,
};
use quiver_wal::format::{decode_record, padded_frame_len, RecordInput};

fn index_records() -> u64 {
    std::env::var("QUIVER_BENCH_INDEX_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| (1_000..=200_000_000).contains(&n))
        .unwrap_or(10_000_000)
}

fn entry(i: u64) -> Entry {
    Entry {
        loc: Location::new((i % 100_000) as u32, (i % 60_000) as u32, 43)
            .expect("location within limits"),
        generation: i as u16,
        expiry_s: 0,
        last_update_s: 1_700_000_000,
    }
}

fn d(i: u64) -> Digest {
    digest(1, &quiver_benches::workload::key(i))
}

fn index(c: &mut Criterion) {
    let n = index_records();
    let idx = Index::with_capacity(n as usize);
    for i in 0..n {
        idx.insert(d(i), entry(i));
    }
    let mut g = c.benchmark_group(format!("index_{n}"));
    let mut u = quiver_benches::workload::Uniform::new(7, n);
    g.bench_function("get_hit", |b| {
        b.iter(|| black_box(idx.get(d(u.next_index()))))
    });
    let probes: Vec<Digest> = (0..16).map(|_| d(u.next_index())).collect();
    let mut out = Vec::with_capacity(16);
    g.throughput(Throughput::Elements(16));
    g.bench_function("get_many_16", |b| {
        b.iter(|| {
            out.clear();
            idx.get_many(black_box(&probes), &mut out);
            black_box(out.len())
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("update_existing", |b| {
        b.iter(|| {
            let i = u.next_index();
            black_box(idx.insert(d(i), entry(i + 1)))
        })
    });
    let mut fresh = n;
    g.bench_function("insert_new", |b| {
        b.iter(|| {
            fresh += 1;
            black_box(idx.insert(d(fresh), entry(fresh)))
        })
    });
    g.finish();
}

fn record_codec(c: &mut Criterion) {
    let key = quiver_benches::workload::key(42);
    let mut value = Vec::new();
    quiver_benches::workload::value(42, 0, 600, &mut value);
    let input = RecordInput {
        lsn: 9,
        group: 1,
        key: &key,
        value: &value,
        flags: 0,
        generation: 3,
        expiry_s: 0,
        last_update_s: 1_700_000_000,
    };
    let mut frame = vec![0u8; padded_frame_len(input.frame_len())];
    let mut g = c.benchmark_group("record_600B");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| black_box(&input).encode(5, black_box(&mut frame)))
    });
    input.encode(5, &mut frame);
    g.bench_function("decode_verify", |b| {
        b.iter(|| {
            black_box(
                decode_record(black_box(&frame), 1, 0, 5)
                    .expect("valid frame")
                    .value
                    .len(),
            )
        })
    });
    g.bench_function("xxh3_64_600B", |b| {
        b.iter(|| black_box(xxhash_rust::xxh3::xxh3_64(black_box(&value))))
    });
    g.finish();
}

fn engine_put(c: &mut Criterion) {
    let e = Engine::open(Config::memory(512 << 20)).expect("memory store opens");
    let mut value = Vec::new();
    quiver_benches::workload::value(1, 0, 600, &mut value);
    let w = WriteOptions::default();
    let mut i = 0u64;
    let mut g = c.benchmark_group("engine_memory");
    g.throughput(Throughput::Elements(1));
    // Sustained overwrites fill the store faster than the first touch of its pages lets
    // defragmentation free them, so a put may meet "device full": it waits for space like
    // a client would, and the wait counts in the time.
    g.bench_function("put_600B_overwrite_100k_keys", |b| {
        b.iter(|| {
            i += 1;
            let k = quiver_benches::workload::key(i % 100_000);
            black_box(
                quiver_benches::store::put_waiting(&e, &k, &value, &w)
                    .expect("put into memory store"),
            )
        })
    });
    g.bench_function("get_600B_in_memory", |b| {
        b.iter(|| {
            i += 7;
            let k = quiver_benches::workload::key(i % 100_000);
            black_box(e.get(1, &k).expect("get from memory store"))
        })
    });
    g.finish();
    e.close().expect("memory store closes");
}

fn frame_codec(c: &mut Criterion) {
    let features: Vec<FeatureRef> = (0..10)
        .map(|f| FeatureRef::new("user", format!("f{f}")))
        .collect();
    let req = Request::Get {
        key: EntityKey::String("user:000000042".into()),
        features,
    };
    let values: Vec<FeatureValue> = (0..10)
        .map(|f| FeatureValue {
            status: Status::Present,
            value: Value::F32(f as f32),
            event_time_ms: 1_700_000_000_000,
        })
        .collect();
    let resp = Response::Get(values);
    let mut buf = Vec::with_capacity(512);
    let mut g = c.benchmark_group("frame_get_10_features");
    g.bench_function("encode_request", |b| {
        b.iter(|| {
            buf.clear();
            encode_request(7, black_box(&req), &mut buf);
            black_box(buf.len())
        })
    });
    buf.clear();
    encode_request(7, &req, &mut buf);
    let body = buf[HEADER_LEN..].to_vec();
    g.bench_function("decode_request", |b| {
        b.iter(|| black_box(decode_request(Opcode::Get, black_box(&body)).expect("valid request")))
    });
    g.bench_function("encode_response", |b| {
        b.iter(|| {
            buf.clear();
            encode_response(&mut buf, Opcode::Get, 7, black_box(&resp));
            black_box(buf.len())
        })
    });
    buf.clear();
    encode_response(&mut buf, Opcode::Get, 7, &resp);
    let header_bytes: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().expect("header length");
    let header = FrameHeader::decode(&header_bytes, 1 << 20).expect("valid header");
    let rbody = buf[HEADER_LEN..].to_vec();
    g.bench_function("decode_response", |b| {
        b.iter_batched(
            || (),
            |()| black_box(decode_response(&header, black_box(&rbody)).expect("valid response")),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(30);
    targets = record_codec, frame_codec, engine_put, index
}
criterion_main!(benches);
