//! Serving one router: on AWS Lambda through `lambda_http` when
//! `AWS_LAMBDA_RUNTIME_API` is set, otherwise on `0.0.0.0:$PORT` with
//! graceful shutdown on SIGTERM and Ctrl-C (Cloud Run, containers, local).

use std::future::Future;
use std::io;

use axum::Router;
use tokio::net::TcpListener;
use tower::util::MapRequest;

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
    if on_lambda() {
        tracing::info!(mode = "lambda", "serving Lambda invocations");
        return lambda_http::run(for_lambda(app))
            .await
            .map_err(|e| ServeError::Lambda(e.to_string()));
    }
    let listener = TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|source| ServeError::Bind { port, source })?;
    tracing::info!(mode = "server", port, "listening on http://0.0.0.0:{port}");
    serve_on(listener, app, shutdown_signal()).await
}

/// The router as it runs on Lambda. `lambda_http` puts a REST API's stage in
/// front of the path (`/prod/redis-health`); this routes on the path the
/// caller used instead, so a function answers at the same paths behind a
/// REST API stage, an HTTP API, a Function URL or an ALB, and as a server.
pub fn for_lambda(
    app: Router,
) -> MapRequest<Router, fn(lambda_http::Request) -> lambda_http::Request> {
    tower::ServiceExt::map_request(app, route_on_raw_path as fn(_) -> _)
}

fn route_on_raw_path(mut req: lambda_http::Request) -> lambda_http::Request {
    use lambda_http::RequestExt;
    let raw = req.raw_http_path();
    if raw.is_empty() || raw == req.uri().path() {
        return req;
    }
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{raw}?{query}"),
        None => raw.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse::<axum::http::uri::PathAndQuery>() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
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
