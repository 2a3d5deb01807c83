//! Serving one router: on AWS Lambda through `lambda_http` (see
//! [`super::lambda`]) when `AWS_LAMBDA_RUNTIME_API` is set, otherwise on `0.0.0.0:$PORT` with
//! graceful shutdown on SIGTERM and Ctrl-C (Cloud Run, containers, local).
//!
//! The plain server is hyper's HTTP/1 connection with a timer, so that
//! hyper's own header-read timeout applies (`axum::serve` sets no timer, and
//! a client sending its headers a byte at a time held its connection
//! forever): a connection whose request head, or next request head on a
//! kept-alive connection, has not arrived within `HEADER_READ_TIMEOUT_MS`
//! is closed. At most `MAX_CONNECTIONS` connections are open at once; past
//! that the server stops accepting and new ones wait in the kernel's
//! queue, so slow clients cannot use up the process's file descriptors.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::lambda::{LambdaHandler, register_extension};
use crate::config::{HttpConfig, on_lambda};

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port could not be bound.
    #[error("cannot listen on port {port}: {source}")]
    Bind {
        /// `PORT`.
        port: u16,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(#[source] io::Error),
    /// The Lambda runtime loop failed.
    #[error("lambda runtime error: {0}")]
    Lambda(String),
}

/// How the plain server protects itself from slow and numerous clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest wait for a request head (`HEADER_READ_TIMEOUT_MS`).
    pub header_read_timeout: Duration,
    /// Most connections open at once (`MAX_CONNECTIONS`).
    pub max_connections: usize,
}

impl Default for ServerLimits {
    /// The defaults of [`HttpConfig`]: 5 s and 512 connections.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            max_connections: 512,
        }
    }
}

impl ServerLimits {
    /// The limits `http` configures.
    pub fn from_config(http: &HttpConfig) -> Self {
        Self {
            header_read_timeout: http.header_read_timeout,
            max_connections: http.max_connections,
        }
    }
}

/// Serves `app` on Lambda or on `0.0.0.0:$PORT` (see the module
/// documentation) until the runtime ends or a shutdown signal arrives.
///
/// # Errors
/// When the port cannot be bound or the runtime fails.
pub async fn serve_router(app: Router, http: &HttpConfig) -> Result<(), ServeError> {
    serve_router_then(app, http, || {}).await
}

/// [`serve_router`], calling `ready` once init is over: on Lambda after
/// the internal extension is registered, right before the first `/next`
/// (see [`super::lambda`]); as a server once the port is bound.
///
/// # Errors
/// When the port cannot be bound or the runtime fails.
pub async fn serve_router_then(
    app: Router,
    http: &HttpConfig,
    ready: impl FnOnce(),
) -> Result<(), ServeError> {
    let port = http.port;
    if on_lambda() {
        let runtime_api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
        let extension = register_extension(&runtime_api).await;
        tracing::info!(
            mode = "lambda",
            shutdown_signal = extension,
            "serving Lambda invocations"
        );
        ready();
        return lambda_http::lambda_runtime::run(LambdaHandler::new(app))
            .await
            .map_err(|e| ServeError::Lambda(e.to_string()));
    }
    let listener = TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|source| ServeError::Bind { port, source })?;
    tracing::info!(mode = "server", port, "listening on http://0.0.0.0:{port}");
    ready();
    serve_with_limits(
        listener,
        app,
        shutdown_signal(),
        ServerLimits::from_config(http),
    )
    .await
}

/// Serves `app` on `listener` with the default [`ServerLimits`] until
/// `shutdown` completes, then lets requests in flight finish.
///
/// # Errors
/// None today (accept errors are logged and retried); kept for callers.
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_limits(listener, app, shutdown, ServerLimits::default()).await
}

/// Serves `app` on `listener` under `limits` (see the module documentation)
/// until `shutdown` completes: then it stops accepting, tells every
/// connection to close after its request in flight, and returns once they
/// have. Each request carries its peer as `ConnectInfo<SocketAddr>`.
///
/// # Errors
/// None today (accept errors are logged and retried); kept for callers.
pub async fn serve_with_limits(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServerLimits,
) -> Result<(), ServeError> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free slot first: at the cap, connections wait in the backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            },
        );
        let connection = graceful
            .watch(http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            // A client that times out or hangs up ends its connection here;
            // that is the client's business, not an error of the server.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A connection that failed before it was accepted is skipped; anything else
/// (no file descriptor left) is logged and the loop pauses, as
/// `axum::serve` does, rather than spinning.
async fn accept_failed(err: &io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %err, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Completes on SIGTERM (Cloud Run, Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}
