//! The native HTTP API v1.

mod body;
mod caller;
mod encoding;
mod error;
mod groups;
mod health;
mod idle;
mod internal;
mod layers;
mod pieces;
mod producers;
mod records;
mod rest_error;
mod server;
mod tail;
mod texts;
mod tls;
mod topics;
mod ui;
mod v2;
mod v3;

use std::sync::Arc;

use std::future::Future;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use records::OutRecord;
pub use server::bind;
pub use tls::Tls;

/// Entry points for the fuzz targets in `fuzz/`.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use axum::http::{HeaderMap, HeaderValue, Uri, header};

    /// Parses a native produce request (query string, content type, body)
    /// as the handler does, up to the records it would hand the service.
    pub fn produce_request(query: &str, content_type: &str, body: &[u8]) -> Result<usize, String> {
        let uri: Uri = format!("/v1/topics/t/records?{query}").parse().map_err(|e| format!("{e}"))?;
        let axum::extract::Query(q) = axum::extract::Query::try_from_uri(&uri).map_err(|e| e.body_text())?;
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).map_err(|e| e.to_string())?);
        super::records::parse_produce(&headers, &q, bytes::Bytes::copy_from_slice(body))
            .map(|(records, _)| records.len())
            .map_err(|e| e.message)
    }
}

use crate::service::Agent;

/// Serves the API until `shutdown` resolves or the agent meets an error it
/// cannot go on from (returned). Then stops taking connections and
/// requests, and returns once in-flight requests are answered and what the
/// agent accepted is written out (`Agent::drain`), or after the drain
/// timeout, whichever is first.
pub async fn serve(
    agent: Arc<Agent>,
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let reloads = reload_on_hangup(agent.clone(), tls.clone());
    let stop = {
        let agent = agent.clone();
        async move {
            tokio::select! {
                () = shutdown => tracing::info!("stopping: answering in-flight requests, writing out accepted records"),
                () = agent.stopped() => {}
            }
            agent.stop();
        }
    };
    let app = layers::wrap(agent.clone(), router(agent.clone()), agent.components());
    let server = async {
        server::run(listener, app, agent.request_header_timeout(), tls, agent.connections(), stop).await;
        Ok::<(), std::io::Error>(())
    };
    let drain = async {
        agent.stopped().await;
        agent.drain().await;
    };
    let deadline = async {
        agent.stopped().await;
        tokio::time::sleep(agent.drain_timeout()).await;
    };
    tokio::select! {
        (served, ()) = async { tokio::join!(server, drain) } => served?,
        () = deadline => tracing::warn!(timeout = ?agent.drain_timeout(), "drain timed out; exiting with work in progress"),
    }
    reloads.abort();
    match agent.fatal_error() {
        Some(e) => Err(std::io::Error::other(e)),
        None => Ok(()),
    }
}

/// On SIGHUP, reads the tokens file and the TLS certificate again.
fn reload_on_hangup(agent: Arc<Agent>, tls: Option<Arc<Tls>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hangups = match signal(SignalKind::hangup()) {
                Ok(hangups) => hangups,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; tokens and certificates load only at start");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                agent.reload_tokens();
                if let Some(tls) = &tls {
                    match tls.reload() {
                        Ok(()) => tracing::info!("TLS certificate reloaded"),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot reload the TLS certificate; the one in use stays")
                        }
                    }
                }
            }
        }
        #[cfg(not(unix))]
        drop((agent, tls));
    })
}

pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/stats", get(health::stats))
        .route("/v1/cluster", get(health::cluster))
        .route("/metrics", get(health::metrics))
        .route("/v1/openapi.json", get(health::openapi))
        .route("/v1/topics", post(topics::create).get(topics::list))
        .route("/v1/producers", post(producers::init))
        .route("/v1/flushes/{spool}/{seq}", get(producers::flush))
        .route("/internal/v1/commit", post(internal::commit))
        .route("/internal/v2/groups/{group}", post(internal::group))
        .route("/v1/groups", get(groups::list))
        .route("/v1/groups/{group}", get(groups::describe))
        .route("/v1/groups/{group}/members", post(groups::join))
        .route("/v1/groups/{group}/members/{member}", axum::routing::delete(groups::leave))
        .route("/v1/groups/{group}/members/{member}/heartbeat", post(groups::heartbeat))
        .route("/v1/groups/{group}/members/{member}/records", get(groups::records))
        .route("/v1/groups/{group}/offsets", post(groups::commit).get(groups::offsets))
        .route("/v1/topics/{topic}", get(topics::describe).patch(topics::update).delete(topics::delete))
        .route("/v1/topics/{topic}/records", post(records::produce))
        .route("/v1/topics/{topic}/partitions/{partition}/records", get(records::fetch))
        .route("/v1/topics/{topic}/partitions/{partition}/offsets", get(records::offset_for_time))
        .nest("/v3", v3::router())
        .merge(v2::router())
        .merge(ui::router())
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
