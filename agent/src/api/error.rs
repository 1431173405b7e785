//! The one place errors become HTTP: a status, a stable snake_case code, and
//! `{"error":{"code":..,"message":..}}` (plus details for some codes).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::reader::FetchError;
use crate::writer::WriteError;
use floe_broker::state::Placement;

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

    pub fn topic_not_found(topic: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "topic_not_found", format!("topic {topic:?} does not exist"))
    }

    pub fn partition_not_found(topic: &str, partition: u32) -> Self {
        Self::new(StatusCode::NOT_FOUND, "partition_not_found", format!("topic {topic:?} has no partition {partition}"))
    }

    pub fn producer_not_found(id: u64) -> Self {
        Self::new(StatusCode::NOT_FOUND, "producer_not_found", format!("producer {id} does not exist"))
    }

    pub fn producer_fenced(id: u64, epoch: u32, current: u32) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "producer_fenced",
            format!("producer {id} epoch {epoch} is not its current epoch {current}"),
        )
        .with("current_epoch", current)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
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
        response
    }
}

/// Errors of the broker core, by kind: a client learns what it can act on
/// (retry, or not) and never sees server paths; the full error goes to the log.
impl From<&floe_broker::Error> for ApiError {
    fn from(e: &floe_broker::Error) -> Self {
        use floe_broker::{Error as E, ErrorKind as K};
        let internal = |code, message: &str| Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, message);
        match e.kind() {
            K::Unavailable => {
                tracing::warn!(error = %e, "request failed; the client may retry");
                match e {
                    E::ClockSkew { .. } => Self::unavailable("clock_skew", e.to_string()),
                    E::CommitUnresolved { .. } => Self::unavailable(
                        "commit_outcome_unknown",
                        "the store did not confirm the commit; retry (an idempotent producer's retry is never written twice)",
                    ),
                    _ => Self::unavailable("store_unavailable", "the object store did not answer; retry shortly"),
                }
            }
            K::Missing => {
                tracing::error!(error = %e, "data the log references is missing from the store");
                internal("data_missing", "data the log references is missing from the object store")
            }
            K::Corrupt => {
                tracing::error!(error = %e, "corrupt data in the bucket");
                let what = match e {
                    E::Corrupt { what, .. } => what.clone(),
                    E::CorruptLogEntry { seq, .. } | E::MissingLogEntry { seq } => format!("log entry {seq}"),
                    _ => "data".into(),
                };
                internal("corrupt_data", &format!("{what} in the bucket is corrupt; see the agent's log"))
            }
            K::Internal => {
                tracing::error!(error = %e, "internal error");
                match e {
                    E::Store(
                        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. },
                    ) => internal("store_permission_denied", "the object store refused the agent's credentials"),
                    _ => internal("internal", "internal error; see the agent's log"),
                }
            }
        }
    }
}

impl From<floe_broker::Error> for ApiError {
    fn from(e: floe_broker::Error) -> Self {
        Self::from(&e)
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        let message = e.to_string();
        match e {
            WriteError::Overloaded => Self::unavailable("overloaded", message),
            WriteError::TooLarge { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", message),
            WriteError::Upload(e) | WriteError::Commit(e) => Self::from(e.as_ref()),
            WriteError::OutcomeUnknown => Self::unavailable("commit_outcome_unknown", message),
            WriteError::UnexpectedOutcome(_) => {
                tracing::error!(error = %message, "unexpected commit outcome");
                Self::internal("internal error; see the agent's log")
            }
            WriteError::PartitionGone { topic, partition } => Self::partition_not_found(&topic, partition),
            WriteError::Closed => Self::unavailable("shutting_down", message),
            WriteError::Producer(Placement::OutOfOrder { expected }) => Self::new(
                StatusCode::CONFLICT,
                "out_of_order_sequence",
                format!("the producer's next sequence in this partition is {expected}"),
            )
            .with("expected_sequence", expected),
            WriteError::Producer(Placement::Fenced) => {
                Self::new(StatusCode::CONFLICT, "producer_fenced", "the producer's epoch was fenced by a newer one")
            }
            WriteError::Producer(_) => {
                Self::new(StatusCode::NOT_FOUND, "producer_not_found", "the log does not know this producer and epoch")
            }
        }
    }
}

impl From<FetchError> for ApiError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::TopicNotFound(t) => Self::topic_not_found(&t),
            FetchError::PartitionNotFound { topic, partition } => Self::partition_not_found(&topic, partition),
            FetchError::OffsetOutOfRange { offset, log_start_offset, high_watermark } => Self::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "offset_out_of_range",
                format!("offset {offset} is outside the partition's range [{log_start_offset}, {high_watermark}]"),
            )
            .with("log_start_offset", log_start_offset)
            .with("high_watermark", high_watermark),
            FetchError::Store(e) => Self::from(e.as_ref()),
        }
    }
}
