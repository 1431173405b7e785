//! v2 consumer instances, as members of Floe consumer groups named by their
//! clients: created, subscribed, read, committed and deleted through any
//! agent (each request runs on the group's coordinator).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{RestError, V2_JSON, base_url, embedded, media, no_content, path, v2_json};
use crate::api::body;
use crate::api::encoding::{self, Encoded, Encoding};
use crate::api::pieces::JsonPieces;
use crate::auth::Caller;
use crate::error::Error;
use crate::groups::{GroupRecord, GroupReply, GroupRequest, OffsetReset, Seek, SeekTo, TopicPartition};
use crate::service::Agent;
use floe_broker::entry::GroupOffset;

/// Kafka REST's `consumer.instance.timeout.ms` default: an instance nobody
/// uses for this long is dropped.
const INSTANCE_TIMEOUT_MS: u64 = 300_000;

fn err(e: Error) -> RestError {
    RestError::v2(e)
}

async fn body_json<T: serde::de::DeserializeOwned + Default>(agent: &Agent, raw: Body) -> Result<T, RestError> {
    let bytes = body::read(raw, agent.max_request_bytes()).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    body::json(&bytes).map_err(|e| RestError::new(422, 422, e.message))
}

async fn run(agent: &Agent, caller: &Caller, group: &str, req: GroupRequest) -> Result<GroupReply, RestError> {
    agent.group(caller, group, req).await.map_err(err)
}

#[derive(Deserialize, Default)]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(rename = "auto.offset.reset", default)]
    auto_offset_reset: Option<String>,
    /// Accepted; Floe does not commit on its own: commit with `POST …/offsets`.
    #[serde(rename = "auto.commit.enable", default)]
    #[allow(dead_code)]
    auto_commit_enable: Option<String>,
}

pub async fn create(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Body,
) -> Result<Response, RestError> {
    let group = path(p)?;
    let b: CreateBody = body_json(&agent, raw).await?;
    if let Some(f) = b.format.as_deref().filter(|f| !matches!(*f, "json" | "binary")) {
        return Err(RestError::new(422, 42204, format!("format {f:?} is not supported; Floe takes json and binary")));
    }
    // Kafka's consumer default is latest.
    let reset = match b.auto_offset_reset.as_deref().unwrap_or("latest") {
        "earliest" | "smallest" => OffsetReset::Earliest,
        "latest" | "largest" => OffsetReset::Latest,
        "none" => OffsetReset::None,
        other => {
            return Err(RestError::new(
                422,
                42204,
                format!("auto.offset.reset {other:?} is not earliest, latest or none"),
            ));
        }
    };
    let name = b.name.unwrap_or_else(|| format!("rest-consumer-{}", agent.fresh_id()));
    let req = GroupRequest::Join {
        topics: Vec::new(),
        session_timeout_ms: INSTANCE_TIMEOUT_MS,
        auto_offset_reset: reset,
        name: Some(name.clone()),
    };
    run(&agent, &caller, &group, req).await?;
    let base_uri = format!("{}/consumers/{group}/instances/{name}", base_url(&headers));
    Ok(v2_json(200, &json!({"instance_id": name, "base_uri": base_uri})))
}

pub async fn delete(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    run(&agent, &caller, &group, GroupRequest::Leave { member_id }).await?;
    Ok(no_content())
}

#[derive(Deserialize, Default)]
struct SubscribeBody {
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    topic_pattern: Option<String>,
}

pub async fn subscribe(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    raw: Body,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    let b: SubscribeBody = body_json(&agent, raw).await?;
    if b.topic_pattern.is_some() {
        return Err(RestError::new(422, 42204, "topic_pattern is not supported; name the topics"));
    }
    run(&agent, &caller, &group, GroupRequest::Subscribe { member_id, topics: b.topics }).await?;
    Ok(no_content())
}

pub async fn unsubscribe(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    run(&agent, &caller, &group, GroupRequest::Subscribe { member_id, topics: Vec::new() }).await?;
    Ok(no_content())
}

/// The member's view: its topics and its assigned partitions.
async fn view(
    agent: &Agent,
    caller: &Caller,
    group: &str,
    member_id: String,
) -> Result<(Vec<String>, Vec<TopicPartition>), RestError> {
    match run(agent, caller, group, GroupRequest::Heartbeat { member_id }).await? {
        GroupReply::Heartbeat { topics, assignments, .. } => Ok((topics, assignments)),
        other => Err(RestError::new(500, 500, format!("unexpected group reply {other:?}"))),
    }
}

pub async fn subscription(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    let (topics, _) = view(&agent, &caller, &group, member_id).await?;
    Ok(v2_json(200, &json!({ "topics": topics })))
}

pub async fn assignments(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    let (_, partitions) = view(&agent, &caller, &group, member_id).await?;
    Ok(v2_json(200, &json!({ "partitions": partitions })))
}

#[derive(Deserialize)]
pub struct RecordsQuery {
    #[serde(default)]
    timeout: Option<u64>,
    #[serde(default)]
    max_bytes: Option<usize>,
}

/// Records in the format the `Accept` header names (JSON when it names none).
pub async fn records(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<RecordsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    let Query(q) = q.map_err(|e| RestError::new(400, 400, e.body_text()))?;
    let format = match media(&headers, header::ACCEPT).as_deref() {
        None | Some("*/*" | "application/json" | "application/vnd.kafka.v2+json" | "") => Encoding::Json,
        Some(m) => embedded(m).ok_or_else(|| RestError::new(406, 406, "HTTP 406 Not Acceptable"))?,
    };
    let req = GroupRequest::Fetch {
        member_id,
        max_records: crate::service::validate::MAX_FETCH_RECORDS,
        max_bytes: q.max_bytes.unwrap_or(1 << 20).clamp(1, crate::service::validate::MAX_FETCH_BYTES),
        timeout_ms: q.timeout.unwrap_or(1_000).min(crate::service::validate::MAX_FETCH_TIMEOUT_MS),
        scope: Default::default(),
    };
    let GroupReply::Records { records, held } = run(&agent, &caller, &group, req).await? else {
        return Err(RestError::new(500, 500, "unexpected group reply"));
    };
    // A piece at a time, as a JSON array of `ConsumerRecord`s.
    let write = move |r: &GroupRecord, out: &mut Vec<u8>| {
        let record = ConsumerRecord {
            topic: &r.topic,
            partition: r.partition,
            offset: r.offset,
            key: r.record.key.as_ref().map(|k| encoding::encode(k, format).0),
            value: encoding::encode(&r.record.value, format).0,
        };
        serde_json::to_writer(out, &record)
    };
    Ok(JsonPieces::new("[", records, "]", held, write).into_response(V2_JSON))
}

/// A record as Kafka REST v2 gives it to a consumer, borrowing its bytes.
#[derive(Serialize)]
struct ConsumerRecord<'r> {
    topic: &'r str,
    partition: u32,
    offset: u64,
    key: Option<Encoded<'r>>,
    value: Encoded<'r>,
}

#[derive(Deserialize, Default)]
struct OffsetsBody {
    #[serde(default)]
    offsets: Vec<GroupOffset>,
}

/// Commits each given offset plus one, as Kafka REST v2 does (the committed
/// offset is the next to read); an empty body commits what was fetched.
pub async fn commit(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    raw: Body,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    let b: OffsetsBody = body_json(&agent, raw).await?;
    let offsets = b
        .offsets
        .into_iter()
        .map(|o| {
            let next = o.offset.checked_add(1).ok_or_else(|| RestError::new(422, 422, "offset out of range"))?;
            Ok(GroupOffset { offset: next, topic_id: None, ..o })
        })
        .collect::<Result<_, RestError>>()?;
    run(
        &agent,
        &caller,
        &group,
        GroupRequest::Commit { member_id, generation: None, offsets, scope: Default::default() },
    )
    .await?;
    Ok(no_content())
}

#[derive(Deserialize, Default)]
struct PartitionsBody {
    /// Kafka REST documents `partitions`; some clients send `offsets`.
    #[serde(default, alias = "offsets")]
    partitions: Vec<PartitionRef>,
}

#[derive(Deserialize)]
struct PartitionRef {
    topic: String,
    partition: u32,
    #[serde(default)]
    offset: Option<u64>,
}

/// The group's committed offsets for the given partitions.
pub async fn committed(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    raw: Body,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    let b: PartitionsBody = body_json(&agent, raw).await?;
    // The instance must exist, as in Kafka REST.
    view(&agent, &caller, &group, member_id).await?;
    let wanted: BTreeSet<(String, u32)> = b.partitions.into_iter().map(|p| (p.topic, p.partition)).collect();
    let committed = agent.group_offsets(&caller, &group).await.map_err(err)?;
    let offsets: Vec<Value> = committed
        .into_iter()
        .filter(|o| wanted.is_empty() || wanted.contains(&(o.topic.clone(), o.partition)))
        .map(|o| json!({"topic": o.topic, "partition": o.partition, "offset": o.offset, "metadata": ""}))
        .collect();
    Ok(v2_json(200, &json!({ "offsets": offsets })))
}

async fn seek_to(
    agent: &Agent,
    caller: &Caller,
    group: String,
    member_id: String,
    positions: Vec<Seek>,
) -> Result<Response, RestError> {
    run(agent, caller, &group, GroupRequest::Seek { member_id, positions }).await?;
    Ok(no_content())
}

pub async fn seek(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    raw: Body,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    let b: PartitionsBody = body_json(&agent, raw).await?;
    let positions = b
        .partitions
        .into_iter()
        .map(|p| {
            let offset = p.offset.ok_or_else(|| RestError::new(422, 422, "each position needs an offset"))?;
            Ok(Seek { topic: p.topic, partition: p.partition, to: SeekTo::Offset(offset) })
        })
        .collect::<Result<_, RestError>>()?;
    seek_to(&agent, &caller, group, member_id, positions).await
}

async fn seek_all(
    agent: &Agent,
    caller: &Caller,
    group: String,
    member_id: String,
    raw: Body,
    to: SeekTo,
) -> Result<Response, RestError> {
    let b: PartitionsBody = body_json(agent, raw).await?;
    let positions = b.partitions.into_iter().map(|p| Seek { topic: p.topic, partition: p.partition, to }).collect();
    seek_to(agent, caller, group, member_id, positions).await
}

pub async fn seek_beginning(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    raw: Body,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    seek_all(&agent, &caller, group, member_id, raw, SeekTo::Beginning).await
}

pub async fn seek_end(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    raw: Body,
) -> Result<Response, RestError> {
    let (group, member_id) = path(p)?;
    seek_all(&agent, &caller, group, member_id, raw, SeekTo::End).await
}
