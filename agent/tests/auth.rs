//! Clients' bearer tokens: who may do what, through every face, and the
//! tokens file reloaded on SIGHUP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{AgentProc, Backend, Client, code, fresh_store};
use serde_json::json;

/// A token and its tokens-file entry, made by the agent binary itself.
fn token(name: &str, flags: &[&str]) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_floe-agent"))
        .args(["token", "new", "--name", name])
        .args(flags)
        .output()
        .expect("run floe-agent token new");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let entry = String::from_utf8(out.stderr).unwrap();
    assert!(!entry.contains(&token), "the tokens file entry must not hold the token itself");
    (token, entry)
}

/// The high watermark of `topic`/0, as the admin sees it.
async fn high_watermark(admin: &Client, topic: &str) -> u64 {
    let (s, b) = admin.get(&format!("/v1/topics/{topic}")).await;
    assert_eq!(s, 200, "{b}");
    b["partitions"][0]["high_watermark"].as_u64().unwrap()
}

#[tokio::test]
async fn tokens_limit_who_does_what_and_nothing_refused_is_written() {
    let (store, env, _dir) = fresh_store(Backend::Dir).unwrap();
    let files = tempfile::tempdir().unwrap();
    let (root, root_entry) = token("ops", &["--admin"]);
    let (app, app_entry) = token("app", &["--produce", "a", "--consume", "a", "--group", "g*"]);
    let tokens = files.path().join("tokens.toml");
    std::fs::write(&tokens, format!("{root_entry}\n{app_entry}")).unwrap();
    let agent = AgentProc::start(&store, &env, &["--auth-tokens", tokens.to_str().unwrap()]);
    let (admin, app_c, nobody) = (agent.client_with_token(&root), agent.client_with_token(&app), agent.client());
    admin.create_topic("a", 1).await;
    admin.create_topic("b", 1).await;

    // No token, or a wrong one: 401 with a Bearer challenge, nothing written.
    let r = nobody.http.post(format!("{}/v1/topics/a/records", nobody.base)).json(&json!({"records":[{"value":"x"}]}));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_eq!(code(&r.json().await.unwrap()), "unauthenticated");
    let wrong = agent.client_with_token("floe_not-a-token");
    let (s, b) = wrong.post("/v1/topics/a/records", &json!({"records":[{"value":"x"}]})).await;
    assert_eq!((s, code(&b)), (401, "unauthenticated"));
    assert_eq!(high_watermark(&admin, "a").await, 0);

    // A token for topic a: a works, b is forbidden both ways, admin is not its.
    app_c.produce("a", json!([{"value": "mine"}])).await;
    let (s, b) = app_c.post("/v1/topics/b/records", &json!({"records":[{"value":"x"}]})).await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    assert_eq!(high_watermark(&admin, "b").await, 0);
    let (s, b) = app_c.get("/v1/topics/b/partitions/0/records?offset=0").await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    assert_eq!(app_c.read_all("a", 0, 0).await.len(), 1);
    let (s, b) = app_c.post("/v1/topics", &json!({"name": "c"})).await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    let (s, b) = app_c.get("/v1/topics").await;
    assert_eq!(s, 200);
    assert_eq!(b["topics"].as_array().unwrap().len(), 1, "only the topics it may use: {b}");

    // Groups: the group pattern and every named topic are checked.
    let (s, b) = app_c.post("/v1/groups/g1/members", &json!({"topics": ["b"]})).await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    let (s, b) = app_c.post("/v1/groups/other/members", &json!({"topics": ["a"]})).await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    let (s, b) = app_c.post("/v1/groups/g1/members", &json!({"topics": ["a"]})).await;
    assert_eq!(s, 200, "{b}");

    // Kafka REST faces: the same rules, in their error shapes.
    let cluster = admin.get("/v3/clusters").await.1["data"][0]["cluster_id"].as_str().unwrap().to_owned();
    let (s, b) = app_c
        .post(&format!("/v3/clusters/{cluster}/topics/b/records"), &json!({"value": {"type": "STRING", "data": "x"}}))
        .await;
    assert_eq!((s, b["error_code"].as_u64()), (403, Some(40301)), "{b}");
    let (s, b) = app_c.get(&format!("/v3/clusters/{cluster}/topics/a?include_authorized_operations=true")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authorized_operations"], json!(["READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"]));
    let r = nobody.http.get(format!("{}/topics", nobody.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error_code"], 40101);
    assert_eq!(high_watermark(&admin, "b").await, 0);

    // Probes and metrics stay open by default; stats need a token.
    assert_eq!(nobody.get("/healthz").await.0, 200);
    assert_eq!(nobody.http.get(format!("{}/metrics", nobody.base)).send().await.unwrap().status(), 200);
    assert_eq!(nobody.get("/v1/stats").await.0, 401);
    assert_eq!(app_c.get("/v1/stats").await.0, 200);

    // SIGHUP reloads the file: the app token is gone, the admin stays.
    std::fs::write(&tokens, &root_entry).unwrap();
    agent.signal("HUP");
    let mut status = 200;
    for _ in 0..200 {
        status = app_c.get("/v1/topics").await.0;
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 401, "the reloaded file no longer holds the app token");
    assert_eq!(admin.get("/v1/topics").await.0, 200);

    // A broken file on reload keeps the tokens in force.
    std::fs::write(&tokens, "[[token]]\nname = 1\n").unwrap();
    agent.signal("HUP");
    assert_eq!(admin.get("/v1/topics").await.0, 200);
}

#[tokio::test]
async fn closed_probes_and_a_bad_tokens_file() {
    let (store, env, _dir) = fresh_store(Backend::Dir).unwrap();
    let files = tempfile::tempdir().unwrap();
    let (root, entry) = token("ops", &["--admin"]);
    let tokens = files.path().join("tokens.toml");
    std::fs::write(&tokens, entry).unwrap();
    let agent = AgentProc::start(&store, &env, &["--auth-tokens", tokens.to_str().unwrap(), "--auth-open", "healthz"]);
    let nobody = agent.client();
    assert_eq!(nobody.get("/healthz").await.0, 200);
    assert_eq!(nobody.get("/readyz").await.0, 401);
    assert_eq!(nobody.http.get(format!("{}/metrics", nobody.base)).send().await.unwrap().status(), 401);
    assert_eq!(agent.client_with_token(&root).get("/readyz").await.0, 200);
    drop(agent);

    // A tokens file that does not parse stops the agent at start, naming the file.
    std::fs::write(&tokens, "[[token]]\nname = \"x\"\nsha256 = \"not-hex\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_floe-agent"))
        .args(["--listen", "127.0.0.1:0", "--store", &store, "--auth-tokens", tokens.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tokens.toml") && stderr.contains("64 hex digits"), "{stderr}");
}

/// A group fetch by a token that may not read the member's topics is
/// refused before any read position moves: the member's own token then
/// reads everything from the start.
#[tokio::test]
async fn a_refused_group_fetch_moves_nothing() {
    let (store, env, _dir) = fresh_store(Backend::Dir).unwrap();
    let files = tempfile::tempdir().unwrap();
    let (root, root_entry) = token("ops", &["--admin"]);
    let (reader, reader_entry) = token("reader", &["--consume", "a", "--group", "g"]);
    let (outsider, outsider_entry) = token("outsider", &["--group", "g"]);
    let tokens = files.path().join("tokens.toml");
    std::fs::write(&tokens, format!("{root_entry}\n{reader_entry}\n{outsider_entry}")).unwrap();
    let agent = AgentProc::start(&store, &env, &["--auth-tokens", tokens.to_str().unwrap()]);
    let (admin, reader, outsider) =
        (agent.client_with_token(&root), agent.client_with_token(&reader), agent.client_with_token(&outsider));
    admin.create_topic("a", 1).await;
    admin.produce("a", json!([{"value": "1"}, {"value": "2"}, {"value": "3"}])).await;
    let (s, joined) = reader.post("/v1/groups/g/members", &json!({"topics": ["a"]})).await;
    assert_eq!(s, 200, "{joined}");
    let member = joined["member_id"].as_str().unwrap();
    let records = format!("/v1/groups/g/members/{member}/records?timeout_ms=0");

    let (s, b) = outsider.get(&records).await;
    assert_eq!((s, code(&b)), (403, "forbidden"), "{b}");
    // The outsider does not learn the member's id or topics from a describe.
    let (s, described) = outsider.get("/v1/groups/g").await;
    assert_eq!(s, 200, "{described}");
    assert_eq!(described["members"][0]["member_id"], "", "{described}");
    assert_eq!(described["members"][0]["topics"], json!([]), "{described}");

    let (s, b) = reader.get(&records).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["records"].as_array().unwrap().len(), 3, "nothing was skipped: {b}");
}

/// A live tail ends once its token is removed by a reload, and shows
/// nothing produced after.
#[tokio::test]
async fn a_tail_ends_when_its_token_is_removed() {
    use futures::StreamExt;
    let (store, env, _dir) = fresh_store(Backend::Dir).unwrap();
    let files = tempfile::tempdir().unwrap();
    let (root, root_entry) = token("ops", &["--admin"]);
    let (app, app_entry) = token("app", &["--consume", "a"]);
    let tokens = files.path().join("tokens.toml");
    std::fs::write(&tokens, format!("{root_entry}\n{app_entry}")).unwrap();
    let agent = AgentProc::start(&store, &env, &["--auth-tokens", tokens.to_str().unwrap()]);
    let admin = agent.client_with_token(&root);
    admin.create_topic("a", 1).await;
    let tail = agent
        .client_with_token(&app)
        .http
        .get(format!("{}/v1/topics/a/partitions/0/records?offset=0", agent.url))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    let mut stream = tail.bytes_stream();
    admin.produce("a", json!([{"value": "before"}])).await;
    let mut seen = String::new();
    while !seen.contains("before") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next()).await;
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap().unwrap()));
    }
    std::fs::write(&tokens, &root_entry).unwrap();
    agent.signal("HUP");
    // Until the reload is seen, records may still come; after it, the tail ends.
    let mut after = String::new();
    for i in 0..100 {
        admin.produce("a", json!([{"value": format!("after-{i}")}])).await;
        match tokio::time::timeout(std::time::Duration::from_millis(200), stream.next()).await {
            Ok(Some(Ok(chunk))) => after.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(None | Some(Err(_))) => break,
            Err(_) => {}
        }
        if after.contains("unauthenticated") {
            break;
        }
    }
    assert!(after.contains("unauthenticated"), "the tail went on after its token was removed: {after}");
}
