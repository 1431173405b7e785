//! The one place errors become HTTP: a status, a stable snake_case code, and
//! `{"error":{"code":..,"message":..}}` (plus details for some codes).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::{Error, Invalid};

/// Seconds a client should wait before retrying an overloaded or unavailable agent.
const RETRY_AFTER_SECS: u32 = 1;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Map::new() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.into());
        error.extend(self.details);
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if matches!(self.status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The service's errors, by kind: the status, the stable code and the
/// details a client can act on. `Retry-After` comes with every 503.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let new = |status, code| Self::new(status, code, message.clone());
        match e {
            Error::Invalid { rule, .. } => new(StatusCode::BAD_REQUEST, invalid_code(rule)),
            Error::InRecord { index, error } => Self::from(*error).with("record_index", index),
            Error::TopicNotFound { .. } => new(StatusCode::NOT_FOUND, "topic_not_found"),
            Error::PartitionNotFound { .. } => new(StatusCode::NOT_FOUND, "partition_not_found"),
            Error::TopicExists { .. } => new(StatusCode::CONFLICT, "topic_exists"),
            Error::ProducerNotFound { .. } => new(StatusCode::NOT_FOUND, "producer_not_found"),
            Error::ProducerFenced { current_epoch, .. } => {
                let e = new(StatusCode::CONFLICT, "producer_fenced");
                match current_epoch {
                    Some(current) => e.with("current_epoch", current),
                    None => e,
                }
            }
            Error::OutOfOrderSequence { expected } => {
                new(StatusCode::CONFLICT, "out_of_order_sequence").with("expected_sequence", expected)
            }
            Error::OffsetOutOfRange { log_start_offset, high_watermark, .. } => {
                new(StatusCode::RANGE_NOT_SATISFIABLE, "offset_out_of_range")
                    .with("log_start_offset", log_start_offset)
                    .with("high_watermark", high_watermark)
            }
            Error::OffsetBeyondHighWatermark { high_watermark, .. } => {
                new(StatusCode::BAD_REQUEST, "offset_out_of_range").with("high_watermark", high_watermark)
            }
            Error::NoCommittedOffset { .. } => new(StatusCode::CONFLICT, "no_committed_offset"),
            Error::UnknownMember { .. } => new(StatusCode::CONFLICT, "unknown_member"),
            Error::MemberExists { .. } => new(StatusCode::CONFLICT, "member_exists"),
            Error::NotAssigned { .. } => new(StatusCode::CONFLICT, "not_assigned"),
            Error::IllegalGeneration { current, .. } => {
                new(StatusCode::CONFLICT, "illegal_generation").with("generation", current)
            }
            Error::TooLarge { .. } => new(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
            Error::Unauthenticated { .. } => new(StatusCode::UNAUTHORIZED, "unauthenticated"),
            Error::Forbidden { .. } => new(StatusCode::FORBIDDEN, "forbidden"),
            Error::NotCoordinator => new(StatusCode::MISDIRECTED_REQUEST, "not_coordinator"),
            Error::NotLeaseHolder => new(StatusCode::CONFLICT, "not_lease_holder"),
            Error::Overloaded => new(StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Error::ShuttingDown => new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Error::CoordinatorUnavailable { .. } => new(StatusCode::SERVICE_UNAVAILABLE, "coordinator_unavailable"),
            Error::NotReady { .. } => new(StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Error::ClockSkew { .. } => new(StatusCode::SERVICE_UNAVAILABLE, "clock_skew"),
            Error::StoreUnavailable { .. } => new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            Error::CommitOutcomeUnknown { .. } => new(StatusCode::SERVICE_UNAVAILABLE, "commit_outcome_unknown"),
            Error::DataMissing { .. } => new(StatusCode::INTERNAL_SERVER_ERROR, "data_missing"),
            Error::CorruptData { .. } => new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt_data"),
            Error::StorePermissionDenied { .. } => new(StatusCode::INTERNAL_SERVER_ERROR, "store_permission_denied"),
            Error::Internal { .. } => new(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

fn invalid_code(rule: Invalid) -> &'static str {
    match rule {
        Invalid::Request => "invalid_request",
        Invalid::TopicName => "invalid_topic_name",
        Invalid::GroupName => "invalid_group_name",
        Invalid::Partitions => "invalid_partitions",
        Invalid::Config => "invalid_config",
        Invalid::Timestamp => "invalid_timestamp",
        Invalid::Query => "invalid_query",
        Invalid::Op => "invalid_op",
    }
}
