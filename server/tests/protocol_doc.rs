//! docs/PROTOCOL.md's worked example is what the encoder writes, byte for byte.

use quiver_engine::feature::{EntityKey, FeatureRef, FeatureValue, Status, Value};
use quiver_engine::history::{AsOf, HistoryCursor, HistoryEntry};
use quiver_engine::training::TimeMode;
use quiver_server::protocol::{
    encode_request, encode_response, GetAsOfRequest, HandshakeInfo, Opcode, Request, Response,
    TrainingSetRequest,
};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).expect("docs/PROTOCOL.md")
}

/// The hex bytes of the fenced block that follows `<!-- hex:NAME -->`.
fn hex_block(doc: &str, name: &str) -> Vec<u8> {
    let marker = format!("<!-- hex:{name} -->");
    let start = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("marker {marker} missing"));
    let rest = &doc[start + marker.len()..];
    let open = rest.find("```").expect("opening fence") + 3;
    let body = &rest[open..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    let close = body.find("```").expect("closing fence");
    body[..close]
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex byte {b:?}")))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| {
            c.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn example_request() -> Vec<u8> {
    let req = Request::Get {
        key: EntityKey::String("u1".into()),
        features: vec![
            FeatureRef {
                group: "user".into(),
                feature: "ctr".into(),
            },
            FeatureRef {
                group: "user".into(),
                feature: "emb".into(),
            },
        ],
    };
    let mut out = Vec::new();
    encode_request(7, &req, &mut out);
    out
}

fn example_response() -> Vec<u8> {
    let t = 1_700_000_000_000;
    let resp = Response::Get(vec![
        FeatureValue {
            status: Status::Present,
            value: Value::F32(0.5),
            event_time_ms: t,
        },
        FeatureValue {
            status: Status::Present,
            value: Value::Vector(vec![1.0, -2.0]),
            event_time_ms: t,
        },
    ]);
    let mut out = Vec::new();
    encode_response(&mut out, Opcode::Get, 7, &resp);
    out
}

/// The handshake answer of a server with the default limits.
fn example_handshake_response() -> Vec<u8> {
    let resp = Response::Handshake(HandshakeInfo {
        version: 1,
        max_frame_bytes: 16 << 20,
        max_batch_keys: 10_000,
        max_inflight_per_connection: 1_024,
        max_features_per_request: 1_024,
        max_scan_chunks: 64,
        server: "quiverd 0.1.0".into(),
    });
    let mut out = Vec::new();
    encode_response(&mut out, Opcode::Handshake, 1, &resp);
    out
}

/// GET_AS_OF of "u1", feature user:ctr, as of 1,700,000,000,000 as known at
/// 1,700,000,100,000 (request id 8).
fn example_as_of_request() -> Vec<u8> {
    let req = Request::GetAsOf(GetAsOfRequest {
        keys: vec![EntityKey::String("u1".into())],
        times: vec![AsOf::known_at(1_700_000_000_000, 1_700_000_100_000)],
        features: vec![FeatureRef::new("user", "ctr")],
    });
    let mut out = Vec::new();
    encode_request(8, &req, &mut out);
    out
}

/// A HISTORY page of one version of "ctr" with more to come (request id 9).
fn example_history_response() -> Vec<u8> {
    let t = 1_700_000_000_000;
    let resp = Response::History {
        entries: vec![HistoryEntry {
            feature: "ctr".into(),
            event_time_ms: t,
            write_time_ms: t + 5,
            status: Status::Present,
            value: Value::F32(0.5),
        }],
        next: Some(HistoryCursor {
            event_time_ms: t,
            write_time_ms: t + 5,
            feature: 0,
            skip: 1,
        }),
    };
    let mut out = Vec::new();
    encode_response(&mut out, Opcode::History, 9, &resp);
    out
}

/// TRAINING_SET of user:ctr for two spine rows (request id 10): "u1" at 1,700,000,000,000
/// and a row without a user at 1,700,000,060,000, by event time.
fn example_training_set_request() -> Vec<u8> {
    let t = 1_700_000_000_000;
    let req = Request::TrainingSet(TrainingSetRequest {
        features: vec![FeatureRef::new("user", "ctr")],
        mode: TimeMode::EventTime,
        first_row: 0,
        timestamps_ms: vec![t, t + 60_000],
        known_at_ms: None,
        key_columns: vec![(
            "user".into(),
            vec![Some(EntityKey::String("u1".into())), None],
        )],
    });
    let mut out = Vec::new();
    encode_request(10, &req, &mut out);
    out
}

/// A GROUP_ALTER setting group "user"'s history max versions to 5 (request id 10).
fn example_alter_max_versions_request() -> Vec<u8> {
    let req = Request::GroupAlter {
        name: "user".into(),
        alter: quiver_engine::feature::Alter::SetHistoryMaxVersions(Some(5)),
    };
    let mut out = Vec::new();
    encode_request(10, &req, &mut out);
    out
}

/// A GROUP_ALTER setting the rules of feature "age" of group "user" to `range=[0,150]`.
fn example_alter_rules_request() -> Vec<u8> {
    let mut rules = quiver_engine::feature::FeatureRules::default();
    rules.parse_rule("range=[0,150]").unwrap();
    let req = Request::GroupAlter {
        name: "user".into(),
        alter: quiver_engine::feature::Alter::SetRules("age".into(), rules),
    };
    let mut out = Vec::new();
    encode_request(10, &req, &mut out);
    out
}

/// A FEATURE_STATS of feature "age" of group "user".
fn example_feature_stats_request() -> Vec<u8> {
    let req = Request::FeatureStats {
        group: "user".into(),
        feature: Some("age".into()),
    };
    let mut out = Vec::new();
    encode_request(11, &req, &mut out);
    out
}

/// Its answer in one frame: row 1 PRESENT 0.5, row 2 NOT_FOUND.
fn example_training_set_response() -> Vec<u8> {
    let resp = Response::TrainingChunk {
        first: 0,
        rows: 2,
        columns: vec![vec![
            FeatureValue {
                status: Status::Present,
                value: Value::F32(0.5),
                event_time_ms: 1_700_000_000_000,
            },
            FeatureValue::not_found(),
        ]],
        more: false,
    };
    let mut out = Vec::new();
    encode_response(&mut out, Opcode::TrainingSet, 10, &resp);
    out
}

#[test]
fn training_set_examples_match_the_encoder() {
    let doc = doc();
    for (name, bytes) in [
        ("training-set-request", example_training_set_request()),
        ("training-set-response", example_training_set_response()),
    ] {
        assert_eq!(
            hex_block(&doc, name),
            bytes,
            "expected in the doc under {name}:\n{}",
            hex(&bytes)
        );
    }
}

#[test]
fn history_examples_match_the_encoder() {
    let doc = doc();
    for (name, bytes) in [
        ("get-as-of-request", example_as_of_request()),
        ("history-response", example_history_response()),
        (
            "alter-max-versions-request",
            example_alter_max_versions_request(),
        ),
        ("alter-rules-request", example_alter_rules_request()),
        ("feature-stats-request", example_feature_stats_request()),
    ] {
        assert_eq!(
            hex_block(&doc, name),
            bytes,
            "expected in the doc under {name}:\n{}",
            hex(&bytes)
        );
    }
}

#[test]
fn worked_example_matches_the_encoder() {
    let doc = doc();
    let req = example_request();
    assert_eq!(
        hex_block(&doc, "get-request"),
        req,
        "expected in the doc:\n{}",
        hex(&req)
    );
    let resp = example_response();
    assert_eq!(
        hex_block(&doc, "get-response"),
        resp,
        "expected in the doc:\n{}",
        hex(&resp)
    );
    let hello = example_handshake_response();
    assert_eq!(
        hex_block(&doc, "handshake-response"),
        hello,
        "expected in the doc:\n{}",
        hex(&hello)
    );
}

#[test]
fn every_opcode_and_status_is_documented() {
    let doc = doc();
    for op in Opcode::ALL {
        let row = format!("| 0x{:02x} | {} |", op as u8, op.name().to_uppercase());
        assert!(doc.contains(&row), "opcode row {row:?} missing");
    }
    for s in quiver_server::protocol::StatusCode::ALL {
        let row = format!("| {} | {} |", s as u16, s.name());
        assert!(doc.contains(&row), "status row {row:?} missing");
    }
    // Feature statuses, CORRUPT included, and the request flag that asks for it.
    for code in 0..=u8::MAX {
        if let Some(status) = Status::from_u8(code) {
            let item = format!("`{code}` {status}");
            assert!(doc.contains(&item), "feature status {item:?} missing");
        }
    }
    let flag = format!(
        "| `0x{:04x}` | `CORRUPT_STATUS` |",
        quiver_server::protocol::FLAG_CORRUPT_STATUS
    );
    assert!(doc.contains(&flag), "request flag row {flag:?} missing");
}
