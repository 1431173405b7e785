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

impl RestError {
    /// With Kafka REST v2's codes.
    pub fn v2(e: Error) -> Self {
        let api = ApiError::from(e);
        let code = match api.code {
            "topic_not_found" => Some(40401),
            "partition_not_found" => Some(40402),
            "unknown_member" => Some(40403),
            "member_exists" => Some(40902),
            _ => None,
        };
        let mut out = Self::from(api);
        if let Some(code) = code {
            out.error_code = code;
            // An unknown consumer instance is a missing resource in v2's terms.
            if code == 40403 {
                out.status = 404;
            }
        }
        out
    }
}

/// Kafka REST v3's codes for the cases its clients tell apart.
impl From<ApiError> for RestError {
    fn from(e: ApiError) -> Self {
        let status = e.status.as_u16();
        let error_code = match (status, e.code) {
            (404, "topic_not_found" | "partition_not_found") => 40403,
            (409, "topic_exists") => 40002,
            // Retriable: Kafka REST's 50003.
            (503, _) => 50003,
            (s, _) => u32::from(s),
        };
        // Kafka REST answers an existing topic with 400.
        let status = if e.code == "topic_exists" { 400 } else { status };
        Self { status, error_code, message: e.message }
    }
}

impl From<Error> for RestError {
    fn from(e: Error) -> Self {
        Self::from(ApiError::from(e))
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(&self)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        response
    }
}
