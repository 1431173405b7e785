//! Whether a connection has a request in flight, or an answer still being
//! written, so that one that has had neither for a while can be closed; and
//! whether its client has stopped reading, so that it can be dropped.
//!
//! Why: hyper closes an idle HTTP/1 connection by its header timeout (the
//! next request's head must arrive in time), but has no such timer for
//! HTTP/2, whose connections carry any number of requests at once. Without
//! this, a client could open HTTP/2 connections and leave them idle for
//! good, each holding a socket and its buffers.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// When its last request ended, or its writes last went through after
    /// being blocked, in nanoseconds since `opened`.
    last_end: AtomicU64,
    /// Since when its writes have been blocked (the client is not reading),
    /// in nanoseconds since `opened`, plus one; 0 while they go through.
    blocked_since: AtomicU64,
    /// HTTP/2 answers that have handed hyper a piece and are not yet asked
    /// for the next, nor dropped, with since when: hyper holds the piece
    /// until the stream's flow-control window, which the client grants as
    /// it takes the data, lets it out. By answer number. (Over HTTP/1 a
    /// client not taking its answer blocks the socket's writes.)
    waiting: Mutex<Vec<(u64, Instant)>>,
    /// Numbers the connection's HTTP/2 answers, for `waiting`.
    answers: AtomicU64,
}

/// How a connection has been quiet for its timeout.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Quiet {
    /// No request in flight, and every answer written.
    Idle,
    /// Its writes, or one of its HTTP/2 answers, have made no progress: the
    /// client does not take what it asked for.
    Stalled,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            opened: Instant::now(),
            last_end: AtomicU64::new(0),
            blocked_since: AtomicU64::new(0),
            waiting: Mutex::new(Vec::new()),
            answers: AtomicU64::new(0),
        }
    }

    fn since_open(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// A write to the client could not go through (its socket is full).
    pub(super) fn writes_blocked(&self) {
        self.blocked_since.store(self.since_open() + 1, Ordering::SeqCst);
    }

    /// HTTP/2 answer `number` has handed over a piece.
    fn answer_waits(&self, number: u64) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.push((number, Instant::now()));
        }
    }

    /// HTTP/2 answer `number` is asked for its next piece, or is dropped.
    fn answer_resumes(&self, number: u64) {
        if let Ok(mut waiting) = self.waiting.lock()
            && let Some(i) = waiting.iter().position(|(n, _)| *n == number)
        {
            waiting.swap_remove(i);
        }
    }

    /// Since when the client has taken nothing it was sent, if it has not:
    /// since its writes blocked, or since the HTTP/2 answer waiting longest
    /// began to wait (each answer on its own: others going on do not take
    /// it out).
    fn stuck_since(&self) -> Option<Instant> {
        let blocked = self.blocked_since.load(Ordering::SeqCst).checked_sub(1).map(|nanos| self.at(nanos));
        let waiting = self.waiting.lock().ok().and_then(|w| w.iter().map(|(_, since)| *since).min());
        blocked.into_iter().chain(waiting).min()
    }

    /// The instant `nanos` after the connection opened.
    fn at(&self, nanos: u64) -> Instant {
        self.opened + Duration::from_nanos(nanos)
    }

    /// Writes go through again: the client read what was blocked. Idleness
    /// counts from here, as from a request's end.
    pub(super) fn writes_flowing(&self) {
        self.last_end.fetch_max(self.since_open(), Ordering::SeqCst);
        self.blocked_since.store(0, Ordering::SeqCst);
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Resolves once the connection has had no request in flight, and no
    /// write blocked, for `timeout` since `from` (or since its last request
    /// ended, if later): [`Quiet::Idle`]; or, whatever is in flight, once
    /// its writes have been blocked for `timeout`, or one of its HTTP/2
    /// answers has waited that long to be asked for its next piece:
    /// [`Quiet::Stalled`], the client has stopped reading (or stopped
    /// granting that stream window).
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub(super) async fn quiet_for(&self, timeout: Duration, from: Instant) -> Quiet {
        let mut deadline = from + timeout;
        loop {
            tokio::time::sleep_until(deadline).await;
            let now = Instant::now();
            if let Some(since) = self.stuck_since() {
                if since + timeout <= now {
                    return Quiet::Stalled;
                }
                deadline = since + timeout;
                continue;
            }
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                deadline = now + timeout;
                continue;
            }
            // Read after the count: an end is recorded before its request leaves it.
            let last_end = self.at(self.last_end.load(Ordering::SeqCst));
            let idle_since = last_end.max(from);
            if idle_since + timeout <= now {
                return Quiet::Idle;
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
        activity.last_end.fetch_max(activity.since_open(), Ordering::SeqCst);
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
        let number = (request.version() == axum::http::Version::HTTP_2)
            .then(|| self.activity.answers.fetch_add(1, Ordering::Relaxed));
        let mut request = request;
        if let Some(close) = &self.reserved {
            request.extensions_mut().insert(ReservedSlot(close.clone()));
        }
        let answer = tower_service::Service::call(&mut self.app, request);
        CountedAnswer { answer, in_flight: Some(in_flight), number }
    }
}

/// The router's answer to a counted request (not boxed: it is on every request's path).
pub(super) struct CountedAnswer<F> {
    answer: F,
    /// Until the answer is ready; then its body's.
    in_flight: Option<InFlight>,
    /// Over HTTP/2, its number among the connection's answers.
    number: Option<u64>,
}

impl<F: Future<Output = Result<Response<Body>, Infallible>> + Unpin> Future for CountedAnswer<F> {
    type Output = Result<Response<CountedBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = std::task::ready!(Pin::new(&mut self.answer).poll(cx))?;
        match self.in_flight.take() {
            Some(in_flight) => {
                let number = self.number;
                Poll::Ready(Ok(answer.map(|body| CountedBody::new(body, in_flight, number))))
            }
            None => unreachable!("polled after its answer"),
        }
    }
}

/// An answer's data is handed to hyper in pieces of at most this much. It
/// takes the next piece only once it has room for it (HTTP/1: in its write
/// buffer; HTTP/2: in the stream's flow-control window), so a request stays
/// in flight until its answer is nearly all sent, not merely handed over: a
/// client taking a large answer slowly is not idle.
const ANSWER_PIECE: usize = 64 << 10;

/// An answer's body, which keeps its request in flight until its last piece
/// is taken (a live tail's, for as long as it streams) or it is dropped, and
/// notes while it waits to be asked for its next piece.
pub(super) struct CountedBody {
    body: Body,
    /// What is left of a data frame larger than [`ANSWER_PIECE`].
    rest: Bytes,
    /// Over HTTP/2, its number among the connection's answers: it notes
    /// while it waits to be asked for its next piece.
    number: Option<u64>,
    /// Has handed over a piece and is not yet asked for the next (nor dropped).
    waiting: bool,
    in_flight: InFlight,
}

impl CountedBody {
    fn new(body: Body, in_flight: InFlight, number: Option<u64>) -> Self {
        Self { body, rest: Bytes::new(), number, waiting: false, in_flight }
    }

    fn piece(&mut self) -> Frame<Bytes> {
        let n = self.rest.len().min(ANSWER_PIECE);
        Frame::data(self.rest.split_to(n))
    }

    fn next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if !self.rest.is_empty() {
            return Poll::Ready(Some(Ok(self.piece())));
        }
        let polled = std::task::ready!(http_body::Body::poll_frame(Pin::new(&mut self.body), cx));
        Poll::Ready(match polled {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if data.len() > ANSWER_PIECE => {
                    self.rest = data;
                    Some(Ok(self.piece()))
                }
                Ok(data) => Some(Ok(Frame::data(data))),
                Err(frame) => Some(Ok(frame)),
            },
            other => other,
        })
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        if let (true, Some(number)) = (self.waiting, self.number) {
            self.in_flight.0.answer_resumes(number);
        }
    }
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(number) = this.number else {
            return this.next_frame(cx);
        };
        if std::mem::take(&mut this.waiting) {
            this.in_flight.0.answer_resumes(number);
        }
        let next = this.next_frame(cx);
        // The last piece too, until the body is dropped: hyper holds it
        // until the client's window lets it out.
        if matches!(next, Poll::Ready(Some(Ok(_)))) {
            this.waiting = true;
            this.in_flight.0.answer_waits(number);
        }
        next
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let (hint, rest) = (self.body.size_hint(), self.rest.len() as u64);
        let mut with_rest = SizeHint::new();
        // The upper bound first: the lower may not pass it.
        if let Some(upper) = hint.upper() {
            with_rest.set_upper(upper.saturating_add(rest));
        }
        with_rest.set_lower(hint.lower().saturating_add(rest));
        with_rest
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
            async move { activity.quiet_for(timeout, activity.opened()).await }
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
        assert_eq!(idle.await.unwrap(), Quiet::Idle);
    }

    fn quiet(activity: &Arc<Activity>, timeout: Duration) -> tokio::task::JoinHandle<Quiet> {
        let activity = activity.clone();
        tokio::spawn(async move { activity.quiet_for(timeout, activity.opened()).await })
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_write_is_not_idleness_and_one_blocked_for_the_timeout_is_a_stall() {
        let activity = Arc::new(Activity::new());
        let timeout = Duration::from_secs(10);
        // No request in flight (hyper has taken the answer), its bytes still going out.
        let first = quiet(&activity, timeout);
        tokio::time::sleep(timeout / 2).await;
        activity.writes_blocked();
        tokio::time::sleep(timeout * 7 / 10).await;
        assert!(!first.is_finished(), "not idle while a write is blocked, past the idle deadline");
        activity.writes_flowing();
        tokio::time::sleep(timeout * 9 / 10).await;
        assert!(!first.is_finished(), "idleness counts from the write that went through");
        tokio::time::sleep(timeout / 5).await;
        assert_eq!(first.await.unwrap(), Quiet::Idle);

        // A request in flight (a live tail, say) whose client stops reading.
        let tail = activity.start();
        let second = quiet(&activity, timeout);
        tokio::time::sleep(timeout * 3).await;
        assert!(!second.is_finished(), "a request in flight, its writes going through");
        activity.writes_blocked();
        tokio::time::sleep(timeout * 2).await;
        assert!(second.is_finished(), "stalled within twice the timeout, though in flight");
        assert_eq!(second.await.unwrap(), Quiet::Stalled);
        drop(tail);
    }

    fn waiting(activity: &Activity) -> Vec<u64> {
        let mut numbers: Vec<u64> = activity.waiting.lock().unwrap().iter().map(|(n, _)| *n).collect();
        numbers.sort_unstable();
        numbers
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_answer_never_asked_for_its_next_piece_is_a_stall_whatever_else_goes_on() {
        use http_body_util::BodyExt;
        let activity = Arc::new(Activity::new());
        let timeout = Duration::from_secs(10);
        let large = || Body::from(vec![7u8; ANSWER_PIECE * 8]);
        let mut stuck = CountedBody::new(large(), activity.start(), Some(0));
        let mut streaming = CountedBody::new(large(), activity.start(), Some(1));
        let watched = quiet(&activity, timeout);
        // Taken a piece at a time, each within the timeout: a slow client, not a stalled one.
        for _ in 0..3 {
            assert!(stuck.frame().await.is_some());
            assert!(streaming.frame().await.is_some());
            assert_eq!(waiting(&activity), [0, 1], "each waits for hyper to ask again");
            tokio::time::sleep(timeout * 3 / 4).await;
        }
        assert!(!watched.is_finished());
        // Then the first is never asked again (no window granted), while the
        // second and small answers go on: a stall all the same.
        for number in 2..6 {
            assert!(streaming.frame().await.is_some());
            let mut small = CountedBody::new(Body::from("ok"), activity.start(), Some(number));
            assert!(small.frame().await.is_some());
            drop(small);
            tokio::time::sleep(timeout / 2).await;
        }
        assert!(watched.is_finished(), "stalled within twice the timeout");
        assert_eq!(watched.await.unwrap(), Quiet::Stalled);
        assert_eq!(waiting(&activity), [0, 1]);
        drop((stuck, streaming));
        assert_eq!(waiting(&activity), Vec::<u64>::new(), "dropped answers wait no more");
    }

    #[tokio::test]
    async fn a_large_answer_is_handed_over_in_pieces_and_whole() {
        use http_body_util::BodyExt;
        let activity = Arc::new(Activity::new());
        let data: Vec<u8> = (0..ANSWER_PIECE * 3 + 100).map(|i| i as u8).collect();
        for number in [None, Some(7)] {
            let mut body = CountedBody::new(Body::from(data.clone()), activity.start(), number);
            assert_eq!(http_body::Body::size_hint(&body).exact(), Some(data.len() as u64));
            let mut got = Vec::new();
            let mut pieces = Vec::new();
            while let Some(frame) = body.frame().await {
                let piece = frame.unwrap().into_data().unwrap();
                pieces.push(piece.len());
                got.extend_from_slice(&piece);
                let left = (data.len() - got.len()) as u64;
                assert_eq!(http_body::Body::size_hint(&body).exact(), Some(left), "the hint counts what is left");
                assert_eq!(http_body::Body::is_end_stream(&body), left == 0);
                assert_eq!(activity.in_flight.load(Ordering::SeqCst), 1, "in flight until the body is dropped");
                // HTTP/2's wait until asked again, or dropped; HTTP/1's are not noted.
                assert_eq!(waiting(&activity), Vec::from_iter(number));
            }
            assert_eq!(pieces, [ANSWER_PIECE, ANSWER_PIECE, ANSWER_PIECE, 100]);
            assert_eq!(got, data);
            drop(body);
            assert_eq!(activity.in_flight.load(Ordering::SeqCst), 0);
            assert_eq!(waiting(&activity), Vec::<u64>::new());
        }
    }
}
