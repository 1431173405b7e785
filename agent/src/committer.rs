//! Group commit and the commit lease.
//!
//! Every commit of this agent's flushes goes through one queue: whatever
//! accumulates while a commit is in flight becomes the next entry, so a busy
//! agent writes one log entry per store round trip, not one per flush.
//!
//! With the lease on (`--commit-lease`), one agent at a time holds a lease
//! recorded in the log, and the others send their entries to it over HTTP,
//! so the whole cluster writes about one metadata PUT per round trip. The
//! lease is only an optimisation: if the holder does not answer, an agent
//! commits directly, and a retry of the same segment or producer sequence is
//! answered on apply with the original offsets, so nothing is written twice.

use std::sync::Arc;
use std::time::Duration;

use floe_broker::entry::Op;
use floe_broker::{Committed, MetadataLog};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use ulid::Ulid;

use crate::essential::essential;
use crate::peers::PeerAuth;

/// Entries at most in one group commit.
const MAX_GROUP: usize = 1024;

/// The lease's name in the log.
pub const COMMIT_LEASE: &str = "commit";

#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Where other agents reach this one.
    pub url: String,
    /// Lease term on the log clock.
    pub term: Duration,
    /// How long a follower waits for the holder before committing directly.
    pub forward_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct GroupSettings {
    /// After the first entry of a group arrives, wait this long for more
    /// (0: commit at once; entries that arrive during a commit form the next group).
    pub window: Duration,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Failed(Arc<floe_broker::Error>),
    #[error("this agent does not hold the commit lease")]
    NotHolder,
    #[error("the agent is shutting down")]
    Closed,
}

struct Submission {
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<Committed, CommitError>>,
}

/// `POST /internal/v1/commit` body.
#[derive(Serialize, Deserialize)]
pub struct ForwardedOps {
    pub ops: Vec<Op>,
}

pub struct Committer {
    log: Arc<MetadataLog>,
    id: Ulid,
    auth: Arc<PeerAuth>,
    lease: Option<LeaseSettings>,
    group: GroupSettings,
    http: reqwest::Client,
    queue: mpsc::Sender<Submission>,
    /// Cancelled when the agent stops: it takes and renews the lease no more,
    /// so others need not wait out a term for an agent that is gone.
    stopping: CancellationToken,
}

impl Committer {
    pub fn start(
        log: Arc<MetadataLog>,
        auth: Arc<PeerAuth>,
        lease: Option<LeaseSettings>,
        group: GroupSettings,
        tasks: &TaskTracker,
        stopping: CancellationToken,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(MAX_GROUP);
        let timeout = lease.as_ref().map_or(Duration::from_secs(2), |l| l.forward_timeout);
        let http = auth.client(Some(timeout));
        let id = log.node().ulid();
        let committer = Arc::new(Self { id, log, auth, lease, group, http, queue, stopping: stopping.clone() });
        tasks.spawn(essential("the committer", group_commits(Arc::downgrade(&committer), rx, stop)));
        if committer.lease.is_some() {
            tasks.spawn(keep_lease(Arc::downgrade(&committer), stopping));
        }
        committer
    }

    /// Commits `ops` as part of one entry: through the lease holder when
    /// another agent holds the lease, else in this agent's next group commit.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<Committed, CommitError> {
        if self.lease.is_some() {
            let holder = self.log.state().valid_lease(COMMIT_LEASE).map(|l| (l.holder, l.url.clone()));
            if let Some((holder, url)) = holder.filter(|(h, _)| *h != self.id) {
                match self.forward(&url, holder, &ops).await {
                    Ok(done) => return Ok(done),
                    Err(e) => tracing::debug!(%holder, error = %e, "lease holder did not commit; committing directly"),
                }
            }
        }
        self.submit(ops).await
    }

    /// Commits entries sent by another agent that expects to reach lease
    /// holder `expected`, if this agent is that holder and holds the lease.
    pub async fn commit_for_follower(&self, expected: Ulid, ops: Vec<Op>) -> Result<Committed, CommitError> {
        let holds = expected == self.id
            && self.lease.is_some()
            && self.log.state().valid_lease(COMMIT_LEASE).is_some_and(|l| l.holder == self.id);
        if !holds {
            return Err(CommitError::NotHolder);
        }
        self.submit(ops).await
    }

    async fn submit(&self, ops: Vec<Op>) -> Result<Committed, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Submission { ops, reply }).await.map_err(|_| CommitError::Closed)?;
        answer.await.unwrap_or(Err(CommitError::Closed))
    }

    async fn forward(&self, url: &str, holder: Ulid, ops: &[Op]) -> Result<Committed, String> {
        let body = ForwardedOps { ops: ops.to_vec() };
        let request = self.auth.sign(self.http.post(format!("{url}/internal/v1/commit")), holder);
        let resp = request.json(&body).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("holder answered {}", resp.status()));
        }
        resp.json::<Committed>().await.map_err(|e| e.to_string())
    }

    /// A lease op to add to the next entry: acquire when nobody holds a valid
    /// lease, renew once half of ours has passed.
    fn lease_op(&self) -> Option<Op> {
        let settings = self.lease.as_ref().filter(|_| !self.stopping.is_cancelled())?;
        let term_ms = settings.term.as_millis() as u64;
        let state = self.log.state();
        let wanted = match state.valid_lease(COMMIT_LEASE) {
            None => true,
            Some(l) => l.holder == self.id && l.expires_ms.saturating_sub(state.log_clock_ms) < term_ms / 2,
        };
        wanted.then(|| Op::AcquireLease {
            name: COMMIT_LEASE.into(),
            holder: self.id,
            url: settings.url.clone(),
            term_ms,
        })
    }
}

/// Drains the queue: everything waiting becomes one entry. Once `stop` is
/// cancelled, submissions already queued are still committed; new ones get
/// `Closed`.
///
/// # Cancel safety
/// Not cancel safe: dropped mid-commit, the submitters learn `Closed`
/// although their entry may land. Stop it with `stop` instead.
async fn group_commits(
    committer: std::sync::Weak<Committer>,
    mut rx: mpsc::Receiver<Submission>,
    stop: CancellationToken,
) {
    let mut stopping = false;
    // The window bounds how often this agent commits, not how long an entry
    // waits: one that arrives a window or more after the last commit ended
    // goes at once, so commits are never closer together than before.
    let mut last_done: Option<tokio::time::Instant> = None;
    loop {
        let first = tokio::select! {
            first = rx.recv() => first,
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                rx.close();
                continue;
            }
        };
        let Some(first) = first else { return };
        let Some(committer) = committer.upgrade() else { return };
        if let Some(done) = last_done.filter(|_| !committer.group.window.is_zero()) {
            tokio::time::sleep_until(done + committer.group.window).await;
        }
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        let sizes: Vec<usize> = group.iter().map(|s| s.ops.len()).collect();
        let mut ops: Vec<Op> = group.iter_mut().flat_map(|s| std::mem::take(&mut s.ops)).collect();
        ops.extend(committer.lease_op());
        if ops.is_empty() {
            for s in group {
                let _ = s.reply.send(Ok(Committed { seq: committer.log.applied(), outcomes: Vec::new() }));
            }
            continue;
        }
        let committed = committer.log.commit(ops).await;
        last_done = Some(tokio::time::Instant::now());
        match committed {
            Ok(done) => {
                let mut outcomes = done.outcomes.into_iter();
                for (s, n) in group.into_iter().zip(sizes) {
                    let mine = outcomes.by_ref().take(n).collect();
                    let _ = s.reply.send(Ok(Committed { seq: done.seq, outcomes: mine }));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for s in group {
                    let _ = s.reply.send(Err(CommitError::Failed(e.clone())));
                }
            }
        }
    }
}

/// Acquires the lease when nobody holds it (renewals ride on group commits).
///
/// # Cancel safety
/// Cancel safe: an acquisition cut short is made again, by this agent or another.
async fn keep_lease(committer: std::sync::Weak<Committer>, stop: CancellationToken) {
    loop {
        let Some(c) = committer.upgrade() else { return };
        let Some(settings) = c.lease.clone() else { return };
        if c.log.state().valid_lease(COMMIT_LEASE).is_none()
            && let Err(e) = c.submit(Vec::new()).await
        {
            tracing::debug!(error = %e, "could not acquire the commit lease");
        }
        drop(c);
        tokio::select! {
            () = tokio::time::sleep(settings.term / 4) => {}
            () = stop.cancelled() => return,
        }
    }
}
