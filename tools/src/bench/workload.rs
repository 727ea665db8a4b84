//! Workloads: the mix of operations, and the record shape they read and write.
use std::fmt;
use std::str::FromStr;

use rand::rngs::SmallRng;
use rand::Rng;

use super::keys::{Distribution, InsertCounter, KeyChooser};
use super::target::Op;
use std::sync::Arc;

/// Most scalar features a benchmark record may have.
pub const MAX_SCALARS: u32 = 1024;
/// Largest vector dimension (the engine's limit for `f32[N]`).
pub const MAX_VECTOR_DIM: u32 = 65_536;
/// Most entities in one batch get.
pub const MAX_BATCH_KEYS: u32 = 10_000;

/// The operation mixes on offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    ReadOnly,
    ReadMostly,
    ReadUpdate,
    UpdateOnly,
    BatchGet,
    YcsbA,
    YcsbB,
    YcsbC,
    YcsbD,
    YcsbF,
}

const WORKLOAD_NAMES: &str =
    "read-only, read-mostly (95/5), read-update (50/50), update-only, batch-get, ycsb-a, ycsb-b, ycsb-c, ycsb-d, ycsb-f";

impl FromStr for Workload {
    type Err = String;

    fn from_str(text: &str) -> Result<Workload, String> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "read-only" | "read" => Workload::ReadOnly,
            "read-mostly" | "95/5" => Workload::ReadMostly,
            "read-update" | "50/50" => Workload::ReadUpdate,
            "update-only" | "update" | "write" => Workload::UpdateOnly,
            "batch-get" | "batch" => Workload::BatchGet,
            "ycsb-a" | "a" => Workload::YcsbA,
            "ycsb-b" | "b" => Workload::YcsbB,
            "ycsb-c" | "c" => Workload::YcsbC,
            "ycsb-d" | "d" => Workload::YcsbD,
            "ycsb-f" | "f" => Workload::YcsbF,
            "ycsb-e" | "e" => {
                return Err(
                    "workload 'ycsb-e' is short range scans, which a feature store's point \
                     and batch reads do not have; expected one of: "
                        .to_string()
                        + WORKLOAD_NAMES,
                )
            }
            _ => {
                return Err(format!(
                    "unknown workload '{text}'; expected one of: {WORKLOAD_NAMES}"
                ))
            }
        })
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::ReadOnly => "read-only",
            Workload::ReadMostly => "read-mostly",
            Workload::ReadUpdate => "read-update",
            Workload::UpdateOnly => "update-only",
            Workload::BatchGet => "batch-get",
            Workload::YcsbA => "ycsb-a",
            Workload::YcsbB => "ycsb-b",
            Workload::YcsbC => "ycsb-c",
            Workload::YcsbD => "ycsb-d",
            Workload::YcsbF => "ycsb-f",
        })
    }
}

/// Operation proportions in percent; they add up to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Mix {
    pub read: u32,
    pub update: u32,
    pub insert: u32,
    pub read_modify_write: u32,
    pub batch_read: u32,
}

impl Workload {
    pub fn mix(self) -> Mix {
        let m = |read, update, insert, read_modify_write, batch_read| Mix {
            read,
            update,
            insert,
            read_modify_write,
            batch_read,
        };
        match self {
            Workload::ReadOnly | Workload::YcsbC => m(100, 0, 0, 0, 0),
            Workload::ReadMostly | Workload::YcsbB => m(95, 5, 0, 0, 0),
            Workload::ReadUpdate | Workload::YcsbA => m(50, 50, 0, 0, 0),
            Workload::UpdateOnly => m(0, 100, 0, 0, 0),
            Workload::BatchGet => m(0, 0, 0, 0, 100),
            Workload::YcsbD => m(95, 0, 5, 0, 0),
            Workload::YcsbF => m(50, 0, 0, 50, 0),
        }
    }

    /// YCSB's own default request distribution; uniform for the plain workloads.
    pub fn default_distribution(self) -> Distribution {
        match self {
            Workload::YcsbA | Workload::YcsbB | Workload::YcsbC | Workload::YcsbF => {
                Distribution::Zipfian
            }
            Workload::YcsbD => Distribution::Latest,
            _ => Distribution::Uniform,
        }
    }
}

/// The shape of every benchmark record: `scalars` f32 features plus one `f32[vector_dim]`
/// feature (none when 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RecordShape {
    pub scalars: u32,
    pub vector_dim: u32,
}

impl RecordShape {
    /// Checks the shape against the named limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.scalars > MAX_SCALARS {
            return Err(format!(
                "--scalars {} exceeds the limit of {MAX_SCALARS}",
                self.scalars
            ));
        }
        if self.vector_dim > MAX_VECTOR_DIM {
            return Err(format!(
                "--vector-dim {} exceeds the limit of {MAX_VECTOR_DIM}",
                self.vector_dim
            ));
        }
        if self.scalars == 0 && self.vector_dim == 0 {
            return Err("a record needs at least one feature: --scalars or --vector-dim".into());
        }
        Ok(())
    }

    /// Feature names in order: `f0..f{scalars-1}`, then `embedding` when there is a vector.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..self.scalars).map(|i| format!("f{i}")).collect();
        if self.vector_dim > 0 {
            names.push("embedding".to_string());
        }
        names
    }

    /// Bytes of feature payload per record, before any per-record overhead.
    pub fn payload_bytes(&self) -> u64 {
        4 * (self.scalars as u64 + self.vector_dim as u64)
    }

    /// Deterministic scalar values for `key` at write `version`.
    pub fn scalar_value(key: u64, version: u64, index: u32) -> f32 {
        ((key.wrapping_mul(31) ^ version.wrapping_add(index as u64)) % 1_000_003) as f32 / 1000.0
    }

    /// A deterministic embedding for `key`.
    pub fn vector_value(&self, key: u64) -> Vec<f32> {
        (0..self.vector_dim)
            .map(|i| ((key.wrapping_add(i as u64) % 997) as f32) / 997.0)
            .collect()
    }
}

/// Draws the operations of one connection.
#[derive(Debug, Clone)]
pub struct OpGenerator {
    mix: Mix,
    batch_keys: u32,
    keys: KeyChooser,
    inserts: Arc<InsertCounter>,
    rng: SmallRng,
}

impl OpGenerator {
    pub fn new(
        workload: Workload,
        batch_keys: u32,
        keys: KeyChooser,
        inserts: Arc<InsertCounter>,
        rng: SmallRng,
    ) -> OpGenerator {
        OpGenerator {
            mix: workload.mix(),
            batch_keys,
            keys,
            inserts,
            rng,
        }
    }

    pub fn next_op(&mut self) -> Op {
        let roll = self.rng.gen_range(0..100u32);
        let m = self.mix;
        if roll < m.read {
            Op::Read(self.keys.next(&mut self.rng))
        } else if roll < m.read + m.update {
            Op::Update(self.keys.next(&mut self.rng))
        } else if roll < m.read + m.update + m.insert {
            Op::Insert(self.inserts.reserve())
        } else if roll < m.read + m.update + m.insert + m.read_modify_write {
            Op::ReadModifyWrite(self.keys.next(&mut self.rng))
        } else {
            let keys = (0..self.batch_keys)
                .map(|_| self.keys.next(&mut self.rng))
                .collect();
            Op::BatchRead(keys)
        }
    }

    /// Called when an operation finished (in any way): inserts become readable.
    pub fn finished(&self, op: &Op) {
        if let Op::Insert(key) = op {
            self.inserts.acknowledge(*key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_add_up() {
        for name in [
            "read-only",
            "95/5",
            "50/50",
            "batch-get",
            "a",
            "b",
            "c",
            "d",
            "f",
        ] {
            let w: Workload = name.parse().unwrap();
            let m = w.mix();
            assert_eq!(
                m.read + m.update + m.insert + m.read_modify_write + m.batch_read,
                100,
                "{name}"
            );
        }
        assert!("ycsb-z"
            .parse::<Workload>()
            .unwrap_err()
            .contains("unknown workload 'ycsb-z'"));
    }
}
