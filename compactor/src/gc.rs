//! Garbage collection: the rules that decide when an object may be deleted,
//! kept in this one place (explained in docs/compactor.md).
//!
//! A segment object is deleted only when all of these hold:
//! 1. **Unreferenced**: no batch of the applied state lives in it.
//! 2. **Past its commit window on the log clock** (`!State::may_commit`): the
//!    log refuses any later `append` or `replace` of it, so no entry applied
//!    from now on can reference it again; an upload still waiting for its
//!    commit is refused too, and its agent uploads again under a new name.
//! 3. **Not in a live snapshot**: the newest snapshot was written at or after
//!    the position where 1 and 2 were first seen, so it does not reference
//!    the segment, and (by 2) no entry after it does.
//! 4. **Unreferenced for the grace period**, as seen by this compactor, so an
//!    agent that lags behind the log can still read it; an agent that finds
//!    it gone catches up and re-resolves the offset.
//!
//! Nothing here depends on clocks for safety: rule 2 uses the log clock,
//! which every agent computes identically from commit ids. Wall time only
//! delays deletion (rule 4).

use std::collections::HashMap;
use std::time::Duration;

use floe_broker::{MetadataLog, Result, keys};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use tokio::time::Instant;
use ulid::Ulid;

struct Waiting {
    since: Instant,
    /// Applied position when the segment was first seen deletable.
    seq: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub deleted: usize,
    /// Deletable, waiting for the grace period or a newer snapshot.
    pub waiting: usize,
    /// Unreferenced and old by wall time, but the log clock has not passed
    /// their commit window yet (the log is idle): a tick entry moves it.
    pub blocked_on_log_clock: usize,
    /// A snapshot at or after this position would unblock some deletions.
    pub wants_snapshot_at: Option<u64>,
}

pub struct Gc {
    grace: Duration,
    waiting: HashMap<Ulid, Waiting>,
}

impl Gc {
    pub fn new(grace: Duration) -> Self {
        Self { grace, waiting: HashMap::new() }
    }

    /// One pass over `segments/`, given the newest snapshot position.
    pub async fn collect(&mut self, log: &MetadataLog, newest_snapshot: u64) -> Result<GcReport> {
        let listed: Vec<Ulid> = log
            .store()
            .list(Some(&keys::segments_prefix()))
            .try_filter_map(|m| futures::future::ready(Ok(keys::parse_segment_id(&m.location))))
            .try_collect()
            .await?;
        let now_ms = log.node().now_ms();
        let mut report = GcReport::default();
        let mut deletable = Vec::new();
        {
            let state = log.state();
            for id in &listed {
                if state.segments.contains_key(id) {
                    self.waiting.remove(id);
                } else if state.may_commit(*id) {
                    if id.timestamp_ms().saturating_add(state.commit_window_ms) < now_ms {
                        report.blocked_on_log_clock += 1;
                    }
                } else {
                    let w = self.waiting.entry(*id).or_insert(Waiting { since: Instant::now(), seq: state.applied });
                    if newest_snapshot < w.seq {
                        report.wants_snapshot_at = Some(report.wants_snapshot_at.unwrap_or(0).max(w.seq));
                        report.waiting += 1;
                    } else if w.since.elapsed() >= self.grace {
                        deletable.push(*id);
                    } else {
                        report.waiting += 1;
                    }
                }
            }
        }
        // Forget segments someone else already deleted.
        let present: std::collections::HashSet<&Ulid> = listed.iter().collect();
        self.waiting.retain(|id, _| present.contains(id));
        for id in deletable {
            match log.store().delete(&keys::segment(id)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    self.waiting.remove(&id);
                    report.deleted += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(report)
    }
}
