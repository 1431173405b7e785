//! Starts real `floe-agent` processes on free loopback ports for HTTP tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct AgentProc {
    child: Child,
    pub url: String,
}

impl AgentProc {
    /// Starts an agent on `store` and waits for its "listening on" line.
    pub fn start(store: &str, env: &[(&str, String)], extra: &[&str]) -> Self {
        Self::start_command(Command::new(env!("CARGO_BIN_EXE_floe-agent")), store, env, extra)
    }

    /// The same, with its open-file limit (soft and hard) set to `limit`.
    pub fn start_with_open_files(limit: u32, store: &str, env: &[(&str, String)], extra: &[&str]) -> Self {
        let mut command = Command::new("sh");
        command.args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_floe-agent")]);
        Self::start_command(command, store, env, extra)
    }

    fn start_command(mut command: Command, store: &str, env: &[(&str, String)], extra: &[&str]) -> Self {
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--store", store])
            .args(extra)
            // Fast defaults for tests; flags in `extra` override them.
            .env("FLOE_FLUSH_INTERVAL_MS", "20")
            .env("FLOE_LOG_POLL_MS", "50")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("FLOE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn floe-agent");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("floe-agent listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("floe-agent did not start on {store}")
        });
        Self { child, url }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, as an orchestrator stopping the agent would; waits for the
    /// exit (failing the test if it does not come within a minute).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait for floe-agent") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("floe-agent did not exit within a minute of SIGTERM");
    }

    /// Sends a signal (`HUP`, say) to the agent.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -{name} {pid}");
    }

    pub fn client(&self) -> Client {
        Client { base: self.url.clone(), http: reqwest::Client::new() }
    }

    /// A client that sends `Authorization: Bearer {token}` on every request.
    pub fn client_with_token(&self, token: &str) -> Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        Client { base: self.url.clone(), http: reqwest::Client::builder().default_headers(headers).build().unwrap() }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a test's agents keep their data.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// A fresh local directory.
    Dir,
    /// A fresh prefix of the S3 server the test script starts (`FLOE_TEST_S3`).
    S3,
}

pub type FreshStore = (String, Vec<(&'static str, String)>, Option<tempfile::TempDir>);

/// A fresh store: its URL, the environment agents need for it, and the
/// directory to keep alive. `None` when S3 is asked for and no server is
/// configured (the test skips; `FLOE_REQUIRE_S3` makes that a failure).
pub fn fresh_store(backend: Backend) -> Option<FreshStore> {
    match backend {
        Backend::Dir => {
            let dir = tempfile::tempdir().unwrap();
            Some((format!("file://{}", dir.path().display()), Vec::new(), Some(dir)))
        }
        Backend::S3 => {
            let s3 = floe_broker::testing::S3Target::from_env()?;
            let (store, env) = s3.agent_store(&s3.fresh_prefix());
            Some((store, env, None))
        }
    }
}

/// The store at `url` as the agents see it (for tests that look into the bucket).
pub fn open_store(url: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
    match floe_broker::testing::S3Target::from_env().filter(|_| url.starts_with("s3://")) {
        Some(s3) => s3.store(url.trim_start_matches("s3://").split_once('/').map_or("", |(_, p)| p)),
        None => floe_broker::store::open(url).unwrap(),
    }
}

/// The stable error code of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}"))
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{path}", self.base)).json(body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// POSTs `body` as `application/x-ndjson`.
    pub async fn post_ndjson(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let r = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/x-ndjson");
        r.body(body).send().await.unwrap()
    }

    pub async fn create_topic(&self, name: &str, partitions: u32) {
        let (status, body) = self.post("/v1/topics", &json!({"name": name, "partitions": partitions})).await;
        assert_eq!(status, 201, "{body}");
    }

    /// Produces and returns `(partition, offset)` per record.
    pub async fn produce(&self, topic: &str, records: Value) -> Vec<(u64, u64)> {
        let (status, body) = self.post(&format!("/v1/topics/{topic}/records"), &json!({ "records": records })).await;
        assert_eq!(status, 200, "{body}");
        body["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["partition"].as_u64().unwrap(), o["offset"].as_u64().unwrap()))
            .collect()
    }

    /// Every record of a partition from `from`, following `next_offset`.
    pub async fn read_all(&self, topic: &str, partition: u64, from: u64) -> Vec<Value> {
        let mut out = Vec::new();
        let mut offset = from;
        loop {
            let (status, body) = self
                .get(&format!("/v1/topics/{topic}/partitions/{partition}/records?offset={offset}&max_records=1000"))
                .await;
            assert_eq!(status, 200, "{body}");
            let records = body["records"].as_array().unwrap().clone();
            if records.is_empty() {
                return out;
            }
            offset = body["next_offset"].as_u64().unwrap();
            out.extend(records);
        }
    }
}
