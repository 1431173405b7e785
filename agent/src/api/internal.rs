//! Agent-to-agent endpoints, not part of the public API: an agent holding the
//! commit lease accepts other agents' entries here, and a group's coordinator
//! runs requests forwarded by other agents. Every call must carry this
//! cluster's credentials (`crate::peers`), and what it carries is validated
//! as a client's request would be.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use floe_broker::Committed;
use floe_broker::entry::Op;
use floe_broker::segment::BatchMeta;

use super::{ApiError, body, groups, topics};
use crate::app::Agent;
use crate::committer::{CommitError, ForwardedOps};
use crate::groups::{GroupAnswer, GroupRequest};

/// `POST /internal/v1/commit`: a follower's flushes, for the lease holder to group-commit.
pub async fn commit(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    raw: Body,
) -> Result<Json<Committed>, ApiError> {
    let expected = agent.peers.verify(&headers)?;
    let req: ForwardedOps = body::json(&body::read(raw, agent.settings.max_request_bytes).await?)?;
    for op in &req.ops {
        validate_forwarded(op)?;
    }
    match agent.committer.commit_for_follower(expected, req.ops).await {
        Ok(done) => Ok(Json(done)),
        Err(CommitError::NotHolder) => {
            Err(ApiError::new(StatusCode::CONFLICT, "not_lease_holder", "this agent does not hold the commit lease"))
        }
        Err(CommitError::Failed(e)) => Err(ApiError::from(e.as_ref())),
        Err(CommitError::Closed) => Err(ApiError::unavailable("shutting_down", "the agent is shutting down")),
    }
}

/// Followers forward only their flushes: appends of well-formed batches.
fn validate_forwarded(op: &Op) -> Result<(), ApiError> {
    let Op::Append { batches, .. } = op else {
        return Err(ApiError::bad_request("invalid_op", "agents forward only appends of their own flushes"));
    };
    if batches.is_empty() {
        return Err(ApiError::bad_request("invalid_op", "an append holds at least one batch"));
    }
    batches.iter().try_for_each(validate_batch)
}

fn validate_batch(b: &BatchMeta) -> Result<(), ApiError> {
    topics::validate_name(&b.topic)?;
    if b.records == 0 || b.len == 0 || b.max_timestamp < 0 {
        return Err(ApiError::bad_request("invalid_op", "a batch holds records, bytes and a non-negative timestamp"));
    }
    Ok(())
}

/// `POST /internal/v1/groups/{g}`: run a forwarded request here, as coordinator.
pub async fn group(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Body,
) -> Result<Json<GroupAnswer>, ApiError> {
    let expected = agent.peers.verify(&headers)?;
    let Path(group) = path?;
    topics::validate_group(&group)?;
    let req: GroupRequest = body::json(&body::read(raw, agent.settings.max_request_bytes).await?)?;
    groups::validate(&req)?;
    Ok(Json(agent.groups.run_forwarded(&agent, expected, &group, req).await))
}
