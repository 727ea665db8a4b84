//! The on-disk layout: the superblock, write-block headers and record frames.
//!
//! ## Format
//! All integers little-endian. Checksums are xxh3-64.
//!
//! Superblock (first 4 KiB of the device; the rest of block 0 is unused):
//! ```text
//!  0  8  magic "QVRSUPER"
//!  8  4  format version (2; version 1 stores are read and upgraded on open)
//! 12  4  write_block_bytes
//! 16  8  device bytes covered (a multiple of write_block_bytes)
//! 24 16  store id (random at format time)
//! 40  8  created, unix ms
//! 48  8  checksum of bytes 0..48
//! ```
//! Write-block header (first 64 bytes of every data block; block 0 holds the superblock):
//! ```text
//!  0  8  magic "QVRBLOCK"
//!  8  4  format version (2; 1 in blocks written before the upgrade)
//! 12  4  block index
//! 16  8  block sequence number (strictly increasing per opened block)
//! 24  8  store id, low 64 bits
//! 32  1  kind: 0 = foreground writes, 1 = defragmentation copies
//! 33 15  zero
//! 48  8  created, unix ms
//! 56  8  checksum of bytes 0..56
//! ```
//! Record frame (at 16-byte aligned offsets from 64 on; padded with zeros to 16 bytes):
//! ```text
//!  0  4  magic "QREC" (0x43455251)
//!  4  4  total length = 64 + key length + value length (without padding)
//!  8  8  block sequence number of the enclosing block (stale frames of a reused block fail it)
//! 16  8  LSN: store-wide write sequence; a defragmentation copy keeps its original's LSN
//! 24  4  group id
//! 28  2  key length (1..=1024)
//! 30  1  flags: bit 0 tombstone, bit 1 defragmentation copy, bit 2 key tag
//! 31  1  key tag bits 48..56 (flag bit 2), else zero
//! 32  2  generation
//! 34  2  key tag bits 32..48 (flag bit 2), else zero
//! 36  4  expiry, unix seconds (0 = never)
//! 40  4  last update, unix seconds
//! 44  4  key tag bits 0..32 (flag bit 2), else value length
//!        (with flag bit 2 the value length is total length - 64 - key length)
//! 48  8  checksum of key ++ value
//! 56  8  checksum of bytes 0..56
//! 64  .  key, then value, then zero padding to a multiple of 16
//! ```

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};

/// The format this build writes. Version 2 added the key tag to record frames.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this build reads (and upgrades on open).
pub const MIN_FORMAT_VERSION: u32 = 1;
pub const SUPER_MAGIC: [u8; 8] = *b"QVRSUPER";
pub const BLOCK_MAGIC: [u8; 8] = *b"QVRBLOCK";
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"QREC");
pub const SUPERBLOCK_BYTES: usize = 56;
pub const BLOCK_HEADER_BYTES: usize = 64;
pub const RECORD_HEADER_BYTES: usize = 64;
/// Records are placed at multiples of this; locations count in these units.
pub const UNIT_BYTES: usize = 16;
pub const MAX_KEY_BYTES: usize = 1024;
/// The largest record frame the index can address (18 bits of 16-byte units).
pub const MAX_RECORD_FRAME_BYTES: usize = ((1 << 18) - 1) * UNIT_BYTES;
pub const MIN_WRITE_BLOCK_BYTES: u32 = 128 << 10;
pub const MAX_WRITE_BLOCK_BYTES: u32 = 8 << 20;

pub const FLAG_TOMBSTONE: u8 = 1;
pub const FLAG_RELOCATED: u8 = 2;
/// The header holds the frame's key tag (format version 2); its value length is derived.
pub const FLAG_KEY_TAG: u8 = 4;
/// Bits of the key tag: the low bits of the index digest of (group, key), see [`key_tag`].
pub const KEY_TAG_BITS: u32 = 56;
pub const KEY_TAG_MASK: u64 = (1 << KEY_TAG_BITS) - 1;

/// The key tag of (group, key): the low 56 bits of xxh3-128 over the group id (u32
/// little-endian) followed by the key, i.e. of the index digest. It lets recovery tell which
/// key a frame with an intact header but a damaged body belonged to.
pub fn key_tag(group: u32, key: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(&group.to_le_bytes());
    h.update(key);
    h.digest128() as u64 & KEY_TAG_MASK
}

/// The key tag of an index digest (the same bits [`key_tag`] keeps).
pub fn key_tag_of_digest(digest: u128) -> u64 {
    digest as u64 & KEY_TAG_MASK
}

/// The format version a superblock's bytes claim (0 when too short to hold one).
pub fn superblock_version(b: &[u8]) -> u32 {
    if b.len() < 12 {
        return 0;
    }
    u32_at(b, 8)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn u128_at(b: &[u8], at: usize) -> u128 {
    u128::from_le_bytes(b[at..at + 16].try_into().expect("16 bytes"))
}

/// The device's identity, written once when the device is formatted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    pub write_block_bytes: u32,
    pub device_bytes: u64,
    pub store_id: u128,
    pub created_ms: u64,
}

impl Superblock {
    pub fn encode(&self, out: &mut [u8]) {
        out[..SUPERBLOCK_BYTES].fill(0);
        out[0..8].copy_from_slice(&SUPER_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.write_block_bytes.to_le_bytes());
        out[16..24].copy_from_slice(&self.device_bytes.to_le_bytes());
        out[24..40].copy_from_slice(&self.store_id.to_le_bytes());
        out[40..48].copy_from_slice(&self.created_ms.to_le_bytes());
        let sum = xxh3_64(&out[0..48]);
        out[48..56].copy_from_slice(&sum.to_le_bytes());
    }

    /// Decodes and checks a superblock. A device that never held one (all zeros or foreign
    /// bytes) is [`Error::NotOurs`].
    pub fn decode(b: &[u8]) -> Result<Superblock> {
        if b.len() < SUPERBLOCK_BYTES || b[0..8] != SUPER_MAGIC {
            return Err(Error::NotOurs("no Quiver superblock (wrong magic)".into()));
        }
        let version = u32_at(b, 8);
        if version > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let sum = u64_at(b, 48);
        if xxh3_64(&b[0..48]) != sum {
            return Err(Error::Corrupt {
                what: "superblock",
                block: 0,
                offset: 0,
                detail: "checksum mismatch".into(),
            });
        }
        Ok(Superblock {
            write_block_bytes: u32_at(b, 12),
            device_bytes: u64_at(b, 16),
            store_id: u128_at(b, 24),
            created_ms: u64_at(b, 40),
        })
    }
}

/// What a write block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    Foreground = 0,
    Defrag = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub block: u32,
    pub seq: u64,
    pub store_id_lo: u64,
    pub kind: BlockKind,
    pub created_ms: u64,
}

impl BlockHeader {
    pub fn encode(&self, out: &mut [u8]) {
        out[..BLOCK_HEADER_BYTES].fill(0);
        out[0..8].copy_from_slice(&BLOCK_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.block.to_le_bytes());
        out[16..24].copy_from_slice(&self.seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.store_id_lo.to_le_bytes());
        out[32] = self.kind as u8;
        out[48..56].copy_from_slice(&self.created_ms.to_le_bytes());
        let sum = xxh3_64(&out[0..56]);
        out[56..64].copy_from_slice(&sum.to_le_bytes());
    }

    /// Decodes a block header; `None` for a block that holds no valid header of this store
    /// (never written, freed, or foreign), which recovery treats as free.
    pub fn decode(b: &[u8], block: u32, store_id_lo: u64) -> Option<BlockHeader> {
        let version = u32_at(b, 8);
        if b.len() < BLOCK_HEADER_BYTES
            || b[0..8] != BLOCK_MAGIC
            || !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version)
        {
            return None;
        }
        if xxh3_64(&b[0..56]) != u64_at(b, 56) {
            return None;
        }
        let kind = match b[32] {
            0 => BlockKind::Foreground,
            1 => BlockKind::Defrag,
            _ => return None,
        };
        let h = BlockHeader {
            block: u32_at(b, 12),
            seq: u64_at(b, 16),
            store_id_lo: u64_at(b, 24),
            kind,
            created_ms: u64_at(b, 48),
        };
        (h.block == block && h.store_id_lo == store_id_lo).then_some(h)
    }
}

/// The fixed part of a record frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub total_len: u32,
    pub block_seq: u64,
    pub lsn: u64,
    pub group: u32,
    pub key_len: u16,
    pub flags: u8,
    pub generation: u16,
    pub expiry_s: u32,
    pub last_update_s: u32,
    pub value_len: u32,
    /// The key tag (format 2 frames, [`FLAG_KEY_TAG`]); `None` in version 1 frames.
    pub key_tag: Option<u64>,
    pub body_checksum: u64,
}

const _: () = assert!(RECORD_HEADER_BYTES == 64);
const _: () = assert!(BLOCK_HEADER_BYTES.is_multiple_of(UNIT_BYTES));

impl RecordHeader {
    pub fn is_tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }

    pub fn is_relocated(&self) -> bool {
        self.flags & FLAG_RELOCATED != 0
    }

    /// Bytes the frame occupies, padding included.
    pub fn padded_len(&self) -> usize {
        padded_frame_len(self.total_len as usize)
    }

    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&self.total_len.to_le_bytes());
        out[8..16].copy_from_slice(&self.block_seq.to_le_bytes());
        out[16..24].copy_from_slice(&self.lsn.to_le_bytes());
        out[24..28].copy_from_slice(&self.group.to_le_bytes());
        out[28..30].copy_from_slice(&self.key_len.to_le_bytes());
        out[32..34].copy_from_slice(&self.generation.to_le_bytes());
        out[36..40].copy_from_slice(&self.expiry_s.to_le_bytes());
        out[40..44].copy_from_slice(&self.last_update_s.to_le_bytes());
        match self.key_tag {
            Some(tag) => {
                out[30] = self.flags | FLAG_KEY_TAG;
                out[31] = (tag >> 48) as u8;
                out[34..36].copy_from_slice(&((tag >> 32) as u16).to_le_bytes());
                out[44..48].copy_from_slice(&(tag as u32).to_le_bytes());
            }
            None => {
                out[30] = self.flags & !FLAG_KEY_TAG;
                out[31] = 0;
                out[34..36].fill(0);
                out[44..48].copy_from_slice(&self.value_len.to_le_bytes());
            }
        }
        out[48..56].copy_from_slice(&self.body_checksum.to_le_bytes());
        let sum = xxh3_64(&out[0..56]);
        out[56..64].copy_from_slice(&sum.to_le_bytes());
    }

    /// Decodes a header whose own checksum holds; `None` where no valid frame starts here
    /// (the end of a block's data, a torn write, or a damaged header).
    pub fn decode(b: &[u8]) -> Option<RecordHeader> {
        if b.len() < RECORD_HEADER_BYTES || u32_at(b, 0) != RECORD_MAGIC {
            return None;
        }
        if xxh3_64(&b[0..56]) != u64_at(b, 56) {
            return None;
        }
        let (total_len, key_len, flags) = (u32_at(b, 4), u16_at(b, 28), b[30]);
        let (key_tag, value_len) = if flags & FLAG_KEY_TAG != 0 {
            let tag =
                u64::from(u32_at(b, 44)) | u64::from(u16_at(b, 34)) << 32 | u64::from(b[31]) << 48;
            let body = (total_len as usize).checked_sub(RECORD_HEADER_BYTES + key_len as usize)?;
            (Some(tag), body as u32)
        } else {
            (None, u32_at(b, 44))
        };
        let h = RecordHeader {
            total_len,
            block_seq: u64_at(b, 8),
            lsn: u64_at(b, 16),
            group: u32_at(b, 24),
            key_len,
            flags: flags & !FLAG_KEY_TAG,
            generation: u16_at(b, 32),
            expiry_s: u32_at(b, 36),
            last_update_s: u32_at(b, 40),
            value_len,
            key_tag,
            body_checksum: u64_at(b, 48),
        };
        let consistent = h.key_len as usize >= 1
            && h.key_len as usize <= MAX_KEY_BYTES
            && h.total_len as usize
                == RECORD_HEADER_BYTES + h.key_len as usize + h.value_len as usize
            && h.total_len as usize <= MAX_RECORD_FRAME_BYTES;
        consistent.then_some(h)
    }
}

pub fn padded_frame_len(total_len: usize) -> usize {
    total_len.div_ceil(UNIT_BYTES) * UNIT_BYTES
}

/// What to write: the caller's view of one record.
#[derive(Clone, Copy, Debug)]
pub struct RecordInput<'a> {
    pub lsn: u64,
    pub group: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u8,
    pub generation: u16,
    pub expiry_s: u32,
    pub last_update_s: u32,
}

impl RecordInput<'_> {
    pub fn frame_len(&self) -> usize {
        RECORD_HEADER_BYTES + self.key.len() + self.value.len()
    }

    /// Encodes the frame into `out` (at least `padded_frame_len(frame_len())` bytes).
    pub fn encode(&self, block_seq: u64, out: &mut [u8]) {
        let total = self.frame_len();
        let mut sum = xxhash_rust::xxh3::Xxh3Default::new();
        sum.update(self.key);
        sum.update(self.value);
        let header = RecordHeader {
            total_len: total as u32,
            block_seq,
            lsn: self.lsn,
            group: self.group,
            key_len: self.key.len() as u16,
            flags: self.flags,
            generation: self.generation,
            expiry_s: self.expiry_s,
            last_update_s: self.last_update_s,
            value_len: self.value.len() as u32,
            key_tag: Some(key_tag(self.group, self.key)),
            body_checksum: sum.digest(),
        };
        header.encode(out);
        let k = RECORD_HEADER_BYTES;
        out[k..k + self.key.len()].copy_from_slice(self.key);
        let v = k + self.key.len();
        out[v..v + self.value.len()].copy_from_slice(self.value);
        out[total..padded_frame_len(total)].fill(0);
    }
}

/// A decoded, verified record frame borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub header: RecordHeader,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Decodes and verifies the frame at the start of `b`, which was read from `block` at
/// `offset`: header checksum, lengths, enclosing block sequence, body checksum.
pub fn decode_record(b: &[u8], block: u32, offset: u32, block_seq: u64) -> Result<RecordView<'_>> {
    let corrupt = |detail: String| Error::Corrupt {
        what: "record",
        block,
        offset,
        detail,
    };
    let header = RecordHeader::decode(b)
        .ok_or_else(|| corrupt("header checksum or fields invalid".into()))?;
    verify_record(b, header, block, offset, block_seq)
}

/// The rest of [`decode_record`] for a header already decoded from the start of `b`: checks
/// the enclosing block sequence, the length and the body checksum.
pub fn verify_record(
    b: &[u8],
    header: RecordHeader,
    block: u32,
    offset: u32,
    block_seq: u64,
) -> Result<RecordView<'_>> {
    let corrupt = |detail: String| Error::Corrupt {
        what: "record",
        block,
        offset,
        detail,
    };
    if header.block_seq != block_seq {
        return Err(corrupt(format!(
            "frame belongs to block sequence {}, block is at {}",
            header.block_seq, block_seq
        )));
    }
    let total = header.total_len as usize;
    if b.len() < total {
        return Err(corrupt(format!(
            "frame of {total} bytes runs past the {} bytes read",
            b.len()
        )));
    }
    let key = &b[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + header.key_len as usize];
    let value = &b[RECORD_HEADER_BYTES + header.key_len as usize..total];
    let sum = xxh3_64(&b[RECORD_HEADER_BYTES..total]);
    if sum != header.body_checksum {
        return Err(corrupt(format!(
            "body checksum mismatch: got {sum:#018x}, expected {:#018x}",
            header.body_checksum
        )));
    }
    Ok(RecordView { header, key, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(key: &'a [u8], value: &'a [u8]) -> RecordInput<'a> {
        RecordInput {
            lsn: 42,
            group: 7,
            key,
            value,
            flags: 0,
            generation: 3,
            expiry_s: 0,
            last_update_s: 1_700_000_000,
        }
    }

    #[test]
    fn record_round_trip() {
        let r = input(b"user:1", b"hello world");
        let mut buf = vec![0u8; padded_frame_len(r.frame_len())];
        r.encode(9, &mut buf);
        let v = decode_record(&buf, 1, 64, 9).unwrap();
        assert_eq!(v.key, b"user:1");
        assert_eq!(v.value, b"hello world");
        assert_eq!(v.header.lsn, 42);
        assert_eq!(v.header.generation, 3);
    }

    #[test]
    fn record_corruption_detected() {
        let r = input(b"k", b"some value bytes");
        let mut buf = vec![0u8; padded_frame_len(r.frame_len())];
        r.encode(9, &mut buf);
        for i in 0..r.frame_len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_record(&bad, 1, 64, 9).is_err(),
                "flip at byte {i} undetected"
            );
        }
        assert!(
            decode_record(&buf, 1, 64, 10).is_err(),
            "stale block sequence accepted"
        );
    }

    /// Frames written by format version 1 (no key tag, value length in bytes 44..48) still
    /// decode exactly; version 2 frames carry the key tag and derive the value length.
    #[test]
    fn version_1_frames_still_decode_and_version_2_frames_carry_the_tag() {
        let r = input(b"user:1", b"hello world");
        let mut v2 = vec![0u8; padded_frame_len(r.frame_len())];
        r.encode(9, &mut v2);
        let h2 = decode_record(&v2, 1, 64, 9).unwrap().header;
        assert_eq!(h2.key_tag, Some(key_tag(7, b"user:1")));
        assert_eq!(h2.value_len, 11);
        assert_eq!(
            h2.flags & FLAG_KEY_TAG,
            0,
            "the tag flag is the format's, not the caller's"
        );
        assert_ne!(v2[30] & FLAG_KEY_TAG, 0);
        // The same record as version 1 wrote it.
        let mut v1 = v2.clone();
        RecordHeader {
            key_tag: None,
            ..h2
        }
        .encode(&mut v1);
        assert_eq!(&v1[44..48], &11u32.to_le_bytes());
        assert_eq!((v1[31], &v1[34..36]), (0, &[0u8, 0][..]));
        let view = decode_record(&v1, 1, 64, 9).unwrap();
        assert_eq!(
            (view.key, view.value),
            (&b"user:1"[..], &b"hello world"[..])
        );
        assert_eq!(view.header.key_tag, None);
        // A tag whose derived value length would be negative is no frame.
        let mut short = v2.clone();
        short[4..8].copy_from_slice(&60u32.to_le_bytes());
        let sum = xxh3_64(&short[0..56]);
        short[56..64].copy_from_slice(&sum.to_le_bytes());
        assert!(RecordHeader::decode(&short).is_none());
    }

    #[test]
    fn key_tag_is_the_low_bits_of_xxh3_128_of_group_and_key() {
        for key in [&b"k"[..], &[7u8; 300][..], &[1u8; 1024][..]] {
            let mut buf = 42u32.to_le_bytes().to_vec();
            buf.extend_from_slice(key);
            let d = xxhash_rust::xxh3::xxh3_128(&buf);
            assert_eq!(key_tag(42, key), key_tag_of_digest(d));
            assert_eq!(key_tag(42, key), d as u64 & ((1 << 56) - 1));
        }
    }

    #[test]
    fn superblock_and_block_header() {
        let sb = Superblock {
            write_block_bytes: 1 << 20,
            device_bytes: 64 << 20,
            store_id: 0xdead_beef_u128 << 64 | 77,
            created_ms: 5,
        };
        let mut b = vec![0u8; 4096];
        sb.encode(&mut b);
        assert_eq!(Superblock::decode(&b).unwrap(), sb);
        b[20] ^= 1;
        assert!(matches!(Superblock::decode(&b), Err(Error::Corrupt { .. })));
        assert!(matches!(
            Superblock::decode(&[0u8; 64]),
            Err(Error::NotOurs(_))
        ));

        let h = BlockHeader {
            block: 3,
            seq: 99,
            store_id_lo: 77,
            kind: BlockKind::Defrag,
            created_ms: 1,
        };
        h.encode(&mut b);
        assert_eq!(BlockHeader::decode(&b, 3, 77), Some(h));
        // A block written by format version 1 still decodes; an unknown version does not.
        for (version, ok) in [(1u32, true), (2, true), (3, false), (0, false)] {
            let mut old = b.clone();
            old[8..12].copy_from_slice(&version.to_le_bytes());
            let sum = xxh3_64(&old[0..56]);
            old[56..64].copy_from_slice(&sum.to_le_bytes());
            assert_eq!(
                BlockHeader::decode(&old, 3, 77).is_some(),
                ok,
                "version {version}"
            );
        }
        assert_eq!(BlockHeader::decode(&b, 4, 77), None);
        assert_eq!(BlockHeader::decode(&b, 3, 78), None);
    }
}
