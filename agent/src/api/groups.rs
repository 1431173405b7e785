//! Consumer-group endpoints. Each request is run by the group's coordinator
//! (see `crate::groups`), except reading committed offsets, which any agent
//! answers from the log.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use floe_broker::entry::GroupOffset;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, body};
use crate::app::Agent;
use crate::groups::coordinator::OffsetReset;
use crate::groups::{GroupAnswer, GroupRequest};

fn respond(answer: GroupAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (status, Json(answer.body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(1));
    }
    response
}

async fn run(agent: &Agent, group: &str, req: GroupRequest) -> Result<Response, ApiError> {
    super::topics::validate_group(group)?;
    validate(&req)?;
    Ok(respond(agent.groups.handle(agent, group, req).await?))
}

/// The checks every group request passes, from a client or forwarded by an agent.
pub fn validate(req: &GroupRequest) -> Result<(), ApiError> {
    match req {
        GroupRequest::Fetch { max_records, max_bytes, timeout_ms, .. } => {
            super::records::check_fetch_limits(*max_records, *max_bytes, *timeout_ms)
        }
        GroupRequest::Commit { offsets, .. } => offsets.iter().try_for_each(|o| super::topics::validate_name(&o.topic)),
        GroupRequest::Join { topics, .. } => topics.iter().try_for_each(|t| super::topics::validate_name(t)),
        GroupRequest::Heartbeat { .. } | GroupRequest::Leave { .. } => Ok(()),
    }
}

#[derive(Deserialize)]
pub struct JoinBody {
    topics: Vec<String>,
    #[serde(default = "default_session")]
    session_timeout_ms: u64,
    #[serde(default)]
    auto_offset_reset: OffsetReset,
}

fn default_session() -> u64 {
    10_000
}

pub async fn join(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    raw: Body,
) -> Result<Response, ApiError> {
    let Path(group) = path?;
    let b: JoinBody = body::json(&body::read(raw, agent.settings.max_request_bytes).await?)?;
    let req = GroupRequest::Join {
        topics: b.topics,
        session_timeout_ms: b.session_timeout_ms,
        auto_offset_reset: b.auto_offset_reset,
    };
    run(&agent, &group, req).await
}

pub async fn heartbeat(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((group, member_id)) = path?;
    run(&agent, &group, GroupRequest::Heartbeat { member_id }).await
}

pub async fn leave(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((group, member_id)) = path?;
    run(&agent, &group, GroupRequest::Leave { member_id }).await
}

/// A member's fetch: the partition fetch's limits, without an offset (the
/// coordinator keeps the member's positions).
#[derive(Deserialize)]
pub struct FetchQuery {
    #[serde(default = "super::records::default_max_records")]
    max_records: usize,
    #[serde(default = "super::records::default_max_bytes")]
    max_bytes: usize,
    #[serde(default)]
    timeout_ms: u64,
}

pub async fn records(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<FetchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((group, member_id)) = path?;
    let Query(q) = query?;
    super::records::check_fetch_limits(q.max_records, q.max_bytes, q.timeout_ms)?;
    let req =
        GroupRequest::Fetch { member_id, max_records: q.max_records, max_bytes: q.max_bytes, timeout_ms: q.timeout_ms };
    run(&agent, &group, req).await
}

#[derive(Deserialize)]
pub struct CommitBody {
    member_id: String,
    generation: u64,
    offsets: Vec<GroupOffset>,
}

pub async fn commit(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    raw: Body,
) -> Result<Response, ApiError> {
    let Path(group) = path?;
    let b: CommitBody = body::json(&body::read(raw, agent.settings.max_request_bytes).await?)?;
    run(&agent, &group, GroupRequest::Commit { member_id: b.member_id, generation: b.generation, offsets: b.offsets })
        .await
}

/// Committed offsets and lag per partition, from the log (any agent answers).
pub async fn offsets(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(group) = path?;
    super::topics::validate_group(&group)?;
    agent.log.catch_up().await?;
    let state = agent.log.state();
    let mut out = Vec::new();
    if let Some(topics) = state.group_offsets.get(&group) {
        for (topic, partitions) in topics {
            for (partition, offset) in partitions {
                let hw = state.partition(topic, *partition).map_or(0, |p| p.high_watermark);
                out.push(json!({
                    "topic": topic, "partition": partition, "offset": offset,
                    "high_watermark": hw, "lag": hw.saturating_sub(*offset),
                }));
            }
        }
    }
    Ok(Json(json!({ "group": group, "offsets": out })))
}
