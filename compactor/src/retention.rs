//! Retention: which truncations the topics' `retention_ms` and
//! `retention_bytes` call for. Whole batches only, oldest first, as Kafka
//! deletes whole segments.

use floe_broker::entry::Op;
use floe_broker::state::{Partition, State};

/// Truncation ops for every partition whose oldest batches are past retention at `now_ms`.
pub fn plan(state: &State, now_ms: i64) -> Vec<Op> {
    let mut ops = Vec::new();
    for (name, topic) in &state.topics {
        for (i, p) in topic.partitions.iter().enumerate() {
            let start = new_start(p, topic.config.retention_ms, topic.config.retention_bytes, now_ms);
            if start > p.log_start_offset {
                ops.push(Op::Truncate {
                    topic: name.clone(),
                    partition: i as u32,
                    log_start_offset: start,
                    topic_id: Some(topic.id),
                });
            }
        }
    }
    ops
}

/// The log start after dropping every leading batch that is too old or that
/// keeps the partition over its byte limit.
fn new_start(p: &Partition, retention_ms: i64, retention_bytes: i64, now_ms: i64) -> u64 {
    let mut start = p.log_start_offset;
    let mut bytes = p.stored_bytes();
    for (base, b) in &p.batches {
        let expired = retention_ms >= 0 && b.max_timestamp < now_ms.saturating_sub(retention_ms);
        let oversize = retention_bytes >= 0 && bytes > retention_bytes as u64;
        if !(expired || oversize) {
            break;
        }
        bytes -= u64::from(b.len);
        start = start.max(base + u64::from(b.records));
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_broker::entry::{LogEntry, TopicConfig};
    use floe_broker::segment::BatchMeta;
    use ulid::Ulid;

    #[allow(clippy::disallowed_methods)] // tests
    fn state_with(config: TopicConfig, batches: &[(u32, i64)]) -> State {
        let mut s = State::default();
        let create = Op::CreateTopic { name: "t".into(), partitions: 1, config };
        s.apply(1, &LogEntry::new(vec![create])).unwrap();
        for (i, (records, ts)) in batches.iter().enumerate() {
            let meta = BatchMeta {
                topic: "t".into(),
                partition: 0,
                pos: 8,
                len: 100,
                records: *records,
                max_timestamp: *ts,
                producer: None,
                topic_id: None,
            };
            s.apply(
                i as u64 + 2,
                &LogEntry::new(vec![Op::Append { segment: Ulid::new(), batches: vec![meta], flush: None }]),
            )
            .unwrap();
        }
        s
    }

    fn starts(ops: &[Op]) -> Vec<u64> {
        ops.iter()
            .map(|op| match op {
                Op::Truncate { log_start_offset, .. } => *log_start_offset,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn old_batches_go_young_ones_stay() {
        let s = state_with(TopicConfig { retention_ms: 1_000, retention_bytes: -1 }, &[(2, 100), (3, 500), (4, 5_000)]);
        assert_eq!(starts(&plan(&s, 2_000)), vec![5], "the first two are older than 1 s at t=2 s");
        assert!(plan(&s, 1_000).is_empty());
    }

    #[test]
    fn size_limit_drops_the_oldest_until_under() {
        let s = state_with(TopicConfig { retention_ms: -1, retention_bytes: 150 }, &[(1, 0), (1, 0), (1, 0)]);
        assert_eq!(starts(&plan(&s, 0)), vec![2], "300 bytes → keep one batch of 100");
    }

    #[test]
    fn unlimited_keeps_everything() {
        let s = state_with(TopicConfig { retention_ms: -1, retention_bytes: -1 }, &[(1, 0), (1, 0)]);
        assert!(plan(&s, i64::MAX).is_empty());
    }
}
