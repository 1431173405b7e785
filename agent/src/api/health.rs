//! Liveness, readiness and counters.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiError;
use crate::service::{Agent, Stats};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(agent): State<Arc<Agent>>) -> Result<Json<Value>, ApiError> {
    let applied = agent.ready().await?;
    Ok(Json(json!({ "status": "ready", "applied": applied })))
}

pub async fn stats(State(agent): State<Arc<Agent>>) -> Json<Stats> {
    Json(agent.stats().await)
}

/// Prometheus' scrape target (OpenMetrics text).
pub async fn metrics(State(agent): State<Arc<Agent>>) -> impl axum::response::IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, content_type)], agent.metrics_text().await)
}
