//! What a group's coordinator does with a request, over the group's
//! in-memory membership and the log's applied state. Where the request runs
//! is `routing`'s business.

use std::collections::BTreeMap;
use std::time::Duration;

use floe_broker::MetadataLog;
use floe_broker::entry::{GroupOffset, LeaseRef, Op};
use floe_broker::state::OpOutcome;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::membership::{GroupState, Member, OffsetReset, Position};
use super::{ConsumeScope, GroupRecord, GroupReply, GroupRequest, MemberView, SeekTo, TopicPartition};
use crate::budget::Held;
use crate::error::{Error, Invalid, Result};
use crate::reader::{FetchError, FetchRequest, Reader, hold_for};

/// Members one group may hold: what a client can make a coordinator keep.
const MAX_MEMBERS: usize = 10_000;

/// One group, coordinated by this agent in one tenure of its lease.
pub(super) struct Coordinator<'a> {
    pub log: &'a MetadataLog,
    pub reader: &'a Reader,
    pub group: &'a str,
    pub tenure: LeaseRef,
    pub state: &'a tokio::sync::Mutex<GroupState>,
    /// Cancelled when the agent stops: a long-poll answers with what it has.
    pub stopping: &'a CancellationToken,
}

impl Coordinator<'_> {
    /// Runs `req`. `Err(NotCoordinator)` means the tenure is over: the log
    /// refused an offset commit stamped with it.
    pub async fn execute(&self, req: GroupRequest) -> Result<GroupReply> {
        match req {
            GroupRequest::Join { topics, session_timeout_ms, auto_offset_reset, name } => {
                self.join(topics, session_timeout_ms, auto_offset_reset, name).await
            }
            GroupRequest::Heartbeat { member_id } => {
                let mut s = self.state.lock().await;
                member(&mut s, &member_id)?.last_seen = Instant::now();
                view(&s, &member_id)
            }
            GroupRequest::Subscribe { member_id, mut topics } => {
                topics.sort();
                topics.dedup();
                let partitions = subscribed_partitions(self.log, &topics, true)?;
                let mut s = self.state.lock().await;
                let m = member(&mut s, &member_id)?;
                m.last_seen = Instant::now();
                m.topics = topics;
                let all = all_partitions(self.log, &s, partitions);
                s.rebalance(&all);
                view(&s, &member_id)
            }
            GroupRequest::Seek { member_id, positions } => {
                let mut s = self.state.lock().await;
                let m = member(&mut s, &member_id)?;
                m.last_seen = Instant::now();
                // All or nothing: every partition is checked before any position moves.
                let mut moved = Vec::with_capacity(positions.len());
                for p in positions {
                    let tp = (p.topic.clone(), p.partition);
                    if !m.assignments.contains(&tp) {
                        return Err(Error::NotAssigned { topic: p.topic, partition: p.partition });
                    }
                    let state = self.log.state();
                    let part = state
                        .partition(&p.topic, p.partition)
                        .ok_or_else(|| Error::PartitionNotFound { topic: p.topic.clone(), partition: p.partition })?;
                    let to = match p.to {
                        SeekTo::Offset(o) => o,
                        SeekTo::Beginning => part.log_start_offset,
                        SeekTo::End => part.high_watermark,
                    };
                    let topic_id = state.topic(&p.topic).map_or(0, |t| t.id);
                    moved.push((tp, Position { offset: to, topic_id }));
                }
                m.positions.extend(moved);
                view(&s, &member_id)
            }
            GroupRequest::Leave { member_id } => {
                let mut s = self.state.lock().await;
                member(&mut s, &member_id)?;
                s.members.remove(&member_id);
                let all = all_partitions(self.log, &s, BTreeMap::new());
                s.rebalance(&all);
                Ok(GroupReply::Left)
            }
            GroupRequest::Commit { member_id, generation, offsets, scope } => {
                self.commit(&member_id, generation, offsets, &scope).await
            }
            GroupRequest::Fetch { member_id, max_records, max_bytes, timeout_ms, scope } => {
                self.fetch(&member_id, max_records, max_bytes, Duration::from_millis(timeout_ms), &scope).await
            }
            GroupRequest::Describe => {
                let s = self.state.lock().await;
                let members = s
                    .members
                    .iter()
                    .map(|(id, m)| MemberView {
                        member_id: id.clone(),
                        topics: m.topics.clone(),
                        assignments: assignments(m),
                    })
                    .collect();
                Ok(GroupReply::Described { generation: s.generation, members })
            }
        }
    }

    async fn join(
        &self,
        topics: Vec<String>,
        session_timeout_ms: u64,
        reset: OffsetReset,
        name: Option<String>,
    ) -> Result<GroupReply> {
        let mut topics = topics;
        topics.sort();
        topics.dedup();
        let partitions = subscribed_partitions(self.log, &topics, name.is_some())?;
        let mut s = self.state.lock().await;
        if s.members.len() >= MAX_MEMBERS {
            return Err(Error::invalid(Invalid::Request, format!("a group holds at most {MAX_MEMBERS} members")));
        }
        let id = match name {
            Some(name) if s.members.contains_key(&name) => return Err(Error::MemberExists { member_id: name }),
            Some(name) => name,
            None => format!("{}-{}", self.group, self.log.node().ulid().to_string().to_lowercase()),
        };
        s.members.insert(
            id.clone(),
            Member {
                topics,
                session_timeout: Duration::from_millis(session_timeout_ms.clamp(1_000, 300_000)),
                reset,
                last_seen: Instant::now(),
                assignments: Vec::new(),
                positions: BTreeMap::new(),
                next_partition: 0,
            },
        );
        let all = all_partitions(self.log, &s, partitions);
        s.rebalance(&all);
        let assignments = assignments(&s.members[&id]);
        Ok(GroupReply::Joined { member_id: id, generation: s.generation, assignments })
    }

    /// The group stays locked until the commit is in the log, so a rebalance
    /// cannot slip between the generation check and the commit, and commits
    /// of one group land in the order checked.
    async fn commit(
        &self,
        member_id: &str,
        generation: Option<u64>,
        offsets: Vec<GroupOffset>,
        scope: &ConsumeScope,
    ) -> Result<GroupReply> {
        let mut s = self.state.lock().await;
        let current = s.generation;
        let m = member(&mut s, member_id)?;
        m.last_seen = Instant::now();
        if let Some(generation) = generation.filter(|g| *g != current) {
            return Err(Error::IllegalGeneration { generation, current });
        }
        let offsets = if offsets.is_empty() && generation.is_none() {
            let positions = m.positions.iter();
            positions
                .map(|((topic, partition), pos)| GroupOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: pos.offset,
                    // The incarnation the position was read in: the log
                    // refuses it if the topic has been deleted since.
                    topic_id: Some(pos.topic_id),
                })
                .collect()
        } else {
            offsets
        };
        if let Some(o) = offsets.iter().find(|o| !scope.allows(&o.topic)) {
            return Err(out_of_scope(&o.topic));
        }
        if offsets.is_empty() {
            return Ok(GroupReply::Committed);
        }
        let mut offsets = offsets;
        check_offsets(self.log, &mut offsets).await?;
        let first_topic = offsets.first().map(|o| o.topic.clone()).unwrap_or_default();
        // Stamped with the tenure this group state belongs to: if the lease
        // moved on meanwhile, the log refuses it.
        let op = Op::CommitOffsets { group: self.group.to_owned(), offsets, coordinator: Some(self.tenure) };
        match Error::commit_one(self.log, op).await? {
            (_, OpOutcome::OffsetsCommitted) => Ok(GroupReply::Committed),
            // A topic was deleted (and perhaps created again) since the check.
            (_, OpOutcome::TopicNotFound) => Err(Error::TopicNotFound { topic: first_topic }),
            (_, OpOutcome::NotCoordinator) => Err(Error::NotCoordinator),
            (_, other) => Err(Error::internal(format!("unexpected outcome of an offset commit: {other:?}"))),
        }
    }

    /// Reads from the member's partitions at its positions, and advances them.
    async fn fetch(
        &self,
        member_id: &str,
        max_records: usize,
        max_bytes: usize,
        timeout: Duration,
        scope: &ConsumeScope,
    ) -> Result<GroupReply> {
        let deadline = Instant::now() + timeout;
        let mut applied = self.log.subscribe();
        // The answer's records are held in the fetch-memory budget, taken
        // for all partitions at once before any is read (as the reader does
        // for one), so a member's fetch never waits holding some of it. Set
        // for a round read again, from the same partition, once its records'
        // size is taken: (that partition, the size).
        let mut retry: Option<(usize, usize)> = None;
        loop {
            let again = retry.take();
            let mut round = self.plan_round(member_id, scope, again.map(|(start, _)| start)).await?;
            let mut survey = self.survey(&round.order, round.reset);
            if survey.behind {
                // Never answer as if records acknowledged by any agent did
                // not exist (nor reset a position past what this agent
                // knows): caught up once a round, holding nothing (the
                // round's reads do not catch up).
                self.log.catch_up().await?;
                // Its own entries are no news to this fetch's wait.
                applied.borrow_and_update();
                survey = self.survey(&round.order, round.reset);
            }
            let longest_topic = round.order.iter().map(|((t, _), _)| t.len()).max().unwrap_or(0);
            let per_record = std::mem::size_of::<GroupRecord>() + longest_topic;
            let full = hold_for(max_bytes, max_records, per_record);
            // A member waiting for records holds none of the budget. Waiting
            // for its share ends, empty, at the fetch's deadline or the
            // agent's stop: no position has moved.
            let mut held = Held::default();
            if again.is_some() || survey.readable {
                let to_hold = again.map_or(full, |(_, size)| size);
                tokio::select! {
                    biased;
                    taken = self.reader.answers().take(to_hold) => held = taken,
                    () = tokio::time::sleep_until(deadline) => return Ok(GroupReply::Records { records: Vec::new(), held }),
                    () = self.stopping.cancelled() => return Ok(GroupReply::Records { records: Vec::new(), held }),
                }
                // The wait may have been long: positions looked at again.
                round = self.plan_round(member_id, scope, Some(round.start)).await?;
            }
            let Round { generation, order, reset, start } = round;
            let mut out = Vec::new();
            let mut moved = Vec::new();
            // Bytes of records in the answer: `max_bytes` bounds it over all partitions.
            let mut bytes = 0usize;
            for ((topic, partition), pos) in order {
                if out.len() >= max_records || bytes >= max_bytes {
                    break;
                }
                let Some(topic_id) = self.log.state().topic(&topic).map(|t| t.id) else {
                    return Err(Error::TopicNotFound { topic });
                };
                // A position in an earlier incarnation of the topic is dropped.
                let offset = match pos.filter(|p| p.topic_id == topic_id) {
                    Some(p) => p.offset,
                    None => start_position(self.log, self.group, &topic, partition, reset)?,
                };
                let at = |offset| Position { offset, topic_id };
                let req = FetchRequest {
                    topic: topic.clone(),
                    partition,
                    offset,
                    max_records: max_records - out.len(),
                    max_bytes: max_bytes - bytes,
                    timeout: Duration::ZERO,
                };
                let fetched = match self.reader.fetch_unheld(&req).await {
                    Ok(f) => f,
                    // As Kafka: with no reset policy, an out-of-range position is the consumer's to handle.
                    Err(e @ FetchError::OffsetOutOfRange { .. }) if reset == OffsetReset::None => {
                        return Err(e.into());
                    }
                    Err(FetchError::OffsetOutOfRange { log_start_offset, high_watermark, .. }) => {
                        let reset_to = if reset == OffsetReset::Latest { high_watermark } else { log_start_offset };
                        moved.push(((topic, partition), pos, at(reset_to)));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                // The reader gives each partition at least one record; only
                // the answer's first may go past `max_bytes` (as Kafka's
                // `fetch.max.bytes`), the rest wait for the next fetch.
                let mut next = fetched.next_offset;
                for (offset, record) in fetched.records {
                    let size = record.size();
                    if !out.is_empty() && bytes + size > max_bytes {
                        next = offset;
                        break;
                    }
                    bytes += size;
                    out.push(GroupRecord { topic: topic.clone(), partition, offset, record });
                }
                moved.push(((topic, partition), pos, at(next)));
            }
            let holds: usize = out.iter().map(GroupRecord::held_bytes).sum();
            if holds > held.bytes() && held.bytes() < self.reader.answers().total() && again.is_none() {
                // More than was taken (a first record larger than `max_bytes`,
                // or records committed since `readable` looked): read again,
                // from the same partition, once their size is taken, holding
                // nothing meanwhile. No position has moved.
                retry = Some((start, holds.max(full)));
                continue;
            }
            held.shrink_to(holds);
            {
                let mut s = self.state.lock().await;
                // A rebalance while reading: the records stay valid, positions of the old plan do not.
                if s.generation == generation
                    && let Some(m) = s.members.get_mut(member_id)
                {
                    // Only where nothing (a seek, another fetch) moved the
                    // position since this round read it.
                    for (tp, read_at, next) in moved {
                        if m.positions.get(&tp).copied() == read_at {
                            m.positions.insert(tp, next);
                        }
                    }
                }
            }
            if !out.is_empty() || Instant::now() >= deadline || self.stopping.is_cancelled() {
                return Ok(GroupReply::Records { records: out, held });
            }
            drop(held);
            tokio::select! {
                changed = tokio::time::timeout_at(deadline, applied.changed()) => {
                    if changed.is_err() {
                        return Ok(GroupReply::Records { records: Vec::new(), held: Held::default() });
                    }
                }
                // Nothing was read in this round: no position moved.
                () = self.stopping.cancelled() => return Ok(GroupReply::Records { records: Vec::new(), held: Held::default() }),
            }
        }
    }
}

/// Expires members whose session ran out and rebalances if any did.
pub(super) fn expire(log: &MetadataLog, group: &str, s: &mut GroupState) {
    if s.expire(Instant::now()) {
        let all = all_partitions(log, s, BTreeMap::new());
        s.rebalance(&all);
        tracing::info!(group, generation = s.generation, "members expired; rebalanced");
    }
}

/// A caller whose token may not read `topic` asked to read or commit in it.
fn out_of_scope(topic: &str) -> Error {
    Error::Forbidden { message: format!("this token may not consume from topic {topic:?}") }
}

fn member<'a>(s: &'a mut GroupState, id: &str) -> Result<&'a mut Member> {
    s.members.get_mut(id).ok_or_else(|| Error::UnknownMember { member_id: id.to_owned() })
}

/// A member's view of the group.
fn view(s: &GroupState, member_id: &str) -> Result<GroupReply> {
    let m = s.members.get(member_id).ok_or_else(|| Error::UnknownMember { member_id: member_id.to_owned() })?;
    Ok(GroupReply::Heartbeat { generation: s.generation, assignments: assignments(m), topics: m.topics.clone() })
}

fn assignments(m: &Member) -> Vec<TopicPartition> {
    m.assignments
        .iter()
        .map(|(topic, partition)| TopicPartition { topic: topic.clone(), partition: *partition })
        .collect()
}

/// Refuses offsets for partitions that do not exist or beyond their high
/// watermark (catching up first, so a partition just created elsewhere is
/// known), and stamps each with the topic incarnation it was checked against.
async fn check_offsets(log: &MetadataLog, offsets: &mut [GroupOffset]) -> Result<()> {
    let check = |offsets: &mut [GroupOffset]| -> Result<()> {
        let state = log.state();
        for o in offsets {
            let topic = state.topic(&o.topic).ok_or_else(|| Error::TopicNotFound { topic: o.topic.clone() })?;
            o.topic_id = Some(topic.id);
            let p = topic
                .partitions
                .get(o.partition as usize)
                .ok_or_else(|| Error::PartitionNotFound { topic: o.topic.clone(), partition: o.partition })?;
            if o.offset > p.high_watermark {
                return Err(Error::OffsetBeyondHighWatermark {
                    topic: o.topic.clone(),
                    partition: o.partition,
                    offset: o.offset,
                    high_watermark: p.high_watermark,
                });
            }
        }
        Ok(())
    };
    if check(offsets).is_ok() {
        return Ok(());
    }
    log.catch_up().await?;
    check(offsets)
}

/// Partition counts of `topics`, which must all exist (and be at least one,
/// unless `may_be_empty`).
fn subscribed_partitions(log: &MetadataLog, topics: &[String], may_be_empty: bool) -> Result<BTreeMap<String, u32>> {
    if topics.is_empty() && !may_be_empty {
        return Err(Error::invalid(Invalid::Request, "a member subscribes to at least one topic"));
    }
    let state = log.state();
    topics
        .iter()
        .map(|t| {
            let n = state
                .topic(t)
                .map(|x| x.partitions.len() as u32)
                .ok_or_else(|| Error::TopicNotFound { topic: t.clone() })?;
            Ok((t.clone(), n))
        })
        .collect()
}

/// Partition counts of every topic any member subscribes to.
fn all_partitions(log: &MetadataLog, s: &GroupState, mut known: BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    let state = log.state();
    for m in s.members.values() {
        for t in &m.topics {
            if let Some(topic) = state.topic(t) {
                known.insert(t.clone(), topic.partitions.len() as u32);
            }
        }
    }
    known
}

/// What one round of a member's fetch reads: its partitions in turn from
/// `start`, at the positions they had when it was planned.
struct Round {
    generation: u64,
    order: Vec<((String, u32), Option<Position>)>,
    reset: OffsetReset,
    start: usize,
}

impl Coordinator<'_> {
    /// The member's next round, from its next partition (which then moves
    /// on), or from `start` (a round read again). Copied out, and the lock
    /// let go: heartbeats must not wait for reads.
    async fn plan_round(&self, member_id: &str, scope: &ConsumeScope, start: Option<usize>) -> Result<Round> {
        let mut s = self.state.lock().await;
        let generation = s.generation;
        let m = member(&mut s, member_id)?;
        m.last_seen = Instant::now();
        // Before anything is read or any position moves.
        if let Some((topic, _)) = m.assignments.iter().find(|(t, _)| !scope.allows(t)) {
            return Err(out_of_scope(topic));
        }
        let n = m.assignments.len().max(1);
        let start = start.unwrap_or(m.next_partition) % n;
        if start == m.next_partition % n {
            m.next_partition = (start + 1) % n;
        }
        let order = (0..m.assignments.len())
            .map(|i| {
                let tp = m.assignments[(start + i) % n].clone();
                let pos = m.positions.get(&tp).copied();
                (tp, pos)
            })
            .collect();
        Ok(Round { generation, order, reset: m.reset, start })
    }

    /// What this agent's state says of a round over `order`: whether it
    /// has records to read (a position below its partition's high
    /// watermark, or below its log start: the round resets it), and
    /// whether the log should be caught up first (a position at or past
    /// the high watermark, or a partition not known here). Where the round
    /// would fail (no position to start from), it does so holding nothing.
    fn survey(&self, order: &[((String, u32), Option<Position>)], reset: OffsetReset) -> Survey {
        let state = self.log.state();
        let mut survey = Survey { readable: false, behind: false };
        for ((topic, partition), pos) in order {
            let Some((id, p)) = state.topic(topic).and_then(|t| Some((t.id, t.partitions.get(*partition as usize)?)))
            else {
                survey.behind = true;
                continue;
            };
            let offset = match pos.filter(|pos| pos.topic_id == id) {
                Some(pos) => Ok(pos.offset),
                None => start_position(self.log, self.group, topic, *partition, reset),
            };
            match offset {
                Ok(o) if o < p.high_watermark || o < p.log_start_offset => survey.readable = true,
                Ok(_) => survey.behind = true,
                Err(_) => {}
            }
        }
        survey
    }
}

/// See [`Coordinator::survey`].
struct Survey {
    readable: bool,
    behind: bool,
}

/// Where a member starts in a partition: the committed offset, else the reset policy.
fn start_position(log: &MetadataLog, group: &str, topic: &str, partition: u32, reset: OffsetReset) -> Result<u64> {
    let state = log.state();
    if let Some(o) = state.group_offsets.get(group).and_then(|g| g.get(topic)).and_then(|t| t.get(&partition)) {
        return Ok(*o);
    }
    let p = state
        .partition(topic, partition)
        .ok_or_else(|| Error::PartitionNotFound { topic: topic.to_owned(), partition })?;
    match reset {
        OffsetReset::Earliest => Ok(p.log_start_offset),
        OffsetReset::Latest => Ok(p.high_watermark),
        OffsetReset::None => Err(Error::NoCommittedOffset { topic: topic.to_owned(), partition }),
    }
}
