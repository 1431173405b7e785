//! Counters and readiness.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use floe_broker::metered::StoreStats;
use serde::Serialize;

use super::Agent;
use crate::auth::{Action, Caller, OpenEndpoint};
use crate::cache::CacheStats;
use crate::error::{Error, Result};

/// How long a readiness check may wait for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Object-store requests and bytes by kind of key, the read cache, the log
/// position, clock skew, compaction and the commit lease. Cheap to read.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub store: StoreStats,
    pub cache: CacheStats,
    pub log: LogStats,
    pub writer: WriterStats,
    pub clock: ClockStats,
    /// None when compaction runs elsewhere.
    pub compactor: Option<CompactorStats>,
    pub lease: LeaseStats,
    pub memory: MemoryStats,
    /// CPU time spent compressing record batches since start (snapshots
    /// not counted), in microseconds, estimated from a sample of
    /// compressions (Linux; none elsewhere). With the process's CPU time,
    /// the share compression takes.
    pub compression_cpu_us: Option<u64>,
    /// The process's CPU time since start (all threads, user and system),
    /// in microseconds (Linux and macOS; none elsewhere).
    pub process_cpu_us: Option<u64>,
    pub connections: ConnectionStats,
    /// Panics of the background tasks the agent serves without (each
    /// started again after it), by task: `compactor` (when embedded),
    /// `log_follower`, `group_upkeep`. Anything above 0 is a bug to report.
    pub background_panics: std::collections::BTreeMap<&'static str, u64>,
}

/// HTTP connections open, reserved slots included, and `--max-connections`.
#[derive(Debug, Serialize)]
pub struct ConnectionStats {
    pub open: u64,
    pub limit: u64,
}

/// The process's memory, and each budget that bounds what clients can make it hold.
#[derive(Debug, Serialize)]
pub struct MemoryStats {
    /// Resident set size (Linux `VmRSS`; none elsewhere).
    pub rss_bytes: Option<u64>,
    /// Its peak since the start (`VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// Records taken and not yet answered (`--buffer-bytes`).
    pub write_buffer: Budget,
    /// Decoded batches (three quarters of `--cache-bytes`).
    pub batch_cache: Budget,
    /// Raw segment chunks (a quarter of `--cache-bytes`).
    pub chunk_cache: Budget,
    /// Request bodies of requests in flight (`--request-memory-bytes`).
    pub request_bodies: Budget,
    /// Fetched records held until their answers are sent (`--fetch-memory-bytes`).
    pub fetch_answers: Budget,
    /// What the allocator says, when the program told `report_allocator` how to ask it.
    pub allocator: Option<AllocatorStats>,
}

/// The allocator's own figures: what is allocated against what it keeps
/// resident tells fragmentation and freed pages not yet returned apart
/// from memory in use.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct AllocatorStats {
    /// Bytes in live allocations.
    pub allocated_bytes: u64,
    /// Bytes of pages the allocator holds resident (live, fragmented, freed and not yet returned).
    pub resident_bytes: u64,
}

static ALLOCATOR_STATS: std::sync::OnceLock<fn() -> Option<AllocatorStats>> = std::sync::OnceLock::new();

/// How to read the global allocator's figures; the binary that chose the allocator says.
pub fn report_allocator(read: fn() -> Option<AllocatorStats>) {
    let _ = ALLOCATOR_STATS.set(read);
}

#[derive(Debug, Serialize)]
pub struct Budget {
    pub held_bytes: u64,
    pub budget_bytes: u64,
}

/// `(VmRSS, VmHWM)` in bytes, from `/proc/self/status`.
fn resident() -> (Option<u64>, Option<u64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return (None, None) };
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[derive(Debug, Serialize)]
pub struct LogStats {
    pub applied: u64,
    /// Entries this agent committed.
    pub commits: u64,
    /// Log positions another writer took first.
    pub commit_conflicts: u64,
    /// Commits whose outcome was read back from the log.
    pub commit_settles: u64,
}

#[derive(Debug, Serialize)]
pub struct WriterStats {
    /// Bytes of records taken and not yet answered.
    pub held_bytes: usize,
    /// The most it may hold (`--buffer-bytes`).
    pub budget_bytes: usize,
    /// `None` without `--spool-dir`.
    pub spool: Option<SpoolStats>,
}

#[derive(Debug, Serialize)]
pub struct SpoolStats {
    /// Bytes of flushes in the spool, not yet known to be committed.
    pub held_bytes: usize,
    /// The most it may hold (`--spool-bytes`).
    pub budget_bytes: usize,
    /// Age of the oldest flush in it (0 when empty): with `acks=local`,
    /// how much acknowledged data only this disk holds.
    pub oldest_age_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct ClockStats {
    /// None until the store has been asked the time.
    pub offset_ms: Option<i64>,
    pub bound_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct CompactorStats {
    pub cycles: u64,
    pub failed_cycles: u64,
    pub failed_merge_runs: u64,
    /// Of those, runs whose merge panicked: a bug to report.
    pub merge_panics: u64,
}

#[derive(Debug, Serialize)]
pub struct LeaseStats {
    pub enabled: bool,
    pub holder_url: Option<String>,
}

impl Agent {
    pub async fn stats(&self, caller: &Caller) -> Result<Stats> {
        caller.check(Action::Authenticated)?;
        Ok(self.snapshot().await)
    }

    /// The counters, for `stats` and the metrics.
    pub(super) async fn snapshot(&self) -> Stats {
        let skew = self.log.skew();
        // Before the literal: the state guard taken in it must not be held across an await.
        let mut cache = self.cache.stats().await;
        cache.chunk_gets = self.chunks.gets();
        cache.chunk_bytes = self.chunks.held_bytes().await;
        let memory = self.memory(&cache);
        Stats {
            store: self.store_stats.stats(),
            cache,
            log: {
                let c = self.log.commit_stats();
                LogStats {
                    applied: self.log.applied(),
                    commits: c.commits,
                    commit_conflicts: c.conflicts,
                    commit_settles: c.settles,
                }
            },
            writer: WriterStats {
                held_bytes: self.writer.held_bytes(),
                budget_bytes: self.settings.buffer_bytes,
                spool: self.writer.spool_bytes().map(|(held_bytes, budget_bytes)| SpoolStats {
                    held_bytes,
                    budget_bytes,
                    oldest_age_ms: self.writer.spool_lag_ms().unwrap_or(0),
                }),
            },
            clock: ClockStats { offset_ms: skew.offset_ms(), bound_ms: skew.bound_ms() },
            compactor: self.compactor_stats.as_ref().map(|s| {
                let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
                CompactorStats {
                    cycles: n(&s.cycles),
                    failed_cycles: n(&s.failed_cycles),
                    failed_merge_runs: n(&s.failed_merge_runs),
                    merge_panics: n(&s.merge_panics),
                }
            }),
            lease: LeaseStats {
                enabled: self.settings.commit_lease,
                holder_url: self.log.state().valid_lease(crate::committer::COMMIT_LEASE).map(|l| l.url.clone()),
            },
            memory,
            compression_cpu_us: floe_broker::segment::compression_cpu_micros(),
            process_cpu_us: floe_broker::cpu_time::process_ns().map(|ns| ns / 1000),
            connections: ConnectionStats {
                open: self.connections.open() as u64,
                limit: self.connections.limit() as u64,
            },
            background_panics: self.panics.by_task(),
        }
    }

    fn memory(&self, cache: &CacheStats) -> MemoryStats {
        let (rss_bytes, peak_rss_bytes) = resident();
        let chunk_budget = super::chunk_budget(self.settings.cache_bytes);
        let budget = |held: u64, budget: u64| Budget { held_bytes: held, budget_bytes: budget };
        MemoryStats {
            rss_bytes,
            peak_rss_bytes,
            write_buffer: budget(self.writer.held_bytes() as u64, self.settings.buffer_bytes as u64),
            batch_cache: budget(cache.bytes, self.settings.cache_bytes - chunk_budget),
            chunk_cache: budget(cache.chunk_bytes, chunk_budget),
            request_bodies: budget(self.bodies_held() as u64, self.body_budget() as u64),
            fetch_answers: budget(self.reader.answers().held() as u64, self.reader.answers().total() as u64),
            allocator: ALLOCATOR_STATS.get().and_then(|read| read()),
        }
    }

    /// Ready when the store answers, the log is caught up, and this agent's
    /// clock is close enough to the store's for it to commit. Returns the
    /// log position.
    pub async fn ready(&self, caller: &Caller) -> Result<u64> {
        self.check_open(caller, OpenEndpoint::Readyz)?;
        if let Some(e) = self.log.skew().refusal() {
            return Err(Error::ClockSkew { message: e.to_string() });
        }
        match tokio::time::timeout(READY_TIMEOUT, self.log.catch_up()).await {
            Ok(Ok(applied)) => Ok(applied),
            // Said as its kind (the full error goes to the log): `/readyz` is open to anyone by default.
            Ok(Err(e)) => Err(Error::NotReady { reason: format!("cannot read the log: {}", Error::from(e)) }),
            Err(_) => Err(Error::NotReady { reason: "the store did not answer in time".into() }),
        }
    }
}
