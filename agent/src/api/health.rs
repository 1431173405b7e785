//! Liveness, readiness and counters.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiError;
use crate::auth::Caller;
use crate::service::{Agent, ClusterInfo, Stats};

pub async fn healthz(State(agent): State<Arc<Agent>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    agent.health(&caller)?;
    Ok(Json(json!({ "status": "ok" })))
}

pub async fn readyz(State(agent): State<Arc<Agent>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let applied = agent.ready(&caller).await?;
    Ok(Json(json!({ "status": "ready", "applied": applied })))
}

pub async fn stats(State(agent): State<Arc<Agent>>, caller: Caller) -> Result<Json<Stats>, ApiError> {
    Ok(Json(agent.stats(&caller).await?))
}

/// Prometheus' scrape target (OpenMetrics text).
pub async fn metrics(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], agent.metrics_text(&caller).await?))
}

/// The native API's OpenAPI 3 document (`agent/openapi/v1.json`; kept
/// honest by `tests/openapi.rs` and `scripts/schemathesis-v1`). Open to all:
/// it describes the API, not the data.
pub async fn openapi() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], include_str!("../../openapi/v1.json"))
}

/// The cluster as this agent sees it (for the console's overview).
pub async fn cluster(State(agent): State<Arc<Agent>>, caller: Caller) -> Result<Json<ClusterInfo>, ApiError> {
    Ok(Json(agent.cluster_info(&caller).await?))
}
