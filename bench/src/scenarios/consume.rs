//! The `consume` scenario: tail consumers beside the producers on the
//! writing agent, then a fresh agent (cold cache) catching up from the start.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

use crate::cluster::Cluster;
use crate::load::{Load, Until, consume, produce_load};
use crate::procs::{Compaction, Err};
use crate::progress::{Progress, ProgressLine};
use crate::report::{GIB, MIB, Stats, dollars};

#[derive(Clone, Debug, Serialize)]
pub struct ConsumeResult {
    /// Consumers following the producers on the writing agent.
    pub tail_mib_s: f64,
    pub tail_records: u64,
    pub tail_produced_records: u64,
    /// All GETs on the writing agent (log polling included) per GiB read.
    pub tail_get_per_gib: f64,
    /// Segment GETs on the writing agent per GiB read (the cache should make this 0).
    pub tail_segment_get_per_gib: f64,
    pub tail_store: Stats,
    /// A fresh agent (cold cache) reading everything from the start.
    pub catchup_mib_s: f64,
    pub catchup_bytes: u64,
    pub catchup_get_per_gib: f64,
    pub catchup_dollars_per_gib: f64,
    pub catchup_store: Stats,
    pub catchup_agent_cpu_s_per_gib: Option<f64>,
    /// What compacting the bucket before the catch-up did (`--compact-first`).
    pub compaction: Option<Compaction>,
}

/// With `compact_first`, the bucket is compacted until its compactor has
/// nothing left to merge before the fresh agent starts.
pub async fn consume_scenario(
    cluster: &Cluster,
    load: &Load,
    seed: u64,
    compact_first: bool,
) -> Result<ConsumeResult, Err> {
    let topic = cluster.create_topic("consume", load.partitions).await?;
    let before = cluster.stats().await?;
    let progress = Arc::new(Progress::default());
    let until = Arc::new(Until::default());
    let from = vec![0; load.partitions as usize];
    let (produced, tail) = {
        let _line = ProgressLine::start("consume (tail)".into(), load.duration, progress.clone());
        let consumers = consume(
            cluster,
            &topic,
            from,
            until.clone(),
            false,
            load.duration + Duration::from_secs(30),
            progress.clone(),
        );
        let producers = async {
            let p = produce_load(cluster, &topic, load, false, seed, progress.clone()).await;
            until.stop_at_watermarks(cluster, &topic).await;
            p
        };
        let (p, c) = tokio::join!(producers, consumers);
        (p?, c?)
    };
    let tail_store = cluster.stats().await?.since(&before);

    let compaction = if compact_first { Some(cluster.compact_until_idle().await?) } else { None };

    // Catch-up: a fresh agent reads the whole topic.
    let reader = cluster.fresh_reader().await?;
    let marks = reader.watermarks(&topic).await?;
    let before = reader.stats().await?;
    let cpu_before = reader.cpu_seconds();
    let progress = Arc::new(Progress::default());
    let catchup = {
        let _line = ProgressLine::start("consume (catch-up)".into(), Duration::from_secs(10), progress.clone());
        let until = Arc::new(Until {
            stop: AtomicBool::new(true),
            marks: std::sync::Mutex::new(Some(marks.iter().map(|(_, hw)| *hw).collect())),
        });
        let from = marks.iter().map(|(lso, _)| *lso).collect();
        consume(&reader, &topic, from, until, false, Duration::from_secs(120), progress).await?
    };
    let catchup_store = reader.stats().await?.since(&before);
    let cpu = reader.cpu_seconds().zip(cpu_before).map(|(a, b)| a - b);
    // Stops the fresh agent; with a target, the reader is the target and stop does nothing.
    reader.stop().await;
    let read_gib = (catchup.bytes as f64 / GIB).max(f64::MIN_POSITIVE);
    Ok(ConsumeResult {
        tail_mib_s: tail.bytes as f64 / MIB / produced.seconds.max(0.001),
        tail_records: tail.records,
        tail_produced_records: produced.records,
        tail_get_per_gib: tail_store.total().get as f64 / (tail.bytes as f64 / GIB).max(f64::MIN_POSITIVE),
        tail_segment_get_per_gib: tail_store.segments.get as f64 / (tail.bytes as f64 / GIB).max(f64::MIN_POSITIVE),
        tail_store,
        catchup_mib_s: catchup.bytes as f64 / MIB / catchup.seconds.max(0.001),
        catchup_bytes: catchup.bytes,
        catchup_get_per_gib: catchup_store.total().get as f64 / read_gib,
        catchup_dollars_per_gib: dollars(&catchup_store.total()) / read_gib,
        catchup_store,
        catchup_agent_cpu_s_per_gib: cpu.map(|c| c / read_gib),
        compaction,
    })
}
