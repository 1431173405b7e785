//! The `metadata` scenario: how many metadata (log) PUTs per second a cluster
//! of N agents makes under steady produce load, with and without the commit
//! lease. Each agent gets its own closed-loop producers; the figures come
//! from the agents' own store counters (`/v1/stats`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::procs::{Err, Procs};

#[derive(Clone, Debug)]
pub struct MetadataOptions {
    pub agents: usize,
    pub commit_lease: bool,
    pub duration: Duration,
    pub producers_per_agent: usize,
    pub flush_interval_ms: u64,
    pub group_commit_ms: u64,
    pub dir: std::path::PathBuf,
    pub bin_dir: std::path::PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct MetadataResult {
    pub agents: usize,
    pub commit_lease: bool,
    pub group_commit_ms: u64,
    pub seconds: f64,
    pub produce_requests: u64,
    /// Create-only PUTs on `log/` by all agents (won and lost races).
    pub log_puts: u64,
    /// Log entries committed.
    pub log_entries: u64,
    pub log_puts_per_s: f64,
    pub entries_per_s: f64,
    pub segment_puts_per_s: f64,
    pub requests_per_s: f64,
    /// Closed loop: producers / throughput.
    pub mean_latency_ms: f64,
}

pub async fn run(opts: &MetadataOptions) -> Result<MetadataResult, Err> {
    let env = vec![
        ("FLOE_FLUSH_INTERVAL_MS".to_owned(), opts.flush_interval_ms.to_string()),
        ("FLOE_COMMIT_LEASE".to_owned(), opts.commit_lease.to_string()),
        ("FLOE_GROUP_COMMIT_MS".to_owned(), opts.group_commit_ms.to_string()),
    ];
    let procs = Procs::new(opts.dir.clone(), opts.bin_dir.clone(), None, env);
    let mut agents = Vec::new();
    for _ in 0..opts.agents {
        agents.push(procs.spawn_agent().await?);
    }
    let urls: Vec<String> = agents.iter().map(|a| a.url.clone()).collect();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let created =
        http.post(format!("{}/v1/topics", urls[0])).json(&json!({"name": "meta", "partitions": 8})).send().await?;
    if !created.status().is_success() {
        return Err(format!("cannot create topic: {}", created.text().await?).into());
    }
    // Let every agent see the topic and, with the lease on, agree on a holder.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before = totals(&http, &urls).await?;
    let requests = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + opts.duration;
    let mut tasks = Vec::new();
    for (a, url) in urls.iter().enumerate() {
        for p in 0..opts.producers_per_agent {
            let (http, url, requests) = (http.clone(), url.clone(), requests.clone());
            let partition = (a * opts.producers_per_agent + p) % 8;
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let body = json!({"records": [{"value": "x".repeat(100), "partition": partition}]});
                    let ok = http
                        .post(format!("{url}/v1/topics/meta/records"))
                        .json(&body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if ok {
                        requests.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = totals(&http, &urls).await?;
    let log_puts = after.0 - before.0;
    let log_entries = after.1.saturating_sub(before.1);
    let segment_puts = after.2 - before.2;
    let produce_requests = requests.load(Ordering::Relaxed);
    for mut a in agents {
        let _ = a.child.kill().await;
    }
    Ok(MetadataResult {
        agents: opts.agents,
        commit_lease: opts.commit_lease,
        group_commit_ms: opts.group_commit_ms,
        seconds,
        produce_requests,
        log_puts,
        log_entries,
        log_puts_per_s: log_puts as f64 / seconds,
        entries_per_s: log_entries as f64 / seconds,
        segment_puts_per_s: segment_puts as f64 / seconds,
        requests_per_s: produce_requests as f64 / seconds,
        mean_latency_ms: (opts.agents * opts.producers_per_agent) as f64 * seconds * 1000.0
            / produce_requests.max(1) as f64,
    })
}

/// (log PUTs summed over agents, highest applied position, segment PUTs summed).
async fn totals(http: &reqwest::Client, urls: &[String]) -> Result<(u64, u64, u64), Err> {
    let (mut puts, mut applied, mut segments) = (0, 0, 0);
    for url in urls {
        let s: Value = http.get(format!("{url}/v1/stats")).send().await?.json().await?;
        puts += s["store"]["log"]["put"].as_u64().unwrap_or(0);
        segments += s["store"]["segments"]["put"].as_u64().unwrap_or(0);
        applied = applied.max(s["log"]["applied"].as_u64().unwrap_or(0));
    }
    Ok((puts, applied, segments))
}
