//! Consumer groups. Offsets are durable in the metadata log; membership lives
//! in memory on the group's coordinator, the agent holding the lease
//! `group/{g}` in the log. Any agent accepts a group request and forwards it
//! to the coordinator; if the coordinator does not answer and its lease has
//! run out on the log clock, the agent claims the lease, becomes the
//! coordinator with empty membership, and members rejoin (their heartbeats
//! get `unknown_member`).

pub mod assign;
pub mod coordinator;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use floe_broker::entry::{GroupOffset, LeaseRef, Op};
use floe_broker::state::{Lease, OpOutcome, group_lease as lease_name};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;
use ulid::Ulid;

use crate::api::ApiError;
use crate::app::Agent;
use crate::reader::{FetchError, FetchRequest};
use coordinator::{GroupState, Member, OffsetReset};

/// A group request, as the public API receives it and as agents forward it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupRequest {
    Join { topics: Vec<String>, session_timeout_ms: u64, auto_offset_reset: OffsetReset },
    Heartbeat { member_id: String },
    Leave { member_id: String },
    Fetch { member_id: String, max_records: usize, max_bytes: usize, timeout_ms: u64 },
    Commit { member_id: String, generation: u64, offsets: Vec<GroupOffset> },
}

impl GroupRequest {
    /// The member a request speaks for (a join has none yet).
    pub fn member_id(&self) -> Option<&str> {
        match self {
            Self::Join { .. } => None,
            Self::Heartbeat { member_id }
            | Self::Leave { member_id }
            | Self::Fetch { member_id, .. }
            | Self::Commit { member_id, .. } => Some(member_id),
        }
    }
}

/// A status and JSON body, from the coordinator to whoever forwarded.
#[derive(Serialize, Deserialize)]
pub struct GroupAnswer {
    pub status: u16,
    pub body: Value,
}

pub struct Groups {
    id: Ulid,
    auth: Arc<crate::peers::PeerAuth>,
    url: String,
    term: Duration,
    http: reqwest::Client,
    local: Mutex<HashMap<String, Local>>,
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
    /// `id` names this agent as a coordinator in group leases.
    pub fn new(id: Ulid, url: String, term: Duration, auth: Arc<crate::peers::PeerAuth>) -> Self {
        let http = reqwest::Client::builder().build().unwrap_or_default();
        Self { id, auth, url, term, http, local: Mutex::new(HashMap::new()) }
    }

    fn local_groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, Local>> {
        self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tenure of the group's lease this agent holds now, if any.
    fn tenure(&self, agent: &Agent, group: &str) -> Option<LeaseRef> {
        let state = agent.log.state();
        state.valid_lease(&lease_name(group)).filter(|l| l.holder == self.id).map(Lease::tenure)
    }

    /// Runs `req` on the group's coordinator, wherever it is. Only a join
    /// may elect a coordinator: a request for a group that has none names a
    /// member that cannot exist, and is answered without writing anything.
    pub async fn handle(&self, agent: &Agent, group: &str, req: GroupRequest) -> Result<GroupAnswer, ApiError> {
        for attempt in 0..3 {
            if attempt > 0 {
                agent.log.catch_up().await?;
            }
            let holder = agent.log.state().valid_lease(&lease_name(group)).map(|l| (l.holder, l.url.clone()));
            match holder {
                Some((h, _)) if h == self.id => return Ok(self.run_local(agent, group, req).await),
                Some((holder, url)) => match self.forward(&url, holder, group, &req).await {
                    Ok(answer) if answer.status != StatusCode::MISDIRECTED_REQUEST.as_u16() => return Ok(answer),
                    // The holder moved on or does not answer. Claiming writes an
                    // entry either way, which also moves the log clock, so a
                    // dead holder's lease runs out even when nothing else commits.
                    other => {
                        if let Err(e) = other {
                            tracing::debug!(group, error = %e, "group coordinator did not answer");
                        }
                        agent.log.catch_up().await?;
                        self.claim(agent, group).await?;
                    }
                },
                None if matches!(req, GroupRequest::Join { .. }) => self.claim(agent, group).await?,
                None => return Ok(answer(Err(unknown_member(req.member_id().unwrap_or_default())))),
            }
        }
        Err(ApiError::unavailable(
            "coordinator_unavailable",
            format!("group {group:?} has no reachable coordinator yet"),
        ))
    }

    /// Tries to become the coordinator (the log decides).
    async fn claim(&self, agent: &Agent, group: &str) -> Result<(), ApiError> {
        let op = Op::AcquireLease {
            name: lease_name(group),
            holder: self.id,
            url: self.url.clone(),
            term_ms: self.term.as_millis() as u64,
        };
        // The state decides, not the outcome: a copy of an earlier claim may have granted it.
        agent.log.commit(vec![op]).await?;
        Ok(())
    }

    async fn forward(
        &self,
        url: &str,
        holder: Ulid,
        group: &str,
        req: &GroupRequest,
    ) -> Result<GroupAnswer, reqwest::Error> {
        let request = self.auth.sign(self.http.post(format!("{url}/internal/v1/groups/{group}")), holder);
        request.timeout(forward_timeout(req)).json(req).send().await?.json().await
    }

    /// Runs a request forwarded by an agent that expects this one to be the
    /// coordinator `expected`.
    pub async fn run_forwarded(&self, agent: &Agent, expected: Ulid, group: &str, req: GroupRequest) -> GroupAnswer {
        if expected != self.id {
            return answer(Err(not_coordinator()));
        }
        self.run_local(agent, group, req).await
    }

    /// Runs a request on this agent, which must be the coordinator, in its
    /// current tenure: a tenure this agent has no state for yet starts with
    /// no members (members of an older one get `unknown_member` and rejoin).
    async fn run_local(&self, agent: &Agent, group: &str, req: GroupRequest) -> GroupAnswer {
        let Some(current) = self.tenure(agent, group) else {
            self.local_groups().remove(group);
            return answer(Err(not_coordinator()));
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
        answer(self.execute(agent, group, &local, req).await)
    }

    async fn execute(&self, agent: &Agent, group: &str, local: &Local, req: GroupRequest) -> Result<Value, ApiError> {
        let state = local.state.as_ref();
        match req {
            GroupRequest::Join { topics, session_timeout_ms, auto_offset_reset } => {
                let partitions = subscribed_partitions(agent, &topics)?;
                let id = format!("{}-{}", group, agent.log.node().ulid().to_string().to_lowercase());
                let mut s = state.lock().await;
                s.members.insert(
                    id.clone(),
                    Member {
                        topics,
                        session_timeout: Duration::from_millis(session_timeout_ms.clamp(1_000, 300_000)),
                        reset: auto_offset_reset,
                        last_seen: Instant::now(),
                        assignments: Vec::new(),
                        positions: BTreeMap::new(),
                        next_partition: 0,
                    },
                );
                let all = all_partitions(agent, &s, partitions);
                s.rebalance(&all);
                let m = &s.members[&id];
                Ok(json!({ "member_id": id, "generation": s.generation, "assignments": assignments(m) }))
            }
            GroupRequest::Heartbeat { member_id } => {
                let mut s = state.lock().await;
                let generation = s.generation;
                let m = member(&mut s, &member_id)?;
                m.last_seen = Instant::now();
                Ok(json!({ "generation": generation, "assignments": assignments(m) }))
            }
            GroupRequest::Leave { member_id } => {
                let mut s = state.lock().await;
                member(&mut s, &member_id)?;
                s.members.remove(&member_id);
                let all = all_partitions(agent, &s, BTreeMap::new());
                s.rebalance(&all);
                Ok(json!({}))
            }
            GroupRequest::Commit { member_id, generation, offsets } => {
                // The group stays locked until the commit is in the log, so a
                // rebalance cannot slip between the generation check and the
                // commit, and commits of one group land in the order checked.
                {
                    let mut s = state.lock().await;
                    let current = s.generation;
                    member(&mut s, &member_id)?.last_seen = Instant::now();
                    if generation != current {
                        return Err(ApiError::new(
                            StatusCode::CONFLICT,
                            "illegal_generation",
                            format!("generation {generation} is not the group's current generation {current}"),
                        )
                        .with("generation", current));
                    }
                    check_offsets(agent, &offsets).await?;
                    // Stamped with the tenure this group state belongs to: if
                    // the lease moved on meanwhile, the log refuses it.
                    let op = Op::CommitOffsets { group: group.to_owned(), offsets, coordinator: Some(local.tenure) };
                    let done = agent.log.commit(vec![op]).await?;
                    match done.outcomes.first() {
                        Some(OpOutcome::OffsetsCommitted) => Ok(json!({})),
                        Some(OpOutcome::NotCoordinator) => {
                            drop(s);
                            self.local_groups().remove(group);
                            Err(not_coordinator())
                        }
                        other => Err(ApiError::internal(format!("unexpected outcome of an offset commit: {other:?}"))),
                    }
                }
            }
            GroupRequest::Fetch { member_id, max_records, max_bytes, timeout_ms } => {
                self.fetch(agent, group, state, &member_id, max_records, max_bytes, Duration::from_millis(timeout_ms))
                    .await
            }
        }
    }

    /// Reads from the member's partitions at its positions, and advances them.
    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        agent: &Agent,
        group: &str,
        state: &tokio::sync::Mutex<GroupState>,
        member_id: &str,
        max_records: usize,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let deadline = Instant::now() + timeout;
        let mut applied = agent.log.subscribe();
        loop {
            // Copy what is needed and release the lock: heartbeats must not wait for reads.
            let (generation, order, reset) = {
                let mut s = state.lock().await;
                let generation = s.generation;
                let m = member(&mut s, member_id)?;
                m.last_seen = Instant::now();
                let n = m.assignments.len().max(1);
                let start = m.next_partition % n;
                m.next_partition = (start + 1) % n;
                let order: Vec<((String, u32), Option<u64>)> = (0..m.assignments.len())
                    .map(|i| {
                        let tp = m.assignments[(start + i) % n].clone();
                        let pos = m.positions.get(&tp).copied();
                        (tp, pos)
                    })
                    .collect();
                (generation, order, m.reset)
            };
            let mut out = Vec::new();
            let mut moved = Vec::new();
            for ((topic, partition), pos) in order {
                if out.len() >= max_records {
                    break;
                }
                let offset = match pos {
                    Some(p) => p,
                    None => start_position(agent, group, &topic, partition, reset)?,
                };
                let req = FetchRequest {
                    topic: topic.clone(),
                    partition,
                    offset,
                    max_records: max_records - out.len(),
                    max_bytes,
                    timeout: Duration::ZERO,
                };
                let fetched = match agent.reader.fetch(&req).await {
                    Ok(f) => f,
                    // As Kafka: with no reset policy, an out-of-range position is the consumer's to handle.
                    Err(e @ FetchError::OffsetOutOfRange { .. }) if reset == OffsetReset::None => {
                        return Err(e.into());
                    }
                    Err(FetchError::OffsetOutOfRange { log_start_offset, high_watermark, .. }) => {
                        let reset_to = if reset == OffsetReset::Latest { high_watermark } else { log_start_offset };
                        moved.push(((topic, partition), reset_to));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                for (offset, r) in &fetched.records {
                    let mut v = serde_json::to_value(crate::api::OutRecord::new(*offset, r)).unwrap_or_default();
                    v["topic"] = json!(topic);
                    v["partition"] = json!(partition);
                    out.push(v);
                }
                moved.push(((topic, partition), fetched.next_offset));
            }
            {
                let mut s = state.lock().await;
                // A rebalance while reading: the records stay valid, positions of the old plan do not.
                if s.generation == generation
                    && let Some(m) = s.members.get_mut(member_id)
                {
                    m.positions.extend(moved);
                }
            }
            if !out.is_empty() || Instant::now() >= deadline {
                return Ok(json!({ "records": out }));
            }
            if tokio::time::timeout_at(deadline, applied.changed()).await.is_err() {
                return Ok(json!({ "records": [] }));
            }
        }
    }

    /// Coordinator housekeeping: expire members, renew the leases of groups
    /// that have members.
    pub async fn maintain(&self, agent: &Agent) {
        let groups: Vec<(String, Local)> = self.local_groups().iter().map(|(g, l)| (g.clone(), l.clone())).collect();
        let mut renew = Vec::new();
        for (group, local) in groups {
            let mut s = local.state.lock().await;
            if s.expire(Instant::now()) {
                let all = all_partitions(agent, &s, BTreeMap::new());
                s.rebalance(&all);
                tracing::info!(group, generation = s.generation, "members expired; rebalanced");
            }
            let lease = agent.log.state().valid_lease(&lease_name(&group)).map(|l| (l.holder, l.since, l.expires_ms));
            let clock = agent.log.state().log_clock_ms;
            match lease {
                // Renewed only within the tenure this state belongs to; a lapsed one is let go.
                Some((h, since, expires)) if h == self.id && since == local.tenure.since => {
                    if !s.members.is_empty() && expires.saturating_sub(clock) < self.term.as_millis() as u64 / 2 {
                        renew.push(Op::AcquireLease {
                            name: lease_name(&group),
                            holder: self.id,
                            url: self.url.clone(),
                            term_ms: self.term.as_millis() as u64,
                        });
                    }
                }
                _ => {
                    drop(s);
                    self.local_groups().remove(&group);
                }
            }
        }
        if !renew.is_empty()
            && let Err(e) = agent.log.commit(renew).await
        {
            tracing::warn!(error = %e, "could not renew group coordinator leases");
        }
    }
}

fn answer(result: Result<Value, ApiError>) -> GroupAnswer {
    match result {
        Ok(body) => GroupAnswer { status: 200, body },
        Err(e) => {
            let status = e.status.as_u16();
            let mut error = serde_json::Map::new();
            error.insert("code".into(), e.code.into());
            error.insert("message".into(), e.message.into());
            error.extend(e.details);
            GroupAnswer { status, body: json!({ "error": error }) }
        }
    }
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

fn member<'a>(s: &'a mut GroupState, id: &str) -> Result<&'a mut Member, ApiError> {
    s.members.get_mut(id).ok_or_else(|| unknown_member(id))
}

fn unknown_member(id: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "unknown_member", format!("member {id:?} is not in the group; join again"))
}

fn not_coordinator() -> ApiError {
    ApiError::new(StatusCode::MISDIRECTED_REQUEST, "not_coordinator", "not this group's coordinator")
}

fn assignments(m: &Member) -> Vec<Value> {
    m.assignments.iter().map(|(t, p)| json!({ "topic": t, "partition": p })).collect()
}

/// Refuses offsets for partitions that do not exist or beyond their high
/// watermark (catching up first, so a partition just created elsewhere is known).
async fn check_offsets(agent: &Agent, offsets: &[GroupOffset]) -> Result<(), ApiError> {
    let check = |agent: &Agent| -> Result<(), ApiError> {
        let state = agent.log.state();
        for o in offsets {
            let topic = state.topic(&o.topic).ok_or_else(|| ApiError::topic_not_found(&o.topic))?;
            let p = topic
                .partitions
                .get(o.partition as usize)
                .ok_or_else(|| ApiError::partition_not_found(&o.topic, o.partition))?;
            if o.offset > p.high_watermark {
                return Err(ApiError::bad_request(
                    "offset_out_of_range",
                    format!(
                        "offset {} is beyond {}/{}'s high watermark {}",
                        o.offset, o.topic, o.partition, p.high_watermark
                    ),
                )
                .with("high_watermark", p.high_watermark));
            }
        }
        Ok(())
    };
    if check(agent).is_ok() {
        return Ok(());
    }
    agent.log.catch_up().await?;
    check(agent)
}

/// Partition counts of `topics`, which must all exist.
fn subscribed_partitions(agent: &Agent, topics: &[String]) -> Result<BTreeMap<String, u32>, ApiError> {
    if topics.is_empty() {
        return Err(ApiError::bad_request("invalid_request", "a member subscribes to at least one topic"));
    }
    let state = agent.log.state();
    topics
        .iter()
        .map(|t| {
            let n = state.topic(t).map(|x| x.partitions.len() as u32).ok_or_else(|| ApiError::topic_not_found(t))?;
            Ok((t.clone(), n))
        })
        .collect()
}

/// Partition counts of every topic any member subscribes to.
fn all_partitions(agent: &Agent, s: &GroupState, mut known: BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    let state = agent.log.state();
    for m in s.members.values() {
        for t in &m.topics {
            if let Some(topic) = state.topic(t) {
                known.insert(t.clone(), topic.partitions.len() as u32);
            }
        }
    }
    known
}

/// Where a member starts in a partition: the committed offset, else the reset policy.
fn start_position(
    agent: &Agent,
    group: &str,
    topic: &str,
    partition: u32,
    reset: OffsetReset,
) -> Result<u64, ApiError> {
    let state = agent.log.state();
    if let Some(o) = state.group_offsets.get(group).and_then(|g| g.get(topic)).and_then(|t| t.get(&partition)) {
        return Ok(*o);
    }
    let p = state.partition(topic, partition).ok_or_else(|| ApiError::partition_not_found(topic, partition))?;
    match reset {
        OffsetReset::Earliest => Ok(p.log_start_offset),
        OffsetReset::Latest => Ok(p.high_watermark),
        OffsetReset::None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_committed_offset",
            format!("no committed offset for {topic}/{partition} and auto_offset_reset is none"),
        )),
    }
}
