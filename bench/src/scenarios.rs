//! The benchmark scenarios: `floor` (the raw store), `produce`, `consume`
//! (tail and catch-up) and `e2e` (produce to consume latency). Each runs
//! against an agent it starts on a temporary local store (with a latency
//! profile) or against `--target`.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use floe_broker::latency::{LatencyStore, Profile};
use futures::StreamExt;
use hdrhistogram::Histogram;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::procs::{AgentProcess, Err, Procs};
use crate::report::{GIB, Latency, MIB, PerGib, Stats, histogram};

/// Where and how the agent runs.
#[derive(Clone, Debug)]
pub struct Setup {
    /// A running agent to measure instead of starting one.
    pub target: Option<String>,
    pub dir: PathBuf,
    pub bin_dir: PathBuf,
    /// The store of the agent we start (`s3://…` with the usual `AWS_*`
    /// variables); `None`: a temporary local directory.
    pub store: Option<String>,
    pub profile: Profile,
    pub flush_interval_ms: u64,
    pub flush_bytes: u64,
    pub seed: u64,
}

/// The agent under test: one we started (with its pid for CPU time) or a target.
pub struct Cluster {
    pub url: String,
    procs: Option<Procs>,
    agent: Option<AgentProcess>,
    pub http: reqwest::Client,
}

impl Cluster {
    pub async fn start(setup: &Setup) -> Result<Self, Err> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(256).build()?;
        if let Some(url) = &setup.target {
            return Ok(Self { url: url.trim_end_matches('/').to_owned(), procs: None, agent: None, http });
        }
        let env = vec![
            ("FLOE_STORE_PROFILE".to_owned(), setup.profile.name().to_owned()),
            ("FLOE_STORE_PROFILE_SEED".to_owned(), setup.seed.to_string()),
            ("FLOE_FLUSH_INTERVAL_MS".to_owned(), setup.flush_interval_ms.to_string()),
            ("FLOE_FLUSH_BYTES".to_owned(), setup.flush_bytes.to_string()),
        ];
        let procs = Procs::new(setup.dir.clone(), setup.bin_dir.clone(), setup.store.clone(), env);
        let agent = procs.spawn_agent().await?;
        Ok(Self { url: agent.url.clone(), procs: Some(procs), agent: Some(agent), http })
    }

    /// The store the agent uses, when we started it.
    pub fn store_url(&self) -> Option<String> {
        self.procs.as_ref().map(Procs::store_url)
    }

    /// CPU seconds used so far by the agent we started.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.agent.as_ref().and_then(|a| a.child.id()).and_then(crate::report::cpu_seconds)
    }

    /// A second agent on the same store with a cold cache (catch-up reads);
    /// with a target, the target itself.
    pub async fn fresh_reader(&self) -> Result<Cluster, Err> {
        match &self.procs {
            None => Ok(Cluster { url: self.url.clone(), procs: None, agent: None, http: self.http.clone() }),
            Some(procs) => {
                let agent = procs.spawn_agent().await?;
                Ok(Cluster { url: agent.url.clone(), procs: None, agent: Some(agent), http: self.http.clone() })
            }
        }
    }

    pub async fn stats(&self) -> Result<Stats, Err> {
        Stats::fetch(&self.http, &self.url).await
    }

    /// Creates a fresh topic and returns its name.
    pub async fn create_topic(&self, prefix: &str, partitions: u32) -> Result<String, Err> {
        let name = format!("{prefix}-{}", now_micros());
        let resp = self
            .http
            .post(format!("{}/v1/topics", self.url))
            .json(&serde_json::json!({"name": name, "partitions": partitions}))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(format!("cannot create topic {name}: {}", resp.text().await?).into());
        }
        Ok(name)
    }

    /// (log start offset, high watermark) of each partition.
    pub async fn watermarks(&self, topic: &str) -> Result<Vec<(u64, u64)>, Err> {
        let v: Value =
            self.http.get(format!("{}/v1/topics/{topic}", self.url)).send().await?.error_for_status()?.json().await?;
        let parts = v["partitions"].as_array().ok_or("topic has no partitions")?;
        Ok(parts
            .iter()
            .map(|p| (p["log_start_offset"].as_u64().unwrap_or(0), p["high_watermark"].as_u64().unwrap_or(0)))
            .collect())
    }

    pub async fn stop(mut self) {
        if let Some(a) = self.agent.as_mut() {
            let _ = a.child.kill().await;
        }
    }
}

pub fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// How records are keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// No key: the agent's sticky round-robin partitioner.
    None,
    /// A key drawn uniformly from this many.
    Uniform(u64),
}

impl FromStr for Keys {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "none" => Ok(Keys::None),
            Some(("uniform", n)) => n.parse().map(Keys::Uniform).map_err(|e| format!("uniform:N: {e}")),
            _ => Err(format!("unknown key distribution {s:?}; expected none or uniform:N")),
        }
    }
}

/// The produce load.
#[derive(Clone, Debug)]
pub struct Load {
    pub producers: usize,
    pub record_bytes: usize,
    pub records_per_request: usize,
    pub partitions: u32,
    pub keys: Keys,
    /// Target produce requests per second over all producers; `None`: as fast
    /// as each producer's previous answer allows (closed loop).
    pub rate: Option<f64>,
    pub duration: Duration,
}

/// Fixed-rate schedule: request `i` is due at `start + i * interval` however
/// long earlier requests took, so a stall is charged to every request it
/// delayed (coordinated-omission correction: latency runs from the due time).
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    start: Instant,
    interval: Option<Duration>,
    sent: u64,
}

impl Schedule {
    pub fn new(start: Instant, interval: Option<Duration>) -> Self {
        Self { start, interval, sent: 0 }
    }

    /// When the next request is due (`now` in a closed loop).
    pub fn next_due(&mut self, now: Instant) -> Instant {
        let due = match self.interval {
            Some(i) => self.start + i.mul_f64(self.sent as f64),
            None => now,
        };
        self.sent += 1;
        due
    }
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Random alphanumeric text (compresses roughly as much as base64 data does).
fn random_text(rng: &mut impl Rng, n: usize) -> String {
    (0..n).map(|_| ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())] as char).collect()
}

/// Builds produce bodies of fresh random alphanumeric values (about 6 bits
/// of entropy per byte, so zstd cannot shrink them by repetition). With
/// `stamp`, each value starts with the send time in microseconds (16
/// digits), for end-to-end latency.
struct Bodies {
    load: Load,
    rng: StdRng,
    raw: Vec<u8>,
}

impl Bodies {
    fn new(load: &Load, seed: u64) -> Self {
        Self { load: load.clone(), rng: StdRng::seed_from_u64(seed), raw: vec![0; load.record_bytes] }
    }

    fn next(&mut self, stamp: bool) -> Bytes {
        let n = self.load.record_bytes;
        let mut body = Vec::with_capacity((n + 40) * self.load.records_per_request + 16);
        body.extend_from_slice(b"{\"records\":[");
        let sent = now_micros();
        for i in 0..self.load.records_per_request {
            if i > 0 {
                body.push(b',');
            }
            body.push(b'{');
            if let Keys::Uniform(k) = self.load.keys {
                body.extend_from_slice(format!("\"key\":\"k{}\",", self.rng.random_range(0..k.max(1))).as_bytes());
            }
            body.extend_from_slice(b"\"value\":\"");
            self.rng.fill_bytes(&mut self.raw);
            let mut value: Vec<u8> = self.raw.iter().map(|b| ALPHANUMERIC[*b as usize % ALPHANUMERIC.len()]).collect();
            if stamp && n >= 16 {
                value[..16].copy_from_slice(format!("{sent:016}").as_bytes());
            }
            body.extend_from_slice(&value);
            body.extend_from_slice(b"\"}");
        }
        body.extend_from_slice(b"]}");
        Bytes::from(body)
    }
}

/// What the producers did.
pub struct Produced {
    pub hist: Histogram<u64>,
    pub requests: u64,
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    pub seconds: f64,
}

/// Progress counters shared by the load tasks, printed once a second.
#[derive(Default)]
pub struct Progress {
    pub produced_bytes: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub errors: AtomicU64,
}

/// Prints a progress line to stderr every second until dropped.
pub struct ProgressLine(tokio::task::JoinHandle<()>);

impl ProgressLine {
    pub fn start(label: String, total: Duration, progress: Arc<Progress>) -> Self {
        let start = Instant::now();
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let t = start.elapsed().as_secs_f64();
                let done = (t / total.as_secs_f64().max(0.001)).min(1.0);
                let bar = "#".repeat((done * 20.0) as usize);
                eprint!(
                    "\r{label} [{bar:<20}] {t:>4.0}s  produced {:>8.1} MiB  consumed {:>8.1} MiB  errors {}   ",
                    progress.produced_bytes.load(Ordering::Relaxed) as f64 / MIB,
                    progress.consumed_bytes.load(Ordering::Relaxed) as f64 / MIB,
                    progress.errors.load(Ordering::Relaxed)
                );
            }
        }))
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.0.abort();
        eprintln!();
    }
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
            let (mut requests, mut errors) = (0u64, 0u64);
            // Fixed rate: each request is its own task (open loop), at most
            // MAX_IN_FLIGHT per producer; waiting for a slot is charged to
            // the request's latency, which runs from its due time.
            let mut in_flight = tokio::task::JoinSet::new();
            let mut tally = |outcome: Option<Result<(bool, u64), tokio::task::JoinError>>| match outcome {
                Some(Ok((true, us))) => {
                    let _ = hist.record(us);
                    requests += 1;
                    progress
                        .produced_bytes
                        .fetch_add((load.record_bytes * load.records_per_request) as u64, Ordering::Relaxed);
                }
                Some(_) => {
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
            (hist, requests, errors)
        }));
    }
    let mut out = Produced { hist: histogram(), requests: 0, records: 0, bytes: 0, errors: 0, seconds: 0.0 };
    for t in tasks {
        let (hist, requests, errors) = t.await?;
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

/// Sends one produce request: (acknowledged, microseconds since `due`).
async fn send_one(http: reqwest::Client, url: String, body: Bytes, due: Instant, back_off: bool) -> (bool, u64) {
    let sent = http.post(&url).header("content-type", "application/json").body(body).send().await;
    let ok = match sent {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        Ok(r) => {
            let overloaded = r.status().as_u16() == 503;
            let _ = r.bytes().await;
            if overloaded && back_off {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
        Err(_) => false,
    };
    (ok, due.elapsed().as_micros().max(1) as u64)
}

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

// ---------------------------------------------------------------- floor

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

// ---------------------------------------------------------------- produce

#[derive(Clone, Debug, Serialize)]
pub struct ProduceResult {
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
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
    pub store: Stats,
}

pub async fn produce(cluster: &Cluster, load: &Load, seed: u64) -> Result<(ProduceResult, Histogram<u64>), Err> {
    let topic = cluster.create_topic("produce", load.partitions).await?;
    let before = cluster.stats().await?;
    let cpu_before = cluster.cpu_seconds();
    let progress = Arc::new(Progress::default());
    let produced = {
        let _line = ProgressLine::start("produce".into(), load.duration, progress.clone());
        produce_load(cluster, &topic, load, false, seed, progress).await?
    };
    let cpu = cluster.cpu_seconds().zip(cpu_before).map(|(a, b)| a - b);
    let store = cluster.stats().await?.since(&before);
    let gib = produced.bytes as f64 / GIB;
    let result = ProduceResult {
        seconds: produced.seconds,
        requests: produced.requests,
        errors: produced.errors,
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
        store,
    };
    Ok((result, produced.hist))
}

// ---------------------------------------------------------------- consume

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
}

pub async fn consume_scenario(cluster: &Cluster, load: &Load, seed: u64) -> Result<ConsumeResult, Err> {
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
    if cluster.procs.is_some() {
        reader.stop().await;
    }
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
        catchup_dollars_per_gib: crate::report::dollars(&catchup_store.total()) / read_gib,
        catchup_store,
        catchup_agent_cpu_s_per_gib: cpu.map(|c| c / read_gib),
    })
}

// ---------------------------------------------------------------- e2e

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_rate_schedule_ignores_slow_answers() {
        let start = Instant::now();
        let mut s = Schedule::new(start, Some(Duration::from_millis(10)));
        // Whenever the loop gets round to asking (late, after a stall), the
        // due times stay on the grid, so latency is charged from them.
        let late = start + Duration::from_secs(5);
        let due: Vec<Duration> = (0..4).map(|_| s.next_due(late) - start).collect();
        assert_eq!(due, [0, 10, 20, 30].map(Duration::from_millis));
        let mut closed = Schedule::new(start, None);
        assert_eq!(closed.next_due(late), late);
    }

    #[test]
    fn bodies_have_the_requested_shape() {
        let load = Load {
            producers: 1,
            record_bytes: 100,
            records_per_request: 3,
            partitions: 4,
            keys: Keys::Uniform(10),
            rate: None,
            duration: Duration::from_secs(1),
        };
        let mut b = Bodies::new(&load, 1);
        let v: Value = serde_json::from_slice(&b.next(true)).unwrap();
        let records = v["records"].as_array().unwrap();
        assert_eq!(records.len(), 3);
        for r in records {
            let value = r["value"].as_str().unwrap();
            assert_eq!(value.len(), 100);
            let sent: u64 = value[..16].parse().unwrap();
            assert!(sent.abs_diff(now_micros()) < 60_000_000);
            assert!(r["key"].as_str().unwrap().starts_with('k'));
        }
        // Fresh random values: no two records alike beyond the stamp.
        let tails: std::collections::HashSet<&str> =
            records.iter().map(|r| &r["value"].as_str().unwrap()[16..]).collect();
        assert_eq!(tails.len(), 3);
        let unkeyed = Load { keys: Keys::None, ..load };
        let v: Value = serde_json::from_slice(&Bodies::new(&unkeyed, 1).next(false)).unwrap();
        assert!(v["records"][0].get("key").is_none());
        assert_eq!("uniform:5".parse::<Keys>(), Ok(Keys::Uniform(5)));
        assert!("zipf".parse::<Keys>().is_err());
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
