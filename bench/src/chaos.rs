//! The chaos run: agents on one store, concurrent producers (half idempotent,
//! all retrying) and consumers against random agents, `kill -9` and restart of
//! agents at random times, optional store faults and standalone compactors,
//! and the optional fault classes of `Faults`; then a drain through every
//! agent and the checks in `history`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::RwLock;
use tokio::time::Instant;

use crate::history::{self, Ack, FinalLog, LocalAck, Report, Seen};
use crate::procs::{AgentProcess, Err, Procs};

#[derive(Clone, Debug)]
pub struct ChaosOptions {
    pub duration: Duration,
    pub agents: usize,
    pub partitions: u32,
    pub producers: usize,
    pub consumers: usize,
    pub seed: u64,
    /// Pause between kills is drawn from this range.
    pub kill_every: (Duration, Duration),
    pub store_faults: Option<f64>,
    pub compactors: usize,
    pub commit_lease: bool,
    pub faults: Faults,
    /// The store every process uses; `None`: a local directory in `dir`.
    pub store: Option<String>,
    pub bin_dir: PathBuf,
    pub dir: PathBuf,
}

/// Fault classes beyond kills and store faults (docs/multi-agent.md lists
/// each with the invariant it threatens).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Producers send a request a second time at once, concurrently, to the
    /// same or another agent.
    pub immediate_retries: bool,
    /// Agents are paused (SIGSTOP) for longer than the lease and group
    /// coordinator terms, then resumed as zombies.
    pub pauses: bool,
    /// Each agent runs with its clock up to a second off, and now and then
    /// one starts two minutes fast.
    pub clock_skew: bool,
    /// Consumer groups commit offsets; a watcher per agent checks that no
    /// committed offset ever moves backwards.
    pub groups: bool,
    /// Agents spool flushes to a directory per slot (a restarted agent
    /// replays its predecessor's), and plain producers send half their
    /// requests with `acks=local`: each such record must be committed once.
    pub spool: bool,
}

impl Faults {
    pub fn all() -> Self {
        Self { immediate_retries: true, pauses: true, clock_skew: true, groups: true, spool: false }
    }
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub report: Report,
    pub kills: usize,
    pub failed_requests: usize,
    pub given_up_requests: usize,
    /// Changes of committed group offsets the watchers saw (`--groups`).
    pub group_offsets_seen: usize,
    /// Panics in the agents' and compactors' logs, by log file: bugs, even
    /// those a process survives (a background task started again, a merge
    /// run skipped), which a run must not hide.
    pub panics: Vec<(String, usize)>,
    /// Standalone compactors that ended before the run stopped them (they
    /// run until killed), with how they ended.
    pub compactors_ended: Vec<String>,
}

const TOPIC: &str = "chaos";
/// Plain producers' concurrent twin attempts are told apart as producer `TWIN + n`.
const TWIN: usize = 10_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long producers keep retrying an unanswered request after the run ends.
const DRAIN: Duration = Duration::from_secs(30);
/// Bytes of a large request: above what the agent compresses as it arrives
/// (64 KiB).
const LARGE_REQUEST_BYTES: usize = 80 * 1024;

struct Cluster {
    opts: ChaosOptions,
    procs: Procs,
    nodes: RwLock<Vec<Option<AgentProcess>>>,
}

impl Cluster {
    async fn random_url(&self, rng: &mut StdRng) -> Option<String> {
        let nodes = self.nodes.read().await;
        let live: Vec<&AgentProcess> = nodes.iter().flatten().collect();
        (!live.is_empty()).then(|| live[rng.random_range(0..live.len())].url.clone())
    }
}

pub async fn run(opts: ChaosOptions) -> Result<Outcome, Err> {
    let mut agent_env = vec![
        ("FLOE_FLUSH_INTERVAL_MS".to_owned(), "20".to_owned()),
        ("FLOE_LOG_POLL_MS".to_owned(), "100".to_owned()),
        ("FLOE_COMMIT_WINDOW_MS".to_owned(), "10000".to_owned()),
        ("FLOE_COMMIT_LEASE".to_owned(), opts.commit_lease.to_string()),
        ("FLOE_LEASE_TERM_MS".to_owned(), "2000".to_owned()),
        ("FLOE_GROUP_COORDINATOR_TERM_MS".to_owned(), "2000".to_owned()),
    ];
    if let Some(rate) = opts.store_faults {
        agent_env.push(("FLOE_INJECT_STORE_FAULTS".to_owned(), rate.to_string()));
    }
    let procs = Procs::new(opts.dir.clone(), opts.bin_dir.clone(), opts.store.clone(), agent_env);
    let cluster = Arc::new(Cluster { opts: opts.clone(), procs, nodes: RwLock::new(Vec::new()) });
    let mut clocks = StdRng::seed_from_u64(opts.seed.wrapping_add(7777));
    for slot in 0..opts.agents {
        let node = cluster.procs.spawn_agent_with(&slot_env(&opts, slot, &mut clocks)).await?;
        cluster.nodes.write().await.push(Some(node));
    }
    // Aggressive on purpose: many merges, snapshots and collections per run.
    let aggressive = [
        ("FLOE_COMPACTION_INTERVAL_MS", "200"),
        ("FLOE_GC_GRACE_MS", "2000"),
        ("FLOE_SNAPSHOT_EVERY_ENTRIES", "50"),
        ("FLOE_MERGE_MIN_BATCHES", "4"),
        ("FLOE_MERGE_SMALL_BATCH_BYTES", "65536"),
    ];
    let mut compactors = Vec::new();
    for i in 0..opts.compactors {
        compactors.push(cluster.procs.spawn_compactor(i, &aggressive)?);
    }
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
    // Through each agent in turn until one can (a skewed one refuses to commit).
    let urls: Vec<String> = cluster.nodes.read().await.iter().flatten().map(|n| n.url.clone()).collect();
    let mut refusals = Vec::new();
    for url in &urls {
        let created = http
            .post(format!("{url}/v1/topics"))
            .json(&json!({"name": TOPIC, "partitions": opts.partitions, "retention_ms": -1}))
            .send()
            .await?;
        if created.status().is_success() {
            refusals.clear();
            break;
        }
        refusals.push(created.text().await?);
    }
    if !refusals.is_empty() {
        return Err(format!("cannot create topic: {}", refusals.join("; ")).into());
    }

    let deadline = Instant::now() + opts.duration;
    let shared = Arc::new(Shared::default());
    let mut tasks = Vec::new();
    for i in 0..opts.producers {
        let rng = StdRng::seed_from_u64(opts.seed.wrapping_add(1 + i as u64));
        tasks.push(tokio::spawn(produce(
            cluster.clone(),
            http.clone(),
            shared.clone(),
            i,
            i.is_multiple_of(2),
            rng,
            deadline,
        )));
    }
    for i in 0..opts.consumers {
        let rng = StdRng::seed_from_u64(opts.seed.wrapping_add(1000 + i as u64));
        tasks.push(tokio::spawn(consume(cluster.clone(), http.clone(), shared.clone(), rng, deadline)));
    }
    let rewinds = Arc::new(Mutex::new(0usize));
    let observed = Arc::new(Mutex::new(0usize));
    if opts.faults.groups {
        for i in 0..2 {
            let rng = StdRng::seed_from_u64(opts.seed.wrapping_add(2000 + i));
            tasks.push(tokio::spawn(group_member(cluster.clone(), http.clone(), rng, deadline)));
        }
        for slot in 0..opts.agents {
            let counters = (rewinds.clone(), observed.clone());
            tasks.push(tokio::spawn(watch_group(cluster.clone(), http.clone(), slot, counters, deadline)));
        }
    }
    if opts.faults.pauses {
        let rng = StdRng::seed_from_u64(opts.seed.wrapping_add(3000));
        tasks.push(tokio::spawn(pause_loop(cluster.clone(), rng, deadline)));
    }
    let kills = kill_loop(&cluster, StdRng::seed_from_u64(opts.seed.wrapping_add(9999)), deadline).await?;
    for t in tasks {
        t.await?;
    }
    let mut compactors_ended = Vec::new();
    for (i, c) in compactors.iter_mut().enumerate() {
        if let Ok(Some(status)) = c.try_wait() {
            compactors_ended.push(format!("compactor {i}: {status} (compactor-{i}.log)"));
        }
        let _ = c.kill().await;
    }

    // Drain through every agent; they must all return the same log.
    let urls: Vec<String> = cluster.nodes.read().await.iter().flatten().map(|n| n.url.clone()).collect();
    let mut logs = Vec::new();
    for url in &urls {
        logs.push(read_log(&http, url, opts.partitions).await?);
    }
    let panics = cluster.procs.panics_logged()?;
    let final_log = logs.first().cloned().unwrap_or_default();
    let idempotent: HashSet<usize> = (0..opts.producers).filter(|i| i.is_multiple_of(2)).collect();
    let acks = take(&shared.acks);
    let local_acks = take(&shared.local_acks);
    let seen = take(&shared.seen);
    let sent = take(&shared.sent);
    let mut report = history::check(&acks, &seen, &final_log, &sent.into_iter().collect(), &idempotent);
    history::check_local(&mut report, &local_acks, &final_log);
    report.group_offset_rewinds = *rewinds.lock().map_err(|_| "poisoned")?;
    let group_offsets_seen = *observed.lock().map_err(|_| "poisoned")?;
    for other in &logs[1.min(logs.len())..] {
        report.disagreements += disagreements(&final_log, other);
    }
    for node in cluster.nodes.write().await.iter_mut().flatten() {
        let _ = node.child.kill().await;
    }
    Ok(Outcome {
        report,
        kills,
        failed_requests: *shared.failed.lock().map_err(|_| "poisoned")?,
        given_up_requests: *shared.given_up.lock().map_err(|_| "poisoned")?,
        group_offsets_seen,
        panics,
        compactors_ended,
    })
}

fn disagreements(a: &FinalLog, b: &FinalLog) -> usize {
    let index = |log: &FinalLog| -> HashMap<(usize, u64), String> {
        log.iter().enumerate().flat_map(|(p, r)| r.iter().map(move |(o, v)| ((p, *o), v.clone()))).collect()
    };
    let (a, b) = (index(a), index(b));
    let keys: HashSet<&(usize, u64)> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(|k| a.get(k) != b.get(k)).count()
}

#[derive(Default)]
struct Shared {
    acks: Mutex<Vec<Ack>>,
    /// Records acknowledged with `acks=local`: no offset yet.
    local_acks: Mutex<Vec<LocalAck>>,
    seen: Mutex<Vec<Seen>>,
    sent: Mutex<Vec<String>>,
    failed: Mutex<usize>,
    given_up: Mutex<usize>,
}

fn take<T>(m: &Mutex<Vec<T>>) -> Vec<T> {
    m.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
}

fn push<T>(m: &Mutex<Vec<T>>, items: impl IntoIterator<Item = T>) {
    if let Ok(mut v) = m.lock() {
        v.extend(items);
    }
}

fn bump(m: &Mutex<usize>) {
    if let Ok(mut n) = m.lock() {
        *n += 1;
    }
}

enum Sent {
    Acked(Vec<u64>),
    /// Synced to this spool (`acks=local`): offsets come with the commit.
    Spooled(String),
    Refused,
    Unknown,
}

async fn send(http: &reqwest::Client, url: &str, body: &Value, local: bool) -> Sent {
    let acks = if local { "?acks=local" } else { "" };
    let Ok(resp) = http.post(format!("{url}/v1/topics/{TOPIC}/records{acks}")).json(body).send().await else {
        return Sent::Unknown;
    };
    let status = resp.status();
    let Ok(answer) = resp.json::<Value>().await else { return Sent::Unknown };
    if status.is_success() && answer["acks"] == "local" {
        return answer["flush"]["spool"].as_str().map_or(Sent::Unknown, |s| Sent::Spooled(s.to_owned()));
    }
    if status.is_success() {
        let offsets = answer["offsets"].as_array().map(|a| a.iter().filter_map(|o| o["offset"].as_u64()).collect());
        return offsets.map_or(Sent::Unknown, Sent::Acked);
    }
    // 5xx: the store or the agent failed, the records may or may not be in.
    if status.is_server_error() { Sent::Unknown } else { Sent::Refused }
}

async fn produce(
    cluster: Arc<Cluster>,
    http: reqwest::Client,
    shared: Arc<Shared>,
    me: usize,
    idempotent: bool,
    mut rng: StdRng,
    deadline: Instant,
) {
    let mut producer = None;
    while idempotent && producer.is_none() && Instant::now() < deadline {
        if let Some(url) = cluster.random_url(&mut rng).await
            && let Ok(r) = http.post(format!("{url}/v1/producers")).json(&json!({})).send().await
            && let Ok(v) = r.json::<Value>().await
        {
            producer = v["producer_id"].as_u64().zip(v["epoch"].as_u64());
        }
    }
    let mut next_value = 0u64;
    let mut sequences: HashMap<u32, u64> = HashMap::new();
    while Instant::now() < deadline {
        let partition = rng.random_range(0..cluster.opts.partitions);
        let count = rng.random_range(1..=5u64);
        // One request in eight is large (a padded key on each record): the
        // agent compresses those as they arrive, the rest at the flush.
        let key = rng.random_bool(0.125).then(|| "k".repeat(LARGE_REQUEST_BYTES / count as usize));
        let record = |value: &String| match &key {
            Some(key) => json!({"key": key, "value": value, "partition": partition}),
            None => json!({"value": value, "partition": partition}),
        };
        let mut values: Vec<String> = Vec::new();
        // Retry until answered: to another agent each time, the way a client
        // behind a load balancer would. An idempotent request is retried as
        // is; each attempt of a plain one has values of its own, so one
        // attempt stored twice shows as a duplicate.
        let mut answered = false;
        while Instant::now() < deadline + DRAIN {
            if values.is_empty() || producer.is_none() {
                values = (next_value..next_value + count).map(|n| format!("p{me}-{n}")).collect();
                next_value += count;
                push(&shared.sent, values.iter().cloned());
            }
            let records: Vec<Value> = values.iter().map(record).collect();
            let mut body = json!({ "records": records });
            if let Some((id, epoch)) = producer {
                let seq = sequences.entry(partition).or_default();
                body["producer"] = json!({"id": id, "epoch": epoch, "sequence": *seq});
            }
            let Some(url) = cluster.random_url(&mut rng).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            // Idempotent producers may not use acks=local (their retries are answered from the log).
            let local = cluster.opts.faults.spool && producer.is_none() && rng.random_bool(0.5);
            // A retry sent at once, concurrently, to this agent or another:
            // the same request for an idempotent producer (written once, both
            // answers the same), a new attempt with values of its own for a
            // plain one.
            let twin = if cluster.opts.faults.immediate_retries && rng.random_bool(0.3) {
                let other = match rng.random_bool(0.5) {
                    true => url.clone(),
                    false => cluster.random_url(&mut rng).await.unwrap_or(url.clone()),
                };
                // A plain twin is ordered only against earlier twins: it
                // counts as producer `TWIN + me` (concurrent sends have no order).
                let twin_values = if producer.is_some() {
                    values.clone()
                } else {
                    let v: Vec<String> =
                        (next_value..next_value + count).map(|n| format!("p{}-{n}", TWIN + me)).collect();
                    next_value += count;
                    push(&shared.sent, v.iter().cloned());
                    v
                };
                let mut twin_body = body.clone();
                twin_body["records"] = twin_values.iter().map(record).collect::<Vec<_>>().into();
                let (http, shared) = (http.clone(), shared.clone());
                Some(tokio::spawn(async move {
                    let answer = send(&http, &other, &twin_body, local).await;
                    if let Sent::Spooled(spool) = answer {
                        push(&shared.local_acks, local_acks(partition, &twin_values, &spool));
                        return true;
                    }
                    if let Sent::Acked(offsets) = answer {
                        let as_producer = if twin_values
                            .first()
                            .and_then(|v| history::parse_value(v))
                            .is_some_and(|(p, _)| p == me)
                        {
                            me
                        } else {
                            TWIN + me
                        };
                        record_acks(&shared, as_producer, partition, &twin_values, &offsets);
                        return true;
                    }
                    false
                }))
            } else {
                None
            };
            let mut sent = send(&http, &url, &body, local).await;
            // An idempotent request answered through its twin is answered.
            if let Some(twin) = twin
                && twin.await.unwrap_or(false)
                && producer.is_some()
                && !matches!(sent, Sent::Acked(_))
            {
                sent = Sent::Acked(Vec::new());
            }
            match sent {
                Sent::Spooled(spool) => {
                    push(&shared.local_acks, local_acks(partition, &values, &spool));
                    answered = true;
                    break;
                }
                Sent::Acked(offsets) => {
                    record_acks(&shared, me, partition, &values, &offsets);
                    if producer.is_some() {
                        *sequences.entry(partition).or_default() += count;
                    }
                    answered = true;
                    break;
                }
                Sent::Refused => {
                    bump(&shared.failed);
                    answered = true;
                    break;
                }
                Sent::Unknown => tokio::time::sleep(Duration::from_millis(rng.random_range(10..100))).await,
            }
        }
        if !answered {
            bump(&shared.given_up);
            // An idempotent producer cannot go on past an unsettled sequence.
            if producer.is_some() {
                return;
            }
        }
    }
}

fn local_acks(partition: u32, values: &[String], spool: &str) -> Vec<LocalAck> {
    values.iter().map(|v| LocalAck { partition, value: v.clone(), spool: spool.to_owned() }).collect()
}

fn record_acks(shared: &Shared, me: usize, partition: u32, values: &[String], offsets: &[u64]) {
    let acks = values.iter().zip(offsets).map(|(v, offset)| Ack {
        producer: me,
        partition,
        offset: *offset,
        value: v.clone(),
    });
    push(&shared.acks, acks);
}

/// An agent slot's settings: its spool directory (`--spool`; the same for
/// every agent started in the slot, as a restart on the same disk), and its
/// clock offset (`--clock-skew`): within a second, or now and then two
/// minutes fast (that agent must refuse to commit, not stall others). Only
/// the agent in slot 0 is ever fast, so the others can always commit.
fn slot_env(opts: &ChaosOptions, slot: usize, rng: &mut StdRng) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if opts.faults.spool {
        let dir = opts.dir.join(format!("spool-{slot}"));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("floe-chaos: {}: {e}", dir.display());
        }
        env.push(("FLOE_SPOOL_DIR".to_owned(), dir.display().to_string()));
    }
    if !opts.faults.clock_skew {
        return env;
    }
    let fast = slot == 0 && rng.random_bool(0.3);
    let offset: i64 = if fast { 120_000 } else { rng.random_range(-1_000..=1_000) };
    env.push(("FLOE_TEST_CLOCK_OFFSET_MS".to_owned(), offset.to_string()));
    env
}

/// Pauses a random agent with SIGSTOP for longer than the lease and group
/// coordinator terms (2 s), then resumes it: a zombie lease holder or coordinator.
async fn pause_loop(cluster: Arc<Cluster>, mut rng: StdRng, deadline: Instant) {
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..6_000))).await;
        let slot = rng.random_range(0..cluster.opts.agents);
        let pid = cluster.nodes.read().await.get(slot).and_then(Option::as_ref).and_then(|n| n.child.id());
        let Some(pid) = pid else { continue };
        if signal(pid, "STOP").await {
            tokio::time::sleep(Duration::from_millis(rng.random_range(2_500..5_000))).await;
            signal(pid, "CONT").await;
        }
    }
}

async fn signal(pid: u32, name: &str) -> bool {
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    status.is_ok_and(|s| s.success())
}

const GROUP: &str = "chaos-group";

/// A consumer-group member: joins through a random agent, fetches, commits
/// what it fetched, and rejoins when told to.
async fn group_member(cluster: Arc<Cluster>, http: reqwest::Client, mut rng: StdRng, deadline: Instant) {
    let mut member: Option<(String, u64)> = None;
    while Instant::now() < deadline {
        let Some(url) = cluster.random_url(&mut rng).await else { continue };
        let Some((id, generation)) = member.clone() else {
            let joined =
                http.post(format!("{url}/v1/groups/{GROUP}/members")).json(&json!({"topics": [TOPIC]})).send().await;
            if let Ok(r) = joined
                && let Ok(v) = r.json::<Value>().await
                && let (Some(id), Some(g)) = (v["member_id"].as_str(), v["generation"].as_u64())
            {
                member = Some((id.to_owned(), g));
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        };
        let fetched = http
            .get(format!("{url}/v1/groups/{GROUP}/members/{id}/records?max_records=100&timeout_ms=100"))
            .send()
            .await;
        let Ok(resp) = fetched else { continue };
        if resp.status().as_u16() == 409 {
            member = None;
            continue;
        }
        let Ok(page) = resp.json::<Value>().await else { continue };
        let mut next: HashMap<(String, u64), u64> = HashMap::new();
        for r in page["records"].as_array().into_iter().flatten() {
            if let (Some(t), Some(p), Some(o)) = (r["topic"].as_str(), r["partition"].as_u64(), r["offset"].as_u64()) {
                let e = next.entry((t.to_owned(), p)).or_default();
                *e = (*e).max(o + 1);
            }
        }
        if next.is_empty() {
            continue;
        }
        let offsets: Vec<Value> =
            next.iter().map(|((t, p), o)| json!({"topic": t, "partition": p, "offset": o})).collect();
        let body = json!({"member_id": id, "generation": generation, "offsets": offsets});
        if let Ok(r) = http.post(format!("{url}/v1/groups/{GROUP}/offsets")).json(&body).send().await
            && r.status().as_u16() == 409
        {
            member = None;
        }
    }
}

/// Reads the group's committed offsets through one agent slot, over and
/// over, and counts every offset that went backwards.
async fn watch_group(
    cluster: Arc<Cluster>,
    http: reqwest::Client,
    slot: usize,
    (rewinds, observed): (Arc<Mutex<usize>>, Arc<Mutex<usize>>),
    deadline: Instant,
) {
    let mut last: HashMap<(String, u64), u64> = HashMap::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let url = cluster.nodes.read().await.get(slot).and_then(Option::as_ref).map(|n| n.url.clone());
        let Some(url) = url else { continue };
        let Ok(resp) = http.get(format!("{url}/v1/groups/{GROUP}/offsets")).send().await else { continue };
        let Ok(v) = resp.json::<Value>().await else { continue };
        for o in v["offsets"].as_array().into_iter().flatten() {
            let (Some(t), Some(p), Some(off)) = (o["topic"].as_str(), o["partition"].as_u64(), o["offset"].as_u64())
            else {
                continue;
            };
            let prev = last.insert((t.to_owned(), p), off);
            if prev.is_some_and(|prev| off < prev) {
                bump(&rewinds);
            }
            if prev != Some(off) {
                bump(&observed);
            }
        }
    }
}

async fn consume(
    cluster: Arc<Cluster>,
    http: reqwest::Client,
    shared: Arc<Shared>,
    mut rng: StdRng,
    deadline: Instant,
) {
    let mut positions: HashMap<u32, u64> = HashMap::new();
    while Instant::now() < deadline {
        let partition = rng.random_range(0..cluster.opts.partitions);
        let Some(url) = cluster.random_url(&mut rng).await else { continue };
        let pos = positions.entry(partition).or_default();
        let fetched = http
            .get(format!(
                "{url}/v1/topics/{TOPIC}/partitions/{partition}/records?offset={pos}&max_records=200&timeout_ms=100"
            ))
            .send()
            .await;
        let Ok(resp) = fetched else { continue };
        if !resp.status().is_success() {
            continue;
        }
        let Ok(page) = resp.json::<Value>().await else { continue };
        let records = page["records"].as_array().cloned().unwrap_or_default();
        let seen: Vec<Seen> = records
            .iter()
            .filter_map(|r| {
                Some(Seen { partition, offset: r["offset"].as_u64()?, value: r["value"].as_str()?.to_owned() })
            })
            .collect();
        if let Some(next) = page["next_offset"].as_u64() {
            *pos = next;
        }
        push(&shared.seen, seen);
    }
}

async fn kill_loop(cluster: &Cluster, mut rng: StdRng, deadline: Instant) -> Result<usize, Err> {
    let (lo, hi) = cluster.opts.kill_every;
    let mut kills = 0;
    loop {
        let pause = rng.random_range(lo.as_millis() as u64..=hi.as_millis().max(lo.as_millis()) as u64);
        if Instant::now() + Duration::from_millis(pause) >= deadline {
            tokio::time::sleep_until(deadline).await;
            return Ok(kills);
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let slot = rng.random_range(0..cluster.opts.agents);
        let victim = cluster.nodes.write().await.get_mut(slot).and_then(Option::take);
        if let Some(mut node) = victim {
            node.child.start_kill()?; // SIGKILL
            node.child.wait().await?;
            kills += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        let fresh = cluster.procs.spawn_agent_with(&slot_env(&cluster.opts, slot, &mut rng)).await?;
        if let Some(s) = cluster.nodes.write().await.get_mut(slot) {
            *s = Some(fresh);
        }
    }
}

/// Every partition from offset 0, through one agent.
async fn read_log(http: &reqwest::Client, url: &str, partitions: u32) -> Result<FinalLog, Err> {
    let mut log = Vec::new();
    for p in 0..partitions {
        let mut records = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = read_page(
                http,
                &format!("{url}/v1/topics/{TOPIC}/partitions/{p}/records?offset={offset}&max_records=1000"),
            )
            .await?;
            let batch = page["records"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for r in batch {
                let (Some(o), Some(v)) = (r["offset"].as_u64(), r["value"].as_str()) else { continue };
                records.push((o, v.to_owned()));
            }
            offset = page["next_offset"].as_u64().ok_or("no next_offset")?;
        }
        log.push(records);
    }
    Ok(log)
}

/// One fetch, retried through injected store faults (503s) and slow answers.
async fn read_page(http: &reqwest::Client, url: &str) -> Result<Value, Err> {
    let mut last: Err = "no attempt".into();
    for _ in 0..50 {
        match http.get(url).send().await.and_then(reqwest::Response::error_for_status) {
            Ok(resp) => return Ok(resp.json().await?),
            Err(e) => last = e.into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}
