//! Agent-to-agent authentication. Routes under `/internal/` are for agents
//! of the same cluster only: each call carries the cluster id, the cluster's
//! secret (an object in the bucket, so only holders of the bucket know it),
//! and the id of the lease holder it expects to reach. Whatever such a call
//! carries is still validated as if a client had sent it.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use subtle::ConstantTimeEq;
use ulid::Ulid;

use crate::api::ApiError;

const CLUSTER_HEADER: &str = "x-floe-cluster";
const HOLDER_HEADER: &str = "x-floe-expected-holder";
const SCHEME: &str = "Floe-Internal ";

pub struct PeerAuth {
    cluster_id: Ulid,
    secret: String,
}

impl PeerAuth {
    pub fn new(cluster_id: Ulid, secret: String) -> Self {
        Self { cluster_id, secret }
    }

    /// Credentials for a call to the agent that holds lease tenure `holder`.
    pub fn sign(&self, request: reqwest::RequestBuilder, holder: Ulid) -> reqwest::RequestBuilder {
        request
            .header(reqwest::header::AUTHORIZATION, format!("{SCHEME}{}", self.secret))
            .header(CLUSTER_HEADER, self.cluster_id.to_string())
            .header(HOLDER_HEADER, holder.to_string())
    }

    /// Checks an incoming agent-to-agent call: 401 without credentials, 403
    /// with wrong ones or another cluster's id. Returns the holder the caller
    /// expects this agent to be.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Ulid, ApiError> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix(SCHEME))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "agent-to-agent routes need cluster credentials",
                )
            })?;
        let same_secret: bool = token.as_bytes().ct_eq(self.secret.as_bytes()).into();
        let same_cluster = header_ulid(headers, CLUSTER_HEADER) == Some(self.cluster_id);
        if !(same_secret && same_cluster) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "not an agent of this cluster"));
        }
        header_ulid(headers, HOLDER_HEADER).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                format!("agent-to-agent calls name the expected holder in {HOLDER_HEADER}"),
            )
        })
    }
}

fn header_ulid(headers: &HeaderMap, name: &str) -> Option<Ulid> {
    headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).and_then(|v| Ulid::from_string(v).ok())
}
