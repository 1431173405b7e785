//! Agent-to-agent authentication. Routes under `/internal/` are for agents
//! of the same cluster only: each call carries the cluster id, the cluster's
//! secret (an object in the bucket, so only holders of the bucket know it),
//! and the id of the lease holder it expects to reach. Whatever such a call
//! carries is still validated as if a client had sent it.

use subtle::ConstantTimeEq;
use ulid::Ulid;

use crate::error::{Error, Invalid, Result};

pub const CLUSTER_HEADER: &str = "x-floe-cluster";
pub const HOLDER_HEADER: &str = "x-floe-expected-holder";
const SCHEME: &str = "Floe-Internal ";

pub struct PeerAuth {
    cluster_id: Ulid,
    secret: String,
    /// Certificates trusted beside the system's when calling other agents
    /// over HTTPS (`--tls-ca`).
    trusted: Vec<reqwest::Certificate>,
    /// How long a pooled connection to another agent is kept idle.
    pool_idle: std::time::Duration,
}

/// How long a connection to another agent is kept idle for reuse, at most.
const PEER_POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

impl PeerAuth {
    pub fn new(cluster_id: Ulid, secret: String, trusted: Vec<reqwest::Certificate>) -> Self {
        Self { cluster_id, secret, trusted, pool_idle: PEER_POOL_IDLE }
    }

    /// Pooled connections are let go within half of `header_timeout` idle
    /// (at most [`PEER_POOL_IDLE`]): the other agents, configured alike,
    /// close them at `header_timeout`, and a request sent down one they are
    /// closing would fail.
    pub fn with_header_timeout(mut self, header_timeout: std::time::Duration) -> Self {
        self.pool_idle = PEER_POOL_IDLE.min(header_timeout / 2);
        self
    }

    /// An HTTP client for calls to other agents, trusting `--tls-ca`.
    pub fn client(&self, timeout: Option<std::time::Duration>) -> reqwest::Client {
        let mut builder = reqwest::Client::builder().pool_idle_timeout(self.pool_idle);
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        for cert in &self.trusted {
            builder = builder.add_root_certificate(cert.clone());
        }
        builder.build().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot build the agent-to-agent HTTP client with --tls-ca; using the system's roots only");
            reqwest::Client::builder().pool_idle_timeout(self.pool_idle).build().unwrap_or_default()
        })
    }

    /// Credentials for a call to the agent that holds lease tenure `holder`.
    pub fn sign(&self, request: reqwest::RequestBuilder, holder: Ulid) -> reqwest::RequestBuilder {
        request
            .header(reqwest::header::AUTHORIZATION, format!("{SCHEME}{}", self.secret))
            .header(CLUSTER_HEADER, self.cluster_id.to_string())
            .header(HOLDER_HEADER, holder.to_string())
    }

    /// Checks an incoming agent-to-agent call: `Unauthenticated` without
    /// credentials, `Forbidden` with wrong ones or another cluster's id.
    /// Returns the holder the caller expects this agent to be.
    pub fn verify(&self, call: &PeerCall<'_>) -> Result<Ulid> {
        let token = call.authorization.and_then(|v| v.strip_prefix(SCHEME)).ok_or_else(|| Error::Unauthenticated {
            message: "agent-to-agent routes need cluster credentials".into(),
        })?;
        let same_secret: bool = token.as_bytes().ct_eq(self.secret.as_bytes()).into();
        let same_cluster = call.cluster.and_then(|c| Ulid::from_string(c).ok()) == Some(self.cluster_id);
        if !(same_secret && same_cluster) {
            return Err(Error::Forbidden { message: "not an agent of this cluster".into() });
        }
        call.expected_holder.and_then(|h| Ulid::from_string(h).ok()).ok_or_else(|| {
            Error::invalid(
                Invalid::Request,
                format!("agent-to-agent calls name the expected holder in {HOLDER_HEADER}"),
            )
        })
    }
}

/// The certificates in a PEM file (`--tls-ca`).
pub fn trusted_certificates(path: &std::path::Path) -> std::result::Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("--tls-ca {}: no PEM certificate in the file", path.display()));
    }
    Ok(certs)
}

/// The credentials an agent-to-agent call carries, as a face received them
/// (for HTTP: `Authorization`, `CLUSTER_HEADER`, `HOLDER_HEADER`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerCall<'a> {
    pub authorization: Option<&'a str>,
    pub cluster: Option<&'a str>,
    pub expected_holder: Option<&'a str>,
}
