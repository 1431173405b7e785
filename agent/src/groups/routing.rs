//! Where a group request runs: on the group's coordinator, the agent holding
//! the lease `group/{g}` in the log. Any agent accepts a group request and
//! forwards it to the coordinator; if the coordinator does not answer and
//! its lease has run out on the log clock, the agent claims the lease,
//! becomes the coordinator with empty membership, and members rejoin (their
//! heartbeats get `unknown_member`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floe_broker::MetadataLog;
use floe_broker::entry::{LeaseRef, Op};
use floe_broker::state::{Lease, group_lease as lease_name};
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use super::membership::GroupState;
use super::protocol::{self, Coordinator};
use super::{GroupRecord, GroupReply, GroupRequest};
use crate::error::{Error, Result};
use crate::peers::PeerAuth;
use crate::reader::Reader;

pub struct Groups {
    /// Names this agent as a coordinator in group leases.
    id: Ulid,
    log: Arc<MetadataLog>,
    reader: Reader,
    auth: Arc<PeerAuth>,
    url: String,
    term: Duration,
    http: reqwest::Client,
    local: Mutex<HashMap<String, Local>>,
    /// Cancelled when the agent stops: long-polls answer, and no coordinator
    /// lease is claimed any more.
    stopping: CancellationToken,
}

/// A group this agent coordinates, for one tenure of the group's lease. A
/// later tenure (even this agent's own, after its lease lapsed) starts from
/// empty membership: whatever the old one decided may be stale.
#[derive(Clone)]
struct Local {
    tenure: LeaseRef,
    state: Arc<tokio::sync::Mutex<GroupState>>,
}

impl Groups {
    /// `url` is where other agents reach this one; `term` the lease term on the log clock.
    pub fn new(
        log: Arc<MetadataLog>,
        reader: Reader,
        url: String,
        term: Duration,
        auth: Arc<PeerAuth>,
        stopping: CancellationToken,
    ) -> Self {
        let http = auth.client(None);
        let local = Mutex::new(HashMap::new());
        Self { id: log.node().ulid(), log, reader, auth, url, term, http, local, stopping }
    }

    fn local_groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, Local>> {
        self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Members and generation of each group this agent coordinates now. A
    /// group busy right now (an offset commit holds it across its store
    /// PUT) is left out: a metrics scrape does not wait behind the store.
    pub fn coordinated(&self) -> Vec<(String, usize, u64)> {
        self.local_groups()
            .iter()
            .filter_map(|(g, l)| l.state.try_lock().ok().map(|s| (g.clone(), s.members.len(), s.generation)))
            .collect()
    }

    /// The tenure of the group's lease this agent holds now, if any.
    fn tenure(&self, group: &str) -> Option<LeaseRef> {
        let state = self.log.state();
        state.valid_lease(&lease_name(group)).filter(|l| l.holder == self.id).map(Lease::tenure)
    }

    /// Runs `req` on the group's coordinator, wherever it is. Only a join
    /// may elect a coordinator: a request for a group that has none names a
    /// member that cannot exist, and is answered without writing anything.
    pub async fn handle(&self, group: &str, req: GroupRequest) -> Result<GroupReply> {
        for attempt in 0..3 {
            if attempt > 0 {
                self.log.catch_up().await?;
            }
            let holder = self.log.state().valid_lease(&lease_name(group)).map(|l| (l.holder, l.url.clone()));
            match holder {
                Some((h, _)) if h == self.id => return self.run_local(group, req).await,
                Some((holder, url)) => match self.forward(&url, holder, group, &req).await {
                    // Looking at a group never elects a coordinator for it.
                    Forwarded::Answer(Err(Error::NotCoordinator)) | Forwarded::NoAnswer
                        if matches!(req, GroupRequest::Describe) =>
                    {
                        return Err(Error::CoordinatorUnavailable { group: group.to_owned() });
                    }
                    // A fetch may have moved the member's positions on the
                    // coordinator before its answer was lost: run again, it
                    // would skip what the lost answer held. The member retries.
                    Forwarded::NoAnswer if matches!(req, GroupRequest::Fetch { .. }) => {
                        self.log.catch_up().await?;
                        self.claim(group).await?;
                        return Err(Error::CoordinatorUnavailable { group: group.to_owned() });
                    }
                    Forwarded::Answer(Err(Error::NotCoordinator)) | Forwarded::NoAnswer => {
                        // The holder moved on or does not answer. Claiming writes an
                        // entry either way, which also moves the log clock, so a
                        // dead holder's lease runs out even when nothing else commits.
                        self.log.catch_up().await?;
                        self.claim(group).await?;
                    }
                    Forwarded::Answer(Ok(GroupReply::Records { records, .. })) => {
                        // Counted once received (its size is not known
                        // before), as far as the budget has room then:
                        // waiting would hold the records all the same.
                        let held = self.reader.answers().take_now(records.iter().map(GroupRecord::held_bytes).sum());
                        return Ok(GroupReply::Records { records, held });
                    }
                    Forwarded::Answer(answer) => return answer,
                    Forwarded::Unintelligible => {
                        return Err(Error::CoordinatorUnavailable { group: group.to_owned() });
                    }
                },
                None if matches!(req, GroupRequest::Join { .. }) => self.claim(group).await?,
                // No coordinator: nobody is in the group.
                None if matches!(req, GroupRequest::Describe) => {
                    return Ok(GroupReply::Described { generation: 0, members: Vec::new() });
                }
                None => {
                    return Err(Error::UnknownMember { member_id: req.member_id().unwrap_or_default().to_owned() });
                }
            }
        }
        Err(Error::CoordinatorUnavailable { group: group.to_owned() })
    }

    /// Tries to become the coordinator (the log decides). A stopping agent
    /// does not: its lease would only outlive it.
    async fn claim(&self, group: &str) -> Result<()> {
        if self.stopping.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        // The state decides, not the outcome: a copy of an earlier claim may have granted it.
        self.log.commit(vec![self.acquire(group)]).await?;
        Ok(())
    }

    fn acquire(&self, group: &str) -> Op {
        Op::AcquireLease {
            name: lease_name(group),
            holder: self.id,
            url: self.url.clone(),
            term_ms: self.term.as_millis() as u64,
        }
    }

    /// The coordinator's answer, or why none came.
    async fn forward(&self, url: &str, holder: Ulid, group: &str, req: &GroupRequest) -> Forwarded {
        let request = self.auth.sign(self.http.post(format!("{url}{GROUP_ROUTE}/{group}")), holder);
        let response = match request.timeout(forward_timeout(req)).json(req).send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(group, error = %e, "group coordinator did not answer");
                return Forwarded::NoAnswer;
            }
        };
        let status = response.status();
        match response.json::<Result<GroupReply>>().await {
            Ok(answer) if status.is_success() => Forwarded::Answer(answer),
            // It answered, but not in this version's terms (a rolling
            // upgrade, or another cluster's agent at that address): it is
            // alive, so its lease is not for taking.
            other => {
                tracing::warn!(group, %status, ok = other.is_ok(), "group coordinator answered in an unknown form");
                Forwarded::Unintelligible
            }
        }
    }

    /// Runs a request forwarded by an agent that expects this one to be the
    /// coordinator `expected`.
    pub async fn run_forwarded(&self, expected: Ulid, group: &str, req: GroupRequest) -> Result<GroupReply> {
        if expected != self.id {
            return Err(Error::NotCoordinator);
        }
        self.run_local(group, req).await
    }

    /// Runs a request on this agent, which must be the coordinator, in its
    /// current tenure: a tenure this agent has no state for yet starts with
    /// no members (members of an older one get `unknown_member` and rejoin).
    async fn run_local(&self, group: &str, req: GroupRequest) -> Result<GroupReply> {
        let Some(current) = self.tenure(group) else {
            self.local_groups().remove(group);
            return Err(Error::NotCoordinator);
        };
        let local = {
            let mut groups = self.local_groups();
            match groups.get(group) {
                Some(l) if l.tenure == current => l.clone(),
                _ => {
                    tracing::info!(group, since = current.since, "coordinating the group");
                    let l = Local { tenure: current, state: Arc::default() };
                    groups.insert(group.to_owned(), l.clone());
                    l
                }
            }
        };
        let coordinator = Coordinator {
            log: &self.log,
            reader: &self.reader,
            group,
            tenure: local.tenure,
            state: &local.state,
            stopping: &self.stopping,
        };
        let answer = coordinator.execute(req).await;
        if matches!(answer, Err(Error::NotCoordinator)) {
            self.forget(group, local.tenure);
        }
        answer
    }

    /// Drops the group's state if it still belongs to `tenure`.
    fn forget(&self, group: &str, tenure: LeaseRef) {
        let mut groups = self.local_groups();
        if groups.get(group).is_some_and(|l| l.tenure == tenure) {
            groups.remove(group);
        }
    }

    /// Coordinator housekeeping: expire members, renew the leases of groups
    /// that have members (once half a term has passed; all in one entry).
    ///
    /// # Cancel safety
    /// Cancel safe: it changes only in-memory membership under each group's
    /// lock, and a renewal cut short is made again on the next round.
    pub async fn maintain(&self) {
        let groups: Vec<(String, Local)> = self.local_groups().iter().map(|(g, l)| (g.clone(), l.clone())).collect();
        let mut renew = Vec::new();
        for (group, local) in groups {
            let mut s = local.state.lock().await;
            protocol::expire(&self.log, &group, &mut s);
            let lease = self.log.state().valid_lease(&lease_name(&group)).map(|l| (l.holder, l.since, l.expires_ms));
            // Not the log clock alone: it stands still while nothing commits,
            // and the next entry of any kind carries the present time, so a
            // lease judged on it would not be renewed through a quiet spell
            // and that entry would end the tenure. This node's clock (kept
            // near the store's by the skew guard) only says when to renew;
            // the log still decides, on apply, whether the tenure goes on.
            let now = self.log.state().log_clock_ms.max(self.log.node().now_ms());
            match lease {
                // Renewed only within the tenure this state belongs to; a lapsed one is let go.
                Some((h, since, expires)) if h == self.id && since == local.tenure.since => {
                    if !self.stopping.is_cancelled()
                        && !s.members.is_empty()
                        && expires.saturating_sub(now) < self.term.as_millis() as u64 / 2
                    {
                        renew.push(self.acquire(&group));
                    }
                }
                _ => {
                    drop(s);
                    self.forget(&group, local.tenure);
                }
            }
        }
        if !renew.is_empty()
            && let Err(e) = self.log.commit(renew).await
        {
            tracing::warn!(error = %e, "could not renew group coordinator leases");
        }
    }
}

/// Where a coordinator takes forwarded requests. Versioned: the requests and
/// answers are this version's types, and an agent of another version must
/// not be mistaken for a dead one.
pub const GROUP_ROUTE: &str = "/internal/v2/groups";

/// What forwarding a request came to.
enum Forwarded {
    Answer(Result<GroupReply>),
    /// No answer in time: the coordinator may be dead or paused.
    NoAnswer,
    /// An answer this agent cannot read.
    Unintelligible,
}

/// How long a forwarded request may take: a fetch its long-poll and a
/// margin; anything else a few seconds, so a paused or cut-off coordinator
/// is soon given up on (and its lease claimed once it runs out).
fn forward_timeout(req: &GroupRequest) -> Duration {
    const MARGIN: Duration = Duration::from_secs(5);
    match req {
        GroupRequest::Fetch { timeout_ms, .. } => Duration::from_millis(*timeout_ms) + MARGIN,
        _ => MARGIN,
    }
}

#[cfg(test)]
mod tests {
    use floe_broker::Components;
    use floe_broker::clock::OffsetClock;
    use floe_broker::entry::TopicConfig;
    use object_store::memory::InMemory;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::cache::BatchCache;
    use crate::groups::OffsetReset;

    /// While nothing commits the log clock stands still; a coordinator that
    /// judged its lease on it alone never renewed, and the first entry after
    /// a quiet spell longer than the term ended its tenure: members that had
    /// heartbeated all along got `unknown_member`.
    #[tokio::test]
    async fn a_coordinator_renews_its_lease_while_nothing_commits() {
        // Time passes by moving this node's clock; the store's stays put, so
        // the skew guard is told to allow for that.
        let clock = Arc::new(OffsetClock::new(0));
        let node = Components { clock: clock.clone(), ..Components::default() };
        let settings = floe_broker::LogSettings { max_clock_skew_ms: Some(3_600_000), ..Default::default() };
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
        let (cluster, log) = floe_broker::open_with(store, node, settings).await.unwrap();
        let log = Arc::new(log);
        let chunks = crate::chunks::Chunks::new(log.store().clone(), 1 << 20, 1 << 20);
        let answers = crate::budget::MemoryBudget::new(1 << 20);
        let reader =
            Reader::new(log.clone(), BatchCache::new(1 << 20, None).unwrap(), chunks, TaskTracker::new(), answers);
        let auth = Arc::new(PeerAuth::new(cluster.cluster_id, "secret".into(), Vec::new()));
        let term = Duration::from_secs(10);
        let groups = Groups::new(log.clone(), reader, "http://unused".into(), term, auth, CancellationToken::new());
        let topic = |name: &str| Op::CreateTopic { name: name.into(), partitions: 1, config: TopicConfig::default() };
        log.commit(vec![topic("t")]).await.unwrap();
        let join = GroupRequest::Join {
            topics: vec!["t".into()],
            session_timeout_ms: 300_000,
            auto_offset_reset: OffsetReset::Earliest,
            name: None,
        };
        let Ok(GroupReply::Joined { member_id, .. }) = groups.handle("g", join).await else { panic!("join failed") };
        let heartbeat = || GroupRequest::Heartbeat { member_id: member_id.clone() };
        let tenure = || log.state().valid_lease(&lease_name("g")).map(Lease::tenure);
        let joined = tenure();
        assert!(joined.is_some());

        let before = log.applied();
        groups.maintain().await;
        assert_eq!(log.applied(), before, "a fresh lease is not renewed");

        // 6 s of a 10 s term pass and nothing commits; the member heartbeats.
        clock.set_offset_ms(6_000);
        assert!(matches!(groups.handle("g", heartbeat()).await, Ok(GroupReply::Heartbeat { .. })));
        groups.maintain().await;
        assert_eq!(log.applied(), before + 1, "renewed although the log clock stood still");
        groups.maintain().await;
        assert_eq!(log.applied(), before + 1, "renewed once, not on every round");

        // 12 s after the join, something commits (a produce, say).
        clock.set_offset_ms(12_000);
        log.commit(vec![topic("u")]).await.unwrap();
        assert_eq!(tenure(), joined, "the tenure goes on");
        let answer = groups.handle("g", heartbeat()).await;
        assert!(matches!(answer, Ok(GroupReply::Heartbeat { .. })), "the member is still known: {answer:?}");
    }
}
