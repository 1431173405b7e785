//! Liveness and readiness.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiError;
use crate::app::Agent;

/// How long a readiness check may wait for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers, the log is caught up, and this agent's
/// clock is close enough to the store's for it to commit.
pub async fn readyz(State(agent): State<Arc<Agent>>) -> Result<Json<Value>, ApiError> {
    if let Some(e) = agent.log.skew().refusal() {
        return Err(ApiError::unavailable("clock_skew", e.to_string()));
    }
    match tokio::time::timeout(READY_TIMEOUT, agent.log.catch_up()).await {
        Ok(Ok(applied)) => Ok(Json(json!({ "status": "ready", "applied": applied }))),
        Ok(Err(e)) => Err(ApiError::unavailable("not_ready", format!("cannot read the log: {e}"))),
        Err(_) => Err(ApiError::unavailable("not_ready", "the store did not answer in time")),
    }
}

/// Counters: object-store requests and bytes by kind of key, the read cache,
/// and the log position. Cheap to read; meant for benchmarks and dashboards.
pub async fn stats(State(agent): State<Arc<Agent>>) -> Json<Value> {
    Json(json!({
        "store": agent.store_stats.stats(),
        "cache": agent.cache.stats().await,
        "log": { "applied": agent.log.applied() },
        "clock": { "offset_ms": agent.log.skew().offset_ms(), "bound_ms": agent.log.skew().bound_ms() },
        "compactor": agent.compactor_stats.as_ref().map(|s| {
            let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            json!({ "cycles": n(&s.cycles), "failed_cycles": n(&s.failed_cycles), "failed_merge_runs": n(&s.failed_merge_runs) })
        }),
        "lease": {
            "enabled": agent.settings.commit_lease,
            "holder_url": agent.log.state().valid_lease(crate::committer::COMMIT_LEASE).map(|l| l.url.clone()),
        },
    }))
}
