//! The HTTP server: accepts connections and serves the router on each, with
//! hyper's own guards against slow clients, closes connections left idle,
//! and stops gracefully.
//!
//! Not `axum::serve`: it gives hyper no timer, and without one hyper cannot
//! time out a client that never finishes its headers.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use super::idle::{Activity, Counted, Noted, Quiet};
use super::tls::Tls;
use crate::service::connections::Connections;

/// Pause after a failed accept (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// A connection on a reserved slot must start its request within this.
const RESERVED_FIRST_BYTES: Duration = Duration::from_secs(2);
/// While the clients' connection slots stay taken, a warning this often at most.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Unsent bytes a connection's socket queues before a write blocks
/// (`TCP_NOTSENT_LOWAT`, Linux). The kernel wakes a blocked writer once half
/// of them has gone out, so a write that goes through means the client took
/// at least this much over half: without it the socket queues up to its
/// send buffer (autotuned to 4 MiB), wakes the writer only once a third of
/// that has gone, and a client reading under ~130 KB/s would look stalled
/// at the 10 s header timeout. It also keeps an answer a slow client has
/// not taken in the agent's memory, within its budgets, rather than the
/// kernel's. Large enough for a write to carry a few of an answer's 64 KiB
/// pieces at a time.
#[cfg(target_os = "linux")]
const NOTSENT_LOWAT: u32 = 256 << 10;

/// Bytes hyper buffers for each HTTP/2 stream before it asks the answer for
/// more (hyper's default is about 400 KiB): a client taking an answer over a
/// slow socket then lets it ask for a piece each time it has taken about
/// this much, well within the header timeout.
const H2_STREAM_SEND_BUFFER: usize = 128 << 10;

/// Connections the kernel completes and queues while the agent is not
/// accepting (all connection slots taken, or a burst of connects): beyond
/// the queue, clients' connects stall in SYN retries of 1, 2, 4, 8 s.
const LISTEN_BACKLOG: u32 = 1024;

/// A listener on `addr`, with [`LISTEN_BACKLOG`] (std's default is 128).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As std does on Unix: a restarted agent can bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` (over TLS with `tls`) until `stop` resolves;
/// then stops accepting, lets each connection finish its request in
/// progress, and returns once all are closed. A client that has not
/// finished its TLS handshake, or sent its whole request head,
/// `header_timeout` after connecting (or after its previous request) is
/// disconnected; over HTTP/2, one with no request in flight and no answer
/// being sent for `header_timeout` is sent a GOAWAY and disconnected. One
/// whose client has taken nothing of its answers for `header_timeout` (its
/// writes blocked, or its answers' pieces left waiting) is dropped. A
/// connection is
/// accepted only with one of the `connections`' slots, held until it
/// closes: beyond them, clients wait in the listen backlog.
pub async fn run(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    tls: Option<Arc<Tls>>,
    connections: Arc<Connections>,
    stop: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder.http2().max_send_buf_size(H2_STREAM_SEND_BUFFER);
    let stopping = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut stop = std::pin::pin!(stop);
    let mut full_since: Option<tokio::time::Instant> = None;
    loop {
        let free = connections.try_take();
        if free.as_ref().is_none_or(|slot| slot.reserved)
            && full_since.is_none_or(|since| since.elapsed() >= FULL_WARNING_EVERY)
        {
            tracing::warn!(
                "every client's connection slot is taken (--max-connections): new clients are refused or wait"
            );
            full_since = Some(tokio::time::Instant::now());
        }
        let slot = match free {
            Some(slot) => slot,
            None => tokio::select! {
                biased;
                () = &mut stop => break,
                slot = connections.take() => slot,
            },
        };
        let (stream, _) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        limit_unsent(&stream);
        let slot = connections.accepted(slot);
        let serve = Connection {
            builder: builder.clone(),
            app: app.clone(),
            stopping: stopping.clone(),
            header_timeout,
            reserved: slot.reserved,
        };
        let handshake = serve.first_bytes();
        match &tls {
            None => tasks.spawn(async move {
                let _slot = slot;
                serve.run(stream).await;
            }),
            Some(tls) => {
                let acceptor = tls.acceptor();
                tasks.spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve.run(stream).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                })
            }
        };
    }
    drop(listener);
    stopping.cancel();
    tasks.close();
    tasks.wait().await;
}

/// Sets [`NOTSENT_LOWAT`] on `stream` (Linux; elsewhere the send buffer's
/// own wake-ups stand).
fn limit_unsent(stream: &tokio::net::TcpStream) {
    #[cfg(target_os = "linux")]
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(error = %e, "cannot limit a connection's unsent bytes");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// Why, and how, a connection is to be closed.
enum Closing {
    /// Its requests in flight answered first.
    Gracefully(&'static str),
    /// At once, unless a request has started by then.
    Now(&'static str),
    /// At once: the client has stopped reading, so nothing more can be sent
    /// to it (not even a GOAWAY).
    Stalled,
}

/// One accepted connection, about to be served.
struct Connection {
    builder: auto::Builder<TokioExecutor>,
    app: Router,
    /// Cancelled when the server stops.
    stopping: CancellationToken,
    header_timeout: Duration,
    /// On a slot of the reserve: other agents', health checks' and scrapes' requests only.
    reserved: bool,
}

impl Connection {
    /// How soon its TLS handshake must end, and then its first request
    /// start: agents, health checks and scrapes send theirs at once, so a
    /// connection that does not gives its reserved slot back soon.
    fn first_bytes(&self) -> Duration {
        if self.reserved { self.header_timeout.min(RESERVED_FIRST_BYTES) } else { self.header_timeout }
    }

    /// Serves the connection until the client closes it, or, once the server
    /// stops, the connection has had no request in flight and no answer
    /// being sent for the header timeout, or a reserved connection was
    /// refused a request, shuts it down gracefully: requests in flight are
    /// answered, then it is closed (HTTP/2: after a GOAWAY). A reserved
    /// connection that has started no request within 2 s is dropped at once,
    /// and so is one whose client has taken nothing of its answers for the
    /// header timeout.
    async fn run(self, stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) {
        let activity = Arc::new(Activity::new());
        // On a reserved slot: how soon a request must start.
        let first_request = self.reserved.then(|| self.first_bytes());
        let refused = self.reserved.then(CancellationToken::new);
        let counted = Counted { app: self.app, activity: activity.clone(), reserved: refused.clone() };
        let service = Noted { inner: TowerToHyperService::new(counted), activity: activity.clone() };
        let stream = Watched::new(stream, self.header_timeout, activity.clone());
        let connection = self.builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let mut connection = std::pin::pin!(connection);
        // Watched by a task of its own: polled beside the connection, the
        // token and the timer would be polled at each of its wakes.
        let (close, closing) = tokio::sync::oneshot::channel();
        let watch = {
            let (stopping, activity, timeout) = (self.stopping, activity.clone(), self.header_timeout);
            async move {
                let closing = tokio::select! {
                    () = stopping.cancelled() => Closing::Gracefully("the server stops"),
                    () = async { refused.unwrap_or_default().cancelled().await }, if first_request.is_some() =>
                        Closing::Gracefully("a reserved slot's connection asked for a client's request"),
                    quiet = activity.quiet_for(timeout, activity.opened()) => match quiet {
                        Quiet::Idle => Closing::Gracefully("no request in flight"),
                        Quiet::Stalled => Closing::Stalled,
                    },
                    () = activity.none_started_within(first_request.unwrap_or_default()), if first_request.is_some() =>
                        Closing::Now("a reserved slot's connection started no request in time"),
                };
                let _ = close.send(closing);
            }
        };
        let _watcher = AbortOnDropHandle::new(tokio::spawn(watch));
        let why = match tokio::select! {
            ended = connection.as_mut() => return log_end(ended),
            Ok(closing) = closing => closing,
        } {
            Closing::Gracefully(why) => why,
            // No request started (read again here, where none can start
            // meanwhile): a graceful shutdown would leave a first request
            // head still arriving to hyper's header timeout.
            Closing::Now(why) if !activity.any_started() => return tracing::debug!(why, "dropping a connection"),
            Closing::Now(why) => why,
            Closing::Stalled => return tracing::debug!("dropping a connection whose client does not read its answers"),
        };
        tracing::debug!(why, "closing a connection");
        connection.as_mut().graceful_shutdown();
        // An HTTP/2 client must still acknowledge the GOAWAY's PING (and read
        // it) before the close completes: one that never does is dropped once
        // idle, or stalled, for another header timeout.
        tokio::select! {
            ended = connection.as_mut() => log_end(ended),
            quiet = activity.quiet_for(self.header_timeout, tokio::time::Instant::now()) => {
                tracing::debug!(?quiet, "dropping a connection that did not close after its shutdown began");
            }
        }
    }
}

fn log_end<E: std::fmt::Display>(ended: Result<(), E>) {
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Bytes a connection's first read must reach in time: the HTTP/2 preface's
/// length, as many as hyper reads to tell the protocols apart.
const FIRST_BYTES: usize = 24;

/// A connection's stream, watched two ways:
/// - its first [`FIRST_BYTES`] bytes must arrive within the header timeout.
///   hyper tells HTTP/1 from HTTP/2 by them before any of its own timers
///   runs, so without this a client that connects and sends nothing, or
///   part of the HTTP/2 preface, would be held open for good. Past them, or
///   once an answer is written, hyper's header timeout takes over on
///   HTTP/1, and [`Activity::quiet_for`] on HTTP/2;
/// - whether its writes are blocked (the client does not read), noted in
///   its [`Activity`], so that a connection is not idle while an answer is
///   still going out, and is dropped when its client stops reading.
struct Watched<S> {
    inner: S,
    /// Until the first bytes have arrived.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    read: usize,
    activity: Arc<Activity>,
    /// The last write, flush or shutdown could not go through: noted in
    /// `activity` on each change only, so a write that goes through costs no
    /// atomic.
    blocked: bool,
}

impl<S> Watched<S> {
    fn new(inner: S, timeout: Duration, activity: Arc<Activity>) -> Self {
        Self { inner, deadline: Some(Box::pin(tokio::time::sleep(timeout))), read: 0, activity, blocked: false }
    }

    /// Notes whether a write (flush, shutdown) went through.
    fn wrote<T>(&mut self, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        match (&polled, self.blocked) {
            (Poll::Pending, false) => {
                self.blocked = true;
                self.activity.writes_blocked();
            }
            (Poll::Ready(_), true) => {
                self.blocked = false;
                self.activity.writes_flowing();
            }
            _ => {}
        }
        polled
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let this = &mut *self;
        let Some(deadline) = &mut this.deadline else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) => {
                this.read += buf.filled().len() - before;
                if this.read >= FIRST_BYTES || buf.filled().len() == before {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the connection did not start a request in time",
            ))),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        // An answer is being written: the request (however short) has started.
        self.deadline = None;
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.wrote(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.deadline = None;
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While the agent is not accepting (its connection slots all taken),
    /// the kernel completes and queues connects up to the listen backlog;
    /// beyond std's 128, the rest would stall in SYN retries (1 s, then
    /// 2 s more) instead.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn connects_beyond_std_s_backlog_are_queued_while_none_is_accepted() {
        // The kernel caps every backlog at `somaxconn`.
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok();
        let limit = somaxconn.and_then(|s| s.trim().parse::<usize>().ok()).unwrap_or(usize::MAX);
        let wanted = 300.min(limit);
        if wanted <= 129 {
            eprintln!("skipped: the system's somaxconn ({limit}) caps every backlog at std's or below");
            return;
        }
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects =
            (0..wanted).map(|_| tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)));
        let done = futures::future::join_all(connects).await;
        let connected = done.into_iter().filter(|c| matches!(c, Ok(Ok(_)))).count();
        assert_eq!(connected, wanted, "connects completed without an accept");
        drop(listener);
    }
}
