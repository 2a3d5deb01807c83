//! The metrics line the alerts read, produced by real Redis round trips
//! against `redis-server` processes of the test kit and captured from the
//! JSON logger: one line that is a Cloud Logging structured entry and a
//! CloudWatch Embedded Metric Format document at once, whose counts are the
//! operations the test performed.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get as route_get;
use serde_json::Value;
use shared::config::LambdaLogLevel;
use shared::config::LogFormat;
use shared::contract as names;
use shared::http::ApiError;
use shared::telemetry::IntervalPolicy;
use shared::telemetry::{self, MetricsReporter};
use shared::testkit::{CapturedLogs, RedisServer, free_port};
use shared::{AppContext, RedisClient, RedisConfig};
use tower::ServiceExt;

/// The JSON lines written so far.
fn lines(logs: &CapturedLogs) -> Vec<Value> {
    logs.text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The metrics lines among `lines`.
fn metrics_lines(logs: &CapturedLogs) -> Vec<Value> {
    lines(logs)
        .into_iter()
        .filter(|l| l[names::EVENT] == names::METRICS_EVENT)
        .collect()
}

/// A logger for this thread only (the tests of this binary may share a
/// process), writing JSON lines into `logs`.
fn capture(service: &'static str) -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let logs = CapturedLogs::default();
    let guard = tracing::subscriber::set_default(telemetry::subscriber_in(
        service,
        "test",
        LogFormat::Json,
        "info",
        logs.clone(),
    ));
    (logs, guard)
}

/// Asserts that `line` is a valid Embedded Metric Format document: the
/// `_aws` metadata names existing numeric top-level fields, in our
/// namespace, with the `service` dimension present on the line.
fn assert_valid_emf(line: &Value) {
    let aws = &line[names::EMF_ROOT];
    let timestamp = aws["Timestamp"].as_u64().expect("Timestamp in ms");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        timestamp <= now && now - timestamp < 600_000,
        "Timestamp {timestamp} is not a recent epoch time in ms"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert_eq!(directives.len(), 1, "{aws}");
    let directive = &directives[0];
    assert_eq!(directive["Namespace"], names::NAMESPACE);
    let dimensions = directive["Dimensions"].as_array().unwrap();
    assert_eq!(
        directive["Dimensions"],
        serde_json::json!(names::DIMENSION_SETS),
        "per function and environment, and per environment"
    );
    for set in dimensions {
        for dimension in set.as_array().unwrap() {
            let dimension = dimension.as_str().unwrap();
            assert!(
                line[dimension].is_string(),
                "dimension {dimension} must be a string field of the line: {line}"
            );
        }
    }
    let metrics = directive["Metrics"].as_array().unwrap();
    assert!(!metrics.is_empty());
    for metric in metrics {
        let name = metric["Name"].as_str().unwrap();
        assert!(
            line[name].is_number(),
            "metric {name} has no numeric value on the line: {line}"
        );
        let unit = metric["Unit"].as_str().unwrap();
        assert!(["Count", "Milliseconds"].contains(&unit), "{unit}");
    }
}

fn declared_metrics(line: &Value) -> Vec<String> {
    line[names::EMF_ROOT]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn metrics_line_counts_real_operations_for_cloud_logging_and_cloudwatch() {
    let server = RedisServer::start();
    let client = server.client();
    // An hour, even after a failure: only flush() ends an interval here.
    let hour = Duration::from_secs(3_600);
    let reporter = MetricsReporter::with_policy(client.clone(), IntervalPolicy::new(hour, hour));
    let (logs, _guard) = capture("metrics_test");

    // 5 SETs and 5 GETs that succeed, and one INCR that the server refuses
    // (WRONGTYPE: an "other" error). 11 round trips, 1 failed.
    for i in 0..5 {
        let key = format!("ws:{{metrics}}:k{i}");
        let value: String = client
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg("v")
                    .exec_async(&mut c)
                    .await?;
                redis::cmd("GET").arg(&key).query_async(&mut c).await
            })
            .await
            .unwrap();
        assert_eq!(value, "v");
    }
    let refused = client
        .run(|mut c| async move {
            redis::cmd("INCR")
                .arg("ws:{metrics}:k0")
                .query_async::<i64>(&mut c)
                .await
        })
        .await;
    assert_eq!(refused.unwrap_err().kind(), shared::ErrorKind::Other);

    // Nothing is logged per operation, and not before the interval is over.
    assert!(!reporter.flush_if_due());
    assert!(metrics_lines(&logs).is_empty(), "{}", logs.text());

    assert!(reporter.flush(), "the interval had operations");
    let found = metrics_lines(&logs);
    assert_eq!(found.len(), 1, "{}", logs.text());
    let line = &found[0];

    // Cloud Logging's structured fields, and Lambda's.
    assert_eq!(line[names::SEVERITY], "WARNING", "an interval with errors");
    assert_eq!(line[names::LEVEL], "WARN", "an interval with errors");
    assert_eq!(line[names::MESSAGE], names::METRICS_MESSAGE);
    assert!(line[names::TIME].as_str().unwrap().ends_with('Z'));
    assert_eq!(line[names::TIMESTAMP], line[names::TIME]);
    assert_eq!(line[names::SERVICE], "metrics_test");
    assert_eq!(line[names::ENVIRONMENT], "test");
    // The first line of the reporter is its cold start.
    assert_eq!(line[names::COLD_STARTS], 1);

    // The counts are the operations performed.
    assert_eq!(line[names::OPERATIONS], 11, "{line}");
    assert_eq!(line[names::ERRORS], 1);
    assert_eq!(line[names::ERRORS_OTHER], 1);
    assert_eq!(line[names::ERRORS_CONNECT], 0);
    assert_eq!(line[names::ERRORS_TIMEOUT], 0);
    assert_eq!(line[names::ERRORS_AUTH], 0);
    assert_eq!(line[names::HTTP_REQUESTS], 0);
    assert_eq!(line[names::HTTP_USER_REQUESTS], 0);
    assert_eq!(line[names::HTTP_PROBE_REQUESTS], 0);
    assert_eq!(
        line[names::SLOW_THRESHOLD_MS],
        names::SLOW_OPERATION_THRESHOLD_MS
    );
    assert_eq!(
        line[names::HTTP_SLOW_THRESHOLD_MS],
        names::HTTP_SLOW_REQUEST_THRESHOLD_MS
    );
    // Local round trips: none in the tail, yet every bound is written.
    for (_, name) in names::OPERATIONS_AT_LEAST {
        assert_eq!(line[*name], 0, "{name}: {line}");
    }
    let p99 = line[names::LATENCY_P99_MS].as_f64().unwrap();
    let max = line[names::LATENCY_MAX_MS].as_f64().unwrap();
    assert!(p99 > 0.0 && max >= p99, "{line}");

    // And the same line is a CloudWatch EMF document declaring every metric
    // (the init duration only once `serve` marked the process ready).
    assert_valid_emf(line);
    let declared = declared_metrics(line);
    for (name, _) in names::METRICS {
        // The init duration is on the first line of a served process only;
        // the queue gauges on the lines of intervals that read a queue
        // (shared/tests/blocks/queue.rs and the Terraform contract test
        // read one).
        if *name == names::INIT_DURATION_MS || names::QUEUE_GAUGES.contains(name) {
            continue;
        }
        assert!(declared.iter().any(|d| d == name), "{name} not declared");
    }

    // The next interval starts from zero: two more round trips, no errors,
    // written at INFO.
    for _ in 0..2 {
        let _: String = client
            .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
            .await
            .unwrap();
    }
    assert!(reporter.flush());
    let found = metrics_lines(&logs);
    assert_eq!(found.len(), 2);
    assert_eq!(found[1][names::OPERATIONS], 2);
    assert_eq!(found[1][names::ERRORS], 0);
    assert_eq!(found[1][names::SEVERITY], "INFO");
    assert_eq!(found[1][names::LEVEL], "INFO");
    assert_eq!(found[1][names::COLD_STARTS], 0, "only the first line");

    // An idle interval writes nothing.
    assert!(!reporter.flush());
    assert_eq!(metrics_lines(&logs).len(), 2);
}

#[tokio::test]
async fn connection_failures_are_counted_by_kind_and_written_at_warning() {
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let mut config = RedisConfig::for_url(&closed).unwrap();
    config.breaker_threshold = 0; // every attempt reaches the (absent) server
    let client = RedisClient::new(config).unwrap();
    // A zero interval: a line whenever something happened.
    let reporter = MetricsReporter::new(client.clone(), Duration::ZERO);
    let (logs, _guard) = capture("metrics_test");

    for _ in 0..3 {
        let failure = client
            .run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .unwrap_err();
        assert_eq!(failure.kind(), shared::ErrorKind::Connect);
    }
    assert!(reporter.flush_if_due());
    let found = metrics_lines(&logs);
    assert_eq!(found.len(), 1, "{}", logs.text());
    let line = &found[0];
    assert_eq!(line[names::SEVERITY], "WARNING");
    assert_eq!(line[names::OPERATIONS], 3, "{line}");
    assert_eq!(line[names::ERRORS_CONNECT], 3);
    assert_eq!(line[names::ERRORS], 3);
    assert_valid_emf(line);
}

#[tokio::test]
async fn open_circuit_rejections_are_counted_without_operations() {
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let mut config = RedisConfig::for_url(&closed).unwrap();
    config.breaker_threshold = 1;
    config.breaker_cooldown = Duration::from_secs(600);
    let client = RedisClient::new(config).unwrap();
    let reporter = MetricsReporter::new(client.clone(), Duration::ZERO);
    let (logs, _guard) = capture("metrics_test");

    let ping = || async {
        client
            .run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
    };
    assert_eq!(ping().await.unwrap_err().kind(), shared::ErrorKind::Connect);
    assert!(reporter.flush_if_due());
    // The circuit is open: no round trip, yet the rejection is written.
    assert_eq!(
        ping().await.unwrap_err().kind(),
        shared::ErrorKind::CircuitOpen
    );
    assert!(reporter.flush_if_due());
    let found = metrics_lines(&logs);
    assert_eq!(found.len(), 2, "{}", logs.text());
    assert_eq!(found[1][names::OPERATIONS], 0);
    assert_eq!(found[1][names::CIRCUIT_REJECTIONS], 1);
    // Users were refused: a failure like an error, for the line's level.
    assert_eq!(found[1][names::LEVEL], "WARN", "{}", found[1]);
    assert_eq!(found[1][names::SEVERITY], "WARNING");
    assert!(
        found[1].get(names::LATENCY_P99_MS).is_none(),
        "no latency without operations: {}",
        found[1]
    );
    assert_valid_emf(&found[1]);
}

async fn get(app: &Router, path: &str) -> u16 {
    let request = Request::get(path).body(Body::empty()).unwrap();
    app.clone()
        .oneshot(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn every_response_is_counted_and_the_request_path_writes_the_line() {
    let server = RedisServer::start();
    let mut ctx = AppContext::with_redis(server.config()).unwrap();
    // Every request writes the line of what happened since the previous one,
    // as a short interval does on a Lambda that is frozen between invocations.
    ctx.metrics = MetricsReporter::new(ctx.redis.clone(), Duration::ZERO);
    let redis = ctx.redis.clone();
    let routes = Router::new().route(
        "/value",
        route_get(move || {
            let redis = redis.clone();
            async move {
                let value: Option<String> = redis
                    .run(
                        |mut c| async move { redis::cmd("GET").arg("k").query_async(&mut c).await },
                    )
                    .await
                    .map_err(ApiError::from)?;
                Ok::<_, ApiError>(value.unwrap_or_default())
            }
        }),
    );
    let app = shared::http::finish(routes, &ctx);
    let (logs, _guard) = capture("metrics_test");

    assert_eq!(get(&app, names::HEALTH_PATH).await, 200);
    let found = metrics_lines(&logs);
    assert_eq!(found.len(), 1, "{}", logs.text());
    // The probe is one pipelined round trip.
    assert_eq!(found[0][names::OPERATIONS], 1);
    assert_eq!(found[0][names::HTTP_REQUESTS], 1);
    assert_eq!(found[0][names::HTTP_5XX], 0);
    assert_eq!(found[0][names::HTTP_PROBE_REQUESTS], 1);
    assert_eq!(found[0][names::HTTP_USER_REQUESTS], 0);
    assert!(
        found[0].get(names::REQUEST_ID).is_none(),
        "the line belongs to no request"
    );

    // Redis stops: the probe answers 503, a 5xx of the probes that the
    // request SLOs do not count; the request's own line carries the
    // status the 5xx log metric reads.
    let mut server = server;
    server.stop();
    assert_eq!(get(&app, names::HEALTH_PATH).await, 503);
    assert_eq!(get(&app, names::LIVENESS_PATH).await, 200);
    let found = metrics_lines(&logs);
    assert_eq!(found.len(), 3, "{}", logs.text());
    assert_eq!(found[1][names::HTTP_5XX], 1);
    assert_eq!(found[1][names::HTTP_REQUESTS], 1);
    assert_eq!(found[1][names::HTTP_PROBE_REQUESTS], 1);
    assert_eq!(found[1][names::HTTP_USER_REQUESTS], 0);
    assert_eq!(found[1][names::HTTP_USER_5XX], 0);
    assert_eq!(found[1][names::ERRORS], 1);
    assert_eq!(found[1][names::SEVERITY], "WARNING");
    assert_eq!(found[2][names::HTTP_REQUESTS], 1, "/healthz alone");
    assert_eq!(found[2][names::HTTP_PROBE_REQUESTS], 1);
    assert_eq!(found[2][names::OPERATIONS], 0);
    let failed: Vec<Value> = lines(&logs)
        .into_iter()
        .filter(|l| l[names::MESSAGE] == names::REQUEST_FAILED_MESSAGE)
        .collect();
    assert_eq!(failed.len(), 1, "{}", logs.text());
    assert_eq!(failed[0][names::HTTP_STATUS], 503);
    assert_eq!(failed[0][names::ROUTE], names::HEALTH_PATH);
    assert!(failed[0][names::ERROR_KIND].is_string());
    assert!(failed[0][names::ERROR_CODE].is_string());

    // A user's route fails the same way: a user 5xx. An unknown path (404)
    // is a user's request too.
    assert_eq!(get(&app, "/value").await, 503);
    assert_eq!(get(&app, "/nope").await, 404);
    let found = metrics_lines(&logs);
    assert_eq!(found.len(), 5, "{}", logs.text());
    assert_eq!(found[3][names::HTTP_USER_REQUESTS], 1);
    assert_eq!(found[3][names::HTTP_USER_5XX], 1);
    assert_eq!(found[3][names::HTTP_PROBE_REQUESTS], 0);
    assert_eq!(found[4][names::HTTP_USER_REQUESTS], 1);
    assert_eq!(found[4][names::HTTP_USER_5XX], 0);
    for line in &found {
        assert_eq!(line[names::HTTP_USER_SLOW_REQUESTS], 0, "{line}");
        assert_valid_emf(line);
    }
}

#[tokio::test]
async fn a_slow_user_request_is_counted_as_slow_and_a_slow_probe_is_not() {
    let server = RedisServer::start();
    let mut ctx = AppContext::with_redis(server.config()).unwrap();
    let hour = Duration::from_secs(3_600);
    ctx.metrics = MetricsReporter::with_policy(ctx.redis.clone(), IntervalPolicy::new(hour, hour));
    let threshold = Duration::from_millis(names::HTTP_SLOW_REQUEST_THRESHOLD_MS);
    let routes = Router::new()
        .route(
            "/slow",
            route_get(move || async move {
                tokio::time::sleep(threshold + Duration::from_millis(20)).await;
                "late"
            }),
        )
        .route("/fast", route_get(|| async { "soon" }));
    let app = shared::http::finish(routes, &ctx);
    let (logs, _guard) = capture("metrics_test");
    assert_eq!(get(&app, "/slow").await, 200);
    assert_eq!(get(&app, "/fast").await, 200);
    assert_eq!(get(&app, names::LIVENESS_PATH).await, 200);
    assert!(ctx.metrics.flush());
    let line = &metrics_lines(&logs)[0];
    assert_eq!(line[names::HTTP_USER_REQUESTS], 2, "{line}");
    assert_eq!(line[names::HTTP_USER_SLOW_REQUESTS], 1, "{line}");
    assert_eq!(line[names::HTTP_PROBE_REQUESTS], 1, "{line}");
}

#[tokio::test]
async fn with_lambdas_application_log_level_at_warn_the_line_is_written_at_warn() {
    let server = RedisServer::start();
    let client = server.client();
    let hour = Duration::from_secs(3_600);
    let reporter = MetricsReporter::with_policy(client.clone(), IntervalPolicy::new(hour, hour));
    reporter.set_level_floor(LambdaLogLevel::Warn);
    let (logs, _guard) = capture("metrics_test");
    let _: String = client
        .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
        .await
        .unwrap();
    assert!(reporter.flush());
    let line = &metrics_lines(&logs)[0];
    // No failure in the interval, yet Lambda (dropping lines below WARN)
    // keeps it; Cloud Logging's severity stays what happened.
    assert_eq!(line[names::ERRORS], 0);
    assert_eq!(line[names::LEVEL], "WARN", "{line}");
    assert_eq!(line[names::SEVERITY], "INFO", "{line}");
    reporter.set_level_floor(LambdaLogLevel::Fatal);
    let _: String = client
        .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
        .await
        .unwrap();
    assert!(reporter.flush());
    assert_eq!(metrics_lines(&logs)[1][names::LEVEL], "FATAL");
}

#[tokio::test]
async fn on_lambda_a_request_that_saw_an_error_writes_the_line_at_once() {
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let mut ctx = AppContext::with_redis(RedisConfig::for_url(&closed).unwrap()).unwrap();
    let hour = Duration::from_secs(3_600);
    ctx.metrics = MetricsReporter::with_policy(ctx.redis.clone(), IntervalPolicy::new(hour, hour));
    ctx.metrics.set_write_on_errors(true);
    let app = shared::http::finish(Router::new(), &ctx);
    let (logs, _guard) = capture("metrics_test");
    // A success inside a long interval writes nothing.
    assert_eq!(get(&app, names::LIVENESS_PATH).await, 200);
    assert!(metrics_lines(&logs).is_empty(), "{}", logs.text());
    // A 503: its line, with both requests, is written before it returns.
    assert_eq!(get(&app, names::HEALTH_PATH).await, 503);
    let found = metrics_lines(&logs);
    assert_eq!(found.len(), 1, "{}", logs.text());
    assert_eq!(found[0][names::HTTP_REQUESTS], 2);
    assert_eq!(found[0][names::HTTP_5XX], 1);
    assert_eq!(found[0][names::ERRORS_CONNECT], 1);
}

#[tokio::test]
async fn health_body_has_the_fields_and_values_the_probes_match() {
    let server = RedisServer::start();
    let ctx = AppContext::with_redis(server.config()).unwrap();
    let app = shared::http::finish(Router::new(), &ctx);
    let request = Request::get(names::HEALTH_PATH)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    // The uptime check and the Route 53 health check match this exact text.
    assert!(text.contains(names::HEALTHY_BODY_MATCH), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body[names::HEALTH_STATUS], names::HEALTHY);
    for key in body.as_object().unwrap().keys() {
        assert!(
            names::HEALTH_FIELDS.contains(&key.as_str()),
            "{key} is written but not in the contract"
        );
    }
}

#[test]
fn the_metrics_line_passes_the_filter_at_any_log_level() {
    let logs = CapturedLogs::default();
    let subscriber = telemetry::subscriber("metrics_test", LogFormat::Json, "error", logs.clone());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(target: "shared", "filtered out at level error");
        tracing::info!(target: names::METRICS_TARGET, "kept");
    });
    let text = logs.text();
    assert!(!text.contains("filtered out"), "{text}");
    assert!(text.contains("kept"), "{text}");
}
