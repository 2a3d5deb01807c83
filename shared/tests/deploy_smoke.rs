//! The deploy pipeline's smoke test of a Lambda version: the event it sends
//! (`scripts/lambda/redis-health-event.json`) must reach `/redis-health` of
//! the function as Lambda runs it, and the answer must be what
//! `scripts/smoke-test-lambda.sh` accepts.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use http_body_util::BodyExt;
use shared::AppContext;
use shared::contract as names;
use shared::testkit::{RedisServer, free_port};
use tower::ServiceExt;

const EVENT: &str = include_str!("../../scripts/lambda/redis-health-event.json");

async fn invoke(ctx: &AppContext) -> (u16, String) {
    let app = shared::http::finish(Router::new(), ctx);
    let request = lambda_http::request::from_str(EVENT).expect("a Function URL event");
    let response = shared::http::for_lambda(app)
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn smoke_event_reaches_redis_health_and_passes_when_redis_answers() {
    let server = RedisServer::start();
    let ctx = AppContext::with_redis(server.config()).unwrap();
    let (status, body) = invoke(&ctx).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(names::HEALTHY_BODY_MATCH), "{body}");
}

#[tokio::test]
async fn smoke_event_fails_when_the_new_version_cannot_reach_redis() {
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let ctx = AppContext::with_redis(shared::RedisConfig::for_url(&closed).unwrap()).unwrap();
    let (status, body) = invoke(&ctx).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains(names::HEALTHY_BODY_MATCH), "{body}");
}
