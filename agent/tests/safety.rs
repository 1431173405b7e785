//! Regression tests for the safety holes found by reviewing the commit path
//! and probing a running agent from outside. Each is named after its hole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::AgentProc;
use serde_json::{Value, json};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}"))
}

fn stamped(id: u64, epoch: u64, sequence: u64, values: &[&str]) -> Value {
    let records: Vec<Value> = values.iter().map(|v| json!({"value": v, "partition": 0})).collect();
    json!({"records": records, "producer": {"id": id, "epoch": epoch, "sequence": sequence}})
}

fn values(records: &[Value]) -> Vec<String> {
    records.iter().map(|r| r["value"].as_str().unwrap().to_owned()).collect()
}

fn store_url(dir: &tempfile::TempDir) -> String {
    format!("file://{}", dir.path().display())
}

/// Segment and log PUTs the agent has made so far.
async fn puts(c: &common::Client) -> (u64, u64) {
    let (_, stats) = c.get("/v1/stats").await;
    (stats["store"]["segments"]["put"].as_u64().unwrap(), stats["store"]["log"]["put"].as_u64().unwrap())
}

/// Hole 1: an idempotent retry sent while the original is still buffered is
/// answered with the original's offsets and writes nothing; a retry of a
/// committed sequence uploads no segment and writes no log entry.
#[tokio::test]
async fn hole1_idempotent_retry_inside_one_flush_window_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&store_url(&dir), &[], &["--flush-interval-ms", "1500", "--compactor", "off"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let (s, p) = c.post("/v1/producers", &json!({})).await;
    assert_eq!(s, 200, "{p}");
    let first = stamped(0, 0, 0, &["a", "b", "c"]);
    let original = tokio::spawn({
        let (c, first) = (c.clone(), first.clone());
        async move { c.post("/v1/topics/t/records", &first).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let retry = c.post("/v1/topics/t/records", &first).await;
    let original = original.await.unwrap();
    let expected = json!({"offsets": [{"partition": 0, "offset": 0}, {"partition": 0, "offset": 1}, {"partition": 0, "offset": 2}]});
    assert_eq!(original, (200, expected.clone()));
    assert_eq!(retry, (200, expected.clone()), "the retry gets the original's offsets");
    assert_eq!(values(&c.read_all("t", 0, 0).await), vec!["a", "b", "c"], "written once");

    let before = puts(&c).await;
    let again = c.post("/v1/topics/t/records", &first).await;
    assert_eq!(again, (200, expected), "a retry of a committed sequence");
    assert_eq!(puts(&c).await, before, "answered without a segment upload or a log entry");

    let (s, next) = c.post("/v1/topics/t/records", &stamped(0, 0, 3, &["d"])).await;
    assert_eq!((s, next["offsets"][0]["offset"].as_u64()), (200, Some(3)), "{next}");
    let (s, stale) = c.post("/v1/topics/t/records", &stamped(0, 0, 1, &["x"])).await;
    assert_eq!((s, code(&stale)), (409, "out_of_order_sequence"), "{stale}");
    assert_eq!(values(&c.read_all("t", 0, 0).await), vec!["a", "b", "c", "d"]);
}
