//! The actors of a run: writers, compactors, group coordinators and a
//! watcher of committed group offsets. Each records what it was told.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floe_broker::entry::{FlushId, GroupOffset, Op, TopicConfig};
use floe_broker::segment::{ProducerStamp, SegmentBuilder};
use floe_broker::state::{OpOutcome, Placement, group_lease};
use floe_broker::{Error, MetadataLog, Record, keys};
use floe_compactor::{Compactor, CompactorSettings};
use object_store::ObjectStoreExt;

use crate::World;

pub const TOPIC: &str = "t";
const GROUP: &str = "g";

/// What a writer knows about one attempt to write a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Acknowledged at this base offset.
    Acked(u64),
    /// The outcome is unknown (the records may or may not be in the log).
    Unknown,
    /// Certainly not written (it never reached a commit).
    Failed,
    /// Acknowledged from a spool (`acks=local`): replayed until committed,
    /// it must be in the log exactly once.
    Spooled,
}

#[derive(Clone, Debug)]
pub struct Attempt {
    pub writer: usize,
    pub request: usize,
    pub partition: u32,
    /// The records' values are `{tag}#{i}`. An idempotent producer's retries
    /// share their request's tag; a plain producer's attempts each have one.
    pub tag: String,
    pub records: u32,
    pub idempotent: bool,
    pub status: Status,
}

#[derive(Default)]
pub struct History {
    pub attempts: Vec<Attempt>,
    /// Every committed offset of the group, as a watcher saw it, in order.
    pub group_offsets: Vec<u64>,
    /// Nodes still running at the end, to compare their states.
    pub logs: Vec<Arc<MetadataLog>>,
}

type Shared = Rc<RefCell<History>>;

/// Runs every actor until the writers are done.
pub async fn run_actors(world: Arc<World>) -> History {
    let history: Shared = Rc::default();
    let done = Rc::new(std::cell::Cell::new(false));
    let local = tokio::task::LocalSet::new();
    let mut writers = Vec::new();
    for id in 0..world.settings.writers {
        writers.push(local.spawn_local(writer(world.clone(), history.clone(), id)));
    }
    for id in 0..2 {
        local.spawn_local(compactor(world.clone(), history.clone(), done.clone(), id));
        local.spawn_local(coordinator(world.clone(), history.clone(), done.clone()));
    }
    local.spawn_local(watcher(world.clone(), history.clone(), done.clone()));
    local
        .run_until(async {
            for w in writers {
                let _ = w.await;
            }
            done.set(true);
            // Let the others see `done` and finish their current step.
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
    drop(local);
    Rc::try_unwrap(history).map(RefCell::into_inner).unwrap_or_default()
}

async fn create_topic(world: &World, log: &MetadataLog) {
    let config = TopicConfig { retention_ms: -1, retention_bytes: -1 };
    let op = Op::CreateTopic { name: TOPIC.into(), partitions: world.settings.partitions, config };
    while log.state().topic(TOPIC).is_none() {
        if log.commit(vec![op.clone()]).await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Plain or idempotent producer: each request is retried until acknowledged
/// (or, for a plain one, given up after a few attempts), through crashes,
/// pauses, lost replies and a clock that sometimes runs minutes fast.
async fn writer(world: Arc<World>, history: Shared, id: usize) {
    let (node, clock) = world.node();
    clock.set_offset_ms(world.below(1_000) as i64 - 500);
    let mut log = world.open(&node).await;
    create_topic(&world, &log).await;
    if id % 4 == 2 {
        return spooled_writer(world, history, id, node, log).await;
    }
    let idempotent = id % 2 == 1;
    let mut producer: Option<(u64, u32)> = None;
    let mut next_sequence = 0u64;
    for request in 0..world.settings.requests {
        let partition = if idempotent { 0 } else { world.below(u64::from(world.settings.partitions)) as u32 };
        let records = 1 + world.below(3) as u32;
        let mut attempts = 0;
        loop {
            attempts += 1;
            if !idempotent && attempts > 4 {
                break;
            }
            // Writer 0 now and then runs minutes fast: it must commit nothing meanwhile.
            let fast = id == 0 && world.chance(0.1);
            clock.set_offset_ms(if fast { 120_000 } else { world.below(1_000) as i64 - 500 });
            if idempotent && producer.is_none() {
                producer = init_producer(&log).await;
                next_sequence = 0;
                if producer.is_none() {
                    continue;
                }
            }
            let stamp = producer.map(|(pid, epoch)| ProducerStamp { id: pid, epoch, sequence: next_sequence });
            let tag = if idempotent { format!("w{id}-r{request}") } else { format!("w{id}-r{request}-a{attempts}") };
            let index = {
                let mut h = history.borrow_mut();
                h.attempts.push(Attempt {
                    writer: id,
                    request,
                    partition,
                    tag: tag.clone(),
                    records,
                    idempotent,
                    status: Status::Failed,
                });
                h.attempts.len() - 1
            };
            let status = attempt(&world, &mut log, &node, partition, &tag, records, stamp, None).await;
            let acked = matches!(status, Status::Acked(_));
            history.borrow_mut().attempts[index].status = status;
            if acked {
                next_sequence += u64::from(records);
                break;
            }
            tokio::time::sleep(world.millis(50, 2_000)).await;
        }
    }
    clock.set_offset_ms(0);
    history.borrow_mut().logs.push(log);
}

/// An agent with a spool: each request is acknowledged once spooled, then
/// uploaded and committed — again and again, under a new segment name each
/// time, through crashes, pauses and unknown outcomes, as a restart replays
/// the spool — until the log has its flush. One flush at a time, in order.
async fn spooled_writer(
    world: Arc<World>,
    history: Shared,
    id: usize,
    node: floe_broker::Components,
    mut log: Arc<MetadataLog>,
) {
    let spool = node.ulid();
    for request in 0..world.settings.requests {
        let partition = world.below(u64::from(world.settings.partitions)) as u32;
        let records = 1 + world.below(3) as u32;
        let tag = format!("w{id}-r{request}");
        let flush = FlushId { spool, seq: request as u64 + 1 };
        history.borrow_mut().attempts.push(Attempt {
            writer: id,
            request,
            partition,
            tag: tag.clone(),
            records,
            idempotent: true,
            status: Status::Spooled,
        });
        for _ in 0..10_000 {
            let _ = attempt(&world, &mut log, &node, partition, &tag, records, None, Some(flush)).await;
            let _ = log.catch_up().await;
            if log.state().flush_committed(flush) {
                break;
            }
            tokio::time::sleep(world.millis(50, 2_000)).await;
        }
        // A crash after the commit, before the spool file was removed: the
        // restart replays the flush, possibly long after.
        if world.chance(0.2) {
            tokio::time::sleep(world.millis(0, 90_000)).await;
            log = world.open(&node).await;
            let _ = attempt(&world, &mut log, &node, partition, &tag, records, None, Some(flush)).await;
        }
    }
    history.borrow_mut().logs.push(log);
}

async fn init_producer(log: &MetadataLog) -> Option<(u64, u32)> {
    match log.commit(vec![Op::InitProducer { producer_id: None }]).await {
        Ok(done) => match done.outcomes.first() {
            Some(OpOutcome::ProducerReady { id, epoch }) => Some((*id, *epoch)),
            _ => None,
        },
        Err(_) => None,
    }
}

/// One attempt: upload a segment, commit it, perhaps crash, pause or lose
/// the reply on the way. Returns what the writer may tell its client.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    world: &World,
    log: &mut Arc<MetadataLog>,
    node: &floe_broker::Components,
    partition: u32,
    tag: &str,
    records: u32,
    stamp: Option<ProducerStamp>,
    flush: Option<FlushId>,
) -> Status {
    let values: Vec<Record> = (0..records)
        .map(|i| Record { key: None, value: Bytes::from(format!("{tag}#{i}")), timestamp: 1, headers: vec![] })
        .collect();
    let mut builder = SegmentBuilder::new();
    if builder.add_batch(TOPIC, partition, &values).is_err() {
        return Status::Failed;
    }
    let Ok((bytes, mut batches)) = builder.finish() else { return Status::Failed };
    for b in &mut batches {
        b.producer = stamp;
    }
    let segment = node.ulid();
    if log.store().put(&keys::segment(segment), bytes.into()).await.is_err() {
        return Status::Failed;
    }
    // A zombie: paused between upload and commit, maybe past the commit window.
    if world.chance(0.05) {
        tokio::time::sleep(world.millis(1_000, 90_000)).await;
    }
    // A crash before the commit: the upload is garbage, nothing is written.
    if world.chance(0.03) {
        *log = world.open(node).await;
        return Status::Failed;
    }
    let op = Op::Append { segment, batches, flush };
    // A crash during the commit, at whatever await it reached.
    let deadline = if world.chance(0.05) { world.millis(0, 300) } else { Duration::from_secs(3_600) };
    let committed = match tokio::time::timeout(deadline, log.commit(vec![op.clone()])).await {
        Err(_) => {
            *log = world.open(node).await;
            return Status::Unknown;
        }
        Ok(Err(Error::ClockSkew { .. })) => return Status::Failed,
        Ok(Err(_)) => return Status::Unknown,
        Ok(Ok(c)) => c,
    };
    let mut status = placement(&committed.outcomes);
    // The reply was lost (a lease holder that answered too late): the same
    // segment is committed again later, after merges may have moved it.
    if matches!(status, Status::Acked(_)) && world.chance(0.15) {
        tokio::time::sleep(world.millis(0, 20_000)).await;
        status = match log.commit(vec![op]).await {
            Ok(again) => placement(&again.outcomes),
            Err(_) => Status::Unknown,
        };
    }
    status
}

fn placement(outcomes: &[OpOutcome]) -> Status {
    match outcomes.first() {
        Some(OpOutcome::Appended(p)) => match p.first() {
            Some(Placement::At(base) | Placement::Duplicate(base)) => Status::Acked(*base),
            // Refused on apply: nothing of it is in the log.
            _ => Status::Failed,
        },
        // Too old, or a copy of an entry applied earlier: an earlier attempt may have landed.
        _ => Status::Unknown,
    }
}

async fn compactor(world: Arc<World>, history: Shared, done: Rc<std::cell::Cell<bool>>, id: usize) {
    let (node, _) = world.node();
    let log = world.open(&node).await;
    let settings = CompactorSettings {
        gc_grace_ms: 5_000,
        snapshot_every_entries: 6,
        merge_min_batches: 2,
        tombstones_per_cycle: 50,
        // Both snapshot forms, as while a rolling upgrade sets `--snapshot-format 3`.
        snapshot_format: if id.is_multiple_of(2) { 4 } else { 3 },
        ..CompactorSettings::default()
    };
    let mut compactor = Compactor::new(log.clone(), settings);
    while !done.get() {
        tokio::time::sleep(world.millis(500, 4_000)).await;
        let _ = compactor.run_once().await;
    }
    history.borrow_mut().logs.push(log);
}

/// A consumer group's coordinator: takes the group's lease when free and
/// commits ever larger offsets; sometimes it is cut off after its checks and
/// commits late, with a tenure that has ended (a zombie).
async fn coordinator(world: Arc<World>, history: Shared, done: Rc<std::cell::Cell<bool>>) {
    let (node, _) = world.node();
    let log = world.open(&node).await;
    let me = node.ulid();
    while !done.get() {
        tokio::time::sleep(world.millis(200, 2_000)).await;
        if log.catch_up().await.is_err() {
            continue;
        }
        let acquire = Op::AcquireLease { name: group_lease(GROUP), holder: me, url: String::new(), term_ms: 5_000 };
        if log.commit(vec![acquire]).await.is_err() {
            continue;
        }
        let (tenure, current) = {
            let state = log.state();
            let tenure = state
                .valid_lease(&group_lease(GROUP))
                .filter(|l| l.holder == me)
                .map(floe_broker::state::Lease::tenure);
            let current = state.group_offsets.get(GROUP).and_then(|t| t.get(TOPIC)).and_then(|p| p.get(&0)).copied();
            (tenure, current.unwrap_or(0))
        };
        let Some(tenure) = tenure else { continue };
        if world.chance(0.2) {
            tokio::time::sleep(world.millis(5_000, 12_000)).await;
        }
        let offsets = vec![GroupOffset {
            topic: TOPIC.into(),
            partition: 0,
            offset: current + 1 + world.below(3),
            topic_id: None,
        }];
        let _ = log.commit(vec![Op::CommitOffsets { group: GROUP.into(), offsets, coordinator: Some(tenure) }]).await;
    }
    history.borrow_mut().logs.push(log);
}

/// Folds the log itself, one entry at a time straight from the bucket, and
/// records the group's committed offset after every entry that changes it
/// (a node's catch-up would apply many at once and could miss a step back).
async fn watcher(world: Arc<World>, history: Shared, done: Rc<std::cell::Cell<bool>>) {
    let mut state = floe_broker::state::State::new(world.settings.commit_window_ms);
    let mut last = None;
    while !done.get() {
        let seq = state.applied + 1;
        let object = match floe_broker::store::get_if_exists(world.truth.as_ref(), &keys::log_entry(seq)).await {
            Ok(Some(bytes)) => floe_broker::entry::LogObject::decode(seq, &bytes),
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match object {
            Ok(floe_broker::entry::LogObject::Entry(entry)) => {
                if state.apply(seq, &entry).is_err() {
                    return;
                }
            }
            // Shrunk before we read it: take the snapshot (those steps go unseen).
            Ok(floe_broker::entry::LogObject::Tombstone { .. }) => {
                match floe_broker::snapshot::load_latest(world.truth.as_ref()).await {
                    Ok(Some(s)) if s.applied >= seq => state = s,
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            Err(_) => return,
        }
        let now = state.group_offsets.get(GROUP).and_then(|t| t.get(TOPIC)).and_then(|p| p.get(&0)).copied();
        if now.is_some() && now != last {
            history.borrow_mut().group_offsets.extend(now);
            last = now;
        }
    }
}
