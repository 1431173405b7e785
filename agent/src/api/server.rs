//! The HTTP server: accepts connections and serves the router on each, with
//! hyper's own guards against slow clients, and stops gracefully.
//!
//! Not `axum::serve`: it gives hyper no timer, and without one hyper cannot
//! time out a client that never finishes its headers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use super::tls::Tls;

/// Pause after a failed accept (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` (over TLS with `tls`) until `stop` resolves;
/// then stops accepting, lets each connection finish its request in
/// progress, and returns once all are closed. A client that has not
/// finished its TLS handshake, or sent its whole request head,
/// `header_timeout` after connecting (or after its previous request) is
/// disconnected.
pub async fn run(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    tls: Option<Arc<Tls>>,
    stop: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let connections = TaskTracker::new();
    let mut stop = std::pin::pin!(stop);
    loop {
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
        let serve = Connection { builder: builder.clone(), app: app.clone(), watcher: graceful.watcher() };
        match &tls {
            None => connections.spawn(serve.run(stream)),
            Some(tls) => {
                let acceptor = tls.acceptor();
                connections.spawn(async move {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve.run(stream).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                })
            }
        };
    }
    drop(listener);
    graceful.shutdown().await;
    connections.close();
    connections.wait().await;
}

/// One accepted connection, about to be served.
struct Connection {
    builder: auto::Builder<TokioExecutor>,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    async fn run(self, stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) {
        let service = TowerToHyperService::new(self.app);
        let connection = self.builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        if let Err(e) = self.watcher.watch(connection.into_owned()).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}
