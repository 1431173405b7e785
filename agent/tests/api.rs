//! The HTTP API's contract: shapes, error codes and statuses, long-polls,
//! overload, and reads through a second agent on the same store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::{AgentProc, code};
use serde_json::{Value, json};

fn file_store(dir: &tempfile::TempDir) -> String {
    format!("file://{}", dir.path().display())
}

#[tokio::test]
async fn topics_admin_shapes_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProc::start(&file_store(&dir), &[], &[]);
    let c = agent.client();
    let (s, b) = c.post("/v1/topics", &json!({"name": "orders", "partitions": 3})).await;
    let week = 7 * 24 * 3600 * 1000;
    assert_eq!(
        (s, b),
        (201, json!({"name": "orders", "partitions": 3, "retention_ms": week, "retention_bytes": -1, "bytes": 0}))
    );
    let (s, b) = c.post("/v1/topics", &json!({"name": "orders", "partitions": 1})).await;
    assert_eq!((s, code(&b)), (409, "topic_exists"));
    let (s, b) = c.post("/v1/topics", &json!({"name": "bad name"})).await;
    assert_eq!((s, code(&b)), (400, "invalid_topic_name"));
    let (s, b) = c.post("/v1/topics", &json!({"name": "zero", "partitions": 0})).await;
    assert_eq!((s, code(&b)), (400, "invalid_partitions"));
    let (s, b) = c.get("/v1/topics").await;
    let listed = json!({"topics": [{"name": "orders", "partitions": 3, "retention_ms": week, "retention_bytes": -1, "bytes": 0}]});
    assert_eq!((s, b), (200, listed));
    let (s, b) = c.get("/v1/topics/orders").await;
    assert_eq!(s, 200);
    assert_eq!(b["partitions"][2], json!({"partition": 2, "log_start_offset": 0, "high_watermark": 0, "bytes": 0}));
    let (s, b) = c.get("/v1/topics/missing").await;
    assert_eq!((s, code(&b)), (404, "topic_not_found"));
    let patch = |body: Value| {
        let c = c.clone();
        async move {
            let r = c.http.patch(format!("{}/v1/topics/orders", c.base)).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, b) = patch(json!({"retention_ms": 5000})).await;
    assert_eq!((s, b["retention_ms"].clone(), b["retention_bytes"].clone()), (200, json!(5000), json!(-1)));
    let (s, b) = patch(json!({"retention_bytes": -7})).await;
    assert_eq!((s, code(&b)), (400, "invalid_config"));
    let (_, b) = c.get("/v1/topics/orders").await;
    assert_eq!(b["retention_ms"], 5000, "the change is in the log");
    let (s, b) = c.get("/v1/nothing-here").await;
    assert_eq!((s, code(&b)), (404, "not_found"));
}

#[tokio::test]
async fn bad_produce_requests_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProc::start(&file_store(&dir), &[], &["--max-request-bytes", "4096"]);
    let c = agent.client();
    c.create_topic("t", 2).await;
    let cases = [
        (
            json!({"records": [{"value": "ok", "partition": 0}, {"value": "bad", "partition": 7}]}),
            404,
            "partition_not_found",
        ),
        (json!({"records": [{"value": "ok"}, {"key": "no value"}]}), 400, "invalid_json"),
        (json!({"records": []}), 400, "invalid_request"),
        (json!({"records": [{"value": "x".repeat(5000)}]}), 413, "request_too_large"),
    ];
    for (body, status, expected) in cases {
        let (s, b) = c.post("/v1/topics/t/records", &body).await;
        assert_eq!((s, code(&b)), (status, expected), "{b}");
    }
    let (s, b) = c.post("/v1/topics/none/records", &json!({"records": [{"value": "v"}]})).await;
    assert_eq!((s, code(&b)), (404, "topic_not_found"));
    let r = c.http.post(format!("{}/v1/topics/t/records", c.base)).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(&r.json().await.unwrap()), "invalid_json");
    // Nothing was half-applied: both partitions are still empty.
    let (_, meta) = c.get("/v1/topics/t").await;
    assert_eq!(meta["partitions"][0]["high_watermark"], 0);
    assert_eq!(meta["partitions"][1]["high_watermark"], 0);
}

#[tokio::test]
async fn ndjson_produce_and_fetch_fields() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProc::start(&file_store(&dir), &[], &[]);
    let c = agent.client();
    c.create_topic("t", 1).await;
    let body = "{\"key\":\"k\",\"value\":\"one\",\"timestamp\":1700000000000,\"headers\":{\"h\":\"x\"}}\n\n{\"value\":\"two\"}\n";
    let r = c.post_ndjson("/v1/topics/t/records", body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"offsets": [{"partition": 0, "offset": 0}, {"partition": 0, "offset": 1}]})
    );
    let (s, b) = c.get("/v1/topics/t/partitions/0/records?offset=0&max_records=1").await;
    assert_eq!(s, 200);
    assert_eq!(
        b,
        json!({"records": [{"offset": 0, "key": "k", "value": "one", "timestamp": 1_700_000_000_000i64, "headers": {"h": "x"}}],
               "next_offset": 1, "high_watermark": 2, "log_start_offset": 0})
    );
    let (s, b) = c.get("/v1/topics/t/partitions/0/records?offset=3").await;
    assert_eq!((s, code(&b)), (416, "offset_out_of_range"));
    assert_eq!((b["error"]["log_start_offset"].clone(), b["error"]["high_watermark"].clone()), (json!(0), json!(2)));
    let (s, b) = c.get("/v1/topics/t/partitions/0/records?max_records=0").await;
    assert_eq!((s, code(&b)), (400, "invalid_query"));
    let (s, b) = c.get("/v1/topics/t/partitions/0/records?offset=-1").await;
    assert_eq!((s, code(&b)), (400, "invalid_query"));
    let bad_line = c
        .http
        .post(format!("{}/v1/topics/t/records", c.base))
        .header("content-type", "application/x-ndjson")
        .body("{\"value\":\"fine\"}\n{oops}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_line.status(), 400);
    assert_eq!(bad_line.json::<Value>().await.unwrap()["error"]["line"], 2);
}

#[tokio::test]
async fn long_poll_wakes_when_records_commit() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProc::start(&file_store(&dir), &[], &[]);
    let c = agent.client();
    c.create_topic("t", 1).await;
    let poller = {
        let c = c.clone();
        tokio::spawn(async move { c.get("/v1/topics/t/partitions/0/records?offset=0&timeout_ms=30000").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.produce("t", json!([{"value": "wake up"}])).await;
    let (s, b) = poller.await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(b["records"][0]["value"], "wake up", "the long-poll returns the new record: {b}");
    let (s, b) = c.get("/v1/topics/t/partitions/0/records?offset=1&timeout_ms=50").await;
    assert_eq!(
        (s, b["records"].as_array().unwrap().len(), b["next_offset"].as_u64()),
        (200, 0, Some(1)),
        "times out empty"
    );
}

#[tokio::test]
async fn a_full_buffer_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProc::start(&file_store(&dir), &[], &["--buffer-bytes", "6000", "--flush-interval-ms", "3000"]);
    let c = agent.client();
    c.create_topic("t", 1).await;
    let big = json!([{"value": "x".repeat(2000)}]);
    let first = {
        let c = c.clone();
        let big = big.clone();
        tokio::spawn(async move { c.produce("t", big).await })
    };
    // The first request holds over 4 KB of the 6 KB buffer until its flush, 3 s away:
    // 2 KB of record, and as much for the segment it becomes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = c.http.post(format!("{}/v1/topics/t/records", c.base)).json(&json!({"records": big})).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert_eq!(code(&r.json().await.unwrap()), "overloaded");
    assert_eq!(first.await.unwrap(), vec![(0, 0)], "the buffered request still commits");
    let (s, b) = c.post("/v1/topics/t/records", &json!({"records": [{"value": "y".repeat(4000)}]})).await;
    assert_eq!((s, code(&b)), (413, "request_too_large"), "larger than the whole buffer");
}

#[tokio::test]
async fn a_second_agent_reads_what_the_first_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&file_store(&dir), &[], &["--log-poll-ms", "60000"]);
    let b = AgentProc::start(&file_store(&dir), &[], &["--log-poll-ms", "60000"]);
    let (ca, cb) = (a.client(), b.client());
    ca.create_topic("t", 1).await;
    let at = ca.produce("t", json!([{"value": "from a"}])).await;
    assert_eq!(at, vec![(0, 0)]);
    // b has not polled the log (60 s interval): the fetch itself must catch up.
    let (s, body) = cb.get("/v1/topics/t/partitions/0/records?offset=0").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["records"][0]["value"], "from a");
    let at = cb.produce("t", json!([{"value": "from b"}])).await;
    assert_eq!(at, vec![(0, 1)], "b continues a's offsets");
    let (_, body) = ca.get("/v1/topics/t/partitions/0/records?offset=1").await;
    assert_eq!(body["records"][0]["value"], "from b");
}

#[tokio::test]
async fn health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProc::start(&file_store(&dir), &[], &[]);
    let c = agent.client();
    assert_eq!(c.get("/healthz").await, (200, json!({"status": "ok"})));
    let (s, b) = c.get("/readyz").await;
    assert_eq!((s, b["status"].as_str()), (200, Some("ready")));
}

#[tokio::test]
async fn tail_reads_on_the_producing_agent_cost_no_gets() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProc::start(&file_store(&dir), &[], &[]);
    let c = agent.client();
    c.create_topic("t", 1).await;
    for i in 0..20 {
        c.produce("t", json!([{"value": format!("v{i}")}])).await;
        let (s, b) = c.get(&format!("/v1/topics/t/partitions/0/records?offset={i}")).await;
        assert_eq!((s, b["records"][0]["value"].clone()), (200, json!(format!("v{i}"))));
    }
    // A request large enough to be compressed as it arrives (64 KiB).
    let large: Vec<_> = (0..70).map(|i| json!({"value": format!("{i:04}{}", "x".repeat(996))})).collect();
    c.produce("t", json!(large)).await;
    let (s, b) = c.get("/v1/topics/t/partitions/0/records?offset=20&max_records=100").await;
    assert_eq!(s, 200);
    let values: Vec<_> = b["records"].as_array().unwrap().iter().map(|r| r["value"].clone()).collect();
    assert_eq!(values, large.iter().map(|r| r["value"].clone()).collect::<Vec<_>>());
    let (s, stats) = c.get("/v1/stats").await;
    assert_eq!(s, 200);
    assert_eq!(stats["store"]["segments"]["get"], 0, "tail reads come from the cache: {stats}");
    assert_eq!(stats["cache"]["loads"], 0);
    assert!(stats["cache"]["lookups"].as_u64().unwrap() >= 21);
    assert_eq!(stats["store"]["segments"]["put"], 21, "one segment per flush");
    assert!(stats["store"]["log"]["put"].as_u64().unwrap() >= 22, "a create-only PUT per commit");
}

#[tokio::test]
async fn a_catch_up_read_gets_each_needed_batch_once() {
    let dir = tempfile::tempdir().unwrap();
    // No compaction anywhere: merging would change (and read) the batches.
    let writer = AgentProc::start(&file_store(&dir), &[], &["--compactor", "off"]);
    let c = writer.client();
    c.create_topic("t", 1).await;
    let batches = 60;
    for i in 0..batches {
        let records: Vec<Value> = (0..10).map(|j| json!({"value": format!("{i}-{j}")})).collect();
        c.produce("t", Value::Array(records)).await;
    }
    // A fresh agent with an empty cache reads everything, 7 records at a time
    // (fetches that straddle batches, with read-ahead running).
    let nvme = dir.path().join("nvme").display().to_string();
    let reader = AgentProc::start(&file_store(&dir), &[], &["--cache-dir", &nvme, "--compactor", "off"]);
    let r = reader.client();
    let mut offset = 0;
    while offset < batches * 10 {
        let (s, b) = r.get(&format!("/v1/topics/t/partitions/0/records?offset={offset}&max_records=7")).await;
        assert_eq!(s, 200, "{b}");
        offset = b["next_offset"].as_u64().unwrap();
    }
    let (_, stats) = r.get("/v1/stats").await;
    assert_eq!(stats["store"]["segments"]["get"], batches, "one ranged GET per batch, none twice: {stats}");
    assert_eq!(stats["cache"]["disk_entries"], batches, "every fetched batch also went to the NVMe tier");
}

#[tokio::test]
async fn a_catch_up_read_gets_each_segment_once_for_all_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let writer = AgentProc::start(&file_store(&dir), &[], &["--compactor", "off"]);
    let c = writer.client();
    c.create_topic("t", 8).await;
    // Each request is one flush: one segment holding a batch of every partition.
    let segments = 12;
    for i in 0..segments {
        let records: Vec<Value> = (0..8).map(|p| json!({"value": format!("{i}-{p}"), "partition": p})).collect();
        c.produce("t", Value::Array(records)).await;
    }
    // A fresh agent reads every partition from the start: the neighbours of
    // the first batch it misses in a segment come with the same GET.
    let reader = AgentProc::start(&file_store(&dir), &[], &["--compactor", "off"]);
    let r = reader.client();
    for p in 0..8 {
        let (s, b) = r.get(&format!("/v1/topics/t/partitions/{p}/records?offset=0&max_records=100")).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["records"].as_array().unwrap().len(), segments, "{b}");
        assert_eq!(b["records"][0]["value"], format!("0-{p}"));
    }
    let (_, stats) = r.get("/v1/stats").await;
    assert_eq!(stats["store"]["segments"]["get"], segments, "one GET per segment, not per batch: {stats}");
}

/// A merged segment holds one partition. A fresh agent reading more such
/// partitions at once than its chunk cache holds chunks still gets each
/// segment once: a fetch loads the rest of its chunk ahead into the batch
/// cache while it holds the chunk's bytes. (Before, each partition's chunk
/// was evicted by the others' before its later batches were read ahead, and
/// fetched again.)
#[tokio::test]
async fn a_catch_up_of_more_merged_partitions_than_cached_chunks_gets_each_segment_once() {
    let dir = tempfile::tempdir().unwrap();
    let writer = AgentProc::start(&file_store(&dir), &[], &["--compactor", "off"]);
    let c = writer.client();
    let partitions = 4u32;
    c.create_topic("t", partitions).await;
    // Values zstd cannot shrink much, so a segment's bytes are about its records'.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut value = || {
        let bytes: Vec<u8> = (0..384)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
    };
    // Eight flushes of four records a partition: merged into one segment
    // each, of about 16 KB, in batches of one record.
    for _ in 0..8 {
        for p in 0..partitions {
            let records: Vec<Value> = (0..4).map(|_| json!({"value": value(), "partition": p})).collect();
            c.produce("t", Value::Array(records)).await;
        }
    }
    // Then an agent that compacts: its first cycle sees every batch.
    let compact = ["--compaction-interval-ms", "100", "--merge-min-batches", "2", "--merge-batch-bytes", "600"];
    let compactor = AgentProc::start(&file_store(&dir), &[], &compact);
    let cycles = || async { compactor.client().get("/v1/stats").await.1["compactor"]["cycles"].as_u64().unwrap() };
    let mut waited = 0;
    while cycles().await < 2 {
        assert!(waited < 400, "the compactor did not run two cycles");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    // The chunk cache (a quarter of 150 KB) holds two of the four merged
    // segments; the batch cache holds all four decoded.
    let nvme = dir.path().join("nvme").display().to_string();
    let reader = AgentProc::start(
        &file_store(&dir),
        &[],
        &["--compactor", "off", "--cache-bytes", "150000", "--cache-dir", &nvme],
    );
    let r = reader.client();
    let mut next = vec![0u64; partitions as usize];
    while next.iter().any(|&n| n < 32) {
        for (p, next) in next.iter_mut().enumerate().filter(|(_, n)| **n < 32) {
            let (s, b) = r.get(&format!("/v1/topics/t/partitions/{p}/records?offset={next}&max_records=2")).await;
            assert_eq!(s, 200, "{b}");
            *next = b["next_offset"].as_u64().unwrap();
        }
    }
    let (_, stats) = r.get("/v1/stats").await;
    assert_eq!(stats["store"]["segments"]["get"], partitions, "one GET per merged segment: {stats}");
    // Read ahead or not, every batch fetched is also kept on NVMe, and counted as loaded.
    assert_eq!(stats["cache"]["disk_entries"], 4 * 32, "{stats}");
    assert_eq!(stats["cache"]["loads"], 4 * 32, "{stats}");
}
