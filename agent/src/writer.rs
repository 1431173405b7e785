//! The write path: produce requests are appended to one open buffer; the
//! buffer is sealed when `flush_interval` passes or its segment would reach
//! `flush_bytes`, uploaded as one segment, and committed with a create-only
//! log entry. Only then is each request answered with its offsets.
//!
//! The interval bounds how often the agent flushes and commits, not how long
//! a record waits: a buffer sealed early by size is committed together with
//! the uploads that follow it, when its interval is up, so a busy agent writes
//! a few segments per log entry.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use floe_broker::entry::Op;
use floe_broker::segment::{BatchMeta, ProducerStamp, SegmentBuilder};
use floe_broker::state::{OpOutcome, Placement};
use floe_broker::{MetadataLog, Record, keys};
use object_store::ObjectStoreExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use ulid::Ulid;

use crate::cache::{Batch, BatchCache};
use crate::committer::{CommitError, Committer};

#[derive(Clone, Debug)]
pub struct WriterSettings {
    pub flush_interval: Duration,
    pub flush_bytes: usize,
    pub buffer_bytes: usize,
    pub max_uploads: usize,
}

/// Records of one request bound for one partition, in request order.
#[derive(Debug)]
pub struct PartitionRecords {
    pub partition: u32,
    /// The incarnation of the topic (`Topic::id`) the records were accepted
    /// for: they are committed to it or to nothing.
    pub topic_id: u64,
    /// An idempotent producer's stamp: these records become their own batch,
    /// checked against the producer's epoch and sequence when applied.
    pub producer: Option<ProducerStamp>,
    pub records: Vec<Record>,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the agent's write buffer is full; retry shortly")]
    Overloaded,
    #[error(
        "the request needs {bytes} bytes of write buffer (its records and the segment they become), more than the agent's whole write buffer ({budget} bytes)"
    )]
    TooLarge { bytes: usize, budget: usize },
    #[error("uploading the segment failed")]
    Upload(#[source] Arc<floe_broker::Error>),
    #[error("committing the log entry failed")]
    Commit(#[source] Arc<floe_broker::Error>),
    /// The log refused this attempt as too old, or found it was a copy of an
    /// entry applied before. An earlier attempt (through the lease holder, or
    /// a PUT whose outcome was unknown) may have landed, so the records may or
    /// may not be in the log: like a Kafka produce that timed out.
    #[error("the commit could not be confirmed: the records may or may not be in the log")]
    OutcomeUnknown,
    #[error("the log answered the commit with {0}")]
    UnexpectedOutcome(String),
    #[error("topic {topic} partition {partition} did not exist when the records were committed")]
    PartitionGone { topic: String, partition: u32 },
    /// The log refused an idempotent producer's batch (fenced, out of order, unknown).
    #[error("the producer's batch was refused: {0:?}")]
    Producer(Placement),
    #[error("the agent is shutting down")]
    Closed,
}

/// Base offset of each `PartitionRecords` of a request, in the same order.
type Reply = Result<Written, WriteError>;

/// What a write came to.
#[derive(Clone, Debug)]
pub struct Written {
    /// Base offset of each `PartitionRecords` of the request, in order.
    pub bases: Vec<u64>,
    /// Where the time went; `None` for a retry answered from the log's state.
    pub receipt: Option<Receipt>,
}

/// A write's stages, for the client to see where a slow acknowledgement
/// spent its time.
#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    /// From the request to its buffer being sealed.
    pub buffer: Duration,
    /// Encoding and PUTting the segment.
    pub upload: Duration,
    /// From the upload to the commit being applied here.
    pub commit: Duration,
    /// The log position of the entry that made the records durable.
    pub seq: u64,
}

/// An idempotent batch: its partition, stamp and record count. While one is
/// buffered, uploading or committing, a retry of it waits for its answer
/// instead of being written again.
type StampKey = (String, u64, u32, ProducerStamp, u32);

/// Idempotent batches in flight on this agent, each with the retries waiting for it.
#[derive(Default)]
struct InFlight(std::sync::Mutex<HashMap<StampKey, Vec<oneshot::Sender<Reply>>>>);

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StampKey, Vec<oneshot::Sender<Reply>>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Pending {
    topic: String,
    parts: Vec<PartitionRecords>,
    bytes: usize,
    waiter: Waiter,
}

struct Waiter {
    /// `None` once answered.
    reply: Option<oneshot::Sender<Reply>>,
    /// Set for an idempotent batch: retries of it wait in `InFlight` for this answer.
    stamp: Option<(StampKey, Arc<InFlight>)>,
    /// Returned to the buffer budget when the request is answered.
    _permit: Option<OwnedSemaphorePermit>,
    /// For each part of the request: (batch index in the segment, index of its first record in that batch).
    slots: Vec<(usize, u32)>,
    topic: String,
    partitions: Vec<u32>,
    /// When the request was taken.
    queued: Instant,
}

impl Waiter {
    /// Answers the request and every retry that waited for it.
    fn answer(mut self, reply: Reply) {
        self.finish(reply);
    }

    fn finish(&mut self, reply: Reply) {
        if let Some((key, inflight)) = self.stamp.take() {
            for retry in inflight.lock().remove(&key).unwrap_or_default() {
                let _ = retry.send(reply.clone());
            }
        }
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(reply);
        }
    }
}

impl Drop for Waiter {
    /// A waiter dropped unanswered (its task ended) still releases its retries.
    fn drop(&mut self) {
        if self.reply.is_some() {
            self.finish(Err(WriteError::Closed));
        }
    }
}

/// One batch of a segment: a partition, and for an idempotent request its
/// stamp and the request's place in the flush (each such request is a batch
/// of its own, checked on apply on its own).
type BatchKey = (String, u64, u32, Option<(ProducerStamp, usize)>);

/// One sealed buffer, uploaded.
struct Uploaded {
    sealed: Instant,
    /// When the clock would have sealed this buffer: a buffer sealed early
    /// by size may wait for its commit until then, for others to join it.
    due: Instant,
    uploaded: Instant,
    segment: Ulid,
    bytes: bytes::Bytes,
    batches: Vec<BatchMeta>,
    records: Vec<Batch>,
    waiters: Vec<Waiter>,
}

type UploadTask = JoinHandle<Result<Uploaded, (WriteError, Vec<Waiter>)>>;

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Pending>,
    /// Cancelled to stop taking requests and drain what was taken.
    stop: CancellationToken,
    /// The flusher, the committer of uploads, and each upload.
    tasks: TaskTracker,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    log: Arc<MetadataLog>,
    inflight: Arc<InFlight>,
}

impl Writer {
    pub fn start(
        log: Arc<MetadataLog>,
        committer: Arc<Committer>,
        cache: BatchCache,
        settings: WriterSettings,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (uploads_tx, uploads_rx) = mpsc::channel(settings.max_uploads.max(1));
        let budget_bytes = settings.buffer_bytes.min(Semaphore::MAX_PERMITS);
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        let pacing = Pacing { interval: settings.flush_interval, max_uploads: settings.max_uploads.max(1) };
        tasks.spawn(flusher(rx, uploads_tx, log.clone(), settings, stop.clone(), tasks.clone()));
        tasks.spawn(commit_uploads(uploads_rx, log.clone(), committer, cache, pacing, stop.clone()));
        let budget = Arc::new(Semaphore::new(budget_bytes));
        Self { tx, stop, tasks, budget, budget_bytes, log, inflight: Arc::default() }
    }

    /// Bytes of records taken and not yet answered (buffered, uploading or committing).
    pub fn held_bytes(&self) -> usize {
        self.budget_bytes.saturating_sub(self.budget.available_permits())
    }

    /// Stops taking requests (they get `Closed`), and returns once every
    /// request taken before is uploaded, committed and answered (or failed).
    ///
    /// # Cancel safety
    /// Cancel safe: the drain goes on in the writer's own tasks; dropping
    /// this future only stops waiting for it.
    pub async fn drain(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Buffers the records and waits until they are committed; returns the
    /// base offset of each part.
    ///
    /// An idempotent request (one part with a producer stamp) that retries a
    /// batch this agent is still writing waits for that batch's answer; one
    /// that retries a batch the log already holds is answered from the state.
    /// Neither writes anything. (The log dedups on apply as well, which covers
    /// retries through other agents.)
    pub async fn append(&self, topic: String, parts: Vec<PartitionRecords>) -> Reply {
        // The budget holds the records and their segment; the flusher sizes
        // flushes by the records alone, as the segment's ratio is learned from them.
        let records = || parts.iter().flat_map(|p| &p.records);
        let (bytes, charge): (usize, usize) =
            (records().map(Record::held_bytes).sum(), records().map(Record::buffered_bytes).sum());
        let permits = u32::try_from(charge).ok().filter(|_| charge <= self.budget_bytes);
        let permits = permits.ok_or(WriteError::TooLarge { bytes: charge, budget: self.budget_bytes })?;
        let stamp = match stamp_key(&topic, &parts) {
            Some(key) => match self.claim_stamp(key) {
                Claim::Answered(reply) => return reply,
                Claim::Wait(answer) => {
                    // Its records are the ones in flight: only the answer is awaited.
                    drop(parts);
                    return answer.await.unwrap_or(Err(WriteError::Closed));
                }
                Claim::Write(key) => Some((key, self.inflight.clone())),
            },
            None => None,
        };
        let (reply, answer) = oneshot::channel();
        let mut waiter = Waiter {
            reply: Some(reply),
            stamp,
            _permit: None,
            slots: Vec::new(),
            topic: topic.clone(),
            partitions: parts.iter().map(|p| p.partition).collect(),
            queued: Instant::now(),
        };
        // Dropping the waiter on an early return answers the retries waiting for it.
        let Ok(permit) = self.budget.clone().try_acquire_many_owned(permits) else {
            waiter.answer(Err(WriteError::Overloaded));
            return Err(WriteError::Overloaded);
        };
        waiter._permit = Some(permit);
        self.tx.send(Pending { topic, parts, bytes, waiter }).map_err(|_| WriteError::Closed)?;
        answer.await.unwrap_or(Err(WriteError::Closed))
    }

    /// Decides what an idempotent request does: write its batch, wait for the
    /// same batch already in flight here, or take the log's answer for a batch
    /// it already holds. The map is checked before the state, under its lock:
    /// a batch this agent committed itself leaves the map only after the
    /// commit is applied here, so a retry never misses both. (One committed
    /// through the lease holder is applied here when this agent next catches
    /// up; a retry in between is written again and deduplicated on apply.)
    fn claim_stamp(&self, key: StampKey) -> Claim {
        let mut inflight = self.inflight.lock();
        if let Some(retries) = inflight.get_mut(&key) {
            let (tx, rx) = oneshot::channel();
            retries.push(tx);
            return Claim::Wait(rx);
        }
        let (topic, _, partition, stamp, records) = &key;
        match self.log.state().check_sequence(topic, *partition, *stamp, *records) {
            Placement::Duplicate(base) => return Claim::Answered(Ok(Written { bases: vec![base], receipt: None })),
            // Sequences and epochs only grow: what is refused now is refused at commit.
            refused @ (Placement::Fenced | Placement::OutOfOrder { .. }) if !matches!(refused, Placement::OutOfOrder { expected } if stamp.sequence > expected) =>
            {
                return Claim::Answered(Err(WriteError::Producer(refused)));
            }
            // The next batch, or one this agent's state is too old to judge: the log decides.
            _ => {}
        }
        inflight.insert(key.clone(), Vec::new());
        Claim::Write(key)
    }
}

enum Claim {
    Write(StampKey),
    Wait(oneshot::Receiver<Reply>),
    Answered(Reply),
}

/// The stamp key of an idempotent request (which has exactly one part).
fn stamp_key(topic: &str, parts: &[PartitionRecords]) -> Option<StampKey> {
    let [part] = parts else { return None };
    let stamp = part.producer?;
    Some((topic.to_owned(), part.topic_id, part.partition, stamp, u32::try_from(part.records.len()).ok()?))
}

/// Collects requests into the open buffer and seals it on time or size.
/// Once `stop` is cancelled it takes no new requests, seals what it has at
/// once, and ends; `commit_uploads` ends after the last upload.
///
/// # Cancel safety
/// Not cancel safe: dropped, it drops the open buffer, whose requests then
/// get `Closed` (nothing of theirs was written). Stop it with `stop`.
async fn flusher(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    uploads: mpsc::Sender<UploadTask>,
    log: Arc<MetadataLog>,
    settings: WriterSettings,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let mut open: Vec<Pending> = Vec::new();
    let mut open_bytes = 0usize;
    let mut deadline: Option<Instant> = None;
    // The interval bounds how often this agent flushes, not how long a record
    // waits: a record arriving when the last flush began an interval ago or
    // more is flushed at once. The start counts as a flush, so an agent
    // never flushes more often than one per interval (size-triggered
    // flushes aside, as before).
    let mut last_seal = Instant::now();
    let mut closing = false;
    let mut stopping = false;
    let ratio = Arc::new(SizeRatio::default());
    // The queues between here and the commit hold about twice `max_uploads`
    // sealed buffers (two more at most); this bounds how many are encoded or PUT at once.
    let puts = Arc::new(Semaphore::new(settings.max_uploads.max(1)));
    // Highly compressible records must not fill the whole buffer budget
    // before their segment reaches `flush_bytes`: a quarter of it at most
    // (or `flush_bytes` of records, as if they did not compress).
    let records_cap = settings.flush_bytes.max(settings.buffer_bytes / 4);
    let full = |records: usize| records >= records_cap || ratio.segment_bytes(records) >= settings.flush_bytes;
    while !closing {
        let seal = tokio::select! {
            next = rx.recv() => match next {
                Some(p) => {
                    let due = *deadline.get_or_insert(last_seal + settings.flush_interval);
                    open_bytes += p.bytes;
                    open.push(p);
                    if due <= Instant::now() {
                        // Due already: take what else is queued right now into the same flush.
                        while !full(open_bytes) {
                            let Ok(more) = rx.try_recv() else { break };
                            open_bytes += more.bytes;
                            open.push(more);
                        }
                        true
                    } else {
                        full(open_bytes)
                    }
                }
                None => {
                    closing = true;
                    !open.is_empty()
                }
            },
            () = sleep_until(deadline) => true,
            // Requests already queued are still received, then `None`.
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                rx.close();
                false
            }
        };
        if seal {
            last_seal = Instant::now();
            // Sealed by the clock (or to stop): due now; sealed early by size: due when the clock would have sealed it.
            let due = deadline.filter(|_| !stopping).unwrap_or(last_seal);
            let open = std::mem::take(&mut open);
            let task = tasks.spawn(upload(log.clone(), open, last_seal, due, ratio.clone(), puts.clone()));
            open_bytes = 0;
            deadline = None;
            // Waits while `max_uploads` are in flight; requests keep queueing,
            // bounded by the buffer budget.
            if uploads.send(task).await.is_err() {
                return;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Segment bytes per record byte, learned from the segments built so far, so
/// that `flush_bytes` bounds the segment (what a PUT carries), not the
/// records before compression.
#[derive(Default)]
struct SizeRatio {
    /// Per mille; 0 until a segment has been built (then taken as 1).
    per_mille: AtomicU32,
}

impl SizeRatio {
    /// Smaller flushes are mostly headers: they say little about the ratio.
    const MIN_SAMPLE: usize = 64 << 10;

    fn segment_bytes(&self, records: usize) -> usize {
        match self.per_mille.load(Ordering::Relaxed) {
            0 => records,
            r => records.saturating_mul(r as usize) / 1000,
        }
    }

    /// A moving average (weight 1/4 to the newest), so a change in the
    /// records shows within a few flushes.
    fn learn(&self, records: usize, segment: usize) {
        if records < Self::MIN_SAMPLE {
            return;
        }
        let sample = u32::try_from(segment.saturating_mul(1000) / records).unwrap_or(u32::MAX).clamp(1, 4000);
        let _ = self.per_mille.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(if old == 0 { sample } else { (old * 3 + sample) / 4 })
        });
    }
}

/// Builds one segment from the sealed requests (one batch per partition) and PUTs it.
async fn upload(
    log: Arc<MetadataLog>,
    pending: Vec<Pending>,
    sealed: Instant,
    due: Instant,
    ratio: Arc<SizeRatio>,
    puts: Arc<Semaphore>,
) -> Result<Uploaded, (WriteError, Vec<Waiter>)> {
    let record_bytes: usize = pending.iter().map(|p| p.bytes).sum();
    let mut groups: BTreeMap<BatchKey, Vec<Record>> = BTreeMap::new();
    let mut waiters = Vec::with_capacity(pending.len());
    let mut placed: Vec<Vec<(BatchKey, u32)>> = Vec::with_capacity(pending.len());
    for (i, p) in pending.into_iter().enumerate() {
        let mut slots = Vec::with_capacity(p.parts.len());
        for part in p.parts {
            let key = (p.topic.clone(), part.topic_id, part.partition, part.producer.map(|stamp| (stamp, i)));
            let group = groups.entry(key.clone()).or_default();
            slots.push((key, group.len() as u32));
            group.extend(part.records);
        }
        placed.push(slots);
        waiters.push(p.waiter);
    }
    let batch_index: BTreeMap<BatchKey, usize> = groups.keys().cloned().enumerate().map(|(i, k)| (k, i)).collect();
    for (w, slots) in waiters.iter_mut().zip(placed) {
        w.slots = slots.into_iter().map(|(k, start)| (batch_index[&k], start)).collect();
    }
    let records: Vec<Batch> = groups.into_values().map(Batch::from).collect();
    let keys: Vec<BatchKey> = batch_index.into_keys().collect();
    // Encoding holds about twice the segment besides the records: bounded too.
    let Ok(_permit) = puts.acquire().await else {
        return Err((WriteError::Closed, waiters));
    };
    let encode_input = records.clone();
    let built = tokio::task::spawn_blocking(move || {
        let mut b = SegmentBuilder::new();
        for ((topic, _, partition, _), batch) in keys.iter().zip(&encode_input) {
            b.add_batch(topic, *partition, batch)?;
        }
        let (bytes, mut metas) = b.finish()?;
        for (meta, (_, topic_id, _, producer)) in metas.iter_mut().zip(&keys) {
            meta.producer = producer.map(|(stamp, _)| stamp);
            meta.topic_id = Some(*topic_id);
        }
        Ok::<_, floe_broker::Error>((bytes, metas))
    })
    .await;
    let (bytes, batches) = match built {
        Ok(Ok(built)) => {
            ratio.learn(record_bytes, built.0.len());
            built
        }
        Ok(Err(e)) => return Err((WriteError::Upload(Arc::new(e)), waiters)),
        Err(e) => return Err((WriteError::UnexpectedOutcome(format!("segment encoder stopped: {e}")), waiters)),
    };
    match put_segment(&log, bytes.clone()).await {
        Ok(segment) => {
            Ok(Uploaded { sealed, due, uploaded: Instant::now(), segment, bytes, batches, records, waiters })
        }
        Err(e) => Err((WriteError::Upload(Arc::new(e.into())), waiters)),
    }
}

/// A plain PUT under a fresh name: nothing references it until a commit does.
async fn put_segment(log: &MetadataLog, bytes: bytes::Bytes) -> Result<Ulid, object_store::Error> {
    let segment = log.node().ulid();
    log.store().put(&keys::segment(segment), bytes.into()).await?;
    Ok(segment)
}

/// An upload that waited too long for its commit is uploaded again under a
/// new name: garbage collection may delete segments older than the commit
/// window, and the log refuses to commit them. Half the window leaves room
/// for the commit itself.
async fn refresh_if_stale(log: &MetadataLog, up: &mut Uploaded) -> Result<(), object_store::Error> {
    let window = log.state().commit_window_ms;
    let age = log.node().now_ms().saturating_sub(up.segment.timestamp_ms());
    if age > window / 2 {
        tracing::info!(segment = %up.segment, age_ms = age, "segment waited too long for its commit; uploading it again");
        up.segment = put_segment(log, up.bytes.clone()).await?;
    }
    Ok(())
}

/// How `commit_uploads` spaces its commits.
struct Pacing {
    /// Commits start at most once per interval, unless an upload is due sooner.
    interval: Duration,
    /// Sealed uploads taken off the flusher's queue at most (bounds the
    /// uploads in flight, as the queue does).
    max_uploads: usize,
}

/// Commits uploads in the order they were sealed, so one producer's
/// requests keep their order within a partition: the oldest upload, once
/// finished and due, together with every upload after it that has finished
/// by then, as one log entry. An upload is due when its buffer would have
/// been sealed by the clock, or an interval after the previous commit began,
/// whichever comes first, so a record waits no longer than with clock-sealed
/// buffers, and a busy agent writes about one entry per interval. (Waiting
/// for the interval alone cut PUTs at saturation but halved the throughput
/// of closed-loop producers: docs/benchmarks.md.) Ends when
/// the flusher has ended and every upload it sealed is committed or failed.
/// Once `stop` is cancelled, uploads are committed as soon as they finish.
///
/// # Cancel safety
/// Not cancel safe: dropped mid-commit, its requests get `Closed` although
/// their entry may land (an unknown outcome, as a crash would leave). It is
/// never cancelled: the writer's drain waits for it to end.
async fn commit_uploads(
    uploads: mpsc::Receiver<UploadTask>,
    log: Arc<MetadataLog>,
    committer: Arc<Committer>,
    cache: BatchCache,
    pacing: Pacing,
    stop: CancellationToken,
) {
    let mut intake = Intake { uploads, queue: VecDeque::new(), open: true, max: pacing.max_uploads };
    let mut last_start: Option<Instant> = None;
    loop {
        let oldest = match intake.queue.pop_front() {
            Some(task) => task,
            None => match intake.uploads.recv().await {
                Some(task) => task,
                None => return,
            },
        };
        let first = match intake.meanwhile(oldest).await {
            Ok(Ok(up)) => up,
            Ok(Err((e, waiters))) => {
                fail_all(waiters, &e);
                continue;
            }
            // The waiters were dropped with the task; their callers see `Closed`.
            Err(_) => continue,
        };
        let commit_at = match last_start.filter(|_| !stop.is_cancelled()) {
            Some(start) => (start + pacing.interval).min(first.due),
            None => Instant::now(),
        };
        intake
            .meanwhile(async {
                tokio::select! {
                    () = tokio::time::sleep_until(commit_at) => {}
                    () = stop.cancelled() => {}
                }
            })
            .await;
        let mut ready = vec![Ok(Ok(first))];
        while intake.queue.front().is_some_and(JoinHandle::is_finished) {
            if let Some(task) = intake.queue.pop_front() {
                ready.push(task.await);
            }
        }
        let mut group = Vec::with_capacity(ready.len());
        for done in ready {
            match done {
                Ok(Ok(mut up)) => match refresh_if_stale(&log, &mut up).await {
                    Ok(()) => group.push(up),
                    Err(e) => fail_all(up.waiters, &WriteError::Upload(Arc::new(e.into()))),
                },
                Ok(Err((e, waiters))) => fail_all(waiters, &e),
                Err(_) => {}
            }
        }
        if !group.is_empty() {
            last_start = Some(Instant::now());
            commit_group(group, &committer, &cache).await;
        }
    }
}

/// Sealed uploads taken off the flusher's queue, in seal order.
struct Intake {
    uploads: mpsc::Receiver<UploadTask>,
    queue: VecDeque<UploadTask>,
    /// Until the flusher has ended.
    open: bool,
    /// Taken at most: the flusher's queue holds the rest, so these queues
    /// hold at most about twice `max_uploads` sealed buffers (the flusher's
    /// semaphore bounds those encoded or PUT at once).
    max: usize,
}

impl Intake {
    /// Awaits `work`, taking newly sealed uploads meanwhile.
    ///
    /// # Cancel safety
    /// Cancel safe if `work` is: what was taken stays in `queue`.
    async fn meanwhile<F: std::future::Future>(&mut self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            let taking = self.open && self.queue.len() < self.max;
            tokio::select! {
                done = &mut work => return done,
                more = self.uploads.recv(), if taking => match more {
                    Some(task) => self.queue.push_back(task),
                    None => self.open = false,
                },
            }
        }
    }
}

async fn commit_group(mut group: Vec<Uploaded>, committer: &Committer, cache: &BatchCache) {
    // Tail readers on this agent are served from RAM, without a GET. The
    // batches go in before the commit: a long-poll wakes the moment the entry
    // is applied, and must find them there. (Entries for a commit that fails
    // are never referenced, and age out.)
    for up in &mut group {
        for (meta, records) in up.batches.iter().zip(std::mem::take(&mut up.records)) {
            cache.insert((up.segment, meta.pos), records).await;
        }
    }
    let ops =
        group.iter().map(|up| Op::Append { segment: up.segment, batches: up.batches.clone(), flush: None }).collect();
    let (seq, outcomes) = match committer.commit(ops).await {
        Ok(c) => (c.seq, c.outcomes),
        Err(e) => {
            let e = match e {
                CommitError::Failed(e) => WriteError::Commit(e),
                CommitError::Closed => WriteError::Closed,
                other => WriteError::UnexpectedOutcome(other.to_string()),
            };
            for up in group {
                fail_all(up.waiters, &e);
            }
            return;
        }
    };
    let committed = Instant::now();
    let mut outcomes = outcomes.into_iter();
    for up in group {
        let placements = match outcomes.next() {
            Some(OpOutcome::Appended(p)) => p,
            Some(OpOutcome::SegmentTooOld | OpOutcome::EntryTooOld | OpOutcome::AlreadyCommitted { .. }) => {
                fail_all(up.waiters, &WriteError::OutcomeUnknown);
                continue;
            }
            other => {
                fail_all(up.waiters, &WriteError::UnexpectedOutcome(format!("{other:?}")));
                continue;
            }
        };
        for w in up.waiters {
            let offsets = w
                .slots
                .iter()
                .zip(&w.partitions)
                .map(|((batch, start), partition)| match placements.get(*batch).copied() {
                    Some(Placement::At(base) | Placement::Duplicate(base)) => Ok(base + u64::from(*start)),
                    Some(Placement::NoPartition) | None => {
                        Err(WriteError::PartitionGone { topic: w.topic.clone(), partition: *partition })
                    }
                    Some(refused) => Err(WriteError::Producer(refused)),
                })
                .collect::<Result<Vec<u64>, WriteError>>();
            let receipt = Receipt {
                buffer: up.sealed.saturating_duration_since(w.queued),
                upload: up.uploaded.saturating_duration_since(up.sealed),
                commit: committed.saturating_duration_since(up.uploaded),
                seq,
            };
            w.answer(offsets.map(|bases| Written { bases, receipt: Some(receipt) }));
        }
    }
}

fn fail_all(waiters: Vec<Waiter>, e: &WriteError) {
    for w in waiters {
        w.answer(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_broker::entry::TopicConfig;
    use floe_broker::metered::MeteredStore;

    use crate::committer::GroupSettings;
    use crate::peers::PeerAuth;

    #[test]
    fn flush_size_is_learned_from_the_segments_built() {
        let ratio = SizeRatio::default();
        assert_eq!(ratio.segment_bytes(1000), 1000, "nothing learned: the records' size");
        ratio.learn(1 << 20, 768 << 10);
        assert_eq!(ratio.segment_bytes(1000), 750);
        ratio.learn(100, 10_000);
        assert_eq!(ratio.segment_bytes(1000), 750, "a tiny flush (mostly headers) teaches nothing");
        ratio.learn(1 << 20, 1 << 20);
        assert_eq!(ratio.segment_bytes(1000), 812, "a moving average: (3 * 750 + 1000) / 4");
    }

    /// Five requests, one after another, each fill a buffer (`flush_bytes`
    /// 1) less than an interval after the previous commit: their five
    /// segments are committed by one log entry, not five.
    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn buffers_sealed_by_size_share_one_log_entry() {
        let store = Arc::new(MeteredStore::new(Arc::new(object_store::memory::InMemory::new())));
        let (writer, topic_id) = one_partition_writer(store.clone(), 4).await;
        let request = |n| write_one(writer.clone(), topic_id, n);
        // The first commit goes at once: nothing was committed an interval before it.
        let first = request(0).await.receipt.unwrap().seq;
        // One at a time: each is uploaded before the next is sent.
        let mut later = Vec::new();
        for n in 1..=5 {
            later.push(tokio::spawn(request(n)));
            for _ in 0..10_000 {
                if store.stats().segments.put == 1 + u64::from(n) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(store.stats().segments.put, 1 + u64::from(n));
        }
        let log_puts = store.stats().log.put;
        // Stopping commits what waits at once.
        writer.drain().await;
        let mut seqs = Vec::new();
        for answer in later {
            seqs.push(answer.await.unwrap().receipt.unwrap().seq);
        }
        assert!(seqs.iter().all(|s| *s == first + 1), "one entry for all five: {seqs:?}");
        assert_eq!(store.stats().log.put, log_puts + 1);
    }

    /// A writer on `store` with one partition (topic `t`, whose id it
    /// returns), a flush per request and an hour's interval.
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn one_partition_writer(store: Arc<dyn object_store::ObjectStore>, max_uploads: usize) -> (Writer, u64) {
        let (cluster, log) = floe_broker::open(store, floe_broker::LogSettings::default()).await.unwrap();
        let log = Arc::new(log);
        let topic = vec![Op::CreateTopic { name: "t".into(), partitions: 1, config: TopicConfig::default() }];
        log.commit(topic).await.unwrap();
        let topic_id = log.state().topic("t").unwrap().id;
        let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
        let auth = Arc::new(PeerAuth::new(cluster.cluster_id, String::new(), Vec::new()));
        let group = GroupSettings { window: Duration::ZERO };
        let committer = Committer::start(log.clone(), auth, None, group, &tasks, stop.clone(), stop.clone());
        let settings = WriterSettings {
            flush_interval: Duration::from_secs(3600),
            flush_bytes: 1,
            buffer_bytes: 1 << 20,
            max_uploads,
        };
        (Writer::start(log, committer, BatchCache::new(1 << 20, None).unwrap(), settings), topic_id)
    }

    /// Writes one record of 100 bytes `n` to `t`'s partition 0.
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn write_one(writer: Writer, topic_id: u64, n: u8) -> Written {
        let record = Record { key: None, value: bytes::Bytes::from(vec![n; 100]), timestamp: 1, headers: vec![] };
        let part = PartitionRecords { partition: 0, topic_id, producer: None, records: vec![record] };
        writer.append("t".into(), vec![part]).await.unwrap()
    }

    /// Ten buffers sealed while the store holds every segment PUT: only
    /// `max_uploads` of them are encoded and PUT at once, the rest wait
    /// their turn (the queues to the commit hold more than that).
    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn no_more_segment_puts_at_once_than_max_uploads() {
        let faulty = floe_broker::fault::FaultyStore::new(Arc::new(object_store::memory::InMemory::new()));
        let faulty = Arc::new(faulty);
        let store = Arc::new(MeteredStore::new(faulty.clone()));
        let (writer, topic_id) = one_partition_writer(store.clone(), 2).await;
        let request = |n| write_one(writer.clone(), topic_id, n);
        let hold = floe_broker::fault::Fault::Delay(Duration::from_secs(3600));
        faulty.inject(floe_broker::fault::OpKind::Put, "segments/", hold, None);
        let _requests: Vec<_> = (0..10).map(|n| tokio::spawn(request(n))).collect();
        for _ in 0..10_000 {
            if store.stats().segments.put >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Time for the other eight to be sealed, encoded and (wrongly) PUT.
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(store.stats().segments.put, 2, "segment PUTs started");
    }
}
