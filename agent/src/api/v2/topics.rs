//! v2 topics: metadata, partitions, offsets, and produce.

use std::sync::Arc;

use crate::api::layers::BodyReservation;
use axum::Extension;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{RestError, body_format, path, v2_json};
use crate::api::encoding::Raw;
use crate::api::{body, encoding};
use crate::auth::Caller;
use crate::error::Error;
use crate::service::{Agent, NewRecord, PartitionInfo};

fn err(e: Error) -> RestError {
    RestError::v2(e)
}

pub async fn list(State(agent): State<Arc<Agent>>, caller: Caller) -> Result<Response, RestError> {
    let names: Vec<String> = agent.list_topics(&caller).await.map_err(err)?.into_iter().map(|t| t.name).collect();
    Ok(v2_json(200, &names))
}

/// One broker that leads and holds every partition: the object store keeps
/// the copies, so there is nothing more to say.
fn partition_json(p: u32) -> Value {
    json!({"partition": p, "leader": 0, "replicas": [{"broker": 0, "leader": true, "in_sync": true}]})
}

pub async fn get(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Response, RestError> {
    let topic = path(p)?;
    let (info, partitions) = agent.describe_topic(&caller, &topic).await.map_err(err)?;
    let configs =
        json!({"retention.ms": info.retention_ms.to_string(), "retention.bytes": info.retention_bytes.to_string()});
    let partitions: Vec<Value> = partitions.iter().map(|p| partition_json(p.partition)).collect();
    Ok(v2_json(200, &json!({"name": info.name, "configs": configs, "partitions": partitions})))
}

pub async fn partitions(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Response, RestError> {
    let topic = path(p)?;
    let (_, partitions) = agent.describe_topic(&caller, &topic).await.map_err(err)?;
    Ok(v2_json(200, &partitions.iter().map(|p| partition_json(p.partition)).collect::<Vec<_>>()))
}

async fn one_partition(
    agent: &Agent,
    caller: &Caller,
    topic: &str,
    partition: u32,
) -> Result<PartitionInfo, RestError> {
    let (_, partitions) = agent.describe_topic(caller, topic).await.map_err(err)?;
    partitions
        .into_iter()
        .find(|p| p.partition == partition)
        .ok_or_else(|| err(Error::PartitionNotFound { topic: topic.to_owned(), partition }))
}

pub async fn partition(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, u32)>, PathRejection>,
) -> Result<Response, RestError> {
    let (topic, partition) = path(p)?;
    let p = one_partition(&agent, &caller, &topic, partition).await?;
    Ok(v2_json(200, &partition_json(p.partition)))
}

pub async fn offsets(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, u32)>, PathRejection>,
) -> Result<Response, RestError> {
    let (topic, partition) = path(p)?;
    let p = one_partition(&agent, &caller, &topic, partition).await?;
    Ok(v2_json(200, &json!({"beginning_offset": p.log_start_offset, "end_offset": p.high_watermark})))
}

#[derive(Deserialize)]
struct ProduceBody<'a> {
    #[serde(borrow, deserialize_with = "crate::api::body::bounded_list")]
    records: Vec<InRecord<'a>>,
}

/// Keys and values stay JSON text in the body until they are decoded (see `Raw`).
#[derive(Deserialize)]
struct InRecord<'a> {
    #[serde(default, borrow)]
    key: Option<Raw<'a>>,
    #[serde(default, borrow)]
    value: Option<Raw<'a>>,
    #[serde(default)]
    partition: Option<u32>,
}

impl body::RecordHeaders for InRecord<'_> {
    fn header_count(&self) -> usize {
        0
    }
}

#[derive(Serialize)]
struct OffsetReport {
    partition: Option<u32>,
    offset: Option<u64>,
    error_code: Option<u32>,
    error: Option<String>,
}

pub async fn produce(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    reservation: Option<Extension<BodyReservation>>,
    raw: Body,
) -> Result<Response, RestError> {
    let topic = path(p)?;
    produce_records(&agent, &caller, &topic, None, &headers, reservation, raw).await
}

pub async fn produce_to_partition(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, u32)>, PathRejection>,
    headers: HeaderMap,
    reservation: Option<Extension<BodyReservation>>,
    raw: Body,
) -> Result<Response, RestError> {
    let (topic, partition) = path(p)?;
    produce_records(&agent, &caller, &topic, Some(partition), &headers, reservation, raw).await
}

/// All records of a request are written together or not at all (Floe's
/// produce is atomic); the answer lists an offset per record.
async fn produce_records(
    agent: &Agent,
    caller: &Caller,
    topic: &str,
    partition: Option<u32>,
    headers: &HeaderMap,
    reservation: Option<Extension<BodyReservation>>,
    raw: Body,
) -> Result<Response, RestError> {
    let format = body_format(headers)?;
    // Refused before the body is read (the service checks again).
    caller.check(crate::auth::Action::Produce(topic)).map_err(err)?;
    let bytes = body::read(raw, agent.max_request_bytes()).await?;
    let req: ProduceBody = body::json(&bytes).map_err(|e| RestError::new(422, 42206, e.message))?;
    let records = req
        .records
        .into_iter()
        .map(|r| {
            let key = r.key.map(|k| encoding::decode("key", k, Some(format))).transpose()?;
            let value = match r.value {
                Some(v) => encoding::decode("value", v, Some(format))?,
                None => bytes::Bytes::new(),
            };
            Ok(NewRecord { key, value, partition: partition.or(r.partition), headers: Vec::new(), timestamp: None })
        })
        .collect::<Result<Vec<_>, crate::api::ApiError>>()
        .map_err(|e| RestError::new(422, 42205, e.message))?;
    drop(bytes);
    let buffered = BodyReservation::releaser(reservation);
    let produced = agent
        .produce(caller, topic, records, None, crate::service::Acks::Committed, buffered)
        .await
        .map_err(|e| match e {
            Error::InRecord { error, .. } => err(*error),
            e => err(e),
        })?;
    let offsets: Vec<OffsetReport> = produced
        .offsets
        .into_iter()
        .map(|o| OffsetReport { partition: Some(o.partition), offset: Some(o.offset), error_code: None, error: None })
        .collect();
    Ok(v2_json(200, &json!({"key_schema_id": null, "value_schema_id": null, "offsets": offsets})))
}
