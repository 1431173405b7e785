//! The `memory` scenario: producers against one agent while its resident
//! set is sampled, then an idle spell: the agent's peak and idle RSS against
//! the bound its settings promise (write buffer + read cache + 128 MiB), and
//! the object-store GETs an idle agent makes per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::load::{Load, produce_load};
use crate::procs::Err;
use crate::progress::{Progress, ProgressLine};
use crate::report::{MIB, Stats};

/// What the settings allow beyond the budgets: the program, the runtime,
/// segments being encoded and uploaded, fetch answers.
pub const SLACK_BYTES: u64 = 128 << 20;

#[derive(Clone, Debug, Serialize)]
pub struct MemoryResult {
    pub producers: usize,
    pub request_bytes: u64,
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub mib_s: f64,
    /// The agent's `VmHWM` after the load.
    pub rss_peak_bytes: u64,
    /// The largest `VmRSS` sampled every 100 ms during the load.
    pub rss_sampled_max_bytes: u64,
    /// The largest of jemalloc's allocated bytes sampled (0 with another allocator).
    pub allocated_sampled_max_bytes: u64,
    /// The largest of jemalloc's resident bytes sampled.
    pub allocator_resident_sampled_max_bytes: u64,
    /// The largest sum of the budgets' held bytes sampled.
    pub held_sampled_max_bytes: u64,
    /// `VmRSS` after the idle spell.
    pub rss_idle_bytes: u64,
    /// Write buffer + batch cache + chunk cache budgets + `SLACK_BYTES`.
    pub bound_bytes: u64,
    pub idle_seconds: f64,
    /// Every object-store GET over the idle spell, per second.
    pub idle_get_per_s: f64,
}

fn memory(v: &Value) -> (u64, u64, u64) {
    let m = &v["memory"];
    let budgets: u64 =
        ["write_buffer", "batch_cache", "chunk_cache"].iter().filter_map(|b| m[b]["budget_bytes"].as_u64()).sum();
    (m["rss_bytes"].as_u64().unwrap_or(0), m["peak_rss_bytes"].as_u64().unwrap_or(0), budgets)
}

async fn stats_json(cluster: &Cluster) -> Result<Value, Err> {
    Ok(cluster.http.get(format!("{}/v1/stats", cluster.url)).send().await?.error_for_status()?.json().await?)
}

/// The largest of each figure the sampler reads.
#[derive(Default)]
struct Sampled {
    rss: AtomicU64,
    allocated: AtomicU64,
    allocator_resident: AtomicU64,
    /// The four budgets' use, summed.
    held: AtomicU64,
}

impl Sampled {
    fn take(&self, v: &Value) {
        let m = &v["memory"];
        let held = ["write_buffer", "batch_cache", "chunk_cache", "request_bodies"]
            .iter()
            .filter_map(|b| m[b]["held_bytes"].as_u64())
            .sum();
        let allocator = |f: &str| m["allocator"][f].as_u64().unwrap_or(0);
        self.rss.fetch_max(memory(v).0, Ordering::Relaxed);
        self.allocated.fetch_max(allocator("allocated_bytes"), Ordering::Relaxed);
        self.allocator_resident.fetch_max(allocator("resident_bytes"), Ordering::Relaxed);
        self.held.fetch_max(held, Ordering::Relaxed);
    }
}

pub async fn memory_scenario(cluster: &Cluster, load: &Load, idle: Duration, seed: u64) -> Result<MemoryResult, Err> {
    let topic = cluster.create_topic("memory", load.partitions).await?;
    let sampled = Arc::new(Sampled::default());
    let sampler = {
        let (http, url, sampled) = (cluster.http.clone(), cluster.url.clone(), sampled.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(r) = http.get(format!("{url}/v1/stats")).send().await
                    && let Ok(v) = r.json::<Value>().await
                {
                    sampled.take(&v);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let progress = Arc::new(Progress::default());
    let produced = {
        let _line = ProgressLine::start("memory".into(), load.duration, progress.clone());
        produce_load(cluster, &topic, load, false, seed, progress).await
    };
    sampler.abort();
    let produced = produced?;
    let (_, peak, budgets) = memory(&stats_json(cluster).await?);
    // Let the last flushes settle before the idle window is counted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = Stats::from_json(&stats_json(cluster).await?);
    let started = std::time::Instant::now();
    tokio::time::sleep(idle).await;
    let after_json = stats_json(cluster).await?;
    let idle_seconds = started.elapsed().as_secs_f64();
    let gets = Stats::from_json(&after_json).since(&before).total().get;
    let request_bytes = (load.records_per_request * load.record_bytes) as u64;
    Ok(MemoryResult {
        producers: load.producers,
        request_bytes,
        seconds: produced.seconds,
        requests: produced.requests,
        errors: produced.errors,
        mib_s: produced.bytes as f64 / MIB / produced.seconds,
        rss_peak_bytes: peak,
        rss_sampled_max_bytes: sampled.rss.load(Ordering::Relaxed),
        allocated_sampled_max_bytes: sampled.allocated.load(Ordering::Relaxed),
        allocator_resident_sampled_max_bytes: sampled.allocator_resident.load(Ordering::Relaxed),
        held_sampled_max_bytes: sampled.held.load(Ordering::Relaxed),
        rss_idle_bytes: memory(&after_json).0,
        bound_bytes: budgets + SLACK_BYTES,
        idle_seconds,
        idle_get_per_s: gets as f64 / idle_seconds,
    })
}

/// The result as text.
pub fn text(r: &MemoryResult) -> String {
    let mib = |b: u64| b as f64 / MIB;
    format!(
        "memory: {} producers x {:.1} MiB requests for {:.0} s: {} requests ({} errors), {:.1} MiB/s\n  \
         RSS peak {:.0} MiB (sampled max {:.0} MiB), idle {:.0} MiB; bound {:.0} MiB (buffer + cache + {:.0} MiB): \
         peak/bound {:.2}\n  sampled maxima: budgets held {:.0} MiB, allocated {:.0} MiB, allocator resident {:.0} MiB\n  \
         idle: {:.2} GETs per second over {:.0} s\n",
        r.producers,
        mib(r.request_bytes),
        r.seconds,
        r.requests,
        r.errors,
        r.mib_s,
        mib(r.rss_peak_bytes),
        mib(r.rss_sampled_max_bytes),
        mib(r.rss_idle_bytes),
        mib(r.bound_bytes),
        mib(SLACK_BYTES),
        r.rss_peak_bytes as f64 / r.bound_bytes.max(1) as f64,
        mib(r.held_sampled_max_bytes),
        mib(r.allocated_sampled_max_bytes),
        mib(r.allocator_resident_sampled_max_bytes),
        r.idle_get_per_s,
        r.idle_seconds,
    )
}
