//! One storage conformance suite, run against every backend Floe supports:
//! `InMemory`, `LocalFileSystem`, and a real S3 server (SeaweedFS, which the
//! test script starts) when `FLOE_TEST_S3` names one. It checks exactly the
//! properties the design relies on: create-only PUTs under a race, strongly
//! consistent GET and LIST, ranged GETs, and a working metadata log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{append, create_topic};
use floe_broker::LogSettings;
use floe_broker::testing::S3Target;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode};

async fn suite(store: Arc<dyn ObjectStore>) {
    put_get_and_missing(store.as_ref()).await;
    create_only_refuses_an_existing_key(store.as_ref()).await;
    create_only_race_has_one_winner(store.clone()).await;
    ranged_get_returns_exact_bytes(store.as_ref()).await;
    list_is_consistent_and_start_after(store.as_ref()).await;
    metadata_log_commits_densely(store).await;
}

async fn put_get_and_missing(store: &dyn ObjectStore) {
    let key = Path::from("conf/plain");
    store.put(&key, Bytes::from_static(b"one").into()).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().bytes().await.unwrap(), "one");
    let missing = store.get(&Path::from("conf/absent")).await;
    assert!(matches!(missing, Err(object_store::Error::NotFound { .. })), "{missing:?}");
    store.delete(&key).await.unwrap();
    assert!(matches!(store.get(&key).await, Err(object_store::Error::NotFound { .. })), "delete is visible at once");
}

async fn create_only_refuses_an_existing_key(store: &dyn ObjectStore) {
    let key = Path::from("conf/create-once");
    store.put_opts(&key, Bytes::from_static(b"first").into(), PutMode::Create.into()).await.unwrap();
    let second = store.put_opts(&key, Bytes::from_static(b"second").into(), PutMode::Create.into()).await;
    assert!(matches!(second, Err(object_store::Error::AlreadyExists { .. })), "{second:?}");
    assert_eq!(store.get(&key).await.unwrap().bytes().await.unwrap(), "first", "the loser must not overwrite");
}

async fn create_only_race_has_one_winner(store: Arc<dyn ObjectStore>) {
    for round in 0..5 {
        let key = Path::from(format!("conf/race-{round}"));
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let (store, key) = (store.clone(), key.clone());
                tokio::spawn(async move {
                    store.put_opts(&key, Bytes::from(format!("writer {i}")).into(), PutMode::Create.into()).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(_) => winners.push(i),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => panic!("unexpected error in race: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one create must win, got {winners:?}");
        let body = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(body, format!("writer {}", winners[0]), "the stored object is the winner's");
    }
}

async fn ranged_get_returns_exact_bytes(store: &dyn ObjectStore) {
    let key = Path::from("conf/ranged");
    let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    store.put(&key, Bytes::from(body.clone()).into()).await.unwrap();
    assert_eq!(store.get_range(&key, 1000..1010).await.unwrap().as_ref(), &body[1000..1010]);
    assert_eq!(store.get_range(&key, 99_990..100_000).await.unwrap().as_ref(), &body[99_990..]);
}

async fn list_is_consistent_and_start_after(store: &dyn ObjectStore) {
    let prefix = Path::from("conf/list");
    for i in 0..5 {
        store.put(&prefix.clone().join(format!("{i:03}")), Bytes::new().into()).await.unwrap();
    }
    let mut all: Vec<String> =
        store.list(Some(&prefix)).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
    all.sort();
    assert_eq!(all.len(), 5, "a listing right after PUTs sees all of them: {all:?}");
    let mut after: Vec<String> = store
        .list_with_offset(Some(&prefix), &prefix.clone().join("001"))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    after.sort();
    assert_eq!(after, vec!["conf/list/002", "conf/list/003", "conf/list/004"], "offset is exclusive (start-after)");
}

async fn metadata_log_commits_densely(store: Arc<dyn ObjectStore>) {
    let settings = LogSettings::default();
    let mut logs = Vec::new();
    for _ in 0..3 {
        logs.push(Arc::new(floe_broker::open(store.clone(), settings.clone()).await.unwrap().1));
    }
    logs[0].commit(vec![create_topic("conf", 1)]).await.unwrap();
    let tasks: Vec<_> = logs
        .iter()
        .cloned()
        .map(|log| {
            tokio::spawn(async move {
                for _ in 0..4 {
                    log.commit(vec![append("conf", 0, 2)]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (_, fresh) = floe_broker::open(store, settings).await.unwrap();
    let p = fresh.state().partition("conf", 0).unwrap().clone();
    assert_eq!(p.high_watermark, 3 * 4 * 2);
    assert_eq!(p.batches.keys().copied().collect::<Vec<_>>(), (0..12).map(|i| i * 2).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory() {
    suite(Arc::new(InMemory::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    suite(Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_protocol() {
    let Some(s3) = S3Target::from_env() else { return };
    suite(s3.store(&s3.fresh_prefix())).await;
}
