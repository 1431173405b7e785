//! Metadata log entries: what one create-only `log/{seq}` object commits.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::segment::BatchMeta;
use crate::{Error, Result};

pub const ENTRY_FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub format: u32,
    /// Unique per commit attempt: how a writer recognises its own entry when
    /// the outcome of its PUT was unknown.
    pub commit_id: Ulid,
    pub ops: Vec<Op>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    CreateTopic {
        name: String,
        partitions: u32,
    },
    /// Batches of one uploaded segment; offsets are assigned when applied.
    Append {
        segment: Ulid,
        batches: Vec<BatchMeta>,
    },
}

impl LogEntry {
    pub fn new(ops: Vec<Op>) -> Self {
        Self { format: ENTRY_FORMAT, commit_id: Ulid::new(), ops }
    }

    pub fn encode(&self) -> Result<Bytes> {
        serde_json::to_vec(self).map(Bytes::from).map_err(|e| Error::corrupt("log entry", e))
    }

    pub fn decode(seq: u64, bytes: &[u8]) -> Result<Self> {
        let entry: Self = serde_json::from_slice(bytes).map_err(|e| Error::corrupt(format!("log entry {seq}"), e))?;
        if entry.format != ENTRY_FORMAT {
            return Err(Error::UnsupportedFormat(format!(
                "log entry {seq} has format {}, this build reads {ENTRY_FORMAT}",
                entry.format
            )));
        }
        Ok(entry)
    }
}
