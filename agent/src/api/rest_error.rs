//! Errors as Confluent's REST Proxy writes them, in v2 and v3:
//! `{"error_code": N, "message": "..."}`, where N is the HTTP status or one
//! of Kafka REST's finer codes. The status and kind come from the one
//! mapping of service errors (`api::error`); `From` gives v3's codes, and
//! `v2` v2's (which number unknown topics, partitions and consumer
//! instances differently).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::ApiError;
use crate::error::Error;

#[derive(Debug, Serialize)]
pub struct RestError {
    #[serde(skip)]
    status: u16,
    error_code: u32,
    message: String,
}

impl RestError {
    pub fn new(status: u16, error_code: u32, message: impl Into<String>) -> Self {
        Self { status, error_code, message: message.into() }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// The error code and message, as a delivery report carries them.
    pub fn parts(&self) -> (u32, String) {
        (self.error_code, self.message.clone())
    }
}

/// Which Kafka REST version's finer codes to use.
#[derive(Clone, Copy)]
enum Version {
    V2,
    V3,
}

impl RestError {
    /// With Kafka REST v2's codes.
    pub fn v2(e: Error) -> Self {
        Self::of(e, Version::V2)
    }

    /// The status and message of the one mapping (`api::error`), with the
    /// finer code Kafka REST gives the error's kind in `version`.
    fn of(e: Error, version: Version) -> Self {
        let finer = match (version, e.innermost()) {
            (Version::V2, Error::TopicNotFound { .. }) => Some((404, 40401)),
            (Version::V2, Error::PartitionNotFound { .. }) => Some((404, 40402)),
            // An unknown consumer instance is a missing resource in v2's terms.
            (Version::V2, Error::UnknownMember { .. }) => Some((404, 40403)),
            (Version::V2, Error::MemberExists { .. }) => Some((409, 40902)),
            (Version::V3, Error::TopicNotFound { .. } | Error::PartitionNotFound { .. }) => Some((404, 40403)),
            // Kafka REST answers an existing topic with 400.
            (Version::V3, Error::TopicExists { .. }) => Some((400, 40002)),
            (_, Error::Unauthenticated { .. }) => Some((401, 40101)),
            (_, Error::Forbidden { .. }) => Some((403, 40301)),
            _ => None,
        };
        let mut out = Self::from(ApiError::from(e));
        if let Some((status, code)) = finer {
            (out.status, out.error_code) = (status, code);
        }
        out
    }
}

/// An error of the faces themselves (a body that cannot be read, say): the
/// HTTP status is the code, and Kafka REST's 50003 for what a retry can fix.
impl From<ApiError> for RestError {
    fn from(e: ApiError) -> Self {
        let status = e.status.as_u16();
        let error_code = if status == 503 { 50003 } else { u32::from(status) };
        Self { status, error_code, message: e.message }
    }
}

/// With Kafka REST v3's codes.
impl From<Error> for RestError {
    fn from(e: Error) -> Self {
        Self::of(e, Version::V3)
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(&self)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
