//! `POST /v3/clusters/{c}/topics/{t}/records`: one record per JSON object,
//! several concatenated (Kafka REST's streaming mode), one delivery report
//! per record in the same order, each with its own `error_code`.
//!
//! The body is read whole (up to `--max-request-bytes`) and the reports are
//! sent together once every record is durable, whether or not the body was
//! chunked: each report still answers its own record.

use std::sync::Arc;

use crate::api::layers::BodyReservation;

use axum::Extension;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{RestError, check_accept, check_content_type};
use crate::api::body;
use crate::api::encoding::Raw;
use crate::auth::Caller;
use crate::error::Error;
use crate::service::{Acks, Agent, NewRecord};

#[derive(Deserialize)]
struct ProduceRequest<'a> {
    #[serde(default)]
    partition_id: Option<i64>,
    #[serde(default)]
    headers: body::HeaderList<Header>,
    #[serde(default, borrow)]
    key: Option<Data<'a>>,
    #[serde(default, borrow)]
    value: Option<Data<'a>>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    /// Base64, as Kafka REST writes header values.
    #[serde(default)]
    value: Option<String>,
}

impl body::RecordHeaders for ProduceRequest<'_> {
    fn header_count(&self) -> usize {
        self.headers.count()
    }
}

/// `data` stays JSON text in the body until it is decoded (see `Raw`).
#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default, borrow)]
    data: Option<Raw<'a>>,
}

#[derive(Serialize)]
struct Report {
    /// The HTTP status of a failure, for a request of one record.
    #[serde(skip)]
    status: Option<u16>,
    error_code: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<DataReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<DataReport>,
}

#[derive(Clone, Serialize)]
struct DataReport {
    #[serde(rename = "type")]
    kind: &'static str,
    size: usize,
}

impl Report {
    fn failed(e: RestError) -> Self {
        let (error_code, message) = e.parts();
        Self {
            status: Some(e.status()),
            error_code,
            message: Some(message),
            cluster_id: None,
            topic_name: None,
            partition_id: None,
            offset: None,
            timestamp: None,
            key: None,
            value: None,
        }
    }
}

fn bad(message: impl Into<String>) -> RestError {
    RestError::new(400, 400, message)
}

/// The bytes of a key or value, and its type for the report.
fn data_bytes(what: &str, d: &Data<'_>) -> Result<(Bytes, &'static str), RestError> {
    let text = || d.data.and_then(Raw::string);
    match d.kind.as_deref() {
        Some("BINARY") => text()
            .and_then(|s| BASE64.decode(s.as_bytes()).ok())
            .map(|b| (Bytes::from(b), "BINARY"))
            .ok_or_else(|| bad(format!("Bad Request: {what} data is not a base64 string."))),
        Some("STRING") => text()
            .map(|s| (Bytes::from(s.into_owned()), "STRING"))
            .ok_or_else(|| bad(format!("Bad Request: {what} data is not a string."))),
        Some("JSON") => Ok((d.data.map_or_else(|| Bytes::from_static(b"null"), Raw::compact), "JSON")),
        Some(other) => Err(RestError::new(
            400,
            400,
            format!("Bad Request: {what} type {other:?} is not supported; Floe takes BINARY, JSON and STRING"),
        )),
        None => Err(RestError::new(
            400,
            400,
            format!("Bad Request: {what} has no type; schema-registry formats are not supported"),
        )),
    }
}

struct Parsed {
    record: NewRecord,
    key: Option<DataReport>,
    value: Option<DataReport>,
    timestamp: Option<String>,
}

fn parse(req: ProduceRequest<'_>) -> Result<Parsed, RestError> {
    let key = req.key.as_ref().map(|k| data_bytes("key", k)).transpose()?;
    let value = req.value.as_ref().map(|v| data_bytes("value", v)).transpose()?;
    let partition = req
        .partition_id
        .map(|p| u32::try_from(p).map_err(|_| bad(format!("Bad Request: partition_id {p} is out of range."))))
        .transpose()?;
    let timestamp = req
        .timestamp
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| bad(format!("Bad Request: timestamp {t:?} is not an RFC 3339 date-time: {e}")))
        })
        .transpose()?;
    let headers = req
        .headers
        .items
        .iter()
        .map(|h| {
            let value = h.value.as_deref().unwrap_or("");
            let bytes =
                BASE64.decode(value).map_err(|_| bad(format!("Bad Request: header {:?} is not base64.", h.name)))?;
            Ok((h.name.clone(), Bytes::from(bytes)))
        })
        .collect::<Result<_, RestError>>()?;
    let report = |(bytes, kind): &(Bytes, &'static str)| DataReport { kind, size: bytes.len() };
    Ok(Parsed {
        key: key.as_ref().map(report),
        value: value.as_ref().map(report),
        record: NewRecord {
            key: key.map(|(b, _)| b),
            // Floe has no null values: a record without one holds no bytes.
            value: value.map(|(b, _)| b).unwrap_or_default(),
            partition,
            headers,
            timestamp,
        },
        timestamp: req.timestamp,
    })
}

pub async fn produce(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    reservation: Option<Extension<BodyReservation>>,
    raw: Body,
) -> Result<Response, RestError> {
    let (_, topic) = p.map(|Path(t)| t).map_err(|e| RestError::new(400, 400, e.body_text()))?;
    check_accept(&headers)?;
    check_content_type(&headers)?;
    // Refused before the body is read (the service checks again).
    caller.check(crate::auth::Action::Produce(&topic))?;
    let bytes = body::read(raw, agent.max_request_bytes()).await?;
    let mut reports: Vec<Option<Report>> = Vec::new();
    let mut good: Vec<(usize, Parsed)> = Vec::new();
    let mut headers = 0;
    for item in serde_json::Deserializer::from_slice(&bytes).into_iter::<ProduceRequest>() {
        let index = reports.len();
        if index == body::MAX_RECORDS_PER_REQUEST {
            return Err(bad(format!(
                "Bad Request: more than {} records in one request",
                body::MAX_RECORDS_PER_REQUEST
            )));
        }
        if let Ok(req) = &item {
            body::count_headers(&mut headers, req).map_err(|e| bad(format!("Bad Request: {e}")))?;
        }
        match item {
            Ok(req) => match parse(req) {
                Ok(parsed) => {
                    good.push((index, parsed));
                    reports.push(None);
                }
                Err(e) => reports.push(Some(Report::failed(e))),
            },
            // A body that stops being JSON cannot be read further.
            Err(e) => {
                reports.push(Some(Report::failed(bad(format!("Bad Request: {e}")))));
                break;
            }
        }
    }
    drop(bytes);
    if reports.is_empty() {
        return Err(RestError::new(422, 422, "Payload error. Request body is empty. Data is required."));
    }
    let cluster_id = agent.cluster_id();
    // Every record is checked at once; those the service would refuse get
    // their error, and the rest go in one request. (The topic itself failing
    // fails the whole request, as in Kafka REST.)
    if !good.is_empty() {
        let checks = agent.check_records(&caller, &topic, good.iter().map(|(_, p)| &p.record)).await?;
        let mut records = Vec::with_capacity(good.len());
        let mut accepted = Vec::with_capacity(good.len());
        for ((index, mut parsed), check) in good.into_iter().zip(checks) {
            match check {
                // The record moves to the request; its report data stays.
                Ok(()) => {
                    records.push(std::mem::take(&mut parsed.record));
                    accepted.push((index, parsed));
                }
                Err(e) => reports[index] = Some(Report::failed(RestError::from(e))),
            }
        }
        good = accepted;
        if !good.is_empty() {
            match agent
                .produce(&caller, &topic, records, None, Acks::Committed, BodyReservation::releaser(reservation))
                .await
            {
                Ok(produced) => {
                    for ((index, parsed), placed) in good.into_iter().zip(produced.offsets) {
                        reports[index] = Some(Report {
                            status: None,
                            error_code: 200,
                            message: None,
                            cluster_id: Some(cluster_id.clone()),
                            topic_name: Some(topic.clone()),
                            partition_id: Some(placed.partition),
                            offset: Some(placed.offset),
                            timestamp: parsed.timestamp,
                            key: parsed.key,
                            value: parsed.value,
                        });
                    }
                }
                Err(e @ Error::TopicNotFound { .. }) => return Err(e.into()),
                // Nothing of the request was written: every record gets the error.
                Err(e) => {
                    let e = RestError::from(e);
                    for (index, _) in good {
                        reports[index] = Some(Report::failed(RestError::new(e.status(), e.parts().0, e.parts().1)));
                    }
                }
            }
        }
    }
    // One record alone: its failure is the answer's status, as Kafka REST
    // answers a request that is not streamed.
    if let [Some(only)] = reports.as_slice()
        && only.error_code != 200
    {
        let status = only.status.unwrap_or(400);
        return Err(RestError::new(status, only.error_code, only.message.clone().unwrap_or_default()));
    }
    let mut out = Vec::new();
    for report in reports.into_iter().flatten() {
        serde_json::to_writer(&mut out, &report).map_err(|e| RestError::new(500, 500, e.to_string()))?;
    }
    let mut response = (StatusCode::OK, out).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
