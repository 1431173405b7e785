//! Idempotent producers: ids and epochs handed out by the log itself.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde::Deserialize;

use super::{ApiError, body};
use crate::auth::Caller;
use crate::service::{Agent, ProducerId};

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
