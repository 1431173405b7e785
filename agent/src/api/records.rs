//! Produce and fetch records: JSON (or NDJSON) in, JSON (or server-sent events) out.

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
use crate::service::{Agent, FetchRequest, NewRecord, RecordOffset};

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

impl From<InRecord> for NewRecord {
    fn from(r: InRecord) -> Self {
        Self {
            key: r.key.map(Bytes::from),
            value: Bytes::from(r.value),
            partition: r.partition,
            headers: r.headers.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect(),
            timestamp: r.timestamp,
        }
    }
}

#[derive(Serialize)]
pub struct Produced {
    offsets: Vec<RecordOffset>,
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

pub async fn produce(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Body,
) -> Result<Json<Produced>, ApiError> {
    let Path(topic) = path?;
    let bytes = body::read(raw, agent.max_request_bytes()).await?;
    let (records, producer) = parse_records(&headers, &bytes)?;
    let stamp = producer.map(|p| ProducerStamp { id: p.id, epoch: p.epoch, sequence: p.sequence });
    let offsets = agent.produce(&topic, records.into_iter().map(NewRecord::from).collect(), stamp).await?;
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
    let mut req = FetchRequest {
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
        return Ok(tail::stream(agent.tail(req).await?));
    }
    let fetched = agent.fetch(&req).await?;
    let records = fetched.records.iter().map(|(offset, r)| OutRecord::new(*offset, r)).collect();
    Ok(Json(FetchResponse {
        records,
        next_offset: fetched.next_offset,
        high_watermark: fetched.high_watermark,
        log_start_offset: fetched.log_start_offset,
    })
    .into_response())
}
