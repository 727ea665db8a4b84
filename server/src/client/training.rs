//! Training sets over the network: the client side of TRAINING_SET. A spine batch is cut into
//! requests within the server's limits (`max_batch_keys` rows, `max_frame_bytes`), sent as a
//! pipeline, and the streamed answers are put back together in spine order.

use super::{unexpected, Client, ClientError, Result};
use crate::protocol::{
    opt_key_len, Opcode, Request, Response, StatusCode, TrainingSetRequest, HEADER_LEN,
};
use quiver_engine::feature::{FeatureRef, FeatureValue, KeyType};
use quiver_engine::training::{Joined, SpineBatch, TimeMode};
use std::collections::VecDeque;

/// Requests of one batch in flight at once: enough to keep every engine thread of a server
/// busy, few enough that the answers waiting to be read stay small.
pub const TRAINING_PIPELINE_DEPTH: usize = 16;
/// Most spine rows sent in one request (fewer when the server's `max_batch_keys` is lower).
pub const TRAINING_REQUEST_ROWS: usize = 10_000;

/// A training-set builder on a server, the remote twin of the engine's
/// `quiver_engine::training::TrainingSet`: which features, in which time mode. Hand it the
/// spine batch by batch with [`RemoteTrainingSet::join`].
pub struct RemoteTrainingSet<'c> {
    client: &'c mut Client,
    features: Vec<FeatureRef>,
    mode: TimeMode,
    groups: Vec<(String, KeyType)>,
}

fn invalid(message: String) -> ClientError {
    ClientError::Server {
        status: StatusCode::InvalidArgument,
        message,
    }
}

impl Client {
    /// A training-set builder for `features` (from one or more groups that keep history) in
    /// `mode`. Describes each group once, so an unknown group fails here; the server checks
    /// the rest (unknown features, groups without history) with the first batch.
    pub fn training_set(
        &mut self,
        features: Vec<FeatureRef>,
        mode: TimeMode,
    ) -> Result<RemoteTrainingSet<'_>> {
        if features.is_empty() {
            return Err(invalid(
                "a training set needs 1 or more features (group:feature)".to_string(),
            ));
        }
        let mut groups: Vec<(String, KeyType)> = Vec::new();
        for f in &features {
            if !groups.iter().any(|(g, _)| *g == f.group) {
                let schema = self.describe_group(&f.group)?;
                groups.push((f.group.clone(), schema.key_type));
            }
        }
        Ok(RemoteTrainingSet {
            client: self,
            features,
            mode,
            groups,
        })
    }
}

impl RemoteTrainingSet<'_> {
    /// The groups whose keys each spine batch carries, in the order of
    /// [`SpineBatch::keys`] (the order the features name them first), with their key types.
    pub fn groups(&self) -> impl Iterator<Item = (&str, KeyType)> + '_ {
        self.groups.iter().map(|(g, k)| (g.as_str(), *k))
    }

    pub fn features(&self) -> &[FeatureRef] {
        &self.features
    }

    pub fn mode(&self) -> TimeMode {
        self.mode
    }

    /// The features of every row of `batch` as of its time: one column per feature, in spine
    /// order, exactly as the engine's `TrainingSet::join` answers. A refused row fails the
    /// whole call with the server's error, which names the spine row.
    pub fn join(&mut self, batch: &SpineBatch) -> Result<Joined> {
        self.check_shape(batch)?;
        let pieces = self.pieces(batch);
        let mut columns: Vec<Vec<FeatureValue>> = (0..self.features.len())
            .map(|_| Vec::with_capacity(batch.len()))
            .collect();
        let mut in_flight: VecDeque<(u64, usize)> = VecDeque::new();
        if let Err(e) = self.pump(batch, &pieces, &mut in_flight, &mut columns) {
            self.drain(in_flight);
            return Err(e);
        }
        Ok(Joined { columns })
    }

    /// Keeps up to [`TRAINING_PIPELINE_DEPTH`] requests in flight and reads their answers in
    /// order.
    fn pump(
        &mut self,
        batch: &SpineBatch,
        pieces: &[std::ops::Range<usize>],
        in_flight: &mut VecDeque<(u64, usize)>,
        columns: &mut [Vec<FeatureValue>],
    ) -> Result<()> {
        let mut next = 0;
        loop {
            while next < pieces.len() && in_flight.len() < TRAINING_PIPELINE_DEPTH {
                let id = self
                    .client
                    .send(&self.request(batch, pieces[next].clone()))?;
                in_flight.push_back((id, pieces[next].len()));
                next += 1;
            }
            let Some((id, rows)) = in_flight.pop_front() else {
                return Ok(());
            };
            self.receive(id, rows, columns)?;
        }
    }

    fn check_shape(&self, batch: &SpineBatch) -> Result<()> {
        let rows = batch.len();
        if batch.keys.len() != self.groups.len() {
            return Err(invalid(format!(
                "{} key columns given for {} feature groups",
                batch.keys.len(),
                self.groups.len()
            )));
        }
        for ((group, _), keys) in self.groups.iter().zip(&batch.keys) {
            if keys.len() != rows {
                return Err(invalid(format!(
                    "the key column of group '{group}' has {} rows, the timestamps {rows}",
                    keys.len()
                )));
            }
        }
        match (&batch.known_at_ms, self.mode.needs_known_at()) {
            (Some(k), true) if k.len() != rows => Err(invalid(format!(
                "the known-at column has {} rows, the timestamps {rows}",
                k.len()
            ))),
            (None, true) => Err(invalid(
                "the known-at mode needs a known-at time for every row".to_string(),
            )),
            (Some(_), false) => Err(invalid(
                "known-at times were given, but the mode is not known-at".to_string(),
            )),
            _ => Ok(()),
        }
    }

    /// Row ranges of `batch`, one per request, each within the server's row and frame limits.
    fn pieces(&self, batch: &SpineBatch) -> Vec<std::ops::Range<usize>> {
        let info = self.client.server_info();
        let max_rows = (info.max_batch_keys as usize).clamp(1, TRAINING_REQUEST_ROWS);
        let max_body = info.max_frame_bytes as usize;
        let fixed = self.request(batch, 0..0).len_hint();
        let per_row_fixed = 8 + if self.mode.needs_known_at() { 8 } else { 0 };
        let mut out = Vec::new();
        let mut start = 0;
        let mut bytes = fixed;
        for row in 0..batch.len() {
            let len = per_row_fixed
                + batch
                    .keys
                    .iter()
                    .map(|k| opt_key_len(k[row].as_ref()))
                    .sum::<usize>();
            if row > start && (row - start == max_rows || bytes + len > max_body) {
                out.push(start..row);
                start = row;
                bytes = fixed;
            }
            bytes += len;
        }
        if start < batch.len() {
            out.push(start..batch.len());
        }
        out
    }

    fn request(&self, batch: &SpineBatch, rows: std::ops::Range<usize>) -> Request {
        Request::TrainingSet(TrainingSetRequest {
            features: self.features.clone(),
            mode: self.mode,
            first_row: batch.first_row + rows.start as u64,
            timestamps_ms: batch.timestamps_ms[rows.clone()].to_vec(),
            known_at_ms: batch.known_at_ms.as_ref().map(|k| k[rows.clone()].to_vec()),
            key_columns: self
                .groups
                .iter()
                .zip(&batch.keys)
                .map(|((g, _), keys)| (g.clone(), keys[rows.clone()].to_vec()))
                .collect(),
        })
    }

    /// Reads the frames answering request `id` (of `rows` rows) onto the ends of `columns`.
    fn receive(&mut self, id: u64, rows: usize, columns: &mut [Vec<FeatureValue>]) -> Result<()> {
        let mut got = 0usize;
        loop {
            match self.client.wait(id)? {
                Response::TrainingChunk {
                    first,
                    rows: n,
                    columns: chunk,
                    more,
                } => {
                    if first as usize != got
                        || chunk.len() != columns.len()
                        || got + n as usize > rows
                    {
                        return Err(ClientError::Server {
                            status: StatusCode::Internal,
                            message: format!(
                                "TRAINING_SET answer out of shape: a frame of {n} rows from row \
                                 {first} with {} columns, after {got} of {rows} rows of {} columns",
                                chunk.len(),
                                columns.len()
                            ),
                        });
                    }
                    for (column, part) in columns.iter_mut().zip(chunk) {
                        column.extend(part);
                    }
                    got += n as usize;
                    if !more {
                        break;
                    }
                }
                other => return Err(unexpected(Opcode::TrainingSet, &other)),
            }
        }
        if got != rows {
            return Err(ClientError::Server {
                status: StatusCode::Internal,
                message: format!("TRAINING_SET answered {got} of {rows} rows"),
            });
        }
        Ok(())
    }

    /// Reads and drops the answers of requests still in flight after an error, so that the
    /// connection carries nothing stale.
    fn drain(&mut self, in_flight: VecDeque<(u64, usize)>) {
        for (id, _) in in_flight {
            while let Ok(Response::TrainingChunk { more: true, .. }) = self.client.wait(id) {}
        }
    }
}

trait LenHint {
    fn len_hint(&self) -> usize;
}

impl LenHint for Request {
    /// The encoded body's length.
    fn len_hint(&self) -> usize {
        let mut frame = Vec::new();
        crate::protocol::encode_request(0, self, &mut frame);
        frame.len() - HEADER_LEN
    }
}
