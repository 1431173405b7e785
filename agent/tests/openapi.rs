//! The native API's OpenAPI document cannot drift from the router: every
//! route the router serves under `/v1` (and the probes) is in the document
//! with the same methods, and nothing else is; the agent serves the file as
//! it is. What each operation answers is checked by `scripts/schemathesis-v1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{AgentProc, Backend, fresh_store};

const DOCUMENT: &str = include_str!("../openapi/v1.json");
const ROUTER: &str = include_str!("../src/api/mod.rs");
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(path, method)` for every `.route("…", get(…).post(…))` in the router
/// outside the Kafka REST and internal faces, with axum's `{param}` syntax.
fn routed() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for call in ROUTER.split(".route(\"").skip(1) {
        let (path, rest) = call.split_once('"').unwrap();
        if path.starts_with("/internal/") {
            continue;
        }
        let handlers = &rest[..rest.find("\n").unwrap_or(rest.len())];
        for method in METHODS {
            let named = |prefix: &str| handlers.contains(&format!("{prefix}{method}("));
            if named("(") || named(".") || named("::") || named(", ") {
                out.insert((path.to_owned(), method.to_owned()));
            }
        }
    }
    out
}

fn documented() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((path.clone(), method.to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let (routed, documented) = (routed(), documented());
    assert!(routed.len() >= 18, "the router parse found too little: {routed:?}");
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routes missing from agent/openapi/v1.json: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
}

#[tokio::test]
async fn the_agent_serves_the_document() {
    let (store, env, _dir) = fresh_store(Backend::Dir).unwrap();
    let agent = AgentProc::start(&store, &env, &[]);
    let r = reqwest::get(format!("{}/v1/openapi.json", agent.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served: serde_json::Value = r.json().await.unwrap();
    assert_eq!(served, serde_json::from_str::<serde_json::Value>(DOCUMENT).unwrap());
    assert_eq!(served["openapi"], "3.0.3");
}
