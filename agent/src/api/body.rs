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

/// Most records one produce request may hold. Checked while parsing, so a
/// body of tiny records cannot make the agent allocate far more than the
/// body's own size.
pub const MAX_RECORDS_PER_REQUEST: usize = 100_000;

/// Deserializes a list of at most `MAX_RECORDS_PER_REQUEST` items, failing
/// at the first one over (use with `#[serde(deserialize_with = ...)]`).
pub fn bounded_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct Bounded<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_RECORDS_PER_REQUEST} records")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(item) = seq.next_element()? {
                if out.len() == MAX_RECORDS_PER_REQUEST {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_RECORDS_PER_REQUEST} records in one request"
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded(std::marker::PhantomData))
}
