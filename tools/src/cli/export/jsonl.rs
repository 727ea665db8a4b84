//! JSON Lines output: `{"entity": KEY, "event_time": MS, "feature": VALUE, ...}` per row.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use quiver_engine::feature::{ScanItem, Status};
use serde_json::{Map, Value as Json};

use super::{row_event_time, RowSink, KEY_COLUMN, TS_COLUMN};
use crate::cli::error::{CliError, CliResult};
use crate::cli::json::{key_to_json, value_to_json};

pub struct JsonlSink {
    out: BufWriter<File>,
    path: PathBuf,
}

impl JsonlSink {
    pub fn new(out: BufWriter<File>, path: &Path) -> JsonlSink {
        JsonlSink {
            out,
            path: path.to_path_buf(),
        }
    }

    fn io(&self, err: std::io::Error) -> CliError {
        CliError::file(&self.path, format!("write failed: {err}"))
    }
}

impl RowSink for JsonlSink {
    fn write(&mut self, items: &[ScanItem]) -> CliResult<()> {
        for item in items {
            let mut map = Map::new();
            map.insert(KEY_COLUMN.into(), key_to_json(&item.key));
            map.insert(TS_COLUMN.into(), Json::from(row_event_time(item)));
            for (name, fv) in &item.values {
                match fv.status {
                    Status::Present => map.insert(name.clone(), value_to_json(&fv.value)),
                    Status::Null => map.insert(name.clone(), Json::Null),
                    // A scan's rows never hold CORRUPT (damaged rows are not scanned).
                    Status::NotFound | Status::Expired | Status::Corrupt => None,
                };
            }
            serde_json::to_writer(&mut self.out, &Json::Object(map))
                .map_err(|e| self.io(e.into()))?;
            self.out.write_all(b"\n").map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> CliResult<()> {
        self.out.flush().map_err(|e| self.io(e))?;
        self.out.get_ref().sync_all().map_err(|e| self.io(e))
    }
}
