//! `GET /metrics`: Prometheus text whose counters and histograms move with
//! the traffic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::AgentProc;
use serde_json::json;

/// The value of the sample line that starts with `name` (labels included).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

async fn scrape(c: &common::Client) -> String {
    let r = c.http.get(format!("{}/metrics", c.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_scrape_shows_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&format!("file://{}", dir.path().display()), &[], &["--compactor", "off"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let before = scrape(&c).await;
    assert_eq!(sample(&before, "floe_produced_records_total"), 0.0);
    // Compression's CPU time (Linux): none before a produce, some after.
    let compression =
        |text: &str| cfg!(target_os = "linux").then(|| sample(text, "floe_compression_cpu_seconds_total"));
    assert_eq!(compression(&before), cfg!(target_os = "linux").then_some(0.0));
    for i in 0..10 {
        c.produce("t", json!([{"value": format!("v{i}"), "partition": 0}, {"value": "x", "partition": 0}])).await;
    }
    let (s, _) = c.post("/v1/topics/nope/records", &json!({"records": [{"value": "x"}]})).await;
    assert_eq!(s, 404);
    assert_eq!(c.read_all("t", 0, 0).await.len(), 20);

    let after = scrape(&c).await;
    assert_eq!(sample(&after, "floe_produced_records_total"), 20.0);
    assert!(compression(&after).is_none_or(|s| s > 0.0), "compressing counted");
    // The process's CPU time: more after the produces, and more than compressing took.
    if cfg!(any(target_os = "linux", target_os = "macos")) {
        let cpu = |text: &str| sample(text, "floe_process_cpu_seconds_total");
        assert!(cpu(&after) > cpu(&before), "{} then {}", cpu(&before), cpu(&after));
        assert!(compression(&after).is_none_or(|s| s < cpu(&after)), "a part of the process's CPU time");
    }
    assert_eq!(sample(&after, "floe_produce_requests_total{outcome=\"acknowledged\"}"), 10.0);
    assert_eq!(sample(&after, "floe_produce_requests_total{outcome=\"refused\"}"), 1.0);
    assert_eq!(sample(&after, "floe_produce_ack_seconds_count"), 10.0);
    for stage in ["buffer", "upload", "commit"] {
        assert_eq!(sample(&after, &format!("floe_write_stage_seconds_count{{stage=\"{stage}\"}}")), 10.0, "{stage}");
    }
    assert_eq!(sample(&after, "floe_fetched_records_total"), 20.0);
    // The background tasks started again after a panic, each listed (the compactor is off here).
    for task in ["log_follower", "group_upkeep"] {
        assert_eq!(sample(&after, &format!("floe_background_task_panics_total{{task=\"{task}\"}}")), 0.0);
    }
    assert!(!after.contains("task=\"compactor\""));
    let puts = sample(&after, "floe_store_requests_total{kind=\"segments\",op=\"put\"}");
    assert!(puts >= 1.0, "segment PUTs counted: {puts}");
    assert!(sample(&after, "floe_log_applied") > sample(&before, "floe_log_applied"));
    let produced = "floe_http_requests_total{face=\"v1\",method=\"POST\",status=\"200\"}";
    assert!(sample(&after, produced) >= 10.0, "answered requests counted");
    assert!(sample(&after, "floe_fetch_seconds_count") >= 2.0, "fetches timed");
    let commits = sample(&after, "floe_log_commits_total");
    assert!(commits >= 11.0, "a topic and at least ten flushes committed: {commits}");
    assert_eq!(sample(&after, "floe_log_commit_conflicts_total"), 0.0, "a lone agent never loses a position");
    let tail_reads = sample(&after, "floe_store_request_outcomes_total{kind=\"log\",outcome=\"not_found\"}");
    assert!(tail_reads >= 1.0, "reading past the log's tail finds no entry: {tail_reads}");
    assert_eq!(sample(&after, "floe_store_request_outcomes_total{kind=\"segments\",outcome=\"failed\"}"), 0.0);
    let segment_bytes = sample(&after, "floe_store_bytes_total{kind=\"segments\",direction=\"put\"}");
    assert!(segment_bytes > 0.0, "segment bytes counted");

    // A group's committed offsets and lag, per partition.
    let (_, joined) = c.post("/v1/groups/g/members", &json!({"topics": ["t"]})).await;
    let member = joined["member_id"].as_str().unwrap();
    let commit = json!({"member_id": member, "generation": joined["generation"], "offsets": [{"topic": "t", "partition": 0, "offset": 5}]});
    let (s, b) = c.post("/v1/groups/g/offsets", &commit).await;
    assert_eq!(s, 200, "{b}");
    let groups = scrape(&c).await;
    let labels = "{group=\"g\",topic=\"t\",partition=\"0\"}";
    assert_eq!(sample(&groups, &format!("floe_group_committed_offset{labels}")), 5.0);
    assert_eq!(sample(&groups, &format!("floe_group_lag{labels}")), 15.0);
    assert_eq!(sample(&groups, "floe_group_members{group=\"g\"}"), 1.0, "this agent coordinates g");
}

#[tokio::test]
async fn a_produce_says_where_its_time_went() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&format!("file://{}", dir.path().display()), &[], &["--compactor", "off"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let r = c
        .http
        .post(format!("{}/v1/topics/t/records", c.base))
        .json(&json!({"records": [{"value": "v"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let timing = r.headers()["server-timing"].to_str().unwrap().to_owned();
    let stages: Vec<&str> = timing.split(", ").map(|s| s.split(';').next().unwrap()).collect();
    assert_eq!(stages, ["buffer", "upload", "commit"], "{timing}");
    let (_, stats) = c.get("/v1/stats").await;
    let applied = stats["log"]["applied"].as_u64().unwrap();
    assert!(timing.ends_with(&format!("desc=\"log {applied}\"")), "the entry that made it durable: {timing}");
}
