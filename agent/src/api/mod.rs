//! The native HTTP API v1.

mod body;
mod error;
mod groups;
mod health;
mod internal;
mod producers;
mod records;
mod tail;
mod topics;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::routing::{get, post};

pub use error::ApiError;
pub use records::OutRecord;

use crate::app::Agent;

pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/stats", get(health::stats))
        .route("/v1/topics", post(topics::create).get(topics::list))
        .route("/v1/producers", post(producers::init))
        .route("/internal/v1/commit", post(internal::commit))
        .route("/internal/v1/groups/{group}", post(internal::group))
        .route("/v1/groups/{group}/members", post(groups::join))
        .route("/v1/groups/{group}/members/{member}", axum::routing::delete(groups::leave))
        .route("/v1/groups/{group}/members/{member}/heartbeat", post(groups::heartbeat))
        .route("/v1/groups/{group}/members/{member}/records", get(groups::records))
        .route("/v1/groups/{group}/offsets", post(groups::commit).get(groups::offsets))
        .route("/v1/topics/{topic}", get(topics::describe).patch(topics::update))
        .route("/v1/topics/{topic}/records", post(records::produce))
        .route("/v1/topics/{topic}/partitions/{partition}/records", get(records::fetch))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method",
            )
        })
        .with_state(agent)
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", e.body_text())
    }
}
