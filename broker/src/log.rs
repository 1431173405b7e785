//! The metadata log: create-only appends at the next position, catch-up, and
//! the state folded from it.
//!
//! An agent that has applied the log through `N` commits by creating
//! `log/{N+1}`. If that key exists, it applies the entry there and tries
//! `N+2`. A PUT whose outcome is unknown is settled by reading the position
//! back and comparing commit ids. See `docs/commit-protocol.md`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, PutMode};
use tokio::sync::{Mutex, watch};

use crate::clock::SkewGuard;
use crate::components::Components;
use crate::entry::{LogEntry, LogObject, Op};
use crate::state::{OpOutcome, State};
use crate::store::{definitely_not_written, get_if_exists};
use crate::{Error, Result, keys, snapshot};

#[derive(Clone, Debug)]
pub struct LogSettings {
    /// Read-backs and retries spent settling one PUT whose outcome is unknown.
    pub settle_attempts: u32,
    /// First pause between those attempts; doubles each time, with jitter.
    pub settle_backoff: Duration,
    /// Entries fetched in parallel when replaying the log at start-up.
    pub replay_concurrency: usize,
    /// The commit window written into the `cluster` object when this process
    /// creates it; an existing cluster's value always wins (see `State::commit_window_ms`).
    pub new_cluster_commit_window_ms: u64,
    /// How far this node's clock may be from the store's before it stops
    /// committing; `None`: an eighth of the cluster's commit window, and at
    /// least `MIN_CLOCK_SKEW_BOUND_MS` (S3 reports times in whole seconds).
    pub max_clock_skew_ms: Option<u64>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            settle_attempts: 8,
            settle_backoff: Duration::from_millis(20),
            replay_concurrency: 32,
            new_cluster_commit_window_ms: crate::state::DEFAULT_COMMIT_WINDOW_MS,
            max_clock_skew_ms: None,
        }
    }
}

/// The result of a commit: where the entry landed and what applying it did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Committed {
    pub seq: u64,
    pub outcomes: Vec<OpOutcome>,
}

/// The smallest default bound on a node's clock skew: the store's clock is
/// read to one second, so anything tighter would refuse healthy nodes.
pub const MIN_CLOCK_SKEW_BOUND_MS: u64 = 2_000;

pub struct MetadataLog {
    store: Arc<dyn ObjectStore>,
    node: Components,
    skew: SkewGuard,
    settings: LogSettings,
    state: RwLock<State>,
    applied: watch::Sender<u64>,
    /// Held by whoever reads or writes the next log position, so entries are
    /// applied exactly once and in order.
    advance: Mutex<()>,
    /// Catch-ups begun, and the number of the last one that finished: lets
    /// concurrent callers share one round of GETs.
    catch_ups_begun: AtomicU64,
    catch_up_done: AtomicU64,
    counters: CommitCounters,
}

/// What this node's commits met, for its metrics.
#[derive(Debug, Default)]
struct CommitCounters {
    commits: AtomicU64,
    /// Positions another writer took first (the entry moved on to the next).
    conflicts: AtomicU64,
    /// PUTs whose outcome had to be read back from the log.
    settles: AtomicU64,
}

/// A snapshot of `CommitCounters`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub commits: u64,
    pub conflicts: u64,
    pub settles: u64,
}

impl MetadataLog {
    /// Loads the newest snapshot and replays the log after it. A bucket with
    /// no snapshot starts from an empty state with `commit_window_ms`.
    /// `node`'s clock stamps commit ids; it is measured against the store's
    /// clock first, and kept from committing while it is off (`SkewGuard`).
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        node: Components,
        settings: LogSettings,
        commit_window_ms: u64,
    ) -> Result<Self> {
        let state = snapshot::load_latest(store.as_ref()).await?.unwrap_or_else(|| State::new(commit_window_ms));
        let (applied, _) = watch::channel(state.applied);
        let bound = settings.max_clock_skew_ms.unwrap_or((state.commit_window_ms / 8).max(MIN_CLOCK_SKEW_BOUND_MS));
        let skew = SkewGuard::new(node.clone(), bound);
        skew.measure(store.as_ref()).await?;
        let log = Self {
            store,
            node,
            skew,
            settings,
            state: RwLock::new(state),
            applied,
            advance: Mutex::new(()),
            catch_ups_begun: AtomicU64::new(0),
            catch_up_done: AtomicU64::new(0),
            counters: CommitCounters::default(),
        };
        log.replay().await?;
        Ok(log)
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// This node's clock and random source.
    pub fn node(&self) -> &Components {
        &self.node
    }

    /// How this node's clock compares with the store's, and whether it may commit.
    pub fn skew(&self) -> &SkewGuard {
        &self.skew
    }

    /// The state as applied so far. Do not hold the guard across an await.
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Entries this node committed, positions it lost to other writers, and
    /// PUTs whose outcome it had to read back.
    pub fn commit_stats(&self) -> CommitStats {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CommitStats {
            commits: n(&self.counters.commits),
            conflicts: n(&self.counters.conflicts),
            settles: n(&self.counters.settles),
        }
    }

    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Changes whenever an entry is applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// How many `subscribe` receivers are alive: readers waiting for the next
    /// entry (long-polls, tails, group fetches).
    pub fn waiting(&self) -> usize {
        self.applied.receiver_count()
    }

    /// Applies every entry committed before this call; returns the position applied.
    pub async fn catch_up(&self) -> Result<u64> {
        let asked_after = self.catch_ups_begun.load(Ordering::Acquire);
        let _advance = self.advance.lock().await;
        // A catch-up that began after we asked and has finished saw everything we need.
        if self.catch_up_done.load(Ordering::Acquire) > asked_after {
            return Ok(self.applied());
        }
        let number = self.catch_ups_begun.fetch_add(1, Ordering::AcqRel) + 1;
        self.catch_up_locked().await?;
        self.catch_up_done.store(number, Ordering::Release);
        Ok(self.applied())
    }

    /// Commits `ops` as one entry at the next free position, applies it, and
    /// returns what applying it did.
    ///
    /// Refused (`Error::ClockSkew`) while this node's clock is too far from
    /// the store's: its commit id would drag the log clock with it.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<Committed> {
        self.skew.check(self.store.as_ref()).await?;
        let entry = LogEntry::with_id(self.node.ulid(), ops);
        let body = entry.encode()?;
        let _advance = self.advance.lock().await;
        let mut lost = 0u32;
        loop {
            let seq = self.applied() + 1;
            let put = self.store.put_opts(&keys::log_entry(seq), body.clone().into(), PutMode::Create.into()).await;
            match put {
                Ok(_) => {
                    self.counters.commits.fetch_add(1, Ordering::Relaxed);
                    return self.apply_committed(seq, &entry);
                }
                Err(e) if definitely_not_written(&e) => return Err(e.into()),
                Err(e) => {
                    self.counters.settles.fetch_add(1, Ordering::Relaxed);
                    if let Some(done) = self.settle(seq, &entry, &body, e).await? {
                        self.counters.commits.fetch_add(1, Ordering::Relaxed);
                        return Ok(done);
                    }
                }
            }
            self.counters.conflicts.fetch_add(1, Ordering::Relaxed);
            // Lost the race. Retrying at the next position alone would lose
            // again and again to writers that commit faster than we can read
            // one entry; go to the tail first. After several losses in a row,
            // a short random pause spreads the contenders out.
            self.catch_up_locked().await?;
            lost += 1;
            if lost >= 3 {
                tokio::time::sleep(self.node.jitter(Duration::from_millis(u64::from(lost.min(20))))).await;
            }
        }
    }

    /// Decides a PUT at `seq` that failed with `AlreadyExists` or an unknown
    /// outcome. `Some` if our entry is at `seq`; `None` if another entry is
    /// (it is applied, and the caller moves on to the next position).
    async fn settle(
        &self,
        seq: u64,
        entry: &LogEntry,
        body: &bytes::Bytes,
        first: object_store::Error,
    ) -> Result<Option<Committed>> {
        // A loop of its own on top of the store client's retries: those end
        // at an answer, but only reading the position (and re-creating what
        // is missing) decides the outcome, and a lost answer is exactly what
        // is being settled. Each round reads once; the round is the retry.
        let mut last = first.to_string();
        let mut pause = self.settings.settle_backoff;
        for _ in 0..self.settings.settle_attempts {
            match self.read_entry(seq).await {
                Ok(Some(LogObject::Entry(found))) if found.commit_id == entry.commit_id => {
                    return self.apply_committed(seq, entry).map(Some);
                }
                Ok(Some(LogObject::Entry(found))) => {
                    self.apply(seq, &found)?;
                    return Ok(None);
                }
                // We were far behind: the position was committed long ago and
                // has since been shrunk. Jump to its snapshot and try after it.
                Ok(Some(LogObject::Tombstone { snapshot })) => {
                    self.jump(seq, snapshot).await?;
                    return Ok(None);
                }
                // Nothing there: our PUT did not land (or has not yet). Creating
                // the same bytes again is safe: only one create can win.
                Ok(None) => {
                    let put =
                        self.store.put_opts(&keys::log_entry(seq), body.clone().into(), PutMode::Create.into()).await;
                    match put {
                        Ok(_) => return self.apply_committed(seq, entry).map(Some),
                        Err(e) if definitely_not_written(&e) => return Err(e.into()),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(self.node.jitter(pause)).await;
            pause = pause.saturating_mul(2);
        }
        Err(Error::CommitUnresolved { seq, attempts: self.settings.settle_attempts, last })
    }

    fn apply_committed(&self, seq: u64, entry: &LogEntry) -> Result<Committed> {
        let outcomes = self.apply(seq, entry)?;
        Ok(Committed { seq, outcomes })
    }

    fn apply(&self, seq: u64, entry: &LogEntry) -> Result<Vec<OpOutcome>> {
        // A panic part way through (a bug) would leave the entry's commit id
        // recorded and only some of its ops applied, and the next catch-up
        // would take it for applied: this node would then serve offsets no
        // other node agrees with. The process stops instead; its next start
        // folds the log again (and stops again here if the bug recurs on this
        // entry: docs/architecture.md).
        let _whole = crate::abort::AbortIfUnwinding("a panic while applying a log entry");
        let outcomes = self.state_mut().apply(seq, entry)?;
        self.applied.send_replace(seq);
        Ok(outcomes)
    }

    /// Reads one position once.
    async fn read_entry(&self, seq: u64) -> Result<Option<LogObject>> {
        match get_if_exists(self.store.as_ref(), &keys::log_entry(seq)).await? {
            Some(bytes) => LogObject::decode(seq, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Reads one position, retrying store errors a few times. On S3 the
    /// client has retried transient errors already; this covers what is
    /// left (a store without a retrying client, an error after the client
    /// gave up), because a replay reads thousands of entries and one failed
    /// GET must not fail an agent's start.
    async fn fetch_entry(&self, seq: u64) -> Result<Option<LogObject>> {
        let mut pause = self.settings.settle_backoff;
        let mut attempt = 1;
        loop {
            match get_if_exists(self.store.as_ref(), &keys::log_entry(seq)).await {
                Ok(Some(bytes)) => return LogObject::decode(seq, &bytes).map(Some),
                Ok(None) => return Ok(None),
                Err(e) if attempt >= self.settings.settle_attempts => return Err(e),
                Err(e) => tracing::debug!(seq, attempt, error = %e, "retrying a log read"),
            }
            tokio::time::sleep(self.node.jitter(pause)).await;
            pause = pause.saturating_mul(2);
            attempt += 1;
        }
    }

    /// Applies the object at `seq`: an entry in order, or for a tombstone the
    /// snapshot it points to.
    async fn apply_object(&self, seq: u64, object: LogObject) -> Result<()> {
        match object {
            LogObject::Entry(entry) => self.apply(seq, &entry).map(drop),
            LogObject::Tombstone { snapshot } => self.jump(seq, snapshot).await,
        }
    }

    /// Replaces the state with a snapshot that covers position `seq`.
    async fn jump(&self, seq: u64, snapshot_seq: u64) -> Result<()> {
        let state = match get_if_exists(self.store.as_ref(), &keys::snapshot(snapshot_seq)).await? {
            Some(bytes) => snapshot::decode(snapshot_seq, &bytes)?,
            None => snapshot::load_latest(self.store.as_ref()).await?.unwrap_or_default(),
        };
        if state.applied < seq {
            return Err(Error::corrupt(
                format!("log entry {seq}"),
                format!("tombstone points to snapshot {snapshot_seq}, but the newest snapshot is at {}", state.applied),
            ));
        }
        tracing::info!(from = self.applied(), to = state.applied, "jumped to snapshot over truncated log entries");
        let applied = state.applied;
        *self.state_mut() = state;
        self.applied.send_replace(applied);
        Ok(())
    }

    async fn catch_up_locked(&self) -> Result<()> {
        loop {
            let seq = self.applied() + 1;
            match self.fetch_entry(seq).await? {
                Some(object) => self.apply_object(seq, object).await?,
                None => return Ok(()),
            }
        }
    }

    /// Start-up: one LIST finds the tail, then entries are fetched in parallel
    /// and applied in order; a final catch-up picks up anything newer.
    async fn replay(&self) -> Result<()> {
        let _advance = self.advance.lock().await;
        let from = self.applied();
        let mut listed: Vec<u64> = self
            .store
            .list_with_offset(Some(&keys::log_prefix()), &keys::log_entry(from))
            .try_filter_map(|meta| futures::future::ready(Ok(keys::parse_log_seq(&meta.location))))
            .try_collect()
            .await?;
        listed.sort_unstable();
        // Positions are created in order, so the listing is contiguous from `from + 1`.
        let run: Vec<u64> = listed
            .into_iter()
            .skip_while(|s| *s <= from)
            .enumerate()
            .take_while(|(i, s)| *s == from + 1 + *i as u64)
            .map(|(_, s)| s)
            .collect();
        let mut entries = futures::stream::iter(run)
            .map(|seq| async move { (seq, self.fetch_entry(seq).await) })
            .buffered(self.settings.replay_concurrency.max(1));
        while let Some((seq, object)) = entries.next().await {
            let object = object?.ok_or(Error::MissingLogEntry { seq })?;
            // A tombstone may have moved us past the rest of the listing.
            if seq == self.applied() + 1 {
                self.apply_object(seq, object).await?;
            }
        }
        drop(entries);
        self.catch_up_locked().await
    }
}
