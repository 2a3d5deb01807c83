//! What every answer carries, and what an error never quotes.

use axum::Router;
use axum::routing::post;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Value, json};
use shared::testkit::access::{RouteCall, assert_private_success, send};
use shared::testkit::{RedisServer, hostile};

use crate::{ctx, vars};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Body {
    patients: Vec<Patient>,
    #[serde(default)]
    meta: std::collections::HashMap<String, u32>,
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Patient {
    id: String,
    age: u32,
}

fn echo_app(redis: &RedisServer) -> Router {
    let ctx = ctx(redis, &vars(&[("AUTH_MODE", "none")]));
    let routes = Router::new().route(
        "/echo",
        post(|shared::Json(b): shared::Json<Body>| async move {
            shared::Json(json!({"patients": b.patients.len()}))
        }),
    );
    shared::http::finish(routes, &ctx)
}

#[tokio::test]
async fn every_answer_is_no_store_and_nosniff() {
    let redis = RedisServer::start();
    let app = echo_app(&redis);
    for call in [
        RouteCall::get("/healthz"),
        RouteCall::get("/redis-health"),
        RouteCall::post("/echo", json!({"patients": [{"id": "a", "age": 3}]})),
    ] {
        let answer = send(&app, call.request(None)).await;
        assert_private_success(&answer, &call.path);
    }
    for call in [RouteCall::get("/nope"), RouteCall::post("/echo", json!({}))] {
        let answer = send(&app, call.request(None)).await;
        assert!(answer.status.is_client_error());
        assert_eq!(answer.headers["cache-control"], "no-store");
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    }
}

/// A JSON object key no schema has: `k` and 12 random letters.
fn marker_key() -> impl Strategy<Value = String> {
    "[a-z]{12}".prop_map(|s| format!("k{s}"))
}

#[test]
fn error_bodies_never_contain_a_submitted_key_or_value() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redis = RedisServer::start();
    let app = echo_app(&redis);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 400,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let shapes = (marker_key(), hostile::json(), 0usize..6);
    let result = runner.run(&shapes, |(key, value, shape)| {
        // The key in every place a parser can complain about it.
        let body = match shape {
            0 => json!({ key.clone(): value }),
            1 => json!({"patients": [{ "id": "a", "age": 1, key.clone(): value }]}),
            2 => json!({"patients": [{ key.clone(): value }]}),
            3 => json!({"patients": [], "meta": { key.clone(): value }}),
            4 => json!({"patients": { key.clone(): value }}),
            _ => json!({"patients": [{"id": key.clone(), "age": key.clone()}]}),
        };
        let answer = rt.block_on(send(&app, RouteCall::post("/echo", body).request(None)));
        prop_assert!(answer.status.as_u16() < 500, "{}", answer.text);
        prop_assert!(
            !answer.text.contains(&key),
            "the error quotes the submitted key {key}: {}",
            answer.text
        );
        if let Value::String(s) = &value
            && s.len() >= 8
            && answer.status.is_client_error()
        {
            prop_assert!(!answer.text.contains(s.as_str()), "{}", answer.text);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
