//! Devices whose write blocks a record location cannot all name are refused at open, with an
//! error naming the limit, instead of being formatted and then losing data past the limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quiver_engine::{Config, Engine, Error};
use quiver_wal::format::Superblock;
use quiver_wal::{Device, ReadOp, WriteOp};

/// 2^24 blocks: what the 24-bit block field of a location names.
const MAX_BLOCKS: u64 = 1 << 24;
const BLOCK: u64 = 128 << 10;

/// A device that reports `capacity` bytes without holding them: reads return zeros, except
/// block 0's first sector when a superblock is given; writes are counted and dropped.
struct Hollow {
    capacity: u64,
    first_sector: Option<Vec<u8>>,
    writes: AtomicU64,
}

impl Device for Hollow {
    fn capacity(&self) -> u64 {
        self.capacity
    }
    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Vec<quiver_wal::Result<()>> {
        for op in ops.iter_mut() {
            op.buf.fill(0);
            if let (0, Some(first)) = (op.offset, &self.first_sector) {
                op.buf[..first.len()].copy_from_slice(first);
            }
        }
        ops.iter().map(|_| Ok(())).collect()
    }
    fn write_many(&self, ops: &[WriteOp<'_>]) -> quiver_wal::Result<()> {
        self.writes.fetch_add(ops.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn sync(&self) -> quiver_wal::Result<()> {
        Ok(())
    }
    fn backend(&self) -> &'static str {
        "hollow"
    }
}

fn config() -> Config {
    Config {
        write_block_bytes: BLOCK as u32,
        background: false,
        ..Config::memory(0)
    }
}

fn expect_too_large(result: quiver_engine::Result<Engine>, bytes: u64) {
    match result {
        Err(Error::DeviceTooLarge {
            bytes: b,
            blocks,
            block_bytes,
            max_blocks,
            max_bytes,
        }) => {
            assert_eq!(b, bytes);
            assert_eq!(blocks, bytes / BLOCK);
            assert_eq!((block_bytes, max_blocks), (BLOCK, MAX_BLOCKS));
            assert_eq!(max_bytes, MAX_BLOCKS * BLOCK);
        }
        Err(other) => panic!("expected DeviceTooLarge, got: {other}"),
        Ok(_) => panic!("a device of {bytes} bytes was opened"),
    }
}

/// One block more than a location can name, on a blank device: refused before anything is
/// written (formatting would have made block 2^24 a place where writes read back as corrupt).
#[test]
fn a_blank_device_past_the_block_range_is_not_formatted() {
    let bytes = (MAX_BLOCKS + 1) * BLOCK;
    let dev = Arc::new(Hollow {
        capacity: bytes,
        first_sector: None,
        writes: AtomicU64::new(0),
    });
    let err = Engine::open_on_device(config(), Arc::clone(&dev) as Arc<dyn Device>);
    let msg = err
        .as_ref()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("16777216 blocks") && msg.contains("larger write blocks"),
        "the error names the limit and the way out: {msg}"
    );
    expect_too_large(err, bytes);
    assert_eq!(dev.writes.load(Ordering::Relaxed), 0, "nothing was written");
}

/// A superblock that already covers more blocks than a location names (formatted by a build
/// without this check) is refused too.
#[test]
fn a_formatted_device_past_the_block_range_is_refused() {
    let bytes = (MAX_BLOCKS + 8) * BLOCK;
    let mut first = vec![0u8; 4096];
    Superblock {
        write_block_bytes: BLOCK as u32,
        device_bytes: bytes,
        store_id: 77,
        created_ms: 1,
    }
    .encode(&mut first);
    let dev = Arc::new(Hollow {
        capacity: bytes,
        first_sector: Some(first),
        writes: AtomicU64::new(0),
    });
    expect_too_large(
        Engine::open_on_device(config(), Arc::clone(&dev) as Arc<dyn Device>),
        bytes,
    );
    assert_eq!(dev.writes.load(Ordering::Relaxed), 0, "nothing was written");
}

/// The same through a sparse file that claims 2 TiB and one block (nothing is allocated).
#[test]
fn a_sparse_file_past_the_block_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.db");
    let bytes = (MAX_BLOCKS + 1) * BLOCK;
    let file = std::fs::File::create(&path).unwrap();
    if let Err(e) = file.set_len(bytes) {
        eprintln!("this filesystem refuses a {bytes}-byte sparse file ({e}); skipped");
        return;
    }
    drop(file);
    let cfg = Config {
        write_block_bytes: BLOCK as u32,
        background: false,
        ..Config::file(&path, 0)
    };
    expect_too_large(Engine::open(cfg), bytes);
    let mut head = vec![0u8; 4096];
    use std::io::Read;
    std::fs::File::open(&path)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert!(head.iter().all(|&b| b == 0), "the file was not formatted");
}

/// The limit is 2^24 blocks of whatever size the device uses: 2 TiB of 128 KiB blocks, 16 TiB
/// of 1 MiB blocks, 128 TiB of 8 MiB blocks.
#[test]
fn the_limit_scales_with_the_block_size() {
    for block in [128u64 << 10, 1 << 20, 8 << 20] {
        let bytes = (MAX_BLOCKS + 1) * block;
        let dev = Arc::new(Hollow {
            capacity: bytes,
            first_sector: None,
            writes: AtomicU64::new(0),
        });
        let cfg = Config {
            write_block_bytes: block as u32,
            background: false,
            ..Config::memory(0)
        };
        match Engine::open_on_device(cfg, dev) {
            Err(Error::DeviceTooLarge { max_bytes, .. }) => {
                assert_eq!(max_bytes, MAX_BLOCKS * block)
            }
            Err(other) => panic!("expected DeviceTooLarge, got: {other}"),
            Ok(_) => panic!("opened"),
        }
    }
}
