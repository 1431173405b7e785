//! Who a request comes from: the `Authorization` header, turned into a
//! `Caller` by the service. The service decides what the caller may do.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::layers::face;
use super::rest_error::RestError;
use crate::auth::Caller;
use crate::error::Error;
use crate::service::Agent;

impl FromRequestParts<Arc<Agent>> for Caller {
    /// 401 for a token the agent does not know, in the request's face's
    /// error shape.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, agent: &Arc<Agent>) -> Result<Self, Self::Rejection> {
        let header = match parts.headers.get(AUTHORIZATION).map(|v| v.to_str()) {
            None => Ok(None),
            Some(Ok(value)) => Ok(Some(value)),
            Some(Err(_)) => Err(Error::Unauthenticated { message: "the Authorization header is not text".into() }),
        };
        header.and_then(|h| agent.authenticate(h)).map_err(|e| match face(parts.uri.path()) {
            "v2" => RestError::v2(e).into_response(),
            "v3" => RestError::from(e).into_response(),
            _ => ApiError::from(e).into_response(),
        })
    }
}
