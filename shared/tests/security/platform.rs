//! `AUTH_MODE=platform` (the default): the identity the platform passes,
//! in the shapes Lambda's events and Cloud Run's headers carry it.

use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use shared::testkit::access::{RouteCall, send};
use shared::testkit::lambda_events::{
    apigw_v1, apigw_v2, function_url, with_cognito_claims, with_iam, with_jwt_authorizer,
    with_lambda_authorizer, with_rest_iam, with_rest_lambda_authorizer,
};
use shared::testkit::{RedisMonitor, RedisServer, TestIdp};
use tower::ServiceExt;

use crate::{app, ctx, vars};

const SYNC_ROLE: &str = "arn:aws:sts::123456789012:assumed-role/patient-sync-connector/session-1";

/// The status a Lambda event gets from the router as `lambda_http` hands
/// it over (request context included).
async fn invoke(app: &Router, event: Value) -> (u16, Value) {
    let request = lambda_http::request::from_str(&event.to_string()).expect("a valid event");
    let response = shared::http::for_lambda(app.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn lambda_identities_of_every_authorizer_are_bound_to_their_tenants() {
    let redis = RedisServer::start();
    let grants = format!("{}*=clinic-1", SYNC_ROLE.trim_end_matches("session-1"));
    let app = app(&ctx(&redis, &vars(&[("AUTH_PRINCIPAL_TENANTS", &grants)])));
    let monitor = RedisMonitor::start(&redis);
    let path = |t: &str| format!("/tenants/{t}/hits");
    let claims = json!({"sub": "user-7", "iss": "https://cognito-idp.eu-west-1.amazonaws.com/pool",
                        "tenants": ["clinic-1", "clinic-2"]});
    let v2 = |t: &str| apigw_v2("POST", &path(t), "", None);
    let url = |t: &str| function_url("POST", &path(t), "", None);
    let v1 = |t: &str| apigw_v1("POST", &path(t), None);
    let cases: Vec<(&str, Value, u16)> = vec![
        ("HTTP API without an authorizer", v2("clinic-1"), 401),
        ("Function URL without auth", url("clinic-1"), 401),
        ("REST API without an authorizer", v1("clinic-1"), 401),
        (
            "JWT authorizer, another tenant",
            with_jwt_authorizer(v2("clinic-3"), &claims),
            403,
        ),
        (
            "JWT authorizer, no tenants claim",
            with_jwt_authorizer(v2("clinic-1"), &json!({"sub": "u"})),
            403,
        ),
        (
            "Function URL IAM, an ungranted role",
            with_iam(url("clinic-1"), "arn:aws:iam::123456789012:user/mallory"),
            403,
        ),
        (
            "Function URL IAM, another tenant",
            with_iam(url("clinic-2"), SYNC_ROLE),
            403,
        ),
        (
            "Lambda authorizer, another tenant",
            with_lambda_authorizer(v2("clinic-2"), &json!({"sub": "u", "tenants": "clinic-1"})),
            403,
        ),
        (
            "Cognito authorizer, another tenant",
            with_cognito_claims(
                v1("clinic-3"),
                &json!({"sub": "u", "tenants": "clinic-1 clinic-2"}),
            ),
            403,
        ),
        (
            "REST Lambda authorizer without tenants",
            with_rest_lambda_authorizer(v1("clinic-1"), "u", &json!({})),
            403,
        ),
        (
            "REST IAM, an ungranted user",
            with_rest_iam(v1("clinic-1"), "arn:aws:iam::123456789012:user/mallory"),
            403,
        ),
    ];
    for (what, event, expect) in cases {
        let (status, body) = invoke(&app, event).await;
        assert_eq!(status, expect, "{what}: {body}");
    }
    monitor.assert_nothing("refused Lambda invocations");
    let allowed: Vec<(&str, Value)> = vec![
        (
            "JWT authorizer (array claim rendered [a b])",
            with_jwt_authorizer(v2("clinic-2"), &claims),
        ),
        (
            "Function URL IAM, a granted role's session",
            with_iam(url("clinic-1"), SYNC_ROLE),
        ),
        ("HTTP API IAM", with_iam(v2("clinic-1"), SYNC_ROLE)),
        (
            "Lambda authorizer context",
            with_lambda_authorizer(v2("clinic-1"), &json!({"sub": "u", "tenants": "clinic-1"})),
        ),
        (
            "Cognito authorizer",
            with_cognito_claims(
                v1("clinic-2"),
                &json!({"sub": "u", "tenants": "clinic-1 clinic-2"}),
            ),
        ),
        (
            "REST Lambda authorizer",
            with_rest_lambda_authorizer(v1("clinic-1"), "svc", &json!({"tenants": "clinic-1"})),
        ),
        ("REST IAM", with_rest_iam(v1("clinic-1"), SYNC_ROLE)),
    ];
    for (what, event) in allowed {
        let (status, body) = invoke(&app, event).await;
        assert_eq!(status, 200, "{what}: {body}");
    }
    assert!(!monitor.take().is_empty());
}

#[tokio::test]
async fn cloud_run_passes_the_checked_token_and_it_is_read_only_there() {
    let redis = RedisServer::start();
    let idp = TestIdp::start().await;
    let on_cloud_run = app(&ctx(&redis, &vars(&[("K_SERVICE", "patient-sync")])));
    let elsewhere = app(&ctx(&redis, &[]));
    let monitor = RedisMonitor::start(&redis);
    let token = idp.token(&["clinic-1"]);
    let with = |header: &str, value: &str| {
        let mut req = RouteCall::post_empty("/tenants/clinic-1/hits").request(None);
        req.headers_mut().insert(
            axum::http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        req
    };
    let bearer = format!("Bearer {token}");
    // Cloud Run may strip the signature of X-Serverless-Authorization.
    let unsigned = format!("Bearer {}.", token.rsplit_once('.').unwrap().0);
    let answer = send(&on_cloud_run, with("x-serverless-authorization", &unsigned)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let answer = send(&on_cloud_run, with("authorization", &bearer)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let _ = monitor.take();

    let other = format!("Bearer {}", idp.token(&["clinic-2"]));
    let answer = send(&on_cloud_run, with("authorization", &other)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    let answer = send(
        &on_cloud_run,
        RouteCall::post_empty("/tenants/clinic-1/hits").request(None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    // Off Cloud Run nobody checked the header: it proves nothing.
    for header in ["authorization", "x-serverless-authorization"] {
        let answer = send(&elsewhere, with(header, &bearer)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{header}: {}",
            answer.text
        );
    }
    monitor.assert_nothing("refused requests");
}

#[tokio::test]
async fn none_lets_anyone_in_and_is_only_for_local_runs() {
    let redis = RedisServer::start();
    let anonymous = app(&ctx(&redis, &vars(&[("AUTH_MODE", "none")])));
    let answer = send(
        &anonymous,
        RouteCall::post_empty("/tenants/clinic-1/hits").request(None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let err = shared::Config::from_lookup(|n| match n {
        "AUTH_MODE" => Some("none".into()),
        "AWS_LAMBDA_RUNTIME_API" => Some("127.0.0.1:9001".into()),
        _ => None,
    })
    .unwrap_err();
    assert_eq!(err.var, "AUTH_MODE");
}
