//! Topic administration: create, list, describe.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use floe_broker::entry::{Op, TopicConfig};
use floe_broker::state::{OpOutcome, Topic};
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
pub struct TopicSummary {
    name: String,
    partitions: u32,
    retention_ms: i64,
    retention_bytes: i64,
}

impl TopicSummary {
    fn new(name: &str, topic: &Topic) -> Self {
        Self {
            name: name.to_owned(),
            partitions: topic.partitions.len() as u32,
            retention_ms: topic.config.retention_ms,
            retention_bytes: topic.config.retention_bytes,
        }
    }
}

/// Applies the given settings over `config`; -1 means unlimited, as in Kafka.
fn with_settings(
    mut config: TopicConfig,
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
) -> Result<TopicConfig, ApiError> {
    for (name, value) in [("retention_ms", retention_ms), ("retention_bytes", retention_bytes)] {
        if value.is_some_and(|v| v < -1 || v == 0) {
            return Err(ApiError::bad_request(
                "invalid_config",
                format!("{name} must be positive, or -1 for unlimited"),
            ));
        }
    }
    config.retention_ms = retention_ms.unwrap_or(config.retention_ms);
    config.retention_bytes = retention_bytes.unwrap_or(config.retention_bytes);
    Ok(config)
}

/// Group ids follow the topic-name rule (they travel in URL paths).
pub fn validate_group(name: &str) -> Result<(), ApiError> {
    validate_name(name).map_err(|mut e| {
        e.code = "invalid_group_name";
        e.message = format!(
            "group ids are 1 to {MAX_TOPIC_NAME} characters of letters, digits, '.', '_' and '-'; got {name:?}"
        );
        e
    })
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
    let config = with_settings(TopicConfig::default(), req.retention_ms, req.retention_bytes)?;
    if agent.log.state().topic(&req.name).is_some() {
        return Err(topic_exists(&req.name));
    }
    let op = Op::CreateTopic { name: req.name.clone(), partitions: req.partitions, config };
    let committed = agent.log.commit(vec![op]).await?;
    // Another agent may have created it first; the log decides.
    match committed.outcomes.first() {
        Some(OpOutcome::TopicCreated) => {
            tracing::info!(topic = %req.name, partitions = req.partitions, seq = committed.seq, "topic created");
            let topic = Topic { partitions: Vec::new(), config };
            let summary = TopicSummary { partitions: req.partitions, ..TopicSummary::new(&req.name, &topic) };
            Ok((StatusCode::CREATED, Json(summary)))
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
    let topics: Vec<TopicSummary> = state.topics.iter().map(|(name, t)| TopicSummary::new(name, t)).collect();
    Ok(Json(json!({ "topics": topics })))
}

pub async fn describe(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    agent.log.catch_up().await?;
    describe_applied(&agent, &name)
}

fn describe_applied(agent: &Agent, name: &str) -> Result<Json<Value>, ApiError> {
    let state = agent.log.state();
    let topic = state.topic(name).ok_or_else(|| ApiError::topic_not_found(name))?;
    let partitions: Vec<Value> = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "partition": i, "log_start_offset": p.log_start_offset, "high_watermark": p.high_watermark }))
        .collect();
    Ok(Json(json!({
        "name": name,
        "partitions": partitions,
        "retention_ms": topic.config.retention_ms,
        "retention_bytes": topic.config.retention_bytes,
    })))
}

pub async fn update(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    raw: Body,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    let req: UpdateTopic = body::json(&body::read(raw, agent.settings.max_request_bytes).await?)?;
    agent.log.catch_up().await?;
    let current = agent.log.state().topic(&name).map(|t| t.config).ok_or_else(|| ApiError::topic_not_found(&name))?;
    let config = with_settings(current, req.retention_ms, req.retention_bytes)?;
    if config == current {
        return describe_applied(&agent, &name);
    }
    let committed = agent.log.commit(vec![Op::UpdateTopic { name: name.clone(), config }]).await?;
    match committed.outcomes.first() {
        Some(OpOutcome::TopicUpdated) => describe_applied(&agent, &name),
        _ => Err(ApiError::topic_not_found(&name)),
    }
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
