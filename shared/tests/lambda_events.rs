//! Every event shape, fed generated paths, query strings, headers, methods
//! and bodies, through the handler `serve` gives the Lambda runtime
//! ([`shared::http::LambdaHandler`]) exactly as the runtime calls it: the
//! event JSON parsed into `lambda_http`'s request type, the handler called,
//! its answer serialized. The answer is always a well-formed HTTP answer in
//! the event's shape: never a panic (the runtime would report an invocation
//! error, a 502 at the API), never an error.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::AssertUnwindSafe;

use axum::Router;
use axum::body::Bytes;
use axum::http::Uri;
use axum::routing::any;
use futures::FutureExt;
use lambda_http::lambda_runtime::{Context, LambdaEvent};
use lambda_http::request::LambdaRequest;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use shared::http::LambdaHandler;
use shared::testkit::{free_port, lambda_events as events};
use shared::{AppContext, RedisConfig};
use tower::{Service, ServiceExt};

/// A function's router (the common routes and layers included) with an
/// echo route; Redis at a closed port, so `/redis-health` answers 503 fast.
fn app() -> Router {
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let ctx = AppContext::with_redis(RedisConfig::for_url(&closed).unwrap()).unwrap();
    let routes = Router::new().route(
        "/echo/{*rest}",
        any(|uri: Uri, body: Bytes| async move {
            axum::Json(serde_json::json!({ "path": uri.path(), "len": body.len() }))
        }),
    );
    shared::http::finish(routes, &ctx)
}

/// Runs `event` as the runtime does; the answer as the runtime posts it.
async fn handle(handler: &LambdaHandler, event: &Value) -> Result<Value, String> {
    let request: LambdaRequest = serde_json::from_value(event.clone())
        .map_err(|e| format!("the event does not parse: {e}"))?;
    let mut context = Context::default();
    context.request_id = "prop".into();
    context.deadline = u64::try_from(
        (std::time::SystemTime::now() + std::time::Duration::from_secs(30))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let mut handler = handler.clone();
    let call = async move {
        let ready = handler.ready().await.map_err(|e| match e {})?;
        ready.call(LambdaEvent::new(request, context)).await
    };
    let answer = AssertUnwindSafe(call)
        .catch_unwind()
        .await
        .map_err(|_| "the handler panicked: an invocation error".to_owned())?;
    let Ok(answer) = answer;
    serde_json::to_value(&answer).map_err(|e| format!("the answer does not serialize: {e}"))
}

/// Asserts `answer` is a well-formed HTTP answer (to a `HEAD` when
/// `head`: no body).
fn assert_well_formed(answer: &Value, event: &Value, head: bool) {
    let status = answer["statusCode"].as_u64().unwrap_or(0);
    assert!(
        (100..=599).contains(&status),
        "no HTTP status: {answer}\nfor {event}"
    );
    let content_type = answer["headers"]["content-type"]
        .as_str()
        .or(answer["multiValueHeaders"]["content-type"][0].as_str())
        .unwrap_or_default();
    let body = answer["body"].as_str().unwrap_or_default();
    if head {
        assert!(body.is_empty(), "a HEAD answer with a body: {answer}");
    } else if content_type.starts_with("application/json") && answer["isBase64Encoded"] != true {
        let json: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("a JSON answer that is not JSON ({e}): {answer}"));
        if status >= 400 {
            assert!(json["error"]["code"].is_string(), "{answer}");
        }
    }
}

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
    ])
}

/// Paths as clients send them: our routes, and anything printable (quotes,
/// `<>`, `%`, `?`, `#`, spaces, non-ASCII). (`/redis-health` is left out:
/// against a closed port it takes the client's connect backoff, and its
/// answers are proven in tests/metrics_line.rs.)
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/healthz".to_owned()),
        "/echo/[a-z0-9/]{0,12}",
        "/echo/\\PC{0,24}",
        "\\PC{0,32}",
    ]
}

fn query_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z]{1,5}=[a-z0-9]{0,5}(&[a-z]{1,5}=[a-z0-9]{0,5}){0,3}",
        "\\PC{0,40}",
    ]
}

fn query_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[a-z]{1,6}", "\\PC{0,12}"), 0..4)
}

/// Header names are HTTP tokens and values visible text, as API Gateway
/// and ALB deliver them (they refuse anything else before Lambda); `Host`
/// and `X-Forwarded-Proto` take any such value, since clients choose them.
fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("host".to_owned()),
        Just("x-forwarded-proto".to_owned()),
        Just("content-type".to_owned()),
        Just("x-request-id".to_owned()),
        "x-[a-z0-9-]{1,12}",
    ];
    let value = prop_oneof!["[ -~]{0,40}", "[a-zA-Z0-9.:-]{1,20}", "\\PC{0,10}"];
    prop::collection::vec((name, value), 0..5)
}

#[derive(Debug, Clone)]
enum BodyKind {
    None,
    Text(String),
    Binary(Vec<u8>),
    BadBase64(String),
}

fn body() -> impl Strategy<Value = BodyKind> {
    prop_oneof![
        Just(BodyKind::None),
        "\\PC{0,64}".prop_map(BodyKind::Text),
        prop::collection::vec(proptest::num::u8::ANY, 0..64).prop_map(BodyKind::Binary),
        "[!*]{1,8}".prop_map(BodyKind::BadBase64),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    RestApi,
    HttpApi,
    HttpApiNamedStage,
    FunctionUrl,
    Alb,
    AlbMultiValue,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop::sample::select(vec![
        Shape::RestApi,
        Shape::HttpApi,
        Shape::HttpApiNamedStage,
        Shape::FunctionUrl,
        Shape::Alb,
        Shape::AlbMultiValue,
    ])
}

#[allow(clippy::too_many_arguments)]
fn event(
    shape: Shape,
    method: &str,
    path: &str,
    query: &str,
    pairs: &[(String, String)],
    headers: &[(String, String)],
    body: &BodyKind,
) -> Value {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let text = match body {
        BodyKind::Text(t) | BodyKind::BadBase64(t) => Some(t.as_str()),
        _ => None,
    };
    let mut event = match shape {
        Shape::RestApi => events::apigw_v1_query(method, path, &pairs, text),
        Shape::HttpApi => events::apigw_v2(method, path, query, text),
        Shape::HttpApiNamedStage => events::apigw_v2_named_stage("prod", method, path, query, text),
        Shape::FunctionUrl => events::function_url(method, path, query, text),
        Shape::Alb => events::alb(method, path, &pairs, text),
        Shape::AlbMultiValue => events::alb_multi_value(method, path, &pairs, text),
    };
    match body {
        BodyKind::Binary(bytes) => event = events::with_base64_body(event, bytes),
        BodyKind::BadBase64(_) => event["isBase64Encoded"] = true.into(),
        _ => {}
    }
    for (name, value) in headers {
        event = events::with_header(event, name, value);
    }
    event
}

#[test]
fn every_event_shape_answers_generated_requests_with_a_well_formed_http_answer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let handler = runtime.block_on(async { LambdaHandler::new(app()) });
    let mut runner = TestRunner::new(Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        shape(),
        method(),
        path(),
        query_text(),
        query_pairs(),
        headers(),
        body(),
    );
    runner
        .run(
            &strategy,
            |(shape, method, path, query, pairs, headers, body)| {
                let event = event(shape, method, &path, &query, &pairs, &headers, &body);
                let answer = runtime
                    .block_on(handle(&handler, &event))
                    .map_err(|e| TestCaseError::fail(format!("{e}\nfor {event}")))?;
                assert_well_formed(&answer, &event, method == "HEAD");
                if matches!(body, BodyKind::BadBase64(_)) {
                    prop_assert_eq!(answer["statusCode"].as_u64(), Some(400), "{}", answer);
                }
                Ok(())
            },
        )
        .unwrap();
}

#[tokio::test]
async fn the_issues_cases_answer_as_the_server_would() {
    let handler = LambdaHandler::new(app());
    // Case 3: an HTTP API's named stage.
    let named = events::apigw_v2_named_stage("prod", "GET", "/healthz", "", None);
    assert_eq!(handle(&handler, &named).await.unwrap()["statusCode"], 200);
    // Case 4: raw quotes and angle brackets in the query string.
    for raw in [r#"query="paris""#, "q=<script>", "a=`b`"] {
        let event = events::apigw_v2("GET", "/healthz", raw, None);
        let answer = handle(&handler, &event).await.unwrap();
        assert_eq!(answer["statusCode"], 200, "{raw}: {answer}");
    }
    // A Host a client made up (ALB passes it on): dropped, not a panic.
    let event = events::with_header(events::alb("GET", "/echo/x", &[], None), "host", "a b/c");
    let answer = handle(&handler, &event).await.unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    // A URI longer than `http` accepts: 414 JSON.
    let long = format!("/echo/{}", "a".repeat(70_000));
    let answer = handle(&handler, &events::apigw_v2("GET", &long, "", None))
        .await
        .unwrap();
    assert_eq!(answer["statusCode"], 414, "{}", answer["body"]);
}
