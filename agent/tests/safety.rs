//! Regression tests for the safety holes found by reviewing the commit path
//! and probing a running agent from outside. Each is named after its hole.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::{AgentProc, code};
use serde_json::{Value, json};

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

/// Hole 2: agent-to-agent routes refuse callers without the cluster's
/// credentials, even on the agent that holds the commit lease, and write nothing.
#[tokio::test]
async fn hole2_internal_routes_refuse_plain_clients() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&store_url(&dir), &[], &["--commit-lease", "--compactor", "off"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let mut held = false;
    for _ in 0..100 {
        if c.get("/v1/stats").await.1["lease"]["holder_url"].as_str() == Some(a.url.as_str()) {
            held = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(held, "the lone agent holds the commit lease");
    let made_up = json!({"ops": [{"op": "append", "segment": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "batches": [{"topic": "t", "partition": 0, "pos": 8, "len": 40, "records": 1, "max_timestamp": 5}]}]});
    let truncate = json!({"ops": [{"op": "truncate", "topic": "t", "partition": 0, "log_start_offset": 0}]});
    let lease = json!({"kind": "join", "topics": ["t"], "session_timeout_ms": 10000, "auto_offset_reset": "earliest"});
    let before = puts(&c).await;
    for (path, body) in
        [("/internal/v1/commit", &made_up), ("/internal/v1/commit", &truncate), ("/internal/v2/groups/g", &lease)]
    {
        let (s, b) = c.post(path, body).await;
        assert_eq!((s, code(&b)), (401, "unauthenticated"), "{path}: {b}");
        let r = c
            .http
            .post(format!("{}{path}", c.base))
            .header("authorization", "Floe-Internal 00000000000000000000000000000000")
            .header("x-floe-cluster", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .header("x-floe-expected-holder", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path} with a guessed secret");
    }
    assert_eq!(puts(&c).await, before, "nothing was written");
    let (s, topic) = c.get("/v1/topics/t").await;
    assert_eq!((s, topic["partitions"][0]["high_watermark"].as_u64()), (200, Some(0)));
}

/// Hole 8: probes from outside that wrote to the log or were accepted.
#[tokio::test]
async fn hole8_unknown_members_offsets_noop_patches_and_bad_records_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&store_url(&dir), &[], &["--compactor", "off"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    c.produce("t", json!([{"value": "a", "partition": 0}, {"value": "b", "partition": 0}])).await;
    let before = puts(&c).await;
    // A heartbeat or leave for a member of a group nobody joined.
    let (s, b) = c.post("/v1/groups/nobody-joined/members/ghost/heartbeat", &json!({})).await;
    assert_eq!((s, code(&b)), (409, "unknown_member"), "{b}");
    let r = c.http.delete(format!("{}/v1/groups/other-group/members/ghost", c.base)).send().await.unwrap();
    assert_eq!(r.status(), 409);
    // A PATCH that changes nothing.
    let r = c.http.patch(format!("{}/v1/topics/t", c.base)).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Negative timestamps and a producer stamp on an NDJSON line.
    let (s, b) = c.post("/v1/topics/t/records", &json!({"records": [{"value": "x", "timestamp": -5}]})).await;
    assert_eq!((s, code(&b)), (400, "invalid_timestamp"), "{b}");
    let ndjson = "{\"value\":\"x\",\"producer\":{\"id\":0,\"epoch\":0,\"sequence\":0}}\n";
    let r = c.post_ndjson("/v1/topics/t/records", ndjson).await;
    assert_eq!(r.status(), 400, "a producer field on an NDJSON line is refused, not ignored");
    // Internal group routes validate like public ones (an unauthenticated call is refused first).
    let (s, _) = c.get("/v1/groups/g/members/m/records?timeout_ms=18446744073709551615").await;
    assert_eq!(s, 400);
    assert_eq!(puts(&c).await, before, "none of these wrote anything");

    // Offset commits for unknown partitions or beyond the high watermark.
    let (s, joined) = c.post("/v1/groups/g/members", &json!({"topics": ["t"], "auto_offset_reset": "none"})).await;
    assert_eq!(s, 200, "{joined}");
    let (id, generation) = (joined["member_id"].as_str().unwrap(), joined["generation"].as_u64().unwrap());
    let commit = |topic: &str, partition: u32, offset: u64| json!({"member_id": id, "generation": generation, "offsets": [{"topic": topic, "partition": partition, "offset": offset}]});
    let (s, b) = c.post("/v1/groups/g/offsets", &commit("missing", 0, 1)).await;
    assert_eq!((s, code(&b)), (404, "topic_not_found"));
    let (s, b) = c.post("/v1/groups/g/offsets", &commit("t", 7, 1)).await;
    assert_eq!((s, code(&b)), (404, "partition_not_found"));
    let (s, b) = c.post("/v1/groups/g/offsets", &commit("t", 0, 3)).await;
    assert_eq!((s, code(&b)), (400, "offset_out_of_range"));
    let (_, offsets) = c.get("/v1/groups/g/offsets").await;
    assert_eq!(offsets["offsets"], json!([]), "nothing was stored");
}

/// Hole 8: with `auto_offset_reset: none`, a committed offset that retention
/// has passed is an error, as in Kafka, not a silent restart from the earliest.
#[tokio::test]
async fn hole8_reset_none_with_an_out_of_range_offset_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&store_url(&dir), &[], &["--compaction-interval-ms", "100"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    c.produce("t", json!([{"value": "a", "partition": 0}])).await;
    let (s, joined) = c.post("/v1/groups/g/members", &json!({"topics": ["t"], "auto_offset_reset": "none"})).await;
    assert_eq!(s, 200, "{joined}");
    let id = joined["member_id"].as_str().unwrap().to_owned();
    let commit = json!({"member_id": id, "generation": joined["generation"], "offsets": [{"topic": "t", "partition": 0, "offset": 0}]});
    assert_eq!(c.post("/v1/groups/g/offsets", &commit).await.0, 200);
    let r = c.http.patch(format!("{}/v1/topics/t", c.base)).json(&json!({"retention_bytes": 1})).send().await;
    assert_eq!(r.unwrap().status(), 200);
    c.produce("t", json!([{"value": "b", "partition": 0}])).await;
    let mut truncated = false;
    for _ in 0..200 {
        if c.get("/v1/topics/t").await.1["partitions"][0]["log_start_offset"].as_u64() > Some(0) {
            truncated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(truncated, "retention moved the log start past the committed offset");
    let (s, b) = c.get(&format!("/v1/groups/g/members/{id}/records?timeout_ms=0")).await;
    assert_eq!((s, code(&b)), (416, "offset_out_of_range"), "{b}");
}

/// Runs an agent that is expected to exit by itself; `None` if it was still
/// running after 30 s (it is killed then). Returns its success and stderr.
fn run_to_exit(mut command: std::process::Command) -> Option<(bool, String)> {
    use std::io::Read;
    let mut child = command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return Some((status.success(), stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn agent_command(store: &str, extra: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_floe-agent"));
    c.args(["--listen", "127.0.0.1:0", "--store", store]).args(extra).env("FLOE_LOG", "warn");
    c
}

/// Hole 6: a log entry that does not decode (a torn write on a store without
/// fsync) stops every agent with an error naming the key and the recovery
/// procedure, instead of retrying forever; a new agent refuses to start.
#[tokio::test]
async fn hole6_an_undecodable_log_entry_stops_the_agent_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let mut running = agent_command(&store, &["--compactor", "off", "--log-poll-ms", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once the agent serves, write a torn entry at the next log position.
    let stdout = running.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the agent started");
    assert!(line.starts_with("floe-agent listening on"), "{line}");
    let log_dir = dir.path().join("log");
    let last = std::fs::read_dir(&log_dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok()).max().unwrap_or(0))
        .unwrap_or(0);
    let next = last + 1;
    std::fs::create_dir_all(&log_dir).unwrap();
    std::fs::write(log_dir.join(format!("{next:020}")), b"{\"format\":1,\"commit_id\":").unwrap();
    let mut status = None;
    for _ in 0..200 {
        status = running.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = running.kill();
    let status = status.expect("the running agent stopped by itself");
    assert!(!status.success());

    let (success, stderr) = run_to_exit(agent_command(&store, &[])).expect("a new agent refuses to start");
    assert!(!success);
    assert!(stderr.contains(&format!("log/{next:020}")) && stderr.contains("docs/recovery.md"), "{stderr}");
}

/// Hole 10: an agent must not advertise an address no other agent can reach.
#[tokio::test]
async fn hole10_an_unusable_advertise_url_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let command = agent_command(&store_url(&dir), &["--advertise-url", "http://0.0.0.0:8080"]);
    let (success, stderr) = run_to_exit(command).expect("the agent refuses to start");
    assert!(!success && stderr.contains("--advertise-url"), "{stderr}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "refused before touching the bucket");
}

/// Hole 9: a corrupt or missing segment is a permanent error: 500 with a
/// stable code, no `Retry-After`, and no server path in the message.
#[tokio::test]
async fn hole9_corrupt_and_missing_data_are_not_retryable_and_hide_paths() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    {
        let a = AgentProc::start(&store, &[], &["--compactor", "off"]);
        let c = a.client();
        c.create_topic("t", 2).await;
        c.produce("t", json!([{"value": "zero", "partition": 0}])).await;
        c.produce("t", json!([{"value": "one", "partition": 1}])).await;
    }
    let mut segments: Vec<std::path::PathBuf> =
        std::fs::read_dir(dir.path().join("segments")).unwrap().map(|e| e.unwrap().path()).collect();
    segments.sort();
    assert_eq!(segments.len(), 2);
    // Flip a byte inside the first segment's batch (the CRC catches it); delete the second.
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segments[0], bytes).unwrap();
    std::fs::remove_file(&segments[1]).unwrap();

    let a = AgentProc::start(&store, &[], &["--compactor", "off"]);
    let c = a.client();
    let root = dir.path().display().to_string();
    for (partition, expected) in [(0, "corrupt_data"), (1, "data_missing")] {
        let r =
            c.http.get(format!("{}/v1/topics/t/partitions/{partition}/records?offset=0", c.base)).send().await.unwrap();
        assert_eq!(r.status(), 500);
        assert!(r.headers().get("retry-after").is_none(), "a retry cannot fix it");
        let body: Value = r.json().await.unwrap();
        assert_eq!(code(&body), expected, "{body}");
        assert!(!body.to_string().contains(&root), "no server paths: {body}");
    }
}

/// `/readyz` is open without a token by default: when the store fails it
/// says so, without the store's own error text (paths, URLs).
#[tokio::test]
async fn readyz_says_the_store_failed_without_its_paths() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&store_url(&dir), &[], &["--compactor", "off"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    assert_eq!(c.get("/readyz").await.0, 200);
    // A symbolic link to itself where the next log entry would be: reading it fails.
    let next = (1..100u64).map(|seq| dir.path().join(format!("log/{seq:020}"))).find(|p| !p.exists()).unwrap();
    std::os::unix::fs::symlink(&next, &next).unwrap();
    let (status, body) = c.get("/readyz").await;
    assert_eq!((status, code(&body)), (503, "not_ready"), "{body}");
    let root = dir.path().display().to_string();
    assert!(!body.to_string().contains(&root), "no server paths: {body}");
    assert!(!body.to_string().contains("log/0"), "no store keys: {body}");
}

/// Hole 5: one node with a fast clock used to drag the log clock a minute
/// ahead, after which every other node's uploads were refused as too old. A
/// node whose clock is off from the store's stops committing and says so;
/// the others go on.
#[tokio::test]
async fn hole5_one_fast_clock_does_not_stall_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let good = AgentProc::start(&store, &[], &["--compactor", "off"]);
    let (g, _) = (good.client(), ());
    g.create_topic("t", 1).await;
    for offset in ["60000", "-60000"] {
        let skewed =
            AgentProc::start(&store, &[("FLOE_TEST_CLOCK_OFFSET_MS", offset.to_owned())], &["--compactor", "off"]);
        let s = skewed.client();
        let (status, ready) = s.get("/readyz").await;
        assert_eq!((status, code(&ready)), (503, "clock_skew"), "{ready}");
        let (status, refused) =
            s.post("/v1/topics/t/records", &json!({"records": [{"value": "from the skewed node"}]})).await;
        assert_eq!((status, code(&refused)), (503, "clock_skew"), "{refused}");
        let (_, stats) = s.get("/v1/stats").await;
        let measured = stats["clock"]["offset_ms"].as_i64().unwrap();
        assert!((measured - offset.parse::<i64>().unwrap()).abs() < 5_000, "measured {measured} ms");
        // The healthy node still commits: the log clock was not dragged along.
        g.produce("t", json!([{"value": format!("after a node {offset} ms off")}])).await;
    }
    assert_eq!(values(&g.read_all("t", 0, 0).await).len(), 2);
    assert_eq!(g.get("/readyz").await.0, 200);
}
