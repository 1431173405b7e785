//! Retention through the API with the embedded compactor: a topic with
//! `retention_ms` of one second loses its old data from the bucket after the
//! grace period; a topic without retention keeps it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::{AgentProc, Backend, fresh_store};
use futures::TryStreamExt;
use object_store::ObjectStore;
use serde_json::json;

/// Segment objects in the bucket, counted through the store itself.
async fn segment_files(store: &dyn ObjectStore) -> usize {
    let listed: Vec<_> = store.list(Some(&floe_broker::keys::segments_prefix())).try_collect().await.unwrap();
    listed.len()
}

#[tokio::test]
async fn expired_records_leave_the_bucket() {
    expired_records_leave_the_bucket_on(Backend::Dir).await;
}

#[tokio::test]
async fn s3_expired_records_leave_the_bucket() {
    expired_records_leave_the_bucket_on(Backend::S3).await;
}

async fn expired_records_leave_the_bucket_on(backend: Backend) {
    let Some((url, mut env, _dir)) = fresh_store(backend) else { return };
    let store = common::open_store(&url);
    env.extend([
        ("FLOE_COMPACTION_INTERVAL_MS", "100".to_owned()),
        ("FLOE_GC_GRACE_MS", "500".to_owned()),
        ("FLOE_COMMIT_WINDOW_MS", "200".to_owned()),
    ]);
    let agent = AgentProc::start(&url, &env, &[]);
    let c = agent.client();
    let (s, b) = c.post("/v1/topics", &json!({"name": "short", "partitions": 1, "retention_ms": 1000})).await;
    assert_eq!((s, b["retention_ms"].as_i64()), (201, Some(1000)));
    c.create_topic("kept", 1).await;
    let an_hour_ago =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 3_600_000;
    let old = json!([{"value": "a", "timestamp": an_hour_ago}, {"value": "b", "timestamp": an_hour_ago}]);
    c.produce("short", old.clone()).await;
    c.produce("kept", old).await;
    assert_eq!(segment_files(store.as_ref()).await, 2);

    // Wait (bounded) for the compactor: truncation, then collection after the grace period.
    let mut gone = false;
    for _ in 0..120 {
        let (status, body) = c.get("/v1/topics/short/partitions/0/records?offset=0").await;
        if status == 416 && segment_files(store.as_ref()).await == 1 {
            assert_eq!(body["error"]["log_start_offset"], 2);
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(gone, "the expired segment was not collected; {} segments left", segment_files(store.as_ref()).await);
    let kept = c.read_all("kept", 0, 0).await;
    assert_eq!(kept.len(), 2, "a topic without retention keeps its records");
}
