//! Metadata log entries: what one create-only `log/{seq}` object commits.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::segment::BatchMeta;
use crate::{Error, Result, keys};

/// The format written. 2 added commit-window dedup and refusal of stale
/// entries, and fenced offset commits: a build that reads only format 1 must
/// stop at such entries rather than apply them differently.
pub const ENTRY_FORMAT: u32 = 2;

/// The format of an entry that creates or deletes a topic: 3 added topic
/// incarnations (a topic created by such an entry is numbered by its log
/// position; see `state::Topic::id`). Only such entries carry it, so a build
/// that reads format 2 keeps reading every other entry, and stops with a
/// clear message at a creation or deletion it would number differently.
pub const TOPIC_FORMAT: u32 = 3;

/// The format of an entry that appends a spool's flush (`Op::Append::flush`):
/// a build that reads format 3 would ignore the flush and append a replayed
/// one twice, so it must stop at such entries. Only they carry it.
pub const SPOOL_FORMAT: u32 = 4;

/// Formats this build reads (format-1 entries apply by the same rules).
const READABLE_FORMATS: std::ops::RangeInclusive<u32> = 1..=SPOOL_FORMAT;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub format: u32,
    /// Unique per commit: how a writer recognises its own entry when the
    /// outcome of its PUT was unknown. Its timestamp also advances the log
    /// clock (see `State::log_clock_ms`).
    pub commit_id: Ulid,
    pub ops: Vec<Op>,
}

/// Per-topic settings, as in Kafka; -1 means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub retention_ms: i64,
    pub retention_bytes: i64,
}

impl Default for TopicConfig {
    /// Kafka's defaults: seven days, no size limit.
    fn default() -> Self {
        Self { retention_ms: 7 * 24 * 3600 * 1000, retention_bytes: -1 }
    }
}

/// A committed batch named by where it starts and where it lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchId {
    pub base_offset: u64,
    pub segment: Ulid,
    pub pos: u64,
}

/// A batch of a replacement segment, with the offset it takes over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedBatch {
    pub base_offset: u64,
    #[serde(flatten)]
    pub meta: BatchMeta,
}

/// A flush's identity in an agent's spool: the spool's id and the flush's
/// number in it. Numbers grow with each flush, and a spool commits its
/// flushes in that order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FlushId {
    pub spool: Ulid,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    CreateTopic {
        name: String,
        partitions: u32,
        #[serde(default)]
        config: TopicConfig,
    },
    UpdateTopic {
        name: String,
        config: TopicConfig,
    },
    /// Batches of one uploaded segment; offsets are assigned when applied.
    Append {
        segment: Ulid,
        batches: Vec<BatchMeta>,
        /// Set for a flush kept in an agent's spool: the log remembers each
        /// spool's last committed flush, so a replay of one committed before
        /// (under this segment or a re-upload) appends nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flush: Option<FlushId>,
    },
    /// A new idempotent producer (`None`), or a new epoch for an existing one.
    InitProducer {
        producer_id: Option<u64>,
    },
    /// The commit lease: `holder` group-commits other agents' entries until
    /// the log clock passes the term. An optimisation only: anyone may still
    /// commit directly at any time.
    AcquireLease {
        /// `commit` for the commit lease, `group/{g}` for a group's coordinator.
        name: String,
        holder: Ulid,
        url: String,
        term_ms: u64,
    },
    /// A consumer group's committed offsets (the next offset to read).
    CommitOffsets {
        group: String,
        offsets: Vec<GroupOffset>,
        /// The coordinator tenure that accepted the commit; applied only while
        /// that tenure of the group's lease is current. (Absent only in
        /// entries written before the fence existed.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        coordinator: Option<LeaseRef>,
    },
    /// Retention: the partition's log now starts at `log_start_offset`.
    Truncate {
        topic: String,
        partition: u32,
        log_start_offset: u64,
        /// The topic's incarnation (`Topic::id`) the truncation was computed
        /// on: it never applies to a topic deleted and created again since.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic_id: Option<u64>,
    },
    /// The topic and everything in it goes: its batches are released (the
    /// compactor collects the segments), groups' offsets in it and producers'
    /// sequences in it are forgotten. With `id`, only that incarnation.
    DeleteTopic {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Compaction: `replaced` (contiguous, still current) are swapped for the
    /// batches of `segment`, which hold the same offsets and records.
    Replace {
        topic: String,
        partition: u32,
        replaced: Vec<BatchId>,
        segment: Ulid,
        batches: Vec<PlacedBatch>,
    },
}

/// One tenure of a lease: its holder and the log position that began it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRef {
    pub holder: Ulid,
    pub since: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    /// The topic incarnation the offset was checked against (set by the
    /// coordinator): an offset never lands in a topic created again since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<u64>,
}

/// What a `log/{seq}` object holds: an entry, or the tombstone an old entry
/// is shrunk to once a snapshot covers it (the position stays occupied forever).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogObject {
    Entry(LogEntry),
    /// "Truncated: load snapshot ≥ `snapshot`."
    Tombstone {
        snapshot: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct TombstoneJson {
    format: u32,
    truncated: TruncatedJson,
}

#[derive(Serialize, Deserialize)]
struct TruncatedJson {
    snapshot: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawObject {
    Tombstone(TombstoneJson),
    Entry(LogEntry),
}

impl LogEntry {
    #[allow(clippy::disallowed_methods)] // for tests; the log stamps entries with its node's components
    pub fn new(ops: Vec<Op>) -> Self {
        Self::with_id(Ulid::new(), ops)
    }

    /// An entry whose commit id was made by an injected clock.
    pub fn with_id(commit_id: Ulid, ops: Vec<Op>) -> Self {
        let topics = ops.iter().any(|op| matches!(op, Op::CreateTopic { .. } | Op::DeleteTopic { .. }));
        let spooled = ops.iter().any(|op| matches!(op, Op::Append { flush: Some(_), .. }));
        let format = match (spooled, topics) {
            (true, _) => SPOOL_FORMAT,
            (false, true) => TOPIC_FORMAT,
            (false, false) => ENTRY_FORMAT,
        };
        Self { format, commit_id, ops }
    }

    pub fn encode(&self) -> Result<Bytes> {
        serde_json::to_vec(self).map(Bytes::from).map_err(|e| Error::encode("log entry", e))
    }
}

impl LogObject {
    pub fn tombstone_bytes(snapshot: u64) -> Result<Bytes> {
        let t = TombstoneJson { format: ENTRY_FORMAT, truncated: TruncatedJson { snapshot } };
        serde_json::to_vec(&t).map(Bytes::from).map_err(|e| Error::encode("tombstone", e))
    }

    pub fn decode(seq: u64, bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| Error::CorruptLogEntry { seq, key: keys::log_entry(seq).to_string(), reason };
        let raw: RawObject = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        let (format, object) = match raw {
            RawObject::Tombstone(t) => (t.format, Self::Tombstone { snapshot: t.truncated.snapshot }),
            RawObject::Entry(e) => (e.format, Self::Entry(e)),
        };
        if !READABLE_FORMATS.contains(&format) {
            return Err(Error::UnsupportedFormat(format!(
                "log entry {seq} has format {format}, this build reads up to {SPOOL_FORMAT}"
            )));
        }
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_tombstones_round_trip() {
        let e =
            LogEntry::new(vec![Op::CreateTopic { name: "t".into(), partitions: 2, config: TopicConfig::default() }]);
        assert_eq!(LogObject::decode(1, &e.encode().unwrap()).unwrap(), LogObject::Entry(e));
        let t = LogObject::tombstone_bytes(40).unwrap();
        assert_eq!(LogObject::decode(2, &t).unwrap(), LogObject::Tombstone { snapshot: 40 });
        assert!(t.len() < 64, "tombstones are small");
    }

    #[test]
    fn unknown_ops_and_formats_are_refused() {
        let unknown = br#"{"format":1,"commit_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","ops":[{"op":"drop_everything"}]}"#;
        assert!(LogObject::decode(1, unknown).is_err());
        let future = br#"{"format":5,"commit_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","ops":[]}"#;
        let delete =
            br#"{"format":3,"commit_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","ops":[{"op":"delete_topic","name":"t"}]}"#;
        assert!(LogObject::decode(1, delete).is_ok(), "creations and deletions are format 3");
        let old = br#"{"format":1,"commit_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","ops":[]}"#;
        assert!(LogObject::decode(1, old).is_ok(), "entries written before format 2 still read");
        assert!(matches!(LogObject::decode(1, future), Err(Error::UnsupportedFormat(_))));
    }
}
