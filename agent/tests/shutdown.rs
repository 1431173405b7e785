//! Stopping an agent with SIGTERM under load: it stops taking requests,
//! writes out and answers what it took, ends open tails, and exits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::{AgentProc, Backend, fresh_store};
use serde_json::json;

const PRODUCERS: usize = 8;
const RECORDS_PER_REQUEST: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_accepted_requests_and_every_acknowledged_record_is_in_the_bucket() {
    let (store, env, _dir) = fresh_store(Backend::Dir).expect("a local directory");
    // Nothing is flushed on time: only the drain writes these records out.
    // The drain deadline is beyond the test's wait for the exit, so the
    // agent exits in time only if nothing (the tail, a request) holds it up.
    let a = AgentProc::start(
        &store,
        &env,
        &["--flush-interval-ms", "600000", "--drain-timeout-ms", "600000", "--compactor", "off"],
    );
    let c = a.client();
    c.create_topic("t", 2).await;

    // An open tail must not hold the agent up.
    let tail = c
        .http
        .get(format!("{}/v1/topics/t/partitions/0/records", c.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);

    // Nor may a group member's long-poll (answered with what there is).
    let (s, joined) = c.post("/v1/groups/g/members", &json!({"topics": ["t"], "auto_offset_reset": "latest"})).await;
    assert_eq!(s, 200, "{joined}");
    let member = joined["member_id"].as_str().unwrap().to_owned();
    let poll = {
        let c = c.clone();
        tokio::spawn(async move { c.get(&format!("/v1/groups/g/members/{member}/records?timeout_ms=60000")).await })
    };

    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let c = c.clone();
        producers.push(tokio::spawn(async move {
            let records: Vec<_> =
                (0..RECORDS_PER_REQUEST).map(|i| json!({"value": format!("p{p}-r{i}"), "partition": p % 2})).collect();
            c.post("/v1/topics/t/records", &json!({ "records": records })).await
        }));
    }
    // Wait until the agent holds every request (none can be answered before
    // the drain), so the signal lands with all of them in flight.
    let all: usize = (0..PRODUCERS)
        .flat_map(|p| (0..RECORDS_PER_REQUEST).map(move |i| format!("p{p}-r{i}")))
        .map(|v| floe_broker::Record { key: None, value: v.into(), timestamp: 0, headers: Vec::new() }.buffered_bytes())
        .sum();
    let mut held = 0;
    for _ in 0..600 {
        held = c.get("/v1/stats").await.1["writer"]["held_bytes"].as_u64().unwrap() as usize;
        if held >= all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(held, all, "the agent holds every request");

    let status = tokio::task::spawn_blocking(move || a.terminate()).await.unwrap();
    assert!(status.success(), "a drained agent exits cleanly: {status}");

    let (s, polled) = poll.await.unwrap();
    assert_eq!(s, 200, "a long-poll open at SIGTERM is answered: {polled}");

    let mut acked = Vec::new();
    for (p, producer) in producers.into_iter().enumerate() {
        let (status, body) = producer.await.unwrap();
        assert_eq!(status, 200, "a request in flight at SIGTERM is answered: {body}");
        for (i, o) in body["offsets"].as_array().unwrap().iter().enumerate() {
            acked.push((o["partition"].as_u64().unwrap(), o["offset"].as_u64().unwrap(), format!("p{p}-r{i}")));
        }
    }
    assert_eq!(acked.len(), PRODUCERS * RECORDS_PER_REQUEST);

    // A fresh agent on the same bucket finds every acknowledged record where it was acknowledged.
    let b = AgentProc::start(&store, &env, &["--compactor", "off"]);
    let c = b.client();
    for (partition, offset, value) in acked {
        let (status, body) =
            c.get(&format!("/v1/topics/t/partitions/{partition}/records?offset={offset}&max_records=1")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["records"][0]["value"], json!(value), "{partition}/{offset}: {body}");
    }
}
