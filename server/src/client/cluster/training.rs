//! Training sets on a cluster. TRAINING_SET is answered by the receiving node from its own
//! store, so a spine batch is split by master: node `n` gets the rows with at least one key
//! it masters, each group's key kept only where `n` masters it (`None`, which reads
//! NOT_FOUND, elsewhere); the nodes join their parts in parallel and each feature of a row is
//! taken from the master of that row's key of the feature's group. Rows without any key go
//! to the first node of the map.
//!
//! Since the nodes do not check mastership for TRAINING_SET, the map is fetched again after
//! the join: when its version moved (a failover or a migration during the join), the batch is
//! joined again, until the retry deadline.

use super::ClusterClient;
use crate::client::{ClientError, Result};
use crate::protocol::StatusCode;
use quiver_engine::feature::{FeatureRef, FeatureValue};
use quiver_engine::training::{Joined, SpineBatch, TimeMode};
use std::collections::BTreeMap;

/// One node's part of a batch: the spine rows it joins (indices into the batch) and the
/// batch it is sent.
struct Part {
    rows: Vec<usize>,
    batch: SpineBatch,
}

impl ClusterClient {
    /// The features of every row of `batch` as of its time, one column per feature in spine
    /// order, as `RemoteTrainingSet::join` answers for one server. `batch.keys` holds one
    /// column per group in the order the features name them first. A refused row is named by
    /// its number in the part of the batch sent to its node.
    pub fn training_join(
        &mut self,
        features: &[FeatureRef],
        mode: TimeMode,
        batch: &SpineBatch,
    ) -> Result<Joined> {
        let mut groups: Vec<&str> = Vec::new();
        for f in features {
            if !groups.contains(&f.group.as_str()) {
                groups.push(&f.group);
            }
        }
        if batch.keys.len() != groups.len() {
            return Err(ClientError::Server {
                status: StatusCode::InvalidArgument,
                message: format!(
                    "{} key columns given for {} feature groups",
                    batch.keys.len(),
                    groups.len()
                ),
            });
        }
        let group_of: Vec<usize> = features
            .iter()
            .map(|f| groups.iter().position(|g| *g == f.group).expect("listed"))
            .collect();
        self.retrying(|c| {
            let version = c.map_version();
            let joined = c.join_once(features, mode, batch, &group_of)?;
            c.refresh()?;
            let now = c.map_version();
            if now != version {
                return Err(ClientError::Server {
                    status: StatusCode::Unavailable,
                    message: format!(
                        "the partition map moved from version {version} to {now} during a \
                         training-set join; joining again"
                    ),
                });
            }
            Ok(joined)
        })
    }

    fn map_version(&self) -> u64 {
        self.map
            .as_ref()
            .and_then(|m| m.map.as_ref())
            .map_or(0, |m| m.version)
    }

    fn join_once(
        &mut self,
        features: &[FeatureRef],
        mode: TimeMode,
        batch: &SpineBatch,
        group_of: &[usize],
    ) -> Result<Joined> {
        let (parts, owners) = self.split_spine(batch)?;
        for node in parts.keys() {
            self.conn(*node)?;
        }
        let answers: Vec<(u32, Result<Joined>)> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .conns
                .iter_mut()
                .filter(|(node, _)| parts.contains_key(node))
                .map(|(node, conn)| {
                    let part = &parts[node];
                    let node = *node;
                    s.spawn(move || {
                        let joined = conn
                            .training_set(features.to_vec(), mode)
                            .and_then(|mut set| set.join(&part.batch));
                        (node, joined)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a training-set thread panicked"))
                .collect()
        });
        let mut columns: Vec<Vec<Option<FeatureValue>>> =
            features.iter().map(|_| vec![None; batch.len()]).collect();
        for (node, joined) in answers {
            let joined = joined.inspect_err(|e| {
                if !matches!(e, ClientError::Server { .. }) {
                    self.conns.remove(&node);
                }
            })?;
            let rows = &parts[&node].rows;
            for (f, column) in joined.columns.into_iter().enumerate() {
                for (j, value) in column.into_iter().enumerate() {
                    let r = rows[j];
                    if owners[group_of[f]][r] == node {
                        columns[f][r] = Some(value);
                    }
                }
            }
        }
        Ok(Joined {
            columns: columns
                .into_iter()
                .map(|c| {
                    c.into_iter()
                        .map(|v| v.expect("every row answered by its owner"))
                        .collect()
                })
                .collect(),
        })
    }

    /// Each node's part of `batch`, and per group per row the node whose answer counts (the
    /// key's master; for a row without that group's key, the first node the row went to).
    #[allow(clippy::type_complexity)]
    fn split_spine(&self, batch: &SpineBatch) -> Result<(BTreeMap<u32, Part>, Vec<Vec<u32>>)> {
        let fallback = self
            .node_ids()
            .first()
            .copied()
            .ok_or_else(|| ClientError::Server {
                status: StatusCode::Unavailable,
                message: "no live node in the client's map".into(),
            })?;
        let mut owners: Vec<Vec<u32>> = batch.keys.iter().map(|_| vec![0; batch.len()]).collect();
        let mut parts: BTreeMap<u32, Part> = BTreeMap::new();
        for r in 0..batch.len() {
            let mut masters = Vec::with_capacity(batch.keys.len());
            for column in &batch.keys {
                masters.push(column[r].as_ref().map(|k| self.master_of(k)).transpose()?);
            }
            let first = masters.iter().flatten().min().copied().unwrap_or(fallback);
            for (g, m) in masters.iter().enumerate() {
                owners[g][r] = m.unwrap_or(first);
            }
            let mut nodes: Vec<u32> = masters.iter().flatten().copied().collect();
            nodes.push(first);
            nodes.sort_unstable();
            nodes.dedup();
            for node in nodes {
                let part = parts.entry(node).or_insert_with(|| Part {
                    rows: Vec::new(),
                    batch: SpineBatch {
                        first_row: batch.first_row,
                        timestamps_ms: Vec::new(),
                        keys: batch.keys.iter().map(|_| Vec::new()).collect(),
                        known_at_ms: batch.known_at_ms.as_ref().map(|_| Vec::new()),
                    },
                });
                part.rows.push(r);
                part.batch.timestamps_ms.push(batch.timestamps_ms[r]);
                if let (Some(all), Some(mine)) = (&batch.known_at_ms, &mut part.batch.known_at_ms) {
                    mine.push(all[r]);
                }
                for (g, column) in batch.keys.iter().enumerate() {
                    let key = column[r].clone().filter(|_| masters[g] == Some(node));
                    part.batch.keys[g].push(key);
                }
            }
        }
        Ok((parts, owners))
    }
}
