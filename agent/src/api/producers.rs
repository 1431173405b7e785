//! Idempotent producers: ids and epochs handed out by the log itself.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{ApiError, body};
use crate::auth::Caller;
use crate::service::{Agent, FlushId, FlushStatus, ProducerId};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InitProducer {
    /// Present: start a new epoch of this producer, fencing the old one.
    #[serde(default)]
    producer_id: Option<u64>,
}

/// `POST /v1/producers` with `{}` (or no body) for a new producer, or
/// `{"producer_id": n}` to bump its epoch.
pub async fn init(State(agent): State<Arc<Agent>>, caller: Caller, raw: Body) -> Result<Json<ProducerId>, ApiError> {
    let bytes = body::read(raw, agent.max_request_bytes()).await?;
    let req: InitProducer =
        if bytes.iter().all(u8::is_ascii_whitespace) { InitProducer::default() } else { body::json(&bytes)? };
    Ok(Json(agent.init_producer(&caller, req.producer_id).await?))
}

/// `GET /v1/flushes/{spool}/{seq}`: whether a flush answered with
/// `acks=local` is committed yet.
pub async fn flush(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<(String, u64)>, PathRejection>,
) -> Result<Json<FlushStatus>, ApiError> {
    let Path((spool, seq)) = path?;
    let spool = spool.parse().map_err(|e| ApiError::bad_request("invalid_path", format!("spool {spool:?}: {e}")))?;
    Ok(Json(agent.flush_status(&caller, FlushId { spool, seq }).await?))
}
