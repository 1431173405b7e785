//! Clients that stall cannot hold an agent: a request whose body stops
//! arriving is answered 408 and its connection closed, while other clients
//! go on being served. Every request carries an id, echoed back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::AgentProc;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STALLED: usize = 500;

/// An agent with `extra` flags on a fresh local directory, and the
/// directory, which must outlive it.
fn started(extra: &[&str]) -> (tempfile::TempDir, AgentProc) {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&format!("file://{}", dir.path().display()), &[], extra);
    (dir, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stalled_mid_body_are_closed_while_others_are_served() {
    let (_dir, a) = started(&["--compactor", "off", "--request-body-timeout-ms", "500"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let addr = c.base.trim_start_matches("http://").to_owned();

    // Each promises 1,000 bytes of body, sends a few, and stops.
    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let head = "POST /v1/topics/t/records HTTP/1.1\r\nHost: floe\r\nContent-Type: application/json\r\n\
                    Content-Length: 1000\r\n\r\n{\"records\":[";
        s.write_all(head.as_bytes()).await.unwrap();
        stalled.push(s);
    }

    // Meanwhile others are served.
    let offsets = c.produce("t", json!([{"value": "still served", "partition": 0}])).await;
    assert_eq!(offsets, vec![(0, 0)]);
    assert_eq!(c.read_all("t", 0, 0).await.len(), 1);

    // Every stalled connection gets its 408 and is closed (a bound, not a timing).
    let closed = futures::future::join_all(stalled.into_iter().map(|mut s| async move {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut answer)).await;
        (read.is_ok_and(|r| r.is_ok()), String::from_utf8_lossy(&answer).into_owned())
    }))
    .await;
    let still_open = closed.iter().filter(|(eof, _)| !eof).count();
    assert_eq!(still_open, 0, "every stalled connection is closed");
    for (_, answer) in &closed {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
    // Nothing of theirs was written.
    assert_eq!(c.read_all("t", 0, 0).await.len(), 1);
}

/// The body timeout bounds the whole body, not the wait for each of its
/// chunks: a client that trickles its body a byte at a time, each byte well
/// within the timeout, still gets its 408 and holds its reservation no
/// longer than the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_in_small_chunks_still_has_to_arrive_in_time() {
    let (_dir, a) = started(&["--compactor", "off", "--request-body-timeout-ms", "500"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let addr = c.base.trim_start_matches("http://").to_owned();

    // A valid body, padded to take 150 bytes: sent whole, it would be written.
    let body = format!("{:<150}", r#"{"records":[{"value":"trickled","partition":0}]}"#);
    let head = format!(
        "POST /v1/topics/t/records HTTP/1.1\r\nHost: floe\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut sent = 0;
    for byte in body.as_bytes() {
        // A byte every 50 ms: ten times within the timeout; 7.5 s for the whole body.
        if s.write_all(std::slice::from_ref(byte)).await.is_err() {
            break;
        }
        sent += 1;
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "after {sent} of {} bytes: {answer}", body.len());
    assert!(sent < body.len(), "answered before the whole body was sent");
    assert!(c.read_all("t", 0, 0).await.is_empty(), "nothing of it was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stalled_mid_headers_are_closed() {
    let (_dir, a) = started(&["--compactor", "off", "--request-header-timeout-ms", "500"]);
    let c = a.client();
    let addr = c.base.trim_start_matches("http://").to_owned();
    // Part of an HTTP/1 head; nothing at all; part of the HTTP/2 preface
    // (before which the server cannot tell which protocol it speaks).
    let starts: [&[u8]; 3] = [b"POST /v1/topics/t/records HTTP/1.1\r\nHost: floe\r\n", b"", b"PRI * HTTP/2.0"];
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(starts[i % starts.len()]).await.unwrap();
        stalled.push(s);
    }
    assert_eq!(c.get("/healthz").await.0, 200, "others are served meanwhile");
    let closed = futures::future::join_all(stalled.into_iter().map(|mut s| async move {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut rest)).await.is_ok()
    }))
    .await;
    assert_eq!(closed.iter().filter(|c| !**c).count(), 0, "every connection stalled mid-headers is closed");
}

/// An HTTP/2 connection to `addr` (prior knowledge, no TLS), and a task
/// that ends when the agent closes it: with `true` for a clean close.
async fn http2(addr: &str) -> (hyper::client::conn::http2::SendRequest<String>, tokio::task::JoinHandle<bool>) {
    http2_by(addr, &Http2Builder::new(hyper_util::rt::TokioExecutor::new())).await
}

type Http2Builder = hyper::client::conn::http2::Builder<hyper_util::rt::TokioExecutor>;

/// The same, with the client's settings in `builder`.
async fn http2_by(
    addr: &str,
    builder: &Http2Builder,
) -> (hyper::client::conn::http2::SendRequest<String>, tokio::task::JoinHandle<bool>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = builder.handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    (sender, tokio::spawn(async move { connection.await.is_ok() }))
}

/// Whether `closed` (from [`http2`]) ends, cleanly, within a minute.
async fn closed_cleanly(closed: tokio::task::JoinHandle<bool>) -> bool {
    matches!(tokio::time::timeout(Duration::from_secs(60), closed).await, Ok(Ok(true)))
}

async fn send(
    sender: &mut hyper::client::conn::http2::SendRequest<String>,
    path: &str,
    accept: &str,
) -> hyper::Response<hyper::body::Incoming> {
    let request =
        hyper::Request::get(format!("http://floe{path}")).header("accept", accept).body(String::new()).unwrap();
    sender.send_request(request).await.unwrap()
}

async fn get(sender: &mut hyper::client::conn::http2::SendRequest<String>, path: &str) -> u16 {
    send(sender, path, "application/json").await.status().as_u16()
}

/// HTTP/2 connections left idle are closed (with a GOAWAY), as HTTP/1's are
/// by the header timeout: a client cannot keep them open for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed() {
    let (_dir, a) = started(&["--compactor", "off", "--request-header-timeout-ms", "500"]);
    let c = a.client();
    let addr = c.base.trim_start_matches("http://").to_owned();
    let (never_asked, closed_first) = http2(&addr).await;
    let (mut asked, closed_second) = http2(&addr).await;
    assert_eq!(get(&mut asked, "/healthz").await, 200);
    for (which, closed) in [("with no request", closed_first), ("after its request", closed_second)] {
        assert!(closed_cleanly(closed).await, "an idle HTTP/2 connection {which} is closed");
    }
    drop(never_asked);
    assert_eq!(c.get("/healthz").await.0, 200, "others are served meanwhile");
}

/// A client that opens HTTP/2 and then never reads nor answers the PING
/// that comes with the GOAWAY is still disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_client_that_ignores_the_goaway_is_disconnected() {
    let (_dir, a) = started(&["--compactor", "off", "--request-header-timeout-ms", "500"]);
    let c = a.client();
    let mut s = TcpStream::connect(c.base.trim_start_matches("http://")).await.unwrap();
    // The preface and an empty SETTINGS frame (length 0, type 4, no flags, stream 0).
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the connection is closed");
}

/// A request in flight keeps its HTTP/2 connection open past the idle
/// timeout: a long-poll (or a live tail) is not idleness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_with_a_request_in_flight_is_not_idle() {
    let (_dir, a) = started(&["--compactor", "off", "--request-header-timeout-ms", "1000"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let addr = c.base.trim_start_matches("http://").to_owned();
    let (mut sender, closed) = http2(&addr).await;
    let poll = tokio::spawn({
        let mut sender = sender.clone();
        async move { get(&mut sender, "/v1/topics/t/partitions/0/records?timeout_ms=5000").await }
    });
    // Twice the idle timeout into the long-poll, the connection still takes requests.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!poll.is_finished(), "the long-poll is still waiting");
    assert_eq!(get(&mut sender, "/healthz").await, 200);
    assert_eq!(poll.await.unwrap(), 200);

    // A live tail's request is in flight for as long as its answer streams.
    let tail = send(&mut sender, "/v1/topics/t/partitions/0/records", "text/event-stream").await;
    assert_eq!(tail.status(), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get(&mut sender, "/healthz").await, 200, "the connection still takes requests");
    drop(tail);
    // Still held: the agent, not this client, closes the connection.
    assert!(closed_cleanly(closed).await, "closed once idle");
    drop(sender);
}

/// Sends one HTTP/1.1 request on `s` (kept alive) and reads its answer:
/// the status and the JSON body.
async fn exchange(s: &mut TcpStream, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: floe\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed mid-answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        let Some(end) = text.find("\r\n\r\n") else { continue };
        let status: u16 = text[9..12].parse().unwrap();
        let length: Option<usize> = text[..end]
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()));
        match length {
            Some(length) if answer.len() >= end + 4 + length => {
                return (status, serde_json::from_slice(&answer[end + 4..end + 4 + length]).unwrap());
            }
            Some(_) => {}
            // A fetch answer, written as it is read.
            None => {
                if let (_, Some(body)) = chunked_answer(&answer) {
                    return (status, serde_json::from_slice(&body).unwrap());
                }
            }
        }
    }
}

/// Connections beyond `--max-connections` (by default half the open-file
/// limit) wait unaccepted, so clients holding many long-polls open cannot
/// take the file descriptors the local store needs to write segments:
/// another client's produce is still written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_cannot_take_the_file_descriptors_the_store_needs() {
    const OPEN_FILES: u32 = 256;
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().display());
    let a = AgentProc::start_with_open_files(OPEN_FILES, &store, &[], &["--compactor", "off"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    c.create_topic("quiet", 1).await;
    let addr = c.base.trim_start_matches("http://").to_owned();
    // The producer's connection is open before the others come.
    let mut producer = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(exchange(&mut producer, "GET", "/healthz", "").await.0, 200);
    let poll = "GET /v1/topics/quiet/partitions/0/records?offset=0&timeout_ms=5000 HTTP/1.1\r\nHost: floe\r\n\r\n";
    let mut polls = Vec::new();
    for _ in 0..OPEN_FILES + 44 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(poll.as_bytes()).await.unwrap();
        polls.push(s);
    }
    // Long enough for the agent to accept all it will (the polls wait 5 s).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, stats) = exchange(&mut producer, "GET", "/v1/stats", "").await;
    let (open, limit) = (stats["connections"]["open"].as_u64(), stats["connections"]["limit"].as_u64());
    assert_eq!(limit, Some(u64::from(OPEN_FILES) / 2), "{stats}");
    // An eighth of them (16) is kept for other agents and health checks.
    assert!(open.is_some_and(|open| (112..=128).contains(&open)), "every client's slot taken: {stats}");

    let record = json!({"records": [{"value": "still written"}]}).to_string();
    let (status, body) = exchange(&mut producer, "POST", "/v1/topics/t/records", &record).await;
    assert_eq!(status, 200, "{body}");
    // Read on the same connection: every client's slot is taken, and a
    // pooled client may open a new connection for its next request (before
    // its last one is back in the pool), which would get a reserved slot.
    let (status, body) = exchange(&mut producer, "GET", "/v1/topics/t/partitions/0/records?offset=0", "").await;
    assert_eq!((status, body["records"].as_array().map(Vec::len)), (200, Some(1)), "{body}");

    // Meanwhile a new connection is served a health check (on a slot of the
    // reserve), and refused a client's request.
    let mut probe = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(exchange(&mut probe, "GET", "/readyz", "").await.0, 200);
    let (status, body) = exchange(&mut probe, "GET", "/v1/topics", "").await;
    assert_eq!((status, common::code(&body)), (503, "overloaded"), "{body}");

    drop(polls);
    // A new client, retrying its 503s as told, is served once the others' slots free.
    let fresh = a.client();
    let mut statuses = Vec::new();
    for _ in 0..120 {
        let (status, _) = fresh.get("/v1/topics").await;
        statuses.push(status);
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
}

/// A connection on a slot kept for agents and health checks that sends
/// nothing, or only part of a request, gives it back within seconds, not
/// the header timeout: health checks that come after are served while
/// every client's slot stays taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_does_not_hold_a_reserved_slot() {
    // Sixteen slots: fourteen for clients, two kept; a head may take two minutes.
    let (_dir, a) =
        started(&["--compactor", "off", "--max-connections", "16", "--request-header-timeout-ms", "120000"]);
    let addr = a.client().base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..15 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // The last reserved slot: a request head begun (past the first bytes) and never ended.
    let mut partial = TcpStream::connect(&addr).await.unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: floe\r\nX-Padding: ").await.unwrap();
    held.push(partial);
    let probes = (0..2).map(|_| {
        let addr = addr.clone();
        async move {
            let mut probe = TcpStream::connect(&addr).await.unwrap();
            let served = tokio::time::timeout(Duration::from_secs(60), exchange(&mut probe, "GET", "/healthz", ""));
            // Kept open: each probe holds its slot, so both must be given back.
            (served.await.map(|(status, _)| status).ok(), probe)
        }
    });
    let (served, probes): (Vec<_>, Vec<_>) = futures::future::join_all(probes).await.into_iter().unzip();
    assert_eq!(served, [Some(200), Some(200)], "both reserved slots given back");
    drop((held, probes));
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let (_dir, a) = started(&["--compactor", "off"]);
    let c = a.client();
    let r = c.http.get(format!("{}/healthz", c.base)).header("x-request-id", "mine-42").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "mine-42", "a client's id is echoed");
    let r = c.http.get(format!("{}/v1/topics/nope", c.base)).send().await.unwrap();
    let made = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 26, "one is made where none is given (a ULID): {made}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_sent() {
    let (_dir, a) = started(&["--compactor", "off"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let mut s = TcpStream::connect(c.base.trim_start_matches("http://")).await.unwrap();
    let head = "POST /v1/topics/t/records HTTP/1.1\r\nHost: floe\r\nContent-Type: application/json\r\n\
                Content-Length: 100000000\r\nExpect: 100-continue\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "413 at once, no 100 Continue: {answer}");
    assert!(answer.contains("request_too_large"), "{answer}");

    // Too many records, however small, are refused too (and nothing is written).
    let ndjson: String = (0..100_001).map(|_| "{\"value\":\"x\"}\n").collect();
    let r = c.post_ndjson("/v1/topics/t/records", ndjson).await;
    assert_eq!(r.status(), 400);
    assert_eq!(common::code(&r.json().await.unwrap()), "too_many_records");
    assert!(c.read_all("t", 0, 0).await.is_empty());
}

#[tokio::test]
async fn requests_beyond_the_bound_in_flight_are_told_to_retry() {
    let (_dir, a) = started(&["--compactor", "off", "--max-concurrent-requests", "2"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    // Two long-polls hold both slots for a while.
    let polls: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.get("/v1/topics/t/partitions/0/records?timeout_ms=3000").await.0 })
        })
        .collect();
    let mut refused = None;
    for _ in 0..200 {
        let r = c.http.get(format!("{}/healthz", c.base)).send().await.unwrap();
        if r.status() == 503 {
            refused = Some((r.headers().get("retry-after").cloned(), r.json::<serde_json::Value>().await.unwrap()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (retry_after, body) = refused.expect("a third request is refused while two are in flight");
    assert!(retry_after.is_some());
    assert_eq!(common::code(&body), "overloaded");
    for p in polls {
        assert_eq!(p.await.unwrap(), 200);
    }
    assert_eq!(c.get("/healthz").await.0, 200, "served again once the slots are free");
}

/// A live tail is a request in flight for as long as it streams, not only
/// until its answer's headers are sent.
#[tokio::test]
async fn live_tails_count_against_the_bound_on_requests_in_flight() {
    let (_dir, a) = started(&["--compactor", "off", "--max-concurrent-requests", "2"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let mut tails = Vec::new();
    for _ in 0..2 {
        let tail = c
            .http
            .get(format!("{}/v1/topics/t/partitions/0/records?offset=0", c.base))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(tail.status(), 200);
        tails.push(tail);
    }
    let r = c.http.get(format!("{}/healthz", c.base)).send().await.unwrap();
    assert_eq!(r.status(), 503, "two tails streaming hold both slots");
    assert_eq!(common::code(&r.json::<serde_json::Value>().await.unwrap()), "overloaded");
    drop(tails);
    // The agent notices the closed connections at its next write to them.
    let mut served = false;
    for _ in 0..300 {
        if c.http.get(format!("{}/healthz", c.base)).send().await.unwrap().status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "served again once the tails are gone");
}

/// A misspelt field is a mistake the client should hear about, not a
/// setting silently left at its default: every native request body refuses
/// fields it does not know, and nothing of the request is applied.
#[tokio::test]
async fn unknown_fields_are_refused_and_nothing_is_applied() {
    let (_dir, a) = started(&["--compactor", "off"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let (_, joined) = c.post("/v1/groups/g/members", &json!({"topics": ["t"]})).await;
    let member = joined["member_id"].as_str().unwrap().to_owned();
    let cases = [
        ("/v1/topics", json!({"name": "u", "partition": 3})),
        ("/v1/topics/t/records", json!({"records": [{"value": "x"}], "acks": "all"})),
        ("/v1/topics/t/records", json!({"records": [{"value": "x", "parttion": 0}]})),
        ("/v1/topics/t/records", json!({"records": [{"value": "x"}], "producer": {"id": 1, "epoch": 0, "seq": 0}})),
        ("/v1/producers", json!({"producer": 7})),
        ("/v1/groups/g/members", json!({"topics": ["t"], "session_timeout": 5000})),
        ("/v1/groups/g/offsets", json!({"member_id": member, "generation": 1, "offsets": [], "force": true})),
        (
            "/v1/groups/g/offsets",
            json!({"member_id": member, "generation": 1, "offsets": [{"topic": "t", "partition": 0, "offset": 0, "ofset": 1}]}),
        ),
    ];
    for (path, body) in cases {
        let (s, b) = c.post(path, &body).await;
        assert_eq!(s, 400, "{path} {body}: {b}");
        assert!(b["error"]["message"].as_str().unwrap().contains("unknown field"), "{b}");
    }
    // Nor may fields come as an array in their declared order.
    for (path, body) in [
        ("/v1/topics", json!(["u", 2, null, null])),
        ("/v1/topics/t/records", json!([[{"value": "x"}]])),
        ("/v1/topics/t/records", json!({"records": [[null, "x"]]})),
        ("/v1/groups/g/members", json!([["t"]])),
    ] {
        let (s, b) = c.post(path, &body).await;
        assert_eq!(s, 400, "{path} {body}: {b}");
        assert_eq!(b["error"]["code"], "invalid_json", "{b}");
    }
    let (s, _) = c.get("/v1/topics/u").await;
    assert_eq!(s, 404, "the topic with a misspelt setting was not created");
    assert_eq!(c.read_all("t", 0, 0).await.len(), 0, "no record was written");
    let r = c.http.patch(format!("{}/v1/topics/t", c.base)).json(&json!({"retention_ms": 1000, "retention": 5}));
    assert_eq!(r.send().await.unwrap().status(), 400);
    let (_, topic) = c.get("/v1/topics/t").await;
    assert_ne!(topic["retention_ms"], 1000, "the retention was not changed: {topic}");
}

/// Request bodies count against `--request-memory-bytes` from before they
/// are read until the request is answered: a request whose body does not
/// fit waits, and goes on once the bytes are given back.
#[tokio::test]
async fn request_bodies_are_held_within_their_budget() {
    let (_dir, a) = started(&[
        "--compactor",
        "off",
        "--max-request-bytes",
        "1000",
        "--request-memory-bytes",
        "1000",
        "--request-body-timeout-ms",
        "1000",
    ]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let (_, stats) = c.get("/v1/stats").await;
    let memory = &stats["memory"];
    assert_eq!(memory["request_bodies"], json!({"held_bytes": 0, "budget_bytes": 1000}), "{stats}");
    assert!(memory["rss_bytes"].as_u64().unwrap() > 0, "{stats}");
    assert!(memory["peak_rss_bytes"].as_u64().unwrap() >= memory["rss_bytes"].as_u64().unwrap());
    // Compression's CPU time is there to compare with the process's
    // (Linux): none yet; some once a produce is written (below).
    assert_eq!(stats["compression_cpu_us"].as_u64(), cfg!(target_os = "linux").then_some(0), "{stats}");
    // jemalloc's own figures (the default build's allocator): pages it holds cover what is allocated.
    let (allocated, resident) = (&memory["allocator"]["allocated_bytes"], &memory["allocator"]["resident_bytes"]);
    assert!(allocated.as_u64().unwrap() > 0 && resident.as_u64().unwrap() >= allocated.as_u64().unwrap(), "{stats}");

    // A client promises the whole budget and stalls.
    let addr = c.base.trim_start_matches("http://").to_owned();
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    let head = "POST /v1/topics/t/records HTTP/1.1\r\nHost: floe\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\n\r\n{\"records\":[";
    stalled.write_all(head.as_bytes()).await.unwrap();
    let memory = memory_once(&c, |m| m["request_bodies"]["held_bytes"] == 1000).await;
    let held = memory["request_bodies"]["held_bytes"].as_u64().unwrap();
    assert_eq!(held, 1000, "the stalled request's declared body is reserved");
    // Another produce waits for the bytes, then is written once they are back.
    let offsets = c.produce("t", json!([{"value": "after", "partition": 0}])).await;
    assert_eq!(offsets, vec![(0, 0)]);
    let mut answer = Vec::new();
    stalled.read_to_end(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"));
    let (_, stats) = c.get("/v1/stats").await;
    assert_eq!(stats["memory"]["request_bodies"]["held_bytes"], 0, "{stats}");
    // The first compression of each thread is timed.
    assert_eq!(stats["compression_cpu_us"].as_u64().is_some_and(|us| us > 0), cfg!(target_os = "linux"), "{stats}");
}

/// Memory is reserved for a body when it is read, not when its request is
/// admitted: a long-poll fetch that declares a body it never sends (and no
/// fetch reads) holds none of the budget, so produces are not held up
/// behind it for its whole wait.
#[tokio::test]
async fn a_request_whose_body_is_never_read_holds_no_body_memory() {
    let (_dir, a) = started(&["--compactor", "off", "--max-request-bytes", "1000", "--request-memory-bytes", "1000"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let addr = c.base.trim_start_matches("http://").to_owned();
    let mut waiting = Vec::new();
    for declared in ["Content-Length: 1000", "Transfer-Encoding: chunked"] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "GET /v1/topics/t/partitions/0/records?offset=0&timeout_ms=60000 HTTP/1.1\r\nHost: floe\r\n{declared}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        waiting.push(s);
    }
    // Ordering only: the fetches are admitted before the produce is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, stats) = c.get("/v1/stats").await;
    assert_eq!(stats["memory"]["request_bodies"]["held_bytes"], 0, "{stats}");
    let produced = tokio::time::timeout(
        Duration::from_secs(20),
        c.produce("t", json!([{"value": "not held up", "partition": 0}])),
    )
    .await;
    assert_eq!(produced.expect("the produce is not held up behind the fetches"), vec![(0, 0)]);
    // The fetches are answered with the record.
    for mut s in waiting {
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

/// A produce gives its body's reservation back once the write buffer holds
/// its records: requests waiting for their flush hold only the buffer.
#[tokio::test]
async fn a_buffered_produce_holds_the_write_buffer_not_the_body_budget() {
    let (_dir, a) = started(&["--compactor", "off", "--flush-interval-ms", "600000"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let waiting = {
        let c = c.clone();
        tokio::spawn(async move { c.produce("t", json!([{"value": "x".repeat(10_000), "partition": 0}])).await })
    };
    let memory = memory_once(&c, |m| m["write_buffer"]["held_bytes"].as_u64().unwrap() > 0).await;
    assert!(memory["write_buffer"]["held_bytes"].as_u64().unwrap() > 10_000, "{memory}");
    assert_eq!(memory["request_bodies"]["held_bytes"], 0, "{memory}");
    waiting.abort();
}

/// The agent's `memory` stats once `ready` holds of them (or after 1,000 tries: the caller's assertions then say what is wrong).
async fn memory_once(c: &common::Client, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut memory = serde_json::Value::Null;
    for _ in 0..1000 {
        memory = c.get("/v1/stats").await.1["memory"].clone();
        if ready(&memory) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    memory
}

/// An agent with a two-second header timeout, and a topic `t` holding `mib`
/// MiB of records.
async fn holding_large_records(mib: usize) -> (tempfile::TempDir, AgentProc) {
    let (dir, a) = started(&["--compactor", "off", "--request-header-timeout-ms", "2000"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let value = "x".repeat(512 << 10);
    for _ in 0..mib / 2 {
        let records: Vec<_> = (0..4).map(|_| json!({"value": value, "partition": 0})).collect();
        assert_eq!(c.produce("t", json!(records)).await.len(), 4);
    }
    (dir, a)
}

/// All of `t`'s records, in one answer.
const FETCH_ALL: &str = "/v1/topics/t/partitions/0/records?offset=0&max_records=100&max_bytes=67108864&encoding=string";

/// [`holding_large_records`], and a connection with a small receive window
/// that has asked for all of them: the answer's length is in its head.
async fn asked_for_a_large_answer(mib: usize) -> (tempfile::TempDir, AgentProc, TcpStream) {
    let (dir, a) = holding_large_records(mib).await;
    let addr: std::net::SocketAddr = a.client().base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small window: the agent's answer waits in its own send buffer.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(format!("GET {FETCH_ALL} HTTP/1.1\r\nHost: floe\r\n\r\n").as_bytes()).await.unwrap();
    (dir, a, s)
}

/// The bytes `s` receives until the agent closes it (within a minute),
/// reading `pause` apart.
async fn read_until_closed(s: &mut TcpStream, pause: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    let read = async {
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
            tokio::time::sleep(pause).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.unwrap();
    got
}

/// The head of an HTTP/1.1 answer, and its body if all of it arrived
/// (fetch answers are written as they are read: chunked).
fn chunked_answer(got: &[u8]) -> (String, Option<Vec<u8>>) {
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head");
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    let (mut rest, mut body) = (&got[end + 4..], Vec::new());
    loop {
        let Some(line) = rest.windows(2).position(|w| w == b"\r\n") else { return (head, None) };
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line]).unwrap().trim(), 16).unwrap();
        rest = &rest[line + 2..];
        if rest.len() < size + 2 {
            return (head, None);
        }
        if size == 0 {
            return (head, Some(body));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// How many records a whole fetch answer holds.
fn records_in(body: &[u8]) -> usize {
    let answer: serde_json::Value = serde_json::from_slice(body).expect("a whole answer");
    answer["records"].as_array().map_or(0, Vec::len)
}

/// A client that reads a large answer slowly, for longer than twice the
/// header timeout, gets all of it: the connection is not idle while the
/// answer is still going out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reading_a_large_answer_slowly_gets_all_of_it() {
    let (_dir, _a, mut s) = asked_for_a_large_answer(6).await;
    // At most 8 KiB a read (its window), 8 ms apart: six seconds at least.
    let got = read_until_closed(&mut s, Duration::from_millis(8)).await;
    let (head, body) = chunked_answer(&got);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body.as_deref().map(records_in), Some(12), "the whole answer, not cut short");
}

/// A client that asks for a large answer and never reads it cannot hold its
/// connection (and its slot of `--max-connections`) for good: once the
/// agent's writes have been blocked for the header timeout, the connection
/// is dropped, and the answer is cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_answer_is_disconnected() {
    let (_dir, a, mut stalled) = asked_for_a_large_answer(12).await;
    // The stalled connection is let go: only the one asking remains open (a bound, not a timing).
    let addr = a.client().base.trim_start_matches("http://").to_owned();
    let mut open = Vec::new();
    for _ in 0..60 {
        // A new connection each time: one left waiting past the header timeout is closed.
        let mut asking = TcpStream::connect(&addr).await.unwrap();
        let (_, stats) = exchange(&mut asking, "GET", "/v1/stats", "").await;
        open.push(stats["connections"]["open"].as_u64());
        if open.last() == Some(&Some(1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(open.last(), Some(&Some(1)), "the unread answer's connection is closed: {open:?}");
    // What the agent had written before it gave up arrives, then the end.
    let got = read_until_closed(&mut stalled, Duration::ZERO).await;
    let (head, body) = chunked_answer(&got);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.is_none(), "the answer was cut short: {} bytes arrived", got.len());
}

/// Over HTTP/2, a client that takes a large answer slowly (its flow-control
/// window, not its socket, holding the agent back) gets all of it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_taking_a_large_answer_slowly_gets_all_of_it() {
    use http_body_util::BodyExt;
    let (_dir, _a, _sender, _closed, answer) = asked_over_http2(6, 16 << 10).await;
    let mut body = answer.into_body();
    let mut got = Vec::new();
    let read = async {
        // Each frame taken gives the agent 16 KiB more of window: six seconds at least.
        while let Some(Ok(frame)) = body.frame().await {
            got.extend_from_slice(frame.data_ref().map_or(&[][..], |d| &d[..]));
            tokio::time::sleep(Duration::from_millis(16)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.unwrap();
    assert_eq!(records_in(&got), 12, "the whole answer, not cut short");
}

/// [`holding_large_records`] (`mib` of them), an HTTP/2 connection whose
/// client grants each stream, and the connection, `window` bytes at a time
/// as it takes their data (with [`http2`]'s task), and the head of its
/// answer (200) to a request for all of them.
async fn asked_over_http2(
    mib: usize,
    window: u32,
) -> (
    tempfile::TempDir,
    AgentProc,
    hyper::client::conn::http2::SendRequest<String>,
    tokio::task::JoinHandle<bool>,
    hyper::Response<hyper::body::Incoming>,
) {
    let (dir, a) = holding_large_records(mib).await;
    let mut builder = Http2Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.initial_stream_window_size(window).initial_connection_window_size(window);
    let (mut sender, closed) = http2_by(a.client().base.trim_start_matches("http://"), &builder).await;
    let answer = send(&mut sender, FETCH_ALL, "application/json").await;
    assert_eq!(answer.status(), 200);
    (dir, a, sender, closed, answer)
}

/// Over HTTP/2, a client that takes an answer's head and never its body
/// (so grants no more window) cannot hold its connection for good, though
/// nothing blocks the agent's writes and other requests of the connection
/// are answered: its answer waits for the header timeout and the
/// connection is dropped (not closed gracefully, as when idle).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_never_takes_its_answer_is_disconnected() {
    let (_dir, _a, mut sender, closed, answer) = asked_over_http2(2, 64 << 10).await;
    // Meanwhile small requests go on, each within the timeout.
    let mut answered = 0;
    while !closed.is_finished() && answered < 60 {
        match tokio::time::timeout(
            Duration::from_secs(5),
            sender.send_request(hyper::Request::get("http://floe/healthz").body(String::new()).unwrap()),
        )
        .await
        {
            Ok(Ok(ok)) if ok.status() == 200 => answered += 1,
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ended = tokio::time::timeout(Duration::from_secs(60), closed).await;
    assert!(matches!(ended, Ok(Ok(false))), "dropped though its client asks for more: {ended:?}");
    assert!(answered < 60, "not held while small requests go on");
    drop(answer);
}

/// A fetch answer's records are counted in the fetch-memory budget
/// (`--fetch-memory-bytes`) until the answer is sent: an answer its client
/// does not read holds them. They were counted nowhere, and sixteen
/// fetches of 64 MiB took an agent to 1.3 GB (docs/memory.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_answer_holds_its_records_in_the_fetch_budget_until_sent() {
    let (_dir, a, mut s) = asked_for_a_large_answer(12).await;
    let c = a.client();
    // Each record's bytes (as max_bytes counts them) and its place in the answer's list.
    let records = 24 * ((512 << 10) + 16 + std::mem::size_of::<(u64, floe_broker::Record)>() as u64);
    let held = |m: &serde_json::Value| m["fetch_answers"]["held_bytes"].as_u64();
    let memory = memory_once(&c, |m| held(m) == Some(records)).await;
    assert_eq!(held(&memory), Some(records), "what its records hold: {memory}");
    assert_eq!(memory["fetch_answers"]["budget_bytes"], 64 << 20);
    let got = read_until_closed(&mut s, Duration::ZERO).await;
    assert_eq!(chunked_answer(&got).1.as_deref().map(records_in), Some(24));
    let memory = memory_once(&c, |m| held(m) == Some(0)).await;
    assert_eq!(held(&memory), Some(0), "given back once sent: {memory}");
}

/// A fetch waiting at the end of its partition for records holds none of
/// the fetch-memory budget: many long-polling consumers cannot starve the
/// fetches that have records to read.
#[tokio::test]
async fn a_long_poll_waiting_for_records_holds_no_fetch_memory() {
    let (_dir, a) = started(&["--compactor", "off", "--fetch-memory-bytes", "1000"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    let addr = c.base.trim_start_matches("http://").to_owned();
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let head = "GET /v1/topics/t/partitions/0/records?offset=0&timeout_ms=60000&max_bytes=1000 HTTP/1.1\r\nHost: floe\r\n\r\n";
        s.write_all(head.as_bytes()).await.unwrap();
        waiting.push(s);
    }
    // Ordering only: the fetches are waiting before the stats are read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, stats) = c.get("/v1/stats").await;
    assert_eq!(stats["memory"]["fetch_answers"]["held_bytes"], 0, "{stats}");
    assert_eq!(c.produce("t", json!([{"value": "v", "partition": 0}])).await, vec![(0, 0)]);
    for mut s in waiting {
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
