//! The HTTP/JSON API (`quiverd --http`, docs/HTTP.md) over real HTTP: Feast-shaped reads with
//! values, statuses and event timestamps; writes; Feast feature views laid out as the Python
//! online store lays them; groups; auth; and bad requests answered with JSON errors while
//! the server goes on serving everybody else.

mod common;

use common::{feature, Quiverd};
use quiver_engine::feature::{
    Compression, EntityKey, FeatureSpec, FeatureType, GroupSpec, KeyType, PutOptions, Value,
};
use serde_json::{json, Value as Json};
use std::io::{Read, Write};
use std::net::TcpStream;

/// One request on a new connection; returns the status code and the body as JSON.
fn call(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Json) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: q\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (and close) before reading a refused body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {text:?}"));
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, json)
}

fn post(addr: &str, path: &str, body: &Json) -> (u16, Json) {
    call(addr, "POST", path, &[], body.to_string().as_bytes())
}

fn get(addr: &str, path: &str) -> (u16, Json) {
    call(addr, "GET", path, &[], b"")
}

fn user_group() -> GroupSpec {
    GroupSpec {
        name: "user".into(),
        key_type: KeyType::I64,
        features: vec![
            feature("ctr", FeatureType::F32),
            feature("clicks", FeatureType::I64),
            feature("name", FeatureType::String),
            feature("emb", FeatureType::Vector(3)),
            feature("tags", FeatureType::ListString),
        ],
        ttl_s: Some(3600),
        compression: Compression::None,
        allow_non_finite: false,
        description: String::new(),
        owner: String::new(),
        tags: vec![],
        history: None,
        on_violation: Default::default(),
        quality: Default::default(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn values_statuses_and_event_times_round_trip() {
    let (q, http) = Quiverd::start_with_http(&[]);
    q.client().create_group(user_group()).unwrap();
    let t = now_ms();
    let write = json!({
        "feature_view_name": "user",
        "df": {
            "key": [1, 2],
            "event_timestamp": [t, "2020-01-01T00:00:00.250Z"],
            "ctr": [0.25, 0.5],
            "clicks": [7, null],
            "name": ["ann", "bob"],
            "emb": [[1.0, -2.5, 3.0], [0.0, 0.0, 1.0]],
            "tags": [["a", "b"], []],
        },
        "sync": true,
    });
    let (status, body) = post(&http, "/write-to-online-store", &write);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"rows": 2, "written": 10, "skipped_stale": 0, "dropped": 0})
    );

    let read = json!({
        "features": ["user:ctr", "user:clicks", "user:emb", "user:tags"],
        "entities": {"user_id": [1, 2, 3]},
    });
    let (status, body) = post(&http, "/get-online-features", &read);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metadata"]["feature_names"],
        json!(["user_id", "ctr", "clicks", "emb", "tags"])
    );
    let r = &body["results"];
    assert_eq!(r[0]["values"], json!([1, 2, 3]));
    assert_eq!(r[0]["statuses"], json!(["PRESENT", "PRESENT", "PRESENT"]));
    // Entity 1 is fresh; entity 2 was written in 2020 and the group's TTL is an hour.
    assert_eq!(r[1]["values"], json!([0.25, null, null]));
    assert_eq!(
        r[1]["statuses"],
        json!(["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"])
    );
    let stamp = |ms: u64| {
        let mut t = chrono_free_rfc3339(ms);
        t.push('Z');
        t
    };
    assert_eq!(
        r[1]["event_timestamps"],
        json!([stamp(t), "2020-01-01T00:00:00.250Z", "1970-01-01T00:00:00Z"])
    );
    assert_eq!(r[2]["values"], json!([7, null, null]));
    assert_eq!(r[3]["values"], json!([[1.0, -2.5, 3.0], null, null]));
    assert_eq!(r[4]["values"][0], json!(["a", "b"]));

    // A stored null reads NULL_VALUE once fresh; full feature names prefix the view.
    let fresh = json!({"feature_view_name": "user", "df": {"key": [2], "event_timestamp": [t], "clicks": [null]}});
    assert_eq!(post(&http, "/write-to-online-store", &fresh).0, 200);
    let read =
        json!({"features": ["user:clicks"], "entities": {"key": [2]}, "full_feature_names": true});
    let (_, body) = post(&http, "/get-online-features", &read);
    assert_eq!(
        body["metadata"]["feature_names"],
        json!(["key", "user__clicks"])
    );
    assert_eq!(body["results"][1]["statuses"], json!(["NULL_VALUE"]));
    assert_eq!(body["results"][1]["values"], json!([null]));

    // A stale write is skipped, per feature, as over the binary protocol.
    let stale = json!({"feature_view_name": "user", "df": {"key": [1], "event_timestamp": [t - 1], "ctr": [9.0]}});
    let (_, body) = post(&http, "/write-to-online-store", &stale);
    assert_eq!(
        body,
        json!({"rows": 1, "written": 0, "skipped_stale": 1, "dropped": 0})
    );
    let got = q
        .client()
        .get(EntityKey::I64(1), vec!["user:ctr".parse().unwrap()])
        .unwrap();
    assert_eq!(got[0].value, Value::F32(0.25));
}

/// `ms` as RFC 3339 without the zone letter (what the server writes for a millisecond time).
fn chrono_free_rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if !ms.is_multiple_of(1000) {
        out.push_str(&format!(".{:03}", ms % 1000));
    }
    out
}

/// Feast's `serialize_entity_key` (version 3) of one INT64 join key.
fn feast_key(join_key: &str, value: i64) -> Vec<u8> {
    let mut k = 1u32.to_le_bytes().to_vec();
    k.extend_from_slice(&2u32.to_le_bytes());
    k.extend_from_slice(&(join_key.len() as u32).to_le_bytes());
    k.extend_from_slice(join_key.as_bytes());
    k.extend_from_slice(&4u32.to_le_bytes());
    k.extend_from_slice(&8u32.to_le_bytes());
    k.extend_from_slice(&value.to_le_bytes());
    k
}

/// A group laid out as `quiver.feast` lays out feature view `driver_stats` of project `demo`.
fn feast_group() -> GroupSpec {
    let described = |name: &str, ty, desc: &str, tags: Vec<String>| FeatureSpec {
        description: desc.into(),
        tags,
        ..feature(name, ty)
    };
    GroupSpec {
        name: "demo__driver_stats".into(),
        key_type: KeyType::Bytes,
        features: vec![
            described("conv_rate", FeatureType::F32, "conv_rate", vec![]),
            described("avg_trips_0a1b2c3d", FeatureType::I64, "Avg-Trips", vec![]),
            described("scores", FeatureType::Bytes, "scores", vec!["feast:value_proto".into()]),
            described("feast_event_time_us", FeatureType::I64, "Feast event timestamp", vec![]),
        ],
        ttl_s: None,
        compression: Compression::None,
        allow_non_finite: true,
        description: r#"Feast feature view demo/driver_stats; entity key {"join_keys":[["driver_id","INT64"]],"version":3}"#.into(),
        owner: String::new(),
        tags: vec!["feast".into()],
        history: None,
        on_violation: Default::default(),
        quality: Default::default(),
    }
}

#[test]
fn feast_views_read_with_feast_keys_and_exact_timestamps() {
    let (q, http) = Quiverd::start_with_http(&[]);
    let mut c = q.client();
    c.create_group(feast_group()).unwrap();
    let us: i64 = 1_700_000_000_123_456;
    // double_list_val [1.5] as a serialized Feast Value.
    let mut scores = vec![15 << 3 | 2, 10, 1 << 3 | 2, 8];
    scores.extend_from_slice(&1.5f64.to_le_bytes());
    let values = vec![
        ("conv_rate".to_string(), Value::F32(0.5)),
        ("avg_trips_0a1b2c3d".to_string(), Value::I64(12)),
        ("scores".to_string(), Value::Bytes(scores)),
        ("feast_event_time_us".to_string(), Value::I64(us)),
    ];
    let key = EntityKey::Bytes(feast_key("driver_id", 1001));
    c.put(
        "demo__driver_stats",
        key,
        (us / 1000) as u64,
        values,
        PutOptions::default(),
    )
    .unwrap();

    let read = json!({
        "features": ["driver_stats:conv_rate", "driver_stats:Avg-Trips", "driver_stats:scores"],
        "entities": {"driver_id": [1001, 1002]},
    });
    let (status, body) = post(&http, "/get-online-features", &read);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metadata"]["feature_names"],
        json!(["driver_id", "conv_rate", "Avg-Trips", "scores"])
    );
    let r = &body["results"];
    assert_eq!(r[1]["values"], json!([0.5, null]));
    assert_eq!(r[1]["statuses"], json!(["PRESENT", "NOT_FOUND"]));
    assert_eq!(
        r[1]["event_timestamps"],
        json!(["2023-11-14T22:13:20.123456Z", "1970-01-01T00:00:00Z"])
    );
    assert_eq!(r[2]["values"], json!([12, null]));
    assert_eq!(r[3]["values"], json!([[1.5], null]));

    // Writes through the view's names land under Feast's key, with the exact timestamp.
    let write = json!({
        "feature_view_name": "driver_stats",
        "df": {"driver_id": [1002], "event_timestamp": ["2023-11-14T22:13:20.654321Z"], "conv_rate": [0.75]},
    });
    let (status, body) = post(&http, "/write-to-online-store", &write);
    assert_eq!(status, 200, "{body}");
    let (_, body) = post(&http, "/get-online-features", &read);
    assert_eq!(body["results"][1]["values"], json!([0.5, 0.75]));
    assert_eq!(
        body["results"][1]["event_timestamps"][1],
        "2023-11-14T22:13:20.654321Z"
    );
    let refs = vec!["demo__driver_stats:feast_event_time_us".parse().unwrap()];
    let got = c
        .get(EntityKey::Bytes(feast_key("driver_id", 1002)), refs)
        .unwrap();
    assert_eq!(got[0].value, Value::I64(1_700_000_000_654_321));

    // The wrong JSON type for a join key, a missing join key, an unknown project.
    let bad = json!({"features": ["driver_stats:conv_rate"], "entities": {"driver_id": ["1001"]}});
    assert_error(
        post(&http, "/get-online-features", &bad),
        400,
        "TYPE_MISMATCH",
        "driver_id",
    );
    let bad = json!({"features": ["driver_stats:conv_rate"], "entities": {"user": [1]}});
    assert_error(
        post(&http, "/get-online-features", &bad),
        400,
        "INVALID_ARGUMENT",
        "driver_id",
    );
    let bad = json!({"features": ["driver_stats:conv_rate"], "entities": {"driver_id": [1]}, "project": "other"});
    assert_error(
        post(&http, "/get-online-features", &bad),
        404,
        "UNKNOWN_GROUP",
        "other",
    );

    // Groups: listed and described, with the view they stand for.
    let (status, body) = get(&http, "/groups?tag=feast");
    assert_eq!(status, 200);
    assert_eq!(body["groups"][0]["name"], "demo__driver_stats");
    let (status, body) = get(&http, "/groups/demo__driver_stats");
    assert_eq!(status, 200);
    assert_eq!(body["feast"]["join_keys"], json!([["driver_id", "INT64"]]));
    assert_eq!(body["features"][0]["type"], "f32");
    assert_error(get(&http, "/groups/nope"), 404, "UNKNOWN_GROUP", "nope");
}

fn assert_error((status, body): (u16, Json), http: u16, name: &str, mentions: &str) {
    assert_eq!(status, http, "{body}");
    assert_eq!(body["status"], name, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(mentions),
        "{message:?} should mention {mentions:?}"
    );
}

#[test]
fn bad_requests_get_json_errors_and_the_server_goes_on() {
    let (q, http) =
        Quiverd::start_with_http(&["--max-frame-bytes", "8KiB", "--max-batch-keys", "5"]);
    q.client().create_group(user_group()).unwrap();
    let read = |entities: Json, features: Json| {
        post(
            &http,
            "/get-online-features",
            &json!({"features": features, "entities": entities}),
        )
    };
    // Not JSON, JSON of the wrong shape, and an empty body.
    let (s, b) = call(
        &http,
        "POST",
        "/get-online-features",
        &[],
        b"{\"features\": [",
    );
    assert_error((s, b), 400, "INVALID_ARGUMENT", "/get-online-features");
    let (s, b) = call(&http, "POST", "/get-online-features", &[], b"[1, 2]");
    assert_error((s, b), 400, "INVALID_ARGUMENT", "not a valid request");
    let (s, b) = call(&http, "POST", "/write-to-online-store", &[], b"");
    assert_error((s, b), 400, "INVALID_ARGUMENT", "/write-to-online-store");
    // Unknown group and feature, a bad reference, ragged and empty entities.
    assert_error(
        read(json!({"k": [1]}), json!(["nope:ctr"])),
        404,
        "UNKNOWN_GROUP",
        "nope",
    );
    assert_error(
        read(json!({"k": [1]}), json!(["user:nope"])),
        404,
        "UNKNOWN_FEATURE",
        "nope",
    );
    assert_error(
        read(json!({"k": [1]}), json!(["user"])),
        400,
        "INVALID_ARGUMENT",
        "view:feature",
    );
    let ragged = json!({"a": [1, 2], "key": [1]});
    assert_error(
        read(ragged, json!(["user:ctr"])),
        400,
        "INVALID_ARGUMENT",
        "one value per row",
    );
    assert_error(
        read(json!({"k": []}), json!(["user:ctr"])),
        400,
        "INVALID_ARGUMENT",
        "no rows",
    );
    assert_error(
        read(json!({"k": ["x"]}), json!(["user:ctr"])),
        400,
        "TYPE_MISMATCH",
        "i64",
    );
    // Limits: entities over max_batch_keys, a body over max_frame_bytes.
    let six = json!({"k": [1, 2, 3, 4, 5, 6]});
    assert_error(
        read(six, json!(["user:ctr"])),
        400,
        "LIMIT_EXCEEDED",
        "max_batch_keys limit of 5",
    );
    let big = json!({"features": ["user:ctr"], "entities": {"k": [1]}, "pad": "x".repeat(9000)});
    assert_error(
        post(&http, "/get-online-features", &big),
        413,
        "LIMIT_EXCEEDED",
        "max_frame_bytes limit of 8192",
    );
    // A bad value in a write: nothing is written, the row and feature are named.
    let write = json!({"feature_view_name": "user", "df": {"key": [1, 2], "event_timestamp": [1, 2], "ctr": [0.5, "high"]}});
    assert_error(
        post(&http, "/write-to-online-store", &write),
        400,
        "TYPE_MISMATCH",
        "row 1, feature 'ctr'",
    );
    let (_, body) = read(json!({"k": [1]}), json!(["user:ctr"]));
    assert_eq!(body["results"][1]["statuses"], json!(["NOT_FOUND"]));
    // Unknown paths and methods.
    assert_error(
        get(&http, "/nope"),
        404,
        "UNKNOWN_OPCODE",
        "/get-online-features",
    );
    assert_error(
        get(&http, "/get-online-features"),
        405,
        "INVALID_ARGUMENT",
        "GET",
    );
    // The server still serves both protocols.
    assert_eq!(get(&http, "/health"), (200, json!({"status": "SERVING"})));
    q.client().ping().unwrap();
}

#[test]
fn the_auth_token_is_required_as_a_bearer_token() {
    let (q, http) = Quiverd::start_with_http(&["--auth-token", "s3cret"]);
    let body = json!({"features": ["user:ctr"], "entities": {"k": [1]}}).to_string();
    let path = "/get-online-features";
    let (s, b) = call(&http, "POST", path, &[], body.as_bytes());
    assert_error((s, b), 401, "AUTH_FAILED", "Authorization: Bearer");
    let (s, b) = call(
        &http,
        "POST",
        path,
        &[("Authorization", "Bearer wrong")],
        body.as_bytes(),
    );
    assert_error((s, b), 401, "AUTH_FAILED", "auth token refused");
    let (s, b) = call(
        &http,
        "GET",
        "/groups",
        &[("Authorization", "Basic s3cret")],
        b"",
    );
    assert_error((s, b), 401, "AUTH_FAILED", "not base64");
    let (s, b) = call(
        &http,
        "GET",
        "/groups",
        &[("Authorization", "Token s3cret")],
        b"",
    );
    assert_error((s, b), 401, "AUTH_FAILED", "neither Basic");
    // The right token reaches the store (which has no such group); /health needs none.
    let (s, b) = call(
        &http,
        "POST",
        path,
        &[("Authorization", "Bearer s3cret")],
        body.as_bytes(),
    );
    assert_error((s, b), 404, "UNKNOWN_GROUP", "user");
    assert_eq!(get(&http, "/health").0, 200);
    // SIGTERM stops the HTTP API with the server, which exits cleanly.
    assert!(q.terminate().success());
    assert!(
        TcpStream::connect(&http).is_err(),
        "the HTTP port is closed after shutdown"
    );
}

/// The value of one sample line of Prometheus text (`name{labels} value`).
fn sample(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {line_start} in {metrics}"))
        .parse()
        .unwrap()
}

#[test]
fn requests_and_latency_per_endpoint_are_in_the_metrics() {
    let (q, http, metrics) = Quiverd::start_with_http_and_metrics(&[]);
    q.client().create_group(user_group()).unwrap();
    let read = json!({"features": ["user:ctr"], "entities": {"user_id": [1, 2]}});
    for _ in 0..3 {
        assert_eq!(post(&http, "/get-online-features", &read).0, 200);
    }
    let unknown = json!({"features": ["nope:ctr"], "entities": {"user_id": [1]}});
    assert_eq!(post(&http, "/get-online-features", &unknown).0, 404);
    assert_eq!(get(&http, "/groups").0, 200);
    assert_eq!(get(&http, "/groups/user").0, 200);
    assert_eq!(get(&http, "/groups/nope").0, 404);
    assert_eq!(get(&http, "/health").0, 200);
    assert_eq!(get(&http, "/no/such/path").0, 404);
    assert_eq!(get(&http, "/get-online-features").0, 405);

    let text = common::http_get(&metrics, "/metrics");
    let count = |endpoint: &str, code: &str| {
        sample(
            &text,
            &format!("quiver_http_requests_total{{endpoint=\"{endpoint}\",code=\"{code}\"}}"),
        )
    };
    assert_eq!(count("/get-online-features", "2xx"), 3);
    // The unknown group and the GET sent to a POST endpoint.
    assert_eq!(count("/get-online-features", "4xx"), 2);
    assert_eq!(count("/groups", "2xx"), 1);
    assert_eq!(count("/groups/{name}", "2xx"), 1);
    assert_eq!(count("/groups/{name}", "4xx"), 1);
    assert_eq!(count("/health", "2xx"), 1);
    assert_eq!(count("other", "4xx"), 1);
    assert_eq!(count("/write-to-online-store", "2xx"), 0);
    assert_eq!(count("/get-online-features", "5xx"), 0);
    let latency = |endpoint: &str, suffix: &str| {
        sample(
            &text,
            &format!(
                "quiver_http_request_latency_us{suffix}{{endpoint=\"{endpoint}\"{}}}",
                if suffix.is_empty() {
                    ",quantile=\"0.99\""
                } else {
                    ""
                }
            ),
        )
    };
    assert_eq!(latency("/get-online-features", "_count"), 5);
    assert!(latency("/get-online-features", "") >= 1);
    assert_eq!(latency("/write-to-online-store", "_count"), 0);
    assert!(
        text.contains("# TYPE quiver_http_request_latency_us summary"),
        "{text}"
    );
}
