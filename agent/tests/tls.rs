//! HTTPS with a certificate the test makes: plain HTTP is refused, a client
//! that trusts the test CA is served, and agents call each other over TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{AgentProc, Backend, Client, fresh_store};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;

/// A CA and a certificate it signs for 127.0.0.1, written as PEM files
/// `ca.pem`, `cert.pem` and `key.pem` in `dir`.
fn certificates(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

fn https_client(agent: &AgentProc, dir: &Path) -> Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let http = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    Client { base: agent.url.clone(), http }
}

fn tls_flags(dir: &Path) -> Vec<String> {
    ["cert", "key", "ca"].iter().map(|f| format!("--tls-{f}={}", dir.join(format!("{f}.pem")).display())).collect()
}

#[tokio::test]
async fn https_only_with_the_test_ca() {
    let (store, env, _dir) = fresh_store(Backend::Dir).unwrap();
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let flags = tls_flags(certs.path());
    let agent = AgentProc::start(&store, &env, &flags.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(agent.url.starts_with("https://127.0.0.1:"), "{}", agent.url);

    let c = https_client(&agent, certs.path());
    c.create_topic("t", 1).await;
    c.produce("t", json!([{"value": "over tls"}])).await;
    assert_eq!(c.read_all("t", 0, 0).await[0]["value"], "over tls");

    // Plain HTTP on the same port gets no HTTP answer.
    let plain = agent.url.replacen("https://", "http://", 1);
    let refused = reqwest::Client::new().get(format!("{plain}/healthz")).send().await;
    assert!(refused.is_err(), "plain HTTP was answered: {refused:?}");
    // A client that does not trust the CA refuses the agent.
    assert!(reqwest::Client::new().get(format!("{}/healthz", agent.url)).send().await.is_err());
}

#[tokio::test]
async fn agents_forward_group_requests_over_tls() {
    let (store, env, _dir) = fresh_store(Backend::Dir).unwrap();
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let flags = tls_flags(certs.path());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (a, b) = (AgentProc::start(&store, &env, &flags), AgentProc::start(&store, &env, &flags));
    let (ca, cb) = (https_client(&a, certs.path()), https_client(&b, certs.path()));
    ca.create_topic("t", 2).await;
    let (s, first) = ca.post("/v1/groups/g/members", &json!({"topics": ["t"]})).await;
    assert_eq!(s, 200, "{first}");
    // Agent b is not the group's coordinator: it forwards the join to a, over HTTPS.
    let (s, second) = cb.post("/v1/groups/g/members", &json!({"topics": ["t"]})).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["assignments"].as_array().unwrap().len(), 1, "one coordinator saw both members: {second}");
}

/// Over TLS (whose records the agent writes through a buffer of rustls's),
/// a client reading a large answer slowly, for longer than twice the
/// header timeout, still gets all of it (decision 0031).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reading_a_large_answer_slowly_over_tls_gets_all_of_it() {
    let (store, env, _dir) = fresh_store(Backend::Dir).unwrap();
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let mut flags = tls_flags(certs.path());
    flags.extend(["--compactor", "off", "--request-header-timeout-ms", "2000"].map(str::to_owned));
    let agent = AgentProc::start(&store, &env, &flags.iter().map(String::as_str).collect::<Vec<_>>());
    let c = https_client(&agent, certs.path());
    c.create_topic("t", 1).await;
    let value = "x".repeat(512 << 10);
    for _ in 0..4 {
        let records: Vec<_> = (0..4).map(|_| json!({"value": value, "partition": 0})).collect();
        assert_eq!(c.produce("t", json!(records)).await.len(), 4);
    }
    let url = format!("{}/v1/topics/t/partitions/0/records?offset=0&max_records=100&max_bytes=67108864", c.base);
    let mut answer = c.http.get(url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let mut got = Vec::new();
    // At most about 16 KiB (a TLS record) a read, 16 ms apart: eight seconds at least.
    while let Ok(Some(chunk)) = answer.chunk().await {
        got.extend_from_slice(&chunk);
        tokio::time::sleep(std::time::Duration::from_millis(16)).await;
    }
    // Written as it is read (chunked): whole if it is a whole answer.
    let whole: serde_json::Value = serde_json::from_slice(&got).expect("the whole answer, not cut short");
    assert_eq!(whole["records"].as_array().map(Vec::len), Some(16));
}
