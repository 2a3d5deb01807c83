//! `AUTH_MODE=jwt` against a token issuer on loopback.

use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use serde_json::json;
use shared::testkit::access::{RouteCall, assert_tenant_routes_guarded, send};
use shared::testkit::{RedisMonitor, RedisServer, TestIdp, TestKey, now_secs};

use crate::{app, ctx, vars};

const HITS: &str = "/tenants/clinic-1/hits";

#[tokio::test]
async fn every_bad_credential_is_401_another_tenant_403_and_redis_sees_none_of_them() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    let app = app(&ctx(&redis, &idp.env()));
    let monitor = RedisMonitor::start(&redis);
    assert_tenant_routes_guarded(
        &app,
        &monitor,
        &idp,
        "clinic-1",
        "clinic-2",
        &[RouteCall::post_empty(HITS), RouteCall::get(HITS)],
    )
    .await;
    // Nothing of clinic-2 exists, and clinic-1 was written by valid calls only.
    assert_eq!(redis.all_keys(), ["ws:{clinic-1}:hits"]);
    let hits: i64 = redis::cmd("GET")
        .arg("ws:{clinic-1}:hits")
        .query(&mut redis.admin())
        .unwrap();
    assert_eq!(hits, 1, "only the one valid POST wrote");
}

#[tokio::test]
async fn rsa_and_ec_tokens_verify_and_the_leeway_is_30_seconds() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    let app = app(&ctx(&redis, &idp.env()));
    let now = now_secs();
    let claims = |exp: u64, nbf: u64| {
        let mut c = idp.claims("user-1", &["clinic-1"]);
        c["exp"] = json!(exp);
        c["nbf"] = json!(nbf);
        c
    };
    for (what, token, expect) in [
        (
            "RS256",
            idp.rsa().sign(&claims(now + 60, now)),
            StatusCode::OK,
        ),
        (
            "ES256",
            idp.ec().sign(&claims(now + 60, now)),
            StatusCode::OK,
        ),
        (
            "expired 10 s ago",
            idp.rsa().sign(&claims(now - 10, now - 100)),
            StatusCode::OK,
        ),
        (
            "nbf in 10 s",
            idp.ec().sign(&claims(now + 60, now + 10)),
            StatusCode::OK,
        ),
        (
            "expired 45 s ago",
            idp.rsa().sign(&claims(now - 45, now - 100)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "nbf in 45 s",
            idp.rsa().sign(&claims(now + 100, now + 45)),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let req = RouteCall::post_empty(HITS).request(Some(&format!("Bearer {token}")));
        let answer = send(&app, req).await;
        assert_eq!(answer.status, expect, "{what}: {}", answer.text);
    }
    let expired = idp.rsa().sign(&claims(now - 45, now - 100));
    let answer = send(
        &app,
        RouteCall::get(HITS).request(Some(&format!("Bearer {expired}"))),
    )
    .await;
    assert_eq!(
        answer.json()["error"]["message"],
        "the bearer token has expired"
    );
    assert_eq!(
        answer.headers[header::WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token""#
    );
    let answer = send(&app, RouteCall::get(HITS).request(None)).await;
    assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_the_retired_one_stops_working() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    let app = app(&ctx(&redis, &idp.env()));
    let post =
        |token: String| RouteCall::post_empty(HITS).request(Some(&format!("Bearer {token}")));
    let claims = idp.claims("user-1", &["clinic-1"]);

    assert_eq!(
        send(&app, post(idp.rsa().sign(&claims))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, post(idp.ec().sign(&claims))).await.status,
        StatusCode::OK
    );
    assert_eq!(idp.fetches(), 1, "the keys are cached");

    // The issuer rotates: a new RSA key replaces the old one.
    let next = tokio::task::spawn_blocking(|| TestKey::rsa("rsa-2"))
        .await
        .unwrap();
    idp.publish(&[&next, idp.ec()]);
    let answer = send(&app, post(next.sign(&claims))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(idp.fetches(), 2, "one fetch for the unknown kid");
    assert_eq!(
        send(&app, post(next.sign(&claims))).await.status,
        StatusCode::OK
    );
    assert_eq!(idp.fetches(), 2);

    // The retired key is no longer accepted, and looking for it again so
    // soon does not fetch: nor do a hundred made-up kids.
    let answer = send(&app, post(idp.rsa().sign(&claims))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    assert_eq!(
        answer.json()["error"]["message"],
        "the bearer token is signed with an unknown key"
    );
    let made_up = TestKey::ec("never-published");
    for i in 0..100 {
        let key = if i % 2 == 0 { &made_up } else { idp.rsa() };
        assert_eq!(
            send(&app, post(key.sign(&claims))).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        idp.fetches(),
        2,
        "unknown kids fetch at most once per interval"
    );
    assert_eq!(
        send(&app, post(next.sign(&claims))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    idp.set_stall(Some(Duration::from_millis(200)));
    let app = app(&ctx(&redis, &idp.env()));
    let token = idp.bearer(&["clinic-1"]);
    let calls = (0..20).map(|_| send(&app, RouteCall::get(HITS).request(Some(&token))));
    for answer in futures::future::join_all(calls).await {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn an_unreachable_jwks_is_503_at_once_and_a_recovered_one_serves_again() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    idp.set_failing(true);
    let app = app(&ctx(&redis, &idp.env()));
    let monitor = RedisMonitor::start(&redis);
    let token = idp.bearer(&["clinic-1"]);
    for _ in 0..5 {
        let answer = send(&app, RouteCall::post_empty(HITS).request(Some(&token))).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.text
        );
        assert_eq!(answer.json()["error"]["code"], "auth_unavailable");
        assert!(answer.headers.contains_key(header::RETRY_AFTER));
    }
    assert_eq!(
        idp.fetches(),
        1,
        "failed fetches back off instead of one per request"
    );
    monitor.assert_nothing("requests that could not be authenticated");
    idp.set_failing(false);
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    let answer = send(&app, RouteCall::post_empty(HITS).request(Some(&token))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn a_stalled_jwks_is_answered_within_the_fetch_timeout() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    idp.set_stall(Some(Duration::from_secs(30)));
    let mut env = idp.env();
    env.push(("AUTH_JWKS_TIMEOUT_MS", "300".into()));
    let app = app(&ctx(&redis, &env));
    let started = Instant::now();
    let answer = send(
        &app,
        RouteCall::get(HITS).request(Some(&idp.bearer(&["clinic-1"]))),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn tenants_come_from_the_configured_claim_and_star_needs_its_setting() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    let bearer = |claims: serde_json::Value| format!("Bearer {}", idp.rsa().sign(&claims));
    let with = |name: &str, value: serde_json::Value| {
        let mut c = idp.claims("user-1", &[]);
        c.as_object_mut().unwrap().remove("tenants");
        c[name] = value;
        c
    };
    let mut env = idp.env();
    env.extend(vars(&[("AUTH_TENANT_CLAIM", "custom:tenants")]));
    let app_custom = app(&ctx(&redis, &env));
    for (value, status) in [
        (json!("clinic-1 clinic-9"), StatusCode::OK),
        (json!("clinic-9,clinic-1"), StatusCode::OK),
        (json!(["clinic-1"]), StatusCode::OK),
        (json!("clinic-10"), StatusCode::FORBIDDEN),
        (json!("*"), StatusCode::FORBIDDEN),
    ] {
        let token = bearer(with("custom:tenants", value.clone()));
        let answer = send(&app_custom, RouteCall::get(HITS).request(Some(&token))).await;
        assert_eq!(answer.status, status, "{value}: {}", answer.text);
    }
    // The default claim is not read when another is configured.
    let answer = send(
        &app_custom,
        RouteCall::get(HITS).request(Some(&idp.bearer(&["clinic-1"]))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    let mut env = idp.env();
    env.extend(vars(&[("AUTH_ALLOW_ALL_TENANTS", "true")]));
    let app_all = app(&ctx(&redis, &env));
    let answer = send(
        &app_all,
        RouteCall::get(HITS).request(Some(&idp.bearer(&["*"]))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn a_token_without_tenants_gets_what_its_principal_is_granted() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    let mut env = idp.env();
    env.extend(vars(&[(
        "AUTH_PRINCIPAL_TENANTS",
        "112233445566778899=clinic-1; other=clinic-2",
    )]));
    let app = app(&ctx(&redis, &env));
    // A service account's Google ID token: no custom claims at all.
    let sa = |sub: &str| {
        let mut c = idp.claims(sub, &[]);
        c.as_object_mut().unwrap().remove("tenants");
        c["email"] = json!("sync@project.iam.gserviceaccount.com");
        format!("Bearer {}", idp.rsa().sign(&c))
    };
    let answer = send(
        &app,
        RouteCall::get(HITS).request(Some(&sa("112233445566778899"))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let answer = send(&app, RouteCall::get(HITS).request(Some(&sa("998877")))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = send(
        &app,
        RouteCall::get("/tenants/clinic-2/hits").request(Some(&sa("112233445566778899"))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_probe_routes_stay_open_and_say_only_what_a_probe_needs() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    let app = app(&ctx(&redis, &idp.env()));
    for path in ["/healthz", "/redis-health"] {
        let answer = send(&app, RouteCall::get(path).request(None)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
    }
    let body = send(&app, RouteCall::get("/redis-health").request(None))
        .await
        .json();
    let mut fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["latency_ms", "ping", "status"], "{body}");
}

#[test]
fn hostile_authorization_headers_are_401_never_5xx_and_reach_nothing() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as RunnerConfig, TestRunner};
    use shared::testkit::hostile;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let redis = RedisServer::start();
    let idp = rt.block_on(TestIdp::start());
    let app = app(&ctx(&redis, &idp.env()));
    let monitor = RedisMonitor::start(&redis);
    let valid = idp.token(&["clinic-1"]);
    let header = prop_oneof![
        hostile::text(),
        hostile::text().prop_map(|t| format!("Bearer {t}")),
        (hostile::text(), hostile::text(), hostile::text())
            .prop_map(|(a, b, c)| format!("Bearer {a}.{b}.{c}")),
        // A valid token with one part replaced by hostile text.
        (0usize..3, hostile::text()).prop_map(move |(i, t)| {
            let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
            parts[i] = t;
            format!("Bearer {}", parts.join("."))
        }),
    ];
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 500,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&header, |value| {
        let Ok(value) = axum::http::HeaderValue::from_str(&value) else {
            return Ok(());
        };
        let mut req = RouteCall::post_empty(HITS).request(None);
        req.headers_mut().insert(header::AUTHORIZATION, value);
        let answer = rt.block_on(send(&app, req));
        prop_assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    monitor.assert_nothing("hostile credentials");
}
