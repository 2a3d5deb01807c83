//! What every function has: `GET /redis-health`, `GET /healthz`, JSON
//! `404`/`405`, the request-body limit, a request id and tracing span around
//! every request, the request deadline, the metrics of every response, a
//! `500` for a panicking handler, and `Cache-Control: no-store` (unless the
//! route set its own) and `X-Content-Type-Options: nosniff` on every answer.
//!
//! The two probe routes are open in every `AUTH_MODE`: they carry no tenant
//! data, and `/redis-health` answers only what a probe needs (`status`,
//! `ping`, `latency_ms`, and `error` / `type` when unhealthy); the full
//! report is the admin route of `tebra_debug`.
//!
//! # The request deadline
//!
//! A request's deadline is `REQUEST_TIMEOUT_MS`, and on Lambda the earlier
//! of that and the invocation's own deadline (the runtime's
//! `Lambda-Runtime-Deadline-Ms`, [`lambda_http::Context::deadline`]) less
//! `LAMBDA_DEADLINE_MARGIN_MS` ([`request_deadline`]). Past it the caller
//! gets `503` JSON with `Retry-After`, written before Lambda ends the
//! invocation. Redis operations the request starts end a little earlier
//! still (50 ms, at most a tenth of the deadline: [`redis_deadline`]), so
//! that a Redis stall is answered as the Redis failure it is.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use super::app::AppContext;
use super::error::{ApiError, ErrorMarker};
use crate::config::HttpConfig;
use crate::contract as names;
use crate::redis::ErrorKind;
use crate::telemetry::{MetricsReporter, RouteKind};

/// How much sooner than the request Redis operations must end (at most a
/// tenth of the request's deadline).
const REDIS_DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// The header that carries the request id in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Adds the common routes and layers to a function's routes (see the module
/// documentation). The result is what [`crate::serve()`] runs and what tests call with
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
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("the request's handler panicked; it was answered 500");
                ApiError::internal().into_response()
            },
        ))
        .layer(middleware::from_fn_with_state(
            Deadlines::of(&ctx.config.http),
            request_context,
        ))
        .layer(DefaultBodyLimit::max(ctx.config.http.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            ctx.metrics.clone(),
            report_metrics,
        ))
        .layer(middleware::map_response(security_headers))
}

/// `nosniff` on every answer, and `no-store` on every answer whose route did
/// not choose its caching: answers carry tenant data (patient records,
/// conversations) that no browser or proxy may keep.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The `/redis-health` body: what a probe needs and nothing else (the
/// server's version, clients, pool and breaker are on the admin routes).
#[derive(serde::Serialize)]
struct ProbeBody<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ping: Option<&'a str>,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    error_type: Option<ErrorKind>,
}

/// Counts every response (by route kind: a probe's or a user's, and how
/// long it took) and writes the metrics line when its interval is over, or
/// on Lambda when the request saw an error: the request path is the one
/// place sure to run on Lambda, where the process is frozen between
/// invocations. Outside the request span, so the line does not carry one
/// request's id.
async fn report_metrics(
    State(reporter): State<MetricsReporter>,
    req: Request,
    next: Next,
) -> Response {
    let kind = RouteKind::of(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    reporter.record_response(status, kind, started.elapsed());
    reporter.after_response(status);
    response
}

async fn redis_health(State(ctx): State<AppContext>) -> Response {
    let report = ctx.health.check().await;
    let status = if report.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = ProbeBody {
        status: report.status,
        ping: report.ping.as_deref(),
        latency_ms: report.latency_ms,
        error: report.error.as_deref(),
        error_type: report.error_type,
    };
    let mut response = (status, axum::Json(&body)).into_response();
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

/// What a request's deadline is made of (see the module documentation).
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    request_timeout: Duration,
    lambda_margin: Duration,
}

impl Deadlines {
    fn of(http: &HttpConfig) -> Self {
        Self {
            request_timeout: http.request_timeout,
            lambda_margin: http.lambda_deadline_margin,
        }
    }
}

/// An invocation deadline below this (September 2001 in epoch
/// milliseconds) is no time of day: `cargo lambda watch` (1.9) sends the
/// function's timeout (`600000`) in `Lambda-Runtime-Deadline-Ms`. Such a
/// deadline is ignored rather than taken as long past.
const PLAUSIBLE_DEADLINE_MS: u64 = 1_000_000_000_000;

/// How long a request may take from `now`: `request_timeout`, or less when
/// it serves a Lambda invocation whose deadline (`invocation_deadline_ms`,
/// epoch milliseconds; 0, or no plausible time of day, when unknown) minus
/// `margin` comes sooner. Zero when that moment has passed.
pub fn request_deadline(
    request_timeout: Duration,
    invocation_deadline_ms: u64,
    margin: Duration,
    now: SystemTime,
) -> Duration {
    if invocation_deadline_ms < PLAUSIBLE_DEADLINE_MS {
        return request_timeout;
    }
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let left = Duration::from_millis(invocation_deadline_ms.saturating_sub(now_ms));
    request_timeout.min(left.saturating_sub(margin))
}

/// How long the Redis operations of a request with `deadline` may take:
/// 50 ms less, or a tenth less when that is shorter.
pub fn redis_deadline(deadline: Duration) -> Duration {
    deadline.saturating_sub(REDIS_DEADLINE_MARGIN.min(deadline / 10))
}

/// Request id, span, deadline and the one log line of a failed request.
async fn request_context(State(deadlines): State<Deadlines>, req: Request, next: Next) -> Response {
    let invocation_deadline_ms = req
        .extensions()
        .get::<lambda_http::Context>()
        .map_or(0, |c| c.deadline);
    let deadline = request_deadline(
        deadlines.request_timeout,
        invocation_deadline_ms,
        deadlines.lambda_margin,
        SystemTime::now(),
    );
    tracing::debug!(
        invocation_deadline_ms,
        deadline_ms = deadline.as_millis() as u64,
        "request deadline"
    );
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
    // Redis work ends a little before the request does, so that a Redis
    // stall is answered as the Redis failure it is (its kind, Retry-After).
    let redis_deadline = tokio::time::Instant::now() + redis_deadline(deadline);
    let outcome = tokio::time::timeout(
        deadline,
        crate::redis::with_request_deadline(redis_deadline, next.run(req)),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invocations_deadline_less_the_margin_caps_the_request_timeout() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let now_ms = 1_800_000_000_000;
        let ten_s = Duration::from_secs(10);
        let margin = Duration::from_millis(100);
        // Not on Lambda, or no time of day (cargo lambda watch's 600000):
        // the configured timeout.
        assert_eq!(request_deadline(ten_s, 0, margin, now), ten_s);
        assert_eq!(request_deadline(ten_s, 600_000, margin, now), ten_s);
        // 300 ms left: 200 ms for the request, 180 ms for its Redis work.
        let d = request_deadline(ten_s, now_ms + 300, margin, now);
        assert_eq!(d, Duration::from_millis(200));
        assert_eq!(redis_deadline(d), Duration::from_millis(180));
        // A minute left: the configured timeout comes first.
        assert_eq!(request_deadline(ten_s, now_ms + 60_000, margin, now), ten_s);
        // Less left than the margin, or past: nothing.
        assert_eq!(
            request_deadline(ten_s, now_ms + 50, margin, now),
            Duration::ZERO
        );
        assert_eq!(
            request_deadline(ten_s, now_ms - 5, margin, now),
            Duration::ZERO
        );
        assert_eq!(
            redis_deadline(Duration::from_secs(10)),
            Duration::from_millis(9_950)
        );
    }
}
