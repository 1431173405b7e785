//! The `produce` scenario: producers against one agent; throughput,
//! latency, store requests per GiB and agent CPU per GiB.

use std::sync::Arc;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::load::{Load, produce_load};
use crate::procs::Err;
use crate::progress::{Progress, ProgressLine};
use crate::report::{GIB, Latency, MIB, PerGib, Stats};

#[derive(Clone, Debug, Serialize)]
pub struct ProduceResult {
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
    /// Of the errors, 503 answers (buffers full).
    pub overloaded: u64,
    pub records: u64,
    pub payload_bytes: u64,
    pub mib_s: f64,
    pub requests_per_s: f64,
    pub latency: Latency,
    pub fixed_rate: bool,
    /// Bytes the agent wrote to segments (compressed) per second.
    pub segment_mib_s: f64,
    pub segment_puts: u64,
    pub mean_segment_bytes: u64,
    pub log_puts: u64,
    pub requests_per_gib: PerGib,
    pub agent_cpu_seconds: Option<f64>,
    pub agent_cpu_s_per_gib: Option<f64>,
    pub mib_s_per_cpu_s: Option<f64>,
    /// The share of the agent's CPU time spent compressing (0 to 1).
    pub agent_compression_share: Option<f64>,
    pub store: Stats,
    /// With a store outage: seconds from its end until the spool's oldest
    /// flush was younger than a second again.
    pub spool_drained_s: Option<f64>,
}

pub async fn produce(cluster: &Cluster, load: &Load, seed: u64) -> Result<(ProduceResult, Histogram<u64>), Err> {
    let topic = cluster.create_topic("produce", load.partitions).await?;
    let before = cluster.stats().await?;
    let cpu_before = cluster.cpu_seconds();
    let progress = Arc::new(Progress::default());
    // After an outage, the spool has caught up once its oldest flush is
    // younger than a second again (new flushes keep arriving meanwhile).
    let caught_up = async {
        match cluster.outage_end {
            Some(end) => {
                let limit = std::time::Duration::from_secs(600);
                let at = cluster.spool_caught_up(end, std::time::Duration::from_secs(1), limit).await?;
                Ok::<_, Err>(at.map(|at| at.saturating_duration_since(end).as_secs_f64()))
            }
            None => Ok(None),
        }
    };
    let (produced, spool_drained_s) = {
        let _line = ProgressLine::start("produce".into(), load.duration, progress.clone());
        tokio::join!(produce_load(cluster, &topic, load, false, seed, progress), caught_up)
    };
    let (produced, spool_drained_s) = (produced?, spool_drained_s?);
    let cpu = cluster.cpu_seconds().zip(cpu_before).map(|(a, b)| a - b);
    let store = cluster.stats().await?.since(&before);
    let gib = produced.bytes as f64 / GIB;
    let result = ProduceResult {
        seconds: produced.seconds,
        requests: produced.requests,
        errors: produced.errors,
        overloaded: produced.overloaded,
        records: produced.records,
        payload_bytes: produced.bytes,
        mib_s: produced.bytes as f64 / MIB / produced.seconds,
        requests_per_s: produced.requests as f64 / produced.seconds,
        latency: Latency::of(&produced.hist),
        fixed_rate: load.rate.is_some(),
        segment_mib_s: store.segments.put_bytes as f64 / MIB / produced.seconds,
        segment_puts: store.segments.put,
        mean_segment_bytes: store.segments.put_bytes / store.segments.put.max(1),
        log_puts: store.log.put,
        requests_per_gib: PerGib::of(&store.total(), produced.bytes),
        agent_cpu_seconds: cpu,
        agent_cpu_s_per_gib: cpu.filter(|_| gib > 0.0).map(|c| c / gib),
        mib_s_per_cpu_s: cpu.filter(|c| *c > 0.0).map(|c| produced.bytes as f64 / MIB / c),
        agent_compression_share: store
            .compression_cpu_us
            .zip(cpu.filter(|c| *c > 0.0))
            .map(|(us, c)| us as f64 / 1e6 / c),
        store,
        spool_drained_s,
    };
    Ok((result, produced.hist))
}
