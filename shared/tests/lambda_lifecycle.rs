//! The Lambda execution environment's lifecycle, with a real function
//! binary (`testkit_function`: `shared::start` and `shared::serve` around a
//! route that reads Redis and one that echoes the request) polling the test
//! kit's Runtime API emulator, against a real `redis-server`:
//!
//! - init registers an internal extension, so the shutdown phase sends
//!   SIGTERM and the last metrics line (the counts of the last
//!   invocations, the cold start) is written before the process ends; and
//!   where no Extensions API answers, the function still serves;
//! - an invocation with 300 ms left and Redis paused answers 503 JSON with
//!   `Retry-After` before its deadline, and its metrics line is written by
//!   that invocation;
//! - a frozen process (SIGSTOP) whose Redis connection was dropped answers
//!   200 on the first invocation after the thaw (SIGCONT);
//! - every event shape (REST API with a stage, HTTP API `$default` and a
//!   named stage, Function URL, ALB with single- and multi-value headers;
//!   base64, plain and empty bodies; `HEAD`) reaches the same route with
//!   the same path, query and body; a raw `"` in a query string is not an
//!   invocation error.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use shared::contract as names;
use shared::http::lambda::EXTENSION_NAME;
use shared::testkit::{
    FunctionProcess, LambdaRuntimeApi, RedisServer, SHUTDOWN_GRACE, ShutdownOutcome, lambda_env,
    lambda_events as events,
};

const BIN: &str = env!("CARGO_BIN_EXE_testkit_function");

/// The function in Lambda mode against `api` and `redis`, with `extra`
/// settings.
fn spawn(api: &LambdaRuntimeApi, redis: &RedisServer, extra: &[(&str, &str)]) -> FunctionProcess {
    let mut env = lambda_env(api);
    env.push(("REDIS_URL", redis.url()));
    env.push(("DEPLOY_ENVIRONMENT", "lifecycle-test".into()));
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    FunctionProcess::spawn(BIN, &env)
}

/// The metrics lines the process wrote so far.
fn metrics_lines(f: &FunctionProcess) -> Vec<Value> {
    f.output()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l[names::EVENT] == names::METRICS_EVENT)
        .collect()
}

#[tokio::test]
async fn init_registers_an_extension_and_sigterm_writes_the_last_metrics_line() {
    let redis = RedisServer::start();
    let api = LambdaRuntimeApi::start().await;
    let mut f = spawn(&api, &redis, &[]);
    for _ in 0..3 {
        let reply = api
            .invoke(events::apigw_v2("GET", "/value", "", None))
            .await;
        assert_eq!(reply.status(), 200, "{:?}\n{}", reply.body, f.output());
    }
    let reply = api
        .invoke(events::apigw_v2("GET", names::HEALTH_PATH, "", None))
        .await;
    assert_eq!(reply.status(), 200, "{:?}", reply.body);

    // Registered during init, for no events, and waiting in /next.
    let extensions = api.extensions();
    assert_eq!(extensions.len(), 1, "{extensions:?}");
    assert_eq!(extensions[0].name, EXTENSION_NAME);
    assert!(extensions[0].events.is_empty(), "{extensions:?}");
    assert!(extensions[0].ready, "{extensions:?}");
    // The 10 s Lambda interval is not over: nothing written yet.
    assert!(metrics_lines(&f).is_empty(), "{}", f.output());

    let outcome = api.shutdown(&mut f, SHUTDOWN_GRACE);
    assert_eq!(
        outcome,
        ShutdownOutcome::ExitedAfterSigterm(Some(0)),
        "{}",
        f.output()
    );
    let lines = metrics_lines(&f);
    assert_eq!(lines.len(), 1, "{}", f.output());
    let line = &lines[0];
    assert_eq!(line[names::HTTP_REQUESTS], 4, "{line}");
    assert_eq!(line[names::HTTP_USER_REQUESTS], 3, "{line}");
    assert_eq!(line[names::HTTP_PROBE_REQUESTS], 1, "{line}");
    // Three GETs and the probe's pipelined round trip.
    assert_eq!(line[names::OPERATIONS], 4, "{line}");
    assert_eq!(line[names::COLD_STARTS], 1, "{line}");
    assert!(line[names::INIT_DURATION_MS].is_u64(), "{line}");
    assert_eq!(line[names::ENVIRONMENT], "lifecycle-test");
    assert_eq!(line[names::LEVEL], "INFO");
}

#[tokio::test]
async fn without_an_extensions_api_it_serves_and_is_killed_without_sigterm() {
    let redis = RedisServer::start();
    let api = LambdaRuntimeApi::start_without_extensions().await;
    let mut f = spawn(&api, &redis, &[]);
    let reply = api
        .invoke(events::apigw_v2("GET", "/value", "", None))
        .await;
    assert_eq!(reply.status(), 200, "{:?}\n{}", reply.body, f.output());
    assert!(api.extensions().is_empty());
    assert!(
        f.output().contains("no Lambda Extensions API here"),
        "{}",
        f.output()
    );
    // Without an extension Lambda sends no SIGTERM: this is what the
    // extension is for (the interval's counts die with the process).
    assert_eq!(
        api.shutdown(&mut f, SHUTDOWN_GRACE),
        ShutdownOutcome::KilledWithoutSigterm
    );
    assert!(metrics_lines(&f).is_empty(), "{}", f.output());
}

#[tokio::test]
async fn a_redis_stall_with_300_ms_left_answers_503_with_retry_after_before_the_deadline() {
    let mut redis = RedisServer::start();
    let api = LambdaRuntimeApi::start().await;
    // A request timeout far longer than the time the invocation has.
    let f = spawn(&api, &redis, &[("REQUEST_TIMEOUT_MS", "10000")]);
    let warm = api
        .invoke(events::apigw_v2("GET", "/value", "", None))
        .await;
    assert_eq!(warm.status(), 200, "{:?}\n{}", warm.body, f.output());

    redis.pause();
    let time_left = Duration::from_millis(300);
    let reply = api
        .invoke_with_time_left(events::apigw_v2("GET", "/value", "", None), time_left)
        .await;
    redis.resume();
    assert!(!reply.is_error, "{:?}", reply.body);
    assert!(
        reply.took < time_left,
        "answered after {:?}, past the invocation's deadline",
        reply.took
    );
    assert_eq!(reply.status(), 503, "{:?}", reply.body);
    assert!(reply.header("retry-after").is_some(), "{:?}", reply.body);
    let body = reply.json();
    assert!(body["error"]["code"].is_string(), "{body}");
    // The invocation that failed wrote its metrics line itself (an
    // environment frozen and reclaimed now would lose nothing).
    let lines = metrics_lines(&f);
    let last = lines.last().expect("a metrics line after the failure");
    assert_eq!(last[names::HTTP_USER_5XX], 1, "{last}");
    assert_eq!(last[names::LEVEL], "WARN", "{last}");
    assert_eq!(last[names::SEVERITY], "WARNING", "{last}");
}

#[tokio::test]
async fn thawed_after_its_redis_connection_was_dropped_the_next_invocation_answers_200() {
    let redis = RedisServer::start();
    let api = LambdaRuntimeApi::start().await;
    let f = spawn(&api, &redis, &[]);
    let reply = api
        .invoke(events::apigw_v2("GET", "/value", "", None))
        .await;
    assert_eq!(reply.status(), 200, "{:?}\n{}", reply.body, f.output());

    f.signal(Signal::SIGSTOP);
    assert!(redis.kill_clients() >= 1, "the function held a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
    f.signal(Signal::SIGCONT);

    let reply = api
        .invoke(events::apigw_v2("GET", "/value", "", None))
        .await;
    assert_eq!(reply.status(), 200, "{:?}\n{}", reply.body, f.output());
}

#[tokio::test]
async fn every_event_shape_reaches_the_same_route_with_the_same_request() {
    let redis = RedisServer::start();
    let api = LambdaRuntimeApi::start().await;
    let f = spawn(&api, &redis, &[]);
    let body = r#"{"patients":[1,2]}"#;
    let pairs = [("name", "Zoë & co"), ("page", "2")];
    let raw_query = "name=Zo%C3%AB%20%26%20co&page=2";
    let shapes = [
        (
            "REST API, stage prod",
            events::apigw_v1_query("POST", "/echo/a/b", &pairs, Some(body)),
        ),
        (
            "HTTP API, $default",
            events::apigw_v2("POST", "/echo/a/b", raw_query, Some(body)),
        ),
        (
            "HTTP API, stage prod",
            events::apigw_v2_named_stage("prod", "POST", "/echo/a/b", raw_query, Some(body)),
        ),
        (
            "Function URL",
            events::function_url("POST", "/echo/a/b", raw_query, Some(body)),
        ),
        (
            "ALB",
            events::alb(
                "POST",
                "/echo/a/b",
                &[("name", "Zo%C3%AB%20%26%20co"), ("page", "2")],
                Some(body),
            ),
        ),
        (
            "ALB, multi-value headers",
            events::alb_multi_value(
                "POST",
                "/echo/a/b",
                &[("name", "Zo%C3%AB%20%26%20co"), ("page", "2")],
                Some(body),
            ),
        ),
        (
            "HTTP API, base64 body",
            events::with_base64_body(
                events::apigw_v2("POST", "/echo/a/b", raw_query, None),
                body.as_bytes(),
            ),
        ),
        (
            "ALB, base64 body",
            events::with_base64_body(
                events::alb(
                    "POST",
                    "/echo/a/b",
                    &[("name", "Zo%C3%AB%20%26%20co"), ("page", "2")],
                    None,
                ),
                body.as_bytes(),
            ),
        ),
    ];
    for (name, event) in shapes {
        let reply = api.invoke(event).await;
        assert!(!reply.is_error, "{name}: {:?}\n{}", reply.body, f.output());
        assert_eq!(reply.status(), 200, "{name}: {:?}", reply.body);
        let echo = reply.json();
        assert_eq!(echo["method"], "POST", "{name}: {echo}");
        assert_eq!(echo["path"], "/echo/a/b", "{name}: {echo}");
        // REST API and ALB events carry the query as a map: its order is lost.
        let mut pairs: Vec<Value> = echo["pairs"].as_array().cloned().unwrap_or_default();
        pairs.sort_by_key(|p| p[0].as_str().map(str::to_owned));
        assert_eq!(
            Value::Array(pairs),
            serde_json::json!([["name", "Zoë & co"], ["page", "2"]]),
            "{name}: {echo}"
        );
        assert_eq!(echo["body"], body, "{name}: {echo}");
    }

    // Empty bodies, HEAD, the probes on a named stage (issue 14, case 3).
    for (name, event, status) in [
        (
            "empty body",
            events::apigw_v2("POST", "/echo", "", None),
            200,
        ),
        (
            "HEAD",
            events::apigw_v2("HEAD", names::LIVENESS_PATH, "", None),
            200,
        ),
        (
            "HEAD on ALB",
            events::alb("HEAD", names::LIVENESS_PATH, &[], None),
            200,
        ),
        (
            "named stage, /healthz",
            events::apigw_v2_named_stage("prod", "GET", names::LIVENESS_PATH, "", None),
            200,
        ),
        (
            "named stage, /redis-health",
            events::apigw_v2_named_stage("prod", "GET", names::HEALTH_PATH, "", None),
            200,
        ),
        (
            "REST API, /redis-health",
            events::apigw_v1("GET", names::HEALTH_PATH, None),
            200,
        ),
        (
            "named stage, unknown route",
            events::apigw_v2_named_stage("prod", "GET", "/nope", "", None),
            404,
        ),
    ] {
        let reply = api.invoke(event).await;
        assert!(!reply.is_error, "{name}: {:?}", reply.body);
        assert_eq!(reply.status(), status, "{name}: {:?}", reply.body);
        if name.starts_with("empty") {
            assert_eq!(reply.json()["body_len"], 0, "{name}: {:?}", reply.body);
        }
        if name.starts_with("HEAD") {
            let text = reply.body["body"].as_str().unwrap_or_default();
            assert!(text.is_empty(), "{name}: a HEAD answer has no body: {text}");
        }
    }
}

#[tokio::test]
async fn characters_invalid_in_a_uri_are_encoded_not_an_invocation_error() {
    let redis = RedisServer::start();
    let api = LambdaRuntimeApi::start().await;
    let f = spawn(&api, &redis, &[]);
    // Issue 14, case 4: API Gateway passes these through raw.
    for raw in [r#"query="paris""#, "q=<b>", "a=1|2&b={x}"] {
        let reply = api
            .invoke(events::apigw_v2("GET", "/echo", raw, None))
            .await;
        assert!(!reply.is_error, "{raw}: {:?}\n{}", reply.body, f.output());
        assert_eq!(reply.status(), 200, "{raw}: {:?}", reply.body);
        let echo = reply.json();
        let decoded: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(echo["pairs"], serde_json::json!(decoded), "{raw}: {echo}");
    }
    // A body marked base64 that is not: 400 JSON, in the event's shape.
    let mut bad = events::alb("POST", "/echo", &[], Some("not base64!"));
    bad["isBase64Encoded"] = true.into();
    let reply = api.invoke(bad).await;
    assert!(!reply.is_error, "{:?}", reply.body);
    assert_eq!(reply.status(), 400, "{:?}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "invalid_body");
    assert!(reply.body["statusDescription"].is_string(), "ALB's shape");
}
