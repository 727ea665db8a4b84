//! Codec round trips (proptest) and hostile-input checks: decoding never panics, and every
//! strict prefix of a valid body is refused.

use super::*;
use proptest::prelude::*;
use quiver_engine::feature::{
    Alter, Compression, EntityKey, FeatureRef, FeatureSpec, FeatureType, FeatureValue, GroupSpec,
    KeyType, PutOptions, PutResult, ScanItem, Status, Value, WriteMode,
};
use quiver_engine::history::{AsOf, HistoryCursor, HistoryEntry, HistoryRange};
use quiver_engine::{Durability, ScanCursor};

fn key() -> impl Strategy<Value = EntityKey> {
    prop_oneof![
        "[a-z0-9]{1,12}".prop_map(EntityKey::String),
        any::<i64>().prop_map(EntityKey::I64),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(EntityKey::Bytes),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<f32>().prop_map(Value::F32),
        any::<f64>().prop_map(Value::F64),
        ".{0,8}".prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        proptest::collection::vec(any::<f32>(), 0..8).prop_map(Value::Vector),
        proptest::collection::vec(any::<i64>(), 0..4).prop_map(Value::ListI64),
        proptest::collection::vec(any::<f32>(), 0..4).prop_map(Value::ListF32),
        proptest::collection::vec(".{0,4}", 0..4).prop_map(Value::ListString),
    ]
}

fn feature_type() -> impl Strategy<Value = FeatureType> {
    prop_oneof![
        Just(FeatureType::Bool),
        Just(FeatureType::I64),
        Just(FeatureType::F32),
        Just(FeatureType::F64),
        Just(FeatureType::String),
        Just(FeatureType::Bytes),
        (1u32..4096).prop_map(FeatureType::Vector),
        Just(FeatureType::ListI64),
        Just(FeatureType::ListF32),
        Just(FeatureType::ListString),
    ]
}

fn refs() -> impl Strategy<Value = Vec<FeatureRef>> {
    proptest::collection::vec(
        ("[a-z]{1,6}", "[a-z_0-9]{1,6}").prop_map(|(group, feature)| FeatureRef { group, feature }),
        0..5,
    )
}

/// Any set of rules (the codec does not look at the feature's type; the store does).
fn rules() -> impl Strategy<Value = quiver_engine::feature::FeatureRules> {
    const TEXTS: [&str; 10] = [
        "not-null",
        "finite",
        "range=[0,150)",
        "range=(,-1.5]",
        "norm=[0.9,1.1]",
        "len=[1,)",
        "in=a,bc,d",
        "regex=[a-z]+\\d?",
        "lag=1h",
        "future=30s",
    ];
    proptest::collection::vec(0..TEXTS.len(), 0..5).prop_map(|picks| {
        let mut rules = quiver_engine::feature::FeatureRules::default();
        for i in picks {
            // A second range is refused as given twice: keep the first.
            let _ = rules.parse_rule(TEXTS[i]);
        }
        rules
    })
}

fn spec() -> impl Strategy<Value = FeatureSpec> {
    (
        "[a-z]{1,8}",
        feature_type(),
        ".{0,6}",
        proptest::collection::vec("[a-z]{1,4}", 0..3),
        rules(),
    )
        .prop_map(|(name, ty, description, tags, rules)| FeatureSpec {
            name,
            ty,
            description,
            owner: "o".into(),
            tags,
            rules,
        })
}

fn put_options() -> impl Strategy<Value = PutOptions> {
    (0u8..4, any::<Option<u16>>(), any::<Option<u32>>(), 0u8..3).prop_map(|(m, g, t, d)| {
        PutOptions {
            mode: [
                WriteMode::Merge,
                WriteMode::ReplaceRow,
                WriteMode::CreateOnly,
                WriteMode::UpdateOnly,
            ][m as usize],
            expected_generation: g,
            ttl_s: t,
            write_time_ms: g.map(|g| u64::from(g) * 1_000_003),
            durability: [None, Some(Durability::Buffered), Some(Durability::Sync)][d as usize],
        }
    })
}

fn group_spec() -> impl Strategy<Value = GroupSpec> {
    (
        "[a-z]{1,8}",
        proptest::collection::vec(spec(), 0..4),
        any::<Option<u32>>(),
        any::<bool>(),
        -5i32..20,
    )
        .prop_map(
            |(name, features, ttl_s, allow_non_finite, level)| GroupSpec {
                name,
                key_type: KeyType::I64,
                features,
                ttl_s,
                compression: if level < 0 {
                    Compression::None
                } else {
                    Compression::Zstd { level }
                },
                allow_non_finite,
                description: "d".into(),
                owner: String::new(),
                tags: vec!["t".into()],
                // Every combination of the two bounds that keeps history, and none.
                history: match (ttl_s, level % 3) {
                    (None, 0) => None,
                    (None, _) => Some(quiver_engine::history::HistoryPolicy::versions(7)),
                    (Some(t), 1) => Some(
                        quiver_engine::history::HistoryPolicy::retention(t).with_max_versions(3),
                    ),
                    (Some(t), _) => Some(quiver_engine::history::HistoryPolicy::retention(t)),
                },
                on_violation: if level % 2 == 0 {
                    quiver_engine::feature::ViolationMode::Drop
                } else {
                    quiver_engine::feature::ViolationMode::Reject
                },
                quality: quiver_engine::feature::QualitySlo {
                    max_staleness_s: ttl_s,
                    drift_psi: (level % 2 == 0).then_some(0.25),
                    drift_distance: (level % 3 == 0).then_some(f64::from(level) / 7.0),
                },
            },
        )
}

fn alter() -> impl Strategy<Value = Alter> {
    prop_oneof![
        spec().prop_map(Alter::AddFeature),
        "[a-z]{1,5}".prop_map(Alter::DeprecateFeature),
        any::<Option<u32>>().prop_map(Alter::SetTtl),
        ".{0,5}".prop_map(Alter::SetDescription),
        ".{0,5}".prop_map(Alter::SetOwner),
        proptest::collection::vec("[a-z]{1,4}", 0..3).prop_map(Alter::SetTags),
        ("[a-z]{1,5}", feature_type()).prop_map(|(n, t)| Alter::ChangeFeatureType(n, t)),
        any::<Option<u32>>().prop_map(Alter::SetHistoryRetention),
        any::<Option<u32>>().prop_map(Alter::SetHistoryMaxVersions),
        ("[a-z]{1,5}", rules()).prop_map(|(n, r)| Alter::SetRules(n, r)),
        any::<bool>().prop_map(|drop| Alter::SetViolationMode(if drop {
            quiver_engine::feature::ViolationMode::Drop
        } else {
            quiver_engine::feature::ViolationMode::Reject
        })),
        any::<Option<u32>>().prop_map(Alter::SetMaxStaleness),
        any::<Option<u16>>().prop_map(|v| Alter::SetDriftPsi(v.map(|v| f64::from(v) / 64.0))),
        any::<Option<u16>>().prop_map(|v| Alter::SetDriftDistance(v.map(|v| f64::from(v) / 8.0))),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(version, token)| Request::Handshake { version, token }),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(|payload| Request::Ping { payload }),
        (
            "[a-z]{1,6}",
            key(),
            any::<u64>(),
            put_options(),
            proptest::collection::vec(("[a-z]{1,5}", value()), 0..5)
        )
            .prop_map(
                |(group, key, event_time_ms, options, values)| Request::Put {
                    group,
                    key,
                    event_time_ms,
                    options,
                    values
                }
            ),
        (key(), refs()).prop_map(|(key, features)| Request::Get { key, features }),
        (proptest::collection::vec(key(), 0..6), refs())
            .prop_map(|(keys, features)| Request::GetMany { keys, features }),
        ("[a-z]{1,6}", key(), 0u8..3).prop_map(|(group, key, d)| Request::Delete {
            group,
            key,
            durability: [None, Some(Durability::Buffered), Some(Durability::Sync)][d as usize],
        }),
        group_spec().prop_map(Request::GroupCreate),
        "[a-z]{1,6}".prop_map(|name| Request::GroupDescribe { name }),
        proptest::option::of("[a-z]{1,6}").prop_map(|tag| Request::GroupList { tag }),
        ("[a-z]{1,6}", alter()).prop_map(|(name, alter)| Request::GroupAlter { name, alter }),
        "[a-z]{1,6}".prop_map(|name| Request::GroupDrop { name }),
        (
            "[a-z]{1,6}",
            any::<Option<u64>>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(group, c, chunk_items, max_chunks)| {
                Request::Scan(ScanRequest {
                    group,
                    cursor: c.map(ScanCursor),
                    chunk_items,
                    max_chunks,
                })
            }),
        (
            proptest::collection::vec(key(), 0..4),
            proptest::collection::vec(as_of(), 0..4),
            refs()
        )
            .prop_map(|(keys, times, features)| Request::GetAsOf(GetAsOfRequest {
                keys,
                times,
                features
            })),
        (
            (
                "[a-z]{1,6}",
                key(),
                proptest::collection::vec("[a-z]{1,5}", 0..4)
            ),
            (any::<u64>(), any::<u64>(), any::<Option<u64>>()),
            proptest::option::of(history_cursor()),
            any::<u32>()
        )
            .prop_map(
                |((group, key, features), (from_ms, to_ms, known_at_ms), after, max_versions)| {
                    Request::History(HistoryRequest {
                        group,
                        key,
                        features,
                        range: HistoryRange {
                            from_ms,
                            to_ms,
                            known_at_ms,
                        },
                        after,
                        max_versions,
                    })
                }
            ),
        ("[a-z]{1,6}", any::<Option<u64>>(), any::<u32>()).prop_map(|(group, c, max_records)| {
            Request::HistoryKeys(HistoryKeysRequest {
                group,
                cursor: c.map(ScanCursor),
                max_records,
            })
        }),
        Just(Request::Stats),
        ("[a-z]{1,6}", proptest::option::of("[a-z]{1,6}"))
            .prop_map(|(group, feature)| Request::FeatureStats { group, feature }),
        (
            0u8..4,
            "[a-z]{1,6}",
            proptest::option::of("[a-z]{1,6}"),
            "[0-9a-z]{0,4}",
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(action, group, feature, window, record)| {
                use crate::protocol::BaselineRequest as B;
                Request::Baseline(match action {
                    0 => B::SaveWindow {
                        group,
                        feature,
                        window,
                    },
                    1 => B::Put { group, record },
                    2 => B::Show { group, feature },
                    _ => B::Drop { group, feature },
                })
            }),
        training_set_request(),
    ]
}

fn training_set_request() -> impl Strategy<Value = Request> {
    (
        refs(),
        0u8..3,
        any::<u64>(),
        proptest::collection::vec((any::<u64>(), any::<u64>()), 1..4),
        proptest::collection::vec(
            (
                "[a-z]{1,4}",
                proptest::collection::vec(proptest::option::of(key()), 3),
            ),
            0..3,
        ),
    )
        .prop_map(|(features, m, first_row, times, columns)| {
            let mode = [
                quiver_engine::training::TimeMode::EventTime,
                quiver_engine::training::TimeMode::AsServed,
                quiver_engine::training::TimeMode::KnownAt,
            ][m as usize];
            let rows = times.len();
            Request::TrainingSet(TrainingSetRequest {
                features,
                mode,
                first_row,
                timestamps_ms: times.iter().map(|t| t.0).collect(),
                known_at_ms: mode
                    .needs_known_at()
                    .then(|| times.iter().map(|t| t.1).collect()),
                key_columns: columns
                    .into_iter()
                    .map(|(g, mut keys)| {
                        keys.truncate(rows);
                        (g, keys)
                    })
                    .collect(),
            })
        })
}

fn as_of() -> impl Strategy<Value = AsOf> {
    (any::<u64>(), any::<Option<u64>>(), any::<u64>()).prop_map(|(e, k, t)| AsOf {
        event_limit_ms: e,
        known_at_ms: k,
        ttl_reference_ms: t,
    })
}

fn history_cursor() -> impl Strategy<Value = HistoryCursor> {
    (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(e, w, f, s)| {
        HistoryCursor {
            event_time_ms: e,
            write_time_ms: w,
            feature: f,
            skip: s,
        }
    })
}

fn history_entry() -> impl Strategy<Value = HistoryEntry> {
    ("[a-z]{1,5}", any::<u64>(), any::<u64>(), feature_value()).prop_map(
        |(feature, event_time_ms, write_time_ms, fv)| HistoryEntry {
            feature,
            event_time_ms,
            write_time_ms,
            status: fv.status,
            value: fv.value,
        },
    )
}

fn feature_value() -> impl Strategy<Value = FeatureValue> {
    (0u8..5, any::<u64>(), value()).prop_map(|(s, event_time_ms, value)| FeatureValue {
        status: [
            Status::Present,
            Status::Null,
            Status::NotFound,
            Status::Expired,
            Status::Corrupt,
        ][s as usize],
        value,
        event_time_ms,
    })
}

fn response() -> impl Strategy<Value = (Opcode, Response)> {
    prop_oneof![
        proptest::collection::vec(feature_value(), 0..6)
            .prop_map(|v| (Opcode::Get, Response::Get(v))),
        proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(feature_value(), 0..3).prop_map(Ok),
                ".{0,10}".prop_map(|m| Err((StatusCode::TypeMismatch, m))),
            ],
            0..4
        )
        .prop_map(|items| (Opcode::GetMany, Response::GetMany(items))),
        proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(feature_value(), 0..3).prop_map(Ok),
                ".{0,10}".prop_map(|m| Err((StatusCode::InvalidArgument, m))),
            ],
            0..4
        )
        .prop_map(|items| (Opcode::GetAsOf, Response::GetAsOf(items))),
        (
            proptest::collection::vec(history_entry(), 0..4),
            proptest::option::of(history_cursor())
        )
            .prop_map(|(entries, next)| (Opcode::History, Response::History { entries, next })),
        (proptest::collection::vec(key(), 0..4), any::<Option<u64>>()).prop_map(|(keys, n)| (
            Opcode::HistoryKeys,
            Response::HistoryKeys {
                keys,
                next: n.map(ScanCursor)
            }
        )),
        (any::<u32>(), any::<u32>(), any::<u16>(), any::<u32>()).prop_map(
            |(written, skipped_stale, generation, dropped)| {
                (
                    Opcode::Put,
                    Response::Put(PutResult {
                        written,
                        skipped_stale,
                        generation,
                        dropped,
                    }),
                )
            }
        ),
        (
            proptest::collection::vec(
                (
                    key(),
                    proptest::collection::vec(("[a-z]{1,4}", feature_value()), 0..3)
                ),
                0..3
            ),
            any::<Option<u64>>(),
            any::<bool>()
        )
            .prop_map(|(items, next, more)| {
                let items = items
                    .into_iter()
                    .map(|(key, values)| ScanItem { key, values })
                    .collect();
                (
                    Opcode::Scan,
                    Response::ScanChunk {
                        items,
                        next: next.map(ScanCursor),
                        more,
                    },
                )
            }),
        any::<bool>().prop_map(|existed| (Opcode::Delete, Response::Delete { existed })),
        (
            any::<u32>(),
            proptest::collection::vec(proptest::collection::vec(feature_value(), 2), 1..3),
            any::<bool>()
        )
            .prop_map(|(first, columns, more)| (
                Opcode::TrainingSet,
                Response::TrainingChunk {
                    first,
                    rows: 2,
                    columns,
                    more
                }
            )),
        (any::<u32>(), any::<u32>(), any::<bool>()).prop_map(|(first, rows, more)| (
            Opcode::TrainingSet,
            Response::TrainingChunk {
                first,
                rows,
                columns: Vec::new(),
                more
            }
        )),
        (any::<[u32; 5]>(), ".{0,12}").prop_map(|(l, server)| (
            Opcode::Handshake,
            Response::Handshake(HandshakeInfo {
                version: 1,
                max_frame_bytes: l[0],
                max_batch_keys: l[1],
                max_inflight_per_connection: l[2],
                max_features_per_request: l[3],
                max_scan_chunks: l[4],
                server,
            })
        )),
        ".{0,20}".prop_map(|m| (
            Opcode::Put,
            Response::Error {
                status: StatusCode::DeviceFull,
                message: m
            }
        )),
    ]
}

fn split(frame: &[u8]) -> (FrameHeader, &[u8]) {
    let head: &[u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().unwrap();
    let h = FrameHeader::decode(head, u32::MAX).unwrap();
    assert_eq!(frame.len(), HEADER_LEN + h.body_len as usize);
    (h, &frame[HEADER_LEN..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn requests_round_trip(id in any::<u64>(), req in request()) {
        let mut frame = Vec::new();
        encode_request(id, &req, &mut frame);
        let (h, body) = split(&frame);
        prop_assert_eq!(h.request_id, id);
        let op = h.check_request().unwrap();
        let back = decode_request(op, body).unwrap();
        let mut again = Vec::new();
        encode_request(id, &back, &mut again);
        prop_assert_eq!(&frame, &again);
        // Every strict prefix of a body with a fixed shape must be refused, never accepted.
        if !matches!(req, Request::Ping { .. } | Request::Stats) {
            for cut in 0..body.len() {
                prop_assert!(decode_request(op, &body[..cut]).is_err(), "prefix {} of {:?} accepted", cut, req);
            }
        }
    }

    #[test]
    fn responses_round_trip(id in any::<u64>(), (op, resp) in response()) {
        let mut frame = Vec::new();
        encode_response(&mut frame, op, id, &resp);
        let (h, body) = split(&frame);
        let back = decode_response(&h, body).unwrap();
        let mut again = Vec::new();
        encode_response(&mut again, op, id, &back);
        prop_assert_eq!(&frame, &again);
    }

    #[test]
    fn garbage_never_panics(op in proptest::sample::select(Opcode::ALL.to_vec()), body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_request(op, &body);
        let h = FrameHeader { opcode: op as u8, flags: 0, status: 0, body_len: body.len() as u32, request_id: 1 };
        let _ = decode_response(&h, &body);
    }

    #[test]
    fn headers_round_trip(opcode in any::<u8>(), flags in any::<u16>(), status in any::<u16>(), body_len in any::<u32>(), request_id in any::<u64>()) {
        let h = FrameHeader { opcode, flags, status, body_len, request_id };
        let mut out = Vec::new();
        h.encode(&mut out);
        prop_assert_eq!(out.len(), HEADER_LEN);
        let back = FrameHeader::decode(out[..].try_into().unwrap(), u32::MAX).unwrap();
        prop_assert_eq!(h, back);
        if body_len > 0 {
            let too_big = FrameHeader::decode(out[..].try_into().unwrap(), body_len - 1);
            prop_assert!(matches!(too_big, Err(DecodeError::FrameTooLarge { .. })), "limit not enforced");
        }
    }
}

#[test]
fn huge_counts_are_refused_without_allocating() {
    // "4 billion keys" in a 5-byte body.
    let mut body = u32::MAX.to_le_bytes().to_vec();
    body.push(0);
    let err = decode_request(Opcode::GetMany, &body).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Truncated {
                what: "batch keys",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_magic_and_version_are_framing_errors() {
    let mut out = Vec::new();
    FrameHeader {
        opcode: 2,
        flags: 0,
        status: 0,
        body_len: 0,
        request_id: 1,
    }
    .encode(&mut out);
    let mut bad = out.clone();
    bad[0] = b'X';
    assert!(matches!(
        FrameHeader::decode(bad[..].try_into().unwrap(), 16),
        Err(DecodeError::BadMagic { .. })
    ));
    bad = out.clone();
    bad[2] = 2;
    assert!(matches!(
        FrameHeader::decode(bad[..].try_into().unwrap(), 16),
        Err(DecodeError::UnsupportedVersion { got: 2, .. })
    ));
}

#[test]
fn corrupt_status_and_replica_read_are_the_only_request_flags() {
    let header = |flags| FrameHeader {
        opcode: Opcode::GetMany as u8,
        flags,
        status: 0,
        body_len: 0,
        request_id: 1,
    };
    for flags in [
        FLAG_CORRUPT_STATUS,
        FLAG_REPLICA_READ,
        FLAG_CORRUPT_STATUS | FLAG_REPLICA_READ,
    ] {
        assert_eq!(header(flags).check_request(), Ok(Opcode::GetMany));
    }
    for bit in (0..16)
        .map(|b| 1u16 << b)
        .filter(|&b| b != FLAG_CORRUPT_STATUS && b != FLAG_REPLICA_READ)
    {
        assert_eq!(
            header(bit | FLAG_CORRUPT_STATUS).check_request(),
            Err(DecodeError::ReservedFlags {
                flags: bit | FLAG_CORRUPT_STATUS
            })
        );
    }
    let mut frame = Vec::new();
    let get = Request::Get {
        key: EntityKey::I64(1),
        features: Vec::new(),
    };
    encode_request_flags(9, &get, FLAG_CORRUPT_STATUS, &mut frame);
    assert_eq!(split(&frame).0.flags, FLAG_CORRUPT_STATUS);
}

/// Every request field has one encoding: bytes that only an absent or unused field would
/// carry must be zeros, so a decoded request re-encodes to exactly its bytes (the fuzz target
/// `protocol_frame` asserts that for any accepted frame).
mod canonical {
    use super::*;

    fn body(request: &Request) -> Vec<u8> {
        let mut frame = Vec::new();
        encode_request(1, request, &mut frame);
        frame.split_off(HEADER_LEN)
    }

    fn refused(op: Opcode, body: &[u8]) -> DecodeError {
        decode_request(op, body).expect_err("a non-canonical body was accepted")
    }

    fn assert_not_canonical(err: DecodeError, field: &str) {
        match &err {
            DecodeError::NotCanonical { what, .. } => assert_eq!(*what, field, "{err}"),
            other => panic!("expected a non-canonical {field}, got {other:?}"),
        }
        assert!(err.to_string().contains(field), "{err}");
    }

    fn put(options: PutOptions) -> Request {
        Request::Put {
            group: "g".into(),
            key: EntityKey::I64(1),
            event_time_ms: 5,
            options,
            values: vec![("f".into(), Value::I64(3))],
        }
    }

    /// Offset of the put options in a PUT body for group "g" and an i64 key.
    const PUT_OPTIONS_AT: usize = 4 + 1 + 1 + 8 + 8;

    #[test]
    fn absent_put_options_must_carry_zeros() {
        let canonical = body(&put(PutOptions::default()));
        decode_request(Opcode::Put, &canonical).expect("canonical put");
        // expected generation: bytes 2..4 of the options, bit 0x01 clear.
        let mut b = canonical.clone();
        b[PUT_OPTIONS_AT + 2] = 7;
        assert_not_canonical(refused(Opcode::Put, &b), "expected generation");
        // ttl: bytes 4..8, bit 0x02 clear.
        let mut b = canonical.clone();
        b[PUT_OPTIONS_AT + 5] = 1;
        let err = refused(Opcode::Put, &b);
        assert_not_canonical(err.clone(), "put ttl");
        assert_eq!(
            err.to_string(),
            "put ttl must be 0 when put option bit 0x02 is clear, got 256 (every field has one encoding)"
        );
        // With the bit set the same bytes are a value.
        b[PUT_OPTIONS_AT + 1] = 0x02;
        match decode_request(Opcode::Put, &b).expect("ttl present") {
            Request::Put { options, .. } => assert_eq!(options.ttl_s, Some(256)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn absent_opt_u32_must_be_zero() {
        let alter = Request::GroupAlter {
            name: "g".into(),
            alter: Alter::SetTtl(None),
        };
        let mut b = body(&alter);
        decode_request(Opcode::GroupAlter, &b).expect("canonical alter");
        let value_at = b.len() - 4;
        b[value_at] = 9;
        assert_not_canonical(refused(Opcode::GroupAlter, &b), "group ttl");
    }

    #[test]
    fn unused_dimension_and_compression_level_must_be_zero() {
        let spec = GroupSpec {
            name: "g".into(),
            key_type: KeyType::I64,
            features: vec![FeatureSpec::new("f", FeatureType::I64)],
            ttl_s: None,
            compression: Compression::None,
            allow_non_finite: false,
            description: String::new(),
            owner: String::new(),
            tags: Vec::new(),
            history: None,
            on_violation: Default::default(),
            quality: Default::default(),
        };
        let canonical = body(&Request::GroupCreate(spec));
        decode_request(Opcode::GroupCreate, &canonical).expect("canonical spec");
        // name (4 + 1), key type (1), feature count (4), feature name (4 + 1), type tag (1).
        let dim_at = 5 + 1 + 4 + 5 + 1;
        let mut b = canonical.clone();
        b[dim_at] = 3;
        assert_not_canonical(refused(Opcode::GroupCreate, &b), "feature type dimension");
        // After the feature: description, owner, tags, rules (4 × 4), then ttl (5), compression
        // tag.
        let level_at = dim_at + 4 + 4 + 4 + 4 + 4 + 5 + 1;
        let mut b = canonical.clone();
        b[level_at] = 3;
        assert_not_canonical(refused(Opcode::GroupCreate, &b), "compression level");
    }

    #[test]
    fn absent_list_tag_and_scan_cursor_must_be_empty() {
        let mut b = body(&Request::GroupList { tag: None });
        b.truncate(1);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(b'x');
        assert_not_canonical(refused(Opcode::GroupList, &b), "tag length");

        let scan = Request::Scan(ScanRequest {
            group: "g".into(),
            cursor: None,
            chunk_items: 10,
            max_chunks: 1,
        });
        let mut b = body(&scan);
        decode_request(Opcode::Scan, &b).expect("canonical scan");
        b[5 + 1] = 1; // the cursor's low byte, right after the resume flag
        assert_not_canonical(refused(Opcode::Scan, &b), "scan cursor");
    }

    #[test]
    fn flags_status_and_trailing_bytes_are_refused_in_requests() {
        for (flags, status) in [(FLAG_MORE, 0), (0x8000, 0), (0, 1)] {
            let h = FrameHeader {
                opcode: Opcode::Stats as u8,
                flags,
                status,
                body_len: 0,
                request_id: 1,
            };
            assert!(
                h.check_request().is_err(),
                "flags {flags:#x} status {status}"
            );
        }
        let mut b = body(&put(PutOptions::default()));
        b.push(0);
        assert!(matches!(
            refused(Opcode::Put, &b),
            DecodeError::TrailingBytes {
                what: "put",
                len: 1
            }
        ));
    }

    #[test]
    fn absent_history_fields_must_be_zeros() {
        // GET_AS_OF: an as-of time without a known-at time (opt_u64 absent).
        let as_of = Request::GetAsOf(GetAsOfRequest {
            keys: vec![EntityKey::I64(1)],
            times: vec![AsOf::event_time(5)],
            features: vec![FeatureRef::new("g", "f")],
        });
        let mut b = body(&as_of);
        decode_request(Opcode::GetAsOf, &b).expect("canonical as-of");
        // keys (4 + 9), time count (4), event limit (8), known-at present flag (1), its u64.
        b[4 + 9 + 4 + 8 + 1] = 1;
        assert_not_canonical(refused(Opcode::GetAsOf, &b), "as-of known-at time");
        // HISTORY: the cursor of a first page.
        let history = Request::History(HistoryRequest {
            group: "g".into(),
            key: EntityKey::I64(1),
            features: vec!["f".into()],
            range: HistoryRange {
                from_ms: 0,
                to_ms: 9,
                known_at_ms: None,
            },
            after: None,
            max_versions: 10,
        });
        let mut b = body(&history);
        decode_request(Opcode::History, &b).expect("canonical history");
        let last = b.len() - 1;
        b[last] = 1; // the cursor's skip, after resume 0
        assert!(matches!(
            refused(Opcode::History, &b),
            DecodeError::AbsentNotZero {
                what: "history cursor"
            }
        ));
        // HISTORY_KEYS: the cursor of a first chunk.
        let keys = Request::HistoryKeys(HistoryKeysRequest {
            group: "g".into(),
            cursor: None,
            max_records: 10,
        });
        let mut b = body(&keys);
        decode_request(Opcode::HistoryKeys, &b).expect("canonical history keys");
        b[5 + 1] = 1;
        assert_not_canonical(refused(Opcode::HistoryKeys, &b), "history keys cursor");
    }

    #[test]
    fn responses_are_canonical_too() {
        let chunk = Response::ScanChunk {
            items: Vec::new(),
            next: None,
            more: false,
        };
        let mut frame = Vec::new();
        encode_response(&mut frame, Opcode::Scan, 1, &chunk);
        let (h, body) = split(&frame);
        let mut b = body.to_vec();
        let cursor_at = b.len() - 8;
        b[cursor_at] = 1;
        assert_not_canonical(
            decode_response(&h, &b).expect_err("cursor without has_next"),
            "scan next cursor",
        );
        let mut frame = Vec::new();
        encode_response(
            &mut frame,
            Opcode::Delete,
            1,
            &Response::Delete { existed: true },
        );
        let (mut h, body) = split(&frame);
        h.flags = FLAG_MORE;
        assert!(matches!(
            decode_response(&h, body),
            Err(DecodeError::MoreOnSingleResponse { opcode: "delete" })
        ));
    }
}
