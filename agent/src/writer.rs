//! The write path: produce requests are appended to one open buffer; the
//! buffer is sealed when `flush_interval` passes or its segment would reach
//! `flush_bytes`, uploaded as one segment, and committed with a create-only
//! log entry. Only then is each request answered with its offsets.
//!
//! The interval bounds how often the agent's clock flushes and how often it
//! commits, not how long a record waits: a buffer sealed early by size is
//! committed with what the clock seals next (its round), so a busy agent
//! writes one log entry for several segments.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use floe_broker::entry::{FlushId, Op};
use floe_broker::segment::{self, BatchMeta, Finished, Frame, ProducerStamp, Run, SegmentBuilder};
use floe_broker::state::{OpOutcome, Placement};
use floe_broker::{MetadataLog, Record, keys};
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use ulid::Ulid;

use crate::cache::BatchCache;
use crate::committer::{CommitError, Committer};
use crate::essential::essential;
use crate::spool::{Recovered, Spool, SpoolError, SpoolSpace};

/// Sealed flushes queued between the flusher and the commit when a spool
/// holds them: they are on disk, so the spool's budget bounds them, not RAM.
const SPOOLED_QUEUE: usize = 4096;

/// When a produce is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    /// Once the create-only log entry that commits the records exists: the
    /// answer carries their offsets, and nothing acknowledged can be lost.
    #[default]
    Committed,
    /// Once the records are synced to this agent's spool; they are uploaded
    /// and committed after. The answer names the flush, not offsets, and
    /// losing the spool's disk loses what was not committed yet.
    Local,
}

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
    /// A bug stopped the write (a panic): nothing says whether it will
    /// happen again, so it is not called retriable (as Kafka's producers
    /// do not retry an unknown server error).
    #[error("an internal error stopped the write: {0}")]
    Internal(String),
    #[error("topic {topic} partition {partition} did not exist when the records were committed")]
    PartitionGone { topic: String, partition: u32 },
    /// The log refused an idempotent producer's batch (fenced, out of order, unknown).
    #[error("the producer's batch was refused: {0:?}")]
    Producer(Placement),
    #[error("the agent is shutting down")]
    Closed,
    #[error("writing the agent's spool failed")]
    Spool(#[source] Arc<SpoolError>),
    #[error("acks=local needs a spool: this agent was started without --spool-dir")]
    NoSpool,
    /// An idempotent producer's retries are answered from the log, which a
    /// local acknowledgement has not reached yet.
    #[error("acks=local cannot be used by an idempotent producer (with \"producer\"): use acks=committed")]
    LocalIdempotent,
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
    /// For `acks=local`: the spooled flush that holds the records, whose
    /// commit is still to come (and `bases` is empty).
    pub flush: Option<FlushId>,
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
    parts: Vec<Part>,
    bytes: usize,
    waiter: Waiter,
}

/// A request's records for one partition, as the writer holds them.
struct Part {
    partition: u32,
    topic_id: u64,
    producer: Option<ProducerStamp>,
    held: Held,
}

enum Held {
    /// To be compressed at the flush, with the batch's other small parts.
    Records(Vec<Record>),
    /// Compressed as they arrived. The records themselves are let go at
    /// once: the request's body is freed while the CPU's cache still holds
    /// it, and the next one is read into it (decision 0026).
    Frame(Frame),
}

impl Held {
    fn run(&self) -> Run<'_> {
        match self {
            Held::Records(records) => Run::Records(records),
            Held::Frame(frame) => Run::Frame(frame),
        }
    }
}

/// A batch's parts, in order, with each stretch of records between frames
/// in one vector (compressed at the build as one frame): a single part's
/// own, or, for several, one of their number, not grown (and copied) by
/// doubling.
fn into_runs(parts: Vec<Held>) -> Vec<Held> {
    fn close(stretch: &mut Vec<Vec<Record>>, runs: &mut Vec<Held>) {
        let run = match stretch.len() {
            0 => return,
            1 => stretch.pop().unwrap_or_default(),
            _ => {
                let mut run = Vec::with_capacity(stretch.iter().map(Vec::len).sum());
                stretch.drain(..).for_each(|records| run.extend(records));
                run
            }
        };
        runs.push(Held::Records(run));
    }
    let (mut runs, mut stretch) = (Vec::with_capacity(parts.len()), Vec::new());
    for part in parts {
        match part {
            Held::Records(records) => stretch.push(records),
            frame => {
                close(&mut stretch, &mut runs);
                runs.push(frame);
            }
        }
    }
    close(&mut stretch, &mut runs);
    runs
}

impl Part {
    fn records(&self) -> usize {
        match &self.held {
            Held::Records(records) => records.len(),
            Held::Frame(frame) => frame.records(),
        }
    }
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
    acks: Acks,
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
    /// A waiter dropped unanswered still releases its retries: with `Closed`
    /// when the writer let it go (it stopped), and with an internal error
    /// when a panic unwound the task that held it, which says nothing of
    /// the agent stopping.
    fn drop(&mut self) {
        if self.reply.is_some() {
            let e = match std::thread::panicking() {
                true => WriteError::Internal(
                    "a panic while the request was being written: its records may or may not be in the log".into(),
                ),
                false => WriteError::Closed,
            };
            self.finish(Err(e));
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
    uploaded: Instant,
    segment: Ulid,
    body: Body,
    batches: Vec<BatchMeta>,
    /// Each batch as written (the chunks of `body` that hold it), for the
    /// read cache.
    written: Vec<Arc<[bytes::Bytes]>>,
    waiters: Vec<Waiter>,
    /// Set when the log refused this spooled upload for now: it is uploaded
    /// under a new name before it is committed again.
    reupload: bool,
}

/// Where an upload's segment is kept until it is committed.
enum Body {
    /// In RAM (no spool), as the chunks it was built from.
    Ram(PutPayload),
    /// In the spool, read back for each PUT: RAM holds none of it.
    Spooled { flush: FlushId, _space: SpoolSpace },
}

impl Uploaded {
    fn flush(&self) -> Option<FlushId> {
        match &self.body {
            Body::Ram(_) => None,
            Body::Spooled { flush, .. } => Some(*flush),
        }
    }

    fn op(&self) -> Op {
        Op::Append { segment: self.segment, batches: self.batches.clone(), flush: self.flush() }
    }
}

/// What every upload of a writer shares.
struct Uploader {
    log: Arc<MetadataLog>,
    ratio: SizeRatio,
    /// Bounds the segments encoded or PUT at once (`max_uploads`).
    puts: Semaphore,
    /// With a spool, encoding has slots of its own: PUTs that wait out the
    /// store must not stop new flushes from reaching the spool.
    encodes: Semaphore,
    spool: Option<Arc<Spool>>,
    cache: BatchCache,
    stop: CancellationToken,
}

impl Uploader {
    /// The segment's bytes, from RAM or the spool.
    async fn payload(&self, body: &Body) -> Result<PutPayload, WriteError> {
        match (body, &self.spool) {
            (Body::Ram(payload), _) => Ok(payload.clone()),
            (Body::Spooled { flush, .. }, Some(spool)) => {
                spool.read(flush.seq).await.map(PutPayload::from).map_err(|e| WriteError::Spool(Arc::new(e)))
            }
            (Body::Spooled { .. }, None) => Err(WriteError::NoSpool),
        }
    }
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
    /// Compressions of large requests on blocking threads at once.
    compressing: Arc<Semaphore>,
    log: Arc<MetadataLog>,
    inflight: Arc<InFlight>,
    spool: Option<Arc<Spool>>,
}

impl Writer {
    /// With a spool, every sealed flush is synced to it before its upload,
    /// and the flushes `recovered` from it are committed first (at most once).
    pub fn start(
        log: Arc<MetadataLog>,
        committer: Arc<Committer>,
        cache: BatchCache,
        settings: WriterSettings,
        spool: Option<(Arc<Spool>, Vec<Recovered>)>,
    ) -> Self {
        let (spool, recovered) = spool.map_or((None, Vec::new()), |(s, r)| (Some(s), r));
        if let Some(spool) = &spool {
            spool.continue_after(log.state().spools.get(&spool.id()).copied().unwrap_or(0));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = if spool.is_some() { SPOOLED_QUEUE } else { settings.max_uploads.max(1) };
        let (uploads_tx, uploads_rx) = mpsc::channel(queue);
        let budget_bytes = settings.buffer_bytes.min(Semaphore::MAX_PERMITS);
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        let uploader = Arc::new(Uploader {
            log: log.clone(),
            ratio: SizeRatio::default(),
            puts: Semaphore::new(settings.max_uploads.max(1)),
            encodes: Semaphore::new(settings.max_uploads.max(1)),
            spool: spool.clone(),
            cache,
            stop: stop.clone(),
        });
        let flushing = flusher(rx, uploads_tx, uploader.clone(), settings, recovered, tasks.clone());
        tasks.spawn(essential("the writer's flusher", flushing));
        tasks.spawn(essential("the writer's commits", commit_uploads(uploads_rx, uploader, committer, queue)));
        let budget = Arc::new(Semaphore::new(budget_bytes));
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let compressing = Arc::new(Semaphore::new(cores));
        Self { tx, stop, tasks, budget, budget_bytes, compressing, log, inflight: Arc::default(), spool }
    }

    /// Bytes of spool files held, and the spool's budget (`None` without a spool).
    pub fn spool_bytes(&self) -> Option<(usize, usize)> {
        self.spool.as_ref().map(|s| (s.held_bytes(), s.budget_bytes()))
    }

    /// How long ago the oldest flush still in the spool was spooled (0 when
    /// it is empty): with `acks=local`, what a lost disk would lose.
    pub fn spool_lag_ms(&self) -> Option<u64> {
        let spool = self.spool.as_ref()?;
        Some(spool.oldest_ms().map_or(0, |t| self.log.node().now_ms().saturating_sub(t)))
    }

    /// Bytes of records taken and not yet answered (buffered, uploading or committing).
    pub fn held_bytes(&self) -> usize {
        self.budget_bytes.saturating_sub(self.budget.available_permits())
    }

    /// Stops taking requests (they get `Closed`), and returns once every
    /// request the flusher took before is uploaded, committed and answered
    /// (or failed). A large request still being compressed on a blocking
    /// thread when the flusher stops is not taken: it gets `Closed`, and
    /// nothing of it is written.
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
    ///
    /// # Cancel safety
    /// Once polled, the records are taken: dropping the future loses only
    /// the answer. A request compressed on a blocking thread is buffered
    /// from there whether or not its caller still waits (unless the writer
    /// has stopped meanwhile: then nothing of it is written), so the
    /// retries waiting for it get its offsets, as they would once it was
    /// buffered.
    pub async fn append(&self, topic: String, parts: Vec<PartitionRecords>, acks: Acks) -> Reply {
        if acks == Acks::Local && self.spool.is_none() {
            return Err(WriteError::NoSpool);
        }
        if acks == Acks::Local && parts.iter().any(|p| p.producer.is_some()) {
            return Err(WriteError::LocalIdempotent);
        }
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
            acks,
        };
        // Dropping the waiter on an early return answers the retries waiting for it.
        let Ok(permit) = self.budget.clone().try_acquire_many_owned(permits) else {
            waiter.answer(Err(WriteError::Overloaded));
            return Err(WriteError::Overloaded);
        };
        waiter._permit = Some(permit);
        let tx = self.tx.clone();
        compress_large_parts(parts, &self.compressing, move |parts| match parts {
            // A writer that has stopped drops the request, and its waiter answers `Closed`.
            Ok(parts) => drop(tx.send(Pending { topic, parts, bytes, waiter })),
            Err(e) => waiter.answer(Err(e)),
        });
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
            Placement::Duplicate(base) => {
                return Claim::Answered(Ok(Written { bases: vec![base], receipt: None, flush: None }));
            }
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

/// A request's records for one partition are compressed as they arrive, as
/// a frame of their batch, when they are at least this large: a sealed
/// buffer is then uploaded without waiting for all of it to be compressed
/// (as a Kafka producer compresses its own batches). Smaller parts are
/// compressed at the flush, together: on log lines, frames of 64 KiB come
/// out about 4% larger than one frame per batch (16 KiB ones 15%), until the
/// compactor merges them into one. Decision 0021.
const FRAME_MIN_BYTES: usize = 64 * 1024;

/// Up to this much is compressed on the request's own thread, where it was
/// just parsed; more goes to a blocking thread, so no request holds a
/// runtime thread for long (256 KiB takes about half a millisecond).
const INLINE_MAX_BYTES: usize = 256 * 1024;

/// Compresses each part of at least `FRAME_MIN_BYTES` into a frame, lets
/// go of its records, and hands the parts to `deliver`. Beyond
/// `INLINE_MAX_BYTES`, only with one of the `slots` (about one per core),
/// on a blocking thread that calls `deliver` itself; when none is free the
/// parts are left for the flush, so blocking threads, and the buffers and
/// contexts they hold, stay few. Otherwise `deliver` is called before this
/// returns.
///
/// The records left for the flush may be slices of one buffer with other
/// partitions' records (the native API hands a request over so): that
/// buffer is counted, as their request, until the request is answered,
/// and they are let go when their segment is built, before that.
///
/// The blocking thread does not depend on the caller: a request whose
/// client has gone is still delivered (and its retries answered), holding
/// its slot and its budget until then, so abandoned ones cannot pile up.
fn compress_large_parts(
    parts: Vec<PartitionRecords>,
    slots: &Arc<Semaphore>,
    deliver: impl FnOnce(Result<Vec<Part>, WriteError>) + Send + 'static,
) {
    let sizes: Vec<usize> = parts.iter().map(|p| segment::encoded_records_len(&p.records)).collect();
    let total: usize = sizes.iter().filter(|n| **n >= FRAME_MIN_BYTES).sum();
    let take = move |parts: Vec<PartitionRecords>, compress: bool| {
        parts
            .into_iter()
            .zip(&sizes)
            .map(|(p, size)| {
                let held = match compress && *size >= FRAME_MIN_BYTES {
                    true => Held::Frame(Frame::compress(&p.records)?),
                    false => Held::Records(p.records),
                };
                Ok(Part { partition: p.partition, topic_id: p.topic_id, producer: p.producer, held })
            })
            .collect::<Result<Vec<_>, floe_broker::Error>>()
            .map_err(|e| WriteError::Upload(Arc::new(e)))
    };
    if total <= INLINE_MAX_BYTES {
        return deliver(take(parts, true));
    }
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        return deliver(take(parts, false));
    };
    // Not awaited: the thread delivers, a panic included.
    drop(tokio::task::spawn_blocking(move || {
        let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| take(parts, true)))
            .unwrap_or_else(|_| Err(WriteError::Internal("record compression panicked".into())));
        drop(slot);
        deliver(taken);
    }));
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
    uploads: mpsc::Sender<Sealed>,
    uploader: Arc<Uploader>,
    settings: WriterSettings,
    recovered: Vec<Recovered>,
    tasks: TaskTracker,
) {
    // What the spool held at start goes first: its records were sealed before any new ones.
    for flush in recovered {
        if uploader.log.state().flush_committed(flush.flush) {
            tracing::info!(flush = ?flush.flush, "a spooled flush was committed before the restart; removing it");
            forget(&uploader, Some(flush.flush)).await;
            continue;
        }
        let task = tasks.spawn(replay(uploader.clone(), flush));
        if uploads.send(Sealed::Upload { task, closes: true }).await.is_err() {
            return;
        }
    }
    let stop = uploader.stop.clone();
    let mut open: Vec<Pending> = Vec::new();
    let mut open_bytes = 0usize;
    // The clock's next tick, once something waits for it: records in the
    // open buffer, or buffers sealed early by size (whose round it closes).
    let mut deadline: Option<Instant> = None;
    // The interval bounds how often this agent's clock seals a buffer, not
    // how long a record waits: a record arriving when the last tick was an
    // interval ago or more is flushed at once. The start counts as a tick,
    // so the clock never seals more than one buffer per interval; buffers
    // sealed early by size do not move it.
    let mut last_tick = Instant::now();
    // Buffers sealed by size since the round began, to be committed with
    // the buffer that closes it. A round closes at the clock's tick, or
    // once it holds two waves of uploads: what waits for its entry (and
    // how long the first of them waits) stays bounded however busy the agent.
    let mut sized = 0usize;
    let round_cap = 2 * settings.max_uploads.max(1);
    let mut closing = false;
    let mut stopping = false;
    let ratio = &uploader.ratio;
    // Highly compressible records must not fill the whole buffer budget
    // before their segment reaches `flush_bytes`: a quarter of it at most
    // (or `flush_bytes` of records, as if they did not compress).
    let records_cap = settings.flush_bytes.max(settings.buffer_bytes / 4);
    let full = |records: usize| records >= records_cap || ratio.segment_bytes(records) >= settings.flush_bytes;
    while !closing {
        let seal = tokio::select! {
            next = rx.recv() => match next {
                Some(p) => {
                    let due = *deadline.get_or_insert(last_tick + settings.flush_interval);
                    open_bytes += p.bytes;
                    open.push(p);
                    if due <= Instant::now() {
                        // Due already: take what else is queued right now into the same flush.
                        while !full(open_bytes) {
                            let Ok(more) = rx.try_recv() else { break };
                            open_bytes += more.bytes;
                            open.push(more);
                        }
                        Some(Seal::Clock)
                    } else {
                        full(open_bytes).then_some(Seal::Size)
                    }
                }
                None => {
                    closing = true;
                    (!open.is_empty() || sized > 0).then_some(Seal::Clock)
                }
            },
            () = sleep_until(deadline) => Some(Seal::Clock),
            // Requests already queued are still received, then `None`.
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                rx.close();
                None
            }
        };
        let Some(seal) = seal else { continue };
        // Sealed by the clock (or to stop): the round of buffers sealed by
        // size since the last tick closes with this one.
        let clock = seal == Seal::Clock || stopping;
        let closes = clock || sized + 1 >= round_cap;
        let round_open = sized > 0;
        if clock {
            (last_tick, deadline) = (Instant::now(), None);
        }
        sized = if closes { 0 } else { sized + 1 };
        if open.is_empty() {
            // The tick found nothing new: the round is what size sealed.
            if round_open && uploads.send(Sealed::Tick).await.is_err() {
                return;
            }
            continue;
        }
        let sealed = Instant::now();
        // The next buffer starts at this one's size, not grown by doubling.
        let next = Vec::with_capacity(open.len());
        let open = std::mem::replace(&mut open, next);
        // Spool space is taken here, in seal order: taken as uploads
        // finish encoding, a later flush could hold what the oldest
        // needs while it waits to be committed after the oldest.
        let spooled = match &uploader.spool {
            Some(spool) => {
                // A segment is rarely larger than its records: the
                // budget bounds the disk whatever the data compresses to.
                let bytes = open_bytes.max(ratio.segment_bytes(open_bytes));
                let space = match spool.try_reserve(bytes) {
                    Ok(Some(space)) => Some(space),
                    Ok(None) => {
                        // The spool is full of flushes waiting for their
                        // commit. Those of the open round wait for it to
                        // close: it closes without this one.
                        if round_open {
                            if uploads.send(Sealed::Tick).await.is_err() {
                                return;
                            }
                            sized = usize::from(!closes);
                        }
                        // Room first: a stopping writer still spools what has room.
                        tokio::select! {
                            biased;
                            space = spool.reserve(bytes) => space.ok(),
                            () = stop.cancelled() => None,
                        }
                    }
                    Err(_) => None,
                };
                space.map(|space| (spool.next_flush(), space))
            }
            None => None,
        };
        let task = tasks.spawn(upload(uploader.clone(), open, sealed, spooled));
        open_bytes = 0;
        // Waits while the commit is behind on closed rounds; requests keep
        // queueing, bounded by the buffer budget.
        if uploads.send(Sealed::Upload { task, closes }).await.is_err() {
            return;
        }
    }
}

/// What sealed a buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seal {
    /// The interval since the last tick is up, or the writer stops.
    Clock,
    /// Its segment reached `flush_bytes`.
    Size,
}

/// What the flusher hands to the commit, in seal order. Buffers sealed by
/// size are committed with the rest of their round: everything sealed up
/// to the clock's next tick, so that they share its log entry.
enum Sealed {
    /// A sealed buffer's upload; `closes` its round when the clock (or a
    /// stop, or a replay at start) sealed it, or it fills the round's two
    /// waves of uploads.
    Upload { task: UploadTask, closes: bool },
    /// A round closed without a buffer of its own (the tick found the
    /// buffer empty, or the spool had no room for it).
    Tick,
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

/// Builds one segment from the sealed requests (one batch per partition),
/// syncs it to the spool if there is one, and PUTs it.
async fn upload(
    ctx: Arc<Uploader>,
    pending: Vec<Pending>,
    sealed: Instant,
    spooled: Option<(FlushId, SpoolSpace)>,
) -> Result<Uploaded, (WriteError, Vec<Waiter>)> {
    if ctx.spool.is_some() && spooled.is_none() {
        // Stopped while waiting for spool space: nothing of theirs was written.
        return Err((WriteError::Closed, pending.into_iter().map(|p| p.waiter).collect()));
    }
    let record_bytes: usize = pending.iter().map(|p| p.bytes).sum();
    let key_of = |i: usize, topic: &str, part: &Part| -> BatchKey {
        (topic.to_owned(), part.topic_id, part.partition, part.producer.map(|stamp| (stamp, i)))
    };
    // Each batch's records so far, and its parts in order (merged into
    // runs at the build: `into_runs`).
    let mut groups: BTreeMap<BatchKey, (usize, Vec<Held>)> = BTreeMap::new();
    let mut waiters = Vec::with_capacity(pending.len());
    let mut placed: Vec<Vec<(BatchKey, u32)>> = Vec::with_capacity(pending.len());
    for (i, p) in pending.into_iter().enumerate() {
        let mut slots = Vec::with_capacity(p.parts.len());
        for part in p.parts {
            let key = key_of(i, &p.topic, &part);
            let (count, parts) = groups.entry(key.clone()).or_default();
            slots.push((key, *count as u32));
            *count += part.records();
            parts.push(part.held);
        }
        placed.push(slots);
        waiters.push(p.waiter);
    }
    let batch_index: BTreeMap<BatchKey, usize> = groups.keys().cloned().enumerate().map(|(i, k)| (k, i)).collect();
    for (w, slots) in waiters.iter_mut().zip(placed) {
        w.slots = slots.into_iter().map(|(k, start)| (batch_index[&k], start)).collect();
    }
    let parts: Vec<Vec<Held>> = groups.into_values().map(|(_, parts)| parts).collect();
    let keys: Vec<BatchKey> = batch_index.into_keys().collect();
    // Encoding holds about twice the segment besides the records: bounded too.
    let slots = if ctx.spool.is_some() { &ctx.encodes } else { &ctx.puts };
    let Ok(permit) = slots.acquire().await else {
        return Err((WriteError::Closed, waiters));
    };
    // The records go with the build: once compressed, nothing keeps them.
    let built = tokio::task::spawn_blocking(move || {
        let mut b = SegmentBuilder::aligned();
        for ((topic, _, partition, _), parts) in keys.iter().zip(parts) {
            let runs = into_runs(parts);
            b.add_batch_runs(topic, *partition, &runs.iter().map(Held::run).collect::<Vec<_>>())?;
        }
        let Finished { chunks, mut index, batch_chunks } = b.finish_parts()?;
        for (meta, (_, topic_id, _, producer)) in index.iter_mut().zip(&keys) {
            meta.producer = producer.map(|(stamp, _)| stamp);
            meta.topic_id = Some(*topic_id);
        }
        let written = batch_chunks.into_iter().map(|range| Arc::from(&chunks[range])).collect();
        Ok::<_, floe_broker::Error>((PutPayload::from_iter(chunks), index, written))
    })
    .await;
    let (payload, batches, written) = match built {
        Ok(Ok(built)) => {
            ctx.ratio.learn(record_bytes, built.0.content_length());
            built
        }
        Ok(Err(e)) => return Err((WriteError::Upload(Arc::new(e)), waiters)),
        // Cancelled only as the runtime shuts down.
        Err(e) if e.is_cancelled() => return Err((WriteError::Closed, waiters)),
        Err(e) => return Err((WriteError::Internal(format!("segment encoder stopped: {e}")), waiters)),
    };
    let segment = ctx.log.node().ulid();
    let body = Body::Ram(payload);
    let mut up = Uploaded { sealed, uploaded: sealed, segment, body, batches, written, waiters, reupload: false };
    let _permit = match (&ctx.spool, spooled) {
        (Some(spool), Some((flush, space))) => {
            drop(permit);
            if let Err(e) = spill(&ctx, spool, flush, space, &mut up).await {
                return Err((WriteError::Spool(Arc::new(e)), up.waiters));
            }
            let Ok(permit) = ctx.puts.acquire().await else {
                return Err((WriteError::OutcomeUnknown, up.waiters));
            };
            permit
        }
        _ => permit,
    };
    match put(&ctx, &mut up, false).await {
        Ok(()) => Ok(up),
        Err(e) => Err((e, up.waiters)),
    }
}

/// Syncs the upload's segment to the spool and lets go of it in RAM: its
/// requests' write-buffer bytes are freed, its batches go to the read cache
/// as written (tail readers here are served without a GET), and
/// `acks=local` requests are answered.
async fn spill(
    ctx: &Uploader,
    spool: &Arc<Spool>,
    flush: FlushId,
    space: SpoolSpace,
    up: &mut Uploaded,
) -> Result<(), SpoolError> {
    let Body::Ram(payload) = &up.body else { return Ok(()) };
    spool.write(flush, up.batches.clone(), payload.clone(), ctx.log.node().now_ms()).await?;
    up.body = Body::Spooled { flush, _space: space };
    for (meta, chunks) in up.batches.iter().zip(std::mem::take(&mut up.written)) {
        ctx.cache.insert_written((up.segment, meta.pos), chunks).await;
    }
    let mut committed = Vec::with_capacity(up.waiters.len());
    for mut w in std::mem::take(&mut up.waiters) {
        w._permit = None;
        match w.acks {
            Acks::Local => w.answer(Ok(Written { bases: Vec::new(), receipt: None, flush: Some(flush) })),
            Acks::Committed => committed.push(w),
        }
    }
    up.waiters = committed;
    Ok(())
}

/// A flush found in the spool at start, uploaded again under a new name
/// (its first upload may be gone, or too old to commit): nobody waits for it.
async fn replay(ctx: Arc<Uploader>, flush: Recovered) -> Result<Uploaded, (WriteError, Vec<Waiter>)> {
    let now = Instant::now();
    let Recovered { flush, batches, space } = flush;
    let mut up = Uploaded {
        sealed: now,
        uploaded: now,
        segment: ctx.log.node().ulid(),
        body: Body::Spooled { flush, _space: space },
        batches,
        written: Vec::new(),
        waiters: Vec::new(),
        reupload: false,
    };
    tracing::info!(?flush, "replaying a flush left in the spool");
    let Ok(_permit) = ctx.puts.acquire().await else {
        return Err((WriteError::OutcomeUnknown, Vec::new()));
    };
    put(&ctx, &mut up, false).await.map(|()| up).map_err(|e| (e, Vec::new()))
}

/// PUTs the upload's segment, under a new name if `fresh` or once its name
/// has grown old (garbage collection goes by the name's time). The upload's
/// name changes only once a PUT under it has landed: an entry never names a
/// segment that was not uploaded. A spooled one is tried (its spool file
/// read again too) until it lands or the writer stops; it is then left for
/// the next start to replay.
async fn put(ctx: &Uploader, up: &mut Uploaded, fresh: bool) -> Result<(), WriteError> {
    let mut backoff = Backoff::default();
    let (mut name, mut fresh) = (up.segment, fresh);
    loop {
        let window = ctx.log.state().commit_window_ms;
        if fresh || ctx.log.node().now_ms().saturating_sub(name.timestamp_ms()) > window / 4 {
            (name, fresh) = (ctx.log.node().ulid(), false);
        }
        let attempt = async {
            let payload = ctx.payload(&up.body).await?;
            let put = ctx.log.store().put(&keys::segment(name), payload).await;
            put.map_err(|e| WriteError::Upload(Arc::new(e.into())))
        };
        match attempt.await {
            Ok(_) => {
                (up.segment, up.uploaded) = (name, Instant::now());
                return Ok(());
            }
            Err(e) if up.flush().is_none() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, flush = ?up.flush(), "uploading a spooled flush failed; it stays in the spool and is tried again");
                if !backoff.wait(&ctx.stop).await {
                    return Err(WriteError::OutcomeUnknown);
                }
            }
        }
    }
}

/// Waits between attempts on the store: 50 ms, doubling up to 2 s.
#[derive(Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    /// False once the writer is stopping (after waiting no longer).
    async fn wait(&mut self, stop: &CancellationToken) -> bool {
        if stop.is_cancelled() {
            return false;
        }
        let wait = Duration::from_millis(50 << self.attempts.min(6)).min(Duration::from_secs(2));
        self.attempts += 1;
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = stop.cancelled() => true,
        }
    }
}

/// Removes a spooled upload's file once its flush is committed (or known
/// to be): a failure only leaves a file that the next start finds committed.
async fn forget(ctx: &Uploader, flush: Option<FlushId>) {
    if let (Some(spool), Some(flush)) = (&ctx.spool, flush)
        && let Err(e) = spool.remove(flush.seq).await
    {
        tracing::warn!(error = %e, ?flush, "could not remove a committed flush from the spool");
    }
}

/// An upload that waited too long for its commit is uploaded again under a
/// new name: garbage collection may delete segments older than the commit
/// window, and the log refuses to commit them. Half the window leaves room
/// for the commit itself.
async fn refresh_if_stale(ctx: &Uploader, up: &mut Uploaded) -> Result<(), WriteError> {
    let window = ctx.log.state().commit_window_ms;
    let age = ctx.log.node().now_ms().saturating_sub(up.segment.timestamp_ms());
    if up.reupload || age > window / 2 {
        tracing::info!(segment = %up.segment, age_ms = age, "uploading a segment again under a new name before its commit");
        put(ctx, up, true).await?;
        up.reupload = false;
    }
    Ok(())
}

/// An upload task that ended without an answer: whether its flush is left
/// in the spool, for a restart to commit in order before the later ones. A
/// panic there goes on up, to abort the agent (this loop is `essential`),
/// rather than leave an agent that takes `acks=local` writes and never
/// commits them.
fn upload_task_ended(ctx: &Uploader, e: tokio::task::JoinError) -> bool {
    if ctx.spool.is_some() && e.is_panic() {
        std::panic::resume_unwind(e.into_panic());
    }
    ctx.spool.is_some()
}

/// Commits uploads in the order they were sealed, so one producer's
/// requests keep their order within a partition, a round at a time: the
/// buffers sealed early by size since the clock's last tick, and the one
/// the tick seals (or the tick alone), as one log entry, together with any
/// later upload that has finished by then. A record so waits at most one
/// interval, the uploads of its round (at most two waves of `max_uploads`)
/// and the commit, and a busy agent writes about one entry per interval
/// (more once a round fills two waves, and while stopping, replaying its
/// spool or waiting for spool space). Ends when the flusher has ended and every
/// upload it sealed is committed or failed. Once `stop` is cancelled,
/// uploads are committed as soon as they finish.
///
/// # Cancel safety
/// Not cancel safe: dropped mid-commit, its requests get `Closed` although
/// their entry may land (an unknown outcome, as a crash would leave). It is
/// never cancelled: the writer's drain waits for it to end.
async fn commit_uploads(uploads: mpsc::Receiver<Sealed>, ctx: Arc<Uploader>, committer: Arc<Committer>, max: usize) {
    let stop = ctx.stop.clone();
    let mut intake = Intake { uploads, queue: VecDeque::new(), open: true, max };
    // Set once a spooled flush is left uncommitted (the writer stopped while
    // the store was away): later ones are left too, for the next start to
    // commit in order after it.
    let mut left = false;
    loop {
        let (oldest, mut closed) = match intake.next().await {
            Some(Sealed::Upload { task, closes }) => (task, closes),
            Some(Sealed::Tick) => continue,
            None => return,
        };
        let first = match intake.meanwhile(oldest).await {
            Ok(Ok(up)) if !left => up,
            Ok(Ok(up)) => {
                left |= up.flush().is_some();
                fail_all(up.waiters, &WriteError::OutcomeUnknown);
                continue;
            }
            Ok(Err((e, waiters))) => {
                // Only a spooled flush left uncommitted holds back the later
                // ones; one refused before the spool has no file (its number is skipped).
                left |= ctx.spool.is_some() && matches!(e, WriteError::OutcomeUnknown);
                fail_all(waiters, &e);
                continue;
            }
            // The waiters were dropped with the task: their callers see
            // `Internal` if it panicked, `Closed` if the runtime dropped it.
            Err(e) => {
                left |= upload_task_ended(&ctx, e);
                continue;
            }
        };
        let mut ready = vec![Ok(Ok(first))];
        // The rest of the round, up to what closes it.
        while !closed {
            let next = tokio::select! {
                next = intake.next() => next,
                () = stop.cancelled() => None,
            };
            match next {
                Some(Sealed::Upload { task, closes }) => {
                    ready.push(intake.meanwhile(task).await);
                    closed = closes;
                }
                Some(Sealed::Tick) | None => closed = true,
            }
        }
        // Later uploads that have finished meanwhile go in the same entry.
        while let Some(Sealed::Upload { task, .. }) = intake.queue.front()
            && task.is_finished()
        {
            if let Some(Sealed::Upload { task, .. }) = intake.queue.pop_front() {
                ready.push(task.await);
            }
        }
        let mut group = Vec::with_capacity(ready.len());
        for done in ready {
            match done {
                Ok(Ok(mut up)) if !left => match refresh_if_stale(&ctx, &mut up).await {
                    Ok(()) => group.push(up),
                    Err(e) => {
                        left |= up.flush().is_some();
                        fail_all(up.waiters, &e);
                    }
                },
                Ok(Ok(up)) => fail_all(up.waiters, &WriteError::OutcomeUnknown),
                Ok(Err((e, waiters))) => {
                    left |= ctx.spool.is_some() && matches!(e, WriteError::OutcomeUnknown);
                    fail_all(waiters, &e);
                }
                Err(e) => left |= upload_task_ended(&ctx, e),
            }
        }
        if !group.is_empty() {
            left |= !commit_group(group, &committer, &ctx).await;
        }
    }
}

/// Sealed uploads taken off the flusher's queue, in seal order.
struct Intake {
    uploads: mpsc::Receiver<Sealed>,
    queue: VecDeque<Sealed>,
    /// Until the flusher has ended.
    open: bool,
    /// Taken at most while waiting on an upload (the flusher's queue holds
    /// the rest). A round being gathered holds at most two waves of
    /// `max_uploads` besides; the semaphores bound those encoded or PUT at once.
    max: usize,
}

impl Intake {
    /// The next sealed upload (or tick), `None` once the flusher has ended.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is taken off the queues unless returned.
    async fn next(&mut self) -> Option<Sealed> {
        match self.queue.pop_front() {
            Some(next) => Some(next),
            None if self.open => self.uploads.recv().await,
            None => None,
        }
    }

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

/// Commits the group as one entry and answers its requests. Spooled
/// flushes are tried until they are committed (in order: the log refuses a
/// spool's flush behind one it refused), or the writer stops; returns false
/// if some were left uncommitted then.
async fn commit_group(mut group: Vec<Uploaded>, committer: &Committer, ctx: &Uploader) -> bool {
    // Tail readers on this agent are served from RAM, without a GET. The
    // batches go in before the commit: a long-poll wakes the moment the entry
    // is applied, and must find them there. (Entries for a commit that fails
    // are never referenced, and age out.) Spooled uploads put theirs in when spooled.
    for up in &mut group {
        for (meta, chunks) in up.batches.iter().zip(std::mem::take(&mut up.written)) {
            ctx.cache.insert_written((up.segment, meta.pos), chunks).await;
        }
    }
    let mut backoff = Backoff::default();
    loop {
        let ops = group.iter().map(Uploaded::op).collect();
        let spooled = ctx.spool.is_some();
        group = match committer.commit(ops).await {
            Ok(c) => answer(group, c.seq, c.outcomes, ctx).await,
            Err(e) => {
                let e = match e {
                    CommitError::Failed(e) => WriteError::Commit(e),
                    CommitError::Closed => WriteError::Closed,
                    other => WriteError::UnexpectedOutcome(other.to_string()),
                };
                if !spooled {
                    for up in group {
                        fail_all(up.waiters, &e);
                    }
                    return true;
                }
                tracing::warn!(error = %e, "committing spooled flushes failed; they stay in the spool and are tried again");
                group
            }
        };
        if group.is_empty() {
            return true;
        }
        let mut ready = backoff.wait(&ctx.stop).await;
        for up in &mut group {
            // A spooled upload's PUT fails only once the writer stops.
            ready = ready && refresh_if_stale(ctx, up).await.is_ok();
        }
        if !ready {
            // Left, in order, for the next start on this spool.
            for up in group {
                fail_all(up.waiters, &WriteError::OutcomeUnknown);
            }
            return false;
        }
    }
}

/// Answers each upload's requests from its outcome; returns the spooled
/// uploads the log refused for now (too old, or behind one that was), to
/// be uploaded under a new name and committed again.
async fn answer(group: Vec<Uploaded>, seq: u64, outcomes: Vec<OpOutcome>, ctx: &Uploader) -> Vec<Uploaded> {
    let committed = Instant::now();
    let mut again = Vec::new();
    for (mut up, outcome) in group.into_iter().zip(outcomes.into_iter().map(Some).chain(std::iter::repeat(None))) {
        let placements = match (outcome, up.flush()) {
            (Some(OpOutcome::Appended(p)), _) => p,
            (Some(OpOutcome::SegmentTooOld | OpOutcome::EntryTooOld | OpOutcome::FlushBlocked), Some(_)) => {
                up.reupload = true;
                again.push(up);
                continue;
            }
            (Some(OpOutcome::FlushAlreadyCommitted), Some(_)) => {
                forget(ctx, up.flush()).await;
                fail_all(up.waiters, &WriteError::OutcomeUnknown);
                continue;
            }
            // A copy of an entry applied before, or an answer it should not
            // get: a spooled flush is dropped only once the log has it.
            (other, Some(flush)) => {
                if let Err(e) = ctx.log.catch_up().await {
                    tracing::warn!(error = %e, "catching up with the log failed");
                }
                if ctx.log.state().flush_committed(flush) {
                    forget(ctx, Some(flush)).await;
                    fail_all(up.waiters, &WriteError::OutcomeUnknown);
                } else {
                    tracing::warn!(outcome = ?other, ?flush, "the log did not take a spooled flush; trying again");
                    up.reupload = true;
                    again.push(up);
                }
                continue;
            }
            (Some(OpOutcome::SegmentTooOld | OpOutcome::EntryTooOld | OpOutcome::AlreadyCommitted { .. }), None) => {
                fail_all(up.waiters, &WriteError::OutcomeUnknown);
                continue;
            }
            (other, None) => {
                fail_all(up.waiters, &WriteError::UnexpectedOutcome(format!("{other:?}")));
                continue;
            }
        };
        forget(ctx, up.flush()).await;
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
            w.answer(offsets.map(|bases| Written { bases, receipt: Some(receipt), flush: None }));
        }
    }
    again
}

fn fail_all(waiters: Vec<Waiter>, e: &WriteError) {
    for w in waiters {
        w.answer(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
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

    /// Requests large enough are compressed as they arrive, each as a frame
    /// of the batch they share; the small one between them is compressed at
    /// the flush. The batch reads back as the three requests in order.
    #[tokio::test(start_paused = true)]
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn large_requests_are_compressed_as_they_arrive_into_frames_of_one_batch() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let settings =
            WriterSettings { flush_interval: HOUR, flush_bytes: 1 << 20, buffer_bytes: 4 << 20, max_uploads: 4 };
        let (writer, topic_id, log) = writer_with(store.clone(), settings, None).await;
        // The first flush goes at once; the next ones wait for the tick.
        write(writer.clone(), topic_id, 0, 1, Acks::Committed).await.unwrap();
        // The second large one is compressed on a blocking thread.
        let requests = [(1, FRAME_MIN_BYTES / 100 + 1), (2, 3), (3, INLINE_MAX_BYTES / 100 + 1)];
        let tasks: Vec<_> = requests
            .iter()
            .map(|(n, count)| tokio::spawn(write(writer.clone(), topic_id, *n, *count, Acks::Committed)))
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let stored = log.state().partition("t", 0).unwrap().batches.values().last().cloned().unwrap();
        let segment = store.get(&keys::segment(stored.segment)).await.unwrap().bytes().await.unwrap();
        let batch = &segment[stored.pos as usize..stored.pos as usize + stored.len as usize];
        assert_eq!(segment::batch_frames(batch).unwrap(), 3, "one frame per large request, one for the small one");
        let values: Vec<u8> = segment::decode_batch(batch).unwrap().iter().map(|r| r.value[0]).collect();
        let expected: Vec<u8> = requests.iter().flat_map(|(n, count)| vec![*n; *count]).collect();
        assert_eq!(values, expected);
    }

    /// A large request's frame lies at a block boundary of its segment, in
    /// aligned memory: a local directory writes it from there.
    #[tokio::test(start_paused = true)]
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn a_large_requests_frame_lies_at_a_block_boundary_of_its_segment() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let settings =
            WriterSettings { flush_interval: HOUR, flush_bytes: 1 << 20, buffer_bytes: 4 << 20, max_uploads: 4 };
        let (writer, topic_id, log) = writer_with(store.clone(), settings, None).await;
        let records = floe_broker::testing::letter_records(7, FRAME_MIN_BYTES / 1000 + 1, 1000);
        let part = PartitionRecords { partition: 0, topic_id, producer: None, records: records.clone() };
        writer.append("t".into(), vec![part], Acks::Committed).await.unwrap();
        let stored = log.state().partition("t", 0).unwrap().batches.values().last().cloned().unwrap();
        let segment = store.get(&keys::segment(stored.segment)).await.unwrap().bytes().await.unwrap();
        let batch = &segment[stored.pos as usize..stored.pos as usize + stored.len as usize];
        let at = segment::frame_positions(batch).unwrap();
        assert_eq!(at.len(), 1);
        assert_eq!(
            (stored.pos as usize + at[0]) % floe_broker::aligned::BLOCK,
            0,
            "the frame at {} of the batch",
            at[0]
        );
        assert_eq!(segment::decode_batch(batch).unwrap(), records);
    }

    /// What `compress_large_parts` delivers, wherever it does.
    async fn compressed(parts: Vec<PartitionRecords>, slots: &Arc<Semaphore>) -> Result<Vec<Part>, WriteError> {
        let (tx, rx) = oneshot::channel();
        compress_large_parts(parts, slots, move |taken| drop(tx.send(taken)));
        rx.await.expect("delivered")
    }

    /// A large request finds no free compression slot: its records are left
    /// for the flush instead of waiting or starting another blocking thread.
    #[tokio::test]
    async fn without_a_free_slot_large_parts_are_left_for_the_flush() {
        let record = Record { key: None, value: bytes::Bytes::from(vec![1; 100]), timestamp: 1, headers: vec![] };
        let parts = || {
            vec![PartitionRecords {
                partition: 0,
                topic_id: 1,
                producer: None,
                records: vec![record.clone(); INLINE_MAX_BYTES / 100 + 1],
            }]
        };
        let taken = compressed(parts(), &Arc::new(Semaphore::new(0))).await.unwrap();
        assert!(matches!(taken[0].held, Held::Records(_)));
        let slots = Arc::new(Semaphore::new(1));
        let taken = compressed(parts(), &slots).await.unwrap();
        assert!(matches!(taken[0].held, Held::Frame(_)));
        assert_eq!(slots.available_permits(), 1, "the slot is given back");
    }

    /// Parts of one request whose keys and values are slices of one
    /// buffer (as the native API hands them over), each record `size` bytes.
    fn parts_sharing_a_buffer(partitions: u32, records: usize, size: usize) -> (Bytes, Vec<PartitionRecords>) {
        let shared: Bytes = (0..partitions as usize * records * size).map(|i| (i % 251) as u8).collect();
        let mut at = 0;
        let parts = (0..partitions)
            .map(|partition| PartitionRecords {
                partition,
                topic_id: 1,
                producer: None,
                records: (0..records)
                    .map(|_| {
                        at += size;
                        let key = Some(shared.slice(at - size..at - size + 1));
                        Record { key, value: shared.slice(at - size + 1..at), timestamp: 1, headers: vec![] }
                    })
                    .collect(),
            })
            .collect();
        (shared, parts)
    }

    /// Parts left for the flush between two frames become one run, in
    /// order, in a vector of exactly their number; frames stay as they are.
    #[test]
    fn a_batch_s_records_between_frames_become_one_run_of_their_number() {
        let part = |n: u8, count: usize| {
            Held::Records(
                (0..count)
                    .map(|_| Record { key: None, value: Bytes::from(vec![n]), timestamp: 1, headers: vec![] })
                    .collect(),
            )
        };
        let frame = |n: u8| {
            let Held::Records(records) = part(n, 1) else { unreachable!() };
            Held::Frame(Frame::compress(&records).unwrap())
        };
        let parts = vec![part(1, 3), part(2, 5), frame(3), part(4, 2), frame(5), frame(6), part(7, 1), part(8, 4)];
        let runs = into_runs(parts);
        let shape: Vec<(&str, usize, usize)> = runs
            .iter()
            .map(|run| match run {
                Held::Records(r) => ("records", r.len(), r.capacity()),
                Held::Frame(f) => ("frame", f.records(), 0),
            })
            .collect();
        let expected = [
            ("records", 8, 8),
            ("frame", 1, 0),
            ("records", 2, 2),
            ("frame", 1, 0),
            ("frame", 1, 0),
            ("records", 5, 5),
        ];
        assert_eq!(shape, expected);
        let Held::Records(first) = &runs[0] else { unreachable!() };
        let values: Vec<u8> = first.iter().map(|r| r.value[0]).collect();
        assert_eq!(values, [1, 1, 1, 2, 2, 2, 2, 2]);
    }

    /// A large part is compressed and its records let go at once: a
    /// request whose parts are all large keeps nothing of its buffer.
    /// Records left for the flush keep it until their segment is built.
    #[tokio::test]
    async fn compressed_parts_let_go_of_the_request_buffer_at_once() {
        // Large parts, inline and on a blocking thread; small ones; large
        // ones left for the flush for want of a slot.
        for (size, slots, let_go) in [(1024, 1, true), (512, 1, true), (100, 1, false), (1024, 0, false)] {
            let (shared, parts) = parts_sharing_a_buffer(2, 150, size);
            let taken = compressed(parts, &Arc::new(Semaphore::new(slots))).await.unwrap();
            assert_eq!(taken.iter().map(Part::records).collect::<Vec<_>>(), [150, 150]);
            assert_eq!(shared.is_unique(), let_go, "{size} B records, {slots} slots");
            drop(taken);
            assert!(shared.is_unique());
        }
    }

    /// Five requests, one after another, each fill a buffer (`flush_bytes`
    /// 1) before the clock's first tick: their five segments are committed
    /// by one log entry at the tick, not five.
    #[tokio::test(start_paused = true)]
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn buffers_sealed_by_size_share_one_log_entry() {
        let store = Arc::new(MeteredStore::new(Arc::new(object_store::memory::InMemory::new())));
        let (writer, topic_id) = one_partition_writer(store.clone(), 4).await;
        let log_puts = store.stats().log.put;
        let seqs = one_at_a_time(&writer, topic_id, &store, 5).await;
        assert!(seqs.iter().all(|s| *s == seqs[0]), "one entry for all five: {seqs:?}");
        assert_eq!(store.stats().log.put, log_puts + 1);
    }

    /// A request that fills a buffer, and one after it that the clock
    /// seals at the next tick (a closed-loop producer's flush and its
    /// remainder): one log entry, not one each.
    #[tokio::test(start_paused = true)]
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn a_buffer_sealed_by_size_shares_its_entry_with_the_next_tick() {
        let store = Arc::new(MeteredStore::new(Arc::new(object_store::memory::InMemory::new())));
        let settings =
            WriterSettings { flush_interval: HOUR, flush_bytes: 1000, buffer_bytes: 1 << 20, max_uploads: 4 };
        let (writer, topic_id, _) = writer_with(store.clone(), settings, None).await;
        // A first flush, sealed by the clock and committed: later ones are not the agent's first.
        let warm = write(writer.clone(), topic_id, 0, 1, Acks::Committed).await.unwrap().receipt.unwrap().seq;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let log_puts = store.stats().log.put;
        let full = tokio::spawn(write(writer.clone(), topic_id, 1, 20, Acks::Committed));
        eventually("the full buffer uploaded", || store.stats().segments.put == 2).await;
        let remainder = tokio::spawn(write(writer.clone(), topic_id, 2, 1, Acks::Committed));
        let full = full.await.unwrap().unwrap().receipt.unwrap().seq;
        let remainder = remainder.await.unwrap().unwrap().receipt.unwrap().seq;
        assert_eq!((full, remainder), (warm + 1, warm + 1), "both in the entry after the first");
        assert_eq!(store.stats().log.put, log_puts + 1);
        assert_eq!(store.stats().segments.put, 3);
    }

    /// A round closes after two waves of `max_uploads` buffers sealed by
    /// size, without waiting for the tick: with one upload at a time, the
    /// first two requests share an entry and the third is in the next.
    #[tokio::test(start_paused = true)]
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn a_round_holds_at_most_two_waves_of_uploads() {
        let store = Arc::new(MeteredStore::new(Arc::new(object_store::memory::InMemory::new())));
        let (writer, topic_id) = one_partition_writer(store.clone(), 1).await;
        let seqs = one_at_a_time(&writer, topic_id, &store, 3).await;
        assert_eq!(seqs, vec![seqs[0], seqs[0], seqs[0] + 1]);
    }

    /// Sends `count` one-record requests, each once the previous one's
    /// segment is uploaded; returns the log position that committed each.
    async fn one_at_a_time(writer: &Writer, topic_id: u64, store: &MeteredStore, count: u8) -> Vec<u64> {
        let mut requests = Vec::new();
        for n in 1..=count {
            requests.push(tokio::spawn(write_one(writer.clone(), topic_id, n)));
            eventually("its segment uploaded", || store.stats().segments.put == u64::from(n)).await;
        }
        let mut seqs = Vec::new();
        for answer in requests {
            seqs.push(answer.await.unwrap().receipt.unwrap().seq);
        }
        seqs
    }

    /// A writer on `store` with one partition (topic `t`, whose id it
    /// returns), a flush per request and an hour's interval.
    async fn one_partition_writer(store: Arc<dyn object_store::ObjectStore>, max_uploads: usize) -> (Writer, u64) {
        let (writer, topic_id, _) = writer_on(store, max_uploads, None, HOUR).await;
        (writer, topic_id)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// The same, with a spool if given, and its log.
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn writer_on(
        store: Arc<dyn object_store::ObjectStore>,
        max_uploads: usize,
        spool: Option<(Arc<Spool>, Vec<Recovered>)>,
        flush_interval: Duration,
    ) -> (Writer, u64, Arc<MetadataLog>) {
        let settings = WriterSettings { flush_interval, flush_bytes: 1, buffer_bytes: 1 << 20, max_uploads };
        writer_with(store, settings, spool).await
    }

    /// The same, with the given settings.
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn writer_with(
        store: Arc<dyn object_store::ObjectStore>,
        settings: WriterSettings,
        spool: Option<(Arc<Spool>, Vec<Recovered>)>,
    ) -> (Writer, u64, Arc<MetadataLog>) {
        let (cluster, log) = floe_broker::open(store, floe_broker::LogSettings::default()).await.unwrap();
        let log = Arc::new(log);
        let topic = vec![Op::CreateTopic { name: "t".into(), partitions: 1, config: TopicConfig::default() }];
        log.commit(topic).await.unwrap();
        let topic_id = log.state().topic("t").unwrap().id;
        let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
        let auth = Arc::new(PeerAuth::new(cluster.cluster_id, String::new(), Vec::new()));
        let group = GroupSettings { window: Duration::ZERO };
        let committer = Committer::start(log.clone(), auth, None, group, &tasks, stop.clone(), stop.clone());
        let cache = BatchCache::new(1 << 20, None).unwrap();
        (Writer::start(log.clone(), committer, cache, settings, spool), topic_id, log)
    }

    /// Writes one record of 100 bytes `n` to `t`'s partition 0.
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn write_one(writer: Writer, topic_id: u64, n: u8) -> Written {
        write(writer, topic_id, n, 1, Acks::Committed).await.unwrap()
    }

    /// Writes `count` records of 100 bytes `n` to `t`'s partition 0.
    async fn write(writer: Writer, topic_id: u64, n: u8, count: usize, acks: Acks) -> Reply {
        let record = Record { key: None, value: bytes::Bytes::from(vec![n; 100]), timestamp: 1, headers: vec![] };
        let part = PartitionRecords { partition: 0, topic_id, producer: None, records: vec![record; count] };
        writer.append("t".into(), vec![part], acks).await
    }

    /// A flush interval that lets uploads finishing at different times be
    /// committed soon after one another.
    const SOON: Duration = Duration::from_millis(5);

    /// Polls (a bounded number of times) until `done`.
    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..20_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("never happened: {what}");
    }

    fn spooled_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "flush"))
            .count()
    }

    /// The record counts of `t`/0's batches, in offset order.
    fn batch_sizes(log: &MetadataLog) -> Vec<u32> {
        log.state().partition("t", 0).unwrap().batches.values().map(|b| b.records).collect()
    }

    /// With a spool, a store that fails every segment PUT refuses nobody:
    /// `acks=local` requests are answered once synced, `committed` ones
    /// wait, and once the store is back all are committed in order and
    /// the spool empties.
    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn with_a_spool_a_store_outage_refuses_nothing_and_loses_nothing() {
        let faulty = Arc::new(floe_broker::fault::FaultyStore::new(Arc::new(object_store::memory::InMemory::new())));
        let dir = tempfile::tempdir().unwrap();
        let (spool, recovered) = Spool::open(dir.path(), 1 << 20, Ulid::new, 0).unwrap();
        let (writer, topic_id, log) = writer_on(faulty.clone(), 2, Some((Arc::new(spool), recovered)), SOON).await;
        faulty.inject(floe_broker::fault::OpKind::Put, "segments/", floe_broker::fault::Fault::Fail, None);
        let mut committed = Vec::new();
        for n in 1..=6u8 {
            let acks = if n % 2 == 0 { Acks::Local } else { Acks::Committed };
            let request = tokio::spawn(write(writer.clone(), topic_id, n, usize::from(n), acks));
            if acks == Acks::Local {
                let answer = request.await.unwrap().unwrap();
                assert!(answer.bases.is_empty() && answer.flush.is_some(), "answered from the spool: {answer:?}");
            } else {
                committed.push(request);
            }
        }
        eventually("six flushes spooled", || spooled_files(dir.path()) == 6).await;
        assert!(committed.iter().all(|r| !r.is_finished()), "committed acks wait for the store");
        assert_eq!(log.state().partition("t", 0).unwrap().high_watermark, 0);
        faulty.clear();
        let mut bases = Vec::new();
        for request in committed {
            bases.push(request.await.unwrap().unwrap().bases[0]);
        }
        assert_eq!(batch_sizes(&log), vec![1, 2, 3, 4, 5, 6], "every request once, in order");
        assert_eq!(bases, vec![0, 1 + 2, 1 + 2 + 3 + 4], "offsets in seal order");
        let empty = || spooled_files(dir.path()) == 0 && writer.spool_bytes().is_some_and(|(held, _)| held == 0);
        eventually("the spool emptied, and its space returned", empty).await;
    }

    /// Flushes acknowledged with `acks=local` are committed exactly once by
    /// the next writer on the same spool: one whose store was away when
    /// the agent stopped, and one committed before the stop whose file
    /// survived (a crash between the commit and the file's removal).
    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn a_restart_on_the_same_spool_commits_each_acknowledged_flush_once() {
        use floe_broker::fault::{Fault, OpKind};
        let memory: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let faulty = Arc::new(floe_broker::fault::FaultyStore::new(memory.clone()));
        let dir = tempfile::tempdir().unwrap();
        let (spool, recovered) = Spool::open(dir.path(), 1 << 20, Ulid::new, 0).unwrap();
        let (writer, topic_id, log) = writer_on(faulty.clone(), 2, Some((Arc::new(spool), recovered)), SOON).await;
        // The first flush's commit is held up while its file is copied.
        faulty.inject(OpKind::Put, "log/", Fault::Fail, None);
        let first = write(writer.clone(), topic_id, 1, 1, Acks::Local).await.unwrap().flush.unwrap();
        let file = dir.path().join(format!("{:020}.flush", first.seq));
        let copy = std::fs::read(&file).unwrap();
        faulty.clear();
        eventually("the first flush committed", || log.state().flush_committed(first)).await;
        eventually("its file removed", || spooled_files(dir.path()) == 0).await;
        std::fs::write(&file, copy).unwrap();
        // The next two are synced and acknowledged while no segment can be uploaded.
        faulty.inject(OpKind::Put, "segments/", Fault::Fail, None);
        for n in 2..=3u8 {
            write(writer.clone(), topic_id, n, usize::from(n), Acks::Local).await.unwrap();
        }
        writer.drain().await;
        drop(writer);
        assert_eq!(spooled_files(dir.path()), 3);
        assert_eq!(batch_sizes(&log), vec![1]);

        let (spool, recovered) = Spool::open(dir.path(), 1 << 20, Ulid::new, 0).unwrap();
        assert_eq!(recovered.len(), 3);
        let (writer, _, log) = writer_on(memory, 2, Some((Arc::new(spool), recovered)), SOON).await;
        eventually("the spool replayed", || spooled_files(dir.path()) == 0).await;
        eventually("both committed", || batch_sizes(&log).len() >= 3).await;
        assert_eq!(batch_sizes(&log), vec![1, 2, 3], "each once, in order");
        let next = write(writer.clone(), topic_id, 4, 4, Acks::Local).await.unwrap().flush.unwrap();
        assert_eq!(next.seq, 4, "numbering goes on after the replayed flushes");
        writer.drain().await;
        assert_eq!(batch_sizes(&log), vec![1, 2, 3, 4]);
    }

    /// A spool with room for one flush at a time still takes every flush,
    /// one after another (space is taken in seal order, so a later flush
    /// never holds what an earlier one waits for); and an idempotent
    /// producer is refused `acks=local` before anything is buffered.
    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // test set-up
    async fn a_spool_with_room_for_one_flush_takes_them_in_turn() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let (spool, recovered) = Spool::open(dir.path(), 1, Ulid::new, 0).unwrap();
        let (writer, topic_id, log) = writer_on(store, 4, Some((Arc::new(spool), recovered)), SOON).await;
        let requests: Vec<_> =
            (1..=6u8).map(|n| tokio::spawn(write(writer.clone(), topic_id, n, usize::from(n), Acks::Local))).collect();
        for request in requests {
            request.await.unwrap().unwrap();
        }
        eventually("all six committed", || batch_sizes(&log).len() == 6).await;
        let stamp = ProducerStamp { id: 0, epoch: 0, sequence: 0 };
        let record = Record { key: None, value: bytes::Bytes::from_static(b"x"), timestamp: 1, headers: vec![] };
        let part = PartitionRecords { partition: 0, topic_id, producer: Some(stamp), records: vec![record] };
        let refused = writer.append("t".into(), vec![part], Acks::Local).await;
        assert!(matches!(refused, Err(WriteError::LocalIdempotent)), "{refused:?}");
    }

    /// An idempotent retry waits for its original, whose request is then
    /// dropped (its client gone) while its records are compressed on a
    /// blocking thread: the original is still written, once, and the retry
    /// gets its offsets. (It used to get `Closed`, a 503 `shutting_down`
    /// from an agent that was not stopping.)
    #[tokio::test]
    async fn a_retry_whose_original_was_dropped_while_compressing_gets_its_offsets() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let (writer, topic_id, log) = writer_on(store, 1, None, SOON).await;
        let init = log.commit(vec![Op::InitProducer { producer_id: None }]).await.unwrap();
        let Some(floe_broker::state::OpOutcome::ProducerReady { id, epoch }) = init.outcomes.first().cloned() else {
            panic!("no producer: {:?}", init.outcomes);
        };
        let stamp = ProducerStamp { id, epoch, sequence: 0 };
        // Beyond `INLINE_MAX_BYTES`: compressed on a blocking thread.
        let batch = || {
            let record = Record { key: None, value: Bytes::from(vec![b'x'; 1024]), timestamp: 1, headers: vec![] };
            let records = vec![record; INLINE_MAX_BYTES / 1024 + 1];
            vec![PartitionRecords { partition: 0, topic_id, producer: Some(stamp), records }]
        };
        let mut original = Box::pin(writer.append("t".into(), batch(), Acks::Committed));
        assert!(futures::poll!(original.as_mut()).is_pending());
        let mut retry = Box::pin(writer.append("t".into(), batch(), Acks::Committed));
        assert!(futures::poll!(retry.as_mut()).is_pending(), "waiting for the original");
        drop(original);
        let written = retry.await.expect("the original's offsets");
        assert_eq!(written.bases, [0]);
        let high_watermark = log.state().partition("t", 0).unwrap().high_watermark;
        assert_eq!(high_watermark, INLINE_MAX_BYTES as u64 / 1024 + 1, "written once");
    }

    /// A request's waiter dropped by a panic in the task that holds it (the
    /// request's own, compressing inline, or an upload's) answers the
    /// retries waiting for it with an internal error; dropped by a writer
    /// that stopped, with `Closed`. (A panic used to answer `Closed` too: a
    /// 503 `shutting_down` from an agent that was not stopping.)
    #[tokio::test]
    async fn a_waiter_unwound_by_a_panic_answers_its_retries_with_an_internal_error() {
        let waiting = |sequence| {
            let inflight = Arc::new(InFlight::default());
            let key: StampKey = ("t".into(), 1, 0, ProducerStamp { id: 1, epoch: 0, sequence }, 1);
            let (retry, answered) = oneshot::channel();
            inflight.lock().insert(key.clone(), vec![retry]);
            let (reply, _) = oneshot::channel();
            let waiter = Waiter {
                reply: Some(reply),
                stamp: Some((key, inflight)),
                _permit: None,
                slots: Vec::new(),
                topic: "t".into(),
                partitions: vec![0],
                queued: Instant::now(),
                acks: Acks::Committed,
            };
            (waiter, answered)
        };
        let (waiter, mut answered) = waiting(0);
        let unwound = tokio::spawn(async move {
            let _held = waiter;
            panic!("a bug while writing");
        });
        assert!(unwound.await.is_err_and(|e| e.is_panic()));
        let reply = answered.try_recv().expect("the retry answered");
        assert!(matches!(reply, Err(WriteError::Internal(_))), "{reply:?}");
        let (waiter, mut answered) = waiting(1);
        drop(waiter);
        let reply = answered.try_recv().expect("the retry answered");
        assert!(matches!(reply, Err(WriteError::Closed)), "{reply:?}");
    }

    /// Without a spool, `acks=local` is refused before anything is buffered.
    #[tokio::test]
    async fn acks_local_needs_a_spool() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let (writer, topic_id) = one_partition_writer(store, 2).await;
        let refused = write(writer.clone(), topic_id, 1, 1, Acks::Local).await;
        assert!(matches!(refused, Err(WriteError::NoSpool)), "{refused:?}");
        assert_eq!(writer.held_bytes(), 0);
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
