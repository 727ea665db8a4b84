//! Golden bytes: stores written by an earlier build still open and read back exactly, and the
//! encoders of every on-disk format still produce exactly the bytes they produced then.
//!
//! `tests/golden/v1/` holds a small data file and its index checkpoint, written by the
//! format-version-1 code, and `encodings.txt`: the bytes each encoder produced for the fixed
//! inputs below. `tests/golden/v2/` is the same, written by the format-version-2 code (record
//! frames carry a key tag); every version's image is opened and read back by these tests. A round-trip test cannot see a change made to both sides of a codec; these
//! can, because the bytes on the other side were written by an older build.
//!
//! The data file is stored without its trailing zeros (the tests put them back), so the
//! fixture is a few hundred KiB although the engine's smallest device is 7 blocks of 128 KiB.
//!
//! Regenerating (only after a deliberate, documented format change; never to make a failing
//! test pass): `QUIVER_WRITE_GOLDEN=1 cargo test -p quiver-engine --test golden_format
//! write_golden`. It writes `tests/golden/v<FORMAT_VERSION>/` and refuses to overwrite a
//! directory that exists, so the images of older versions stay as they were written.

use std::path::{Path, PathBuf};

use quiver_engine::feature::{
    Alter, Compression, EntityKey, FeatureRef, FeatureSpec, FeatureType, GroupSchema, GroupSpec,
    KeyType, PutOptions, RawCell, RegistryIndex, Row, Status, Value, WriteMode,
};
use quiver_engine::store::Store;
use quiver_engine::{Config, Engine};
use quiver_wal::format::{
    decode_record, BlockHeader, BlockKind, RecordHeader, RecordInput, Superblock,
    BLOCK_HEADER_BYTES, FLAG_RELOCATED, FLAG_TOMBSTONE, FORMAT_VERSION, SUPERBLOCK_BYTES,
    UNIT_BYTES,
};

const BLOCK_BYTES: u32 = 128 << 10;
/// The engine's smallest device: 6 data blocks and block 0.
const DEVICE_BYTES: u64 = 7 * BLOCK_BYTES as u64;
const USERS: usize = 24;
/// Event times of the rows: fixed, so that reads compare exactly.
const T0_MS: u64 = 1_700_000_000_000;
const TEN_YEARS_S: u32 = 10 * 365 * 86_400;
const GENERATE_VAR: &str = "QUIVER_WRITE_GOLDEN";

fn golden_dir(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/v{version}"))
}

fn config(path: &Path) -> Config {
    Config {
        write_block_bytes: BLOCK_BYTES,
        background: false,
        ..Config::file(path, DEVICE_BYTES)
    }
}

// ---- what the image holds -------------------------------------------------------------

fn users_spec() -> GroupSpec {
    let features = vec![
        FeatureSpec::new("flag", FeatureType::Bool),
        FeatureSpec::new("count", FeatureType::I64),
        FeatureSpec::new("ctr", FeatureType::F32),
        FeatureSpec::new("score", FeatureType::F64),
        FeatureSpec::new("name", FeatureType::String),
        FeatureSpec::new("blob", FeatureType::Bytes),
        FeatureSpec::new("emb", FeatureType::Vector(4)),
        FeatureSpec::new("ids", FeatureType::ListI64),
        FeatureSpec::new("weights", FeatureType::ListF32),
        FeatureSpec::new("words", FeatureType::ListString),
    ];
    let mut spec = GroupSpec::new("users", KeyType::String, features);
    spec.description = "golden users".into();
    spec.owner = "storage".into();
    spec.tags = vec!["golden".into(), "v1".into()];
    spec
}

fn events_spec() -> GroupSpec {
    let features = vec![
        FeatureSpec::new("payload", FeatureType::String),
        FeatureSpec::new("n", FeatureType::I64),
    ];
    let mut spec = GroupSpec::new("events", KeyType::I64, features);
    spec.compression = Compression::Zstd { level: 3 };
    spec
}

fn user_key(i: usize) -> EntityKey {
    EntityKey::String(format!("user-{i:02}"))
}

/// The values of user `i` as written in round `round` (0, or 1 for the overwrite).
fn user_values(i: usize, round: u8) -> Vec<(&'static str, Value)> {
    let s = i as i64 + 100 * round as i64;
    // 6000 bytes of a pattern that zstd would not shrink much: the rows fill two blocks.
    let blob: Vec<u8> = (0..6000u32)
        .map(|j| (j.wrapping_mul(2_654_435_761) >> 13) as u8 ^ s as u8)
        .collect();
    vec![
        ("flag", Value::Bool(i.is_multiple_of(2))),
        ("count", Value::I64(i64::MIN + s)),
        ("ctr", Value::F32(0.125 * s as f32)),
        ("score", Value::F64(-1e300 / (s + 1) as f64)),
        ("name", Value::String(format!("ünïcode user {s}"))),
        ("blob", Value::Bytes(blob)),
        ("emb", Value::Vector(vec![s as f32, -0.5, 1e-3, f32::MAX])),
        ("ids", Value::ListI64(vec![s, -s, i64::MAX])),
        ("weights", Value::ListF32(vec![0.25; 1 + i % 5])),
        (
            "words",
            Value::ListString(vec!["a".into(), String::new(), format!("w{s}")]),
        ),
    ]
}

fn event_values(n: i64) -> Vec<(&'static str, Value)> {
    vec![
        ("payload", Value::String(format!("event {n} ").repeat(60))),
        ("n", Value::I64(n)),
    ]
}

const EVENTS: [i64; 5] = [-1, 1, 2, 3, i64::MAX];
/// Overwritten with round-1 values; deleted; written with a 1 s TTL (long expired when the
/// tests read it); written with a ten-year TTL.
const OVERWRITTEN: usize = 3;
const DELETED: usize = 5;
const EXPIRED: usize = 7;
const LONG_TTL: usize = 8;
const DELETED_EVENT: i64 = 2;

/// What a reader must see for user `i`: `None` = absent; else (round, event time).
fn user_expected(i: usize) -> Option<(u8, u64)> {
    match i {
        DELETED | EXPIRED => None,
        OVERWRITTEN => Some((1, T0_MS + 1000)),
        _ => Some((0, T0_MS + i as u64)),
    }
}

/// Writes the image: three groups (one dropped), overwrites, a delete per group, TTLs.
fn write_image(path: &Path) {
    let store = Store::open(config(path)).unwrap();
    store.create_group(users_spec()).unwrap();
    store.create_group(events_spec()).unwrap();
    let gone = GroupSpec::new(
        "gone",
        KeyType::Bytes,
        vec![FeatureSpec::new("x", FeatureType::I64)],
    );
    store.create_group(gone).unwrap();
    let opts = PutOptions::default();
    store
        .put(
            "gone",
            &EntityKey::Bytes(vec![9]),
            T0_MS,
            &[("x", Value::I64(9))],
            &opts,
        )
        .unwrap();
    store.drop_group("gone").unwrap();
    for i in 0..USERS {
        let ttl_s = match i {
            EXPIRED => Some(1),
            LONG_TTL => Some(TEN_YEARS_S),
            _ => None,
        };
        let opts = PutOptions { ttl_s, ..opts };
        store
            .put(
                "users",
                &user_key(i),
                T0_MS + i as u64,
                &user_values(i, 0),
                &opts,
            )
            .unwrap();
    }
    let replace = PutOptions {
        mode: WriteMode::ReplaceRow,
        ..opts
    };
    store
        .put(
            "users",
            &user_key(OVERWRITTEN),
            T0_MS + 1000,
            &user_values(OVERWRITTEN, 1),
            &replace,
        )
        .unwrap();
    assert!(store.delete("users", &user_key(DELETED), None).unwrap());
    for n in EVENTS {
        store
            .put("events", &EntityKey::I64(n), T0_MS, &event_values(n), &opts)
            .unwrap();
    }
    assert!(store
        .delete("events", &EntityKey::I64(DELETED_EVENT), None)
        .unwrap());
    store
        .alter_group(
            "users",
            Alter::AddFeature(FeatureSpec::new("late", FeatureType::I64)),
        )
        .unwrap();
    store
        .alter_group("users", Alter::DeprecateFeature("ctr".into()))
        .unwrap();
    store.close().unwrap();
}

// ---- fixed encoder inputs --------------------------------------------------------------

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `(name, bytes)` of every encoder for fixed inputs.
fn encodings() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut sb = vec![0u8; SUPERBLOCK_BYTES];
    Superblock {
        write_block_bytes: BLOCK_BYTES,
        device_bytes: DEVICE_BYTES,
        store_id: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        created_ms: T0_MS,
    }
    .encode(&mut sb);
    out.push(("superblock", sb));
    let mut bh = vec![0u8; BLOCK_HEADER_BYTES];
    BlockHeader {
        block: 3,
        seq: 77,
        store_id_lo: 0xfedc_ba98_7654_3210,
        kind: BlockKind::Defrag,
        created_ms: T0_MS,
    }
    .encode(&mut bh);
    out.push(("block_header", bh));
    let put = RecordInput {
        lsn: 1234,
        group: 7,
        key: b"user:1",
        value: b"hello, golden world",
        flags: 0,
        generation: 0x1234,
        expiry_s: 1_900_000_000,
        last_update_s: 1_700_000_000,
    };
    let tombstone = RecordInput {
        key: b"k",
        value: b"",
        flags: FLAG_TOMBSTONE | FLAG_RELOCATED,
        expiry_s: 0,
        ..put
    };
    for (name, r) in [("record_put", put), ("record_tombstone", tombstone)] {
        let mut frame = vec![0xaau8; r.frame_len().div_ceil(UNIT_BYTES) * UNIT_BYTES];
        r.encode(77, &mut frame);
        out.push((name, frame));
    }
    let mut schema = Store::open(Config::memory(16 << 20))
        .unwrap()
        .create_group(users_spec())
        .unwrap()
        .as_ref()
        .clone();
    (schema.id, schema.version) = (7, 3);
    schema.ttl_s = Some(86_400);
    schema.allow_non_finite = true;
    schema.compression = Compression::Zstd { level: -3 };
    schema.features[2].deprecated = true;
    out.push(("group_schema", schema.encode()));
    let registry = RegistryIndex {
        next_group_id: 300,
        live: vec![1, 2, 200],
        dropping: vec![3],
    };
    out.push(("registry_index", registry.encode()));
    let payloads: [(u8, &[u8]); 3] = [(0, &[]), (2, &7i64.to_le_bytes()), (5, b"\x03abc")];
    let cells: Vec<RawCell<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, (kind, payload))| RawCell {
            id: [0, 4, 300][i],
            kind: *kind,
            event_time_ms: T0_MS + [5, 0, 300][i],
            payload,
        })
        .collect();
    out.push(("row", Row::encode(&cells, Compression::None)));
    out
}

fn encodings_text() -> String {
    encodings()
        .iter()
        .map(|(name, b)| format!("{name} {}\n", hex(b)))
        .collect()
}

// ---- generator ---------------------------------------------------------------------------

/// Writes `tests/golden/v<FORMAT_VERSION>/` when `QUIVER_WRITE_GOLDEN=1`; else does nothing.
#[test]
fn write_golden() {
    if std::env::var(GENERATE_VAR).as_deref() != Ok("1") {
        return;
    }
    let dir = golden_dir(FORMAT_VERSION);
    assert!(
        !dir.exists(),
        "{} exists: the images of a released format are never rewritten",
        dir.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store.data");
    write_image(&data);
    // The checkpoint the tests keep is the one an open of the image writes on close, once
    // the 1 s TTL has run out (an open drops expired entries), so that a rewrite of it can be
    // compared byte for byte (see `checkpoint_encoder_is_unchanged`).
    let expired_at = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    while std::time::SystemTime::now() < expired_at {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Engine::open(config(&data)).unwrap().close().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let mut image = std::fs::read(&data).unwrap();
    let end = image.iter().rposition(|&b| b != 0).map_or(0, |at| at + 1);
    image.truncate(end.div_ceil(4096) * 4096);
    std::fs::write(dir.join("store.data"), image).unwrap();
    std::fs::copy(ckpt(&data), dir.join("store.data.ckpt")).unwrap();
    std::fs::write(dir.join("encodings.txt"), encodings_text()).unwrap();
}

// ---- the checks --------------------------------------------------------------------------

fn ckpt(data: &Path) -> PathBuf {
    let mut s = data.as_os_str().to_owned();
    s.push(".ckpt");
    PathBuf::from(s)
}

/// Copies the v1 image into a temporary directory, zeros put back; with its checkpoint or
/// without.
/// Every format version with a golden image: each must still open and read back exactly.
const GOLDEN_VERSIONS: std::ops::RangeInclusive<u32> = 1..=FORMAT_VERSION;

fn v1_copy(with_checkpoint: bool) -> (tempfile::TempDir, PathBuf) {
    golden_copy(1, with_checkpoint)
}

fn golden_copy(version: u32, with_checkpoint: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = golden_dir(version);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store.data");
    let mut image = std::fs::read(dir.join("store.data")).expect("v1 golden data file");
    assert!(image.len() as u64 <= DEVICE_BYTES);
    image.resize(DEVICE_BYTES as usize, 0);
    std::fs::write(&data, image).unwrap();
    if with_checkpoint {
        std::fs::copy(dir.join("store.data.ckpt"), ckpt(&data)).unwrap();
    }
    (tmp, data)
}

fn user_refs() -> Vec<FeatureRef> {
    user_values(0, 0)
        .iter()
        .map(|(n, _)| FeatureRef::new("users", *n))
        .collect()
}

/// Every value, tombstone, expiry and schema of the image, read through the store.
fn check_contents(store: &Store) {
    for i in 0..USERS {
        let got = store.get(&user_key(i), &user_refs()).unwrap();
        match user_expected(i) {
            None => assert!(
                got.iter().all(|v| v.status == Status::NotFound),
                "user {i} must stay absent: {got:?}"
            ),
            Some((round, event_ms)) => {
                for ((name, want), v) in user_values(i, round).iter().zip(&got) {
                    assert_eq!(v.status, Status::Present, "user {i} {name}");
                    assert_eq!(&v.value, want, "user {i} {name}");
                    assert_eq!(v.event_time_ms, event_ms, "user {i} {name}");
                }
            }
        }
    }
    let events = store.describe_group("events").unwrap();
    for n in EVENTS {
        let refs = [
            FeatureRef::new("events", "payload"),
            FeatureRef::new("events", "n"),
        ];
        let got = store.get(&EntityKey::I64(n), &refs).unwrap();
        if n == DELETED_EVENT {
            assert!(got.iter().all(|v| v.status == Status::NotFound), "{got:?}");
            continue;
        }
        let want: Vec<Value> = event_values(n).into_iter().map(|(_, v)| v).collect();
        let vals: Vec<Value> = got.iter().map(|v| v.value.clone()).collect();
        assert_eq!(vals, want, "event {n}");
        let row = store
            .engine()
            .get(events.id, &n.to_le_bytes())
            .unwrap()
            .expect("event row");
        assert!(Row::is_compressed(&row.value), "event {n}: zstd row");
    }
    let users = store.engine();
    let long = users.get(1, b"user-08").unwrap().expect("long-TTL row");
    assert!(long.expiry_s > long.last_update_s + TEN_YEARS_S - 10);
    let first = users.get(1, b"user-00").unwrap().unwrap();
    assert_eq!(first.expiry_s, 0);
    let twice = users.get(1, b"user-03").unwrap().unwrap();
    assert_eq!(
        twice.generation,
        first.generation.wrapping_add(1),
        "user-03 written twice"
    );
    check_schemas(store);
}

fn check_schemas(store: &Store) {
    let users = store.describe_group("users").unwrap();
    assert_eq!((users.id, users.version), (1, 3));
    assert_eq!(users.description, "golden users");
    assert_eq!(users.owner, "storage");
    assert_eq!(users.tags, ["golden", "v1"]);
    let names: Vec<(&str, FeatureType, bool)> = users
        .features
        .iter()
        .map(|f| (f.name.as_str(), f.ty, f.deprecated))
        .collect();
    let spec = users_spec();
    let mut want: Vec<(&str, FeatureType, bool)> = spec
        .features
        .iter()
        .map(|f| (f.name.as_str(), f.ty, f.name == "ctr"))
        .collect();
    want.push(("late", FeatureType::I64, false));
    assert_eq!(names, want);
    let events = store.describe_group("events").unwrap();
    assert_eq!((events.id, events.version), (2, 1));
    assert_eq!(events.compression, Compression::Zstd { level: 3 });
    assert_eq!(events.key_type, KeyType::I64);
    assert!(
        store.describe_group("gone").is_err(),
        "dropped group is gone"
    );
    let listed: Vec<String> = store
        .list_groups(None)
        .iter()
        .map(|g| g.name.clone())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    // The stored registry records decode and re-encode to exactly their bytes.
    let engine = store.engine();
    let registry = engine.get(0, b"registry").unwrap().expect("registry").value;
    let index = RegistryIndex::decode(&registry).unwrap();
    assert_eq!((index.next_group_id, &index.live[..]), (4, &[1, 2][..]));
    assert!(index.dropping.is_empty());
    assert_eq!(index.encode(), registry);
    for id in [1u32, 2] {
        let bytes = engine
            .get(0, format!("group/{id}").as_bytes())
            .unwrap()
            .unwrap()
            .value;
        assert_eq!(
            GroupSchema::decode(&bytes).unwrap().encode(),
            bytes,
            "group/{id}"
        );
    }
    assert_eq!(
        engine.get(0, b"group/3").unwrap(),
        None,
        "dropped schema deleted"
    );
    assert_eq!(
        engine.get(3, &[9]).unwrap(),
        None,
        "dropped group's row hidden"
    );
}

#[test]
fn every_golden_image_opens_from_its_checkpoint_and_reads_back_exactly() {
    for version in GOLDEN_VERSIONS {
        image_opens_from_its_checkpoint_and_reads_back_exactly(version);
    }
}

fn image_opens_from_its_checkpoint_and_reads_back_exactly(version: u32) {
    let (_tmp, data) = golden_copy(version, true);
    let store = Store::open(config(&data)).unwrap();
    let report = store.engine().recovery_report().clone();
    assert_eq!(report.mode, "checkpoint", "{report:?}");
    check_contents(&store);
    // The LSNs the checkpoint hands on must stay above every LSN in the image: a write after
    // the open must win over the image's frames in a later full scan.
    let newer = T0_MS + 5000;
    let count = [("count", Value::I64(42))];
    store
        .put("users", &user_key(0), newer, &count, &PutOptions::default())
        .unwrap();
    store.close().unwrap();
    std::fs::remove_file(ckpt(&data)).unwrap();
    let store = Store::open(config(&data)).unwrap();
    assert_eq!(store.engine().recovery_report().mode, "scan");
    let got = store
        .get(&user_key(0), &[FeatureRef::new("users", "count")])
        .unwrap();
    assert_eq!((&got[0].value, got[0].event_time_ms), (&count[0].1, newer));
    store.close().unwrap();
}

#[test]
fn every_golden_image_opens_by_full_scan_and_reads_back_exactly() {
    for version in GOLDEN_VERSIONS {
        image_opens_by_full_scan_and_reads_back_exactly(version);
    }
}

fn image_opens_by_full_scan_and_reads_back_exactly(version: u32) {
    let (_tmp, data) = golden_copy(version, false);
    let store = Store::open(config(&data)).unwrap();
    let report = store.engine().recovery_report().clone();
    assert_eq!(report.mode, "scan", "{report:?}");
    assert_eq!(
        (report.corrupt_records, report.torn_tails),
        (0, 0),
        "{report:?}"
    );
    assert!(report.tombstones_seen >= 3, "{report:?}");
    check_contents(&store);
    store.close().unwrap();
}

/// Walks the image's bytes: superblock, block headers and frames decode, and the superblock
/// and block headers re-encode to exactly the bytes on disk (but for the format version an
/// older image's carry, and the checksum over it).
#[test]
fn every_golden_image_decodes_frame_by_frame() {
    for version in GOLDEN_VERSIONS {
        image_bytes_decode_frame_by_frame(version);
    }
}

/// `bytes` as the current encoder writes them: the format version field at 8..12 set to
/// `FORMAT_VERSION`, and the checksum of `0..sum_at` at `sum_at` recomputed.
fn as_current_version(bytes: &[u8], sum_at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&b[..sum_at]);
    b[sum_at..sum_at + 8].copy_from_slice(&sum.to_le_bytes());
    b
}

fn image_bytes_decode_frame_by_frame(version: u32) {
    let image = std::fs::read(golden_dir(version).join("store.data")).unwrap();
    let sb = Superblock::decode(&image).unwrap();
    assert_eq!(
        (sb.write_block_bytes, sb.device_bytes),
        (BLOCK_BYTES, DEVICE_BYTES)
    );
    assert_eq!(
        quiver_wal::format::superblock_version(&image),
        version,
        "v{version}"
    );
    let mut again = vec![0u8; SUPERBLOCK_BYTES];
    sb.encode(&mut again);
    assert_eq!(
        again,
        as_current_version(&image[..SUPERBLOCK_BYTES], 48),
        "v{version}"
    );
    let (mut blocks, mut frames, mut tombstones) = (0, 0, 0);
    for (b, bytes) in image.chunks(BLOCK_BYTES as usize).enumerate().skip(1) {
        let Some(h) = BlockHeader::decode(bytes, b as u32, sb.store_id as u64) else {
            continue;
        };
        blocks += 1;
        let mut again = vec![0u8; BLOCK_HEADER_BYTES];
        h.encode(&mut again);
        assert_eq!(
            again[..],
            as_current_version(&bytes[..BLOCK_HEADER_BYTES], 56),
            "v{version} block {b}"
        );
        let mut at = BLOCK_HEADER_BYTES;
        while let Some(r) = RecordHeader::decode(&bytes[at..]) {
            let v = decode_record(&bytes[at..], b as u32, at as u32, h.seq).unwrap();
            // Version 2 frames name their key in the header (the key tag).
            assert_eq!(
                v.header.key_tag.is_some(),
                version >= 2,
                "v{version} block {b}"
            );
            frames += 1;
            tombstones += v.header.is_tombstone() as usize;
            at += r.padded_len();
        }
        assert!(
            bytes[at..].iter().all(|&x| x == 0),
            "block {b} ends in zeros"
        );
    }
    assert!(blocks >= 2, "the image spans {blocks} blocks");
    // 3 groups + 2 alters + registry updates, 24 + 1 rows, 5 events, 3 deletes.
    assert!(frames >= 35, "{frames} frames");
    assert!(tombstones >= 3, "{tombstones} tombstones");
}

/// Opening the image and closing it again rewrites the checkpoint: the encoder must produce
/// exactly the checked-in bytes.
#[test]
fn checkpoint_encoder_is_unchanged() {
    let (_tmp, data) = v1_copy(true);
    Engine::open(config(&data)).unwrap().close().unwrap();
    let want = std::fs::read(golden_dir(1).join("store.data.ckpt")).unwrap();
    let got = std::fs::read(ckpt(&data)).unwrap();
    let first_difference = got.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(
        (got.len(), first_difference),
        (want.len(), None),
        "rewritten checkpoint differs from the golden one"
    );
}

#[test]
fn encoders_produce_the_golden_bytes() {
    let want = std::fs::read_to_string(golden_dir(FORMAT_VERSION).join("encodings.txt")).unwrap();
    let mut want_lines = want.lines();
    for (name, bytes) in encodings() {
        let line = want_lines
            .next()
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(format!("{name} {}", hex(&bytes)), line, "{name}");
    }
    assert_eq!(
        want_lines.next(),
        None,
        "encodings.txt has more lines than encoders"
    );
}
