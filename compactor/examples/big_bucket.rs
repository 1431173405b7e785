//! Builds a bucket with many committed batches, and a snapshot of it, for the
//! start-up measurement in docs/compactor.md:
//!
//!   cargo run --release -p floe-compactor --example big_bucket -- DIR 1000000
//!
//! 1,000 segments of `batches / 1000` one-record batches each, spread over 8
//! partitions of topic `big`, committed as 1,000 log entries; then one
//! compaction cycle writes the snapshot (merging is turned off so the
//! batches stay as committed).

#![allow(clippy::disallowed_methods)]

use std::sync::Arc;

use bytes::Bytes;
use floe_broker::entry::{Op, TopicConfig};
use floe_broker::segment::SegmentBuilder;
use floe_broker::{LogSettings, Record, keys};
use floe_compactor::{Compactor, CompactorSettings};
use object_store::ObjectStoreExt;
use ulid::Ulid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).ok_or("usage: big_bucket DIR BATCHES")?;
    let batches: u64 = args.get(2).map_or(Ok(1_000_000), |n| n.parse())?;
    let store = floe_broker::store::open(&format!("file://{dir}"))?;
    let (_, log) = floe_broker::open(store.clone(), LogSettings::default()).await?;
    let log = Arc::new(log);
    let unlimited = TopicConfig { retention_ms: -1, retention_bytes: -1 };
    log.commit(vec![Op::CreateTopic { name: "big".into(), partitions: 8, config: unlimited }]).await?;
    let segments = 1_000u64;
    let per_segment = batches / segments;
    for s in 0..segments {
        let mut b = SegmentBuilder::new();
        for i in 0..per_segment {
            let n = s * per_segment + i;
            let r = Record { key: None, value: Bytes::from(format!("record {n}")), timestamp: 0, headers: vec![] };
            b.add_batch("big", (i % 8) as u32, &[r])?;
        }
        let (bytes, metas) = b.finish()?;
        let id = Ulid::new();
        store.put(&keys::segment(id), bytes.into()).await?;
        log.commit(vec![Op::Append { segment: id, batches: metas, flush: None }]).await?;
    }
    let settings = CompactorSettings { merge_small_batch_bytes: 0, snapshot_every_entries: 1, ..Default::default() };
    let report = Compactor::new(log.clone(), settings).run_once().await?;
    println!("{} batches in {segments} segments; snapshot at {:?}", segments * per_segment, report.snapshot);
    Ok(())
}
