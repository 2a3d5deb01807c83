//! The metric contract: every name an alert, a dashboard or a probe reads.
//!
//! These constants are the one place the names are spelled. The code that
//! writes the metrics line ([`crate::telemetry::MetricsReporter`]), the `/redis-health`
//! route and the request log lines use them, and the Terraform contract test
//! (`shared/tests/terraform_contract.rs`) fails when an alert under
//! `terraform/` reads a name that is not here or that the code does not
//! write. Renaming one is a breaking change for the alerts: change the
//! Terraform in the same commit.
//!
//! # The metrics line
//!
//! One JSON log line per interval and process (only when something happened),
//! read by both clouds:
//!
//! - Cloud Logging reads `severity`, `message`, `time` and the trace field;
//!   the log-based metrics select the line by [`EVENT`] = [`METRICS_EVENT`]
//!   and extract the numeric fields below from `jsonPayload`.
//! - CloudWatch reads the `_aws` member ([`EMF_ROOT`], Embedded Metric
//!   Format): the namespace [`NAMESPACE`], the dimension [`SERVICE`] and one
//!   metric per entry of [`METRICS`], whose values are the line's top-level
//!   fields of the same names.

/// Cloud Logging's severity field (`INFO`, `WARNING`, `ERROR`, ...).
pub const SEVERITY: &str = "severity";
/// The human-readable message of a line.
pub const MESSAGE: &str = "message";
/// RFC 3339 time of the line.
pub const TIME: &str = "time";
/// The function's name (the crate name, e.g. `tebra_debug`); also the
/// CloudWatch dimension and the log-based metrics' `service` label.
pub const SERVICE: &str = "service";
/// The Cloud Trace resource name Cloud Logging links a line to.
pub const TRACE: &str = "logging.googleapis.com/trace";
/// What kind of structured line this is; selects the metrics line.
pub const EVENT: &str = "event";
/// The value of [`EVENT`] on the metrics line.
pub const METRICS_EVENT: &str = "redis_metrics";
/// The message of the metrics line.
pub const METRICS_MESSAGE: &str = "redis metrics";
/// The `tracing` target of the metrics line. The log filter always lets it
/// through at `info`, whatever `LOG_LEVEL` says: alerts depend on it.
pub const METRICS_TARGET: &str = "redis_metrics";

/// The Embedded Metric Format member of the metrics line.
pub const EMF_ROOT: &str = "_aws";
/// The CloudWatch namespace of every metric the functions write.
pub const NAMESPACE: &str = "ServerlessRedis";

/// Length of the interval the line covers, in milliseconds.
pub const INTERVAL_MS: &str = "interval_ms";
/// Redis round trips attempted in the interval, failed ones included.
pub const OPERATIONS: &str = "redis_operations";
/// Failed round trips in the interval, all kinds together.
pub const ERRORS: &str = "redis_errors";
/// Failed round trips: no usable connection (refused, reset, DNS, TLS).
pub const ERRORS_CONNECT: &str = "redis_errors_connect";
/// Failed round trips: no answer within the deadline.
pub const ERRORS_TIMEOUT: &str = "redis_errors_timeout";
/// Failed round trips: credentials refused.
pub const ERRORS_AUTH: &str = "redis_errors_auth";
/// Failed round trips: a replica answered a write (`READONLY`, a failover).
pub const ERRORS_READ_ONLY: &str = "redis_errors_read_only";
/// Failed round trips: the server refused for now (`BUSY`, `TRYAGAIN`, `OOM`).
pub const ERRORS_BUSY: &str = "redis_errors_busy";
/// Failed round trips: Redis answered with an error a retry cannot cure.
pub const ERRORS_OTHER: &str = "redis_errors_other";
/// Round trips slower than [`SLOW_OPERATION_THRESHOLD_MS`], failed ones included.
pub const SLOW_OPERATIONS: &str = "redis_slow_operations";
/// Operations refused by the open circuit breaker (Redis not tried).
pub const CIRCUIT_REJECTIONS: &str = "redis_circuit_rejections";
/// Commands refused because their connection's queue was full (not sent).
pub const OVERLOAD_REJECTIONS: &str = "redis_overload_rejections";
/// Connections replaced because they kept timing out (half-open).
pub const CONNECTIONS_REPLACED: &str = "redis_connections_replaced";
/// Fallback values returned in place of Redis results.
pub const FALLBACKS: &str = "redis_fallbacks";
/// Median round-trip time in the interval, milliseconds.
pub const LATENCY_P50_MS: &str = "redis_latency_p50_ms";
/// 99th percentile round-trip time in the interval, milliseconds.
pub const LATENCY_P99_MS: &str = "redis_latency_p99_ms";
/// Slowest round trip in the interval (its histogram bucket), milliseconds.
pub const LATENCY_MAX_MS: &str = "redis_latency_max_ms";
/// HTTP requests answered in the interval.
pub const HTTP_REQUESTS: &str = "http_requests";
/// HTTP responses with a 5xx status in the interval.
pub const HTTP_5XX: &str = "http_responses_5xx";
/// The value of [`SLOW_OPERATIONS`]'s threshold, written on the line.
pub const SLOW_THRESHOLD_MS: &str = "redis_slow_threshold_ms";

/// A round trip at least this long counts as slow. Fixed, so that the
/// latency objective in Terraform means the same thing in every function.
pub const SLOW_OPERATION_THRESHOLD_MS: u64 = 100;

/// CloudWatch unit of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of events in the interval.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
}

impl Unit {
    /// The unit's name in the Embedded Metric Format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// Every metric on the metrics line, with its CloudWatch unit.
pub const METRICS: &[(&str, Unit)] = &[
    (OPERATIONS, Unit::Count),
    (ERRORS, Unit::Count),
    (ERRORS_CONNECT, Unit::Count),
    (ERRORS_TIMEOUT, Unit::Count),
    (ERRORS_AUTH, Unit::Count),
    (ERRORS_READ_ONLY, Unit::Count),
    (ERRORS_BUSY, Unit::Count),
    (ERRORS_OTHER, Unit::Count),
    (SLOW_OPERATIONS, Unit::Count),
    (CIRCUIT_REJECTIONS, Unit::Count),
    (OVERLOAD_REJECTIONS, Unit::Count),
    (CONNECTIONS_REPLACED, Unit::Count),
    (FALLBACKS, Unit::Count),
    (LATENCY_P50_MS, Unit::Milliseconds),
    (LATENCY_P99_MS, Unit::Milliseconds),
    (LATENCY_MAX_MS, Unit::Milliseconds),
    (HTTP_REQUESTS, Unit::Count),
    (HTTP_5XX, Unit::Count),
];

/// The route of the black-box probe every function answers.
pub const HEALTH_PATH: &str = "/redis-health";
/// The liveness route (never touches Redis).
pub const LIVENESS_PATH: &str = "/healthz";
/// The `/redis-health` field the probes match on.
pub const HEALTH_STATUS: &str = "status";
/// [`HEALTH_STATUS`] when Redis answered.
pub const HEALTHY: &str = "healthy";
/// [`HEALTH_STATUS`] when it did not.
pub const UNHEALTHY: &str = "unhealthy";
/// The exact text a probe finds in a healthy `/redis-health` body.
pub const HEALTHY_BODY_MATCH: &str = r#""status":"healthy""#;
/// The `/redis-health` fields (and the failure's kind, `type`): what a probe
/// needs; the route is open in every `AUTH_MODE`.
pub const HEALTH_FIELDS: &[&str] = &[HEALTH_STATUS, "ping", "latency_ms", "error", "type"];

/// The HTTP status on a request's log line.
pub const HTTP_STATUS: &str = "status";
/// The message of the one log line of a request answered 5xx.
pub const REQUEST_FAILED_MESSAGE: &str = "request failed";
/// The request id on every line of a request.
pub const REQUEST_ID: &str = "request_id";
/// The route template on every line of a request.
pub const ROUTE: &str = "route";
/// The error's code on a failed request's line (`error.code`).
pub const ERROR_CODE: &str = "error.code";
/// The Redis error kind on a failed request's line (`error.kind`).
pub const ERROR_KIND: &str = "error.kind";
