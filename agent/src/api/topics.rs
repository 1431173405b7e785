//! Topic administration: create, list, describe, update.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, body};
use crate::auth::Caller;
use crate::service::{Agent, NewTopic, PartitionInfo, TopicInfo, TopicUpdate};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    name: String,
    #[serde(default = "one")]
    partitions: u32,
    #[serde(default)]
    retention_ms: Option<i64>,
    #[serde(default)]
    retention_bytes: Option<i64>,
}

/// `PATCH /v1/topics/{t}`: the settings to change; absent ones keep their value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTopic {
    #[serde(default)]
    retention_ms: Option<i64>,
    #[serde(default)]
    retention_bytes: Option<i64>,
}

fn one() -> u32 {
    1
}

#[derive(Serialize)]
pub struct TopicList {
    topics: Vec<TopicInfo>,
}

/// A topic with its partitions' offsets.
#[derive(Serialize)]
pub struct TopicDetail {
    name: String,
    partitions: Vec<PartitionInfo>,
    retention_ms: i64,
    retention_bytes: i64,
}

impl From<(TopicInfo, Vec<PartitionInfo>)> for TopicDetail {
    fn from((info, partitions): (TopicInfo, Vec<PartitionInfo>)) -> Self {
        Self { name: info.name, partitions, retention_ms: info.retention_ms, retention_bytes: info.retention_bytes }
    }
}

pub async fn create(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    raw: Body,
) -> Result<(StatusCode, Json<TopicInfo>), ApiError> {
    let req: CreateTopic = body::json(&body::read(raw, agent.max_request_bytes()).await?)?;
    let spec = NewTopic {
        name: req.name,
        partitions: req.partitions,
        retention_ms: req.retention_ms,
        retention_bytes: req.retention_bytes,
    };
    Ok((StatusCode::CREATED, Json(agent.create_topic(&caller, spec).await?)))
}

pub async fn list(State(agent): State<Arc<Agent>>, caller: Caller) -> Result<Json<TopicList>, ApiError> {
    Ok(Json(TopicList { topics: agent.list_topics(&caller).await? }))
}

pub async fn describe(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TopicDetail>, ApiError> {
    let Path(name) = path?;
    Ok(Json(agent.describe_topic(&caller, &name).await?.into()))
}

pub async fn update(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    raw: Body,
) -> Result<Json<TopicDetail>, ApiError> {
    let Path(name) = path?;
    let req: UpdateTopic = body::json(&body::read(raw, agent.max_request_bytes()).await?)?;
    let update = TopicUpdate { retention_ms: req.retention_ms, retention_bytes: req.retention_bytes };
    Ok(Json(agent.update_topic(&caller, &name, update).await?.into()))
}

pub async fn delete(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(name) = path?;
    agent.delete_topic(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
