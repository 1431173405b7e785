//! The spool on real processes: `acks=local` answered while the store is
//! away, `kill -9`, and a restart on the same spool committing each
//! acknowledged record exactly once; and bad spool directories refused at start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{AgentProc, Backend, code, fresh_store};
use serde_json::json;

/// The first agent's store goes away this long after it starts (time for
/// start-up and a topic), and stays away.
const OUTAGE_AFTER_MS: u64 = 6_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_acknowledged_locally_survive_kill_9_and_are_committed_once_in_order() {
    let (store, env, _dir) = fresh_store(Backend::Dir).expect("a local directory");
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_str().unwrap();
    let started = Instant::now();
    let outage = format!("{OUTAGE_AFTER_MS}:600000");
    let a = AgentProc::start(
        &store,
        &env,
        &["--spool-dir", spool_dir, "--test-store-outage", &outage, "--compactor", "off"],
    );
    let c = a.client();
    c.create_topic("t", 1).await;
    let committed_before = c.produce("t", json!([{"value": "before"}])).await;
    assert_eq!(committed_before, vec![(0, 0)]);
    // Set-up, not a timing assertion: wait for the store to go away.
    tokio::time::sleep(Duration::from_millis(OUTAGE_AFTER_MS + 500).saturating_sub(started.elapsed())).await;

    let mut flushes = Vec::new();
    for n in 0..5 {
        let records = json!({"records": [{"value": format!("local-{n}-a")}, {"value": format!("local-{n}-b")}]});
        let (status, body) = c.post("/v1/topics/t/records?acks=local", &records).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["acks"], "local", "{body}");
        assert!(body.get("offsets").is_none(), "no offsets before the commit: {body}");
        flushes.push((body["flush"]["spool"].as_str().unwrap().to_owned(), body["flush"]["seq"].as_u64().unwrap()));
    }
    assert!(flushes.windows(2).all(|w| w[0].0 == w[1].0 && w[0].1 < w[1].1), "one spool, in order: {flushes:?}");
    // A committed-mode request waits for the store (its outcome stays unknown to this client).
    let waiting = c
        .http
        .post(format!("{}/v1/topics/t/records", c.base))
        .json(&json!({"records": [{"value": "committed-during-outage"}]}))
        .timeout(Duration::from_millis(1500))
        .send()
        .await;
    assert!(waiting.is_err(), "no answer while the store is away: {waiting:?}");
    let (status, stats) = c.get("/v1/stats").await;
    assert_eq!(status, 200);
    assert!(stats["writer"]["spool"]["held_bytes"].as_u64().unwrap() > 0, "{stats}");
    a.kill9();

    let b = AgentProc::start(&store, &env, &["--spool-dir", spool_dir, "--compactor", "off"]);
    let c = b.client();
    let expected: Vec<String> = std::iter::once("before".to_owned())
        .chain((0..5).flat_map(|n| [format!("local-{n}-a"), format!("local-{n}-b")]))
        .collect();
    let mut values = Vec::new();
    for _ in 0..600 {
        values =
            c.read_all("t", 0, 0).await.iter().map(|r| r["value"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        if values.len() > expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(values[..expected.len()], expected[..], "each acknowledged record once, in order");
    // The unanswered request was spooled too: replayed once, after the others.
    assert_eq!(values[expected.len()..], ["committed-during-outage".to_owned()]);
    let (_, stats) = c.get("/v1/stats").await;
    assert_eq!(stats["writer"]["spool"]["held_bytes"], 0, "the spool drained: {stats}");
    for (spool, seq) in &flushes {
        let (status, body) = c.get(&format!("/v1/flushes/{spool}/{seq}")).await;
        assert_eq!((status, &body["committed"]), (200, &json!(true)), "{body}");
    }
    let (status, body) = c.get(&format!("/v1/flushes/{}/{}", flushes[0].0, 1000)).await;
    assert_eq!((status, &body["committed"]), (200, &json!(false)), "a flush not committed yet: {body}");
    let (status, body) = c.get("/v1/flushes/not-a-ulid/1").await;
    assert_eq!((status, code(&body)), (400, "invalid_path"), "{body}");
}

#[tokio::test]
async fn acks_local_without_a_spool_is_a_clear_400() {
    let (store, env, _dir) = fresh_store(Backend::Dir).expect("a local directory");
    let a = AgentProc::start(&store, &env, &[]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let (status, body) = c.post("/v1/topics/t/records?acks=local", &json!({"records": [{"value": "x"}]})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "invalid_query");
    assert!(body["error"]["message"].as_str().unwrap().contains("--spool-dir"), "{body}");
    let (status, body) = c.post("/v1/topics/t/records?acks=sometimes", &json!({"records": [{"value": "x"}]})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "invalid_query");
    assert!(c.read_all("t", 0, 0).await.is_empty(), "nothing was written");
}

/// A spool directory that is missing, or already in use by another agent,
/// stops the agent at start with a message naming it.
#[test]
fn a_bad_spool_directory_is_a_start_up_error() {
    let (store, _env, _dir) = fresh_store(Backend::Dir).expect("a local directory");
    let spool = tempfile::tempdir().unwrap();
    let missing = spool.path().join("missing");
    let run = |dir: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_floe-agent"))
            .args(["--listen", "127.0.0.1:0", "--store", &store, "--spool-dir", dir.to_str().unwrap()])
            .env("FLOE_LOG", "error")
            .output()
            .expect("run floe-agent")
    };
    let out = run(&missing);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist") && stderr.contains("missing"), "{stderr}");

    let _holder = AgentProc::start(&store, &[], &["--spool-dir", spool.path().to_str().unwrap()]);
    let out = run(spool.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another agent"), "{stderr}");
}
