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
//!   and extract the numeric fields below from `jsonPayload`, labelled by
//!   [`SERVICE`] and [`ENVIRONMENT`].
//! - CloudWatch reads the `_aws` member ([`EMF_ROOT`], Embedded Metric
//!   Format): the namespace [`NAMESPACE`], the dimension sets
//!   [`DIMENSION_SETS`] and one metric per entry of [`METRICS`], whose values
//!   are the line's top-level fields of the same names. Lambda's log-level
//!   filtering reads [`LEVEL`] and [`TIMESTAMP`].
//!
//! Every count is on every line, zero included: an alert that adds two
//! series needs both. The queue gauges ([`QUEUE_GAUGES`]) are the
//! exception: they are on the lines of intervals in which a queue was read.

/// Cloud Logging's severity field (`INFO`, `WARNING`, `ERROR`, ...).
pub const SEVERITY: &str = "severity";
/// The human-readable message of a line.
pub const MESSAGE: &str = "message";
/// RFC 3339 time of the line (Cloud Logging).
pub const TIME: &str = "time";
/// The same instant as [`TIME`], under the key Lambda's log-level filtering
/// reads (a line without a valid one is taken as `INFO`).
pub const TIMESTAMP: &str = "timestamp";
/// Lambda's level of the line (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`,
/// `FATAL`): with the JSON log format Lambda drops lines below the
/// function's application log level, and takes a line without one as `INFO`.
pub const LEVEL: &str = "level";
/// The deployment environment (`DEPLOY_ENVIRONMENT`: `production`,
/// `staging`, …) on every line: a label of every log-based metric and an
/// EMF dimension, so that one environment's alerts read only its own lines.
pub const ENVIRONMENT: &str = "environment";
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
/// The EMF dimension sets of every metric: per function and environment
/// (the per-function alarms), and per environment (the environment-wide
/// ones). CloudWatch matches a dimension set exactly, hence both.
pub const DIMENSION_SETS: &[&[&str]] = &[&[SERVICE, ENVIRONMENT], &[ENVIRONMENT]];

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
/// Round trips of the interval that took at least 10 ms (failed ones included).
pub const OPERATIONS_GE_10MS: &str = "redis_operations_ge_10ms";
/// … at least 25 ms.
pub const OPERATIONS_GE_25MS: &str = "redis_operations_ge_25ms";
/// … at least 50 ms.
pub const OPERATIONS_GE_50MS: &str = "redis_operations_ge_50ms";
/// … at least 100 ms ([`SLOW_OPERATIONS`] read off the histogram).
pub const OPERATIONS_GE_100MS: &str = "redis_operations_ge_100ms";
/// … at least 250 ms.
pub const OPERATIONS_GE_250MS: &str = "redis_operations_ge_250ms";
/// … at least 1000 ms.
pub const OPERATIONS_GE_1000MS: &str = "redis_operations_ge_1000ms";
/// The latency distribution's tail: each bound in milliseconds and the
/// field counting the interval's round trips at least that long. Exact to
/// sum across instances, so the fleet's p99 is above a bound when more than
/// 1 % of the operations are at or above it (GCP builds a
/// `histogram_quantile` from them: `le` = operations − `ge`).
pub const OPERATIONS_AT_LEAST: &[(u64, &str)] = &[
    (10, OPERATIONS_GE_10MS),
    (25, OPERATIONS_GE_25MS),
    (50, OPERATIONS_GE_50MS),
    (100, OPERATIONS_GE_100MS),
    (250, OPERATIONS_GE_250MS),
    (1_000, OPERATIONS_GE_1000MS),
];
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
/// HTTP requests answered in the interval, probes included (the heartbeat
/// alert counts the lines that carry it).
pub const HTTP_REQUESTS: &str = "http_requests";
/// HTTP responses with a 5xx status in the interval, probes included.
pub const HTTP_5XX: &str = "http_responses_5xx";
/// Responses to requests outside the probe routes ([`PROBE_ROUTES`],
/// matched on the route template; an unmatched path is a user's): what the
/// request SLOs count.
pub const HTTP_USER_REQUESTS: &str = "http_user_requests";
/// Of [`HTTP_USER_REQUESTS`], those with a 5xx status.
pub const HTTP_USER_5XX: &str = "http_user_responses_5xx";
/// Of [`HTTP_USER_REQUESTS`], those that took at least
/// [`HTTP_SLOW_REQUEST_THRESHOLD_MS`] from entering the router to the
/// response (any status): the request-latency SLO's bad events.
pub const HTTP_USER_SLOW_REQUESTS: &str = "http_user_slow_requests";
/// Responses to the probe routes ([`PROBE_ROUTES`]).
pub const HTTP_PROBE_REQUESTS: &str = "http_probe_requests";
/// The value of [`HTTP_USER_SLOW_REQUESTS`]' threshold, written on the line.
pub const HTTP_SLOW_THRESHOLD_MS: &str = "http_slow_threshold_ms";
/// 1 on the first metrics line of a process (a cold start), 0 afterwards.
pub const COLD_STARTS: &str = "cold_starts";
/// On the first metrics line of a process: how long its init took, from
/// reading the configuration to being ready to serve (on Lambda: to the
/// runtime's first `/next`, the extension registered).
pub const INIT_DURATION_MS: &str = "init_duration_ms";
/// The value of [`SLOW_OPERATIONS`]'s threshold, written on the line.
pub const SLOW_THRESHOLD_MS: &str = "redis_slow_threshold_ms";
/// Queue gauges (not counts): the largest backlog (items waiting to be
/// claimed, delayed ones included) among the queues the process read in the
/// interval (a claim, a status). Written only on the lines of intervals in
/// which a queue was read: a process that serves no queue writes none, and
/// an alert on it treats a missing value as "not breaching".
pub const QUEUE_BACKLOG: &str = "queue_backlog";
/// Queue gauge: the largest age, in milliseconds, of the oldest item
/// neither acknowledged nor dead-lettered, among the queues read in the
/// interval (0 when they were empty). As [`QUEUE_BACKLOG`].
pub const QUEUE_OLDEST_AGE_MS: &str = "queue_oldest_age_ms";
/// Queue gauge: the largest dead-letter count among the queues read in the
/// interval. As [`QUEUE_BACKLOG`].
pub const QUEUE_DEAD_LETTERS: &str = "queue_dead_letters";
/// The queue gauges, written together.
pub const QUEUE_GAUGES: &[&str] = &[QUEUE_BACKLOG, QUEUE_OLDEST_AGE_MS, QUEUE_DEAD_LETTERS];

/// A round trip at least this long counts as slow. Fixed, so that the
/// latency objective in Terraform means the same thing in every function.
pub const SLOW_OPERATION_THRESHOLD_MS: u64 = 100;

/// A request at least this long counts as slow (the request-latency SLO's
/// objective is "faster than this"). Fixed, like the Redis one.
pub const HTTP_SLOW_REQUEST_THRESHOLD_MS: u64 = 1_000;

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
    (OPERATIONS_GE_10MS, Unit::Count),
    (OPERATIONS_GE_25MS, Unit::Count),
    (OPERATIONS_GE_50MS, Unit::Count),
    (OPERATIONS_GE_100MS, Unit::Count),
    (OPERATIONS_GE_250MS, Unit::Count),
    (OPERATIONS_GE_1000MS, Unit::Count),
    (CIRCUIT_REJECTIONS, Unit::Count),
    (OVERLOAD_REJECTIONS, Unit::Count),
    (CONNECTIONS_REPLACED, Unit::Count),
    (FALLBACKS, Unit::Count),
    (LATENCY_P50_MS, Unit::Milliseconds),
    (LATENCY_P99_MS, Unit::Milliseconds),
    (LATENCY_MAX_MS, Unit::Milliseconds),
    (HTTP_REQUESTS, Unit::Count),
    (HTTP_5XX, Unit::Count),
    (HTTP_USER_REQUESTS, Unit::Count),
    (HTTP_USER_5XX, Unit::Count),
    (HTTP_USER_SLOW_REQUESTS, Unit::Count),
    (HTTP_PROBE_REQUESTS, Unit::Count),
    (COLD_STARTS, Unit::Count),
    (INIT_DURATION_MS, Unit::Milliseconds),
    (QUEUE_BACKLOG, Unit::Count),
    (QUEUE_OLDEST_AGE_MS, Unit::Milliseconds),
    (QUEUE_DEAD_LETTERS, Unit::Count),
];

/// The route of the black-box probe every function answers.
pub const HEALTH_PATH: &str = "/redis-health";
/// The liveness route (never touches Redis).
pub const LIVENESS_PATH: &str = "/healthz";
/// The routes the probes call: left out of the request SLOs' counts.
pub const PROBE_ROUTES: &[&str] = &[HEALTH_PATH, LIVENESS_PATH];
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
