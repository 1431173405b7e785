//! The compactor against a real metadata log: bounded buckets after many
//! small flushes, retention that empties the bucket, a stale agent refused
//! after snapshot + GC, and two compactors at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floe_broker::entry::{LogObject, Op, TopicConfig};
use floe_broker::fault::{Fault, FaultyStore, OpKind};
use floe_broker::metered::MeteredStore;
use floe_broker::segment::{SegmentBuilder, decode_batch};
use floe_broker::state::OpOutcome;
use floe_broker::{LogSettings, MetadataLog, Record, keys};
use floe_compactor::{Compactor, CompactorSettings};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use ulid::Ulid;

/// Retention of topics whose records must all stay.
const UNLIMITED: TopicConfig = TopicConfig { retention_ms: -1, retention_bytes: -1 };

/// Commit window of the test clusters: short, so GC can run within a test.
const WINDOW_MS: u64 = 100;

async fn open(store: &Arc<dyn ObjectStore>) -> Arc<MetadataLog> {
    let settings = LogSettings { new_cluster_commit_window_ms: WINDOW_MS, ..LogSettings::default() };
    Arc::new(floe_broker::open(store.clone(), settings).await.unwrap().1)
}

fn fast_settings() -> CompactorSettings {
    CompactorSettings {
        gc_grace_ms: 0,
        snapshot_every_entries: 500,
        merge_min_batches: 8,
        ..CompactorSettings::default()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn record(n: u64, timestamp: i64) -> Record {
    Record { key: None, value: Bytes::from(format!("value-{n}")), timestamp, headers: vec![] }
}

/// Uploads one small multi-partition segment; returns its id and op, uncommitted.
async fn upload(log: &MetadataLog, topic: &str, parts: &[(u32, Vec<Record>)]) -> (Ulid, Op) {
    upload_as(log, Ulid::new(), topic, parts).await
}

/// [`upload`] named `segment`.
async fn upload_as(log: &MetadataLog, segment: Ulid, topic: &str, parts: &[(u32, Vec<Record>)]) -> (Ulid, Op) {
    let mut b = SegmentBuilder::new();
    for (p, records) in parts {
        b.add_batch(topic, *p, records).unwrap();
    }
    let (bytes, batches) = b.finish().unwrap();
    log.store().put(&keys::segment(segment), bytes.into()).await.unwrap();
    (segment, Op::Append { segment, batches, flush: None })
}

/// Names for flushes, in the order they are made: the machine's time, a
/// millisecond past the last name when that is later (segments named in
/// one millisecond would sort by their random part).
struct FlushNames(u64);

impl FlushNames {
    fn next(&mut self) -> Ulid {
        self.0 = (now_ms() as u64).max(self.0 + 1);
        Ulid::from_parts(self.0, u128::from(self.0))
    }
}

/// A log on an in-memory store that counts its requests, with topic `t` of
/// `partitions`, kept forever.
async fn log_with_topic_t(partitions: u32) -> (Arc<MeteredStore>, Arc<MetadataLog>) {
    let metered = Arc::new(MeteredStore::new(Arc::new(InMemory::new())));
    let store: Arc<dyn ObjectStore> = metered.clone();
    let log = open(&store).await;
    create_topic(&log, "t", partitions, UNLIMITED).await;
    (metered, log)
}

async fn create_topic(log: &MetadataLog, name: &str, partitions: u32, config: TopicConfig) {
    log.commit(vec![Op::CreateTopic { name: name.into(), partitions, config }]).await.unwrap();
}

async fn segment_objects(store: &dyn ObjectStore) -> Vec<(Ulid, u64)> {
    store
        .list(Some(&keys::segments_prefix()))
        .map_ok(|m| (keys::parse_segment_id(&m.location).unwrap(), m.size))
        .try_collect()
        .await
        .unwrap()
}

/// Every record of the partition, read through the state as a fetch would.
async fn read_partition(log: &MetadataLog, topic: &str, partition: u32) -> Vec<(u64, Bytes)> {
    let p = log.state().partition(topic, partition).unwrap().clone();
    let mut out = Vec::new();
    for (base, b) in &p.batches {
        let bytes = log.store().get_range(&keys::segment(b.segment), b.pos..b.pos + u64::from(b.len)).await.unwrap();
        for (i, r) in decode_batch(&bytes).unwrap().into_iter().enumerate() {
            out.push((base + i as u64, r.value));
        }
    }
    out
}

/// Cycles until a cycle changes nothing that matters, waiting out the commit window between cycles.
async fn settle(compactor: &mut Compactor) {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(WINDOW_MS + 20)).await;
        let r = compactor.run_once().await.unwrap();
        let busy = r.merged_runs > 0
            || r.truncated > 0
            || r.gc.deleted > 0
            || r.gc.waiting > 0
            || r.gc.blocked_on_log_clock > 0;
        if !busy {
            return;
        }
    }
    panic!("compaction did not settle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_small_flushes_end_bounded_and_readable() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = open(&store).await;
    create_topic(&log, "t", 3, UNLIMITED).await;
    let mut compactor = Compactor::new(log.clone(), fast_settings());
    let flushes = 5_000u64;
    for f in 0..flushes {
        let parts: Vec<(u32, Vec<Record>)> =
            (0..3).map(|p| (p, vec![record(f * 3 + u64::from(p), now_ms())])).collect();
        let (_, op) = upload(&log, "t", &parts).await;
        log.commit(vec![op]).await.unwrap();
        if f % 1_000 == 999 {
            compactor.run_once().await.unwrap();
        }
    }
    let before = segment_objects(store.as_ref()).await.len();
    assert!(before > 1_000, "the small flushes were there: {before}");
    settle(&mut compactor).await;

    let segments = segment_objects(store.as_ref()).await;
    let total_bytes: u64 = segments.iter().map(|(_, s)| s).sum();
    let live = log.state().segments.len();
    println!("after compaction: {} segments, {total_bytes} bytes (from {before} segments)", segments.len());
    // Bound: per partition, merged segments of at most merge_target_bytes, plus
    // fewer than merge_min_batches unmerged flushes.
    assert!(segments.len() <= 3 * (1 + 8), "{} segments left", segments.len());
    assert_eq!(segments.len(), live, "no garbage is left behind");
    assert!(total_bytes < 1_000_000, "{total_bytes} bytes for 15,000 tiny records");
    for p in 0..3u32 {
        let got = read_partition(&log, "t", p).await;
        assert_eq!(got.len() as u64, flushes);
        for (i, (offset, value)) in got.iter().enumerate() {
            assert_eq!(*offset, i as u64);
            assert_eq!(value, &format!("value-{}", i as u64 * 3 + u64::from(p)));
        }
    }
    // The log behind the snapshots is shrunk, never deleted.
    let mut sizes: Vec<(u64, u64)> = store
        .list(Some(&keys::log_prefix()))
        .map_ok(|m| (keys::parse_log_seq(&m.location).unwrap(), m.size))
        .try_collect()
        .await
        .unwrap();
    sizes.sort_unstable();
    assert_eq!(sizes.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=log.applied()).collect::<Vec<_>>());
    let full = sizes.iter().filter(|(_, size)| *size >= 64).count();
    assert!(full <= 2 * 500 + 20, "{full} entries not shrunk");
    // A fresh agent opens from the snapshot and sees the same state.
    let fresh = open(&store).await;
    assert_eq!(*fresh.state(), *log.state());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_data_from_the_bucket() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = open(&store).await;
    create_topic(&log, "short", 1, TopicConfig { retention_ms: 1_000, retention_bytes: -1 }).await;
    create_topic(&log, "kept", 1, UNLIMITED).await;
    let old = now_ms() - 10_000;
    let mut short_segments = Vec::new();
    for n in 0..5 {
        let (seg, op) = upload(&log, "short", &[(0, vec![record(n, old)])]).await;
        short_segments.push(seg);
        log.commit(vec![op]).await.unwrap();
    }
    let (kept, op) = upload(&log, "kept", &[(0, vec![record(0, old)])]).await;
    log.commit(vec![op]).await.unwrap();

    let mut compactor = Compactor::new(log.clone(), fast_settings());
    settle(&mut compactor).await;
    let p = log.state().partition("short", 0).unwrap().clone();
    assert_eq!((p.log_start_offset, p.high_watermark, p.batches.len()), (5, 5, 0));
    let left: Vec<Ulid> = segment_objects(store.as_ref()).await.into_iter().map(|(id, _)| id).collect();
    assert!(short_segments.iter().all(|s| !left.contains(s)), "expired segments are deleted: {left:?}");
    assert!(left.contains(&kept), "a topic without retention keeps its data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_agent_paused_across_snapshot_and_gc_is_refused() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let live = open(&store).await;
    create_topic(&live, "t", 1, TopicConfig::default()).await;
    // The stale agent uploads a segment, then pauses before committing it.
    let stale = open(&store).await;
    let (orphan, stale_op) = upload(&stale, "t", &[(0, vec![record(0, now_ms())])]).await;

    // Meanwhile the cluster moves on: commits, snapshots, tombstones, GC.
    let mut compactor =
        Compactor::new(live.clone(), CompactorSettings { snapshot_every_entries: 5, ..fast_settings() });
    for n in 1..=30 {
        let (_, op) = upload(&live, "t", &[(0, vec![record(n, now_ms())])]).await;
        live.commit(vec![op]).await.unwrap();
        if n % 5 == 0 {
            compactor.run_once().await.unwrap();
        }
    }
    settle(&mut compactor).await;
    let objects: Vec<Ulid> = segment_objects(store.as_ref()).await.into_iter().map(|(id, _)| id).collect();
    assert!(!objects.contains(&orphan), "the uncommitted segment was collected");
    let second = store.get(&keys::log_entry(2)).await.unwrap().bytes().await.unwrap();
    assert!(
        matches!(LogObject::decode(2, &second).unwrap(), LogObject::Tombstone { .. }),
        "old entries are tombstones"
    );
    let hw = live.state().partition("t", 0).unwrap().high_watermark;

    // The stale agent wakes up (it applied only entry 1) and commits.
    assert_eq!(stale.applied(), 1);
    let committed = stale.commit(vec![stale_op]).await.unwrap();
    assert_eq!(committed.outcomes, vec![OpOutcome::SegmentTooOld], "the log refuses the stale segment");
    assert_eq!(committed.seq, live.applied() + 1, "it landed after the tail, not in a shrunk position");
    live.catch_up().await.unwrap();
    assert_eq!(live.state().partition("t", 0).unwrap().high_watermark, hw, "nothing was appended");
    assert_eq!(*stale.state(), *live.state(), "one history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_compactors_at_once_keep_every_record() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = open(&store).await;
    create_topic(&writer, "t", 2, UNLIMITED).await;
    let compactors: Vec<_> = [open(&store).await, open(&store).await]
        .into_iter()
        .map(|log| {
            tokio::spawn(async move {
                let mut c = Compactor::new(log, CompactorSettings { snapshot_every_entries: 50, ..fast_settings() });
                for _ in 0..40 {
                    c.run_once().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                c
            })
        })
        .collect();
    for n in 0..600u64 {
        let (_, op) = upload(&writer, "t", &[(0, vec![record(n, now_ms())]), (1, vec![record(n, now_ms())])]).await;
        writer.commit(vec![op]).await.unwrap();
    }
    let mut last = None;
    for c in compactors {
        last = Some(c.await.unwrap());
    }
    let mut c = last.unwrap();
    settle(&mut c).await;
    writer.catch_up().await.unwrap();
    for p in 0..2 {
        let got = read_partition(&writer, "t", p).await;
        let expected: Vec<(u64, Bytes)> = (0..600).map(|n| (n, Bytes::from(format!("value-{n}")))).collect();
        assert_eq!(got, expected, "partition {p}: every record at its offset");
    }
    let objects = segment_objects(store.as_ref()).await.len();
    assert_eq!(objects, writer.state().segments.len(), "losers' merged segments were collected too");
}

/// Topics `bad` and `good`, ten one-batch segments each, every one small
/// enough to merge; returns the segment of `bad`'s fourth batch.
async fn two_topics_to_merge(log: &MetadataLog) -> Ulid {
    create_topic(log, "bad", 1, UNLIMITED).await;
    create_topic(log, "good", 1, UNLIMITED).await;
    let mut fourth = None;
    for f in 0..10u64 {
        for topic in ["bad", "good"] {
            let (segment, op) = upload(log, topic, &[(0, vec![record(f, now_ms())])]).await;
            log.commit(vec![op]).await.unwrap();
            if topic == "bad" && f == 3 {
                fourth = Some(segment);
            }
        }
    }
    fourth.unwrap()
}

/// Hole 7: one unreadable batch used to abort the whole cycle, so GC,
/// snapshots and tombstones never ran again. Its run is skipped and reported;
/// everything else goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole7_an_unreadable_batch_skips_its_run_and_the_cycle_goes_on() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = open(&store).await;
    let corrupt = two_topics_to_merge(&log).await;
    log.store().put(&keys::segment(corrupt), Bytes::from_static(b"not a segment at all").into()).await.unwrap();
    let settings = CompactorSettings { snapshot_every_entries: 5, ..fast_settings() };
    let mut compactor = Compactor::new(log.clone(), settings);
    let report = compactor.run_once().await.expect("the cycle survives a bad batch");
    assert_eq!((report.merged_runs, report.failed_runs), (1, 1), "{report:?}");
    assert!(report.snapshot.is_some(), "the rest of the cycle ran: {report:?}");
    assert_eq!(compactor.stats().failed_merge_runs.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(compactor.stats().merge_panics.load(std::sync::atomic::Ordering::Relaxed), 0, "no panic");
    assert_eq!(read_partition(&log, "good", 0).await.len(), 10);
}

/// A run whose merge panics (a bug, here injected by the store as the run's
/// batches are read) is skipped as one that fails, and the cycle goes on.
/// Before, the panic ended the cycle before garbage collection every time
/// it recurred, and the runs merged before it were uploaded again each
/// cycle, never committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_run_that_panics_is_skipped_and_the_cycle_goes_on() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(InMemory::new())));
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let log = open(&store).await;
    let panicking = two_topics_to_merge(&log).await;
    faulty.inject(OpKind::Get, keys::segment(panicking).as_ref(), Fault::Panic, Some(1));
    let settings = CompactorSettings { snapshot_every_entries: 5, ..fast_settings() };
    let mut compactor = Compactor::new(log.clone(), settings);
    let report = compactor.run_once().await.expect("the cycle survives a run that panics");
    assert_eq!((report.merged_runs, report.failed_runs), (1, 1), "{report:?}");
    assert!(report.snapshot.is_some(), "the rest of the cycle ran: {report:?}");
    let stats = compactor.stats();
    assert_eq!(stats.failed_merge_runs.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(stats.merge_panics.load(std::sync::atomic::Ordering::Relaxed), 1, "counted apart");
    for topic in ["bad", "good"] {
        assert_eq!(read_partition(&log, topic, 0).await.len(), 10, "{topic}");
    }
}

/// Partitions of `topic` with at least one batch in a merged segment.
fn merged_partitions(log: &MetadataLog, topic: &str, partitions: u32) -> Vec<u32> {
    let state = log.state();
    (0..partitions)
        .filter(|p| {
            state.partition(topic, *p).unwrap().batches.values().any(|b| state.segments.get(&b.segment).unwrap().merged)
        })
        .collect()
}

/// Under writes that keep the first partitions worth merging, the per-cycle
/// merge budget still reaches the last ones. It went in topic and partition
/// order from the start every cycle, and the last partitions were never
/// merged, nor their flush segments collected; the budget now goes to the
/// oldest runs first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_budget_too_small_for_every_partition_goes_round_them() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = open(&store).await;
    create_topic(&log, "t", 3, UNLIMITED).await;
    let mut settings = fast_settings();
    // Eight flushes, each a small batch in every partition: a run worth merging in each.
    let (mut n, flushes) = (0u64, settings.merge_min_batches);
    let mut flush_a_round = async || {
        for _ in 0..flushes {
            let parts: Vec<_> = (0..3).map(|p| (p, vec![record(1_000 + n + u64::from(p), now_ms())])).collect();
            n += 3;
            let (_, op) = upload(&log, "t", &parts).await;
            log.commit(vec![op]).await.unwrap();
        }
    };
    flush_a_round().await;
    // Room for one partition's run a cycle, and runs no longer than one round's batches.
    let run: u64 = log.state().partition("t", 0).unwrap().batches.values().map(|b| u64::from(b.len)).sum();
    settings.merge_max_bytes_per_cycle = run + run / 2;
    settings.merge_target_bytes = run + run / 4;
    let mut compactor = Compactor::new(log.clone(), settings);
    for round in 0..3 {
        if round > 0 {
            // New writes keep the first partition worth merging.
            flush_a_round().await;
        }
        let report = compactor.run_once().await.unwrap();
        assert_eq!(report.merged_runs, 1, "round {round}: {report:?}");
    }
    assert_eq!(merged_partitions(&log, "t", 3), vec![0, 1, 2], "every partition had its turn");
    for p in 0..3 {
        assert_eq!(read_partition(&log, "t", p).await.len(), 24, "partition {p}");
    }
}

/// A cycle reads each flush segment it merges from with one ranged GET,
/// not one per batch: the batches of different partitions that one flush
/// wrote lie side by side, and the runs that merge them are read together.
/// It made one GET per batch, one per partition per flush segment: about
/// 1,600 per GiB compacted from eight-partition flushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_reads_each_flush_segment_with_one_get_for_all_its_partitions() {
    let (partitions, flushes) = (4u32, 16u64);
    let (metered, log) = log_with_topic_t(partitions).await;
    for f in 0..flushes {
        let parts: Vec<_> = (0..partitions).map(|p| (p, vec![record(f * 10 + u64::from(p), now_ms())])).collect();
        let (_, op) = upload(&log, "t", &parts).await;
        log.commit(vec![op]).await.unwrap();
    }
    let before = metered.stats().segments;
    let mut compactor = Compactor::new(log.clone(), fast_settings());
    let report = compactor.run_once().await.unwrap();
    let gets = metered.stats().segments.get - before.get;
    assert_eq!((report.merged_runs, report.failed_runs), (partitions as usize, 0), "{report:?}");
    assert_eq!(gets, flushes, "one GET per flush segment, for all {partitions} partitions' batches in it");
    assert_eq!(merged_partitions(&log, "t", partitions), (0..partitions).collect::<Vec<_>>());
    for p in 0..partitions {
        let values: Vec<Bytes> = read_partition(&log, "t", p).await.into_iter().map(|(_, v)| v).collect();
        let expected: Vec<Bytes> = (0..flushes).map(|f| record(f * 10 + u64::from(p), 0).value).collect();
        assert_eq!(values, expected, "partition {p}");
    }
}

/// The cycle's budget goes to the oldest runs first, whatever their
/// partition. With room for half the data, a cycle merges the older half of
/// every partition, and the older flushes' segments are left with no live
/// batch, to be collected. It went partition by partition: it merged all of
/// the first two partitions, and every flush segment stayed referenced by
/// the other two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_budget_goes_to_the_oldest_flushes_of_every_partition() {
    let partitions = 4u32;
    let (_, log) = log_with_topic_t(partitions).await;
    let (mut segments, mut names) = (Vec::new(), FlushNames(0));
    for f in 0..16u64 {
        // Values of one length, so that the batches are (nearly) of one size.
        let parts: Vec<_> =
            (0..partitions).map(|p| (p, vec![record(1_000 + f * 10 + u64::from(p), now_ms())])).collect();
        let (segment, op) = upload_as(&log, names.next(), "t", &parts).await;
        log.commit(vec![op]).await.unwrap();
        segments.push(segment);
    }
    let len = log.state().partition("t", 0).unwrap().batches.values().map(|b| u64::from(b.len)).max().unwrap();
    // Runs of eight batches (worth merging by their bytes), room for four of them.
    let settings = CompactorSettings {
        merge_min_batches: 1_000,
        merge_small_batch_bytes: len * 15 / 2,
        merge_target_bytes: len * 17 / 2,
        merge_max_bytes_per_cycle: len * 36,
        ..fast_settings()
    };
    let report = Compactor::new(log.clone(), settings).run_once().await.unwrap();
    assert_eq!(report.merged_runs, 4, "{report:?}");
    assert_eq!(merged_partitions(&log, "t", partitions), (0..partitions).collect::<Vec<_>>());
    {
        let state = log.state();
        let live = |s: &Ulid| state.segments.get(s).map_or(0, |r| r.live_batches);
        assert!(segments[..8].iter().all(|s| live(s) == 0), "the older flushes are no longer read");
        assert!(segments[8..].iter().all(|s| live(s) == partitions), "the newer are not merged yet");
    }
    for p in 0..partitions {
        assert_eq!(read_partition(&log, "t", p).await.len(), 16, "partition {p}");
    }
}

/// A run that failed comes after all others for a while: an unreadable
/// oldest run whose size takes the whole budget no longer keeps every other
/// run from being merged, cycle after cycle. It is deferred for one cycle,
/// then two, four, …, and goes first again after that (a passing store
/// error must not defer it for good under a backlog).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_be_read_does_not_take_every_cycles_budget() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = open(&store).await;
    create_topic(&log, "bad", 1, UNLIMITED).await;
    create_topic(&log, "good", 1, UNLIMITED).await;
    let mut names = FlushNames(0);
    let mut unreadable = None;
    // Eight flushes of `bad` first (the oldest run), then eight of `good`.
    for topic in ["bad", "good"] {
        for f in 0..8u64 {
            let (segment, op) = upload_as(&log, names.next(), topic, &[(0, vec![record(f, now_ms())])]).await;
            log.commit(vec![op]).await.unwrap();
            unreadable = unreadable.or(Some(segment));
        }
    }
    let bytes =
        |topic| log.state().partition(topic, 0).unwrap().batches.values().map(|b| u64::from(b.len)).sum::<u64>();
    let run = bytes("bad").max(bytes("good"));
    let segment = unreadable.unwrap();
    log.store().put(&keys::segment(segment), Bytes::from_static(b"not a segment at all").into()).await.unwrap();
    // Room for one run a cycle.
    let settings = CompactorSettings { merge_max_bytes_per_cycle: run + run / 2, ..fast_settings() };
    let mut compactor = Compactor::new(log.clone(), settings);
    let first = compactor.run_once().await.unwrap();
    assert_eq!((first.merged_runs, first.failed_runs), (0, 1), "the oldest run fails: {first:?}");
    let second = compactor.run_once().await.unwrap();
    assert_eq!((second.merged_runs, second.failed_runs), (1, 0), "the next one is merged: {second:?}");
    assert_eq!(merged_partitions(&log, "good", 1), vec![0]);
    // A newer run of `good` to compete with it: the failed run, no longer
    // deferred, goes first again, fails, and is deferred for two cycles.
    for f in 8..16u64 {
        let (_, op) = upload_as(&log, names.next(), "good", &[(0, vec![record(f, now_ms())])]).await;
        log.commit(vec![op]).await.unwrap();
    }
    let third = compactor.run_once().await.unwrap();
    assert_eq!((third.merged_runs, third.failed_runs), (0, 1), "tried again: {third:?}");
    let fourth = compactor.run_once().await.unwrap();
    assert_eq!((fourth.merged_runs, fourth.failed_runs), (1, 0), "deferred again: {fourth:?}");
}

/// A flush segment cut short fails the runs of the partitions past the
/// cut, with an error; the partitions before it are merged. Joining the
/// ranges with `get_ranges` panicked on the short read (counted as a bug)
/// and failed every run that read the segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_segment_cut_short_fails_only_the_partitions_past_the_cut() {
    let partitions = 4u32;
    let (metered, log) = log_with_topic_t(partitions).await;
    let mut cut = None;
    for f in 0..8u64 {
        let parts: Vec<_> = (0..partitions).map(|p| (p, vec![record(f * 10 + u64::from(p), now_ms())])).collect();
        let (segment, op) = upload(&log, "t", &parts).await;
        log.commit(vec![op]).await.unwrap();
        cut = cut.or(Some(segment));
    }
    // The first flush's segment, cut in the middle of partition 2's batch.
    let segment = cut.unwrap();
    let p2 = log.state().partition("t", 2).unwrap().batches.values().find(|b| b.segment == segment).unwrap().clone();
    let whole = log.store().get(&keys::segment(segment)).await.unwrap().bytes().await.unwrap();
    let short = whole.slice(..(p2.pos + u64::from(p2.len) / 2) as usize);
    log.store().put(&keys::segment(segment), short.into()).await.unwrap();
    let mut compactor = Compactor::new(log.clone(), fast_settings());
    let gets = metered.stats().segments.get;
    let report = compactor.run_once().await.unwrap();
    assert_eq!((report.merged_runs, report.failed_runs), (2, 2), "{report:?}");
    assert_eq!(metered.stats().segments.get - gets, 8, "still one GET per flush segment");
    assert_eq!(compactor.stats().merge_panics.load(std::sync::atomic::Ordering::Relaxed), 0, "not a bug");
    assert_eq!(merged_partitions(&log, "t", partitions), vec![0, 1]);
}

/// A run whose merge panics after its batches are read (here in uploading
/// the merged segment) is skipped as one that fails, and counted apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_run_whose_upload_panics_is_skipped_and_counted() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(InMemory::new())));
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let log = open(&store).await;
    two_topics_to_merge(&log).await;
    faulty.inject(OpKind::Put, "segments/", Fault::Panic, Some(1));
    let mut compactor = Compactor::new(log.clone(), fast_settings());
    let report = compactor.run_once().await.expect("the cycle survives a run that panics");
    assert_eq!((report.merged_runs, report.failed_runs), (1, 1), "{report:?}");
    assert_eq!(compactor.stats().merge_panics.load(std::sync::atomic::Ordering::Relaxed), 1);
    for topic in ["bad", "good"] {
        assert_eq!(read_partition(&log, topic, 0).await.len(), 10, "{topic}");
    }
}
