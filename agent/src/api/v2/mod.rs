//! Confluent REST Proxy API v2: topics, produce, and consumer instances.
//! A thin face over the service: a consumer instance is a member of a Floe
//! consumer group, named by its client, so any agent serves it
//! (docs/migrating-from-rest-proxy.md).

mod consumers;
mod topics;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::encoding::Encoding;
use super::rest_error::RestError;
use crate::service::Agent;

pub(super) const V2_JSON: &str = "application/vnd.kafka.v2+json";

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/topics", get(topics::list))
        .route("/topics/{topic}", get(topics::get).post(topics::produce))
        .route("/topics/{topic}/partitions", get(topics::partitions))
        .route("/topics/{topic}/partitions/{partition}", get(topics::partition).post(topics::produce_to_partition))
        .route("/topics/{topic}/partitions/{partition}/offsets", get(topics::offsets))
        .route("/consumers/{group}", post(consumers::create))
        .route("/consumers/{group}/instances/{instance}", axum::routing::delete(consumers::delete))
        .route(
            "/consumers/{group}/instances/{instance}/subscription",
            get(consumers::subscription).post(consumers::subscribe).delete(consumers::unsubscribe),
        )
        .route("/consumers/{group}/instances/{instance}/assignments", get(consumers::assignments))
        .route("/consumers/{group}/instances/{instance}/records", get(consumers::records))
        .route("/consumers/{group}/instances/{instance}/offsets", get(consumers::committed).post(consumers::commit))
        .route("/consumers/{group}/instances/{instance}/positions", post(consumers::seek))
        .route("/consumers/{group}/instances/{instance}/positions/beginning", post(consumers::seek_beginning))
        .route("/consumers/{group}/instances/{instance}/positions/end", post(consumers::seek_end))
}

/// A JSON answer labelled as Kafka REST v2 labels its own.
fn v2_json(status: u16, value: &impl Serialize) -> Response {
    let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    let mut response = (status, axum::Json(value)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(V2_JSON));
    response
}

fn no_content() -> Response {
    axum::http::StatusCode::NO_CONTENT.into_response()
}

/// The embedded format a `vnd.kafka.{json,binary}.v2+json` type names, as
/// the encoding of keys and values in JSON.
fn embedded(media: &str) -> Option<Encoding> {
    match media {
        "application/vnd.kafka.json.v2+json" => Some(Encoding::Json),
        "application/vnd.kafka.binary.v2+json" => Some(Encoding::Base64),
        _ => None,
    }
}

fn media(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Bodies that are not a format's own are refused (415), as Kafka REST does.
fn body_format(headers: &HeaderMap) -> Result<Encoding, RestError> {
    media(headers, header::CONTENT_TYPE).as_deref().and_then(embedded).ok_or_else(|| {
        RestError::new(
            415,
            415,
            "HTTP 415 Unsupported Media Type: use application/vnd.kafka.json.v2+json or application/vnd.kafka.binary.v2+json",
        )
    })
}

fn path<T>(p: Result<axum::extract::Path<T>, axum::extract::rejection::PathRejection>) -> Result<T, RestError> {
    p.map(|axum::extract::Path(t)| t).map_err(|e| RestError::new(404, 404, e.body_text()))
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}
