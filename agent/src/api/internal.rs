//! Agent-to-agent endpoints. Not part of the public API: an agent holding the
//! commit lease accepts other agents' entries here.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use floe_broker::Committed;

use super::{ApiError, body};
use crate::app::Agent;
use crate::committer::{CommitError, ForwardedOps};

pub async fn commit(State(agent): State<Arc<Agent>>, raw: Body) -> Result<Json<Committed>, ApiError> {
    let req: ForwardedOps = body::json(&body::read(raw, agent.settings.max_request_bytes).await?)?;
    match agent.committer.commit_for_follower(req.ops).await {
        Ok(done) => Ok(Json(done)),
        Err(CommitError::NotHolder) => {
            Err(ApiError::new(StatusCode::CONFLICT, "not_lease_holder", "this agent does not hold the commit lease"))
        }
        Err(CommitError::Failed(e)) => Err(ApiError::unavailable("commit_failed", e)),
    }
}
