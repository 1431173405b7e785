//! Confluent REST Proxy API v3 (`../shared/confluent-v3-openapi.yaml`), the
//! subset Floe implements: clusters, topics (list, create, get), partitions
//! (list, get) and producing records. A thin face over the same service
//! methods as the native API; docs/migrating-from-rest-proxy.md says what
//! differs.

mod records;
mod resources;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};

pub use super::rest_error::RestError;

use crate::service::Agent;

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/clusters", get(resources::list_clusters))
        .route("/clusters/{cluster}", get(resources::get_cluster))
        .route("/clusters/{cluster}/topics", get(resources::list_topics).post(resources::create_topic))
        .route("/clusters/{cluster}/topics/{topic}", get(resources::get_topic).delete(resources::delete_topic))
        .route("/clusters/{cluster}/topics/{topic}/partitions", get(resources::list_partitions))
        .route("/clusters/{cluster}/topics/{topic}/partitions/{partition}", get(resources::get_partition))
        .route("/clusters/{cluster}/topics/{topic}/records", post(records::produce))
        .fallback(|| async { RestError::new(404, 404, "HTTP 404 Not Found") })
        .method_not_allowed_fallback(|| async { RestError::new(405, 405, "HTTP 405 Method Not Allowed") })
}

/// Where this agent was reached, for the absolute URLs in `metadata.self`.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}/v3")
}

/// Confluent answers JSON only: a client that accepts none gets 406.
fn check_accept(headers: &HeaderMap) -> Result<(), RestError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let acceptable = accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .any(|t| matches!(t, "*/*" | "application/*" | "application/json" | ""));
    if acceptable { Ok(()) } else { Err(RestError::new(406, 406, "HTTP 406 Not Acceptable")) }
}

/// Request bodies are JSON (any `+json` type too); anything else is 415.
fn check_content_type(headers: &HeaderMap) -> Result<(), RestError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media == "application/json" || media.ends_with("+json") {
        Ok(())
    } else {
        Err(RestError::new(415, 415, "HTTP 415 Unsupported Media Type"))
    }
}
