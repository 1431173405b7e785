//! Starting Floe processes for a run: agents on free loopback ports and
//! standalone compactors, all on one local store, with logs in the run directory.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub type Err = Box<dyn std::error::Error + Send + Sync>;

/// Compactor cycles `compact_until_idle` runs at most (each merges up to
/// `--merge-max-bytes-per-cycle`, 256 MiB by default).
pub const MAX_COMPACTION_CYCLES: usize = 64;

/// How long one `floe-compactor --once` may take (it merges at most 256 MiB).
const COMPACTION_CYCLE_LIMIT: Duration = Duration::from_secs(300);

/// What `compact_until_idle` did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Compaction {
    /// Cycles run, the last of which merged nothing.
    pub cycles: usize,
    pub merged_runs: usize,
    pub merged_batches: usize,
    /// The compactor's GETs of segments, and the bytes they read.
    pub segment_gets: u64,
    pub segment_get_bytes: u64,
}

/// The counts of `floe-compactor --once`'s report that the bench reads.
#[derive(Debug, serde::Deserialize)]
struct CycleCounts {
    merged_runs: usize,
    merged_batches: usize,
    failed_runs: usize,
    #[serde(default)]
    segment_requests: SegmentRequests,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct SegmentRequests {
    get: u64,
    get_bytes: u64,
}

impl CycleCounts {
    /// The report is the last line of the compactor's output.
    fn parse(stdout: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(stdout).ok()?;
        serde_json::from_str(text.lines().last()?).ok()
    }
}

pub struct AgentProcess {
    pub child: Child,
    pub url: String,
}

pub struct Procs {
    dir: PathBuf,
    /// `None`: a local directory in `dir`.
    store: Option<String>,
    bin_dir: PathBuf,
    agent_env: Vec<(String, String)>,
    /// CPUs every agent is confined to (`taskset --cpu-list`), if any.
    agent_cpus: Option<String>,
    started: AtomicUsize,
}

impl Procs {
    /// `agent_env` is added to (and overrides) the defaults of every agent.
    /// `store`: the store URL every process uses (`s3://…` reads the usual
    /// `AWS_*` variables from the environment); `None`: `dir/store`.
    pub fn new(dir: PathBuf, bin_dir: PathBuf, store: Option<String>, agent_env: Vec<(String, String)>) -> Self {
        Self { dir, store, bin_dir, agent_env, agent_cpus: None, started: AtomicUsize::new(0) }
    }

    /// Confines every agent started from here on to `cpus` (a list such as
    /// `0` or `0-1`, as `taskset --cpu-list` reads it): its CPU time is then
    /// its own work, not contended by the load generator and the store on
    /// the same cores (docs/benchmarks.md, "CPU floor").
    pub fn with_agent_cpus(mut self, cpus: Option<String>) -> Self {
        self.agent_cpus = cpus;
        self
    }

    /// The agent's command: through `taskset`, which execs it (same pid), when pinned.
    fn agent_command(&self) -> Command {
        let agent = self.bin_dir.join("floe-agent");
        match &self.agent_cpus {
            Some(cpus) => {
                let mut command = Command::new("taskset");
                command.arg("--cpu-list").arg(cpus).arg(agent);
                command
            }
            None => Command::new(agent),
        }
    }

    pub fn store_url(&self) -> String {
        self.store.clone().unwrap_or_else(|| format!("file://{}", self.dir.join("store").display()))
    }

    /// Starts an agent; a start that fails (an injected store fault during
    /// its replay, say) is retried, as an orchestrator would.
    pub async fn spawn_agent(&self) -> Result<AgentProcess, Err> {
        self.spawn_agent_with(&[]).await
    }

    /// `spawn_agent` with `env` on top of every agent's.
    pub async fn spawn_agent_with(&self, env: &[(String, String)]) -> Result<AgentProcess, Err> {
        let mut last = None;
        for _ in 0..5 {
            match self.spawn_agent_once(env).await {
                Ok(agent) => return Ok(agent),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| "agent did not start".into()))
    }

    async fn spawn_agent_once(&self, env: &[(String, String)]) -> Result<AgentProcess, Err> {
        let n = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        let log = std::fs::File::create(self.dir.join(format!("agent-{n}.log")))?;
        let mut command = self.agent_command();
        let program = command.as_std().get_program().to_string_lossy().into_owned();
        let mut child = command
            .env("FLOE_STORE", self.store_url())
            .env("FLOE_LISTEN", "127.0.0.1:0")
            .env("FLOE_COMPACTOR", "off")
            .env("FLOE_LOG", "warn")
            .envs(self.agent_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {program} (the agent, or taskset for --agent-cpus): {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("floe-agent listening on ") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("agent {n} did not start; see {}/agent-{n}.log", self.dir.display()))?;
        Ok(AgentProcess { child, url })
    }

    /// Panics every agent and compactor started so far wrote to its log
    /// (Rust's panic hook writes `panicked at` to stderr), by log file: a
    /// panic is a bug even where the process survives it (a background task
    /// started again, a merge run skipped) or was killed after it.
    pub fn panics_logged(&self) -> Result<Vec<(String, usize)>, Err> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let ours = (name.starts_with("agent-") || name.starts_with("compactor-")) && name.ends_with(".log");
            if !ours {
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
            let panics = text.matches(" panicked at ").count();
            if panics > 0 {
                found.push((name, panics));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Runs `floe-compactor --once` on the store until a cycle merges
    /// nothing (at most [`MAX_COMPACTION_CYCLES`]): what a bucket looks like
    /// once its compactor has caught up. A cycle with a failed merge run
    /// fails the call: the figures after it would not be of a compacted
    /// bucket.
    pub async fn compact_until_idle(&self) -> Result<Compaction, Err> {
        let mut done = Compaction::default();
        while done.cycles < MAX_COMPACTION_CYCLES {
            let log_path = self.dir.join(format!("compactor-once-{}.log", done.cycles + 1));
            let run = Command::new(self.bin_dir.join("floe-compactor"))
                .arg("--once")
                .env("FLOE_STORE", self.store_url())
                .env("FLOE_LOG", "warn")
                .stderr(std::fs::File::create(&log_path)?)
                .kill_on_drop(true)
                .output();
            let log = log_path.display();
            let out = tokio::time::timeout(COMPACTION_CYCLE_LIMIT, run)
                .await
                .map_err(|_| format!("floe-compactor --once ran over {COMPACTION_CYCLE_LIMIT:?}; see {log}"))?
                .map_err(|e| format!("cannot start floe-compactor: {e}"))?;
            let cycle = CycleCounts::parse(&out.stdout)
                .filter(|_| out.status.success())
                .ok_or_else(|| format!("floe-compactor --once failed ({}); see {log}", out.status))?;
            if cycle.failed_runs > 0 {
                return Err(format!("floe-compactor --once: {} merge runs failed", cycle.failed_runs).into());
            }
            done.cycles += 1;
            done.merged_runs += cycle.merged_runs;
            done.merged_batches += cycle.merged_batches;
            done.segment_gets += cycle.segment_requests.get;
            done.segment_get_bytes += cycle.segment_requests.get_bytes;
            if cycle.merged_runs == 0 {
                return Ok(done);
            }
        }
        Err(format!("the bucket was still being merged after {MAX_COMPACTION_CYCLES} compactor cycles").into())
    }

    /// A standalone compactor with `env` on top of the defaults.
    pub fn spawn_compactor(&self, i: usize, env: &[(&str, &str)]) -> Result<Child, Err> {
        let log = std::fs::File::create(self.dir.join(format!("compactor-{i}.log")))?;
        Ok(Command::new(self.bin_dir.join("floe-compactor"))
            .env("FLOE_STORE", self.store_url())
            .env("FLOE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compactor_cycle_is_read_from_the_last_line_it_prints() {
        let line = br#"{"truncated":0,"merged_runs":3,"merged_batches":96,"failed_runs":0,"snapshot":null}"#;
        let mut printed = b"something else first\n".to_vec();
        printed.extend_from_slice(line);
        printed.push(b'\n');
        let c = CycleCounts::parse(&printed).unwrap();
        assert_eq!((c.merged_runs, c.merged_batches, c.failed_runs), (3, 96, 0));
        assert!(CycleCounts::parse(b"CycleReport { merged_runs: 3 }").is_none());
        assert!(CycleCounts::parse(b"").is_none());
    }

    #[test]
    fn a_pinned_agent_is_started_through_taskset_on_its_cpus() {
        let procs = Procs::new("/tmp/run".into(), "/bin/floe".into(), None, Vec::new());
        let plain = procs.agent_command();
        assert_eq!(plain.as_std().get_program(), "/bin/floe/floe-agent");
        let pinned = procs.with_agent_cpus(Some("0-1".to_owned())).agent_command();
        assert_eq!(pinned.as_std().get_program(), "taskset");
        let args: Vec<_> = pinned.as_std().get_args().collect();
        assert_eq!(args, ["--cpu-list", "0-1", "/bin/floe/floe-agent"]);
    }

    /// Panics are found in the agents' and compactors' logs, and only there.
    #[test]
    fn panics_are_counted_in_the_processes_logs() {
        let dir = tempfile::tempdir().unwrap();
        let panic = "\nthread 'tokio-rt-worker' (7) panicked at compactor/src/merge.rs:1:1:\na bug\n";
        std::fs::write(dir.path().join("agent-1.log"), "a warning\n").unwrap();
        std::fs::write(dir.path().join("agent-2.log"), format!("{panic}{panic}")).unwrap();
        std::fs::write(dir.path().join("compactor-0.log"), panic).unwrap();
        std::fs::write(dir.path().join("bench.txt"), panic).unwrap();
        let procs = Procs::new(dir.path().to_owned(), "/bin/floe".into(), None, Vec::new());
        let found = procs.panics_logged().unwrap();
        assert_eq!(found, [("agent-2.log".to_owned(), 2), ("compactor-0.log".to_owned(), 1)]);
    }
}
