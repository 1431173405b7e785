//! Reading and parsing request bodies, with JSON errors for every failure.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::ApiError;

pub async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut causes = std::iter::successors(std::error::Error::source(&e), |c| c.source());
        if causes.any(|c| c.is::<tower_http::timeout::TimeoutError>()) {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time; the connection is closed",
            );
        }
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("the request body exceeds {limit} bytes"),
            )
            .with("max_request_bytes", limit)
        } else {
            ApiError::bad_request("invalid_body", format!("cannot read the request body: {e}"))
        }
    })
}

pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

/// The body's media type, without parameters, lower-cased; JSON when absent.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map_or_else(|| "application/json".to_owned(), |v| v.trim().to_ascii_lowercase())
}
