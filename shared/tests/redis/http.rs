//! The HTTP glue: common routes, the error shape, limits, deadlines, request
//! ids, admin auth and the plain server, through a real router.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::testkit::RedisServer;
use shared::{AppContext, Config, Secret};
use tower::ServiceExt;

/// A context for `server` with extra environment variables.
fn ctx(server: &RedisServer, vars: &[(&str, &str)]) -> AppContext {
    let mut env: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    env.push(("REDIS_URL".into(), server.url()));
    let config =
        Config::from_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .unwrap();
    AppContext::new(config).unwrap()
}

/// A router with a few test routes plus everything `finish` adds.
fn app(ctx: &AppContext) -> Router {
    let routes = Router::new()
        .route(
            "/echo",
            post(|shared::Json(v): shared::Json<Value>| async move { shared::Json(v) }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/wrongtype",
            get(
                |axum::extract::State(ctx): axum::extract::State<AppContext>| async move {
                    // A value of the wrong type under our key: a bug a retry cannot cure.
                    let failure = ctx
                        .redis
                        .run(|mut c| async move {
                            redis::cmd("SET")
                                .arg("ws:{t}:h")
                                .arg("x")
                                .exec_async(&mut c)
                                .await?;
                            redis::cmd("HGET")
                                .arg("ws:{t}:h")
                                .arg("f")
                                .query_async::<Option<String>>(&mut c)
                                .await
                        })
                        .await?;
                    Ok::<_, shared::ApiError>(failure.unwrap_or_default())
                },
            ),
        )
        .route(
            "/panic",
            get(|| async {
                let v: Vec<u8> = Vec::new();
                #[allow(clippy::indexing_slicing)]
                let x = v[usize::MAX / 2];
                x.to_string()
            }),
        );
    shared::http::finish(routes.with_state(ctx.clone()), ctx)
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn assert_error_shape(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn redis_health_answers_200_with_real_values_then_503_json_when_down() {
    let mut server = RedisServer::start();
    let ctx = ctx(&server, &[]);
    let app = app(&ctx);
    let (status, headers, body) = send(&app, get_req("/redis-health")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["ping"], "PONG");
    assert!(body["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(body["connected_clients"], 1);
    assert!(body["redis_version"].is_string());
    assert_eq!(body["circuit"]["state"], "closed");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    server.stop();
    let started = Instant::now();
    let (status, _, body) = send(&app, get_req("/redis-health")).await;
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["type"], "connect");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn healthz_never_touches_redis() {
    let server = RedisServer::start();
    let ctx = ctx(&server, &[]);
    let app = app(&ctx);
    for _ in 0..5 {
        let (status, _, body) = send(&app, get_req("/healthz")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
    }
    assert_eq!(ctx.redis.pool().open, 0);
    assert_eq!(ctx.redis.metrics().operations, 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let server = RedisServer::start();
    let app = app(&ctx(&server, &[]));
    let (status, _, body) = send(&app, get_req("/nope/../etc")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, "not_found");
    let (status, _, body) = send(&app, post_json("/redis-health", "{}")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_shape(&body, "method_not_allowed");
}

#[tokio::test]
async fn bodies_are_limited_typed_and_parsed_with_json_errors() {
    let server = RedisServer::start();
    let app = app(&ctx(&server, &[("MAX_BODY_BYTES", "2048")]));
    let (status, _, body) = send(&app, post_json("/echo", r#"{"a":1}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"a": 1}));

    let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(4_000));
    let (status, _, body) = send(&app, post_json("/echo", big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_shape(&body, "payload_too_large");

    let (status, _, body) = send(&app, post_json("/echo", r#"{"a": "#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&body, "invalid_json");

    let plain = Request::post("/echo").body(Body::from("{}")).unwrap();
    let (status, _, body) = send(&app, plain).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error_shape(&body, "unsupported_media_type");
}

#[tokio::test]
async fn a_panicking_handler_answers_500_json_and_the_app_keeps_serving() {
    let server = RedisServer::start();
    let app = app(&ctx(&server, &[]));
    let (status, _, body) = send(&app, get_req("/panic")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_error_shape(&body, "internal");
    let (status, _, _) = send(&app, get_req("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_request_past_its_deadline_answers_503_json() {
    let server = RedisServer::start();
    let app = app(&ctx(&server, &[("REQUEST_TIMEOUT_MS", "1200")]));
    let started = Instant::now();
    let (status, headers, body) = send(&app, get_req("/slow")).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error_shape(&body, "deadline_exceeded");
    assert_eq!(headers[header::RETRY_AFTER], "1");
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let server = RedisServer::start();
    let app = app(&ctx(&server, &[]));
    let req = Request::get("/healthz")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(&app, req).await;
    assert_eq!(headers["x-request-id"], "abc-123");
    let (_, a, _) = send(&app, get_req("/healthz")).await;
    let (_, b, _) = send(&app, get_req("/healthz")).await;
    assert_ne!(a["x-request-id"], b["x-request-id"]);
    // A header that is not a plausible id is replaced, not echoed.
    let req = Request::get("/healthz")
        .header("x-request-id", "<script>")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(&app, req).await;
    assert_ne!(headers["x-request-id"], "<script>");
}

#[tokio::test]
async fn admin_routes_are_404_without_a_token_and_401_without_the_right_one() {
    let admin = |token: Option<&str>| {
        shared::http::admin_only(
            Router::new().route("/admin/x", get(|| async { "secret stuff" })),
            token.map(Secret::new),
        )
    };
    let get_with = |auth: Option<&str>| {
        let mut req = Request::get("/admin/x");
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        req.body(Body::empty()).unwrap()
    };
    let closed = admin(None);
    let r = closed
        .clone()
        .oneshot(get_with(Some("Bearer anything-at-all-1234")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let open = admin(Some("the-admin-token-123456"));
    for auth in [
        None,
        Some("Bearer wrong-token-123456789"),
        Some("the-admin-token-123456"),
        Some("Bearer "),
    ] {
        let r = open.clone().oneshot(get_with(auth)).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
    let r = open
        .oneshot(get_with(Some("Bearer the-admin-token-123456")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_plain_server_serves_200_concurrent_requests_and_shuts_down_gracefully() {
    let server = RedisServer::start();
    let ctx = ctx(&server, &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(shared::http::serve_on(listener, app(&ctx), async {
        let _ = stop_rx.await;
    }));
    let http = reqwest::Client::new();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let http = http.clone();
            tokio::spawn(async move {
                let r = http
                    .get(format!("http://{addr}/redis-health"))
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ping"], "PONG");
    }
    // The 200 requests shared the client's single connection.
    assert_eq!(server.client_count(), 1);

    let slow = tokio::spawn({
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}/redis-health"))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop_tx.send(()).unwrap();
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "the request in flight was finished"
    );
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_failure_a_retry_cannot_cure_is_500_without_retry_after_or_detail() {
    let server = RedisServer::start();
    let app = app(&ctx(&server, &[]));
    let (status, headers, body) = send(
        &app,
        Request::get("/wrongtype").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], "internal");
    assert!(headers.get(header::RETRY_AFTER).is_none());
    assert!(body["error"].get("type").is_none(), "{body}");
    assert!(!body.to_string().contains("WRONGTYPE"), "{body}");
}
