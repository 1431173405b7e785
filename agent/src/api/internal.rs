//! Agent-to-agent endpoints, not part of the public API: an agent holding the
//! commit lease accepts other agents' entries here, and a group's coordinator
//! runs requests forwarded by other agents. Credentials are checked before
//! the body is read (`crate::peers`).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use floe_broker::Committed;

use super::{ApiError, body, pieces};
use crate::committer::ForwardedOps;
use crate::groups::{GroupReply, GroupRequest};
use crate::peers::{CLUSTER_HEADER, HOLDER_HEADER, PeerCall};
use crate::service::{Agent, Peer};

fn verify(agent: &Agent, headers: &HeaderMap) -> Result<Peer, ApiError> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let call = PeerCall {
        authorization: value(header::AUTHORIZATION.as_str()),
        cluster: value(CLUSTER_HEADER),
        expected_holder: value(HOLDER_HEADER),
    };
    Ok(agent.verify_peer(&call)?)
}

/// `POST /internal/v1/commit`: a follower's flushes, for the lease holder to group-commit.
pub async fn commit(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    raw: Body,
) -> Result<Json<Committed>, ApiError> {
    let peer = verify(&agent, &headers)?;
    let req: ForwardedOps = body::json(&body::read(raw, agent.max_request_bytes()).await?)?;
    Ok(Json(agent.forwarded_commit(peer, req.ops).await?))
}

/// `POST /internal/v2/groups/{g}`: run a forwarded request here, as
/// coordinator. The coordinator's answer, reply or error, travels typed.
pub async fn group(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Body,
) -> Result<Response, ApiError> {
    let peer = verify(&agent, &headers)?;
    let Path(group) = path?;
    let req: GroupRequest = body::json(&body::read(raw, agent.max_request_bytes()).await?)?;
    let mut reply = agent.forwarded_group(peer, &group, req).await;
    // Fetched records stay counted while their JSON goes out.
    let held = match &mut reply {
        Ok(GroupReply::Records { held, .. }) => std::mem::take(held),
        _ => Default::default(),
    };
    Ok(pieces::holding(Json(reply).into_response(), held))
}
