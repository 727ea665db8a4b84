//! The model test's damage step, on the device image: which frames hold which key, where to
//! damage bytes, and which keys the damaged bytes hit.
//!
//! Damage is aimed only where the engine promises that no older version of a key is served
//! as current (hazard 9 of `docs/RELIABILITY.md`): anywhere in a frame's body, and at most one
//! byte of any frame header or block header (restored from its checksum). Its residual risks
//! are left out on purpose: a header damaged in several bytes whose key cannot be found, the
//! engine's own records (`damaged-keys`, dropped groups), and frames whose bytes end in zeros
//! across a sector boundary (taken for a write cut by a power loss). A damaged byte never
//! becomes zero, so damage never makes a frame look like such a write either.

use std::collections::{HashMap, HashSet};

use quiver_wal::device::SplitMix64;
use quiver_wal::format::{BlockHeader, Superblock, BLOCK_HEADER_BYTES, RECORD_HEADER_BYTES};
use quiver_wal::scan::{BlockScanner, ScanItem};

/// Bytes a power loss tears at: a frame ending in zeros across such a boundary looks torn.
const SECTOR_BYTES: u64 = 512;

/// Where damage is aimed.
#[derive(Clone, Copy, Debug)]
pub enum Aim {
    /// Every frame of the key's newest version (its value or tombstone, and any
    /// defragmentation copy of the same LSN): a byte of each one's body.
    Newest { key: u8 },
    /// One byte of the header of each frame of the key's newest version.
    NewestHeader { key: u8 },
    /// As `Newest`, for the `nth` (modulo their number) of the keys the model holds deleted:
    /// their tombstones, where defragmentation kept them.
    NewestDeleted { nth: u8 },
    /// `bytes` bytes at random: in the body or the header of random frames of the model's
    /// group, or in a block header.
    Random { bytes: u8 },
}

/// One intact frame of the model's group in an image.
#[derive(Clone, Debug)]
pub struct FrameAt {
    pub abs: u64,
    pub total_len: u64,
    pub lsn: u64,
    pub key: u8,
    /// Its bytes end in zeros across a sector boundary: damage there is a documented residual
    /// risk (it looks like a write cut by a power loss), so it is never aimed at.
    pub looks_torn_if_damaged: bool,
}

/// The intact frames of `group` in `image`, and the block headers that are still intact
/// (a block header damaged before takes no second byte).
pub fn frames(image: &[u8], group: u32, key_of: impl Fn(&[u8]) -> u8) -> (Vec<FrameAt>, Vec<u64>) {
    let sb = Superblock::decode(image).expect("superblock");
    let bb = sb.write_block_bytes as usize;
    let mut out = Vec::new();
    let mut headers = Vec::new();
    for b in 1..(image.len() / bb) as u32 {
        let start = b as usize * bb;
        let block = &image[start..start + bb];
        let h = match BlockHeader::decode(block, b, sb.store_id as u64) {
            Some(h) => {
                headers.push(start as u64);
                h
            }
            None => match quiver_wal::damage::repair_block_header(block, b, sb.store_id as u64) {
                Some(r) => r.header,
                None => continue,
            },
        };
        for item in BlockScanner::new(block, b, h.seq) {
            let ScanItem::Record { offset, record } = item else {
                continue;
            };
            if record.header.group != group {
                continue;
            }
            let abs = (start + offset as usize) as u64;
            let total_len = record.header.total_len as u64;
            let bytes = &block[offset as usize..offset as usize + total_len as usize];
            let last = bytes
                .iter()
                .rposition(|&x| x != 0)
                .expect("a frame is not all zeros");
            let boundary = (abs + last as u64 + 1).next_multiple_of(SECTOR_BYTES);
            out.push(FrameAt {
                abs,
                total_len,
                lsn: record.header.lsn,
                key: key_of(record.key),
                looks_torn_if_damaged: boundary < abs + total_len,
            });
        }
    }
    (out, headers)
}

/// The byte offsets to damage in an image whose frames and intact block headers are these.
pub fn aim(frames: &[FrameAt], block_headers: &[u64], aim: Aim, rng: &mut SplitMix64) -> Vec<u64> {
    let body = |f: &FrameAt, rng: &mut SplitMix64| {
        f.abs + RECORD_HEADER_BYTES as u64 + rng.below(f.total_len - RECORD_HEADER_BYTES as u64)
    };
    let header = |f: &FrameAt, rng: &mut SplitMix64| f.abs + rng.below(RECORD_HEADER_BYTES as u64);
    let targets: Vec<&FrameAt> = frames.iter().filter(|f| !f.looks_torn_if_damaged).collect();
    match aim {
        Aim::Newest { key } => newest_of(frames, key)
            .into_iter()
            .filter(|f| !f.looks_torn_if_damaged)
            .map(|f| body(f, rng))
            .collect(),
        Aim::NewestDeleted { .. } => unreachable!("the harness names the key"),
        Aim::NewestHeader { key } => newest_of(frames, key)
            .into_iter()
            .filter(|f| !f.looks_torn_if_damaged)
            .map(|f| header(f, rng))
            .collect(),
        Aim::Random { bytes } => {
            let mut out = Vec::new();
            // Headers (of frames and of blocks) that already took their one byte.
            let mut headers_hit = HashSet::new();
            for _ in 0..bytes {
                if !block_headers.is_empty() && rng.below(8) == 0 {
                    let h = block_headers[rng.below(block_headers.len() as u64) as usize];
                    if headers_hit.insert(h) {
                        out.push(h + rng.below(BLOCK_HEADER_BYTES as u64));
                    }
                    continue;
                }
                if targets.is_empty() {
                    continue;
                }
                let f = targets[rng.below(targets.len() as u64) as usize];
                if rng.below(2) == 0 {
                    if headers_hit.insert(f.abs) {
                        out.push(header(f, rng));
                    }
                } else {
                    out.push(body(f, rng));
                }
            }
            out
        }
    }
}

/// Every frame of `key`'s newest version (the highest LSN; copies share it).
pub fn newest_of(frames: &[FrameAt], key: u8) -> Vec<&FrameAt> {
    let Some(lsn) = frames.iter().filter(|f| f.key == key).map(|f| f.lsn).max() else {
        return Vec::new();
    };
    frames
        .iter()
        .filter(|f| f.key == key && f.lsn == lsn)
        .collect()
}

/// Damages the bytes at `offsets`: each takes another value, never zero.
pub fn apply(image: &mut [u8], offsets: &[u64], rng: &mut SplitMix64) {
    for &at in offsets {
        let old = image[at as usize];
        let mut new = 1 + rng.below(255) as u8;
        if new == old {
            new = if old == 255 { 1 } else { old + 1 };
        }
        image[at as usize] = new;
    }
}

/// What the damage hit: per key, whether any of its frames was hit, and whether every frame
/// of its newest version was.
pub fn hits(frames: &[FrameAt], offsets: &[u64]) -> HashMap<u8, bool> {
    let hit = |f: &FrameAt| {
        offsets
            .iter()
            .any(|&o| o >= f.abs && o < f.abs + f.total_len)
    };
    let mut out: HashMap<u8, bool> = HashMap::new();
    for f in frames.iter().filter(|f| hit(f)) {
        out.insert(f.key, false);
    }
    for (k, newest_hit) in out.iter_mut() {
        *newest_hit = newest_of(frames, *k).into_iter().all(hit);
    }
    out
}
