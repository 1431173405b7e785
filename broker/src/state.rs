//! Broker state: a pure, deterministic fold over a snapshot and the log entries
//! after it. Only ordered maps are used, so two agents that apply the same
//! entries hold equal states, byte for byte when serialised.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::entry::{LogEntry, Op};
use crate::{Error, Result};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Log position of the last applied entry (0: nothing applied yet).
    pub applied: u64,
    pub topics: BTreeMap<String, Topic>,
    /// Committed segments and the offsets their batches received, so a
    /// re-commit of the same segment is recognised and answered with the
    /// original offsets.
    pub segments: BTreeMap<Ulid, Vec<Placement>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub partitions: Vec<Partition>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub log_start_offset: u64,
    /// The next offset to be assigned.
    pub high_watermark: u64,
    /// Base offset → where that batch lives.
    pub batches: BTreeMap<u64, StoredBatch>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBatch {
    pub segment: Ulid,
    pub pos: u64,
    pub len: u32,
    pub records: u32,
    pub max_timestamp: i64,
}

/// Where one committed batch landed: `None` if its topic or partition did not
/// exist when the entry was applied (the batch is then dropped, deterministically).
pub type Placement = Option<u64>;

/// What applying one entry did, op by op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    TopicCreated,
    TopicAlreadyExisted,
    /// Base offset of each batch in the op, in order.
    Appended(Vec<Placement>),
}

impl State {
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name)
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Option<&Partition> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }

    /// Applies the entry at log position `seq`, which must be the next one.
    pub fn apply(&mut self, seq: u64, entry: &LogEntry) -> Result<Vec<OpOutcome>> {
        if seq != self.applied + 1 {
            return Err(Error::OutOfOrder { expected: self.applied + 1, got: seq });
        }
        let outcomes = entry.ops.iter().map(|op| self.apply_op(op)).collect();
        self.applied = seq;
        Ok(outcomes)
    }

    fn apply_op(&mut self, op: &Op) -> OpOutcome {
        match op {
            Op::CreateTopic { name, partitions } => {
                if self.topics.contains_key(name) {
                    return OpOutcome::TopicAlreadyExisted;
                }
                let partitions = (0..*partitions).map(|_| Partition::default()).collect();
                self.topics.insert(name.clone(), Topic { partitions });
                OpOutcome::TopicCreated
            }
            Op::Append { segment, batches } => {
                if let Some(placements) = self.segments.get(segment) {
                    return OpOutcome::Appended(placements.clone());
                }
                let placements: Vec<Placement> = batches
                    .iter()
                    .map(|b| {
                        let p = self.topics.get_mut(&b.topic)?.partitions.get_mut(b.partition as usize)?;
                        let base = p.high_watermark;
                        p.high_watermark += u64::from(b.records);
                        let stored = StoredBatch {
                            segment: *segment,
                            pos: b.pos,
                            len: b.len,
                            records: b.records,
                            max_timestamp: b.max_timestamp,
                        };
                        p.batches.insert(base, stored);
                        Some(base)
                    })
                    .collect();
                self.segments.insert(*segment, placements.clone());
                OpOutcome::Appended(placements)
            }
        }
    }
}

impl Partition {
    /// The batch holding `offset`, with its base offset.
    pub fn batch_at(&self, offset: u64) -> Option<(u64, &StoredBatch)> {
        let (base, b) = self.batches.range(..=offset).next_back()?;
        (offset < base + u64::from(b.records)).then_some((*base, b))
    }

    /// Batches from the one holding `offset` onwards, in offset order.
    pub fn batches_from(&self, offset: u64) -> impl Iterator<Item = (u64, &StoredBatch)> {
        let start = self.batch_at(offset).map_or(offset, |(base, _)| base);
        self.batches.range(start..).map(|(b, s)| (*b, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::BatchMeta;

    fn batch(topic: &str, partition: u32, records: u32) -> BatchMeta {
        BatchMeta { topic: topic.into(), partition, pos: 8, len: 40, records, max_timestamp: 5 }
    }

    fn create(name: &str, partitions: u32) -> LogEntry {
        LogEntry::new(vec![Op::CreateTopic { name: name.into(), partitions }])
    }

    fn append(segment: Ulid, batches: Vec<BatchMeta>) -> LogEntry {
        LogEntry::new(vec![Op::Append { segment, batches }])
    }

    #[test]
    fn offsets_are_dense_and_assigned_in_log_order() {
        let mut s = State::default();
        s.apply(1, &create("t", 2)).unwrap();
        let a = s.apply(2, &append(Ulid::new(), vec![batch("t", 0, 3), batch("t", 1, 2), batch("t", 0, 4)])).unwrap();
        assert_eq!(a, vec![OpOutcome::Appended(vec![Some(0), Some(0), Some(3)])]);
        let b = s.apply(3, &append(Ulid::new(), vec![batch("t", 0, 1)])).unwrap();
        assert_eq!(b, vec![OpOutcome::Appended(vec![Some(7)])]);
        let p0 = s.partition("t", 0).unwrap();
        assert_eq!(p0.high_watermark, 8);
        assert_eq!(p0.batch_at(5).map(|(base, _)| base), Some(3));
        assert_eq!(p0.batch_at(8), None);
        assert_eq!(p0.batches_from(4).map(|(b, _)| b).collect::<Vec<_>>(), vec![3, 7]);
    }

    #[test]
    fn recommitting_a_segment_is_a_noop_that_returns_the_original_offsets() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let seg = Ulid::new();
        let first = s.apply(2, &append(seg, vec![batch("t", 0, 3)])).unwrap();
        let again = s.apply(3, &append(seg, vec![batch("t", 0, 3)])).unwrap();
        assert_eq!(first, again);
        assert_eq!(s.partition("t", 0).unwrap().high_watermark, 3);
    }

    #[test]
    fn batches_for_unknown_partitions_are_dropped() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let out = s.apply(2, &append(Ulid::new(), vec![batch("t", 5, 1), batch("u", 0, 1), batch("t", 0, 1)])).unwrap();
        assert_eq!(out, vec![OpOutcome::Appended(vec![None, None, Some(0)])]);
    }

    #[test]
    fn creating_an_existing_topic_changes_nothing() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        assert_eq!(s.apply(2, &create("t", 9)).unwrap(), vec![OpOutcome::TopicAlreadyExisted]);
        assert_eq!(s.topic("t").unwrap().partitions.len(), 1);
    }

    #[test]
    fn apply_refuses_gaps_and_repeats() {
        let mut s = State::default();
        assert!(s.apply(2, &create("t", 1)).is_err());
        s.apply(1, &create("t", 1)).unwrap();
        assert!(s.apply(1, &create("u", 1)).is_err());
        assert!(s.topic("u").is_none());
    }
}
