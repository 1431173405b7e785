//! The foundation's acceptance, end to end through real agent processes:
//! 5,000 keyed records in 50 requests over 3 partitions, all read back dense
//! and in key order; then `kill -9`, a fresh agent on the same store, the same
//! records, and offsets that continue without a gap. Run on a local directory
//! and, when the test script provides one, on an S3-protocol server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;

use common::AgentProc;
use floe_broker::testing::S3Target;
use serde_json::{Value, json};

const REQUESTS: u64 = 50;
const PER_REQUEST: u64 = 100;
const KEYS: u64 = 37;

type Acked = BTreeMap<(u64, u64), (String, String)>;

async fn produce_all(agent: &AgentProc) -> Acked {
    let c = agent.client();
    c.create_topic("orders", 3).await;
    let mut acked = Acked::new();
    for req in 0..REQUESTS {
        let records: Vec<Value> = (0..PER_REQUEST)
            .map(|i| {
                let n = req * PER_REQUEST + i;
                json!({"key": format!("k{}", n % KEYS), "value": format!("v{n}"), "headers": {"n": n.to_string()}})
            })
            .collect();
        let offsets = c.produce("orders", Value::Array(records.clone())).await;
        assert_eq!(offsets.len(), records.len());
        for (r, at) in records.iter().zip(offsets) {
            let kv = (r["key"].as_str().unwrap().to_owned(), r["value"].as_str().unwrap().to_owned());
            assert!(acked.insert(at, kv).is_none(), "offset {at:?} acknowledged twice");
        }
    }
    acked
}

/// Reads every partition; checks dense offsets, every ack present, per-key order.
async fn check_all(agent: &AgentProc, acked: &Acked) -> [u64; 3] {
    let c = agent.client();
    let mut ends = [0u64; 3];
    let mut key_partition: BTreeMap<String, u64> = BTreeMap::new();
    for p in 0..3u64 {
        let records = c.read_all("orders", p, 0).await;
        let mut last_seen: BTreeMap<String, u64> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            let offset = r["offset"].as_u64().unwrap();
            assert_eq!(offset, i as u64, "partition {p}: offsets dense from 0");
            let key = r["key"].as_str().unwrap().to_owned();
            let value = r["value"].as_str().unwrap().to_owned();
            assert_eq!(acked.get(&(p, offset)), Some(&(key.clone(), value.clone())), "partition {p} offset {offset}");
            let n: u64 = value[1..].parse().unwrap();
            assert_eq!(r["headers"]["n"], json!(n.to_string()));
            if let Some(prev) = last_seen.insert(key.clone(), n) {
                assert!(prev < n, "key {key}: per-key order kept");
            }
            assert_eq!(*key_partition.entry(key).or_insert(p), p, "one key, one partition");
        }
        ends[p as usize] = records.len() as u64;
        let (_, meta) = c.get("/v1/topics/orders").await;
        assert_eq!(meta["partitions"][p as usize]["high_watermark"], json!(records.len()));
    }
    assert_eq!(ends.iter().sum::<u64>(), acked.len() as u64, "every acknowledged record is there");
    ends
}

async fn survives_kill_9(store: &str, env: &[(&str, String)]) {
    let first = AgentProc::start(store, env, &[]);
    let acked = produce_all(&first).await;
    assert_eq!(acked.len() as u64, REQUESTS * PER_REQUEST);
    check_all(&first, &acked).await;
    first.kill9();

    let second = AgentProc::start(store, env, &[]);
    let ends = check_all(&second, &acked).await;
    let c = second.client();
    for p in 0..3u64 {
        let at = c.produce("orders", json!([{"value": "after restart", "partition": p}])).await;
        assert_eq!(at, vec![(p, ends[p as usize])], "offsets continue without a gap");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    survives_kill_9(&format!("file://{}", dir.path().display()), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_protocol_survives_kill_9() {
    let Some(s3) = S3Target::from_env() else { return };
    let (store, env) = s3.agent_store(&s3.fresh_prefix());
    survives_kill_9(&store, &env).await;
}

/// A writer killed between writing an object's staging file and publishing
/// it leaves `<key>#<n>` behind, which no listing shows and so no
/// compaction removes. An agent starting on the directory removes those
/// older than an hour, and not younger ones (perhaps a PUT in progress).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_starting_removes_the_staging_files_a_crash_left() {
    let dir = tempfile::tempdir().unwrap();
    let segments = dir.path().join("segments");
    std::fs::create_dir_all(&segments).unwrap();
    let (left, young) =
        (segments.join("01JCRASHED0000000000000000.seg#1"), segments.join("01JWRITING0000000000000000.seg#1"));
    for path in [&left, &young] {
        std::fs::write(path, vec![0u8; 4096]).unwrap();
    }
    let hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    std::fs::File::options().write(true).open(&left).unwrap().set_modified(hours_ago).unwrap();

    let a = AgentProc::start(&format!("file://{}", dir.path().display()), &[], &["--compactor", "off"]);
    let mut gone = false;
    for _ in 0..200 {
        if !left.exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the crash's staging file is removed");
    assert!(young.exists(), "a young one is left alone");
    a.client().create_topic("t", 1).await;
}
