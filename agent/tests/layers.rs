//! The agent's layers stay apart (docs/architecture.md): the HTTP faces
//! reach the broker only through the service; the domain (service, groups)
//! knows nothing of HTTP. A source scan, so a shortcut fails CI at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under src/{dir}");
    out
}

fn assert_none(dir: &str, forbidden: &[&str], why: &str) {
    let mut found = Vec::new();
    for (path, text) in sources(dir) {
        for (n, line) in text.lines().enumerate() {
            for f in forbidden {
                if line.contains(f) {
                    found.push(format!("{}:{}: {f}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "{why}:\n{}", found.join("\n"));
}

#[test]
fn faces_reach_the_broker_only_through_the_service() {
    assert_none(
        "api",
        &[
            "floe_broker::state",
            "floe_broker::log",
            "MetadataLog",
            "floe_broker::entry::Op",
            "crate::writer",
            "crate::reader",
        ],
        "src/api parses, calls one service method and renders; it does not touch the log, its state or the write path",
    );
}

#[test]
fn the_domain_knows_nothing_of_http() {
    let http = ["crate::api", "axum", "StatusCode", "serde_json::Value", "HeaderMap"];
    assert_none("groups", &http, "src/groups is the group protocol and routing, without HTTP or JSON rendering");
    assert_none("service", &http, "src/service is typed methods; the faces render them");
}
