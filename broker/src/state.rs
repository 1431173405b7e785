//! Broker state: a pure, deterministic fold over a snapshot and the log entries
//! after it. Only ordered maps and the entries' own contents are used, so two
//! agents that apply the same entries hold equal states, byte for byte when
//! serialised.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::entry::{BatchId, FlushId, GroupOffset, LeaseRef, LogEntry, Op, PlacedBatch, TopicConfig};
use crate::segment::{BatchMeta, ProducerStamp};
use crate::{Error, Result};

/// How long after its upload a segment may still be committed (measured on
/// the log clock). Garbage collection waits well beyond it.
pub const DEFAULT_COMMIT_WINDOW_MS: u64 = 60_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Log position of the last applied entry (0: nothing applied yet).
    pub applied: u64,
    /// The largest commit-id timestamp applied so far. It only moves forward,
    /// and it is the same for every agent at the same position.
    pub log_clock_ms: u64,
    /// A segment whose ULID time is more than this behind the log clock can no
    /// longer be committed: once the log clock has passed it, garbage
    /// collection may delete the segment without racing a late commit.
    pub commit_window_ms: u64,
    pub topics: BTreeMap<String, Topic>,
    /// Segments that hold live batches.
    pub segments: BTreeMap<Ulid, SegmentRef>,
    /// Idempotent producers by id.
    pub producers: BTreeMap<u64, Producer>,
    pub next_producer_id: u64,
    /// Leases by name (`commit`, `group/{g}`), as last granted (see `valid_lease`).
    pub leases: BTreeMap<String, Lease>,
    /// Committed consumer-group offsets: group → topic → partition → next offset to read.
    pub group_offsets: BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>>,
    /// Segments appended while they can still be committed (their ULID time
    /// is within the commit window), with what each batch became: a re-commit
    /// of one (a lease holder's lost reply, a retried settle) is answered with
    /// it and appends nothing, whatever was merged or truncated since. Older
    /// segments need no entry: the log refuses to commit them at all.
    #[serde(default)]
    pub appended: BTreeMap<Ulid, Vec<Placement>>,
    /// Commit ids of the entries applied within the commit window, with their
    /// positions: the same entry created again at another position (after a
    /// settle found only a tombstone at its first one) changes nothing. Older
    /// entries are refused whole, so none can be missed.
    #[serde(default)]
    pub recent_commits: BTreeMap<Ulid, u64>,
    /// Each agent spool's last committed flush (`FlushId::seq`). Kept for as
    /// long as the log lives (one number per spool ever used): a flush
    /// replayed from a spool after any delay appends nothing twice.
    #[serde(default)]
    pub spools: BTreeMap<Ulid, u64>,
}

impl Lease {
    /// This lease's current tenure, as fenced ops name it.
    pub fn tenure(&self) -> LeaseRef {
        LeaseRef { holder: self.holder, since: self.since }
    }
}

/// The lease through which the group `group`'s coordinator is elected.
const GROUP_LEASE_PREFIX: &str = "group/";

pub fn group_lease(group: &str) -> String {
    format!("{GROUP_LEASE_PREFIX}{group}")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: Ulid,
    pub url: String,
    /// On the log clock.
    pub expires_ms: u64,
    /// The log position that began this holder's current tenure (renewals
    /// keep it): names the tenure in fenced ops such as offset commits.
    #[serde(default)]
    pub since: u64,
}

/// How many of a producer's latest batches per partition are remembered, so a
/// retry of any of them is answered with its original offsets (Kafka keeps 5).
pub const PRODUCER_RECENT_BATCHES: usize = 8;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    pub epoch: u32,
    /// Topic → partition → sequence state.
    pub partitions: BTreeMap<String, BTreeMap<u32, ProducerPartition>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerPartition {
    /// The sequence the next batch must start at.
    pub next_sequence: u64,
    pub recent: Vec<RecentBatch>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentBatch {
    pub sequence: u64,
    pub records: u32,
    pub base_offset: u64,
}

impl Default for State {
    fn default() -> Self {
        Self::new(DEFAULT_COMMIT_WINDOW_MS)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    /// Batches of this segment still in some partition's index.
    pub live_batches: u32,
    /// Written by a merge (never merged again), not by an agent's flush.
    #[serde(default)]
    pub merged: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub partitions: Vec<Partition>,
    #[serde(default)]
    pub config: TopicConfig,
    /// This incarnation of the name: the log position that created it (0 for
    /// topics created before incarnations were recorded). Ops computed on a
    /// topic carry it, so none lands in a later topic of the same name.
    #[serde(default)]
    pub id: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub log_start_offset: u64,
    /// The next offset to be assigned.
    pub high_watermark: u64,
    /// Base offset → where that batch lives.
    pub batches: BTreeMap<u64, StoredBatch>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBatch {
    pub segment: Ulid,
    pub pos: u64,
    pub len: u32,
    pub records: u32,
    pub max_timestamp: i64,
}

impl StoredBatch {
    fn new(segment: Ulid, meta: &BatchMeta) -> Self {
        Self { segment, pos: meta.pos, len: meta.len, records: meta.records, max_timestamp: meta.max_timestamp }
    }
}

/// What became of one committed batch. Every outcome but `At` leaves the
/// partition unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Appended at this base offset.
    At(u64),
    /// A producer's retry of a batch already in the log at this base offset.
    Duplicate(u64),
    /// Its topic or partition did not exist.
    NoPartition,
    /// Its producer epoch is older than the producer's current one.
    Fenced,
    /// Its sequence does not follow the producer's last batch in the partition.
    OutOfOrder { expected: u64 },
    /// No such producer id (or an epoch that was never handed out).
    UnknownProducer,
}

impl Placement {
    /// The base offset the batch's records have, if they are in the log.
    pub fn base(&self) -> Option<u64> {
        match self {
            Self::At(b) | Self::Duplicate(b) => Some(*b),
            _ => None,
        }
    }
}

/// What applying one op did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum OpOutcome {
    TopicCreated,
    TopicAlreadyExisted,
    TopicUpdated,
    TopicDeleted,
    TopicNotFound,
    /// Base offset of each batch in the op, in order.
    Appended(Vec<Placement>),
    /// The segment is older than the commit window allows; nothing was appended.
    SegmentTooOld,
    /// The op's spool flush was committed before (its segment since
    /// forgotten, or uploaded again under a new name): nothing was appended.
    FlushAlreadyCommitted,
    /// An earlier flush of the same spool in this entry was refused, so this
    /// one is too: a spool's flushes are committed in order or not at all.
    FlushBlocked,
    Truncated,
    Replaced,
    ProducerReady {
        id: u64,
        epoch: u32,
    },
    ProducerNotFound,
    LeaseGranted {
        expires_ms: u64,
    },
    LeaseHeld {
        holder: Ulid,
    },
    OffsetsCommitted,
    /// An offset commit from a coordinator whose lease tenure is over: nothing changed.
    NotCoordinator,
    /// The entry's commit id is older than the commit window: nothing in it was applied.
    EntryTooOld,
    /// The same entry (by commit id) was applied before, at `seq`; this copy changed nothing.
    AlreadyCommitted {
        seq: u64,
    },
    /// A truncation or replacement that no longer applies (the data moved on); nothing changed.
    Skipped,
}

impl State {
    /// This state with every partition's batch index left empty (a
    /// snapshot stores those apart). Every field is named: one added to
    /// `State` must be decided on here.
    pub(crate) fn without_batch_indexes(&self) -> State {
        let topics = self
            .topics
            .iter()
            .map(|(name, t)| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| Partition {
                        log_start_offset: p.log_start_offset,
                        high_watermark: p.high_watermark,
                        batches: BTreeMap::new(),
                    })
                    .collect();
                (name.clone(), Topic { partitions, config: t.config, id: t.id })
            })
            .collect();
        let State {
            applied,
            log_clock_ms,
            commit_window_ms,
            topics: _,
            segments,
            producers,
            next_producer_id,
            leases,
            group_offsets,
            appended,
            recent_commits,
            spools,
        } = self;
        State {
            applied: *applied,
            log_clock_ms: *log_clock_ms,
            commit_window_ms: *commit_window_ms,
            topics,
            segments: segments.clone(),
            producers: producers.clone(),
            next_producer_id: *next_producer_id,
            leases: leases.clone(),
            group_offsets: group_offsets.clone(),
            appended: appended.clone(),
            recent_commits: recent_commits.clone(),
            spools: spools.clone(),
        }
    }

    pub fn new(commit_window_ms: u64) -> Self {
        Self {
            applied: 0,
            log_clock_ms: 0,
            commit_window_ms,
            topics: BTreeMap::new(),
            segments: BTreeMap::new(),
            producers: BTreeMap::new(),
            next_producer_id: 0,
            leases: BTreeMap::new(),
            group_offsets: BTreeMap::new(),
            appended: BTreeMap::new(),
            recent_commits: BTreeMap::new(),
            spools: BTreeMap::new(),
        }
    }

    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name)
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Option<&Partition> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }

    /// The lease called `name`, while the log clock has not passed its term.
    /// The groups whose coordinator lease has not expired, with the lease.
    pub fn group_coordinators(&self) -> impl Iterator<Item = (&str, &Lease)> {
        self.leases
            .iter()
            .filter(|(_, l)| l.expires_ms > self.log_clock_ms)
            .filter_map(|(name, l)| name.strip_prefix(GROUP_LEASE_PREFIX).map(|g| (g, l)))
    }

    pub fn valid_lease(&self, name: &str) -> Option<&Lease> {
        self.leases.get(name).filter(|l| l.expires_ms > self.log_clock_ms)
    }

    /// Whether a segment uploaded, or an entry created, at this ULID's time
    /// may still be committed.
    pub fn may_commit(&self, id: Ulid) -> bool {
        id.timestamp_ms().saturating_add(self.commit_window_ms) >= self.log_clock_ms
    }

    /// Applies the entry at log position `seq`, which must be the next one.
    ///
    /// An entry older than the commit window is refused whole, and a second
    /// copy of an entry already applied changes nothing: so an entry takes
    /// effect at most once, wherever and however often it is created.
    pub fn apply(&mut self, seq: u64, entry: &LogEntry) -> Result<Vec<OpOutcome>> {
        if seq != self.applied + 1 {
            return Err(Error::OutOfOrder { expected: self.applied + 1, got: seq });
        }
        let outcomes = if !self.may_commit(entry.commit_id) {
            vec![OpOutcome::EntryTooOld; entry.ops.len()]
        } else if let Some(first) = self.recent_commits.get(&entry.commit_id).copied() {
            entry.ops.iter().map(|op| self.repeated_op(first, op)).collect()
        } else {
            self.log_clock_ms = self.log_clock_ms.max(entry.commit_id.timestamp_ms());
            self.recent_commits.insert(entry.commit_id, seq);
            self.forget_expired();
            // Spools with a flush refused in this entry: their later flushes wait for it.
            let mut blocked = Vec::new();
            entry.ops.iter().map(|op| self.apply_in_order(seq, entry.format, op, &mut blocked)).collect()
        };
        self.applied = seq;
        Ok(outcomes)
    }

    /// What an op of an entry applied before at `first` answers now.
    fn repeated_op(&self, first: u64, op: &Op) -> OpOutcome {
        match op {
            Op::Append { segment, .. } => match self.appended.get(segment) {
                Some(placements) => OpOutcome::Appended(placements.clone()),
                None => OpOutcome::AlreadyCommitted { seq: first },
            },
            _ => OpOutcome::AlreadyCommitted { seq: first },
        }
    }

    /// Drops what the log clock has made unnecessary: dedup records for
    /// segments and entries past the commit window (ULIDs sort by time, so
    /// they are at the front), and leases that have expired.
    fn forget_expired(&mut self) {
        let live = |s: &Self, id: &Ulid| s.may_commit(*id);
        while let Some((id, _)) = self.appended.first_key_value() {
            if live(self, id) {
                break;
            }
            self.appended.pop_first();
        }
        while let Some((id, _)) = self.recent_commits.first_key_value() {
            if live(self, id) {
                break;
            }
            self.recent_commits.pop_first();
        }
        let clock = self.log_clock_ms;
        self.leases.retain(|_, l| l.expires_ms > clock);
    }

    /// Applies `op`, unless it is a spool flush behind a refused one of its spool.
    fn apply_in_order(&mut self, seq: u64, format: u32, op: &Op, blocked: &mut Vec<Ulid>) -> OpOutcome {
        let spool = match op {
            Op::Append { flush: Some(f), .. } => Some(f.spool),
            _ => None,
        };
        if spool.is_some_and(|s| blocked.contains(&s)) {
            return OpOutcome::FlushBlocked;
        }
        let outcome = self.apply_op(seq, format, op);
        if let Some(s) = spool.filter(|_| outcome == OpOutcome::SegmentTooOld) {
            blocked.push(s);
        }
        outcome
    }

    fn apply_op(&mut self, seq: u64, format: u32, op: &Op) -> OpOutcome {
        match op {
            Op::CreateTopic { name, partitions, config } => {
                if self.topics.contains_key(name) {
                    return OpOutcome::TopicAlreadyExisted;
                }
                let partitions = (0..*partitions).map(|_| Partition::default()).collect();
                // Numbered only by entries of the format that numbers them:
                // every agent, replaying or loading a snapshot, agrees.
                let id = if format >= crate::entry::TOPIC_FORMAT { seq } else { 0 };
                self.topics.insert(name.clone(), Topic { partitions, config: *config, id });
                OpOutcome::TopicCreated
            }
            Op::UpdateTopic { name, config } => match self.topics.get_mut(name) {
                Some(t) => {
                    t.config = *config;
                    OpOutcome::TopicUpdated
                }
                None => OpOutcome::TopicNotFound,
            },
            Op::Append { segment, batches, flush } => self.append(*segment, batches, *flush),
            Op::AcquireLease { name, holder, url, term_ms } => {
                let since = match self.valid_lease(name) {
                    Some(l) if l.holder != *holder => return OpOutcome::LeaseHeld { holder: l.holder },
                    Some(l) => l.since,
                    None => seq,
                };
                let expires_ms = self.log_clock_ms.saturating_add(*term_ms);
                self.leases.insert(name.clone(), Lease { holder: *holder, url: url.clone(), expires_ms, since });
                OpOutcome::LeaseGranted { expires_ms }
            }
            Op::CommitOffsets { group, offsets, coordinator } => {
                // Fenced on apply: a coordinator that was cut off and lost its
                // lease cannot move offsets once another tenure has begun.
                let tenure = self.valid_lease(&group_lease(group)).map(Lease::tenure);
                if coordinator.is_some() && *coordinator != tenure {
                    return OpOutcome::NotCoordinator;
                }
                // All or nothing: offsets checked against a topic since deleted do not apply.
                let stale =
                    |o: &GroupOffset| o.topic_id.is_some_and(|id| self.topics.get(&o.topic).is_none_or(|t| t.id != id));
                if offsets.iter().any(stale) {
                    return OpOutcome::TopicNotFound;
                }
                let g = self.group_offsets.entry(group.clone()).or_default();
                for o in offsets {
                    g.entry(o.topic.clone()).or_default().insert(o.partition, o.offset);
                }
                OpOutcome::OffsetsCommitted
            }
            Op::InitProducer { producer_id: None } => {
                let id = self.next_producer_id;
                self.next_producer_id += 1;
                self.producers.insert(id, Producer::default());
                OpOutcome::ProducerReady { id, epoch: 0 }
            }
            // A new epoch fences the old one; sequences start again at 0.
            Op::InitProducer { producer_id: Some(id) } => match self.producers.get_mut(id) {
                Some(p) => {
                    *p = Producer { epoch: p.epoch + 1, partitions: BTreeMap::new() };
                    OpOutcome::ProducerReady { id: *id, epoch: p.epoch }
                }
                None => OpOutcome::ProducerNotFound,
            },
            Op::Truncate { topic, partition, log_start_offset, topic_id } => {
                if topic_id.is_some_and(|id| self.topics.get(topic).is_none_or(|t| t.id != id)) {
                    return OpOutcome::Skipped;
                }
                self.truncate(topic, *partition, *log_start_offset)
            }
            Op::DeleteTopic { name, id } => self.delete_topic(name, *id),
            Op::Replace { topic, partition, replaced, segment, batches } => {
                self.replace(topic, *partition, replaced, *segment, batches)
            }
        }
    }

    fn append(&mut self, segment: Ulid, batches: &[BatchMeta], flush: Option<FlushId>) -> OpOutcome {
        if let Some(known) = self.appended.get(&segment) {
            return OpOutcome::Appended(known.clone());
        }
        if flush.is_some_and(|f| self.flush_committed(f)) {
            return OpOutcome::FlushAlreadyCommitted;
        }
        if !self.may_commit(segment) || self.segments.contains_key(&segment) {
            return OpOutcome::SegmentTooOld;
        }
        if let Some(f) = flush {
            self.spools.insert(f.spool, f.seq);
        }
        let placements: Vec<Placement> = batches.iter().map(|b| self.place(segment, b)).collect();
        let live_batches = placements.iter().filter(|p| matches!(p, Placement::At(_))).count() as u32;
        if live_batches > 0 {
            self.segments.insert(segment, SegmentRef { live_batches, merged: false });
        }
        self.appended.insert(segment, placements.clone());
        OpOutcome::Appended(placements)
    }

    /// Whether this spool flush, or a later one of its spool, was committed.
    /// (A spool commits its flushes in order, so a later one means this one
    /// was committed or skipped for good.)
    pub fn flush_committed(&self, flush: FlushId) -> bool {
        self.spools.get(&flush.spool).is_some_and(|last| *last >= flush.seq)
    }

    /// How the log would place an idempotent producer's batch of `records`
    /// stamped `stamp` in `topic`/`partition`: `At` (with the offset it would
    /// get) when it is the next batch, `Duplicate` for a retry of a batch still
    /// remembered, or why it is refused. Apply uses this; so do agents, to
    /// answer a retry of a committed batch without writing anything.
    pub fn check_sequence(&self, topic: &str, partition: u32, stamp: ProducerStamp, records: u32) -> Placement {
        let Some(p) = self.partition(topic, partition) else { return Placement::NoPartition };
        let Some(producer) = self.producers.get(&stamp.id) else { return Placement::UnknownProducer };
        if stamp.epoch < producer.epoch {
            return Placement::Fenced;
        }
        if stamp.epoch > producer.epoch {
            return Placement::UnknownProducer;
        }
        let seq = producer.partitions.get(topic).and_then(|t| t.get(&partition));
        let next = seq.map_or(0, |s| s.next_sequence);
        if stamp.sequence == next {
            return Placement::At(p.high_watermark);
        }
        let retry = seq.and_then(|s| s.recent.iter().find(|r| r.sequence == stamp.sequence && r.records == records));
        match retry {
            Some(r) => Placement::Duplicate(r.base_offset),
            None => Placement::OutOfOrder { expected: next },
        }
    }

    /// Appends one batch, unless its producer's epoch or sequence says otherwise.
    fn place(&mut self, segment: Ulid, b: &BatchMeta) -> Placement {
        // First the incarnation: a batch of a deleted topic is nobody's
        // duplicate and nobody's next batch in a new topic of its name.
        let current = self.topics.get(&b.topic).map(|t| t.id);
        if b.topic_id.is_some_and(|id| current != Some(id)) {
            return Placement::NoPartition;
        }
        if let Some(stamp) = b.producer {
            let check = self.check_sequence(&b.topic, b.partition, stamp, b.records);
            if !matches!(check, Placement::At(_)) {
                return check;
            }
        }
        let topic = self.topics.get_mut(&b.topic).filter(|t| b.topic_id.is_none_or(|id| id == t.id));
        let Some(p) = topic.and_then(|t| t.partitions.get_mut(b.partition as usize)) else {
            return Placement::NoPartition;
        };
        let base = p.high_watermark;
        p.high_watermark += u64::from(b.records);
        p.batches.insert(base, StoredBatch::new(segment, b));
        if let Some(stamp) = b.producer
            && let Some(producer) = self.producers.get_mut(&stamp.id)
        {
            let seq = producer.partitions.entry(b.topic.clone()).or_default().entry(b.partition).or_default();
            seq.next_sequence += u64::from(b.records);
            seq.recent.push(RecentBatch { sequence: stamp.sequence, records: b.records, base_offset: base });
            if seq.recent.len() > PRODUCER_RECENT_BATCHES {
                seq.recent.remove(0);
            }
        }
        Placement::At(base)
    }

    fn delete_topic(&mut self, name: &str, id: Option<u64>) -> OpOutcome {
        match self.topics.get(name) {
            Some(t) if id.is_none_or(|id| id == t.id) => {}
            _ => return OpOutcome::TopicNotFound,
        }
        let Some(topic) = self.topics.remove(name) else { return OpOutcome::TopicNotFound };
        for p in topic.partitions {
            for (_, b) in p.batches {
                self.release(b.segment);
            }
        }
        for offsets in self.group_offsets.values_mut() {
            offsets.remove(name);
        }
        for producer in self.producers.values_mut() {
            producer.partitions.remove(name);
        }
        OpOutcome::TopicDeleted
    }

    fn truncate(&mut self, topic: &str, partition: u32, start: u64) -> OpOutcome {
        let Some(p) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(partition as usize)) else {
            return OpOutcome::Skipped;
        };
        if start <= p.log_start_offset || start > p.high_watermark {
            return OpOutcome::Skipped;
        }
        p.log_start_offset = start;
        let gone: Vec<u64> = p
            .batches
            .iter()
            .take_while(|(base, b)| *base + u64::from(b.records) <= start)
            .map(|(base, _)| *base)
            .collect();
        let released: Vec<Ulid> = gone.iter().filter_map(|base| p.batches.remove(base)).map(|b| b.segment).collect();
        for segment in released {
            self.release(segment);
        }
        OpOutcome::Truncated
    }

    fn replace(
        &mut self,
        topic: &str,
        partition: u32,
        replaced: &[BatchId],
        segment: Ulid,
        batches: &[PlacedBatch],
    ) -> OpOutcome {
        if replaced.is_empty() || self.segments.contains_key(&segment) || !self.may_commit(segment) {
            return OpOutcome::Skipped;
        }
        let Some(p) = self.topics.get(topic).and_then(|t| t.partitions.get(partition as usize)) else {
            return OpOutcome::Skipped;
        };
        // The replaced batches must be current and contiguous …
        let start = replaced[0].base_offset;
        let mut end = start;
        for r in replaced {
            match p.batches.get(&r.base_offset) {
                Some(b) if r.base_offset == end && b.segment == r.segment && b.pos == r.pos => {
                    end += u64::from(b.records)
                }
                _ => return OpOutcome::Skipped,
            }
        }
        // … and the new batches must hold exactly the same offsets.
        let mut at = start;
        for b in batches {
            let ok =
                b.base_offset == at && b.meta.records > 0 && b.meta.topic == topic && b.meta.partition == partition;
            if !ok {
                return OpOutcome::Skipped;
            }
            at += u64::from(b.meta.records);
        }
        if at != end {
            return OpOutcome::Skipped;
        }
        let Some(p) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(partition as usize)) else {
            return OpOutcome::Skipped;
        };
        let released: Vec<Ulid> =
            replaced.iter().filter_map(|r| p.batches.remove(&r.base_offset)).map(|b| b.segment).collect();
        for b in batches {
            p.batches.insert(b.base_offset, StoredBatch::new(segment, &b.meta));
        }
        self.segments.insert(segment, SegmentRef { live_batches: batches.len() as u32, merged: true });
        for s in released {
            self.release(s);
        }
        OpOutcome::Replaced
    }

    fn release(&mut self, segment: Ulid) {
        if let Some(r) = self.segments.get_mut(&segment) {
            r.live_batches = r.live_batches.saturating_sub(1);
            if r.live_batches == 0 {
                self.segments.remove(&segment);
            }
        }
    }
}

impl Partition {
    /// The batch holding `offset`, with its base offset.
    pub fn batch_at(&self, offset: u64) -> Option<(u64, &StoredBatch)> {
        let (base, b) = self.batches.range(..=offset).next_back()?;
        (offset < base + u64::from(b.records)).then_some((*base, b))
    }

    /// Batches from the one holding `offset` onwards, in offset order.
    pub fn batches_from(&self, offset: u64) -> impl Iterator<Item = (u64, &StoredBatch)> {
        let start = self.batch_at(offset).map_or(offset, |(base, _)| base);
        self.batches.range(start..).map(|(b, s)| (*b, s))
    }

    /// Bytes of the batches still in the index.
    pub fn stored_bytes(&self) -> u64 {
        self.batches.values().map(|b| u64::from(b.len)).sum()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests
mod tests {
    use super::*;
    use crate::entry::GroupOffset;
    use crate::segment::ProducerStamp;

    fn batch(topic: &str, partition: u32, records: u32) -> BatchMeta {
        BatchMeta {
            topic: topic.into(),
            partition,
            pos: 8,
            len: 40,
            records,
            max_timestamp: 5,
            producer: None,
            topic_id: None,
        }
    }

    fn create(name: &str, partitions: u32) -> LogEntry {
        LogEntry::new(vec![Op::CreateTopic { name: name.into(), partitions, config: TopicConfig::default() }])
    }

    fn append(segment: Ulid, batches: Vec<BatchMeta>) -> LogEntry {
        LogEntry::new(vec![Op::Append { segment, batches, flush: None }])
    }

    fn one(s: &mut State, entry: LogEntry) -> OpOutcome {
        let seq = s.applied + 1;
        s.apply(seq, &entry).unwrap().remove(0)
    }

    #[test]
    fn offsets_are_dense_and_assigned_in_log_order() {
        let mut s = State::default();
        s.apply(1, &create("t", 2)).unwrap();
        let a = s.apply(2, &append(Ulid::new(), vec![batch("t", 0, 3), batch("t", 1, 2), batch("t", 0, 4)])).unwrap();
        assert_eq!(a, vec![OpOutcome::Appended(vec![Placement::At(0), Placement::At(0), Placement::At(3)])]);
        let b = s.apply(3, &append(Ulid::new(), vec![batch("t", 0, 1)])).unwrap();
        assert_eq!(b, vec![OpOutcome::Appended(vec![Placement::At(7)])]);
        let p0 = s.partition("t", 0).unwrap();
        assert_eq!(p0.high_watermark, 8);
        assert_eq!(p0.batch_at(5).map(|(base, _)| base), Some(3));
        assert_eq!(p0.batch_at(8), None);
        assert_eq!(p0.batches_from(4).map(|(b, _)| b).collect::<Vec<_>>(), vec![3, 7]);
    }

    #[test]
    fn recommitting_a_segment_is_a_noop_that_returns_the_original_offsets() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let seg = Ulid::new();
        let first = s.apply(2, &append(seg, vec![batch("t", 0, 3)])).unwrap();
        let again = s.apply(3, &append(seg, vec![batch("t", 0, 3)])).unwrap();
        assert_eq!(first, again);
        assert_eq!(s.partition("t", 0).unwrap().high_watermark, 3);
    }

    #[test]
    fn batches_for_unknown_partitions_are_dropped() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let out = s.apply(2, &append(Ulid::new(), vec![batch("t", 5, 1), batch("u", 0, 1), batch("t", 0, 1)])).unwrap();
        assert_eq!(
            out,
            vec![OpOutcome::Appended(vec![Placement::NoPartition, Placement::NoPartition, Placement::At(0)])]
        );
    }

    #[test]
    fn creating_an_existing_topic_changes_nothing() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        assert_eq!(s.apply(2, &create("t", 9)).unwrap(), vec![OpOutcome::TopicAlreadyExisted]);
        assert_eq!(s.topic("t").unwrap().partitions.len(), 1);
    }

    #[test]
    fn apply_refuses_gaps_and_repeats() {
        let mut s = State::default();
        assert!(s.apply(2, &create("t", 1)).is_err());
        s.apply(1, &create("t", 1)).unwrap();
        assert!(s.apply(1, &create("u", 1)).is_err());
        assert!(s.topic("u").is_none());
    }

    #[test]
    fn a_segment_older_than_the_commit_window_is_refused() {
        let mut s = State::new(1_000);
        s.apply(1, &create("t", 1)).unwrap();
        let clock = s.log_clock_ms;
        let stale = Ulid::from_parts(clock - 5_000, 1);
        assert_eq!(one(&mut s, append(stale, vec![batch("t", 0, 1)])), OpOutcome::SegmentTooOld);
        assert_eq!(s.partition("t", 0).unwrap().high_watermark, 0);
        assert!(!s.segments.contains_key(&stale));
        assert!(matches!(one(&mut s, append(Ulid::new(), vec![batch("t", 0, 1)])), OpOutcome::Appended(_)));
    }

    #[test]
    fn truncation_drops_whole_batches_below_the_new_start() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let (a, b) = (Ulid::new(), Ulid::new());
        one(&mut s, append(a, vec![batch("t", 0, 3)]));
        one(&mut s, append(b, vec![batch("t", 0, 3)]));
        let trunc = |start| {
            LogEntry::new(vec![Op::Truncate {
                topic: "t".into(),
                partition: 0,
                log_start_offset: start,
                topic_id: None,
            }])
        };
        assert_eq!(one(&mut s, trunc(4)), OpOutcome::Truncated);
        let p = s.partition("t", 0).unwrap();
        assert_eq!((p.log_start_offset, p.batches.keys().copied().collect::<Vec<_>>()), (4, vec![3]));
        assert!(!s.segments.contains_key(&a), "a's only batch is gone");
        assert!(s.segments.contains_key(&b));
        assert_eq!(one(&mut s, trunc(2)), OpOutcome::Skipped, "the start never moves back");
        assert_eq!(one(&mut s, trunc(7)), OpOutcome::Skipped, "nor past the high watermark");
    }

    #[test]
    fn replacement_applies_only_while_the_replaced_batches_are_current() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let (a, b) = (Ulid::new(), Ulid::new());
        one(&mut s, append(a, vec![batch("t", 0, 2)]));
        one(&mut s, append(b, vec![batch("t", 0, 3)]));
        let replaced =
            vec![BatchId { base_offset: 0, segment: a, pos: 8 }, BatchId { base_offset: 2, segment: b, pos: 8 }];
        let merged = |seg: Ulid, records| Op::Replace {
            topic: "t".into(),
            partition: 0,
            replaced: replaced.clone(),
            segment: seg,
            batches: vec![PlacedBatch { base_offset: 0, meta: batch("t", 0, records) }],
        };
        assert_eq!(
            one(&mut s, LogEntry::new(vec![merged(Ulid::new(), 4)])),
            OpOutcome::Skipped,
            "record count must match"
        );
        let m = Ulid::new();
        assert_eq!(one(&mut s, LogEntry::new(vec![merged(m, 5)])), OpOutcome::Replaced);
        let p = s.partition("t", 0).unwrap();
        assert_eq!(p.batches.values().map(|b| b.segment).collect::<Vec<_>>(), vec![m]);
        assert_eq!(s.segments.keys().copied().collect::<Vec<_>>(), vec![m]);
        assert_eq!(
            one(&mut s, LogEntry::new(vec![merged(Ulid::new(), 5)])),
            OpOutcome::Skipped,
            "a second compactor loses"
        );
    }

    #[test]
    fn idempotent_producers_dedup_fence_and_order_on_apply() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let init = |id| LogEntry::new(vec![Op::InitProducer { producer_id: id }]);
        assert_eq!(one(&mut s, init(None)), OpOutcome::ProducerReady { id: 0, epoch: 0 });
        let stamped = |epoch, sequence, records| {
            let mut b = batch("t", 0, records);
            b.producer = Some(crate::segment::ProducerStamp { id: 0, epoch, sequence });
            append(Ulid::new(), vec![b])
        };
        let placed = |o: OpOutcome| match o {
            OpOutcome::Appended(p) => p[0],
            other => panic!("{other:?}"),
        };
        assert_eq!(placed(one(&mut s, stamped(0, 0, 3))), Placement::At(0));
        assert_eq!(placed(one(&mut s, stamped(0, 3, 2))), Placement::At(3));
        assert_eq!(placed(one(&mut s, stamped(0, 0, 3))), Placement::Duplicate(0), "a retry gets its original offsets");
        assert_eq!(placed(one(&mut s, stamped(0, 9, 1))), Placement::OutOfOrder { expected: 5 }, "a gap");
        assert_eq!(s.partition("t", 0).unwrap().high_watermark, 5, "neither wrote anything");
        assert_eq!(one(&mut s, init(Some(0))), OpOutcome::ProducerReady { id: 0, epoch: 1 });
        assert_eq!(placed(one(&mut s, stamped(0, 5, 1))), Placement::Fenced, "the old epoch is fenced");
        assert_eq!(placed(one(&mut s, stamped(1, 0, 1))), Placement::At(5), "the new epoch starts at 0");
        assert_eq!(placed(one(&mut s, stamped(7, 0, 1))), Placement::UnknownProducer);
        assert_eq!(one(&mut s, init(Some(42))), OpOutcome::ProducerNotFound);
    }

    /// A topic deleted and created again under its name starts empty, and
    /// nothing computed on the old one (an append accepted before the delete,
    /// a retention cut, a group's offset) lands in the new one.
    #[test]
    fn nothing_of_a_deleted_topic_lands_in_a_new_one_of_the_same_name() {
        let mut s = State::default();
        one(&mut s, create("t", 1));
        let old = s.topic("t").unwrap().id;
        let stamped = |id| BatchMeta { topic_id: Some(id), ..batch("t", 0, 3) };
        let first = Ulid::new();
        assert_eq!(one(&mut s, append(first, vec![stamped(old)])), OpOutcome::Appended(vec![Placement::At(0)]));
        let commit = |offset, id| {
            let o = GroupOffset { topic: "t".into(), partition: 0, offset, topic_id: Some(id) };
            LogEntry::new(vec![Op::CommitOffsets { group: "g".into(), offsets: vec![o], coordinator: None }])
        };
        assert_eq!(one(&mut s, commit(3, old)), OpOutcome::OffsetsCommitted);

        let delete = |id| LogEntry::new(vec![Op::DeleteTopic { name: "t".into(), id: Some(id) }]);
        assert_eq!(one(&mut s, delete(old)), OpOutcome::TopicDeleted);
        assert!(s.topic("t").is_none());
        assert!(!s.segments.contains_key(&first), "its segments are released, for GC to collect");
        assert!(!s.group_offsets["g"].contains_key("t"), "groups forget their offsets in it");
        assert_eq!(one(&mut s, delete(old)), OpOutcome::TopicNotFound);

        one(&mut s, create("t", 1));
        let new = s.topic("t").unwrap().id;
        assert_ne!(new, old);
        let late = Ulid::new();
        assert_eq!(
            one(&mut s, append(late, vec![stamped(old)])),
            OpOutcome::Appended(vec![Placement::NoPartition]),
            "an append accepted for the old topic"
        );
        let trunc = LogEntry::new(vec![Op::Truncate {
            topic: "t".into(),
            partition: 0,
            log_start_offset: 1,
            topic_id: Some(old),
        }]);
        one(&mut s, append(Ulid::new(), vec![stamped(new)]));
        assert_eq!(one(&mut s, trunc), OpOutcome::Skipped, "a retention cut computed on the old topic");
        assert_eq!(one(&mut s, commit(3, old)), OpOutcome::TopicNotFound, "an offset checked against the old topic");
        let p = s.partition("t", 0).unwrap();
        assert_eq!((p.log_start_offset, p.high_watermark), (0, 3), "only the new topic's own batch");
        assert!(!s.group_offsets["g"].contains_key("t"));
        // An old-format delete (no id) deletes whatever has the name.
        assert_eq!(
            one(&mut s, LogEntry::new(vec![Op::DeleteTopic { name: "t".into(), id: None }])),
            OpOutcome::TopicDeleted
        );
        assert_eq!(
            LogEntry::new(vec![Op::DeleteTopic { name: "t".into(), id: None }]).format,
            crate::entry::TOPIC_FORMAT
        );
    }

    /// A producer's late batch for a deleted topic is refused, not taken as a
    /// duplicate of its first batch in the new topic of the same name.
    #[test]
    fn a_late_idempotent_batch_of_a_deleted_topic_is_nobodys_duplicate() {
        let mut s = State::default();
        one(&mut s, create("t", 1));
        let old = s.topic("t").unwrap().id;
        let OpOutcome::ProducerReady { id, epoch } =
            one(&mut s, LogEntry::new(vec![Op::InitProducer { producer_id: None }]))
        else {
            panic!("no producer")
        };
        let stamped = |topic_id| BatchMeta {
            topic_id: Some(topic_id),
            producer: Some(ProducerStamp { id, epoch, sequence: 0 }),
            ..batch("t", 0, 3)
        };
        one(&mut s, LogEntry::new(vec![Op::DeleteTopic { name: "t".into(), id: Some(old) }]));
        one(&mut s, create("t", 1));
        let new = s.topic("t").unwrap().id;
        assert_eq!(one(&mut s, append(Ulid::new(), vec![stamped(new)])), OpOutcome::Appended(vec![Placement::At(0)]));
        let late = one(&mut s, append(Ulid::new(), vec![stamped(old)]));
        assert_eq!(late, OpOutcome::Appended(vec![Placement::NoPartition]));
    }

    /// Topics created by entries older than incarnations are numbered 0 by
    /// every agent, whether it replays them or loads a snapshot of them.
    #[test]
    fn only_entries_that_number_topics_number_them() {
        let mut s = State::default();
        let old = LogEntry { format: 2, ..create("a", 1) };
        one(&mut s, old);
        one(&mut s, create("b", 1));
        assert_eq!((s.topic("a").unwrap().id, s.topic("b").unwrap().id), (0, 2));
    }

    #[test]
    fn a_lease_is_granted_renewed_and_expires_on_the_log_clock() {
        let mut s = State::default();
        let (a, b) = (Ulid::new(), Ulid::new());
        // Each entry is created at the log clock (a minute later, after `later`).
        let acquire = |s: &State, who, term_ms| LogEntry {
            commit_id: Ulid::from_parts(s.log_clock_ms.max(1), Ulid::new().random()),
            ..LogEntry::new(vec![Op::AcquireLease {
                name: "commit".into(),
                holder: who,
                url: "http://a".into(),
                term_ms,
            }])
        };
        let acquire = |s: &mut State, who, term_ms| {
            let e = acquire(s, who, term_ms);
            one(s, e)
        };
        assert!(matches!(acquire(&mut s, a, 60_000), OpOutcome::LeaseGranted { .. }));
        assert_eq!(acquire(&mut s, b, 60_000), OpOutcome::LeaseHeld { holder: a });
        assert!(matches!(acquire(&mut s, a, 60_000), OpOutcome::LeaseGranted { .. }), "the holder renews");
        // An entry committed a minute later moves the log clock past the term.
        let later = LogEntry { commit_id: Ulid::from_parts(s.log_clock_ms + 61_000, 7), ..LogEntry::new(vec![]) };
        one_or_none(&mut s, later);
        assert!(s.valid_lease("commit").is_none());
        assert!(matches!(acquire(&mut s, b, 60_000), OpOutcome::LeaseGranted { .. }));
        assert_eq!(s.valid_lease("commit").map(|l| l.holder), Some(b));
    }

    /// Hole 4: a plain batch committed twice (a lease holder's reply lost,
    /// the follower committing directly) after a merge released its segment.
    #[test]
    fn hole4_a_plain_batch_is_not_appended_twice_after_its_segment_was_merged() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let a = Ulid::new();
        let first = one(&mut s, append(a, vec![batch("t", 0, 3)]));
        assert_eq!(first, OpOutcome::Appended(vec![Placement::At(0)]));
        let merged = LogEntry::new(vec![Op::Replace {
            topic: "t".into(),
            partition: 0,
            replaced: vec![BatchId { base_offset: 0, segment: a, pos: 8 }],
            segment: Ulid::new(),
            batches: vec![PlacedBatch { base_offset: 0, meta: batch("t", 0, 3) }],
        }]);
        assert_eq!(one(&mut s, merged), OpOutcome::Replaced);
        assert!(!s.segments.contains_key(&a), "the merge released the flush segment");
        assert_eq!(one(&mut s, append(a, vec![batch("t", 0, 3)])), first, "the original offsets");
        assert_eq!(s.partition("t", 0).unwrap().high_watermark, 3, "nothing appended twice");
    }

    /// A flush replayed from an agent's spool after a crash, re-uploaded
    /// under a new segment name (its first segment may be gone), appends
    /// nothing if the first attempt was committed, however long ago; a spool
    /// whose later flush was committed has settled every earlier one.
    #[test]
    fn a_spool_flush_is_appended_once_under_any_segment_name() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let spool = Ulid::new();
        let flush = |seq| Some(FlushId { spool, seq });
        let spooled = |seq, records| {
            LogEntry::new(vec![Op::Append {
                segment: Ulid::new(),
                batches: vec![batch("t", 0, records)],
                flush: flush(seq),
            }])
        };
        assert_eq!(one(&mut s, spooled(1, 3)), OpOutcome::Appended(vec![Placement::At(0)]));
        assert!(s.flush_committed(FlushId { spool, seq: 1 }));
        assert!(!s.flush_committed(FlushId { spool, seq: 2 }));
        assert_eq!(one(&mut s, spooled(1, 3)), OpOutcome::FlushAlreadyCommitted, "the replay under a new name");
        assert_eq!(
            one(&mut s, spooled(3, 2)),
            OpOutcome::Appended(vec![Placement::At(3)]),
            "a skipped number is no obstacle"
        );
        assert_eq!(one(&mut s, spooled(2, 4)), OpOutcome::FlushAlreadyCommitted, "settled by the later flush");
        let other = LogEntry::new(vec![Op::Append {
            segment: Ulid::new(),
            batches: vec![batch("t", 0, 1)],
            flush: Some(FlushId { spool: Ulid::new(), seq: 1 }),
        }]);
        assert_eq!(one(&mut s, other), OpOutcome::Appended(vec![Placement::At(5)]), "spools are numbered apart");
        assert_eq!(s.partition("t", 0).unwrap().high_watermark, 6);
        // A refused flush holds back its spool's later flushes in the same entry, not other spools'.
        let stale = Ulid::from_parts(0, 1);
        let fresh = |seq| Op::Append { segment: Ulid::new(), batches: vec![batch("t", 0, 1)], flush: flush(seq) };
        let elsewhere = Op::Append { segment: Ulid::new(), batches: vec![batch("t", 0, 1)], flush: None };
        let tried = LogEntry::new(vec![
            Op::Append { segment: stale, batches: vec![batch("t", 0, 1)], flush: flush(4) },
            fresh(5),
            elsewhere,
        ]);
        let outcomes = s.apply(s.applied + 1, &tried).unwrap();
        assert_eq!(outcomes[..2], [OpOutcome::SegmentTooOld, OpOutcome::FlushBlocked]);
        assert_eq!(outcomes[2], OpOutcome::Appended(vec![Placement::At(6)]));
        assert!(!s.flush_committed(FlushId { spool, seq: 4 }), "both can be tried again, in order");
        assert_eq!(tried.format, crate::entry::SPOOL_FORMAT, "builds that know no spools stop at it");
        // Remembered past the commit window, and through a snapshot.
        s.log_clock_ms += 10 * s.commit_window_ms;
        let restored = crate::snapshot::decode(s.applied, &crate::snapshot::encode(&s).unwrap()).unwrap();
        assert!(restored.flush_committed(FlushId { spool, seq: 3 }));
        // An old snapshot (no spools) still loads.
        let mut old = serde_json::to_value(&s).unwrap();
        old.as_object_mut().unwrap().remove("spools");
        assert!(serde_json::from_value::<State>(old).unwrap().spools.is_empty());
    }

    /// Hole 4, second half: a writer whose settle met a tombstone creates its
    /// entry again at the tail; the second copy must change nothing.
    #[test]
    fn hole4_an_entry_created_again_at_another_position_applies_once() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let entry = LogEntry::new(vec![
            Op::InitProducer { producer_id: None },
            Op::Append { segment: Ulid::new(), batches: vec![batch("t", 0, 2)], flush: None },
        ]);
        let first = s.apply(2, &entry).unwrap();
        let again = s.apply(3, &entry).unwrap();
        assert_eq!(again[0], OpOutcome::AlreadyCommitted { seq: 2 });
        assert_eq!(again[1], first[1], "the append answers with its original offsets");
        assert_eq!((s.next_producer_id, s.partition("t", 0).unwrap().high_watermark), (1, 2));
    }

    #[test]
    fn an_entry_older_than_the_commit_window_is_refused_whole() {
        let mut s = State::new(1_000);
        s.apply(1, &create("t", 1)).unwrap();
        let old = LogEntry {
            commit_id: Ulid::from_parts(s.log_clock_ms - 5_000, 1),
            ..LogEntry::new(vec![Op::InitProducer { producer_id: None }])
        };
        assert_eq!(one(&mut s, old), OpOutcome::EntryTooOld);
        assert!(s.producers.is_empty());
    }

    #[test]
    fn dedup_records_and_expired_leases_are_forgotten_after_the_window() {
        let mut s = State::new(1_000);
        s.apply(1, &create("t", 1)).unwrap();
        one(&mut s, append(Ulid::new(), vec![batch("t", 0, 1)]));
        let lease =
            Op::AcquireLease { name: group_lease("g"), holder: Ulid::new(), url: "http://a".into(), term_ms: 500 };
        one(&mut s, LogEntry::new(vec![lease]));
        assert_eq!((s.appended.len(), s.recent_commits.len(), s.leases.len()), (1, 3, 1));
        let later = LogEntry { commit_id: Ulid::from_parts(s.log_clock_ms + 5_000, 7), ..LogEntry::new(vec![]) };
        one_or_none(&mut s, later);
        assert_eq!((s.appended.len(), s.recent_commits.len(), s.leases.len()), (0, 1, 0));
    }

    /// Hole 3: a coordinator cut off after its generation check, whose lease
    /// passed to another tenure, cannot move the group's offsets backwards.
    #[test]
    fn hole3_a_zombie_coordinator_cannot_commit_offsets() {
        let mut s = State::default();
        s.apply(1, &create("t", 1)).unwrap();
        let (zombie, fresh) = (Ulid::new(), Ulid::new());
        let acquire = |who: Ulid, clock: u64| LogEntry {
            commit_id: Ulid::from_parts(clock, 3),
            ..LogEntry::new(vec![Op::AcquireLease {
                name: group_lease("g"),
                holder: who,
                url: "http://x".into(),
                term_ms: 10_000,
            }])
        };
        let start = s.log_clock_ms;
        one(&mut s, acquire(zombie, start));
        let zombie_tenure = LeaseRef { holder: zombie, since: s.applied };
        let commit = |offset, tenure| {
            LogEntry::new(vec![Op::CommitOffsets {
                group: "g".into(),
                offsets: vec![GroupOffset { topic: "t".into(), partition: 0, offset, topic_id: None }],
                coordinator: Some(tenure),
            }])
        };
        // The zombie's lease runs out; another agent takes the group and commits 10.
        one(&mut s, acquire(fresh, start + 11_000));
        let fresh_tenure = LeaseRef { holder: fresh, since: s.applied };
        assert_eq!(one(&mut s, commit(10, fresh_tenure)), OpOutcome::OffsetsCommitted);
        assert_eq!(one(&mut s, commit(3, zombie_tenure)), OpOutcome::NotCoordinator);
        // Even once the zombie holds the lease again, its old tenure stays fenced.
        one(&mut s, acquire(zombie, start + 22_000));
        assert_eq!(one(&mut s, commit(3, zombie_tenure)), OpOutcome::NotCoordinator);
        assert_eq!(s.group_offsets["g"]["t"][&0], 10);
    }

    fn one_or_none(s: &mut State, entry: LogEntry) {
        let seq = s.applied + 1;
        s.apply(seq, &entry).unwrap();
    }
}
