//! Whether a connection has a request in flight, so that one that has had
//! none for a while can be closed.
//!
//! Why: hyper closes an idle HTTP/1 connection by its header timeout (the
//! next request's head must arrive in time), but has no such timer for
//! HTTP/2, whose connections carry any number of requests at once. Without
//! this, a client could open HTTP/2 connections and leave them idle for
//! good, each holding a socket and its buffers.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::future::Future;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::layers::ReservedSlot;

/// One connection's requests in flight: from the moment its head has
/// arrived until its answer's body is written out or dropped.
///
/// Nothing wakes the connection when a request starts or ends (that would
/// cost each request two extra polls of the connection): its idle timer
/// looks at the count and the last end when it fires.
pub(super) struct Activity {
    in_flight: AtomicUsize,
    /// Requests hyper has handed over, ever (counted by [`Noted`]).
    started: AtomicU64,
    /// When the connection opened.
    opened: Instant,
    /// When its last request ended, in nanoseconds since `opened`.
    last_end: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            opened: Instant::now(),
            last_end: AtomicU64::new(0),
        }
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Resolves once the connection has had no request in flight for
    /// `timeout` since `from` (or since its last request ended, if later).
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub(super) async fn idle_for(&self, timeout: Duration, from: Instant) {
        let mut deadline = from + timeout;
        loop {
            tokio::time::sleep_until(deadline).await;
            let now = Instant::now();
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                deadline = now + timeout;
                continue;
            }
            // Read after the count: an end is recorded before its request leaves it.
            let last_end = self.opened + Duration::from_nanos(self.last_end.load(Ordering::SeqCst));
            let idle_since = last_end.max(from);
            if idle_since + timeout <= now {
                return;
            }
            deadline = idle_since + timeout;
        }
    }

    /// Whether any request has been handed over yet.
    pub(super) fn any_started(&self) -> bool {
        self.started.load(Ordering::SeqCst) > 0
    }

    /// Resolves if no request has started `within` the connection's
    /// opening; never otherwise.
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub(super) async fn none_started_within(&self, within: Duration) {
        tokio::time::sleep_until(self.opened + within).await;
        if self.any_started() {
            std::future::pending::<()>().await;
        }
    }

    /// When the connection opened.
    pub(super) fn opened(&self) -> Instant {
        self.opened
    }
}

/// A request in flight, until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let since_open = u64::try_from(activity.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        activity.last_end.fetch_max(since_open, Ordering::SeqCst);
        activity.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// hyper's service for a connection, noting each request as hyper hands it
/// over: in the connection's own task, before the request's future is
/// spawned or first polled (where [`Counted`] counts it in flight).
#[derive(Clone)]
pub(super) struct Noted<S> {
    pub inner: S,
    pub activity: Arc<Activity>,
}

impl<S: hyper::service::Service<R>, R> hyper::service::Service<R> for Noted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: R) -> Self::Future {
        self.activity.started.fetch_add(1, Ordering::SeqCst);
        self.inner.call(request)
    }
}

/// The router, with each request counted in its connection's [`Activity`].
#[derive(Clone)]
pub(super) struct Counted {
    pub app: Router,
    pub activity: Arc<Activity>,
    /// On a slot of the reserve: given to each request (`ReservedSlot`), to
    /// close the connection when one is neither an agent's, a health check
    /// nor a scrape.
    pub reserved: Option<CancellationToken>,
}

impl<B> tower_service::Service<Request<B>> for Counted
where
    Router: tower_service::Service<Request<B>, Response = Response<Body>, Error = Infallible>,
    <Router as tower_service::Service<Request<B>>>::Future: Unpin,
{
    type Response = Response<CountedBody>;
    type Error = Infallible;
    type Future = CountedAnswer<<Router as tower_service::Service<Request<B>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower_service::Service::<Request<B>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let in_flight = self.activity.start();
        let mut request = request;
        if let Some(close) = &self.reserved {
            request.extensions_mut().insert(ReservedSlot(close.clone()));
        }
        CountedAnswer { answer: tower_service::Service::call(&mut self.app, request), in_flight: Some(in_flight) }
    }
}

/// The router's answer to a counted request (not boxed: it is on every request's path).
pub(super) struct CountedAnswer<F> {
    answer: F,
    /// Until the answer is ready; then its body's.
    in_flight: Option<InFlight>,
}

impl<F: Future<Output = Result<Response<Body>, Infallible>> + Unpin> Future for CountedAnswer<F> {
    type Output = Result<Response<CountedBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = std::task::ready!(Pin::new(&mut self.answer).poll(cx))?;
        match self.in_flight.take() {
            Some(in_flight) => Poll::Ready(Ok(answer.map(|body| CountedBody { body, _in_flight: in_flight }))),
            None => unreachable!("polled after its answer"),
        }
    }
}

/// An answer's body, which keeps its request in flight until it is written
/// out (a live tail's, for as long as it streams) or dropped.
pub(super) struct CountedBody {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paused time: the sleeps below are the runtime's, not the wall's.
    #[tokio::test(start_paused = true)]
    async fn idle_only_once_no_request_has_been_in_flight_for_the_timeout() {
        let activity = Arc::new(Activity::new());
        let timeout = Duration::from_secs(10);
        let request = activity.start();
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(timeout, activity.opened()).await }
        });
        tokio::time::sleep(timeout * 3).await;
        assert!(!idle.is_finished(), "not idle while a request is in flight");
        drop(request);
        tokio::time::sleep(timeout / 2).await;
        let again = activity.start();
        drop(again);
        tokio::time::sleep(timeout * 3 / 4).await;
        assert!(!idle.is_finished(), "a request's end starts the wait again");
        tokio::time::sleep(timeout / 2).await;
        assert!(idle.is_finished(), "idle once the timeout has passed with no request");
    }
}
