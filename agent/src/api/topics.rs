//! Topic administration: create, list, describe.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use floe_broker::entry::Op;
use floe_broker::state::OpOutcome;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiError, body};
use crate::app::Agent;

/// Kafka's limit on topic name length.
const MAX_TOPIC_NAME: usize = 249;
pub const MAX_PARTITIONS: u32 = 10_000;

#[derive(Deserialize)]
pub struct CreateTopic {
    name: String,
    #[serde(default = "one")]
    partitions: u32,
}

fn one() -> u32 {
    1
}

#[derive(Serialize)]
pub struct TopicSummary {
    name: String,
    partitions: u32,
}

/// Kafka's rule: 1–249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=MAX_TOPIC_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_topic_name",
            format!(
                "topic names are 1 to {MAX_TOPIC_NAME} characters of letters, digits, '.', '_' and '-' (and not '.' or '..'); got {name:?}"
            ),
        ))
    }
}

pub async fn create(State(agent): State<Arc<Agent>>, raw: Body) -> Result<(StatusCode, Json<TopicSummary>), ApiError> {
    let req: CreateTopic = body::json(&body::read(raw, agent.settings.max_request_bytes).await?)?;
    validate_name(&req.name)?;
    if !(1..=MAX_PARTITIONS).contains(&req.partitions) {
        return Err(ApiError::bad_request(
            "invalid_partitions",
            format!("partitions must be between 1 and {MAX_PARTITIONS}; got {}", req.partitions),
        ));
    }
    let exists = |agent: &Agent| agent.log.state().topic(&req.name).is_some();
    if exists(&agent) {
        return Err(topic_exists(&req.name));
    }
    let committed =
        agent.log.commit(vec![Op::CreateTopic { name: req.name.clone(), partitions: req.partitions }]).await?;
    // Another agent may have created it first; the log decides.
    match committed.outcomes.first() {
        Some(OpOutcome::TopicCreated) => {
            tracing::info!(topic = %req.name, partitions = req.partitions, seq = committed.seq, "topic created");
            Ok((StatusCode::CREATED, Json(TopicSummary { name: req.name, partitions: req.partitions })))
        }
        _ => Err(topic_exists(&req.name)),
    }
}

fn topic_exists(name: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "topic_exists", format!("topic {name:?} already exists"))
}

pub async fn list(State(agent): State<Arc<Agent>>) -> Result<Json<Value>, ApiError> {
    agent.log.catch_up().await?;
    let state = agent.log.state();
    let topics: Vec<TopicSummary> = state
        .topics
        .iter()
        .map(|(name, t)| TopicSummary { name: name.clone(), partitions: t.partitions.len() as u32 })
        .collect();
    Ok(Json(json!({ "topics": topics })))
}

pub async fn describe(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    agent.log.catch_up().await?;
    let state = agent.log.state();
    let topic = state.topic(&name).ok_or_else(|| ApiError::topic_not_found(&name))?;
    let partitions: Vec<Value> = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "partition": i, "log_start_offset": p.log_start_offset, "high_watermark": p.high_watermark }))
        .collect();
    Ok(Json(json!({ "name": name, "partitions": partitions })))
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["orders", "a", "A.b_c-9", &"x".repeat(249)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "has space", "slash/no", "é", &"x".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
