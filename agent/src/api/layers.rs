//! What every request passes through, whichever face it is for: a request
//! id (taken from `X-Request-Id` or made here, echoed back, and on every log
//! line of the request), and a bound on how long a client may take to send
//! its body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::ApiError;
use super::rest_error::RestError;
use crate::service::{Agent, RequestLabels};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids for requests that come without one: ULIDs from the agent's
/// injected clock and randomness.
#[derive(Clone)]
struct MakeUlid(floe_broker::Components);

impl MakeRequestId for MakeUlid {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = self.0.ulid().to_string();
        axum::http::HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// Which face a path belongs to: `v1`, `v2`, `v3` (Kafka REST), `internal`
/// or `other`.
pub(super) fn face(path: &str) -> &'static str {
    match path.split('/').nth(1) {
        Some("v1") => "v1",
        Some("v3") => "v3",
        Some("topics" | "consumers") => "v2",
        Some("internal") => "internal",
        _ => "other",
    }
}

/// Counts each answered request and how long it took to answer (to its
/// headers, for a stream), by face, method and status.
async fn count(State(agent): State<Arc<Agent>>, req: Request<Body>, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let face = face(req.uri().path());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let labels = RequestLabels { face, method, status: response.status().as_u16() };
    agent.metrics().request(labels, started.elapsed().as_secs_f64());
    response
}

/// A request's share of `--request-memory-bytes`: taken before its body is
/// read, given back when the request ends, or earlier by a produce handler
/// once the writer's budget holds the records (`release`).
#[derive(Clone, Default)]
pub struct BodyReservation(Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>);

impl BodyReservation {
    pub fn release(&self) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }
}

/// Refuses, before anything of it is read, a request whose declared body is
/// over the limit (413; with `Expect: 100-continue` the client never sends
/// it), and one beyond the bound on requests in flight (503, retry). Then
/// reserves twice its body's declared size (the limit, when it declares
/// none), for the body and what it is parsed into, in the request memory
/// budget, waiting for it: meanwhile the body stays in the client's socket.
async fn admit(State(agent): State<Arc<Agent>>, req: Request<Body>, next: Next) -> Response {
    let limit = agent.max_request_bytes();
    let declared = content_length(req.headers());
    let kafka_rest = matches!(face(req.uri().path()), "v2" | "v3");
    let refuse = |e: ApiError| if kafka_rest { RestError::from(e).into_response() } else { e.into_response() };
    if declared.is_some_and(|n| n > limit as u64) {
        let e = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body exceeds {limit} bytes"),
        )
        .with("max_request_bytes", limit);
        return refuse(e);
    }
    let Some(_slot) = agent.admit_request() else {
        let e =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "too many requests in flight; retry shortly");
        return refuse(e);
    };
    let declared = axum::body::HttpBody::size_hint(req.body()).upper().map_or(limit, |n| n.min(limit as u64) as usize);
    let reserved = agent.reserve_body(declared.saturating_mul(2)).await;
    let reservation = BodyReservation(Arc::new(std::sync::Mutex::new(reserved)));
    let mut req = req;
    req.extensions_mut().insert(reservation.clone());
    let response = next.run(req).await;
    reservation.release();
    response
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

/// A request body with a deadline for the whole of it, counted from the
/// handler's first read (once admission has reserved its memory): a client
/// that sends a byte now and then, each within any per-chunk timeout, would
/// otherwise hold its reservation for as long as it likes. Reports the
/// length its request declared, which `body::read` sizes its buffer from
/// (hyper still fails a body that is longer or shorter).
struct Deadline {
    inner: Body,
    declared: Option<u64>,
    timeout: Duration,
    /// Set at the first read.
    expires: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error a body past its deadline fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let timeout = self.timeout;
        let expires = self.expires.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if expires.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.declared {
            Some(len) => http_body::SizeHint::with_exact(len),
            None => self.inner.size_hint(),
        }
    }
}

async fn body_deadline(State(timeout): State<Duration>, req: Request<Body>, next: Next) -> Response {
    let declared = content_length(req.headers());
    let req = req.map(|inner| Body::new(Deadline { inner, declared, timeout, expires: None }));
    next.run(req).await
}

/// The time limit on a request's whole body.
fn body_layers(router: Router, body_timeout: Duration) -> Router {
    router.layer(axum::middleware::from_fn_with_state(body_timeout, body_deadline))
}

/// Wraps `router` in the layers every request passes through. A body that
/// does not arrive within `body_timeout` fails the request (408) and its
/// connection, so a stalled client holds nothing for long.
pub fn wrap(agent: Arc<Agent>, router: Router, components: floe_broker::Components, body_timeout: Duration) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
        tracing::info_span!("request", id, method = %req.method(), path = %req.uri().path())
    });
    body_layers(router, body_timeout)
        .layer(axum::middleware::from_fn_with_state(agent.clone(), admit))
        .layer(axum::middleware::from_fn_with_state(agent, count))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeUlid(components)))
}

#[cfg(test)]
mod tests {
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The handler sees the declared length through the body deadline's
    /// wrapper, so `body::read` can size its buffer once.
    #[tokio::test]
    async fn a_handler_sees_the_declared_length_of_a_body() {
        let hint = |body: Body| async move { http_body::Body::size_hint(&body).lower().to_string() };
        let app = body_layers(Router::new().route("/", post(hint)), Duration::from_secs(30));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = "x".repeat(1234);
        let request =
            format!("POST / HTTP/1.1\r\nHost: floe\r\nContent-Length: 1234\r\nConnection: close\r\n\r\n{body}");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_string(&mut answer)).await.unwrap().unwrap();
        server.abort();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n1234"), "{answer}");
    }
}
