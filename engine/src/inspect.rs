//! Offline inspection of a device image: every block and record verified, live fractions,
//! and where the damage is. The store must not be open while this runs.

use std::path::Path;
use std::sync::atomic::Ordering;

use quiver_wal::device::{open_path, FileOptions, IoBackend};
use quiver_wal::format::Superblock;
use quiver_wal::{AlignedBuf, IO_ALIGN};

use crate::engine::inspect_support::{scan_all, ScannedBlock};
use crate::engine::SYSTEM_GROUP;
use crate::error::Result;
use crate::feature::registry::REGISTRY_GROUP;
use crate::feature::EntityKey;

/// One damaged place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub block: u32,
    /// Byte offset from the block's start.
    pub offset: u32,
    pub what: String,
}

/// A key whose newest record is damaged: the store reads it as CORRUPT (never as an older
/// version) until it is rewritten or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedKeyReport {
    /// The engine group (a feature group's id).
    pub group: u32,
    /// The feature group's name, from the registry on the device; "registry" and "system" for
    /// the store's own records. `None` when the registry does not name it.
    pub group_name: Option<String>,
    /// The entity key as text (per the group's key type; bytes keys in hex) when its bytes are
    /// known: from the damaged record when its checksummed key tag confirms them, else from
    /// an intact older version of the key. `None` when neither is left: then only `tag` names
    /// the key.
    pub key: Option<String>,
    /// The key tag (low 56 bits of the digest of (group, key)) from the damaged record's header.
    pub tag: u64,
    /// The damaged record's LSN (where its header is beyond repair, a bound above the
    /// versions of the key it outranks).
    pub lsn: u64,
    pub block: u32,
    /// Byte offset of the damaged record in its block.
    pub offset: u32,
}

impl DamagedKeyReport {
    /// "group 'users' key 'k545' (block 4 offset 4160, LSN 77, tag 0x…)".
    pub fn describe(&self) -> String {
        let group = match &self.group_name {
            Some(name) => format!("group '{name}'"),
            None => format!("group {}", self.group),
        };
        let key = match &self.key {
            Some(k) => format!("key '{k}'"),
            None => "key unknown".to_string(),
        };
        format!(
            "{group} {key} (block {} offset {}, LSN {}, tag {:#016x})",
            self.block, self.offset, self.lsn, self.tag
        )
    }
}

/// One block in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockReport {
    pub block: u32,
    pub seq: u64,
    /// "foreground" or "defrag".
    pub kind: &'static str,
    pub used_bytes: u64,
    pub live_bytes: u64,
    pub records: u64,
}

/// What `inspect` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InspectReport {
    pub device_bytes: u64,
    pub write_block_bytes: u32,
    pub store_id: u128,
    pub blocks_total: u64,
    pub blocks: Vec<BlockReport>,
    pub records_seen: u64,
    pub records_live: u64,
    pub tombstones: u64,
    /// Frames whose checksums failed, damaged headers, and torn tails other than the last
    /// block each writer had open (a torn tail there is an unacknowledged write cut by a crash).
    pub damage: Vec<Damage>,
    /// Torn tails of the last-open blocks: expected after a crash, not damage.
    pub crash_tails: Vec<Damage>,
    /// The keys the damage hits (those whose newest record is damaged), by group then tag.
    /// Damage whose record header is gone too names no key and is only in `damage`.
    pub damaged_keys: Vec<DamagedKeyReport>,
}

impl InspectReport {
    /// Damage was found, or keys read CORRUPT (a key found damaged earlier stays so, through
    /// the durable damaged-key list, even when its damaged record is gone).
    pub fn is_damaged(&self) -> bool {
        !self.damage.is_empty() || !self.damaged_keys.is_empty()
    }

    /// Live fraction of every block in use, 0.0 to 1.0.
    pub fn live_fractions(&self) -> Vec<f64> {
        let bb = self.write_block_bytes as f64;
        self.blocks
            .iter()
            .map(|b| b.live_bytes as f64 / bb)
            .collect()
    }
}

/// Reads a device or data file directly and verifies every block and record.
pub fn inspect(path: &Path) -> Result<InspectReport> {
    let device = open_path(
        path,
        &FileOptions {
            create_bytes: None,
            backend: IoBackend::Psync,
            direct: true,
        },
    )?;
    let mut first = AlignedBuf::new(IO_ALIGN);
    device.read_at(&mut first, 0)?;
    let sb = Superblock::decode(&first)?;
    let scanned = scan_all(device.as_ref(), &sb)?;
    let mut report = InspectReport {
        device_bytes: sb.device_bytes,
        write_block_bytes: sb.write_block_bytes,
        store_id: sb.store_id,
        blocks_total: sb.device_bytes / sb.write_block_bytes as u64 - 1,
        records_seen: scanned.report.records_seen,
        records_live: scanned.live_records,
        tombstones: scanned.report.tombstones_seen,
        ..InspectReport::default()
    };
    let last_open = last_open_blocks(&scanned.blocks);
    for (block, offset, what) in scanned.report.damage {
        let d = Damage {
            block,
            offset,
            what,
        };
        if d.what.starts_with("torn tail") && last_open.contains(&block) {
            report.crash_tails.push(d);
        } else {
            report.damage.push(d);
        }
    }
    for k in &scanned.damaged_keys {
        let key_type = scanned.groups.get(&k.group).map(|g| g.1);
        let key = k.key.as_ref().map(|bytes| {
            key_type
                .and_then(|t| EntityKey::from_key_bytes(t, bytes).ok())
                .map_or_else(|| printable(bytes), |e| e.to_string())
        });
        let group_name = match k.group {
            REGISTRY_GROUP => Some("registry".to_string()),
            SYSTEM_GROUP => Some("system".to_string()),
            g => scanned.groups.get(&g).map(|g| g.0.clone()),
        };
        report.damaged_keys.push(DamagedKeyReport {
            group: k.group,
            group_name,
            key,
            tag: k.tag,
            lsn: k.lsn,
            block: k.block,
            offset: k.offset,
        });
    }
    for b in &scanned.blocks {
        let m = &scanned.blocks_table.meta[b.block as usize];
        report.blocks.push(BlockReport {
            block: b.block,
            seq: b.seq,
            kind: if b.kind == 1 { "defrag" } else { "foreground" },
            used_bytes: m.used_bytes.load(Ordering::Acquire),
            live_bytes: m.live_bytes.load(Ordering::Acquire).max(0) as u64,
            records: b.records,
        });
    }
    Ok(report)
}

/// Key bytes as text when they are printable UTF-8, else in hex.
fn printable(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
        _ => k.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// The newest block of each kind: the one a writer had open last.
fn last_open_blocks(blocks: &[ScannedBlock]) -> Vec<u32> {
    [0u8, 1]
        .iter()
        .filter_map(|&k| {
            blocks
                .iter()
                .filter(|b| b.kind == k)
                .max_by_key(|b| b.seq)
                .map(|b| b.block)
        })
        .collect()
}
