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

use floe_broker::state::OpOutcome;
use floe_broker::{MetadataLog, Result};

pub use settings::CompactorSettings;

/// What one cycle did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CycleReport {
    pub truncated: usize,
    pub merged_runs: usize,
    pub merged_batches: usize,
    pub snapshot: Option<u64>,
    pub tombstoned: usize,
    pub deleted_snapshots: usize,
    pub gc: gc::GcReport,
}

pub struct Compactor {
    log: Arc<MetadataLog>,
    settings: CompactorSettings,
    gc: gc::Gc,
    tombstoned_through: u64,
}

impl Compactor {
    pub fn new(log: Arc<MetadataLog>, settings: CompactorSettings) -> Self {
        let gc = gc::Gc::new(settings.gc_grace());
        Self { log, settings, gc, tombstoned_through: 0 }
    }

    /// Runs cycles every `compaction_interval_ms` until the task is dropped.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.settings.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.run_once().await {
                Ok(r) if r != CycleReport::default() => tracing::debug!(report = ?r, "compaction cycle"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "compaction cycle failed"),
            }
        }
    }

    pub async fn run_once(&mut self) -> Result<CycleReport> {
        let mut report = CycleReport::default();
        self.log.catch_up().await?;
        report.truncated = self.retention().await?;
        (report.merged_runs, report.merged_batches) = self.merge().await?;

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
            let seq = snapshots::write(&self.log).await?;
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
        let ops = retention::plan(&self.log.state(), i64::try_from(floe_broker::clock::now_ms()).unwrap_or(i64::MAX));
        if ops.is_empty() {
            return Ok(0);
        }
        let committed = self.log.commit(ops).await?;
        Ok(committed.outcomes.iter().filter(|o| **o == OpOutcome::Truncated).count())
    }

    async fn merge(&self) -> Result<(usize, usize)> {
        let runs = merge::plan(&self.log.state(), &self.settings);
        if runs.is_empty() {
            return Ok((0, 0));
        }
        let store = self.log.store().clone();
        let mut ops = Vec::new();
        let mut batches = Vec::new();
        for run in &runs {
            let op = merge::execute(&store, run, self.settings.merge_batch_bytes).await?;
            ops.push(op);
            batches.push(run.batches.len());
        }
        let committed = self.log.commit(ops).await?;
        let merged: Vec<usize> = committed
            .outcomes
            .iter()
            .zip(batches)
            .filter(|(o, _)| **o == OpOutcome::Replaced)
            .map(|(_, n)| n)
            .collect();
        Ok((merged.len(), merged.iter().sum()))
    }
}
