#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! Helpers shared by the broker's integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use floe_broker::Record;
use floe_broker::entry::Op;
use floe_broker::segment::SegmentBuilder;
use ulid::Ulid;

pub fn record(i: u64) -> Record {
    Record {
        key: Some(Bytes::from(format!("key-{}", i % 7))),
        value: Bytes::from(format!("value-{i}")),
        timestamp: 1_700_000_000_000 + i as i64,
        headers: vec![("n".to_owned(), Bytes::from(i.to_string()))],
    }
}

/// An append op for `count` records on `topic`/`partition`, as if a segment with them had been uploaded.
pub fn append(topic: &str, partition: u32, count: u64) -> Op {
    let records: Vec<Record> = (0..count).map(record).collect();
    let mut b = SegmentBuilder::new();
    b.add_batch(topic, partition, &records).unwrap();
    let (_, batches) = b.finish().unwrap();
    Op::Append { segment: Ulid::new(), batches, flush: None }
}

pub fn create_topic(name: &str, partitions: u32) -> Op {
    Op::CreateTopic { name: name.to_owned(), partitions, config: Default::default() }
}
