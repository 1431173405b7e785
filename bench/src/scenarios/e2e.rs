//! The `e2e` scenario: produce to consume latency, from send times written
//! into the records.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::load::{Load, Until, consume, produce_load};
use crate::procs::Err;
use crate::progress::{Progress, ProgressLine};
use crate::report::Latency;

#[derive(Clone, Debug, Serialize)]
pub struct E2eResult {
    pub rate: Option<f64>,
    pub produced_records: u64,
    pub consumed_records: u64,
    pub produce: Latency,
    pub e2e: Latency,
}

pub async fn e2e(
    cluster: &Cluster,
    load: &Load,
    seed: u64,
) -> Result<(E2eResult, Histogram<u64>, Histogram<u64>), Err> {
    if load.record_bytes < 16 {
        return Err("e2e needs records of at least 16 bytes (the send time is written in the value)".into());
    }
    let topic = cluster.create_topic("e2e", load.partitions).await?;
    let marks = cluster.watermarks(&topic).await?;
    let progress = Arc::new(Progress::default());
    let until = Arc::new(Until::default());
    let (produced, consumed) = {
        let _line = ProgressLine::start("e2e".into(), load.duration, progress.clone());
        let consumers = consume(
            cluster,
            &topic,
            marks.iter().map(|(_, hw)| *hw).collect(),
            until.clone(),
            true,
            load.duration + Duration::from_secs(30),
            progress.clone(),
        );
        let producers = async {
            let p = produce_load(cluster, &topic, load, true, seed, progress.clone()).await;
            until.stop_at_watermarks(cluster, &topic).await;
            p
        };
        let (p, c) = tokio::join!(producers, consumers);
        (p?, c?)
    };
    let result = E2eResult {
        rate: load.rate,
        produced_records: produced.records,
        consumed_records: consumed.records,
        produce: Latency::of(&produced.hist),
        e2e: Latency::of(&consumed.e2e),
    };
    Ok((result, produced.hist, consumed.e2e))
}
