//! BASELINE (0x42): saving, showing and dropping the baselines that drift is measured against
//! (docs/PROTOCOL.md). Every answer is JSON text.

use super::wire::{put_bytes, put_str, zero_unless, WireReader};
use super::DecodeError;

/// Largest encoded baseline a PUT_BASELINE carries (one baseline is under 1 KiB).
pub const MAX_BASELINE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineRequest {
    /// Save the distribution of a live window ("1h", "24h") as the baseline of the group's
    /// features (of one feature when given).
    SaveWindow {
        group: String,
        feature: Option<String>,
        window: String,
    },
    /// Save a baseline built by the client (e.g. from a training set): a baseline record
    /// (docs/FORMAT.md) with group id 0 and exactly one baseline.
    Put { group: String, record: Vec<u8> },
    Show {
        group: String,
        feature: Option<String>,
    },
    Drop {
        group: String,
        feature: Option<String>,
    },
}

impl BaselineRequest {
    pub fn group(&self) -> &str {
        match self {
            BaselineRequest::SaveWindow { group, .. }
            | BaselineRequest::Put { group, .. }
            | BaselineRequest::Show { group, .. }
            | BaselineRequest::Drop { group, .. } => group,
        }
    }
}

fn put_opt_feature(out: &mut Vec<u8>, feature: &Option<String>) {
    out.push(feature.is_some() as u8);
    put_str(out, feature.as_deref().unwrap_or(""));
}

fn get_opt_feature(r: &mut WireReader<'_>) -> Result<Option<String>, DecodeError> {
    let has = r.bool("feature present")?;
    let feature = r.string("feature name")?;
    zero_unless(
        has,
        "feature name length",
        "when no feature is given (has_feature 0)",
        feature.len() as u64,
    )?;
    Ok(has.then_some(feature))
}

pub fn put_baseline_request(out: &mut Vec<u8>, req: &BaselineRequest) {
    match req {
        BaselineRequest::SaveWindow {
            group,
            feature,
            window,
        } => {
            out.push(1);
            put_str(out, group);
            put_opt_feature(out, feature);
            put_str(out, window);
        }
        BaselineRequest::Put { group, record } => {
            out.push(2);
            put_str(out, group);
            put_bytes(out, record);
        }
        BaselineRequest::Show { group, feature } => {
            out.push(3);
            put_str(out, group);
            put_opt_feature(out, feature);
        }
        BaselineRequest::Drop { group, feature } => {
            out.push(4);
            put_str(out, group);
            put_opt_feature(out, feature);
        }
    }
}

pub fn get_baseline_request(r: &mut WireReader<'_>) -> Result<BaselineRequest, DecodeError> {
    Ok(match r.u8("baseline action")? {
        1 => BaselineRequest::SaveWindow {
            group: r.string("group name")?,
            feature: get_opt_feature(r)?,
            window: r.string("window")?,
        },
        2 => {
            let group = r.string("group name")?;
            let record = r.bytes("baseline")?;
            if record.len() > MAX_BASELINE_BYTES {
                return Err(DecodeError::Invalid {
                    what: "baseline",
                    reason: format!(
                        "{} bytes, over the limit of {MAX_BASELINE_BYTES}",
                        record.len()
                    ),
                });
            }
            BaselineRequest::Put {
                group,
                record: record.to_vec(),
            }
        }
        3 => BaselineRequest::Show {
            group: r.string("group name")?,
            feature: get_opt_feature(r)?,
        },
        4 => BaselineRequest::Drop {
            group: r.string("group name")?,
            feature: get_opt_feature(r)?,
        },
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "baseline action",
                tag,
            })
        }
    })
}
