//! The read path: offset → the partition's batch index → batch cache
//! → the segment's chunk (`chunks.rs`: one ranged GET for neighbouring
//! batches) on a miss. Fetches at the high watermark may long-poll.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floe_broker::state::StoredBatch;
use floe_broker::{MetadataLog, Record};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use ulid::Ulid;

use crate::budget::{Held, MemoryBudget};
use crate::cache::{Batch, BatchCache};
use crate::chunks::Chunks;

#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub max_records: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Fetched {
    pub records: Vec<(u64, Record)>,
    pub next_offset: u64,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// The records' bytes, taken from the fetch-memory budget: whoever
    /// answers with them holds it until the answer is sent.
    pub held: Held,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("topic {0} does not exist")]
    TopicNotFound(String),
    #[error("topic {topic} has no partition {partition}")]
    PartitionNotFound { topic: String, partition: u32 },
    #[error("offset {offset} is outside the partition's range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange { offset: u64, log_start_offset: u64, high_watermark: u64 },
    #[error(transparent)]
    Store(#[from] Arc<floe_broker::Error>),
}

/// What fetched records hold: their bytes (as `max_bytes` counts them)
/// and each one's place in the answer's list.
pub fn records_bytes<'a>(records: impl IntoIterator<Item = &'a (u64, Record)>) -> usize {
    records.into_iter().map(|(_, r)| r.size() + std::mem::size_of::<(u64, Record)>()).sum()
}

/// What a fetch of at most `max_bytes` and `max_records` takes before it
/// reads, each record holding `per_record` beside its bytes: all such an
/// answer holds (one record past `max_bytes` aside, which is read again
/// once its size is taken).
pub fn hold_for(max_bytes: usize, max_records: usize, per_record: usize) -> usize {
    max_records.saturating_mul(per_record).saturating_add(max_bytes)
}

fn is_not_found(e: &floe_broker::Error) -> bool {
    matches!(e, floe_broker::Error::Store(object_store::Error::NotFound { .. }))
}

impl From<floe_broker::Error> for FetchError {
    fn from(e: floe_broker::Error) -> Self {
        Self::Store(Arc::new(e))
    }
}

/// What the state says about the partition, copied out so no lock is held across a GET.
struct View {
    log_start_offset: u64,
    high_watermark: u64,
    batches: Vec<(u64, StoredBatch)>,
    /// The batches after those, for read-ahead.
    ahead: Vec<StoredBatch>,
}

/// Batches loaded ahead of a catch-up consumer, wherever they are.
const READ_AHEAD: usize = 2;

/// Most batches loaded ahead of one fetch (see [`Reader::ahead`]).
const READ_AHEAD_MAX: usize = 32;

#[derive(Clone)]
pub struct Reader {
    log: Arc<MetadataLog>,
    cache: BatchCache,
    chunks: Chunks,
    /// Owns read-ahead loads.
    tasks: TaskTracker,
    /// Fetched records held until they are answered (`--fetch-memory-bytes`).
    answers: MemoryBudget,
}

impl Reader {
    pub fn new(
        log: Arc<MetadataLog>,
        cache: BatchCache,
        chunks: Chunks,
        tasks: TaskTracker,
        answers: MemoryBudget,
    ) -> Self {
        Self { log, cache, chunks, tasks, answers }
    }

    /// The budget fetched records are held in until they are answered.
    pub fn answers(&self) -> &MemoryBudget {
        &self.answers
    }

    /// Reads from one partition at `req.offset`; at the high watermark,
    /// waits up to `req.timeout` for records to arrive.
    ///
    /// The records are held in the fetch-memory budget ([`Fetched::held`]):
    /// [`hold_for`] of it is taken before they are read, once there are
    /// records to read (a fetch waiting for them holds none), and cut back
    /// to [`records_bytes`] after. A first record larger than that is read
    /// again once its size is taken, holding nothing meanwhile.
    pub async fn fetch(&self, req: &FetchRequest) -> Result<Fetched, FetchError> {
        self.fetch_holding(req, Some(&self.answers)).await
    }

    /// Like [`Self::fetch`], holding nothing and, at the high watermark,
    /// not catching up with the log first: for a caller that took the
    /// records' bytes already and caught up itself (a round of a member's
    /// fetch over several partitions).
    pub async fn fetch_unheld(&self, req: &FetchRequest) -> Result<Fetched, FetchError> {
        self.fetch_holding(req, None).await
    }

    async fn fetch_holding(&self, req: &FetchRequest, budget: Option<&MemoryBudget>) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + req.timeout;
        let mut applied = self.log.subscribe();
        // Unheld, for a caller that caught up.
        let mut caught_up = budget.is_none();
        let mut refreshed_after_missing = false;
        let mut to_hold = hold_for(req.max_bytes, req.max_records, std::mem::size_of::<(u64, Record)>());
        let (mut held, mut retaken) = (None, false);
        loop {
            let view = match self.view(req) {
                Err(FetchError::TopicNotFound(_) | FetchError::PartitionNotFound { .. }) if !caught_up => None,
                Err(e) => return Err(e),
                Ok(v) => Some(v),
            };
            // Never answer as if a committed offset did not exist: an offset at
            // or past what this agent has applied first makes it catch up.
            let behind = view.as_ref().is_none_or(|v| req.offset >= v.high_watermark);
            if behind && !caught_up {
                held = None;
                self.log.catch_up().await?;
                caught_up = true;
                continue;
            }
            let Some(view) = view else { continue };
            if req.offset < view.log_start_offset || req.offset > view.high_watermark {
                return Err(FetchError::OffsetOutOfRange {
                    offset: req.offset,
                    log_start_offset: view.log_start_offset,
                    high_watermark: view.high_watermark,
                });
            }
            if req.offset < view.high_watermark {
                if let (Some(budget), None) = (budget, &held) {
                    held = Some(budget.take(to_hold).await);
                    // Looked at again: batches may have been merged or
                    // collected while the fetch waited for its share.
                    continue;
                }
                match self.read(req, view).await {
                    // The batch was merged or truncated, and its old segment
                    // collected, by entries this agent has not applied yet.
                    Err(FetchError::Store(e)) if is_not_found(&e) && !refreshed_after_missing => {
                        held = None;
                        self.log.catch_up().await?;
                        refreshed_after_missing = true;
                        continue;
                    }
                    Err(e) => return Err(e),
                    Ok(mut fetched) => {
                        let bytes = records_bytes(&fetched.records);
                        let taken = held.as_ref().map_or(0, Held::bytes);
                        let more = budget.is_some_and(|b| bytes > taken && taken < b.total());
                        if more && !retaken {
                            // Let go of all of it before taking more: no fetch waits holding any.
                            (held, to_hold, retaken) = (None, bytes, true);
                            continue;
                        }
                        fetched.held = held.take().unwrap_or_default();
                        fetched.held.shrink_to(bytes);
                        return Ok(fetched);
                    }
                }
            }
            held = None;
            // At the high watermark: wait for the next applied entry, or time out empty.
            let woke = tokio::time::timeout_at(deadline, applied.changed()).await;
            if !matches!(woke, Ok(Ok(()))) {
                return Ok(Fetched {
                    records: Vec::new(),
                    next_offset: req.offset,
                    high_watermark: view.high_watermark,
                    log_start_offset: view.log_start_offset,
                    held: Held::default(),
                });
            }
        }
    }

    fn view(&self, req: &FetchRequest) -> Result<View, FetchError> {
        let state = self.log.state();
        let topic = state.topic(&req.topic).ok_or_else(|| FetchError::TopicNotFound(req.topic.clone()))?;
        let p = topic
            .partitions
            .get(req.partition as usize)
            .ok_or_else(|| FetchError::PartitionNotFound { topic: req.topic.clone(), partition: req.partition })?;
        let mut wanted = 0u64;
        let mut from = p.batches_from(req.offset).peekable();
        let mut batches = Vec::new();
        while let Some((base, b)) = from.next_if(|_| wanted < req.max_records as u64) {
            wanted += (base + u64::from(b.records)).saturating_sub(req.offset.max(base));
            batches.push((base, b.clone()));
        }
        let ahead = self.ahead(from.map(|(_, b)| b), batches.last().map(|(_, b)| b));
        Ok(View { log_start_offset: p.log_start_offset, high_watermark: p.high_watermark, batches, ahead })
    }

    /// The batches to load ahead of a consumer whose fetch ends with `last`:
    /// the next [`READ_AHEAD`], and past them those of `last`'s segment that
    /// end in the chunk `last` ends in (at most [`READ_AHEAD_MAX`] in all).
    /// A merged segment holds one partition, so its consumer reads it a
    /// chunk at a time: the rest of the chunk goes into the batch cache
    /// while the fetch holds the chunk's bytes, and the chunk cache, which
    /// holds a few chunks, need not keep it for the consumer's next
    /// fetches. Without this, more partitions read at once than it holds
    /// chunks evicted each chunk before its last batch was read, and each
    /// was fetched again (docs/benchmarks.md, "Cold reads of a compacted
    /// bucket").
    fn ahead<'a>(&self, next: impl Iterator<Item = &'a StoredBatch>, last: Option<&StoredBatch>) -> Vec<StoredBatch> {
        let Some(last) = last else { return Vec::new() };
        let chunk = self.chunks.chunk_of_end(&extent(last));
        next.enumerate()
            .take_while(|(i, b)| {
                let in_chunk = b.segment == last.segment && self.chunks.chunk_of_end(&extent(b)) == chunk;
                *i < READ_AHEAD || in_chunk
            })
            .take(READ_AHEAD_MAX)
            .map(|(_, b)| b.clone())
            .collect()
    }

    async fn read(&self, req: &FetchRequest, view: View) -> Result<Fetched, FetchError> {
        let wanted = view.batches.iter().map(|(_, b)| b);
        let mut spans = self.spans(wanted.chain(&view.ahead));
        let ahead_spans = spans.split_off(view.batches.len());
        // A consumer that is behind will want the next batches; a tail
        // consumer has none ahead.
        self.read_ahead(view.ahead.into_iter().zip(ahead_spans));
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut next = req.offset;
        // By value: a span's bytes (a slice of a chunk, which keeps the
        // whole chunk) are let go once its last batch is read, not held
        // until the fetch ends.
        'batches: for ((base, stored), span) in view.batches.iter().zip(spans) {
            let batch = self.batch(stored, &span).await?;
            let skip = next.saturating_sub(*base) as usize;
            for record in batch.iter().skip(skip) {
                let size = record.size();
                // Always return at least one record, however large, so a consumer can progress.
                if records.len() >= req.max_records || (!records.is_empty() && bytes + size > req.max_bytes) {
                    break 'batches;
                }
                bytes += size;
                records.push((next, record.clone()));
                next += 1;
            }
        }
        Ok(Fetched {
            records,
            next_offset: next,
            high_watermark: view.high_watermark,
            log_start_offset: view.log_start_offset,
            held: Held::default(),
        })
    }

    /// Which [`Span`] each of `batches` is read from: consecutive batches of
    /// one segment that lie within one chunk share one.
    fn spans<'a>(&self, batches: impl IntoIterator<Item = &'a StoredBatch>) -> Vec<Arc<Span>> {
        // (segment, bytes, whether later batches may join: a batch across
        // chunks is read alone, `Chunks::read` joining its chunks).
        let mut groups: Vec<(Ulid, Range<u64>, bool)> = Vec::new();
        let mut of_batch = Vec::new();
        for b in batches {
            let range = extent(b);
            let chunk = self.chunks.chunk_of(range.start);
            let within = self.chunks.chunk_of_end(&range) == chunk;
            match groups.last_mut() {
                Some((segment, span, true))
                    if within && *segment == b.segment && self.chunks.chunk_of(span.start) == chunk =>
                {
                    span.start = span.start.min(range.start);
                    span.end = span.end.max(range.end);
                }
                _ => groups.push((b.segment, range, within)),
            }
            of_batch.push(groups.len() - 1);
        }
        let spans: Vec<Arc<Span>> = groups
            .into_iter()
            .map(|(segment, range, _)| Arc::new(Span { segment, range, read: tokio::sync::OnceCell::new() }))
            .collect();
        of_batch.into_iter().map(|g| spans[g].clone()).collect()
    }

    /// The batch, from the cache or else from its span's bytes.
    async fn batch(&self, stored: &StoredBatch, span: &Span) -> Result<Batch, FetchError> {
        let fetch = span.bytes_of(&self.chunks, stored);
        Ok(self.cache.get_or_load((stored.segment, stored.pos), fetch).await?)
    }

    /// Loads batches a catch-up consumer will ask for next, in the
    /// background: the first [`READ_AHEAD`] decoded, as its next fetch
    /// wants them; the rest of the chunk (see [`Self::ahead`]) into the
    /// batch cache as compressed bytes, decoded by the read that wants
    /// them. A chunk's worth of compressible records would take several
    /// times its size decoded, and the batch cache would then hold a few
    /// consumers' read-ahead only.
    fn read_ahead(&self, batches: impl IntoIterator<Item = (StoredBatch, Arc<Span>)>) {
        let mut rest = Vec::new();
        for (i, (stored, span)) in batches.into_iter().enumerate() {
            if i >= READ_AHEAD {
                rest.push((stored, span));
                continue;
            }
            let reader = self.clone();
            self.tasks.spawn(async move {
                let _ = reader.batch(&stored, &span).await;
            });
        }
        if rest.is_empty() {
            return;
        }
        let reader = self.clone();
        self.tasks.spawn(async move {
            for (stored, span) in rest {
                let key = (stored.segment, stored.pos);
                if reader.cache.contains(&key) {
                    continue;
                }
                let Ok(bytes) = span.bytes_of(&reader.chunks, &stored).await else { return };
                // Copied in there: a slice would keep the whole chunk while
                // the cache counts only the batch.
                reader.cache.insert_read_ahead(key, bytes).await;
            }
        });
    }
}

/// Where a batch lies in its segment.
fn extent(b: &StoredBatch) -> Range<u64> {
    b.pos..b.pos + u64::from(b.len)
}

/// The bytes of a segment that several batches of one fetch lie in (within
/// one chunk), read once, through the chunk cache, when the first of them
/// is not in the batch cache, and held by the fetch and its read-ahead
/// until each has its batch: the chunk cache may evict the chunk meanwhile
/// (more consumers than it holds chunks) without costing another GET.
struct Span {
    segment: Ulid,
    range: Range<u64>,
    /// The read's outcome, kept for the span's other batches: a failed read
    /// (a segment merged and collected meanwhile) is not made again by each
    /// of them in turn; the fetch resolves its offset again instead.
    read: tokio::sync::OnceCell<Result<Bytes, Arc<floe_broker::Error>>>,
}

impl Span {
    /// `stored`'s bytes, reading the span's first if no batch of it has.
    ///
    /// # Cancel safety
    /// Cancel safe: a read dropped by every caller is made again by the next.
    async fn bytes_of(&self, chunks: &Chunks, stored: &StoredBatch) -> Result<Bytes, Arc<floe_broker::Error>> {
        let read = self.read.get_or_init(|| chunks.read(self.segment, self.range.clone())).await;
        let bytes = read.as_ref().map_err(Arc::clone)?;
        let from = usize::try_from(stored.pos.saturating_sub(self.range.start)).unwrap_or(usize::MAX);
        let to = from.saturating_add(stored.len as usize);
        if stored.pos < self.range.start || to > bytes.len() {
            return Err(Arc::new(floe_broker::Error::corrupt("read span", "a batch outside its span")));
        }
        Ok(bytes.slice(from..to))
    }
}
