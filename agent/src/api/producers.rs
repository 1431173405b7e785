//! Idempotent producers: ids and epochs handed out by the log itself.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use floe_broker::entry::Op;
use floe_broker::state::OpOutcome;
use serde::{Deserialize, Serialize};

use super::{ApiError, body};
use crate::app::Agent;

#[derive(Deserialize, Default)]
struct InitProducer {
    /// Present: start a new epoch of this producer, fencing the old one.
    #[serde(default)]
    producer_id: Option<u64>,
}

#[derive(Serialize)]
pub struct ProducerReady {
    producer_id: u64,
    epoch: u32,
}

/// `POST /v1/producers` with `{}` (or no body) for a new producer, or
/// `{"producer_id": n}` to bump its epoch.
pub async fn init(State(agent): State<Arc<Agent>>, raw: Body) -> Result<Json<ProducerReady>, ApiError> {
    let bytes = body::read(raw, agent.settings.max_request_bytes).await?;
    let req: InitProducer =
        if bytes.iter().all(u8::is_ascii_whitespace) { InitProducer::default() } else { body::json(&bytes)? };
    let committed = agent.log.commit(vec![Op::InitProducer { producer_id: req.producer_id }]).await?;
    match committed.outcomes.first() {
        Some(OpOutcome::ProducerReady { id, epoch }) => Ok(Json(ProducerReady { producer_id: *id, epoch: *epoch })),
        _ => Err(ApiError::producer_not_found(req.producer_id.unwrap_or_default())),
    }
}
