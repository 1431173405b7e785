//! The producers: `load.producers` tasks sending produce requests in a
//! closed loop or at a fixed rate, timing each.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::{Bodies, Load, Schedule};
use crate::cluster::Cluster;
use crate::procs::Err;
use crate::progress::Progress;
use crate::report::histogram;

/// What the producers did.
pub struct Produced {
    pub hist: Histogram<u64>,
    pub requests: u64,
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Of the errors, 503 answers (the agent's buffers full).
    pub overloaded: u64,
    pub seconds: f64,
}

/// Runs the producers for `load.duration`.
pub async fn produce_load(
    cluster: &Cluster,
    topic: &str,
    load: &Load,
    stamp: bool,
    seed: u64,
    progress: Arc<Progress>,
) -> Result<Produced, Err> {
    let start = Instant::now();
    let deadline = start + load.duration;
    let interval = load.rate.map(|r| Duration::from_secs_f64(load.producers as f64 / r.max(0.001)));
    let url = format!("{}/v1/topics/{topic}/records", cluster.url);
    let mut tasks = Vec::new();
    for p in 0..load.producers {
        let (http, url, load, progress) = (cluster.http.clone(), url.clone(), load.clone(), progress.clone());
        // Spread the producers' first requests over one interval.
        let offset = interval.map_or(Duration::ZERO, |i| i.mul_f64(p as f64 / load.producers as f64));
        tasks.push(tokio::spawn(async move {
            let mut bodies = Bodies::new(&load, seed.wrapping_add(p as u64));
            let mut schedule = Schedule::new(start + offset, interval);
            let mut hist = histogram();
            let (mut requests, mut errors, mut overloaded) = (0u64, 0u64, 0u64);
            // Fixed rate: each request is its own task (open loop), at most
            // MAX_IN_FLIGHT per producer; waiting for a slot is charged to
            // the request's latency, which runs from its due time.
            let mut in_flight = tokio::task::JoinSet::new();
            let mut tally = |outcome: Option<Result<(Answer, u64), tokio::task::JoinError>>| match outcome {
                Some(Ok((Answer::Ok, us))) => {
                    let _ = hist.record(us);
                    requests += 1;
                    progress
                        .produced_bytes
                        .fetch_add((load.record_bytes * load.records_per_request) as u64, Ordering::Relaxed);
                }
                Some(other) => {
                    overloaded += u64::from(matches!(other, Ok((Answer::Overloaded, _))));
                    errors += 1;
                    progress.errors.fetch_add(1, Ordering::Relaxed);
                }
                None => {}
            };
            loop {
                let due = schedule.next_due(Instant::now());
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due).await;
                let send = send_one(http.clone(), url.clone(), bodies.next(stamp), due, interval.is_none());
                if interval.is_some() {
                    while in_flight.len() >= MAX_IN_FLIGHT {
                        tally(in_flight.join_next().await);
                    }
                    in_flight.spawn(send);
                    while let Some(done) = in_flight.try_join_next() {
                        tally(Some(done));
                    }
                } else {
                    tally(Some(Ok(send.await)));
                }
            }
            while let Some(done) = in_flight.join_next().await {
                tally(Some(done));
            }
            (hist, requests, errors, overloaded)
        }));
    }
    let mut out =
        Produced { hist: histogram(), requests: 0, records: 0, bytes: 0, errors: 0, overloaded: 0, seconds: 0.0 };
    for t in tasks {
        let (hist, requests, errors, overloaded) = t.await?;
        out.overloaded += overloaded;
        out.hist.add(&hist).map_err(|e| format!("merging histograms: {e}"))?;
        out.requests += requests;
        out.errors += errors;
    }
    out.seconds = start.elapsed().as_secs_f64();
    out.records = out.requests * load.records_per_request as u64;
    out.bytes = out.records * load.record_bytes as u64;
    Ok(out)
}

/// Produce requests in flight per producer at a fixed rate.
const MAX_IN_FLIGHT: usize = 64;

/// How a produce request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Ok,
    /// 503: the agent's buffers are full.
    Overloaded,
    /// Any other error, or no answer (the client's 30 s timeout).
    Failed,
}

/// Sends one produce request: how it was answered, and microseconds since `due`.
async fn send_one(http: reqwest::Client, url: String, body: Bytes, due: Instant, back_off: bool) -> (Answer, u64) {
    let sent = http.post(&url).header("content-type", "application/json").body(body).send().await;
    let ok = match sent {
        Ok(r) if r.status().is_success() => {
            if r.bytes().await.is_ok() {
                Answer::Ok
            } else {
                Answer::Failed
            }
        }
        Ok(r) => {
            let overloaded = r.status().as_u16() == 503;
            let _ = r.bytes().await;
            if overloaded && back_off {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if overloaded { Answer::Overloaded } else { Answer::Failed }
        }
        Err(_) => Answer::Failed,
    };
    (ok, due.elapsed().as_micros().max(1) as u64)
}
