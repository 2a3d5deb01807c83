//! `sessions` access and data exposure: every route behind authentication
//! and bound to its app, key names free of conversation words, errors that
//! quote nothing, and the start-up checks of the binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::Router;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::json;
use shared::AppContext;
use shared::config::{Config, Env};
use shared::testkit::access::{RouteCall, assert_tenant_routes_guarded, send};
use shared::testkit::{FunctionProcess, RedisMonitor, RedisServer, TestIdp, conformance};

const BIN: &str = env!("CARGO_BIN_EXE_sessions");

/// The router on `redis` with `vars` as the environment.
async fn app(redis: &RedisServer, vars: &[(&str, String)]) -> Router {
    let mut vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    vars.push(("REDIS_URL".into(), redis.url()));
    let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let ctx = AppContext::new(Config::from_lookup(&lookup).unwrap()).unwrap();
    let stores = sessions::Stores::connect(&ctx, &Env::from_fn(&lookup))
        .await
        .unwrap();
    sessions::app(ctx, stores)
}

#[tokio::test]
async fn every_route_refuses_bad_credentials_and_other_apps_and_redis_sees_nothing() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    let app = app(&redis, &idp.env()).await;
    let monitor = RedisMonitor::start(&redis);
    let base = "/apps/agent/users/alice";
    let event = json!({"event": {"author": "user", "content": {"parts": [{"text": "my card is 4111"}]},
                                 "actions": {"state_delta": {"app:plan": "pro"}}}});
    assert_tenant_routes_guarded(
        &app,
        &monitor,
        &idp,
        "agent",
        "other-agent",
        &[
            RouteCall::post(format!("{base}/sessions"), json!({"session_id": "s1"})),
            RouteCall::get(format!("{base}/sessions")),
            RouteCall::get(format!("{base}/sessions/s1?num_recent_events=5")),
            RouteCall::post(format!("{base}/sessions/s1/events"), event),
            RouteCall::post(format!("{base}/memory"), json!({"session_id": "s1"})),
            RouteCall::get(format!("{base}/memory?query=card")),
            RouteCall::delete(format!("{base}/sessions/s1")),
        ],
    )
    .await;
    assert!(
        redis
            .all_keys()
            .iter()
            .all(|k| k.starts_with("ws:{agent}:")),
        "{:?}",
        redis.all_keys()
    );
}

#[tokio::test]
async fn memory_index_keys_hold_no_conversation_words() {
    let redis = RedisServer::start();
    let secret = |s: &str| {
        vec![
            ("AUTH_MODE", "none".to_owned()),
            ("MEMORY_INDEX_KEY", s.to_owned()),
        ]
    };
    let remember = |app: Router, user: &'static str| async move {
        let base = format!("/apps/agent/users/{user}");
        let created = send(
            &app,
            RouteCall::post(format!("{base}/sessions"), json!({"session_id": "s"})).request(None),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let event = json!({"event": {"author": "user",
            "content": {"parts": [{"text": "Visa 4111111111111111 expires 0427, diagnosis hypertension"}]}}});
        let appended = send(
            &app,
            RouteCall::post(format!("{base}/sessions/s/events"), event).request(None),
        )
        .await;
        assert_eq!(appended.status, 200, "{}", appended.text);
        let added = send(
            &app,
            RouteCall::post(format!("{base}/memory"), json!({"session_id": "s"})).request(None),
        )
        .await;
        assert_eq!(added.json()["added"], 1);
        let found = send(
            &app,
            RouteCall::get(format!("{base}/memory?query=hypertension")).request(None),
        )
        .await;
        assert_eq!(
            found.json()["memories"].as_array().map(Vec::len),
            Some(1),
            "{}",
            found.text
        );
    };
    let first = app(&redis, &secret("first-deployment-index-key-0123456789")).await;
    remember(first, "u1").await;
    let second = app(&redis, &secret("second-deployment-index-key-987654321")).await;
    remember(second, "u2").await;
    let keys = redis.all_keys();
    for word in [
        "4111111111111111",
        "0427",
        "hypertension",
        "diagnosis",
        "visa",
        "expires",
    ] {
        assert!(keys.iter().all(|k| !k.contains(word)), "{word} in {keys:?}");
    }
    let words = |user: &str| -> Vec<String> {
        let prefix = format!("ws:{{agent}}:memory_word:{user}:");
        let mut w: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        w.sort();
        w
    };
    assert_eq!(words("u1").len(), 6, "{keys:?}");
    assert_ne!(
        words("u1"),
        words("u2"),
        "another secret names the same words differently"
    );
}

#[tokio::test]
async fn on_a_cloud_the_redis_memory_store_needs_its_index_key() {
    let redis = RedisServer::start();
    let env = [
        ("REDIS_URL", redis.url()),
        ("K_SERVICE", "sessions".into()),
        ("AUTH_MODE", "platform".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut f = FunctionProcess::spawn(BIN, &env);
    assert_eq!(
        f.wait_exit(Duration::from_secs(10)),
        Some(2),
        "{}",
        f.output()
    );
    assert!(f.output().contains("MEMORY_INDEX_KEY"), "{}", f.output());
    let mut with_key = env.clone();
    with_key.push((
        "MEMORY_INDEX_KEY",
        "a-deployment-secret-of-32-chars-or-more",
    ));
    let mut f = FunctionProcess::spawn(BIN, &with_key);
    f.wait_ready(Duration::from_secs(10)).await;
    assert!(
        !f.output().contains("a-deployment-secret"),
        "{}",
        f.output()
    );
}

#[tokio::test]
async fn anonymous_mode_is_refused_on_the_clouds_and_warned_about() {
    conformance::anonymous_mode_refused_on_the_clouds(BIN).await;
}

#[tokio::test]
async fn clients_sending_headers_slowly_are_cut_off() {
    conformance::slow_clients_cut_off(BIN).await;
}

/// A JSON object key no schema has: `k` and 12 random letters.
fn marker() -> impl Strategy<Value = String> {
    "[a-z]{12}".prop_map(|s| format!("k{s}"))
}

#[test]
fn error_bodies_never_contain_a_submitted_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redis = RedisServer::start();
    let app = rt.block_on(app(&redis, &[("AUTH_MODE", "none".to_owned())]));
    let base = "/apps/agent/users/alice";
    let created = rt.block_on(send(
        &app,
        RouteCall::post(format!("{base}/sessions"), json!({"session_id": "s"})).request(None),
    ));
    assert_eq!(created.status, 201);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 300,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let cases = (marker(), shared::testkit::hostile::json(), 0usize..6);
    let rejected = std::cell::Cell::new(0u32);
    let result = runner.run(&cases, |(key, value, shape)| {
        let (path, body) = match shape {
            0 => ("sessions", json!({ key.clone(): value })),
            1 => ("sessions", json!({"session_id": "x", "state": [key.clone()], key.clone(): value})),
            2 => ("sessions/s/events", json!({"event": { key.clone(): value }})),
            3 => ("sessions/s/events", json!({"event": {"author": "user", key.clone(): value}, "expected_seq": key.clone()})),
            4 => ("sessions/s/events", json!({"event": {"author": { key.clone(): value }}})),
            _ => ("memory", json!({"session_id": { key.clone(): value }})),
        };
        let answer = rt.block_on(send(&app, RouteCall::post(format!("{base}/{path}"), body).request(None)));
        prop_assert!(answer.status.as_u16() < 500, "{}", answer.text);
        if answer.status.is_client_error() {
            rejected.set(rejected.get() + 1);
            prop_assert!(!answer.text.contains(&key), "quotes {key}: {}", answer.text);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        rejected.get() >= 150,
        "only {} errors to look at",
        rejected.get()
    );
}
