//! The consumers: one task per partition fetching until told to stop,
//! timing stamped records from their send time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::time::Instant;

use crate::clock::now_micros;
use crate::cluster::Cluster;
use crate::procs::Err;
use crate::progress::Progress;
use crate::report::histogram;

#[derive(Deserialize)]
struct FetchBody {
    records: Vec<FetchRecord>,
    next_offset: u64,
}

#[derive(Deserialize)]
struct FetchRecord {
    value: String,
}

/// When consumers stop: once `stop` is set and each partition has reached
/// its mark (if marks are set).
#[derive(Default)]
pub struct Until {
    pub stop: AtomicBool,
    pub marks: std::sync::Mutex<Option<Vec<u64>>>,
}

impl Until {
    /// Stop at the high watermarks the topic has now.
    pub async fn stop_at_watermarks(&self, cluster: &Cluster, topic: &str) {
        if let Ok(w) = cluster.watermarks(topic).await
            && let Ok(mut m) = self.marks.lock()
        {
            *m = Some(w.iter().map(|(_, hw)| *hw).collect());
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    fn done(&self, partition: usize, offset: u64) -> bool {
        if !self.stop.load(Ordering::Relaxed) {
            return false;
        }
        let mark = self.marks.lock().ok().and_then(|m| m.as_ref().and_then(|m| m.get(partition).copied()));
        mark.is_none_or(|t| offset >= t)
    }
}

/// What the consumers read.
pub struct Consumed {
    pub e2e: Histogram<u64>,
    pub records: u64,
    pub bytes: u64,
    pub fetches: u64,
    pub seconds: f64,
}

/// One consumer per partition reads from `from[p]` until `until` says so, or
/// `limit` passes. With `stamp`, records
/// are timed from the send time in their value.
pub async fn consume(
    cluster: &Cluster,
    topic: &str,
    from: Vec<u64>,
    until: Arc<Until>,
    stamp: bool,
    limit: Duration,
    progress: Arc<Progress>,
) -> Result<Consumed, Err> {
    let start = Instant::now();
    let hard_stop = start + limit;
    let mut tasks = Vec::new();
    for (p, offset) in from.into_iter().enumerate() {
        let (http, until, progress) = (cluster.http.clone(), until.clone(), progress.clone());
        let url = format!("{}/v1/topics/{topic}/partitions/{p}/records", cluster.url);
        tasks.push(tokio::spawn(async move {
            let mut offset = offset;
            let mut e2e = histogram();
            let (mut records, mut bytes, mut fetches, mut failures) = (0u64, 0u64, 0u64, 0u32);
            while Instant::now() < hard_stop {
                if until.done(p, offset) {
                    break;
                }
                let query = format!("?offset={offset}&max_records=10000&max_bytes=4194304&timeout_ms=500");
                let got = async {
                    let r = http.get(format!("{url}{query}")).send().await?.error_for_status()?;
                    r.json::<FetchBody>().await
                }
                .await;
                let body = match got {
                    Ok(b) => b,
                    Err(e) => {
                        failures += 1;
                        if failures > 20 {
                            return Err(format!("partition {p}: {e}"));
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                fetches += 1;
                let now = now_micros();
                for r in &body.records {
                    bytes += r.value.len() as u64;
                    if stamp && let Some(sent) = r.value.get(..16).and_then(|s| s.parse::<u64>().ok()) {
                        let _ = e2e.record(now.saturating_sub(sent).max(1));
                    }
                }
                records += body.records.len() as u64;
                let n: usize = body.records.iter().map(|r| r.value.len()).sum();
                progress.consumed_bytes.fetch_add(n as u64, Ordering::Relaxed);
                offset = body.next_offset;
            }
            Ok((e2e, records, bytes, fetches))
        }));
    }
    let mut out = Consumed { e2e: histogram(), records: 0, bytes: 0, fetches: 0, seconds: 0.0 };
    for t in tasks {
        let (e2e, records, bytes, fetches) = t.await??;
        out.e2e.add(&e2e).map_err(|e| format!("merging histograms: {e}"))?;
        out.records += records;
        out.bytes += bytes;
        out.fetches += fetches;
    }
    out.seconds = start.elapsed().as_secs_f64();
    Ok(out)
}
