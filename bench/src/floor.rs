//! The floor: what the raw store does without Floe in the way. PUT,
//! create-only PUT and ranged GET throughput and latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use floe_broker::latency::{LatencyStore, Profile};
use futures::StreamExt;
use hdrhistogram::Histogram;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::time::Instant;

use crate::clock::now_micros;
use crate::load::random_text;
use crate::procs::Err;
use crate::report::{Latency, MIB, histogram};

#[derive(Clone, Debug, Serialize)]
pub struct FloorResult {
    pub object_bytes: u64,
    pub concurrency: usize,
    pub put_mib_s: f64,
    pub put: Latency,
    pub conditional_put: Latency,
    pub get_mib_s: f64,
    pub get: Latency,
}

/// Raw PUT, create-only PUT (small, like a log entry) and ranged GET of
/// `object_bytes` objects on `store_url` with `profile`, `concurrency` at a
/// time, each for `duration`.
pub async fn floor(
    store_url: &str,
    profile: Profile,
    seed: u64,
    object_bytes: u64,
    concurrency: usize,
    duration: Duration,
) -> Result<FloorResult, Err> {
    let store = LatencyStore::wrap(floe_broker::store::open(store_url)?, profile, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let payload = Bytes::from(random_text(&mut rng, object_bytes.max(1) as usize).into_bytes());
    let run = now_micros();
    let counter = Arc::new(AtomicU64::new(0));

    // PUT
    let (put_hist, put_n, put_s) = timed(concurrency, duration, {
        let (store, counter) = (store.clone(), counter.clone());
        move || {
            let (store, payload, counter) = (store.clone(), payload.clone(), counter.clone());
            async move {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let key = Path::from(format!("floor/{run}/{i}.obj"));
                store.put(&key, PutPayload::from(payload)).await.map(|_| ())
            }
        }
    })
    .await?;
    let written = counter.load(Ordering::Relaxed).max(1);

    // Conditional (create-only) PUT of a small object, like a log entry.
    let entry = Bytes::from(random_text(&mut rng, 512).into_bytes());
    let cond_counter = Arc::new(AtomicU64::new(0));
    let (cond_hist, _, _) = timed(1, duration.min(Duration::from_secs(3)), {
        let (store, counter) = (store.clone(), cond_counter.clone());
        move || {
            let (store, entry, counter) = (store.clone(), entry.clone(), counter.clone());
            async move {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let key = Path::from(format!("floor/{run}/log/{i:020}"));
                store.put_opts(&key, PutPayload::from(entry), PutMode::Create.into()).await.map(|_| ())
            }
        }
    })
    .await?;

    // Ranged GET of the whole object (the read path's GETs are ranged).
    let get_counter = Arc::new(AtomicU64::new(0));
    let (get_hist, get_n, get_s) = timed(concurrency, duration, {
        let (store, counter) = (store.clone(), get_counter.clone());
        move || {
            let (store, counter) = (store.clone(), counter.clone());
            async move {
                let i = counter.fetch_add(1, Ordering::Relaxed) % written;
                let key = Path::from(format!("floor/{run}/{i}.obj"));
                store.get_range(&key, 0..object_bytes).await.map(|_| ())
            }
        }
    })
    .await?;

    // Leave the store as the agent found it.
    let prefix = Path::from(format!("floor/{run}"));
    let keys = store.list(Some(&prefix)).map(|m| m.map(|m| m.location)).boxed();
    let _ = store.delete_stream(keys).collect::<Vec<_>>().await;

    Ok(FloorResult {
        object_bytes,
        concurrency,
        put_mib_s: put_n as f64 * object_bytes as f64 / MIB / put_s,
        put: Latency::of(&put_hist),
        conditional_put: Latency::of(&cond_hist),
        get_mib_s: get_n as f64 * object_bytes as f64 / MIB / get_s,
        get: Latency::of(&get_hist),
    })
}

/// The object sizes to measure: those asked for; by default 8 MiB, and the
/// agent's mean segment size first when a produce run measured one.
pub fn sizes(asked: &[u64], mean_segment_bytes: Option<u64>) -> Vec<u64> {
    if !asked.is_empty() {
        return asked.to_vec();
    }
    let segment = mean_segment_bytes.filter(|&b| b > 0 && b != DEFAULT_BYTES);
    segment.into_iter().chain([DEFAULT_BYTES]).collect()
}

/// The default floor object size: a full segment at the default `--flush-bytes`.
const DEFAULT_BYTES: u64 = 8 * 1024 * 1024;

/// Runs `op` in `concurrency` closed loops for `duration`: (latencies, count, seconds).
async fn timed<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Result<(Histogram<u64>, u64, f64), Err>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = object_store::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut n = 0u64;
            // At least one operation each, however short the duration.
            while n == 0 || Instant::now() < deadline {
                let t = Instant::now();
                op().await?;
                let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                n += 1;
            }
            Ok::<_, object_store::Error>((hist, n))
        }));
    }
    let mut hist = histogram();
    let mut n = 0;
    for t in tasks {
        let (h, k) = t.await??;
        hist.add(&h).map_err(|e| format!("merging histograms: {e}"))?;
        n += k;
    }
    Ok((hist, n, start.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_default_to_8_mib_and_the_segment_size() {
        assert_eq!(sizes(&[65536], Some(1000)), [65536]);
        assert_eq!(sizes(&[], None), [DEFAULT_BYTES]);
        assert_eq!(sizes(&[], Some(0)), [DEFAULT_BYTES]);
        assert_eq!(sizes(&[], Some(DEFAULT_BYTES)), [DEFAULT_BYTES]);
        assert_eq!(sizes(&[], Some(1000)), [1000, DEFAULT_BYTES]);
    }

    #[tokio::test]
    async fn floor_measures_a_local_directory() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let r = floor(&url, Profile::None, 1, 64 * 1024, 2, Duration::from_millis(200)).await.unwrap();
        assert!(r.put.count > 0 && r.get.count > 0 && r.conditional_put.count > 0);
        assert!(r.put_mib_s > 0.0 && r.get_mib_s > 0.0);
        // The floor cleans up after itself.
        let left: Vec<_> = floe_broker::store::open(&url).unwrap().list(None).collect().await;
        assert!(left.is_empty(), "{} objects left", left.len());
    }
}
