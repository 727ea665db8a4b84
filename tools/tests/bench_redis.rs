//! The Redis target against a small in-test RESP server: Feast's layout (one hash per entity),
//! pipelining, batch gets and read-modify-writes all answer correctly; an unreachable server is
//! a clear setup error.
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quiver_tools::bench::target::resp::{encode_command, read_reply, Reply};
use quiver_tools::bench::target::{self, TargetOptions, TargetSpec};
use quiver_tools::bench::workload::RecordShape;
use quiver_tools::bench::{execute, parse_args};

type Db = Arc<Mutex<HashMap<Vec<u8>, HashMap<Vec<u8>, Vec<u8>>>>>;

/// Serves PING, HSET and HMGET until the client hangs up.
fn serve(stream: TcpStream, db: Db) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Ok(Reply::Array(Some(args))) = read_reply(&mut reader) {
        let args: Vec<Vec<u8>> = args
            .into_iter()
            .map(|a| match a {
                Reply::Bulk(Some(b)) => b,
                other => panic!("command argument {other:?}"),
            })
            .collect();
        let mut out = Vec::new();
        let mut db = db.lock().unwrap();
        match args[0].as_slice() {
            b"PING" => out.extend_from_slice(b"+PONG\r\n"),
            b"HSET" => {
                let hash = db.entry(args[1].clone()).or_default();
                let mut added = 0;
                for pair in args[2..].chunks(2) {
                    added += hash.insert(pair[0].clone(), pair[1].clone()).is_none() as i64;
                }
                out.extend_from_slice(format!(":{added}\r\n").as_bytes());
            }
            b"HMGET" => {
                let hash = db.get(&args[1]);
                out.extend_from_slice(format!("*{}\r\n", args.len() - 2).as_bytes());
                for field in &args[2..] {
                    match hash.and_then(|h| h.get(field)) {
                        Some(v) => {
                            out.extend_from_slice(format!("${}\r\n", v.len()).as_bytes());
                            out.extend_from_slice(v);
                            out.extend_from_slice(b"\r\n");
                        }
                        None => out.extend_from_slice(b"$-1\r\n"),
                    }
                }
            }
            other => panic!("unexpected command {}", String::from_utf8_lossy(other)),
        }
        drop(db);
        if writer.write_all(&out).is_err() {
            return;
        }
    }
}

fn fake_redis() -> (String, Db) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let db: Db = Arc::default();
    let shared = Arc::clone(&db);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let db = Arc::clone(&shared);
            std::thread::spawn(move || serve(stream, db));
        }
    });
    (addr, db)
}

fn options() -> TargetOptions {
    TargetOptions {
        shape: RecordShape {
            scalars: 3,
            vector_dim: 4,
        },
        records: 200,
        device_bytes: 0,
        sync_writes: false,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        auth_token: None,
        tls: Default::default(),
    }
}

fn run(addr: &str, workload: &str, extra: &[&str]) -> quiver_tools::bench::report::Report {
    let mut flags = vec![
        format!("--target=redis:{addr}"),
        "--records=200".into(),
        "--scalars=3".into(),
        "--vector-dim=4".into(),
        format!("--workload={workload}"),
        "--rate=1000".into(),
        "--connections=2".into(),
        "--pipeline=4".into(),
        "--warmup=20ms".into(),
        "--duration=200ms".into(),
        "--quiet".into(),
    ];
    flags.extend(extra.iter().map(|s| s.to_string()));
    let args = parse_args(flags).unwrap();
    let target = target::open(&args.target, &options()).unwrap();
    execute(&args, target).unwrap()
}

#[test]
fn hashes_follow_feasts_layout() {
    let (addr, db) = fake_redis();
    let report = run(&addr, "read-only", &[]);
    assert_eq!((report.errors, report.not_found), (0, 0));
    let db = db.lock().unwrap();
    assert_eq!(db.len(), 200, "one hash per entity");
    let hash = &db[b"bench:17".as_slice()];
    let mut fields: Vec<&[u8]> = hash.keys().map(Vec::as_slice).collect();
    fields.sort();
    assert_eq!(
        fields,
        [b"_ts:bench".as_slice(), b"embedding", b"f0", b"f1", b"f2"]
    );
    assert_eq!(
        hash[b"embedding".as_slice()].len(),
        16,
        "four little-endian f32"
    );
    assert_eq!(hash[b"f0".as_slice()].len(), 4);
}

#[test]
fn pipelined_workloads_answer_every_operation() {
    let (addr, _db) = fake_redis();
    for workload in ["ycsb-a", "ycsb-d", "ycsb-f"] {
        let report = run(&addr, workload, &[]);
        assert_eq!(report.ops, report.expected_ops.unwrap(), "{workload}");
        assert_eq!(
            (report.errors, report.not_found),
            (0, 0),
            "{workload}: {:?}",
            report.first_error
        );
    }
    let report = run(&addr, "batch-get", &["--batch=10", "--no-load"]);
    assert_eq!((report.errors, report.not_found), (0, 0));
    assert_eq!(report.batch_keys, Some(10));
}

#[test]
fn missing_entities_are_not_found() {
    let (addr, _db) = fake_redis();
    let report = run(&addr, "read-only", &["--no-load"]);
    assert_eq!(report.not_found, report.ops);
    assert_eq!(report.errors, 0);
}

#[test]
fn unreachable_server_is_named() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let spec: TargetSpec = format!("redis:127.0.0.1:{port}").parse().unwrap();
    let err = target::open(&spec, &options()).err().unwrap().to_string();
    assert_eq!(
        err,
        format!("cannot connect to 127.0.0.1:{port}: connection refused")
    );
    let args = parse_args([
        format!("--target=redis:127.0.0.1:{port}"),
        "--rate=10".into(),
    ])
    .unwrap();
    assert_eq!(
        quiver_tools::bench::run(&args),
        quiver_tools::bench::EXIT_USAGE
    );
}

#[test]
fn target_specs_parse() {
    assert_eq!(
        "redis:h:1".parse::<TargetSpec>(),
        Ok(TargetSpec::Redis("h:1".into()))
    );
    assert_eq!(
        "embedded:memory".parse::<TargetSpec>(),
        Ok(TargetSpec::EmbeddedMemory)
    );
    assert_eq!(
        "embedded:/tmp/x".parse::<TargetSpec>(),
        Ok(TargetSpec::Embedded("/tmp/x".into()))
    );
    assert_eq!(
        "quiverd:h:7878".parse::<TargetSpec>(),
        Ok(TargetSpec::Quiverd("h:7878".into()))
    );
    assert!("mongo:x"
        .parse::<TargetSpec>()
        .unwrap_err()
        .contains("unknown target kind 'mongo'"));
    assert!("redis:"
        .parse::<TargetSpec>()
        .unwrap_err()
        .contains("nothing after"));
    let mut cmd = Vec::new();
    encode_command(&mut cmd, &["PING"]);
    assert_eq!(cmd, b"*1\r\n$4\r\nPING\r\n");
}
