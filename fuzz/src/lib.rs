//! Quiver's fuzz targets as plain functions, so that cargo-fuzz (nightly, libFuzzer) and the
//! stable corpus replay (`src/bin/replay.rs`) run the same code.
//!
//! Every target feeds untrusted bytes to one decoder and asserts what must hold for any input:
//! no panic, and anything accepted is consistent (a decoded frame re-encodes to the same
//! bytes, a scan never leaves the block, a recovered store never serves a value that was never
//! written). A target never does I/O outside memory.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use quiver_engine::{Config, Durability, Engine, ScanCursor, WriteOptions};
use quiver_wal::device::{CrashMode, FaultDevice};
use quiver_wal::format::{
    decode_record, padded_frame_len, BlockHeader, BlockKind, RecordHeader, RecordInput, Superblock,
    BLOCK_HEADER_BYTES, RECORD_HEADER_BYTES,
};
use quiver_wal::scan::{BlockScanner, ScanEnd, ScanItem};
use quiver_wal::Device;

/// Every target, by name, in the order `run-short.sh` runs them.
/// A fuzz target: any bytes in, a panic on a violated property.
pub type Target = fn(&[u8]);

pub const TARGETS: &[(&str, Target)] = &[
    ("record_frame", record_frame),
    ("block_scanner", block_scanner),
    ("disk_headers", disk_headers),
    ("recovery_image", recovery_image),
    ("protocol_frame", protocol_frame),
    ("feature_codec", feature_codec),
    ("config_size", config_size),
];

fn u64_of(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(b)
}

/// The record frame decoder: the first 8 bytes are the enclosing block's sequence, the rest a
/// frame. An accepted frame re-encodes to exactly its bytes.
pub fn record_frame(data: &[u8]) {
    let seq = u64_of(data);
    let frame = data.get(8..).unwrap_or(&[]);
    let header = RecordHeader::decode(frame);
    let Ok(view) = decode_record(frame, 3, 64, seq) else {
        return;
    };
    assert_eq!(
        header,
        Some(view.header),
        "decode_record accepted a header RecordHeader refuses"
    );
    let h = view.header;
    assert!(!view.key.is_empty() && view.key.len() <= quiver_wal::format::MAX_KEY_BYTES);
    assert_eq!(
        h.total_len as usize,
        RECORD_HEADER_BYTES + view.key.len() + view.value.len()
    );
    let input = RecordInput {
        lsn: h.lsn,
        group: h.group,
        key: view.key,
        value: view.value,
        flags: h.flags,
        generation: h.generation,
        expiry_s: h.expiry_s,
        last_update_s: h.last_update_s,
    };
    let mut out = vec![0u8; padded_frame_len(input.frame_len())];
    input.encode(seq, &mut out);
    // Reserved bytes are not part of the header, so compare what was decoded, not raw bytes.
    // The encoder always writes the current format: a key tag of (group, key), whatever the
    // input frame carried (none in a version 1 frame).
    let again = decode_record(&out, 3, 64, seq).expect("a re-encoded frame decodes");
    assert_eq!(
        again.header.key_tag,
        Some(quiver_wal::format::key_tag(h.group, view.key)),
        "a re-encoded frame carries its key's tag"
    );
    assert_eq!(
        RecordHeader {
            key_tag: None,
            ..again.header
        },
        RecordHeader { key_tag: None, ..h },
        "a re-encoded frame decodes differently"
    );
    assert_eq!((again.key, again.value), (view.key, view.value));
}

/// The block scanner over arbitrary block bytes: it terminates, every record it yields lies
/// inside the block, offsets strictly increase, and every record verifies on its own.
pub fn block_scanner(data: &[u8]) {
    let seq = u64_of(data);
    let block = data.get(8..).unwrap_or(&[]);
    let mut last = 0u32;
    let mut scanner = BlockScanner::new(block, 2, seq);
    let mut items = 0usize;
    for item in scanner.by_ref() {
        items += 1;
        assert!(
            items <= block.len() / 16 + 1,
            "scanner yields more items than 16-byte units"
        );
        let offset = match item {
            ScanItem::Record { offset, record } => {
                let end = offset as usize + record.header.padded_len();
                assert!(end <= block.len(), "record runs past the block");
                let again = decode_record(&block[offset as usize..], 2, offset, seq)
                    .expect("a yielded record verifies");
                assert_eq!(again.key, record.key);
                offset
            }
            ScanItem::Corrupt { offset, .. } => offset,
        };
        assert!(
            offset as usize >= BLOCK_HEADER_BYTES && offset >= last,
            "scan went backwards"
        );
        last = offset + 1;
    }
    match scanner.end() {
        Some(ScanEnd::Clean { offset }) | Some(ScanEnd::Torn { offset }) => {
            assert!(offset as usize <= block.len().max(BLOCK_HEADER_BYTES))
        }
        Some(ScanEnd::Full) => {}
        None => panic!("an exhausted scanner reports no end"),
    }
}

/// The superblock and block-header decoders, on the 4 KiB sector they are read from: whatever
/// they accept re-encodes to the same bytes.
pub fn disk_headers(data: &[u8]) {
    let mut sector = vec![0u8; 4096];
    let n = data.len().min(4096);
    sector[..n].copy_from_slice(&data[..n]);
    if let Ok(sb) = Superblock::decode(&sector) {
        let mut again = vec![0u8; 4096];
        sb.encode(&mut again);
        assert_eq!(
            Superblock::decode(&again).expect("re-encoded superblock"),
            sb
        );
    }
    let store = u64::from_le_bytes(sector[24..32].try_into().expect("8 bytes"));
    let block = u32::from_le_bytes(sector[12..16].try_into().expect("4 bytes"));
    if let Some(h) = BlockHeader::decode(&sector, block, store) {
        let mut again = vec![0u8; 64];
        h.encode(&mut again);
        assert_eq!(
            BlockHeader::decode(&again, block, store),
            Some(h),
            "a re-encoded block header decodes differently"
        );
    }
}

const RECOVERY_DEVICE_BYTES: u64 = 8 * RECOVERY_BLOCK_BYTES as u64;
const RECOVERY_BLOCK_BYTES: u32 = 128 << 10;
const RECOVERY_KEYS: u32 = 64;

/// A valid store image with several blocks (overwrites, deletes, a defragmented and reused
/// block), every value written to each key, and what each key holds at the end.
pub struct BaseImage {
    pub image: Vec<u8>,
    /// Per key index: every value ever written to it.
    pub written: Vec<HashSet<Vec<u8>>>,
    /// Per key index: its latest acknowledged value, `None` once deleted.
    pub latest: Vec<Option<Vec<u8>>>,
}

impl BaseImage {
    /// Checks what a recovered store returned for `key`: only a value of that key, and where
    /// recovery reported no damage, only its latest value (a deleted key stays deleted).
    fn check(&self, key: &[u8], got: &[u8], damaged: bool) {
        let k = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.strip_prefix("key-"))
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|&k| k < self.latest.len())
            .unwrap_or_else(|| panic!("a key never written came back: {key:?}"));
        assert!(
            self.written[k].contains(got),
            "key-{k} returned a value it never held (another key's, or made up)"
        );
        if !damaged {
            assert!(
                self.latest[k].as_deref() == Some(got),
                "key-{k} returned an older or deleted value though recovery found no damage"
            );
        }
    }
}

fn recovery_config() -> Config {
    Config {
        write_block_bytes: RECOVERY_BLOCK_BYTES,
        post_write_cache_bytes: 0,
        defrag_pause_ms: 0,
        checkpoint_interval_s: 0,
        min_free_pct: 0,
        background: false,
        ..Config::memory(RECOVERY_DEVICE_BYTES)
    }
}

fn recovery_value(key: u32, round: u32) -> Vec<u8> {
    let mut v = format!("key-{key}-round-{round}-").into_bytes();
    v.resize(
        200 + (key as usize * 37 + round as usize * 101) % 3000,
        (key + round) as u8,
    );
    v
}

pub fn base_image() -> &'static BaseImage {
    static BASE: OnceLock<BaseImage> = OnceLock::new();
    BASE.get_or_init(|| {
        let dev = Arc::new(FaultDevice::new(RECOVERY_DEVICE_BYTES, 1));
        let d: Arc<dyn Device> = dev.clone();
        let e = Engine::open_on_device(recovery_config(), d).expect("open a fresh store");
        let w = WriteOptions {
            durability: Some(Durability::Buffered),
            ttl_s: None,
        };
        let mut written = vec![HashSet::new(); RECOVERY_KEYS as usize];
        let mut latest = vec![None; RECOVERY_KEYS as usize];
        for round in 0..4 {
            for key in 0..RECOVERY_KEYS {
                let v = recovery_value(key, round);
                e.put(1, format!("key-{key}").as_bytes(), &v, &w)
                    .expect("put");
                written[key as usize].insert(v.clone());
                latest[key as usize] = Some(v);
            }
            for key in (round..RECOVERY_KEYS).step_by(7) {
                e.delete(1, format!("key-{key}").as_bytes(), &w)
                    .expect("delete");
                latest[key as usize] = None;
            }
            e.flush().expect("flush");
            e.defragment(usize::MAX).expect("defragment");
        }
        drop(e);
        BaseImage {
            image: dev.crash(CrashMode::DropUnsynced),
            written,
            latest,
        }
    })
}

/// Recovery on a damaged image: the fuzz input is a list of patches
/// (`offset u32 LE`, `len u8`, `len` bytes) laid over a valid image. Opening must not panic;
/// when it succeeds, a read or scan returns for each key only a value written to that key,
/// and, where recovery reported no damage, only its latest one (never a deleted one); the
/// store still takes writes, defragments and closes without panicking.
pub fn recovery_image(data: &[u8]) {
    let base = base_image();
    let mut image = base.image.clone();
    let mut rest = data;
    // A block whose header is damaged beyond one byte reads as free (docs/FORMAT.md): its
    // frames vanish without a report, so an older version elsewhere may be what a read finds.
    let mut header_patched = false;
    while rest.len() >= 5 {
        let offset =
            u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize % image.len();
        let len = (rest[4] as usize).min(rest.len() - 5);
        let end = (offset + len).min(image.len());
        let block_start = offset / RECOVERY_BLOCK_BYTES as usize * RECOVERY_BLOCK_BYTES as usize;
        header_patched |= offset < block_start + BLOCK_HEADER_BYTES
            || end > block_start + RECOVERY_BLOCK_BYTES as usize;
        image[offset..end].copy_from_slice(&rest[5..5 + (end - offset)]);
        rest = &rest[5 + len..];
    }
    let dev: Arc<dyn Device> = Arc::new(FaultDevice::from_image(image, 0));
    let Ok(e) = Engine::open_on_device(recovery_config(), dev) else {
        return;
    };
    let report = e.recovery_report();
    let damaged = header_patched
        || report.corrupt_records > 0
        || report.torn_tails > 0
        || !report.damage.is_empty();
    for key in 0..RECOVERY_KEYS {
        let name = format!("key-{key}");
        if let Ok(Some(r)) = e.get(1, name.as_bytes()) {
            base.check(name.as_bytes(), &r.value, damaged);
        }
    }
    if let Ok(chunk) = e.scan(1, ScanCursor::START, 1000) {
        for (_, r) in chunk.records {
            base.check(&r.key, &r.value, damaged);
        }
    }
    let w = WriteOptions::default();
    let _ = e.put(1, b"fuzz", b"after recovery", &w);
    let _ = e.defragment(4);
    let _ = e.close();
}

/// The server's frame header and message decoders, for requests and responses. A frame
/// (the header and the `body_len` bytes after it) that decodes as a successful response
/// re-encodes to exactly its bytes (flags aside, see below); one that decodes as a request
/// re-encodes to a frame of the same header and length that decodes to the same request.
pub fn protocol_frame(data: &[u8]) {
    use quiver_server::protocol::{
        decode_refs, decode_request, decode_response, encode_request_flags, encode_response,
        split_get_body, FrameHeader, Response, HEADER_LEN,
    };
    if data.len() < HEADER_LEN {
        return;
    }
    let head: &[u8; HEADER_LEN] = data[..HEADER_LEN].try_into().expect("header bytes");
    let body = &data[HEADER_LEN..];
    let Ok(h) = FrameHeader::decode(head, 1 << 20) else {
        return;
    };
    let frame = data.get(..HEADER_LEN + h.body_len as usize);
    if let Ok(op) = h.check_request() {
        let _ = decode_request(op, body);
        if let Ok((_, refs)) = split_get_body(body) {
            let _ = decode_refs(refs);
        }
        if let Some(frame) = frame {
            if let Ok(request) = decode_request(op, &frame[HEADER_LEN..]) {
                let mut again = Vec::new();
                // A request may carry the flags a server accepts (CORRUPT_STATUS): re-encoded
                // with the same flags.
                encode_request_flags(h.request_id, &request, h.flags, &mut again);
                // Not byte for byte: the decoder ignores the value bytes of an absent optional
                // field (PUT options, an as-of time's known-at, a HISTORY cursor without
                // resume), so the header and the length must match exactly and the body must
                // decode to the same request.
                assert_eq!(again[..HEADER_LEN], frame[..HEADER_LEN], "{request:?}");
                assert_eq!(
                    again.len(),
                    frame.len(),
                    "{request:?} re-encodes longer or shorter"
                );
                let back = decode_request(op, &again[HEADER_LEN..]).expect("re-encoded request");
                assert_eq!(format!("{back:?}"), format!("{request:?}"));
            }
        }
    }
    if let Ok(op) = h.check_response() {
        let _ = decode_response(&h, body);
        if let Some(frame) = frame.filter(|_| h.status == 0) {
            if let Ok(response) = decode_response(&h, &frame[HEADER_LEN..]) {
                let mut again = Vec::new();
                encode_response(&mut again, op, h.request_id, &response);
                // The decoder accepts FLAG_MORE on any response and only a scan chunk
                // carries it, so the flags are compared for scan chunks only.
                if !matches!(response, Response::ScanChunk { .. }) {
                    again[4..6].copy_from_slice(&frame[4..6]);
                }
                assert_eq!(again, frame, "response {response:?} re-encodes differently");
            }
        }
    }
}

/// The feature model's codecs: schemas, the registry index, and rows (decoded against a
/// schema with one feature of every type).
pub fn feature_codec(data: &[u8]) {
    use quiver_engine::feature::read::decode_row;
    use quiver_engine::feature::{GroupSchema, RegistryIndex, Row};
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(s) = GroupSchema::decode(bytes) {
                let again = GroupSchema::decode(&s.encode()).expect("a re-encoded schema decodes");
                assert_eq!(again.encode(), s.encode(), "schema encoding is not stable");
            }
        }
        1 => {
            if let Ok(r) = RegistryIndex::decode(bytes) {
                let _ = RegistryIndex::decode(&r.encode())
                    .expect("a re-encoded registry index decodes");
            }
        }
        _ => {
            let _ = Row::body(bytes);
            let _ = decode_row(every_type_schema(), bytes, 1_700_000_000_000);
        }
    }
}

fn every_type_schema() -> &'static GroupSchemaRef {
    use quiver_engine::feature::{FeatureSpec, FeatureType, GroupSchema, GroupSpec, KeyType};
    static SCHEMA: OnceLock<GroupSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let types = [
            FeatureType::Bool,
            FeatureType::I64,
            FeatureType::F32,
            FeatureType::F64,
            FeatureType::String,
            FeatureType::Bytes,
            FeatureType::Vector(4),
            FeatureType::ListI64,
            FeatureType::ListF32,
            FeatureType::ListString,
        ];
        let features = types
            .iter()
            .enumerate()
            .map(|(i, &t)| FeatureSpec::new(format!("f{i}"), t))
            .collect();
        GroupSchema::from_spec(7, GroupSpec::new("fuzzed", KeyType::String, features))
            .expect("a valid schema")
    })
}

type GroupSchemaRef = quiver_engine::feature::GroupSchema;

/// The size parser of the server's configuration (`8GiB`, `512 MiB`, ...).
pub fn config_size(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = quiver_server::size::parse_size(s) {
        let _ = n;
    }
}

/// Valid inputs for each target: the checked-in seed corpus is written from these.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "record_frame" => {
            let mut out = Vec::new();
            for (k, v) in [
                (&b"k"[..], &b""[..]),
                (b"user:1", b"hello world"),
                (b"key-77", &[9u8; 300]),
            ] {
                let r = RecordInput {
                    lsn: 5,
                    group: 1,
                    key: k,
                    value: v,
                    flags: 0,
                    generation: 2,
                    expiry_s: 0,
                    last_update_s: 1_700_000_000,
                };
                let mut b = 42u64.to_le_bytes().to_vec();
                let at = b.len();
                b.resize(at + padded_frame_len(r.frame_len()), 0);
                r.encode(42, &mut b[at..]);
                out.push(b);
            }
            out
        }
        "block_scanner" => {
            let mut b = 9u64.to_le_bytes().to_vec();
            let mut block = vec![0u8; 4096];
            BlockHeader {
                block: 2,
                seq: 9,
                store_id_lo: 1,
                kind: BlockKind::Foreground,
                created_ms: 0,
            }
            .encode(&mut block);
            let mut at = BLOCK_HEADER_BYTES;
            for i in 0..5u8 {
                let key = [b'k', i];
                let value = vec![i; 40 * i as usize];
                let r = RecordInput {
                    lsn: i as u64,
                    group: 1,
                    key: &key,
                    value: &value,
                    flags: 0,
                    generation: 1,
                    expiry_s: 0,
                    last_update_s: 0,
                };
                r.encode(9, &mut block[at..]);
                at += padded_frame_len(r.frame_len());
            }
            b.extend_from_slice(&block);
            let mut torn = b.clone();
            torn[8 + BLOCK_HEADER_BYTES + 3] ^= 0xff;
            vec![b, torn]
        }
        "disk_headers" => {
            let mut s = vec![0u8; 64];
            Superblock {
                write_block_bytes: 1 << 20,
                device_bytes: 64 << 20,
                store_id: 77,
                created_ms: 5,
            }
            .encode(&mut s);
            let mut h = vec![0u8; 64];
            BlockHeader {
                block: 3,
                seq: 99,
                store_id_lo: 77,
                kind: BlockKind::Defrag,
                created_ms: 1,
            }
            .encode(&mut h);
            vec![s, h]
        }
        "recovery_image" => {
            let base = base_image();
            let data_at = RECOVERY_BLOCK_BYTES as usize + 64;
            let mut flip = (data_at as u32 + 100).to_le_bytes().to_vec();
            flip.extend_from_slice(&[1, 0xff]);
            let mut header = (RECOVERY_BLOCK_BYTES * 2 + 16).to_le_bytes().to_vec();
            header.extend_from_slice(&[8, 1, 2, 3, 4, 5, 6, 7, 8]);
            let unchanged = (data_at as u32)
                .to_le_bytes()
                .iter()
                .copied()
                .chain([4])
                .chain(base.image[data_at..data_at + 4].iter().copied())
                .collect();
            vec![Vec::new(), flip, header, unchanged]
        }
        "protocol_frame" => protocol_seeds(),
        "feature_codec" => {
            let mut schema = vec![0u8];
            schema.extend(every_type_schema().encode());
            vec![schema, vec![1, 0, 0, 0, 0], vec![2, 0, 0]]
        }
        "config_size" => [
            "8GiB",
            "512 MiB",
            "1k",
            "0",
            "18446744073709551615",
            "4096B",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        _ => Vec::new(),
    }
}

fn protocol_seeds() -> Vec<Vec<u8>> {
    use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions, Value};
    use quiver_engine::history::{AsOf, HistoryCursor, HistoryRange};
    use quiver_server::protocol::{
        encode_request, GetAsOfRequest, HistoryKeysRequest, HistoryRequest, Request,
    };
    let requests = [
        Request::Ping {
            payload: b"hello".to_vec(),
        },
        Request::Stats,
        Request::Get {
            key: EntityKey::String("user:1".into()),
            features: vec![FeatureRef {
                group: "g".into(),
                feature: "f".into(),
            }],
        },
        Request::Put {
            group: "g".into(),
            key: EntityKey::I64(7),
            event_time_ms: 1_700_000_000_000,
            options: PutOptions::default(),
            values: vec![
                ("a".into(), Value::F32(1.5)),
                ("b".into(), Value::Vector(vec![1.0, 2.0])),
                ("c".into(), Value::ListString(vec!["x".into()])),
            ],
        },
        Request::Delete {
            group: "g".into(),
            key: EntityKey::Bytes(vec![1, 2, 3]),
            durability: None,
        },
        Request::GetAsOf(GetAsOfRequest {
            keys: vec![
                EntityKey::String("u1".into()),
                EntityKey::String("u2".into()),
            ],
            times: vec![AsOf::known_at(1_700_000_000_000, 1_700_000_100_000)],
            features: vec![FeatureRef {
                group: "g".into(),
                feature: "f".into(),
            }],
        }),
        Request::History(HistoryRequest {
            group: "g".into(),
            key: EntityKey::I64(7),
            features: vec!["f".into()],
            range: HistoryRange {
                from_ms: 0,
                to_ms: u64::MAX,
                known_at_ms: Some(1_700_000_000_000),
            },
            after: Some(HistoryCursor {
                event_time_ms: 1_700_000_000_000,
                write_time_ms: 1_700_000_000_005,
                feature: 0,
                skip: 1,
            }),
            max_versions: 100,
        }),
        Request::HistoryKeys(HistoryKeysRequest {
            group: "g".into(),
            cursor: Some(quiver_engine::ScanCursor(5)),
            max_records: 10,
        }),
    ];
    requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut out = Vec::new();
            encode_request(i as u64, r, &mut out);
            out
        })
        .collect()
}
