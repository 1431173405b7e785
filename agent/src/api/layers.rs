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
use crate::budget::Held;
use crate::service::connections::for_the_reserve;
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
pub struct BodyReservation(Arc<std::sync::Mutex<Held>>);

impl BodyReservation {
    pub fn release(&self) {
        drop(std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)));
    }

    /// What a produce handler gives the service to call once the write
    /// buffer holds its records (which then count there instead).
    pub fn releaser(reservation: Option<axum::Extension<Self>>) -> impl FnOnce() + Send {
        move || {
            if let Some(r) = reservation {
                r.release();
            }
        }
    }
}

/// `e`'s answer in the error shape of `face` (see [`face`]).
fn refusal(face: &str, e: ApiError) -> Response {
    if matches!(face, "v2" | "v3") { RestError::from(e).into_response() } else { e.into_response() }
}

/// The request of a connection on a slot kept for other agents, health
/// checks and scrapes (`service::connections`); cancelling the token closes
/// the connection once its answers are written.
#[derive(Clone)]
pub(super) struct ReservedSlot(pub tokio_util::sync::CancellationToken);

/// A 503 `overloaded`, closing the connection, for a request on a reserved
/// slot that is neither another agent's, a health check nor a scrape.
fn refused_on_the_reserve(req: &Request<Body>) -> Option<Response> {
    let path = req.uri().path();
    let ReservedSlot(close) = req.extensions().get::<ReservedSlot>().filter(|_| !for_the_reserve(path))?;
    close.cancel();
    let e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "too many connections open (--max-connections); retry shortly",
    );
    let mut answer = refusal(face(path), e);
    if req.version() <= axum::http::Version::HTTP_11 {
        // hyper closes the connection after this answer (a client still sending
        // a body may see it reset before reading the answer).
        answer.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    Some(answer)
}

/// Refuses, before anything of it is read, a request on a reserved
/// connection slot that is not for it (503, closed), a request whose
/// declared body is over the limit (413; with `Expect: 100-continue` the
/// client never sends it), and one beyond the bound on requests in flight
/// (503, retry). Its body is then read through [`ReadBody`]: memory for it
/// is reserved at the first read, and the whole of it must arrive in time.
async fn admit(State(agent): State<Arc<Agent>>, req: Request<Body>, next: Next) -> Response {
    if let Some(refused) = refused_on_the_reserve(&req) {
        return refused;
    }
    let limit = agent.max_request_bytes();
    let declared = content_length(req.headers());
    let request_face = face(req.uri().path());
    let refuse = |e: ApiError| refusal(request_face, e);
    if declared.is_some_and(|n| n > limit as u64) {
        let e = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body exceeds {limit} bytes"),
        )
        .with("max_request_bytes", limit);
        return refuse(e);
    }
    let Some(slot) = agent.admit_request() else {
        let e =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "too many requests in flight; retry shortly");
        return refuse(e);
    };
    let reservation = BodyReservation::default();
    let reserve = reservation_for(req.body(), limit);
    let (timeout, budget) = (agent.request_body_timeout(), agent.clone());
    // Lazy: nothing is reserved unless the body is read.
    let reserving = Box::pin(async move { budget.reserve_body(reserve).await });
    let mut req = req.map(|inner| ReadBody::wrap(inner, reserving, reservation.clone(), timeout));
    req.extensions_mut().insert(reservation.clone());
    let response = next.run(req).await;
    reservation.release();
    // A streamed answer (a live tail) is in flight until its body ends. Any
    // other is whole once the handler returns: its request is done, and a
    // client that does not read it holds no place.
    if http_body::Body::size_hint(response.body()).exact().is_some() {
        return response;
    }
    response.map(|body| Body::new(Holding { body, _slot: slot }))
}

/// Bytes of the request budget a body takes when it is read: twice its
/// size (the body and what it is parsed into) as it declares it, or as hyper
/// knows it (0 for a request with neither a length nor chunks), the limit
/// when it is chunked.
fn reservation_for(body: &Body, limit: usize) -> usize {
    let size = http_body::Body::size_hint(body).upper().map_or(limit, |n| usize::try_from(n).unwrap_or(limit));
    size.min(limit).saturating_mul(2)
}

/// An answer's body, holding its request's place among those in flight.
struct Holding {
    body: Body,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

type Reserving = Pin<Box<dyn Future<Output = Held> + Send>>;

/// A request body as handlers read it. At the first read it takes twice
/// its declared size (the limit, when it declares none) from the request
/// memory budget, for the body and what it is parsed into, waiting for it
/// while the body stays in the client's socket: a request whose body is
/// never read (a long-poll fetch that declares one) holds none. Then the
/// whole body must arrive within the timeout, however it is split: a
/// client that sends a byte now and then cannot hold its reservation for
/// longer. Its size hint is hyper's (the declared length), which
/// `body::read` sizes its buffer from.
struct ReadBody {
    inner: Body,
    /// Until the reservation is taken.
    reserving: Option<Reserving>,
    reservation: BodyReservation,
    timeout: Duration,
    /// Set once the reservation is taken.
    expires: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ReadBody {
    fn wrap(inner: Body, reserving: Reserving, reservation: BodyReservation, timeout: Duration) -> Body {
        Body::new(Self { inner, reserving: Some(reserving), reservation, timeout, expires: None })
    }
}

/// The error a body past its deadline fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl http_body::Body for ReadBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some(reserving) = &mut this.reserving {
            let permit = std::task::ready!(reserving.as_mut().poll(cx));
            *this.reservation.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = permit;
            this.reserving = None;
        }
        let timeout = this.timeout;
        let expires = this.expires.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if expires.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps `router` in the layers every request passes through. A body that
/// does not arrive within `--request-body-timeout-ms` of its first read
/// fails the request (408) and its connection, so a stalled client holds
/// nothing for long.
pub fn wrap(agent: Arc<Agent>, router: Router, components: floe_broker::Components) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
        tracing::info_span!("request", id, method = %req.method(), path = %req.uri().path())
    });
    router
        .layer(axum::middleware::from_fn_with_state(agent.clone(), admit))
        .layer(axum::middleware::from_fn_with_state(agent, count))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeUlid(components)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;

    fn read_body(inner: Body, timeout: Duration) -> Body {
        ReadBody::wrap(inner, Box::pin(async { Held::default() }), BodyReservation::default(), timeout)
    }

    /// What a body reserves: nothing for a request with no body (no
    /// `Content-Length` nor chunks: hyper knows it is empty), twice a
    /// declared length, twice the limit for a chunked one.
    #[test]
    fn a_body_reserves_twice_its_known_size() {
        let chunked = Body::from_stream(futures::stream::empty::<Result<Bytes, std::io::Error>>());
        assert_eq!(reservation_for(&Body::empty(), 1000), 0);
        assert_eq!(reservation_for(&Body::from("abc"), 1000), 6);
        assert_eq!(reservation_for(&chunked, 1000), 2000);
        assert_eq!(reservation_for(&Body::from("x".repeat(1500)), 1000), 2000);
    }

    /// The handler sees the declared length through the wrapper, so
    /// `body::read` can size its buffer once.
    #[test]
    fn a_handler_sees_the_declared_length_of_a_body() {
        let body = read_body(Body::from("x".repeat(1234)), Duration::from_secs(30));
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(1234));
        let chunked = read_body(
            Body::from_stream(futures::stream::empty::<Result<Bytes, std::io::Error>>()),
            Duration::from_secs(30),
        );
        assert_eq!(http_body::Body::size_hint(&chunked).upper(), None);
    }

    /// However its chunks are spaced, a body must arrive whole within the
    /// timeout (the clock is tokio's, paused: no real time passes).
    #[tokio::test(start_paused = true)]
    async fn the_timeout_bounds_the_whole_body_not_each_chunk() {
        let chunks = |n: usize| {
            futures::stream::iter(0..n).then(|_| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(Bytes::from_static(b"x"))
            })
        };
        let timeout = Duration::from_millis(250);
        let whole = super::super::body::read(read_body(Body::from_stream(chunks(2)), timeout), 100).await;
        assert_eq!(whole.ok().as_deref(), Some(&b"xx"[..]), "two chunks arrive within the time");
        let trickled = super::super::body::read(read_body(Body::from_stream(chunks(5)), timeout), 100).await;
        let e = trickled.err().map(|e| (e.status, e.code));
        assert_eq!(e, Some((StatusCode::REQUEST_TIMEOUT, "request_timeout")), "each chunk within the time, not all");
    }
}
