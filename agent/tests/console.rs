//! The web console at `/ui`, driven in headless Chromium through
//! ChromeDriver (the W3C WebDriver protocol, a handful of calls): topics list
//! → a partition's records → a live tail that shows a record produced after
//! the page opened → a group's lag; and with tokens on, a sign-in prompt and
//! no data. Assertions are on the DOM; each page's screenshot is saved under
//! `target/console/` (the README's pictures come from there).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/test`
//! installs Debian's `chromium` and `chromium-driver`). Without them the test
//! is skipped, unless `FLOE_REQUIRE_BROWSER` is set (the test script sets it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{AgentProc, Backend, fresh_store};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long to wait for the page to show something (a bound, not a timing).
const WAIT: Duration = Duration::from_secs(30);

fn browser_available() -> bool {
    let present = std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !present && std::env::var_os("FLOE_REQUIRE_BROWSER").is_some() {
        panic!("FLOE_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing");
    }
    present
}

/// A ChromeDriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A desktop window of `width`×`height`, or with `phone`, a 390 px wide
    /// phone screen (device emulation: a window that narrow is not one).
    async fn start(width: u32, height: u32, phone: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(CHROMEDRIVER)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let mut options = json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
        });
        if phone {
            options["mobileEmulation"] = json!({"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 1}});
        }
        let capabilities =
            json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}});
        let mut session = None;
        for _ in 0..100 {
            match http.post(format!("http://127.0.0.1:{port}/session")).json(&capabilities).send().await {
                Ok(r) => {
                    let body: Value = r.json().await.unwrap();
                    let id = body["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {body}"));
                    session = Some(id.to_owned());
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let session = session.expect("chromedriver did not answer");
        Self { driver, base: format!("http://127.0.0.1:{port}/session/{session}"), http, _profile: profile }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            r = r.json(&body);
        }
        let answer: Value = r.send().await.unwrap().json().await.unwrap();
        assert!(answer["value"].get("error").is_none(), "webdriver {path}: {answer}");
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    async fn run(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// Waits until `script` returns something truthy, and returns it.
    async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.run(script, args.clone()).await;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let page = self
                    .run("return document.querySelector('main')?.outerHTML ?? document.body.outerHTML", json!([]))
                    .await;
                panic!("the console never showed {what}; the page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the page `name` to have loaded its data.
    async fn wait_page(&self, name: &str) {
        let script = "const m = document.querySelector('main'); return m && m.dataset.page === arguments[0] && m.dataset.ready === 'true';";
        self.wait_for(&format!("page {name}"), script, json!([name])).await;
    }

    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The text of every element matching `selector`.
const TEXTS: &str = "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim());";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_topics_records_a_live_tail_and_group_lag() {
    if !browser_available() {
        eprintln!("skipped: no {CHROMIUM} / {CHROMEDRIVER}");
        return;
    }
    let (store, env, _dir) = fresh_store(Backend::Dir).unwrap();
    let agent = AgentProc::start(&store, &env, &[]);
    let c = agent.client();
    c.create_topic("orders", 2).await;
    c.create_topic("payments", 1).await;
    let records: Vec<Value> = (0..12)
        .map(|i| json!({"key": format!("customer-{i}"), "value": format!("{{\"order\":{i},\"qty\":{}}}", i % 3 + 1), "partition": 0, "headers": {"source": "web"}}))
        .collect();
    c.produce("orders", Value::Array(records)).await;
    // A group that has read 4 of partition 0's 12 records: lag 8.
    let (_, joined) =
        c.post("/v1/groups/billing/members", &json!({"topics": ["orders"], "session_timeout_ms": 600000})).await;
    let commit = json!({"member_id": joined["member_id"], "generation": joined["generation"],
                        "offsets": [{"topic": "orders", "partition": 0, "offset": 4}]});
    let (s, b) = c.post("/v1/groups/billing/offsets", &commit).await;
    assert_eq!(s, 200, "{b}");

    let browser = Browser::start(1280, 800, false).await;
    let ui = format!("{}/ui/", agent.url);

    browser.goto(&format!("{ui}#/topics")).await;
    browser.wait_page("topics").await;
    let topics = browser
        .run("return [...document.querySelectorAll('#topics tr[data-topic]')].map(r => r.dataset.topic);", json!([]))
        .await;
    assert_eq!(topics, json!(["orders", "payments"]));
    browser.screenshot("topics").await;

    browser.goto(&format!("{ui}#/topics/orders/partitions/0?offset=0")).await;
    browser.wait_page("records").await;
    let values = browser.run(TEXTS, json!(["#records tr[data-offset] .value"])).await;
    assert_eq!(values.as_array().unwrap().len(), 12, "{values}");
    assert_eq!(values[0], "{\"order\":0,\"qty\":1}");
    let keys = browser.run(TEXTS, json!(["#records tr[data-offset] .key"])).await;
    assert_eq!(keys[11], "customer-11");
    browser.screenshot("records").await;

    // A live tail, then a record produced after the page opened.
    browser.run("document.querySelector('#tail-start').click();", json!([])).await;
    // The tail is open once the agent has an SSE stream to serve: poll until
    // a produce shows up rather than guessing when the stream is attached.
    let mut shown = Value::Null;
    for i in 0..50 {
        c.produce("orders", json!([{"value": format!("live-{i}"), "partition": 0}])).await;
        let found = browser
            .run("return [...document.querySelectorAll('#tail tr[data-offset] .value')].map(e => e.textContent.trim()).find(v => v.startsWith('live-')) ?? null;", json!([]))
            .await;
        if !found.is_null() {
            shown = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        shown.as_str().is_some_and(|v| v.starts_with("live-")),
        "the tail showed no record produced after it opened"
    );
    let offsets = browser
        .run(
            "return [...document.querySelectorAll('#tail tr[data-offset]')].map(r => Number(r.dataset.offset));",
            json!([]),
        )
        .await;
    assert!(
        offsets.as_array().unwrap().iter().all(|o| o.as_u64().unwrap() >= 12),
        "the tail starts at the high watermark: {offsets}"
    );
    browser.screenshot("tail").await;

    let hw: u64 = c.get("/v1/topics/orders").await.1["partitions"][0]["high_watermark"].as_u64().unwrap();
    browser.goto(&format!("{ui}#/groups/billing")).await;
    browser.wait_page("group").await;
    let lag = browser
        .wait_for(
            "the lag of orders/0",
            "return document.querySelector('#group-offsets tr[data-topic=\"orders\"][data-partition=\"0\"] .lag')?.textContent.trim();",
            json!([]),
        )
        .await;
    assert_eq!(lag, json!((hw - 4).to_string()), "lag = high watermark {hw} - committed 4");
    let members = browser.run(TEXTS, json!(["#members tbody tr[data-member]"])).await;
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    browser.screenshot("group").await;

    browser.goto(&ui).await;
    browser.wait_page("overview").await;
    let text = browser.run("return document.querySelector('main').textContent;", json!([])).await;
    assert!(text.as_str().unwrap().contains(&c.get("/v1/cluster").await.1["cluster_id"].as_str().unwrap().to_owned()));
    browser.screenshot("overview").await;

    // Phone width: the records page still renders its rows.
    let phone = Browser::start(390, 844, true).await;
    phone.goto(&format!("{ui}#/topics/orders/partitions/0?offset=0")).await;
    phone.wait_page("records").await;
    let rows = phone.run(TEXTS, json!(["#records tr[data-offset] .value"])).await;
    assert_eq!(rows.as_array().unwrap().len() as u64, hw, "every record of the partition: {rows}");
    phone.screenshot("records-phone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_on_the_console_asks_for_one_and_shows_nothing_without() {
    if !browser_available() {
        eprintln!("skipped: no {CHROMIUM} / {CHROMEDRIVER}");
        return;
    }
    let (store, env, _dir) = fresh_store(Backend::Dir).unwrap();
    let files = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_floe-agent"))
        .args(["token", "new", "--name", "ops", "--admin"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let tokens = files.path().join("tokens.toml");
    std::fs::write(&tokens, out.stderr).unwrap();
    let agent = AgentProc::start(&store, &env, &["--auth-tokens", tokens.to_str().unwrap()]);
    let admin = agent.client_with_token(&token);
    admin.create_topic("secret-topic", 1).await;

    let browser = Browser::start(1280, 800, false).await;
    browser.goto(&format!("{}/ui/#/topics", agent.url)).await;
    browser.wait_page("signin").await;
    let html = browser.run("return document.body.innerHTML;", json!([])).await;
    assert!(!html.as_str().unwrap().contains("secret-topic"), "no data without a token");
    assert!(browser.run("return !!document.querySelector('#signin #token');", json!([])).await.as_bool().unwrap());
    browser.screenshot("signin").await;

    browser
        .run(
            "document.querySelector('#token').value = arguments[0]; document.querySelector('#signin').requestSubmit();",
            json!([token]),
        )
        .await;
    browser.wait_page("topics").await;
    let topics = browser
        .run("return [...document.querySelectorAll('#topics tr[data-topic]')].map(r => r.dataset.topic);", json!([]))
        .await;
    assert_eq!(topics, json!(["secret-topic"]));
}
