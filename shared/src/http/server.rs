//! Serving one router: on AWS Lambda through `lambda_http` (see
//! [`super::lambda`]) when `AWS_LAMBDA_RUNTIME_API` is set, otherwise on `0.0.0.0:$PORT` with
//! graceful shutdown on SIGTERM and Ctrl-C (Cloud Run, containers, local).

use std::future::Future;
use std::io;

use axum::Router;
use tokio::net::TcpListener;

use super::lambda::{LambdaHandler, register_extension};
use crate::config::on_lambda;

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

/// Serves `app` on Lambda or on `0.0.0.0:port` (see the module documentation)
/// until the runtime ends or a shutdown signal arrives.
///
/// # Errors
/// When the port cannot be bound or the runtime fails.
pub async fn serve_router(app: Router, port: u16) -> Result<(), ServeError> {
    serve_router_then(app, port, || {}).await
}

/// [`serve_router`], calling `ready` once init is over: on Lambda after
/// the internal extension is registered, right before the first `/next`
/// (see [`super::lambda`]); as a server once the port is bound.
///
/// # Errors
/// When the port cannot be bound or the runtime fails.
pub async fn serve_router_then(
    app: Router,
    port: u16,
    ready: impl FnOnce(),
) -> Result<(), ServeError> {
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
    serve_on(listener, app, shutdown_signal()).await
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests
/// in flight finish.
///
/// # Errors
/// When accepting connections fails.
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)
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
