//! Merging: runs of small batches of one partition (as left by many small
//! multi-partition flushes) are rewritten into one per-partition segment and
//! committed as a replacement, applied only if the batches are still current.

use std::sync::Arc;

use floe_broker::entry::{BatchId, Op, PlacedBatch};
use floe_broker::segment::{SegmentBuilder, decode_batch};
use floe_broker::state::{State, StoredBatch};
use floe_broker::{Record, keys};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::settings::CompactorSettings;

/// Ranged GETs in flight while reading one run.
const READ_CONCURRENCY: usize = 8;

#[derive(Clone, Debug)]
pub struct MergeRun {
    pub topic: String,
    pub partition: u32,
    /// Contiguous batches, in offset order, with their base offsets.
    pub batches: Vec<(u64, StoredBatch)>,
}

/// The runs worth merging now. A batch is a candidate when it is small and
/// still sits in a flush segment (merged segments are never merged again, so
/// every byte is rewritten at most once). A run is merged when it adds up to
/// a batch that is no longer small, or holds `merge_min_batches` batches.
///
/// The cycle's budget goes round the partitions in topic and partition
/// order, starting after `after` (the last partition the previous cycle
/// served), so that writes which keep the first partitions worth merging
/// cannot starve the last ones.
pub fn plan(state: &State, s: &CompactorSettings, after: Option<&PartitionId>) -> Vec<MergeRun> {
    let mut runs = Vec::new();
    let mut budget = s.merge_max_bytes_per_cycle;
    let mut close = |run: &mut Vec<(u64, StoredBatch)>, topic: &str, partition: u32| {
        let bytes: u64 = run.iter().map(|(_, b)| u64::from(b.len)).sum();
        let worth = run.len() >= 2 && (bytes >= s.merge_small_batch_bytes || run.len() >= s.merge_min_batches);
        if worth && bytes <= budget {
            budget -= bytes;
            runs.push(MergeRun { topic: topic.to_owned(), partition, batches: std::mem::take(run) });
        }
        run.clear();
    };
    let partitions: Vec<_> = state
        .topics
        .iter()
        .flat_map(|(name, topic)| topic.partitions.iter().enumerate().map(move |(i, p)| (name, i as u32, p)))
        .collect();
    let first = after.map_or(0, |(topic, partition)| {
        partitions.partition_point(|(name, i, _)| (name.as_str(), *i) <= (topic.as_str(), *partition))
    });
    for (name, i, p) in partitions[first..].iter().chain(&partitions[..first]) {
        let mut run: Vec<(u64, StoredBatch)> = Vec::new();
        let mut run_bytes = 0u64;
        for (base, b) in &p.batches {
            let from_flush = state.segments.get(&b.segment).is_some_and(|r| !r.merged);
            let candidate = from_flush && u64::from(b.len) < s.merge_small_batch_bytes;
            if !candidate || run_bytes + u64::from(b.len) > s.merge_target_bytes {
                close(&mut run, name, *i);
                run_bytes = 0;
            }
            if candidate {
                run_bytes += u64::from(b.len);
                run.push((*base, b.clone()));
            }
        }
        close(&mut run, name, *i);
    }
    runs
}

/// A topic's name and a partition's index in it.
pub type PartitionId = (String, u32);

impl MergeRun {
    pub fn partition_id(&self) -> PartitionId {
        (self.topic.clone(), self.partition)
    }
}

/// Reads the run's batches, writes them as one per-partition segment, and
/// returns the replacement op that commits it.
/// The new segment is named by `node`'s clock just before its upload: the name's time
/// starts its commit window.
pub async fn execute(
    store: &Arc<dyn ObjectStore>,
    node: &floe_broker::Components,
    run: &MergeRun,
    batch_bytes: usize,
) -> Result<Op, floe_broker::Error> {
    let fetched: Vec<Vec<Record>> = futures::stream::iter(run.batches.iter().cloned())
        .map(|(_, b)| {
            let store = store.clone();
            async move {
                let bytes = store.get_range(&keys::segment(b.segment), b.pos..b.pos + u64::from(b.len)).await?;
                decode_batch(&bytes)
            }
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    let (topic, partition) = (run.topic.clone(), run.partition);
    let first = run.batches.first().map_or(0, |(base, _)| *base);
    let (bytes, placed) = cpu_work(move || encode(&topic, partition, first, fetched, batch_bytes)).await??;
    let segment = node.ulid();
    store.put(&keys::segment(segment), bytes).await?;
    let replaced =
        run.batches.iter().map(|(base, b)| BatchId { base_offset: *base, segment: b.segment, pos: b.pos }).collect();
    let op = Op::Replace { topic: run.topic.clone(), partition: run.partition, replaced, segment, batches: placed };
    Ok(op)
}

/// Runs `work` (CPU work: compression) off the async threads, except on a
/// current-thread runtime (the simulation), which has none to keep free and
/// must not let a thread pool decide the order of events. A panic in it is
/// raised again in the caller, as inline, so that the caller's count of a
/// run's panics sees it.
async fn cpu_work<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, floe_broker::Error> {
    if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
        return Ok(work());
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => Ok(done),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(floe_broker::Error::encode("merged segment", e)),
    }
}

fn encode(
    topic: &str,
    partition: u32,
    first_offset: u64,
    batches: Vec<Vec<Record>>,
    batch_bytes: usize,
) -> Result<(PutPayload, Vec<PlacedBatch>), floe_broker::Error> {
    let records: Vec<Record> = batches.into_iter().flatten().collect();
    let mut builder = SegmentBuilder::new();
    let mut placed = Vec::new();
    let mut base = first_offset;
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut size = 0;
        while end < records.len() && (end == start || size + records[end].size() <= batch_bytes) {
            size += records[end].size();
            end += 1;
        }
        let meta = builder.add_batch(topic, partition, &records[start..end])?.clone();
        placed.push(PlacedBatch { base_offset: base, meta });
        base += (end - start) as u64;
        start = end;
    }
    let (chunks, _) = builder.finish_chunks()?;
    Ok((PutPayload::from_iter(chunks), placed))
}

#[cfg(test)]
mod tests {
    use floe_broker::panics::caught;

    use super::*;

    /// A panic in the CPU work reaches the caller as its own, on either
    /// kind of runtime, so a merge run's panic in compressing is counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_cpu_work_is_raised_in_the_caller_on_a_thread_pool() {
        assert_eq!(caught(cpu_work(|| 7)).await.map(Result::ok), Ok(Some(7)));
        let panicked = caught(cpu_work(|| -> u8 { panic!("a bug in encoding") })).await;
        assert_eq!(panicked.err().as_deref(), Some("a bug in encoding"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_in_cpu_work_is_raised_in_the_caller_inline() {
        let panicked = caught(cpu_work(|| -> u8 { panic!("a bug in encoding") })).await;
        assert_eq!(panicked.err().as_deref(), Some("a bug in encoding"));
    }
}
