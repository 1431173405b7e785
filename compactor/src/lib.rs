//! `floe-compactor`: keeps a bucket small and fast to open. Each cycle it
//! enforces retention, merges small batches into per-partition segments,
//! collects garbage, writes snapshots and shrinks the log behind them. It
//! commits through the same metadata log as the agents, so any number of
//! compactors (embedded in agents, or standalone) can run at once: the
//! losers' replacements and truncations are skipped on apply.

pub mod gc;
pub mod merge;
pub mod retention;
pub mod settings;
pub mod snapshots;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use floe_broker::panics::caught;
use floe_broker::state::OpOutcome;
use floe_broker::{MetadataLog, Result};

pub use settings::CompactorSettings;

/// What one cycle did (`floe-compactor --once` prints it as one JSON line).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CycleReport {
    pub truncated: usize,
    pub merged_runs: usize,
    pub merged_batches: usize,
    /// Runs skipped because their batches could not be read or rewritten;
    /// the rest of the cycle went on.
    pub failed_runs: usize,
    pub snapshot: Option<u64>,
    pub tombstoned: usize,
    pub deleted_snapshots: usize,
    pub gc: gc::GcReport,
}

/// Counters over the compactor's life, readable while it runs.
#[derive(Debug, Default)]
pub struct CompactorStats {
    pub cycles: AtomicU64,
    pub failed_cycles: AtomicU64,
    pub failed_merge_runs: AtomicU64,
    /// Of those, runs whose merge panicked (a bug to report).
    pub merge_panics: AtomicU64,
}

pub struct Compactor {
    log: Arc<MetadataLog>,
    settings: CompactorSettings,
    stats: Arc<CompactorStats>,
    gc: gc::Gc,
    tombstoned_through: u64,
    /// Runs that failed lately, planned after all others for a while.
    failures: merge::Failures,
    /// Merge phases run, for `failures`.
    merge_cycles: u64,
}

impl Compactor {
    pub fn new(log: Arc<MetadataLog>, settings: CompactorSettings) -> Self {
        let gc = gc::Gc::new(settings.gc_grace());
        Self {
            log,
            settings,
            stats: Arc::default(),
            gc,
            tombstoned_through: 0,
            failures: merge::Failures::default(),
            merge_cycles: 0,
        }
    }

    pub fn stats(&self) -> Arc<CompactorStats> {
        self.stats.clone()
    }

    /// Counts into `stats`: one compactor started in place of another goes
    /// on with its counters.
    pub fn with_stats(mut self, stats: Arc<CompactorStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Runs cycles every `compaction_interval_ms` until `stop` resolves.
    ///
    /// # Cancel safety
    /// `stop` is looked at only between cycles, so a cycle in progress
    /// finishes. Dropping the future mid-cycle is safe too (every change
    /// is one create-only log entry; a merged segment left unreferenced is
    /// collected later), but wastes the cycle's work.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.settings.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            self.stats.cycles.fetch_add(1, Ordering::Relaxed);
            match self.run_once().await {
                Ok(r) if r != CycleReport::default() => tracing::debug!(report = ?r, "compaction cycle"),
                Ok(_) => {}
                Err(e) => {
                    self.stats.failed_cycles.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "compaction cycle failed");
                }
            }
        }
    }

    pub async fn run_once(&mut self) -> Result<CycleReport> {
        let mut report = CycleReport::default();
        self.log.catch_up().await?;
        report.truncated = self.retention().await?;
        (report.merged_runs, report.merged_batches, report.failed_runs) = self.merge().await?;

        let store = self.log.store().clone();
        let mut snaps = snapshots::list(store.as_ref()).await?;
        let newest = snaps.last().copied().unwrap_or(0);
        report.gc = self.gc.collect(&self.log, newest).await?;
        if report.gc.blocked_on_log_clock > 0 {
            // An empty entry carries a fresh commit id: it moves the log clock
            // past the waiting segments' commit windows.
            self.log.commit(Vec::new()).await?;
        }

        let applied = self.log.applied();
        let due = applied >= newest + self.settings.snapshot_every_entries.max(1);
        let wanted = report.gc.wants_snapshot_at.is_some_and(|seq| seq > newest);
        if applied > newest && (due || wanted) {
            let seq = snapshots::write(&self.log, self.settings.snapshot_format).await?;
            report.snapshot = Some(seq);
            snaps.push(seq);
            snaps.dedup();
        }
        if snaps.len() >= snapshots::KEEP_SNAPSHOTS {
            let covered = snaps[snaps.len() - snapshots::KEEP_SNAPSHOTS];
            let limit = self.settings.tombstones_per_cycle;
            let (done, shrunk) = snapshots::tombstone(store.as_ref(), covered, self.tombstoned_through, limit).await?;
            self.tombstoned_through = done;
            report.tombstoned = shrunk;
        }
        report.deleted_snapshots = snapshots::delete_old(store.as_ref(), &snaps).await?;
        Ok(report)
    }

    async fn retention(&self) -> Result<usize> {
        let ops = retention::plan(&self.log.state(), i64::try_from(self.log.node().now_ms()).unwrap_or(i64::MAX));
        if ops.is_empty() {
            return Ok(0);
        }
        let committed = self.log.commit(ops).await?;
        Ok(committed.outcomes.iter().filter(|o| **o == OpOutcome::Truncated).count())
    }

    /// Merges what the plan finds worth it; a run that cannot be read (a
    /// missing or corrupt batch) is skipped and reported, so one bad batch
    /// never stops the merges, GC, snapshots and tombstones after it.
    /// Returns (runs merged, batches merged, runs skipped).
    async fn merge(&mut self) -> Result<(usize, usize, usize)> {
        self.merge_cycles += 1;
        let cycle = self.merge_cycles;
        let runs = merge::plan(&self.log.state(), &self.settings, &self.failures.deferred(cycle));
        let store = self.log.store().clone();
        let mut ops = Vec::new();
        let mut batches = Vec::new();
        let mut failed = 0;
        for group in merge::groups(runs, self.settings.merge_read_bytes) {
            let inputs = merge::Inputs::read(&store, &group).await;
            for run in &group {
                // A run that panics (a bug, maybe on these batches) is skipped as
                // one that fails, and counted apart: otherwise the same panic
                // would end every cycle here, before garbage collection, and the
                // runs merged before it would be uploaded again each time and
                // never committed. A run changes nothing of the compactor's
                // until its op is committed below, so going on is safe.
                let merged = match inputs.panic_in(run) {
                    Some(panic) => Err((panic.to_owned(), true)),
                    None => {
                        let merging =
                            merge::execute(&store, self.log.node(), run, &inputs, self.settings.merge_batch_bytes);
                        match caught(merging).await {
                            Ok(result) => result.map_err(|e| (e.to_string(), false)),
                            Err(panic) => Err((format!("merging it panicked (a bug): {panic}"), true)),
                        }
                    }
                };
                match merged {
                    Ok(op) => {
                        self.failures.merged(run);
                        ops.push(op);
                        batches.push(run.batches.len());
                    }
                    Err((error, panicked)) => {
                        if panicked {
                            self.stats.merge_panics.fetch_add(1, Ordering::Relaxed);
                        }
                        failed += 1;
                        self.failures.failed(run, cycle);
                        self.stats.failed_merge_runs.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(topic = %run.topic, partition = run.partition, error, "skipping a merge run");
                    }
                }
            }
        }
        self.failures.forget_gone(&self.log.state());
        if ops.is_empty() {
            return Ok((0, 0, failed));
        }
        let committed = self.log.commit(ops).await?;
        let merged: Vec<usize> = committed
            .outcomes
            .iter()
            .zip(batches)
            .filter(|(o, _)| **o == OpOutcome::Replaced)
            .map(|(_, n)| n)
            .collect();
        Ok((merged.len(), merged.iter().sum(), failed))
    }
}
