//! The read path: offset → the partition's batch index → batch cache
//! → the segment's chunk (`chunks.rs`: one ranged GET for neighbouring
//! batches) on a miss. Fetches at the high watermark may long-poll.

use std::sync::Arc;
use std::time::Duration;

use floe_broker::state::StoredBatch;
use floe_broker::{MetadataLog, Record};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

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

/// Batches loaded ahead of a catch-up consumer.
const READ_AHEAD: usize = 2;

#[derive(Clone)]
pub struct Reader {
    log: Arc<MetadataLog>,
    cache: BatchCache,
    chunks: Chunks,
    /// Owns read-ahead loads.
    tasks: TaskTracker,
}

impl Reader {
    pub fn new(log: Arc<MetadataLog>, cache: BatchCache, chunks: Chunks, tasks: TaskTracker) -> Self {
        Self { log, cache, chunks, tasks }
    }

    pub async fn fetch(&self, req: &FetchRequest) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + req.timeout;
        let mut applied = self.log.subscribe();
        let mut caught_up = false;
        let mut refreshed_after_missing = false;
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
                match self.read(req, view).await {
                    // The batch was merged or truncated, and its old segment
                    // collected, by entries this agent has not applied yet.
                    Err(FetchError::Store(e)) if is_not_found(&e) && !refreshed_after_missing => {
                        self.log.catch_up().await?;
                        refreshed_after_missing = true;
                        continue;
                    }
                    done => return done,
                }
            }
            // At the high watermark: wait for the next applied entry, or time out empty.
            let woke = tokio::time::timeout_at(deadline, applied.changed()).await;
            if !matches!(woke, Ok(Ok(()))) {
                return Ok(Fetched {
                    records: Vec::new(),
                    next_offset: req.offset,
                    high_watermark: view.high_watermark,
                    log_start_offset: view.log_start_offset,
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
        let ahead = from.take(READ_AHEAD).map(|(_, b)| b.clone()).collect();
        Ok(View { log_start_offset: p.log_start_offset, high_watermark: p.high_watermark, batches, ahead })
    }

    async fn read(&self, req: &FetchRequest, view: View) -> Result<Fetched, FetchError> {
        // A consumer that is behind will want the next batches; a tail
        // consumer has none ahead.
        self.read_ahead(view.ahead);
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut next = req.offset;
        'batches: for (base, stored) in &view.batches {
            let batch = self.batch(stored).await?;
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
        })
    }

    async fn batch(&self, stored: &StoredBatch) -> Result<Batch, FetchError> {
        let (segment, range) = (stored.segment, stored.pos..stored.pos + u64::from(stored.len));
        let fetch = self.chunks.read(segment, range);
        Ok(self.cache.get_or_load((segment, stored.pos), fetch).await?)
    }

    /// Loads batches a catch-up consumer will ask for next, in the background.
    fn read_ahead(&self, batches: Vec<StoredBatch>) {
        for stored in batches {
            let reader = self.clone();
            self.tasks.spawn(async move {
                let _ = reader.batch(&stored).await;
            });
        }
    }
}
