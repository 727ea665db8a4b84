//! The parts of recovery that offline inspection reuses.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use quiver_index::{digest, identity, Index, Location};
use quiver_wal::format::{decode_record, key_tag, key_tag_of_digest, Superblock, UNIT_BYTES};
use quiver_wal::Device;

use super::blocks::{Blocks, SEALED};
use super::damage::DamagedKey;
use super::recovery::{read_dropped, read_frame, recompute_live, scan_blocks, ScanState};
use super::recovery_damage::Weighing;
use super::stats::RecoveryReport;
use crate::error::Result;
use crate::feature::registry::{schema_key, REGISTRY_GROUP, REGISTRY_KEY};
use crate::feature::{GroupSchema, KeyType, RegistryIndex};

pub(crate) struct ScannedBlock {
    pub block: u32,
    pub seq: u64,
    pub kind: u8,
    pub records: u64,
}

pub(crate) struct Scanned {
    pub report: RecoveryReport,
    pub blocks: Vec<ScannedBlock>,
    pub blocks_table: Blocks,
    pub live_records: u64,
    /// Keys whose newest frame is damaged, as a full recovery finds them (they read CORRUPT).
    /// Their key bytes are those of the damaged frame when its tag confirms them, else those
    /// of an intact older version of the key, when one is left.
    pub damaged_keys: Vec<DamagedKey>,
    /// The groups the registry on the device names: id to (name, key type). Empty when the
    /// registry cannot be read.
    pub groups: HashMap<u32, (String, KeyType)>,
}

/// Scans every block as a full recovery would, without opening a store.
pub(crate) fn scan_all(device: &dyn Device, sb: &Superblock) -> Result<Scanned> {
    let count = (sb.device_bytes / sb.write_block_bytes as u64) as usize;
    let blocks = Blocks::new(count, sb.write_block_bytes as u64, 0, 0);
    let mut report = RecoveryReport::default();
    let mut state = ScanState::default();
    let all: Vec<u32> = (1..count as u32).collect();
    scan_blocks(device, sb, &blocks, &all, &mut state, &mut report)?;
    let dropped = read_dropped(device, sb, &blocks, &state)?;
    let mut damage = Weighing::start(device, sb, &blocks, &state, &dropped, None)?;
    damage.see_versions(&state.versions);
    let index = Index::new();
    // Inspection runs outside any store: it judges expiry by the system clock.
    let now = crate::clock::Clock::now_s(&crate::clock::SystemClock);
    let mut per_block = vec![0u64; count];
    state.versions.for_each(|d, v| {
        if v.is_live(now, &dropped) {
            index.insert(d, v.entry());
        }
        per_block[v.loc.block as usize] += 1;
    });
    let (mut damaged_keys, _) = damage.finish(&index, &blocks, &mut report);
    name_damaged_keys(device, sb, &blocks, &state, &mut damaged_keys);
    recompute_live(&index, &blocks);
    let groups = read_groups(device, sb, &blocks, &index);
    let scanned = (1..count as u32)
        .filter(|&b| blocks.meta[b as usize].state.load(Ordering::Acquire) == SEALED)
        .map(|b| ScannedBlock {
            block: b,
            seq: blocks.meta[b as usize].seq.load(Ordering::Acquire),
            kind: blocks.meta[b as usize].kind.load(Ordering::Acquire),
            records: per_block[b as usize],
        })
        .collect();
    Ok(Scanned {
        report,
        blocks: scanned,
        live_records: index.len() as u64,
        blocks_table: blocks,
        damaged_keys,
        groups,
    })
}

/// The value and key of the intact frame at `loc`.
fn read_record(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    loc: Location,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let (buf, start) = read_frame(device, sb, loc).ok()?;
    let offset = loc.offset_units * UNIT_BYTES as u32;
    let view = decode_record(&buf[start..], loc.block, offset, blocks.seq(loc.block)).ok()?;
    Some((view.key.to_vec(), view.value.to_vec()))
}

/// Fills in the key bytes of damaged keys whose damaged frame did not confirm them, from an
/// intact older version of the same group and tag (the version recovery refused).
fn name_damaged_keys(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    state: &ScanState,
    damaged: &mut [DamagedKey],
) {
    let unnamed: HashSet<(u32, u64)> = damaged
        .iter()
        .filter(|k| k.key.is_none())
        .map(|k| (k.group, k.tag))
        .collect();
    if unnamed.is_empty() {
        return;
    }
    let mut older: HashMap<(u32, u64), Location> = HashMap::new();
    state.versions.for_each(|d, v| {
        if unnamed.contains(&(v.group, key_tag_of_digest(d))) {
            older.insert((v.group, key_tag_of_digest(d)), v.loc);
        }
    });
    for k in damaged.iter_mut().filter(|k| k.key.is_none()) {
        let Some(&loc) = older.get(&(k.group, k.tag)) else {
            continue;
        };
        if let Some((key, _)) = read_record(device, sb, blocks, loc) {
            if key_tag(k.group, &key) == k.tag {
                k.key = Some(key);
            }
        }
    }
}

/// The groups of the registry found in `index`, by id.
fn read_groups(
    device: &dyn Device,
    sb: &Superblock,
    blocks: &Blocks,
    index: &Index,
) -> HashMap<u32, (String, KeyType)> {
    let value = |group: u32, key: &[u8]| {
        let e = index.get(identity(digest(group, key)))?;
        read_record(device, sb, blocks, e.loc).map(|(_, v)| v)
    };
    let mut groups = HashMap::new();
    let Some(registry) =
        value(REGISTRY_GROUP, REGISTRY_KEY).and_then(|v| RegistryIndex::decode(&v).ok())
    else {
        return groups;
    };
    for &id in registry.live.iter().chain(&registry.dropping) {
        if let Some(schema) =
            value(REGISTRY_GROUP, &schema_key(id)).and_then(|v| GroupSchema::decode(&v).ok())
        {
            groups.insert(id, (schema.name, schema.key_type));
        }
    }
    groups
}
