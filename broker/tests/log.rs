//! The metadata log: create-only append races, deterministic apply,
//! unknown-outcome resolution, snapshots and the start-up safety probe.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{append, create_topic};
use floe_broker::fault::{Fault, FaultyStore, OpKind};
use floe_broker::state::OpOutcome;
use floe_broker::{Error, LogSettings, MetadataLog, keys, snapshot};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

fn fast() -> LogSettings {
    LogSettings { settle_backoff: Duration::from_millis(1), ..LogSettings::default() }
}

async fn open(store: &Arc<dyn ObjectStore>) -> MetadataLog {
    floe_broker::open(store.clone(), fast()).await.unwrap().1
}

fn base_offsets(outcomes: &[OpOutcome]) -> Vec<u64> {
    outcomes
        .iter()
        .flat_map(|o| match o {
            OpOutcome::Appended(p) => p.iter().map(|b| b.base().expect("partition exists")).collect(),
            _ => vec![],
        })
        .collect()
}

async fn log_keys(store: &dyn ObjectStore) -> Vec<u64> {
    let mut seqs: Vec<u64> = store
        .list(Some(&keys::log_prefix()))
        .map_ok(|m| keys::parse_log_seq(&m.location).unwrap())
        .try_collect()
        .await
        .unwrap();
    seqs.sort_unstable();
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_get_dense_disjoint_offsets() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    open(&store).await.commit(vec![create_topic("t", 1)]).await.unwrap();
    let writers = 6u64;
    let per_writer = 15u64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = Arc::new(open(&store).await);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..per_writer {
                let c = log.commit(vec![append("t", 0, w + 1)]).await.unwrap();
                let base = base_offsets(&c.outcomes)[0];
                mine.push((base, w + 1));
            }
            (log, mine)
        }));
    }
    let mut ranges = Vec::new();
    let mut logs = Vec::new();
    for t in tasks {
        let (log, mine) = t.await.unwrap();
        ranges.extend(mine);
        logs.push(log);
    }
    ranges.sort_unstable();
    let mut next = 0;
    for (base, len) in &ranges {
        assert_eq!(*base, next, "offsets must be dense and never handed out twice");
        next += len;
    }
    let expected_hw: u64 = (1..=writers).sum::<u64>() * per_writer;
    assert_eq!(next, expected_hw);
    assert_eq!(log_keys(store.as_ref()).await, (1..=1 + writers * per_writer).collect::<Vec<_>>());
    for log in &logs {
        log.catch_up().await.unwrap();
        assert_eq!(log.state().partition("t", 0).unwrap().high_watermark, expected_hw);
    }
}

#[tokio::test]
async fn two_readers_of_one_log_compute_identical_state() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = open(&store).await;
    writer.commit(vec![create_topic("a", 3), create_topic("b", 1)]).await.unwrap();
    for i in 0..20u64 {
        writer.commit(vec![append("a", (i % 3) as u32, i + 1), append("b", 0, 2)]).await.unwrap();
    }
    let (x, y) = (open(&store).await, open(&store).await);
    assert_eq!(*x.state(), *y.state());
    assert_eq!(*x.state(), *writer.state());
    assert_eq!(snapshot::encode(&x.state()).unwrap(), snapshot::encode(&y.state()).unwrap(), "byte for byte");
}

#[tokio::test]
async fn a_put_that_lands_but_reports_failure_commits_exactly_once() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(InMemory::new())));
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let log = open(&store).await;
    log.commit(vec![create_topic("t", 1)]).await.unwrap();
    faulty.inject(OpKind::Put, "log/", Fault::LandThenFail, Some(1));
    let c = log.commit(vec![append("t", 0, 5)]).await.unwrap();
    assert_eq!(c.seq, 2);
    assert_eq!(base_offsets(&c.outcomes), vec![0]);
    let next = log.commit(vec![append("t", 0, 1)]).await.unwrap();
    assert_eq!((next.seq, base_offsets(&next.outcomes)), (3, vec![5]), "no duplicate entry was written");
    assert_eq!(log_keys(store.as_ref()).await, vec![1, 2, 3]);
}

#[tokio::test]
async fn a_put_that_failed_before_landing_is_retried_at_the_same_position() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(InMemory::new())));
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let log = open(&store).await;
    log.commit(vec![create_topic("t", 1)]).await.unwrap();
    faulty.inject(OpKind::Put, "log/", Fault::Fail, Some(2));
    let c = log.commit(vec![append("t", 0, 3)]).await.unwrap();
    assert_eq!(c.seq, 2);
    assert_eq!(log_keys(store.as_ref()).await, vec![1, 2]);
}

#[tokio::test]
async fn an_unresolvable_outcome_is_an_error_and_leaves_the_log_usable() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(InMemory::new())));
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let log = open(&store).await;
    log.commit(vec![create_topic("t", 1)]).await.unwrap();
    faulty.inject(OpKind::Put, "log/", Fault::Fail, None);
    faulty.inject(OpKind::Get, "log/", Fault::Fail, None);
    let err = log.commit(vec![append("t", 0, 3)]).await.unwrap_err();
    assert!(matches!(err, Error::CommitUnresolved { seq: 2, .. }), "{err}");
    faulty.clear();
    let c = log.commit(vec![append("t", 0, 3)]).await.unwrap();
    assert_eq!((c.seq, base_offsets(&c.outcomes)), (2, vec![0]));
}

#[tokio::test]
async fn losing_a_race_applies_the_winner_first() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = open(&store).await;
    let b = open(&store).await;
    a.commit(vec![create_topic("t", 1)]).await.unwrap();
    // b has not seen entry 1: its first try at position 1 loses, it applies
    // a's entry and lands at 2, after a's topic exists.
    let c = b.commit(vec![append("t", 0, 4)]).await.unwrap();
    assert_eq!((c.seq, base_offsets(&c.outcomes)), (2, vec![0]));
    a.catch_up().await.unwrap();
    assert_eq!(*a.state(), *b.state());
}

#[tokio::test]
async fn start_up_loads_the_newest_snapshot_and_replays_the_tail() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = open(&store).await;
    log.commit(vec![create_topic("t", 2)]).await.unwrap();
    for i in 0..10 {
        log.commit(vec![append("t", i % 2, 3)]).await.unwrap();
    }
    let covered = log.state().clone();
    assert!(snapshot::write(store.as_ref(), &covered, snapshot::INDEXED_SNAPSHOT_FORMAT).await.unwrap());
    assert!(
        !snapshot::write(store.as_ref(), &covered, snapshot::INDEXED_SNAPSHOT_FORMAT).await.unwrap(),
        "snapshots are create-only"
    );
    for _ in 0..5 {
        log.commit(vec![append("t", 1, 2)]).await.unwrap();
    }
    // Remove an entry the snapshot covers: a fresh log must not need it.
    store.delete(&keys::log_entry(3)).await.unwrap();
    let fresh = open(&store).await;
    assert_eq!(*fresh.state(), *log.state());
    assert_eq!(fresh.applied(), 16);
}

#[tokio::test]
async fn an_agent_refuses_a_store_that_ignores_create_only() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(InMemory::new())));
    faulty.inject(OpKind::Put, "probes/", Fault::IgnoreCreateMode, None);
    let err = floe_broker::open(faulty, fast()).await.err().expect("open must fail");
    assert!(matches!(err, Error::UnsafeStore { .. }));
    assert!(err.to_string().contains("If-None-Match"), "{err}");
}

#[tokio::test]
async fn catch_up_sees_entries_written_by_others() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let reader = open(&store).await;
    let writer = open(&store).await;
    writer.commit(vec![create_topic("t", 1)]).await.unwrap();
    let seen = reader.subscribe();
    writer.commit(vec![append("t", 0, 9)]).await.unwrap();
    assert_eq!(reader.catch_up().await.unwrap(), 2);
    assert!(seen.has_changed().unwrap());
    assert_eq!(reader.state().partition("t", 0).unwrap().high_watermark, 9);
    let distinct: BTreeSet<u64> = [reader.applied(), writer.applied()].into();
    assert_eq!(distinct.len(), 1);
}
