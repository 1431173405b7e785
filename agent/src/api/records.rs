//! Produce and fetch records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use floe_broker::Record;
use floe_broker::segment::ProducerStamp;
use serde::{Deserialize, Serialize};

use super::{ApiError, body, tail};
use crate::app::Agent;
use crate::partitioner;
use crate::writer::PartitionRecords;

pub const MAX_FETCH_RECORDS: usize = 10_000;
pub const MAX_FETCH_BYTES: usize = 64 << 20;
pub const MAX_FETCH_TIMEOUT_MS: u64 = 60_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceBody {
    records: Vec<InRecord>,
    #[serde(default)]
    producer: Option<ProducerRef>,
}

/// An idempotent producer's stamp on a request: `sequence` is the sequence of
/// the request's first record in its (single) partition.
#[derive(Deserialize, Clone, Copy)]
struct ProducerRef {
    id: u64,
    epoch: u32,
    sequence: u64,
}

/// Unknown fields are refused: a misspelt field, or a `producer` on an NDJSON
/// line (idempotence is per request, in the JSON body), must not be ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InRecord {
    #[serde(default)]
    key: Option<String>,
    value: String,
    #[serde(default)]
    partition: Option<u32>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    timestamp: Option<i64>,
}

#[derive(Serialize)]
pub struct Offset {
    partition: u32,
    offset: u64,
}

#[derive(Serialize)]
pub struct Produced {
    offsets: Vec<Offset>,
}

/// NDJSON when the request says so; JSON otherwise (curl's `-d` labels JSON as a form).
fn parse_records(headers: &HeaderMap, bytes: &[u8]) -> Result<(Vec<InRecord>, Option<ProducerRef>), ApiError> {
    if body::media_type(headers) != "application/x-ndjson" {
        let body = body::json::<ProduceBody>(bytes)?;
        return Ok((body.records, body.producer));
    }
    let records = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| {
            serde_json::from_slice(line)
                .map_err(|e| ApiError::bad_request("invalid_json", format!("line {}: {e}", i + 1)).with("line", i + 1))
        })
        .collect::<Result<_, _>>()?;
    Ok((records, None))
}

/// Refuses, before anything is buffered, a producer the log does not know or
/// has fenced. The log re-checks on apply; this only answers early.
async fn check_producer(agent: &Agent, producer: &ProducerRef) -> Result<(), ApiError> {
    let current = |agent: &Agent| agent.log.state().producers.get(&producer.id).map(|p| p.epoch);
    let mut epoch = current(agent);
    if epoch.is_none_or(|e| e < producer.epoch) {
        agent.log.catch_up().await?;
        epoch = current(agent);
    }
    match epoch {
        None => Err(ApiError::producer_not_found(producer.id)),
        Some(e) if e != producer.epoch => Err(ApiError::producer_fenced(producer.id, producer.epoch, e)),
        Some(_) => Ok(()),
    }
}

pub async fn produce(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Body,
) -> Result<Json<Produced>, ApiError> {
    let Path(topic) = path?;
    let bytes = body::read(raw, agent.settings.max_request_bytes).await?;
    let (records, producer) = parse_records(&headers, &bytes)?;
    if records.is_empty() {
        return Err(ApiError::bad_request("invalid_request", "a produce request needs at least one record"));
    }
    let partitions = match agent.partition_count(&topic) {
        Some(n) => n,
        None => {
            agent.log.catch_up().await?;
            agent.partition_count(&topic).ok_or_else(|| ApiError::topic_not_found(&topic))?
        }
    };
    // Topics are created with at least one partition; an old log may hold one without.
    if partitions == 0 {
        return Err(ApiError::partition_not_found(&topic, 0));
    }

    // Validate and place every record before buffering any: nothing is half-applied.
    let now = i64::try_from(agent.log.node().now_ms()).unwrap_or(i64::MAX);
    let mut sticky = None;
    let mut groups: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
    let mut placed = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        if r.timestamp.is_some_and(|t| t < 0) {
            return Err(ApiError::bad_request(
                "invalid_timestamp",
                "record timestamps are milliseconds since the Unix epoch, never negative",
            )
            .with("record_index", i));
        }
        let partition = match (r.partition, &r.key) {
            (Some(p), _) if p >= partitions => {
                return Err(ApiError::partition_not_found(&topic, p).with("record_index", i));
            }
            (Some(p), _) => p,
            (None, Some(key)) => partitioner::for_key(key.as_bytes(), partitions),
            (None, None) => *sticky.get_or_insert_with(|| agent.sticky.next(partitions)),
        };
        let group = groups.entry(partition).or_default();
        placed.push((partition, group.len() as u64));
        group.push(Record {
            key: r.key.map(Bytes::from),
            value: Bytes::from(r.value),
            timestamp: r.timestamp.unwrap_or(now),
            headers: r.headers.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect(),
        });
    }
    if let Some(producer) = &producer {
        if groups.len() > 1 {
            return Err(ApiError::bad_request(
                "invalid_request",
                "an idempotent request (with \"producer\") must put all its records in one partition",
            ));
        }
        check_producer(&agent, producer).await?;
    }
    let stamp = producer.map(|p| ProducerStamp { id: p.id, epoch: p.epoch, sequence: p.sequence });
    let order: Vec<u32> = groups.keys().copied().collect();
    let parts = groups
        .into_iter()
        .map(|(partition, records)| PartitionRecords { partition, producer: stamp, records })
        .collect();
    let bases = agent.writer.append(topic, parts).await?;
    let base_of: BTreeMap<u32, u64> = order.into_iter().zip(bases).collect();
    let offsets = placed
        .into_iter()
        .map(|(partition, index)| Offset {
            partition,
            offset: base_of.get(&partition).copied().unwrap_or_default() + index,
        })
        .collect();
    Ok(Json(Produced { offsets }))
}

#[derive(Deserialize)]
pub struct FetchQuery {
    #[serde(default)]
    offset: u64,
    #[serde(default = "default_max_records")]
    max_records: usize,
    #[serde(default = "default_max_bytes")]
    max_bytes: usize,
    #[serde(default)]
    timeout_ms: u64,
}

pub fn default_max_records() -> usize {
    500
}

pub fn default_max_bytes() -> usize {
    1 << 20
}

#[derive(Serialize)]
pub struct OutRecord {
    offset: u64,
    key: Option<String>,
    value: String,
    timestamp: i64,
    headers: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct FetchResponse {
    records: Vec<OutRecord>,
    next_offset: u64,
    high_watermark: u64,
    log_start_offset: u64,
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn check_fetch_limits(max_records: usize, max_bytes: usize, timeout_ms: u64) -> Result<(), ApiError> {
    let in_range = (1..=MAX_FETCH_RECORDS).contains(&max_records)
        && (1..=MAX_FETCH_BYTES).contains(&max_bytes)
        && timeout_ms <= MAX_FETCH_TIMEOUT_MS;
    if in_range {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "invalid_query",
        format!(
            "max_records must be 1..={MAX_FETCH_RECORDS}, max_bytes 1..={MAX_FETCH_BYTES}, timeout_ms 0..={MAX_FETCH_TIMEOUT_MS}"
        ),
    ))
}

impl OutRecord {
    pub fn new(offset: u64, r: &Record) -> Self {
        Self {
            offset,
            key: r.key.as_ref().map(text),
            value: text(&r.value),
            timestamp: r.timestamp,
            headers: r.headers.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        }
    }
}

pub async fn fetch(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<(String, u32)>, PathRejection>,
    query: Result<Query<FetchQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((topic, partition)) = path?;
    let Query(q) = query?;
    check_fetch_limits(q.max_records, q.max_bytes, q.timeout_ms)?;
    let mut req = crate::reader::FetchRequest {
        topic,
        partition,
        offset: q.offset,
        max_records: q.max_records,
        max_bytes: q.max_bytes,
        timeout: Duration::from_millis(q.timeout_ms),
    };
    if tail::wants_stream(&headers) {
        // Resuming: the last event id is the next offset to read.
        if let Some(resume) = tail::last_event_id(&headers) {
            req.offset = resume;
        }
        return tail::stream(agent, req).await;
    }
    let fetched = agent.reader.fetch(&req).await?;
    let records = fetched.records.iter().map(|(offset, r)| OutRecord::new(*offset, r)).collect();
    Ok(Json(FetchResponse {
        records,
        next_offset: fetched.next_offset,
        high_watermark: fetched.high_watermark,
        log_start_offset: fetched.log_start_offset,
    })
    .into_response())
}
