//! The commit lease: followers hand their entries to the holder (and write no
//! log entries themselves); when the holder is killed, they commit directly
//! and nothing is lost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::{AgentProc, Backend, Client, fresh_store};
use serde_json::{Value, json};

async fn stats(c: &Client) -> Value {
    c.get("/v1/stats").await.1
}

#[tokio::test]
async fn followers_commit_through_the_holder_and_survive_its_death() {
    followers_commit_through_the_holder_and_survive_its_death_on(Backend::Dir).await;
}

#[tokio::test]
async fn s3_followers_commit_through_the_holder_and_survive_its_death() {
    followers_commit_through_the_holder_and_survive_its_death_on(Backend::S3).await;
}

async fn followers_commit_through_the_holder_and_survive_its_death_on(backend: Backend) {
    let Some((store, env, _dir)) = fresh_store(backend) else { return };
    let lease = ["--commit-lease", "--lease-term-ms", "2000"];
    let mut agents: Vec<AgentProc> = (0..3).map(|_| AgentProc::start(&store, &env, &lease)).collect();
    let clients: Vec<Client> = agents.iter().map(AgentProc::client).collect();
    clients[0].create_topic("t", 1).await;

    // Wait (bounded) until every agent sees the same holder.
    let mut holder = None;
    for _ in 0..100 {
        let mut urls = Vec::new();
        for c in &clients {
            urls.push(stats(c).await["lease"]["holder_url"].as_str().map(str::to_owned));
        }
        if urls.iter().all(|u| u.is_some() && *u == urls[0]) {
            holder = urls[0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let holder = holder.expect("one agent holds the lease");
    let h = agents.iter().position(|a| a.url == holder).unwrap();
    let followers: Vec<usize> = (0..3).filter(|i| *i != h).collect();

    let before: Vec<u64> = {
        let mut v = Vec::new();
        for f in &followers {
            v.push(stats(&clients[*f]).await["store"]["log"]["put"].as_u64().unwrap());
        }
        v
    };
    let mut expected = Vec::new();
    for i in 0..10 {
        for f in &followers {
            let value = format!("via {f} #{i}");
            clients[*f].produce("t", json!([{ "value": value }])).await;
            expected.push(value);
        }
    }
    for (f, b) in followers.iter().zip(&before) {
        let after = stats(&clients[*f]).await["store"]["log"]["put"].as_u64().unwrap();
        assert_eq!(after, *b, "follower {f} wrote no log entry: the holder committed for it");
    }

    // Kill the holder: followers fall back to direct commits.
    agents.remove(h).kill9();
    for f in &followers {
        let value = format!("after the holder died, via {f}");
        clients[*f].produce("t", json!([{ "value": value }])).await;
        expected.push(value);
    }
    let got: Vec<String> = clients[followers[0]]
        .read_all("t", 0, 0)
        .await
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, expected, "every acknowledged record, in order, once");
}
