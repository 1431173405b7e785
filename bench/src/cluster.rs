//! The agent under test: one `floe-bench` starts on a temporary (or given)
//! store with a latency profile, or a running one given by `--target`; and
//! what the scenarios ask of it (topics, watermarks, counters, CPU time).

use std::path::PathBuf;
use std::time::Duration;

use floe_broker::latency::Profile;
use serde_json::Value;

use crate::clock::now_micros;
use crate::procs::{AgentProcess, Compaction, Err, Procs};
use crate::report::{Stats, cpu_seconds};

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
    /// Give the agent a spool (in `dir`).
    pub spool: bool,
    /// The agent's `--acks` (`committed`, `local`).
    pub acks: Option<String>,
    /// The store is unreachable for `.1` ms from `.0` ms after the agent starts.
    pub outage: Option<(u64, u64)>,
    /// CPUs the agent we start is confined to (`taskset --cpu-list`).
    pub agent_cpus: Option<String>,
}

/// The agent under test: one we started (with its pid for CPU time) or a target.
pub struct Cluster {
    pub url: String,
    procs: Option<Procs>,
    agent: Option<AgentProcess>,
    pub http: reqwest::Client,
    /// When the store outage we asked for ends (about: it is timed from
    /// the agent's start, which we see a little later).
    pub outage_end: Option<tokio::time::Instant>,
}

impl Cluster {
    pub async fn start(setup: &Setup) -> Result<Self, Err> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(256).build()?;
        if let Some(url) = &setup.target {
            let url = url.trim_end_matches('/').to_owned();
            return Ok(Self { url, procs: None, agent: None, http, outage_end: None });
        }
        let mut env = vec![
            ("FLOE_STORE_PROFILE".to_owned(), setup.profile.name().to_owned()),
            ("FLOE_STORE_PROFILE_SEED".to_owned(), setup.seed.to_string()),
            ("FLOE_FLUSH_INTERVAL_MS".to_owned(), setup.flush_interval_ms.to_string()),
            ("FLOE_FLUSH_BYTES".to_owned(), setup.flush_bytes.to_string()),
        ];
        if setup.spool {
            let dir = setup.dir.join("spool");
            std::fs::create_dir_all(&dir)?;
            env.push(("FLOE_SPOOL_DIR".to_owned(), dir.display().to_string()));
        }
        if let Some(acks) = &setup.acks {
            env.push(("FLOE_ACKS".to_owned(), acks.clone()));
        }
        if let Some((after, length)) = setup.outage {
            env.push(("FLOE_TEST_STORE_OUTAGE".to_owned(), format!("{after}:{length}")));
        }
        let started = tokio::time::Instant::now();
        let procs = Procs::new(setup.dir.clone(), setup.bin_dir.clone(), setup.store.clone(), env)
            .with_agent_cpus(setup.agent_cpus.clone());
        let agent = procs.spawn_agent().await?;
        let outage_end = setup.outage.map(|(after, length)| started + Duration::from_millis(after + length));
        Ok(Self { url: agent.url.clone(), procs: Some(procs), agent: Some(agent), http, outage_end })
    }

    /// The store the agent uses, when we started it.
    pub fn store_url(&self) -> Option<String> {
        self.procs.as_ref().map(Procs::store_url)
    }

    /// Compacts the store until its compactor has nothing left to merge
    /// (`floe-compactor --once`, repeated). Not with a target: the bench
    /// does not know its store.
    pub async fn compact_until_idle(&self) -> Result<Compaction, Err> {
        match &self.procs {
            Some(procs) => procs.compact_until_idle().await,
            None => Err("compacting needs an agent the bench started, not --target".into()),
        }
    }

    /// CPU seconds used so far by the agent we started.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.agent.as_ref().and_then(|a| a.child.id()).and_then(cpu_seconds)
    }

    /// A second agent on the same store with a cold cache (catch-up reads);
    /// with a target, the target itself.
    pub async fn fresh_reader(&self) -> Result<Cluster, Err> {
        match &self.procs {
            None => Ok(Cluster {
                url: self.url.clone(),
                procs: None,
                agent: None,
                http: self.http.clone(),
                outage_end: None,
            }),
            Some(procs) => {
                let agent = procs.spawn_agent().await?;
                let (url, http) = (agent.url.clone(), self.http.clone());
                Ok(Cluster { url, procs: None, agent: Some(agent), http, outage_end: None })
            }
        }
    }

    /// Waits (polling `/v1/stats` every 100 ms, for at most `limit`) until,
    /// after `from`, the oldest flush in the agent's spool is younger than
    /// `max_age`: the backlog of an outage is committed, while new flushes
    /// keep coming. Returns when that was, or `None` without a spool.
    pub async fn spool_caught_up(
        &self,
        from: tokio::time::Instant,
        max_age: Duration,
        limit: Duration,
    ) -> Result<Option<tokio::time::Instant>, Err> {
        let give_up = tokio::time::Instant::now() + limit;
        tokio::time::sleep_until(from).await;
        loop {
            let v: Value = self.http.get(format!("{}/v1/stats", self.url)).send().await?.json().await?;
            let now = tokio::time::Instant::now();
            match v["writer"]["spool"]["oldest_age_ms"].as_u64() {
                None => return Ok(None),
                Some(age) if u128::from(age) < max_age.as_millis() => return Ok(Some(now)),
                Some(_) if now > give_up => return Err("the spool did not catch up".into()),
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
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
