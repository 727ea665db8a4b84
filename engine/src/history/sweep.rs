//! Answering many as-of reads of one entity by one pass over its versions.
//!
//! When every read sees a prefix of the versions along one time axis (event time only: a
//! version is seen when its event time is at or before the read's; "as served": when its
//! write time is at or before the read's known-at time), the versions are sorted along that
//! axis, the reads too, and one walk keeps per feature the best version seen so far: a read's
//! answer is that best when the walk reaches it. Reads that bound both axes (known-at from a
//! column) are answered one by one ([`super::resolve::Best`]). Both give the same answers,
//! including on ties: versions keep their stored order within equal keys, and a later one of
//! equal (event, write) order wins, as in `Best::offer`.

use super::codec::Version;
use super::resolve::AsOf;

/// Rows of one entity from which a sweep is used instead of one pass per row.
pub(crate) const MIN_ROWS: usize = 3;

/// The time axis along which reads see a prefix of the versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Axis {
    Event,
    Write,
}

impl Axis {
    /// The axis shared by all of `reads`, if they have one.
    pub fn of<'a>(mut reads: impl Iterator<Item = &'a AsOf>) -> Option<Axis> {
        let axis = Axis::one(reads.next()?)?;
        reads.all(|r| Axis::one(r) == Some(axis)).then_some(axis)
    }

    fn one(at: &AsOf) -> Option<Axis> {
        match at.known_at_ms {
            None => Some(Axis::Event),
            Some(_) if at.event_limit_ms == u64::MAX => Some(Axis::Write),
            Some(_) => None,
        }
    }

    fn version_key(self, v: &Version<'_>) -> u64 {
        match self {
            Axis::Event => v.event_time_ms,
            Axis::Write => v.write_time_ms,
        }
    }

    fn read_key(self, at: &AsOf) -> u64 {
        match self {
            Axis::Event => at.event_limit_ms,
            Axis::Write => at
                .known_at_ms
                .expect("a write-axis read has a known-at time"),
        }
    }
}

/// Per row of `rows` (indices into `reads`, all on `axis`), the best version of each of `ids`
/// (ascending) the row sees, in `ids` order: row `i`'s answers are
/// `out[i * ids.len()..(i + 1) * ids.len()]`. `versions` holds only features of `ids`; they
/// are walked in order along the axis, equal keys in their stored order.
pub(crate) fn sweep<'a>(
    axis: Axis,
    ids: &[u32],
    versions: &[Version<'a>],
    rows: &[usize],
    reads: &[AsOf],
) -> Vec<Option<Version<'a>>> {
    // (key, position) pairs sorted keep equal keys in stored order, as a stable sort of the
    // versions would, for a fraction of the cost of moving the versions themselves.
    let mut walk: Vec<(u64, usize)> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| (axis.version_key(v), i))
        .collect();
    walk.sort_unstable();
    let mut order: Vec<(u64, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, &r)| (axis.read_key(&reads[r]), i))
        .collect();
    order.sort_unstable();
    let n = ids.len();
    let mut best: Vec<Option<Version<'a>>> = vec![None; n];
    let mut out = vec![None; rows.len() * n];
    let mut next = 0;
    for (limit, i) in order {
        while let Some(&(_, at)) = walk.get(next).filter(|(key, _)| *key <= limit) {
            let v = &versions[at];
            if let Ok(k) = ids.binary_search(&v.feature) {
                if best[k].is_none_or(|b| v.order() >= b.order()) {
                    best[k] = Some(*v);
                }
            }
            next += 1;
        }
        out[i * n..(i + 1) * n].copy_from_slice(&best);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::resolve::Best;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn per_row<'a>(ids: &[u32], versions: &[Version<'a>], at: &AsOf) -> Vec<Option<Version<'a>>> {
        let mut best = Best::new(ids.to_vec());
        best.offer(versions, at);
        ids.iter().map(|&id| best.get(id).copied()).collect()
    }

    #[test]
    fn a_sweep_answers_like_one_pass_per_row() {
        let payloads: Vec<[u8; 8]> = (0..64i64).map(|i| i.to_le_bytes()).collect();
        let mut rng = StdRng::seed_from_u64(3);
        for case in 0..300 {
            let ids: Vec<u32> = if case % 2 == 0 { vec![0, 2] } else { vec![1] };
            let versions: Vec<Version<'_>> = (0..rng.gen_range(0..40))
                .map(|i| Version {
                    feature: rng.gen_range(0..3),
                    kind: 2,
                    // Few distinct times, so that ties on both axes are common.
                    event_time_ms: rng.gen_range(0..12),
                    write_time_ms: rng.gen_range(0..12),
                    payload: &payloads[i % 64],
                })
                .filter(|v| ids.contains(&v.feature))
                .collect();
            let served = case % 3 == 0;
            let reads: Vec<AsOf> = (0..rng.gen_range(1..12))
                .map(|_| {
                    let t = rng.gen_range(0..14);
                    if served {
                        AsOf::as_served(t)
                    } else {
                        AsOf::event_time(t)
                    }
                })
                .collect();
            let rows: Vec<usize> = (0..reads.len()).rev().collect();
            let axis = Axis::of(reads.iter()).expect("one axis");
            let got = sweep(axis, &ids, &versions, &rows, &reads);
            let n = ids.len();
            for (i, &r) in rows.iter().enumerate() {
                let row = &got[i * n..(i + 1) * n];
                assert_eq!(row, per_row(&ids, &versions, &reads[r]), "case {case}");
            }
        }
    }

    #[test]
    fn reads_bounding_both_axes_have_no_axis() {
        let both = [AsOf::known_at(5, 7)];
        assert_eq!(Axis::of(both.iter()), None);
        let mixed = [AsOf::event_time(5), AsOf::as_served(5)];
        assert_eq!(Axis::of(mixed.iter()), None);
        assert_eq!(Axis::of([AsOf::as_served(1)].iter()), Some(Axis::Write));
        assert_eq!(Axis::of([].iter()), None);
    }
}
