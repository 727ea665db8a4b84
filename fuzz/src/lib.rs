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
/// Device sectors: a torn write lands or loses them whole (as `recovery_damage.rs` assumes).
const SECTOR_BYTES: usize = 512;

/// One record frame of key `key-<key>` in a valid block of the base image.
#[derive(Clone, Copy, Debug)]
pub struct BaseFrame {
    pub key: usize,
    /// Image offsets of the frame's block and of the frame itself.
    pub block_at: usize,
    pub at: usize,
    pub total_len: usize,
    pub lsn: u64,
    pub tombstone: bool,
}

/// A valid store image with several blocks (overwrites, deletes, a defragmented and reused
/// block), every value written to each key, what each key holds at the end, and where every
/// frame of the image lies.
pub struct BaseImage {
    pub image: Vec<u8>,
    /// Per key index: every value ever written to it.
    pub written: Vec<HashSet<Vec<u8>>>,
    /// Per key index: its latest acknowledged value, `None` once deleted.
    pub latest: Vec<Option<Vec<u8>>>,
    /// Every frame of a key in a block whose header is valid (originals, copies, tombstones).
    pub frames: Vec<BaseFrame>,
    /// Per key index: the LSN of its newest frame (value or tombstone), if any is left.
    pub newest_lsn: Vec<Option<u64>>,
}

/// Byte ranges of the image that the fuzz input overwrote.
struct Patches(Vec<(usize, usize)>);

impl Patches {
    fn touches(&self, start: usize, end: usize) -> bool {
        self.0.iter().any(|&(s, e)| s < end && start < e)
    }
}

/// What a recovered store may answer for one key, given the patches laid over the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A frame of its newest version is untouched and its block's scan reaches it: the key
    /// reads exactly its latest acknowledged value (absent when that is a tombstone).
    Exact,
    /// Its latest value, or nothing, or an error (CORRUPT): never an older or deleted one.
    LatestOrNothing,
    /// The patches destroyed every frame of its newest version in a way recovery cannot see
    /// (docs/RELIABILITY.md, hazard 9, residual risks): any value of this key, or nothing.
    AnyOwn,
}

impl BaseImage {
    /// A frame "stands" when its block header is untouched and no patch touched its header
    /// or the header of an earlier frame of its block (zeros there end the block's scan).
    /// A standing frame whose body was hit is damage recovery must see (the key reads
    /// CORRUPT), unless the hit left the shape of a write cut by a power loss.
    fn expect(&self, key: usize, patches: &Patches, image: &[u8]) -> Expect {
        let Some(newest) = self.newest_lsn[key] else {
            // Deleted, its tombstone dropped: no frame of the key is left to find.
            return Expect::Exact;
        };
        let stands = |f: &BaseFrame| {
            !patches.touches(f.block_at, f.block_at + BLOCK_HEADER_BYTES)
                && !self.frames.iter().any(|g| {
                    g.block_at == f.block_at
                        && g.at <= f.at
                        && patches.touches(g.at, g.at + RECORD_HEADER_BYTES)
                })
        };
        let newest = || {
            self.frames
                .iter()
                .filter(move |f| f.key == key && f.lsn == newest)
                .filter(|f| stands(f))
        };
        if newest().any(|f| !patches.touches(f.at, f.at + f.total_len)) {
            Expect::Exact
        } else if newest().any(|f| !torn_like(f, image)) {
            Expect::LatestOrNothing
        } else {
            Expect::AnyOwn
        }
    }

    /// Checks a value a recovered store returned for `key`: a value of that key only (never
    /// another key's), and its latest acknowledged one unless `expect` is `AnyOwn`.
    fn check(&self, key: &[u8], got: &[u8], expect: &[Expect]) {
        let k = key_index(key)
            .filter(|&k| k < self.latest.len())
            .unwrap_or_else(|| panic!("a key never written came back: {key:?}"));
        assert!(
            self.written[k].contains(got),
            "key-{k} returned a value it never held (another key's, or made up)"
        );
        if expect[k] != Expect::AnyOwn {
            assert!(
                self.latest[k].as_deref() == Some(got),
                "key-{k} returned an older or deleted value though a frame of its newest \
                 version ({}) stands",
                if self.latest[k].is_some() {
                    "a value"
                } else {
                    "a tombstone"
                }
            );
        }
    }

    /// Checks a read of `key-<k>`: beyond [`BaseImage::check`], a key whose newest version is
    /// intact reads exactly as acknowledged (its value, or absent once deleted).
    fn check_read(
        &self,
        k: usize,
        got: &quiver_engine::Result<Option<quiver_engine::Record>>,
        expect: &[Expect],
    ) {
        let name = format!("key-{k}");
        if let Ok(Some(r)) = got {
            self.check(name.as_bytes(), &r.value, expect);
        }
        if expect[k] == Expect::Exact {
            let got = got.as_ref().map(|r| r.as_ref().map(|r| &r.value[..]));
            assert!(
                matches!(got, Ok(v) if v == self.latest[k].as_deref()),
                "{name}'s newest version is intact, yet a read answered {:?}",
                got.map(|v| v.map(<[u8]>::len))
            );
        }
    }
}

fn key_index(key: &[u8]) -> Option<usize> {
    std::str::from_utf8(key)
        .ok()?
        .strip_prefix("key-")?
        .parse::<usize>()
        .ok()
}

/// The engine's rule for a write cut by a power loss: from a sector boundary inside the frame
/// to its end, every byte is zero (then the previous version is the right answer).
fn torn_like(f: &BaseFrame, image: &[u8]) -> bool {
    let bytes = &image[f.at..f.at + f.total_len];
    match bytes.iter().rposition(|&b| b != 0) {
        None => true,
        Some(last) => (f.at + last + 1).next_multiple_of(SECTOR_BYTES) < f.at + f.total_len,
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

/// Every frame of group 1 in the image's valid blocks; the image must be undamaged.
fn image_frames(image: &[u8]) -> Vec<BaseFrame> {
    let store_id_lo = Superblock::decode(image).expect("base superblock").store_id as u64;
    let block_bytes = RECOVERY_BLOCK_BYTES as usize;
    let mut frames = Vec::new();
    for (block, bytes) in image.chunks(block_bytes).enumerate().skip(1) {
        let Some(h) = BlockHeader::decode(bytes, block as u32, store_id_lo) else {
            continue;
        };
        for item in BlockScanner::new(bytes, block as u32, h.seq) {
            let ScanItem::Record { offset, record } = item else {
                panic!("the base image holds a damaged frame in block {block}: {item:?}");
            };
            let Some(key) = key_index(record.key).filter(|_| record.header.group == 1) else {
                continue;
            };
            frames.push(BaseFrame {
                key,
                block_at: block * block_bytes,
                at: block * block_bytes + offset as usize,
                total_len: record.header.total_len as usize,
                lsn: record.header.lsn,
                tombstone: record.header.is_tombstone(),
            });
        }
    }
    frames
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
        let image = dev.crash(CrashMode::DropUnsynced);
        let frames = image_frames(&image);
        let mut newest_lsn = vec![None; RECOVERY_KEYS as usize];
        for f in &frames {
            let n = &mut newest_lsn[f.key];
            *n = Some(n.map_or(f.lsn, |n: u64| n.max(f.lsn)));
        }
        // The expectations hold on the undamaged image: each key's newest frames hold its
        // latest value, or are tombstones, or (deleted, its tombstone dropped) nothing is left.
        for (k, newest) in newest_lsn.iter().enumerate() {
            for f in frames
                .iter()
                .filter(|f| f.key == k && Some(f.lsn) == *newest)
            {
                let value = &image
                    [f.at + RECORD_HEADER_BYTES + format!("key-{k}").len()..f.at + f.total_len];
                match &latest[k] {
                    Some(v) => assert!(!f.tombstone && value == &v[..], "key-{k}'s newest frame"),
                    None => assert!(
                        f.tombstone,
                        "key-{k} is deleted but its newest frame is a value"
                    ),
                }
            }
            assert!(
                newest.is_some() || latest[k].is_none(),
                "key-{k} has no frame in the base image"
            );
        }
        BaseImage {
            image,
            written,
            latest,
            frames,
            newest_lsn,
        }
    })
}

/// Recovery on a damaged image: the fuzz input is a list of patches
/// (`offset u32 LE`, `len u8`, `len` bytes) laid over a valid image whose every frame is
/// known. Opening must not panic; when it succeeds, a read or scan returns for each key only
/// a value of that key (never another key's), and that value is its latest acknowledged one
/// (never an older or a deleted one) unless the patches destroyed every frame of its newest
/// version in a way recovery cannot see; a key whose newest version is untouched reads
/// exactly as acknowledged (see [`Expect`]). The store still takes writes, defragments and
/// closes without panicking.
pub fn recovery_image(data: &[u8]) {
    let base = base_image();
    let mut image = base.image.clone();
    let mut patches = Patches(Vec::new());
    let mut rest = data;
    while rest.len() >= 5 {
        let offset =
            u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize % image.len();
        let len = (rest[4] as usize).min(rest.len() - 5);
        let end = (offset + len).min(image.len());
        image[offset..end].copy_from_slice(&rest[5..5 + (end - offset)]);
        patches.0.push((offset, end));
        rest = &rest[5 + len..];
    }
    let expect: Vec<Expect> = (0..RECOVERY_KEYS as usize)
        .map(|k| base.expect(k, &patches, &image))
        .collect();
    let dev: Arc<dyn Device> = Arc::new(FaultDevice::from_image(image, 0));
    let Ok(e) = Engine::open_on_device(recovery_config(), dev) else {
        return;
    };
    for k in 0..RECOVERY_KEYS as usize {
        base.check_read(k, &e.get(1, format!("key-{k}").as_bytes()), &expect);
    }
    if let Ok(chunk) = e.scan(1, ScanCursor::START, 1000) {
        let mut seen = HashSet::new();
        for (_, r) in chunk.records {
            base.check(&r.key, &r.value, &expect);
            seen.insert(r.key);
        }
        for (k, latest) in base.latest.iter().enumerate() {
            let name = format!("key-{k}").into_bytes();
            assert!(
                expect[k] != Expect::Exact || latest.is_none() || seen.contains(&name),
                "key-{k}'s newest version is intact, yet a scan missed it"
            );
        }
    }
    let w = WriteOptions::default();
    let _ = e.put(1, b"fuzz", b"after recovery", &w);
    let _ = e.defragment(4);
    let _ = e.close();
}

/// The server's frame header and message decoders, for requests and responses. A frame
/// (the header and the `body_len` bytes after it) that decodes as a request, or as a
/// successful response, re-encodes to exactly its bytes: the decoders accept one encoding of
/// each message (docs/PROTOCOL.md, "Conventions").
pub fn protocol_frame(data: &[u8]) {
    use quiver_server::protocol::{
        decode_refs, decode_request, decode_response, encode_request_flags, encode_response,
        split_get_body, FrameHeader, Request, HEADER_LEN,
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
        if let Ok((key, refs)) = split_get_body(body) {
            // The server's batched GET path decodes the same body in two halves.
            if let (Ok(features), Some(frame)) = (decode_refs(refs), frame) {
                if frame.len() == data.len() {
                    let mut again = Vec::new();
                    let get = Request::Get { key, features };
                    encode_request_flags(h.request_id, &get, h.flags, &mut again);
                    again[3] = frame[3];
                    assert_eq!(
                        again, frame,
                        "a GET body split in two re-encodes differently"
                    );
                }
            }
        }
        if let Some(frame) = frame {
            if let Ok(request) = decode_request(op, &frame[HEADER_LEN..]) {
                let mut again = Vec::new();
                encode_request_flags(h.request_id, &request, h.flags, &mut again);
                assert_eq!(again, frame, "request {request:?} re-encodes differently");
            }
        }
    }
    if let Ok(op) = h.check_response() {
        let _ = decode_response(&h, body);
        if let Some(frame) = frame.filter(|_| h.status == 0) {
            if let Ok(response) = decode_response(&h, &frame[HEADER_LEN..]) {
                let mut again = Vec::new();
                encode_response(&mut again, op, h.request_id, &response);
                assert_eq!(again, frame, "response {response:?} re-encodes differently");
            }
        }
    }
}

/// The feature model's codecs: schemas, the registry index, rows (decoded against a schema
/// with one feature of every type), saved statistics (`stats/N`) and baselines
/// (`baseline/N`), all of group 7.
pub fn feature_codec(data: &[u8]) {
    use quiver_engine::feature::read::decode_row;
    use quiver_engine::feature::{GroupSchema, RegistryIndex, Row};
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 5 {
        3 => {
            use quiver_engine::quality::codec;
            if let Ok(w) = codec::decode(7, bytes) {
                codec::decode(7, &codec::encode(7, &w)).expect("re-encoded statistics decode");
            }
        }
        4 => {
            use quiver_engine::quality::baseline;
            if let Ok(b) = baseline::decode(7, bytes) {
                let again = baseline::encode(7, &b);
                assert_eq!(
                    baseline::decode(7, &again).expect("re-encoded baselines decode"),
                    b,
                    "baselines change through their encoding"
                );
            }
        }
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
            let mut out = vec![Vec::new(), flip, header, unchanged];
            out.extend(aimed_recovery_seeds(base));
            out
        }
        "protocol_frame" => protocol_seeds(),
        "feature_codec" => {
            let mut schema = vec![0u8];
            schema.extend(every_type_schema().encode());
            let mut ruled = vec![0u8];
            ruled.extend(ruled_schema().encode());
            let mut out = vec![schema, ruled, vec![1, 0, 0, 0, 0], vec![2, 0, 0]];
            out.push([3].into_iter().chain(stats_seed()).collect());
            for b in baseline_seeds_of(7) {
                out.push([4].into_iter().chain(b).collect());
            }
            out
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

/// Rules of the given texts (see `quiver_engine::feature::rules::text`).
fn rules(texts: &[&str]) -> quiver_engine::feature::FeatureRules {
    let mut rules = quiver_engine::feature::FeatureRules::default();
    for t in texts {
        rules.parse_rule(t).expect("a valid rule text");
    }
    rules
}

/// The saved statistics of group 7 after puts of every type of value in two windows.
fn stats_seed() -> Vec<u8> {
    use quiver_engine::feature::Value;
    use quiver_engine::quality::{codec, GroupStats};
    let stats = GroupStats::default();
    let values = [
        Value::F64(1.5),
        Value::I64(-3),
        Value::String("paris".into()),
        Value::Bool(true),
        Value::Vector(vec![0.6, 0.8]),
        Value::Null,
    ];
    for (i, v) in values.iter().enumerate() {
        let at = 1_700_000_000_000 + i as u64 * 3_600_000;
        stats.record(&(i as u64).to_le_bytes(), &[(i as u32, v)], at);
    }
    codec::encode(7, &stats.snapshot())
}

/// Baseline records of group `group`: one numeric and one categorical baseline, together.
fn baseline_seeds_of(group: u32) -> Vec<Vec<u8>> {
    use quiver_engine::feature::{Feature, FeatureType, Value};
    use quiver_engine::quality::baseline::{encode, Baseline, Builder};
    let feature = |id: u32, ty| Feature {
        id,
        name: format!("f{id}"),
        ty,
        description: String::new(),
        owner: String::new(),
        tags: Vec::new(),
        deprecated: false,
        rules: Default::default(),
    };
    let mut numbers = Builder::default();
    (0..500).for_each(|i| numbers.add(&Value::F64(f64::from(i % 37) * 1.5)));
    let n = Baseline::from_bucket(
        &feature(0, FeatureType::F64),
        &numbers.finish(),
        "window 24h".into(),
        1_700_000_000_000,
    )
    .expect("a numeric baseline");
    let mut cats = Builder::default();
    for city in ["paris", "rome", "paris", "oslo"] {
        cats.add(&Value::String(city.into()));
    }
    let c = Baseline::from_bucket(
        &feature(4, FeatureType::String),
        &cats.finish(),
        "parquet train.parquet".into(),
        1_700_000_000_000,
    )
    .expect("a categorical baseline");
    vec![encode(group, &[n.clone()]), encode(group, &[n, c])]
}

/// Wire baselines (BASELINE put): group id 0, one baseline.
fn baseline_seeds() -> Vec<Vec<u8>> {
    baseline_seeds_of(0)
}

/// A schema in drop mode whose features carry every kind of validation rule.
fn ruled_schema() -> quiver_engine::feature::GroupSchema {
    use quiver_engine::feature::{FeatureSpec, FeatureType, GroupSchema, GroupSpec, KeyType};
    let ruled = |name: &str, ty, texts: &[&str]| FeatureSpec {
        rules: rules(texts),
        ..FeatureSpec::new(name, ty)
    };
    let mut spec = GroupSpec::new(
        "ruled",
        KeyType::String,
        vec![
            ruled(
                "age",
                FeatureType::I64,
                &["not-null", "range=[0,150)", "in=1,2,3"],
            ),
            ruled(
                "emb",
                FeatureType::Vector(3),
                &["finite", "norm=[0.9,1.1]", "range=(-1,1)"],
            ),
            ruled(
                "city",
                FeatureType::String,
                &["regex=[a-z]+", "len=[1,32]", "lag=1h"],
            ),
            ruled(
                "ids",
                FeatureType::ListString,
                &["in=a,b", "future=5m", "len=(0,)"],
            ),
        ],
    );
    spec.on_violation = quiver_engine::feature::ViolationMode::Drop;
    spec.quality = quiver_engine::feature::QualitySlo {
        max_staleness_s: Some(900),
        drift_psi: Some(0.2),
        drift_distance: Some(0.5),
    };
    GroupSchema::from_spec(3, spec).expect("a valid ruled schema")
}

/// One patch of a recovery input: `offset u32 LE`, `len u8`, the bytes.
fn patch(out: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(u8::MAX as usize).enumerate() {
        out.extend_from_slice(&((at + i * u8::MAX as usize) as u32).to_le_bytes());
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

/// Recovery inputs aimed at the frames that decide what a key reads: a flipped byte in the
/// body and in the header of a key's newest value, in a tombstone's header, a newest frame
/// cut at a sector boundary (a power loss's shape), zeros over a header in the middle of a
/// block (its scan ends there), and a damaged block header.
fn aimed_recovery_seeds(base: &BaseImage) -> Vec<Vec<u8>> {
    let newest = |pick: &dyn Fn(&BaseFrame) -> bool| {
        base.frames
            .iter()
            .copied()
            .filter(|f| Some(f.lsn) == base.newest_lsn[f.key] && pick(f))
            .max_by_key(|f| (f.total_len, f.key))
            .expect("a frame of that kind")
    };
    let flip = |at: usize| [base.image[at] ^ 0x5a];
    let mut out = Vec::new();
    let value = newest(&|f| !f.tombstone && f.key % 5 == 0);
    let mut b = Vec::new();
    patch(
        &mut b,
        value.at + value.total_len / 2,
        &flip(value.at + value.total_len / 2),
    );
    out.push(b);
    let mut b = Vec::new();
    patch(&mut b, value.at + 20, &flip(value.at + 20));
    out.push(b);
    let tombstone = newest(&|f| f.tombstone);
    let mut b = Vec::new();
    patch(&mut b, tombstone.at + 17, &flip(tombstone.at + 17));
    out.push(b);
    let long = newest(&|f| !f.tombstone && f.total_len > 2 * SECTOR_BYTES);
    let cut = (long.at + RECORD_HEADER_BYTES + 1).next_multiple_of(SECTOR_BYTES);
    let mut b = Vec::new();
    patch(&mut b, cut, &vec![0; long.at + long.total_len - cut]);
    out.push(b);
    let middle = base
        .frames
        .iter()
        .filter(|f| f.block_at == value.block_at)
        .nth(3)
        .expect("a block of several frames");
    let mut b = Vec::new();
    patch(&mut b, middle.at, &[0; RECORD_HEADER_BYTES]);
    patch(
        &mut b,
        tombstone.block_at + 40,
        &flip(tombstone.block_at + 40),
    );
    out.push(b);
    out
}

fn protocol_seeds() -> Vec<Vec<u8>> {
    use quiver_engine::feature::{
        Alter, Compression, EntityKey, FeatureRef, FeatureSpec, FeatureType, FeatureValue,
        GroupSchema, GroupSpec, KeyType, PutOptions, PutResult, ScanItem, Status, Value, WriteMode,
    };
    use quiver_engine::history::{AsOf, HistoryCursor, HistoryPolicy, HistoryRange};
    use quiver_server::protocol::{
        encode_request, encode_request_flags, encode_response, GetAsOfRequest, HandshakeInfo,
        HistoryKeysRequest, HistoryRequest, Opcode, Request, Response, ScanRequest, StatusCode,
        FLAG_CORRUPT_STATUS,
    };
    let feature = |g: &str, f: &str| FeatureRef {
        group: g.into(),
        feature: f.into(),
    };
    let spec = GroupSpec {
        name: "g".into(),
        key_type: KeyType::String,
        features: vec![
            FeatureSpec::new("a", FeatureType::F32),
            FeatureSpec::new("v", FeatureType::Vector(2)),
        ],
        ttl_s: Some(3600),
        compression: Compression::Zstd { level: 3 },
        allow_non_finite: false,
        description: "d".into(),
        owner: "o".into(),
        tags: vec!["t".into()],
        history: Some(HistoryPolicy::retention(86_400).with_max_versions(5)),
        on_violation: quiver_engine::feature::ViolationMode::Drop,
        quality: quiver_engine::feature::QualitySlo {
            max_staleness_s: Some(900),
            drift_psi: Some(0.2),
            drift_distance: Some(0.1),
        },
    };
    let mut spec = spec;
    spec.features[0].rules = rules(&["finite", "range=[0,1]"]);
    let requests = [
        Request::Ping {
            payload: b"hello".to_vec(),
        },
        Request::Stats,
        Request::FeatureStats {
            group: "g".into(),
            feature: None,
        },
        Request::FeatureStats {
            group: "user".into(),
            feature: Some("age".into()),
        },
        Request::Baseline(quiver_server::protocol::BaselineRequest::SaveWindow {
            group: "g".into(),
            feature: Some("a".into()),
            window: "24h".into(),
        }),
        Request::Baseline(quiver_server::protocol::BaselineRequest::Put {
            group: "g".into(),
            record: baseline_seeds()[0].clone(),
        }),
        Request::Baseline(quiver_server::protocol::BaselineRequest::Show {
            group: "g".into(),
            feature: None,
        }),
        Request::Baseline(quiver_server::protocol::BaselineRequest::Drop {
            group: "g".into(),
            feature: Some("a".into()),
        }),
        Request::ClusterMap,
        Request::Replicate(quiver_server::protocol::ReplicateRequest {
            map_version: 3,
            from_node: 2,
            partition: 4095,
            write: quiver_server::protocol::Replicated::Write(Box::new(Request::Delete {
                group: "g".into(),
                key: EntityKey::String("u".into()),
                durability: Some(quiver_engine::Durability::Sync),
            })),
        }),
        Request::Replicate(quiver_server::protocol::ReplicateRequest {
            map_version: 4,
            from_node: 1,
            partition: 7,
            write: quiver_server::protocol::Replicated::Reset,
        }),
        Request::Replicate(quiver_server::protocol::ReplicateRequest {
            map_version: 4,
            from_node: 1,
            partition: 7,
            write: quiver_server::protocol::Replicated::Copy(
                quiver_server::protocol::CopiedRecord {
                    group: "g".into(),
                    key: b"u".to_vec(),
                    expiry_s: 0,
                    row: vec![1, 2, 3, 4],
                },
            ),
        }),
        Request::Replicate(quiver_server::protocol::ReplicateRequest {
            map_version: 4,
            from_node: 1,
            partition: 7,
            write: quiver_server::protocol::Replicated::CopyHistory(
                quiver_server::protocol::CopiedRecord {
                    group: "g".into(),
                    key: b"u\xff\xff\xff\xff".to_vec(),
                    expiry_s: 0,
                    row: vec![5, 6],
                },
            ),
        }),
        Request::Replicate(quiver_server::protocol::ReplicateRequest {
            map_version: 4,
            from_node: 1,
            partition: 7,
            write: quiver_server::protocol::Replicated::Group {
                spec: spec.clone(),
                deprecated: vec!["f0".into()],
            },
        }),
        Request::ClusterLeave { node: 3 },
        Request::Security(quiver_server::protocol::SecurityRequest::Whoami),
        Request::Security(quiver_server::protocol::SecurityRequest::RoleGrant {
            role: "analysts".into(),
            grant: quiver_server::protocol::Grant {
                permission: quiver_server::protocol::Permission::Read,
                scope: quiver_server::protocol::Scope::Tag("pii".into()),
            },
        }),
        Request::Security(quiver_server::protocol::SecurityRequest::UserCreate {
            name: "ana".into(),
            password: "a-password".into(),
            roles: vec!["analysts".into()],
        }),
        Request::Get {
            key: EntityKey::String("user:1".into()),
            features: vec![feature("g", "f")],
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
            features: vec![feature("g", "f")],
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
        Request::Handshake {
            version: 1,
            token: b"secret".to_vec(),
        },
        Request::Put {
            group: "g".into(),
            key: EntityKey::String("u".into()),
            event_time_ms: 5,
            options: PutOptions {
                mode: WriteMode::ReplaceRow,
                expected_generation: Some(3),
                ttl_s: Some(60),
                durability: Some(quiver_engine::Durability::Sync),
                write_time_ms: Some(9),
            },
            values: vec![
                ("n".into(), Value::Null),
                ("i".into(), Value::ListI64(vec![-1, 2])),
            ],
        },
        Request::GetMany {
            keys: vec![EntityKey::I64(1), EntityKey::I64(2)],
            features: vec![feature("g", "a"), feature("h", "b:c")],
        },
        Request::GroupCreate(spec.clone()),
        Request::GroupDescribe { name: "g".into() },
        Request::GroupList { tag: None },
        Request::GroupList {
            tag: Some("t".into()),
        },
        Request::GroupAlter {
            name: "g".into(),
            alter: Alter::SetTtl(None),
        },
        Request::GroupAlter {
            name: "g".into(),
            alter: Alter::AddFeature(FeatureSpec::new("w", FeatureType::Vector(4))),
        },
        Request::GroupAlter {
            name: "g".into(),
            alter: Alter::SetHistoryRetention(Some(60)),
        },
        Request::GroupAlter {
            name: "g".into(),
            alter: Alter::SetHistoryMaxVersions(Some(3)),
        },
        Request::GroupAlter {
            name: "g".into(),
            alter: Alter::SetRules("a".into(), rules(&["not-null", "lag=1h", "in=1,2"])),
        },
        Request::GroupAlter {
            name: "g".into(),
            alter: Alter::SetViolationMode(quiver_engine::feature::ViolationMode::Reject),
        },
        Request::GroupAlter {
            name: "g".into(),
            alter: Alter::SetMaxStaleness(Some(900)),
        },
        Request::GroupAlter {
            name: "g".into(),
            alter: Alter::SetDriftPsi(Some(0.2)),
        },
        Request::GroupAlter {
            name: "g".into(),
            alter: Alter::SetDriftDistance(None),
        },
        Request::GroupDrop { name: "g".into() },
        Request::Scan(ScanRequest {
            group: "g".into(),
            cursor: None,
            chunk_items: 100,
            max_chunks: 2,
        }),
        Request::Scan(ScanRequest {
            group: "g".into(),
            cursor: Some(quiver_engine::ScanCursor(77)),
            chunk_items: 100,
            max_chunks: 2,
        }),
    ];
    let value = |v: Value| FeatureValue {
        status: Status::Present,
        value: v,
        event_time_ms: 12,
    };
    let schema = GroupSchema::from_spec(3, spec).expect("a valid spec");
    let responses = [
        (
            Opcode::Handshake,
            Response::Handshake(HandshakeInfo {
                version: 1,
                max_frame_bytes: 1 << 24,
                max_batch_keys: 10_000,
                max_inflight_per_connection: 1024,
                max_features_per_request: 1024,
                max_scan_chunks: 64,
                server: "quiverd".into(),
            }),
        ),
        (
            Opcode::Get,
            Response::Get(vec![
                value(Value::F64(2.5)),
                FeatureValue {
                    status: Status::NotFound,
                    value: Value::Null,
                    event_time_ms: 0,
                },
            ]),
        ),
        (
            Opcode::GetMany,
            Response::GetMany(vec![
                Ok(vec![value(Value::Bool(true))]),
                Err((StatusCode::TypeMismatch, "key type".into())),
            ]),
        ),
        (
            Opcode::Put,
            Response::Put(PutResult {
                written: 2,
                skipped_stale: 1,
                generation: 4,
                dropped: 1,
            }),
        ),
        (Opcode::Delete, Response::Delete { existed: true }),
        (Opcode::GroupDescribe, Response::Group(schema.clone())),
        (Opcode::GroupList, Response::GroupList(vec![schema])),
        (
            Opcode::Scan,
            Response::ScanChunk {
                items: vec![ScanItem {
                    key: EntityKey::String("u".into()),
                    values: vec![("a".into(), value(Value::String("s".into())))],
                }],
                next: Some(quiver_engine::ScanCursor(5)),
                more: true,
            },
        ),
        (
            Opcode::Scan,
            Response::ScanChunk {
                items: Vec::new(),
                next: None,
                more: false,
            },
        ),
        (Opcode::Stats, Response::Stats { json: "{}".into() }),
        (
            Opcode::FeatureStats,
            Response::FeatureStats {
                json: r#"{"group":"g","puts":1,"stale":false,"features":[]}"#.into(),
            },
        ),
        (
            Opcode::Baseline,
            Response::Baseline {
                json: r#"{"group":"g","dropped":1}"#.into(),
            },
        ),
        (Opcode::Replicate, Response::Replicated),
        (
            Opcode::ClusterMap,
            Response::ClusterMap(quiver_server::protocol::ClusterMapInfo {
                node_id: 1,
                map: quiver_server::cluster::map::PartitionMap::initial(&[1, 2].into(), 2)
                    .expect("a two-node map")
                    .plan(&[1, 2, 3].into()),
                nodes: vec![quiver_server::protocol::ClusterNode {
                    id: 1,
                    address: "127.0.0.1:7878".into(),
                }],
                lag: vec![(2, 4)],
                copies: 1,
                copied_records: 10,
            }),
        ),
        (
            Opcode::ClusterLeave,
            Response::ClusterLeaving { version: 9 },
        ),
        (
            Opcode::Security,
            Response::Security(quiver_server::protocol::SecurityReply::Whoami {
                user: "ana".into(),
                roles: vec!["analysts".into()],
                grants: vec![quiver_server::protocol::Grant {
                    permission: quiver_server::protocol::Permission::Write,
                    scope: quiver_server::protocol::Scope::Group("g".into()),
                }],
            }),
        ),
        (
            Opcode::Security,
            Response::Security(quiver_server::protocol::SecurityReply::Users(vec![
                quiver_server::protocol::UserInfo {
                    name: "ana".into(),
                    roles: vec![],
                },
            ])),
        ),
    ];
    let mut out: Vec<Vec<u8>> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut out = Vec::new();
            encode_request(i as u64, r, &mut out);
            out
        })
        .collect();
    for (i, (op, r)) in responses.iter().enumerate() {
        let mut frame = Vec::new();
        encode_response(&mut frame, *op, 100 + i as u64, r);
        out.push(frame);
    }
    let mut frame = Vec::new();
    encode_request_flags(200, &requests[12], FLAG_CORRUPT_STATUS, &mut frame);
    out.push(frame);
    out
}
