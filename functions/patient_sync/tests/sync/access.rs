//! Access: every practice route behind authentication and bound to its
//! practice (`AUTH_MODE=jwt` against a token issuer on loopback, and
//! `AUTH_MODE=platform` through the real binary in Lambda mode), idempotency
//! keys per caller, the rate limit spent only by the practice's callers, and
//! errors that quote nothing of the body.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Value, json};
use shared::testkit::access::{RouteCall, assert_tenant_routes_guarded};
use shared::testkit::{
    FunctionProcess, LambdaRuntimeApi, RedisMonitor, RedisServer, TestIdp, lambda_env,
    lambda_events,
};

use crate::{patient, post, send, spawn_app};

/// `vars` plus the issuer's `AUTH_MODE=jwt` settings.
fn jwt_env<'a>(
    idp: &'a [(&'static str, String)],
    vars: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = idp.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(vars);
    env
}

#[tokio::test]
async fn every_route_refuses_bad_credentials_and_other_practices_and_redis_sees_nothing() {
    let idp = TestIdp::start().await;
    let env = idp.env();
    let t = spawn_app(&jwt_env(&env, &[]));
    let monitor = RedisMonitor::start(&t.redis);
    let base = "/practices/clinic-1";
    assert_tenant_routes_guarded(
        &t.app,
        &monitor,
        &idp,
        "clinic-1",
        "clinic-2",
        &[
            RouteCall::post(
                format!("{base}/patients/sync"),
                json!({"patients": [patient("p1", "Ada Example")]}),
            ),
            RouteCall::post(
                format!("{base}/patients/sync?mode=full"),
                json!({"patients": [patient("p1", "Ada Example")]}),
            ),
            RouteCall::get(format!("{base}/sync/status")),
            RouteCall::get(format!("{base}/patients/count")),
            RouteCall::post_empty(format!("{base}/changes/claim?max=1000")),
            RouteCall::post(
                format!("{base}/changes/ack"),
                json!({"ids": ["no-such-claim"]}),
            ),
        ],
    )
    .await;
    // Only clinic-1 has keys; the refused requests to it wrote none (one
    // patient, one change, claimed once by the valid claim).
    assert!(
        t.redis
            .all_keys()
            .iter()
            .all(|k| k.starts_with("ws:{clinic-1}:"))
    );
    let other = idp.bearer(&["clinic-1"]);
    let status = send(
        &t.app,
        RouteCall::get(format!("{base}/sync/status")).request(Some(&other)),
    )
    .await;
    assert_eq!(status.body["patients_tracked"], 1, "{}", status.text);
}

#[tokio::test]
async fn idempotency_keys_belong_to_the_caller_that_used_them() {
    let idp = TestIdp::start().await;
    let env = idp.env();
    let t = spawn_app(&jwt_env(&env, &[]));
    let token = |sub: &str| format!("Bearer {}", idp.rsa().sign(&idp.claims(sub, &["c"])));
    let (ada, bob) = (token("ada@example.com"), token("bob@example.com"));
    let uri = "/practices/c/patients/sync";
    let body = json!({"patients": [patient("p1", "Jo")]});
    let call = |auth: &str, body: &Value| {
        post(
            uri,
            body,
            &[("Idempotency-Key", "batch-1"), ("authorization", auth)],
        )
    };
    let first = send(&t.app, call(&ada, &body)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["changed"], 1);
    let replay = send(&t.app, call(&ada, &body)).await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    // Bob's key of the same name is his own: processed, not Ada's answer.
    let bobs = send(&t.app, call(&bob, &body)).await;
    assert_eq!(bobs.status, 200, "{}", bobs.text);
    assert!(bobs.headers.get("idempotent-replayed").is_none());
    assert_eq!(bobs.body["unchanged"], 1);
    // And another body under it is no conflict with Ada's.
    let other = json!({"patients": [patient("p2", "Al")]});
    assert_eq!(send(&t.app, call(&bob, &other)).await.status, 422);
    assert_eq!(send(&t.app, call(&ada, &other)).await.status, 422);
    // No principal in any key name.
    for key in t.redis.all_keys() {
        assert!(!key.contains("ada") && !key.contains("bob"), "{key}");
    }
}

#[tokio::test]
async fn a_practice_rate_limit_is_spent_only_by_its_own_callers() {
    let idp = TestIdp::start().await;
    let env = idp.env();
    let t = spawn_app(&jwt_env(&env, &[("RATE_LIMIT_PER_MINUTE", "2")]));
    let uri = "/practices/clinic-1/patients/sync";
    let body = json!({"patients": [patient("p1", "Jo")]});
    let outsider = idp.bearer(&["clinic-2"]);
    for _ in 0..20 {
        let reply = send(&t.app, post(uri, &body, &[("authorization", &outsider)])).await;
        reply.assert_error(403, "forbidden");
    }
    let anonymous = send(&t.app, post(uri, &body, &[])).await;
    anonymous.assert_error(401, "unauthorized");
    let own = idp.bearer(&["clinic-1"]);
    let statuses: Vec<u16> = futures::future::join_all(
        (0..3).map(|_| send(&t.app, post(uri, &body, &[("authorization", &own)]))),
    )
    .await
    .iter()
    .map(|r| r.status.as_u16())
    .collect();
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [200, 200, 429], "{statuses:?}");
}

/// A JSON object key no schema has: `k` and 12 random letters.
fn marker() -> impl Strategy<Value = String> {
    "[a-z]{12}".prop_map(|s| format!("k{s}"))
}

#[test]
fn error_bodies_never_contain_a_submitted_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "100000")]);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 300,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let cases = (marker(), shared::testkit::hostile::json(), 0usize..7);
    let result = runner.run(&cases, |(key, value, shape)| {
        let (uri, body) = match shape {
            0 => ("sync", json!({ key.clone(): value })),
            1 => ("sync", json!({"patients": [], key.clone(): value})),
            2 => ("sync", json!({"patients": { key.clone(): value }})),
            3 => ("sync", json!({"patients": [{ key.clone(): value }]})),
            4 => (
                "sync",
                json!({"patients": [{"id": { key.clone(): value }}]}),
            ),
            5 => ("ack", json!({"ids": [], key.clone(): value})),
            _ => ("ack", json!({"ids": { key.clone(): value }})),
        };
        let uri = match uri {
            "sync" => "/practices/c/patients/sync",
            _ => "/practices/c/changes/ack",
        };
        let reply = rt.block_on(send(&t.app, post(uri, &body, &[])));
        prop_assert!(reply.status.is_client_error(), "{}", reply.text);
        prop_assert!(!reply.text.contains(&key), "quotes {key}: {}", reply.text);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The real binary on Lambda (Runtime API emulator), `AUTH_MODE` unset:
/// the platform default reads the identity API Gateway's JWT authorizer
/// put in the event, and an event without one is refused.
#[tokio::test]
async fn on_lambda_the_default_mode_binds_the_authorizer_identity_to_its_practice() {
    let redis = RedisServer::start();
    let api = LambdaRuntimeApi::start().await;
    let mut env = lambda_env(&api);
    env.push(("REDIS_URL", redis.url()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let f = FunctionProcess::spawn(env!("CARGO_BIN_EXE_patient_sync"), &env);
    let body = json!({"patients": [patient("p1", "Ada Example")]}).to_string();
    let sync = |practice: &str| {
        lambda_events::apigw_v2(
            "POST",
            &format!("/practices/{practice}/patients/sync"),
            "",
            Some(&body),
        )
    };
    let claims = json!({"sub": "connector-7", "tenants": ["clinic-1"]});
    let monitor = RedisMonitor::start(&redis);
    for (what, event, status) in [
        ("no authorizer", sync("clinic-1"), 401),
        (
            "another practice",
            lambda_events::with_jwt_authorizer(sync("clinic-2"), &claims),
            403,
        ),
    ] {
        let reply = api.invoke(event).await;
        assert_eq!(
            reply.body["statusCode"],
            status,
            "{what}: {}\n{}",
            reply.body,
            f.output()
        );
    }
    monitor.assert_nothing("refused invocations");
    let reply = api
        .invoke(lambda_events::with_jwt_authorizer(
            sync("clinic-1"),
            &claims,
        ))
        .await;
    assert_eq!(
        reply.body["statusCode"],
        200,
        "{}\n{}",
        reply.body,
        f.output()
    );
    let headers = &reply.body["headers"];
    assert_eq!(headers["cache-control"], "no-store", "{}", reply.body);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    tokio::time::sleep(Duration::from_millis(10)).await;
}
