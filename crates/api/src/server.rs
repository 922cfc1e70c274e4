//! The HTTP server under the router: connections accepted up to a cap,
//! each served by hyper with a deadline on reading a request's head, and a
//! graceful stop. Slow or silent clients cannot hold the server: a head
//! not read within [`HttpConfig::header_timeout`] closes the connection, a
//! body not read within [`HttpConfig::body_timeout`] is a 408 (see
//! `openapi.rs`, which reads bodies), and past
//! [`HttpConfig::max_connections`] a new connection is closed at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How the HTTP server treats its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    /// Requests per second each API key may make, and its burst.
    pub rate: (u32, u32),
    /// How long a client may take to send a request's head (line and
    /// headers), from the first byte of the request or of the connection.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's whole body.
    pub body_timeout: Duration,
    /// Open connections at most; one more is closed at once.
    pub max_connections: usize,
    /// Requests answered at once at most; more wait their turn.
    pub max_in_flight: usize,
    /// How long a request may take from its arrival to its answer; past
    /// it, the answer is a 503 and a started request goes on to completion.
    pub request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            rate: super::DEFAULT_RATE,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_in_flight: super::task::MAX_IN_FLIGHT,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// open connections finish their requests for at most `grace`.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused_logged = false;
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            if !refused_logged {
                tracing::warn!(max = config.max_connections, "connection refused: too many open connections");
                refused_logged = true;
            }
            drop(stream);
            continue;
        };
        refused_logged = false;
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            let router = router.clone();
            async move {
                Ok::<_, Infallible>(
                    router.oneshot(request.map(axum::body::Body::new)).await.unwrap_or_else(|e| match e {}),
                )
            }
        });
        // The first byte must come within the head deadline too: telling
        // HTTP/1 from HTTP/2 waits for it with no deadline of its own, so a
        // client that connects and sends nothing would hold a connection
        // for good.
        let first_byte = config.header_timeout;
        let builder = builder.clone();
        let graceful = graceful.watcher();
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            if !matches!(tokio::time::timeout(first_byte, stream.peek(&mut first)).await, Ok(Ok(1))) {
                // Silent past the deadline, closed or broken: nothing to serve.
                drop(permit);
                return;
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let _ = graceful.watch(connection.into_owned()).await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace were dropped");
    }
    Ok(())
}
