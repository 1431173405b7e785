//! Merging: runs of small batches of one partition (as left by many small
//! multi-partition flushes) are rewritten into one per-partition segment and
//! committed as a replacement, applied only if the batches are still current.
//!
//! The runs of a cycle are read in groups: one flush wrote every partition's
//! batch side by side, so the runs of different partitions over the same
//! flushes read each flush segment with one ranged GET (for the batches at
//! most 1 MiB apart), not one per batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use floe_broker::entry::{BatchId, Op, PlacedBatch};
use floe_broker::panics::caught;
use floe_broker::segment::{SegmentBuilder, decode_batch};
use floe_broker::state::{State, StoredBatch};
use floe_broker::{Record, keys};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use ulid::Ulid;

use crate::settings::CompactorSettings;

/// Segments read at once for one group of runs.
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
/// The cycle's budget goes to the oldest runs first (by the time in their
/// first segment's name, its agent's clock at the flush), whatever their
/// partition: a flush segment can be collected only once every partition's
/// batch in it is merged, and the runs of different partitions over the
/// same flushes are read together ([`groups`]). Newer writes never starve
/// older runs, and each cycle's budget is whole again for the oldest run,
/// which is at most `merge_target_bytes`. Runs in `deferred` (which failed
/// lately, [`Failures`]) come after all others, so that runs which cannot
/// be read do not take the budget of every cycle. Runs that start in the
/// same flush go in topic and partition order.
pub fn plan(state: &State, s: &CompactorSettings, deferred: &HashSet<RunKey>) -> Vec<MergeRun> {
    let mut runs = Vec::new();
    let mut close = |run: &mut Vec<(u64, StoredBatch)>, topic: &str, partition: u32| {
        let bytes: u64 = run.iter().map(|(_, b)| u64::from(b.len)).sum();
        let worth = run.len() >= 2 && (bytes >= s.merge_small_batch_bytes || run.len() >= s.merge_min_batches);
        if worth {
            runs.push(MergeRun { topic: topic.to_owned(), partition, batches: std::mem::take(run) });
        }
        run.clear();
    };
    for (name, topic) in &state.topics {
        for (i, p) in topic.partitions.iter().enumerate() {
            let i = i as u32;
            let mut run: Vec<(u64, StoredBatch)> = Vec::new();
            let mut run_bytes = 0u64;
            for (base, b) in &p.batches {
                let candidate = in_flush_segment(state, b) && u64::from(b.len) < s.merge_small_batch_bytes;
                if !candidate || run_bytes + u64::from(b.len) > s.merge_target_bytes {
                    close(&mut run, name, i);
                    run_bytes = 0;
                }
                if candidate {
                    run_bytes += u64::from(b.len);
                    run.push((*base, b.clone()));
                }
            }
            close(&mut run, name, i);
        }
    }
    // Stable: runs that start in the same flush keep the partitions' order.
    runs.sort_by_cached_key(|run| (deferred.contains(&run.key()), run.first_segment()));
    let mut budget = s.merge_max_bytes_per_cycle;
    runs.retain(|run| {
        let fits = run.bytes() <= budget;
        budget -= if fits { run.bytes() } else { 0 };
        fits
    });
    runs
}

/// Runs that failed, each deferred for a number of cycles that doubles with
/// each failure in a row (1, 2, 4, … at most [`MAX_DEFERRED_CYCLES`]): a
/// run that cannot be read does not take every cycle's budget, and one that
/// failed on a passing error (a store timeout) is tried again soon, also
/// under a backlog that fills every cycle's budget with newer runs.
#[derive(Debug, Default)]
pub struct Failures {
    /// Per run: failures in a row, and the last cycle it is deferred in.
    runs: HashMap<RunKey, (u32, u64)>,
}

/// The longest a failed run is deferred, in cycles.
pub const MAX_DEFERRED_CYCLES: u64 = 16;

impl Failures {
    /// The runs deferred in `cycle`.
    pub fn deferred(&self, cycle: u64) -> HashSet<RunKey> {
        self.runs.iter().filter(|(_, (_, until))| *until >= cycle).map(|(key, _)| key.clone()).collect()
    }

    pub fn failed(&mut self, run: &MergeRun, cycle: u64) {
        let (failures, until) = self.runs.entry(run.key()).or_default();
        *failures = failures.saturating_add(1);
        *until = cycle + (1u64 << (*failures - 1).min(63)).min(MAX_DEFERRED_CYCLES);
    }

    pub fn merged(&mut self, run: &MergeRun) {
        self.runs.remove(&run.key());
    }

    /// Forgets the runs that are gone (merged by another compactor, or
    /// their batches truncated).
    pub fn forget_gone(&mut self, state: &State) {
        self.runs.retain(|key, _| still_planned(state, key));
    }
}

/// A run by its topic, partition and first batch's base offset: the same
/// from one cycle to the next while the run is not merged.
pub type RunKey = (String, u32, u64);

/// Whether the run `key` names may still be planned: its first batch is
/// still in its partition and in a flush segment.
pub fn still_planned(state: &State, (topic, partition, base): &RunKey) -> bool {
    state.partition(topic, *partition).and_then(|p| p.batches.get(base)).is_some_and(|b| in_flush_segment(state, b))
}

/// Whether `b` still sits in a flush segment (merged segments are never
/// merged again).
fn in_flush_segment(state: &State, b: &StoredBatch) -> bool {
    state.segments.get(&b.segment).is_some_and(|r| !r.merged)
}

impl MergeRun {
    pub fn key(&self) -> RunKey {
        (self.topic.clone(), self.partition, self.batches.first().map_or(0, |(base, _)| *base))
    }

    /// Compressed bytes of its input batches.
    pub fn bytes(&self) -> u64 {
        self.batches.iter().map(|(_, b)| u64::from(b.len)).sum()
    }

    fn first_segment(&self) -> Option<Ulid> {
        self.batches.first().map(|(_, b)| b.segment)
    }
}

/// The runs in groups to read together, each at most `read_bytes` of input
/// (and at least one run). Runs that start in the same flush segment, the
/// same flushes' batches of other partitions, are put side by side first.
pub fn groups(mut runs: Vec<MergeRun>, read_bytes: u64) -> Vec<Vec<MergeRun>> {
    // Stable: runs that start together keep their order ([`plan`]'s is this one).
    runs.sort_by_key(MergeRun::first_segment);
    let mut groups: Vec<Vec<MergeRun>> = Vec::new();
    let mut bytes = 0;
    for run in runs {
        let n = run.bytes();
        match groups.last_mut() {
            Some(group) if bytes + n <= read_bytes => group.push(run),
            _ => {
                groups.push(vec![run]);
                bytes = 0;
            }
        }
        bytes += n;
    }
    groups
}

/// Ranges of one segment at most this far apart are read with one GET. As
/// `ObjectStore::get_ranges` joins them, but that slices its reads without
/// checking their length, and panics on an object shorter than a range: a
/// truncated segment must fail the runs that read past its end, not look
/// like a bug.
const JOIN_GAP: u64 = 1 << 20;

/// Why a batch could not be read.
#[derive(Clone, Debug)]
struct Unread {
    why: String,
    /// Reading it panicked (a bug).
    panicked: bool,
}

/// The input batches of a group of runs, each segment's read with one GET
/// where they lie at most [`JOIN_GAP`] apart.
pub struct Inputs {
    /// Each batch's bytes by segment and position, or why it could not be read.
    batches: HashMap<(Ulid, u64), Result<Bytes, Unread>>,
}

impl Inputs {
    /// Reads every batch of `runs`. Never fails as a whole: a batch that
    /// cannot be read fails only the runs that need it ([`execute`]).
    pub async fn read(store: &Arc<dyn ObjectStore>, runs: &[MergeRun]) -> Self {
        let mut wanted: BTreeMap<Ulid, Vec<Range<u64>>> = BTreeMap::new();
        for (_, b) in runs.iter().flat_map(|r| &r.batches) {
            wanted.entry(b.segment).or_default().push(b.pos..b.pos + u64::from(b.len));
        }
        let read: Vec<_> = futures::stream::iter(wanted)
            .map(|(segment, ranges)| {
                let store = store.clone();
                async move {
                    let read = caught(read_segment(&store, segment, &ranges)).await;
                    (segment, ranges, read)
                }
            })
            .buffered(READ_CONCURRENCY)
            .collect()
            .await;
        let mut batches = HashMap::new();
        for (segment, ranges, read) in read {
            match read {
                Ok(read) => batches.extend(read.into_iter().map(|(pos, got)| ((segment, pos), got))),
                Err(panic) => {
                    let unread =
                        Unread { why: format!("reading segment {segment} panicked (a bug): {panic}"), panicked: true };
                    batches.extend(ranges.iter().map(|r| ((segment, r.start), Err(unread.clone()))));
                }
            }
        }
        Self { batches }
    }

    /// What a panic said while reading a batch of `run`, if one did.
    pub fn panic_in(&self, run: &MergeRun) -> Option<&str> {
        run.batches.iter().find_map(|(_, b)| match self.batches.get(&(b.segment, b.pos)) {
            Some(Err(Unread { why, panicked: true })) => Some(why.as_str()),
            _ => None,
        })
    }

    fn batch(&self, b: &StoredBatch) -> Result<Bytes, floe_broker::Error> {
        let unread = |why: String| {
            floe_broker::Error::Store(object_store::Error::Generic { store: "merge input", source: why.into() })
        };
        match self.batches.get(&(b.segment, b.pos)) {
            Some(Ok(bytes)) => Ok(bytes.clone()),
            Some(Err(e)) => Err(unread(e.why.clone())),
            None => Err(unread(format!("batch at {} of segment {} not read", b.pos, b.segment))),
        }
    }
}

/// Reads `ranges` of `segment`, those at most [`JOIN_GAP`] apart with one
/// GET: each range's bytes by its start, or why it could not be read.
async fn read_segment(
    store: &Arc<dyn ObjectStore>,
    segment: Ulid,
    ranges: &[Range<u64>],
) -> Vec<(u64, Result<Bytes, Unread>)> {
    let mut sorted = ranges.to_vec();
    sorted.sort_by_key(|r| r.start);
    let mut spans: Vec<(Range<u64>, Vec<Range<u64>>)> = Vec::new();
    for r in sorted {
        match spans.last_mut() {
            Some((span, within)) if r.start <= span.end.saturating_add(JOIN_GAP) => {
                span.end = span.end.max(r.end);
                within.push(r);
            }
            _ => spans.push((r.clone(), vec![r])),
        }
    }
    let key = keys::segment(segment);
    let mut out = Vec::with_capacity(ranges.len());
    for (span, within) in spans {
        let got = store.get_range(&key, span.clone()).await;
        for r in within {
            let from = usize::try_from(r.start - span.start).unwrap_or(usize::MAX);
            let to = usize::try_from(r.end - span.start).unwrap_or(usize::MAX);
            let batch = match &got {
                Ok(bytes) if to <= bytes.len() => Ok(bytes.slice(from..to)),
                Ok(bytes) => Err(format!(
                    "segment {segment} ends at {} before its batch at {}..{}",
                    span.start + bytes.len() as u64,
                    r.start,
                    r.end
                )),
                Err(e) => Err(format!("reading segment {segment}: {e}")),
            };
            out.push((r.start, batch.map_err(|why| Unread { why, panicked: false })));
        }
    }
    out
}

/// Decodes the run's batches from `inputs`, writes them as one per-partition
/// segment, and returns the replacement op that commits it.
/// The new segment is named by `node`'s clock just before its upload: the name's time
/// starts its commit window.
pub async fn execute(
    store: &Arc<dyn ObjectStore>,
    node: &floe_broker::Components,
    run: &MergeRun,
    inputs: &Inputs,
    batch_bytes: usize,
) -> Result<Op, floe_broker::Error> {
    let records = run.batches.iter().map(|(_, b)| decode_batch(&inputs.batch(b)?)).collect::<Result<Vec<_>, _>>()?;
    let (topic, partition) = (run.topic.clone(), run.partition);
    let first = run.batches.first().map_or(0, |(base, _)| *base);
    let (bytes, placed) = cpu_work(move || encode(&topic, partition, first, records, batch_bytes)).await??;
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

    /// A run of `partition` over `segments`, each batch `len` bytes.
    fn run(partition: u32, segments: &[u64], len: u32) -> MergeRun {
        let batches = segments
            .iter()
            .map(|s| {
                let segment = Ulid::from_parts(*s, 0);
                (0, StoredBatch { segment, pos: u64::from(partition * len), len, records: 1, max_timestamp: 0 })
            })
            .collect();
        MergeRun { topic: "t".into(), partition, batches }
    }

    fn partitions(groups: &[Vec<MergeRun>]) -> Vec<Vec<u32>> {
        groups.iter().map(|g| g.iter().map(|r| r.partition).collect()).collect()
    }

    /// The plan lists a partition's runs together; the groups put the runs
    /// over the same flushes together instead, within their byte limit, and
    /// a run larger than the limit still gets a group of its own.
    #[test]
    fn groups_put_runs_over_the_same_flushes_together_within_their_bytes() {
        let runs = vec![run(0, &[1, 2], 10), run(0, &[3, 4], 10), run(1, &[1, 2], 10), run(1, &[3, 4], 10)];
        assert_eq!(partitions(&groups(runs.clone(), 40)), vec![vec![0, 1], vec![0, 1]]);
        assert_eq!(partitions(&groups(runs.clone(), 80)), vec![vec![0, 1, 0, 1]]);
        assert_eq!(partitions(&groups(runs, 10)), vec![vec![0], vec![1], vec![0], vec![1]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_in_cpu_work_is_raised_in_the_caller_inline() {
        let panicked = caught(cpu_work(|| -> u8 { panic!("a bug in encoding") })).await;
        assert_eq!(panicked.err().as_deref(), Some("a bug in encoding"));
    }
}
