//! HTTP glue: one axum `Router` served on AWS Lambda or as a plain server.
//!
//! - [`serve`] runs the router under `lambda_http` when
//!   `AWS_LAMBDA_RUNTIME_API` is set (Lambda), otherwise on `0.0.0.0:$PORT`
//!   with graceful shutdown on SIGTERM and Ctrl-C (Cloud Run, containers,
//!   local). [`serve_on`] takes the listener and the shutdown signal, for tests.
//! - [`finish`] adds what every function has: `GET /redis-health`,
//!   `GET /healthz`, JSON `404`/`405`, the request-body limit, a request id
//!   and tracing span around every request, the request deadline, and a
//!   `500` for a panicking handler.
//! - [`ApiError`] is the one error shape (`{"error":{"code","message"}}`);
//!   [`Json`] is a body extractor whose rejections use it and never quote the
//!   body; [`admin_only`] guards admin routes with a bearer token.

use std::future::Future;
use std::hash::BuildHasher;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, body::Bytes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tower::util::MapRequest;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::app::AppContext;
use crate::config::Secret;
use crate::error::{ErrorKind, RedisFailure};
use crate::health;
use crate::keys::KeyError;
use crate::telemetry::{MetricsReporter, names};

/// The header that carries the request id in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// An error answered to the caller as `{"error":{"code","message"}}`.
///
/// The status and code are chosen by the code that raises it; the message is
/// written for the caller and must not hold secrets or patient data. Redis
/// failures become `503` with `Retry-After` and the failure kind as
/// `error.type`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    kind: Option<ErrorKind>,
    retry_after: Option<Duration>,
    www_authenticate: bool,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<ErrorKind>,
}

/// Attached to error responses so the request log line can name the error
/// without parsing the body.
#[derive(Debug, Clone, Copy)]
struct ErrorMarker {
    code: &'static str,
    kind: Option<ErrorKind>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            kind: None,
            retry_after: None,
            www_authenticate: false,
        }
    }

    /// `400`: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `404`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `409`: conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// `413`: the request is larger than allowed.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// `422`: well-formed but not acceptable.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// `429` with `Retry-After`.
    pub fn too_many_requests(retry_after: Duration) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry after the time in Retry-After",
        )
        .with_retry_after(retry_after)
    }

    /// `401` with `WWW-Authenticate: Bearer`.
    pub fn unauthorized() -> Self {
        Self {
            www_authenticate: true,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            )
        }
    }

    /// `500`: a bug or an impossible state; the detail goes to the log, not here.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// Names the Redis failure kind behind the error (`error.type`).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Adds a `Retry-After` header (whole seconds, rounded up).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<RedisFailure> for ApiError {
    fn from(failure: RedisFailure) -> Self {
        Self {
            kind: Some(failure.kind()),
            retry_after: Some(failure.retry_after()),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "redis_unavailable",
                failure.to_string(),
            )
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        Self::bad_request("invalid_id", err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                kind: self.kind,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response.extensions_mut().insert(ErrorMarker {
            code: self.code,
            kind: self.kind,
        });
        response
    }
}

/// A JSON request body. Like `axum::Json`, but rejections are [`ApiError`]s
/// (`415` without a JSON content type, `413` over the body limit, `400`
/// otherwise) whose messages give the position or the field path, never the
/// offending value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("the request body is larger than the limit (MAX_BODY_BYTES)")
            } else {
                ApiError::bad_request("invalid_body", "the request body could not be read")
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses a JSON document into `T` with the [`Json`] extractor's error messages.
///
/// # Errors
/// `400` naming the position (syntax) or the field path (shape) of the problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let syntax = |inner: &serde_json::Error| {
        ApiError::bad_request(
            "invalid_json",
            format!(
                "the body is not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        )
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let inner = err.inner();
        if inner.classify() != serde_json::error::Category::Data {
            return syntax(inner);
        }
        let path = err.path().to_string();
        let message = if path == "." || path.is_empty() {
            "the body does not have the expected shape".to_owned()
        } else {
            format!("`{path}` is missing or has the wrong type")
        };
        ApiError::bad_request("invalid_body", message)
    })?;
    de.end().map_err(|e| syntax(&e))?;
    Ok(value)
}

/// Adds the common routes and layers to a function's routes (see the module
/// documentation). The result is what [`serve`] runs and what tests call with
/// `tower::ServiceExt::oneshot`.
pub fn finish(routes: Router, ctx: &AppContext) -> Router {
    let common = Router::new()
        .route(names::HEALTH_PATH, get(redis_health))
        .route(names::LIVENESS_PATH, get(healthz))
        .with_state(ctx.clone());
    routes
        .merge(common)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| ApiError::internal().into_response(),
        ))
        .layer(middleware::from_fn_with_state(
            ctx.config.http.request_timeout,
            request_context,
        ))
        .layer(DefaultBodyLimit::max(ctx.config.http.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            ctx.metrics.clone(),
            report_metrics,
        ))
}

/// Counts every response and writes the metrics line when its interval is
/// over: the request path is the one place sure to run on Lambda, where the
/// process is frozen between invocations. Outside the request span, so the
/// line does not carry one request's id.
async fn report_metrics(
    State(reporter): State<MetricsReporter>,
    req: Request,
    next: Next,
) -> Response {
    let response = next.run(req).await;
    reporter.record_response(response.status().as_u16());
    reporter.flush_if_due();
    response
}

async fn redis_health(State(ctx): State<AppContext>) -> Response {
    let report = health::check(&ctx.redis).await;
    let status = if report.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, axum::Json(&report)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(kind) = report.error_type {
        response.extensions_mut().insert(ErrorMarker {
            code: "redis_unhealthy",
            kind: Some(kind),
        });
    }
    response
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// A request id: the caller's `x-request-id` when it is a plausible id,
/// the Lambda request id, or a fresh one.
fn request_id(req: &Request) -> String {
    if let Some(id) = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
    {
        return id.to_owned();
    }
    if let Some(ctx) = req.extensions().get::<lambda_http::Context>() {
        return ctx.request_id.clone();
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    let n = COUNTER.fetch_add(1, Relaxed);
    format!("{:016x}", SEED.get_or_init(Default::default).hash_one(n))
}

/// The Cloud Trace resource name for Cloud Logging, from Cloud Run's header.
fn cloud_trace(req: &Request) -> Option<String> {
    static PROJECT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let project = PROJECT
        .get_or_init(|| std::env::var("GOOGLE_CLOUD_PROJECT").ok())
        .as_deref()?;
    let header = req.headers().get("x-cloud-trace-context")?.to_str().ok()?;
    let trace_id = header.split('/').next()?;
    trace_id
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| format!("projects/{project}/traces/{trace_id}"))
}

/// Request id, span, deadline and the one log line of a failed request.
async fn request_context(State(deadline): State<Duration>, req: Request, next: Next) -> Response {
    let id = request_id(&req);
    // The route template, never the raw path: paths carry tenant and record ids.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = %route,
        trace = tracing::field::Empty,
    );
    if let Some(trace) = cloud_trace(&req) {
        span.record("trace", trace.as_str());
    }
    let started = Instant::now();
    let outcome = tokio::time::timeout(deadline, next.run(req))
        .instrument(span.clone())
        .await;
    let mut response = outcome.unwrap_or_else(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "deadline_exceeded",
            format!(
                "the request did not finish within {} ms",
                deadline.as_millis()
            ),
        )
        .with_retry_after(Duration::from_secs(1))
        .into_response()
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    let marker = response.extensions().get::<ErrorMarker>().copied();
    let _entered = span.enter();
    let code = marker.map_or("", |m| m.code);
    let kind = marker.and_then(|m| m.kind).map_or("", ErrorKind::as_str);
    if status >= 500 {
        tracing::warn!(
            status,
            latency_ms,
            error.code = code,
            error.kind = kind,
            "request failed"
        );
    } else if status >= 400 {
        tracing::info!(status, latency_ms, error.code = code, "request rejected");
    } else {
        tracing::debug!(status, latency_ms, "request served");
    }
    response
}

/// Requires `Authorization: Bearer <token>` on every route of `routes`.
/// Without a token configured the routes answer `404`, as if absent: admin
/// endpoints are never open by default. The comparison takes the same time
/// wherever the presented token first differs.
pub fn admin_only<S>(routes: Router<S>, token: Option<Secret>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes.route_layer(middleware::from_fn_with_state(
        token.map(Arc::new),
        require_admin,
    ))
}

async fn require_admin(
    State(token): State<Option<Arc<Secret>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return ApiError::not_found("no such route").into_response();
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.expose().as_bytes()) => next.run(req).await,
        _ => ApiError::unauthorized().into_response(),
    }
}

/// Equality whose running time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

/// Whether this process runs inside AWS Lambda.
pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Serves `app` on Lambda or on `0.0.0.0:port` (see the module documentation)
/// until the runtime ends or a shutdown signal arrives.
///
/// # Errors
/// When the port cannot be bound or the runtime fails.
pub async fn serve(app: Router, port: u16) -> Result<(), ServeError> {
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
pub async fn shutdown_signal() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret", b"secret-token-123"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn json_errors_name_the_path_not_the_value() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[allow(dead_code)]
            patients: Vec<Patient>,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Patient {
            #[allow(dead_code)]
            id: String,
        }
        let err = parse_json::<Body>(br#"{"patients":[{"id":"a"},{"id":12345678}]}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.message.contains("patients[1].id"), "{}", err.message);
        assert!(!err.message.contains("12345678"));
        let err = parse_json::<Body>(br#"{"patients": [ "#).unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        let err = parse_json::<Body>(br#"{"patients": []} trailing"#).unwrap_err();
        assert_eq!(err.code(), "invalid_json");
    }
}
