//! `sessions` as a process and as a router: the checks every function
//! passes, each route's answers, bad input, outages, and the backend switch.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::config::{Config, Env};
use shared::testkit::{FunctionProcess, PostgresServer, RedisServer, conformance};
use shared::{AppContext, testkit::MariaDbServer};
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_sessions");

#[tokio::test]
async fn serves_redis_health_as_a_server() {
    conformance::server_mode(BIN).await;
}

#[tokio::test]
async fn answers_503_quickly_and_stays_up_when_redis_is_unreachable() {
    conformance::unreachable_redis(BIN).await;
}

#[tokio::test]
async fn a_wrong_redis_password_is_503_auth_and_never_shown_or_logged() {
    conformance::wrong_password(BIN).await;
}

#[tokio::test]
async fn serves_lambda_invocations_through_the_runtime_api() {
    conformance::lambda_mode(BIN).await;
}

#[tokio::test]
async fn answers_lambda_http_request_fixtures() {
    let (app, _redis) = spawn_app(&[]).await;
    conformance::lambda_fixtures(app).await;
}

#[test]
fn an_invalid_setting_stops_the_process_with_a_clear_message() {
    conformance::config_error(BIN);
}

#[tokio::test]
async fn exits_cleanly_on_sigterm() {
    conformance::graceful_shutdown(BIN).await;
}

/// The router on a Redis of its own, with extra settings (authentication
/// off unless they set `AUTH_MODE`: `tests/auth.rs` covers it).
async fn spawn_app(vars: &[(&str, &str)]) -> (Router, RedisServer) {
    let redis = RedisServer::start();
    let mut vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if !vars.iter().any(|(k, _)| k == "AUTH_MODE") {
        vars.push(("AUTH_MODE".into(), "none".into()));
    }
    let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut config = Config::from_lookup(&lookup).unwrap();
    config.redis = redis.config();
    let ctx = AppContext::new(config).unwrap();
    let stores = sessions::Stores::connect(&ctx, &Env::from_fn(&lookup))
        .await
        .unwrap();
    (sessions::app(ctx, stores), redis)
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let (status, _, body) = call_raw(
        app,
        method,
        uri,
        body.map(|b| b.to_string()),
        "application/json",
    )
    .await;
    (status, body)
}

async fn call_raw(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<String>,
    content_type: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", content_type);
    }
    let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"))
    };
    (status, headers, value)
}

const BASE: &str = "/apps/agent/users/alice";

#[tokio::test]
async fn create_answers_201_and_409_when_the_id_exists() {
    let (app, _redis) = spawn_app(&[]).await;
    let body = json!({"session_id": "s1", "state": {"step": 1, "app:theme": "dark", "temp:x": 1}});
    let (status, s) = call(
        &app,
        "POST",
        &format!("{BASE}/sessions"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["id"], "s1");
    assert_eq!(s["app_name"], "agent");
    assert_eq!(s["user_id"], "alice");
    assert_eq!(s["state"], json!({"step": 1, "app:theme": "dark"}));
    assert_eq!(s["last_seq"], 0);
    let (status, err) = call(&app, "POST", &format!("{BASE}/sessions"), Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["error"]["code"], "already_exists");
    let (status, s) = call(&app, "POST", &format!("{BASE}/sessions"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(s["id"].as_str().unwrap().len(), 32, "a fresh id: {s}");
}

#[tokio::test]
async fn get_answers_404_when_absent_and_200_with_the_events_asked_for() {
    let (app, _redis) = spawn_app(&[]).await;
    let (status, err) = call(&app, "GET", &format!("{BASE}/sessions/nope"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "not_found");
    call(
        &app,
        "POST",
        &format!("{BASE}/sessions"),
        Some(json!({"session_id": "s"})),
    )
    .await;
    for i in 0..5 {
        let event = json!({"author": "user", "timestamp": 1_900_000_000.0 + f64::from(i), "content": {"parts": [{"text": format!("m{i}")}]}});
        let (status, r) = call(
            &app,
            "POST",
            &format!("{BASE}/sessions/s/events"),
            Some(json!({"event": event})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["seq"], i + 1);
        assert_eq!(r["stored"], true);
    }
    let seqs = |v: &Value| {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    let (_, s) = call(&app, "GET", &format!("{BASE}/sessions/s"), None).await;
    assert_eq!(seqs(&s), [1, 2, 3, 4, 5]);
    assert_eq!(s["last_seq"], 5);
    let (_, s) = call(
        &app,
        "GET",
        &format!("{BASE}/sessions/s?num_recent_events=2"),
        None,
    )
    .await;
    assert_eq!(seqs(&s), [4, 5]);
    let (_, s) = call(
        &app,
        "GET",
        &format!("{BASE}/sessions/s?after_timestamp=1900000002.5"),
        None,
    )
    .await;
    assert_eq!(seqs(&s), [4, 5]);
    let (_, s) = call(
        &app,
        "GET",
        &format!("{BASE}/sessions/s?after_timestamp=1900000001&num_recent_events=1"),
        None,
    )
    .await;
    assert_eq!(seqs(&s), [5]);
}

#[tokio::test]
async fn list_and_delete_answer_200_and_204() {
    let (app, _redis) = spawn_app(&[]).await;
    for id in ["b", "a"] {
        call(
            &app,
            "POST",
            &format!("{BASE}/sessions"),
            Some(json!({"session_id": id})),
        )
        .await;
    }
    call(
        &app,
        "POST",
        "/apps/agent/users/bob/sessions",
        Some(json!({"session_id": "c"})),
    )
    .await;
    let (status, list) = call(&app, "GET", &format!("{BASE}/sessions"), None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b", "a"], "oldest update first");
    let (status, every) = call(&app, "GET", "/apps/agent/sessions", None).await;
    assert_eq!(status, StatusCode::OK, "{every}");
    let who: Vec<(&str, &str)> = every["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["user_id"].as_str().unwrap(), s["id"].as_str().unwrap()))
        .collect();
    assert_eq!(who, [("alice", "b"), ("alice", "a"), ("bob", "c")]);
    for _ in 0..2 {
        let (status, body) = call(&app, "DELETE", &format!("{BASE}/sessions/a"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "deleting twice is fine");
        assert_eq!(body, Value::Null);
    }
    let (_, list) = call(&app, "GET", &format!("{BASE}/sessions"), None).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_adk_routes_answer_with_exact_events_user_state_and_memory_by_event() {
    let (app, _redis) = spawn_app(&[]).await;
    call(
        &app,
        "POST",
        &format!("{BASE}/sessions"),
        Some(json!({"session_id": "s", "state": {"user:name": "Alice"}})),
    )
    .await;
    // Sent as text: serde_json's Value would turn the big integer into a float.
    // A recent time with sub-microsecond digits (memory keeps 30 days).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = format!("{}.1234567", now - 100);
    let event = r#"{"event": {"id": "e1", "author": "user", "partial": false, "timestamp": TIME,
        "custom_metadata": {"big": 1180591620717411303425},
        "content": {"role": "user", "parts": [{"text": "the floor plan"}, {"inline_data": {"mime_type": "image/png", "data": "iVBO"}}]}}, "expected_seq": 0}"#
        .replace("TIME", &t);
    let url = format!("{BASE}/sessions/s/events");
    let (status, _, first) =
        call_raw(&app, "POST", &url, Some(event.clone()), "application/json").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["timestamp"].as_f64(), t.parse::<f64>().ok());
    let (status, _, again) =
        call_raw(&app, "POST", &url, Some(event.clone()), "application/json").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a retry with a stale expected_seq: {again}"
    );
    assert_eq!(
        (again["seq"].as_u64(), again["duplicate"].as_bool()),
        (Some(1), Some(true))
    );
    let req = Request::builder()
        .uri(format!("{BASE}/sessions/s"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains(r#""big": 1180591620717411303425"#), "{text}");
    assert!(text.contains(r#""partial":false"#), "{text}");
    assert!(text.contains(&t), "{text}");
    assert!(text.contains(r#""last_seq":1"#), "one event: {text}");

    let (status, state) = call(&app, "GET", "/apps/agent/users/alice/state", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state, json!({"state": {"name": "Alice"}}));
    let (_, state) = call(&app, "GET", "/apps/agent/users/nobody/state", None).await;
    assert_eq!(state, json!({"state": {}}));

    let memory = format!("{BASE}/memory");
    let (status, added) = call(&app, "POST", &memory, Some(json!({"session_id": "s"}))).await;
    assert_eq!((status, added["added"].as_u64()), (StatusCode::OK, Some(1)));
    let (status, added) = call(
        &app,
        "POST",
        &memory,
        Some(
            json!({"events": [{"id": "e9", "author": "user", "timestamp": now as f64 - 50.0,
            "content": {"role": "user", "parts": [{"text": "a second plan"}]}}]}),
        ),
    )
    .await;
    assert_eq!(
        (status, added["added"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{added}"
    );
    let (_, found) = call(&app, "GET", &format!("{memory}?query=plan"), None).await;
    let hits = found["memories"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{found}");
    assert_eq!(hits[0]["session_id"], "__unknown_session_id__");
    assert_eq!(
        hits[1]["content"]["parts"][1]["inline_data"]["mime_type"],
        "image/png"
    );
    for _ in 0..2 {
        let (status, _) = call(&app, "DELETE", &format!("{memory}/e1"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (_, found) = call(&app, "GET", &format!("{memory}?query=plan"), None).await;
    assert_eq!(found["memories"].as_array().unwrap().len(), 1);
    let (status, err) = call(&app, "POST", &memory, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
}

#[tokio::test]
async fn bodies_up_to_eight_mebibytes_are_taken_and_the_limits_answer_4xx() {
    let (app, _redis) = spawn_app(&[("SESSION_MAX_EVENTS", "2")]).await;
    call(
        &app,
        "POST",
        &format!("{BASE}/sessions"),
        Some(json!({"session_id": "s"})),
    )
    .await;
    let url = format!("{BASE}/sessions/s/events");
    let image = "A".repeat(3 << 20);
    let event = json!({"event": {"author": "user", "content": {"parts": [{"inline_data": {"data": image}}]}}});
    let (status, r) = call(&app, "POST", &url, Some(event)).await;
    assert_eq!(status, StatusCode::OK, "a 3 MiB image is taken: {r}");
    let huge =
        json!({"event": {"author": "user", "content": {"parts": [{"text": "B".repeat(9 << 20)}]}}});
    let (status, r) = call(&app, "POST", &url, Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    let (status, _) = call(
        &app,
        "POST",
        &url,
        Some(json!({"event": {"author": "user"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, r) = call(
        &app,
        "POST",
        &url,
        Some(json!({"event": {"author": "user"}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["error"]["code"], "limit_reached");
    let (_, s) = call(&app, "GET", &format!("{BASE}/sessions/s"), None).await;
    assert_eq!(s["last_seq"], 2);
}

#[tokio::test]
async fn append_answers_200_404_without_a_session_and_409_when_stale() {
    let (app, _redis) = spawn_app(&[]).await;
    let url = format!("{BASE}/sessions/s/events");
    let event = json!({"author": "user", "content": {"parts": [{"text": "hi"}]}, "actions": {"state_delta": {"temp:t": 1, "user:lang": "pt"}}});
    let (status, err) = call(&app, "POST", &url, Some(json!({"event": event}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "not_found");
    let (status, _) = call(&app, "GET", &format!("{BASE}/sessions/s"), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the failed append created nothing"
    );

    call(
        &app,
        "POST",
        &format!("{BASE}/sessions"),
        Some(json!({"session_id": "s"})),
    )
    .await;
    let (status, r) = call(
        &app,
        "POST",
        &url,
        Some(json!({"event": event, "expected_seq": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["seq"], 1);
    assert_eq!(r["state_delta"], json!({"temp:t": 1, "user:lang": "pt"}));
    let (status, err) = call(
        &app,
        "POST",
        &url,
        Some(json!({"event": event, "expected_seq": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["error"]["code"], "stale");
    let partial =
        json!({"author": "agent", "partial": true, "content": {"parts": [{"text": "stre"}]}});
    let (status, r) = call(&app, "POST", &url, Some(json!({"event": partial}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r["stored"], false);
    assert_eq!(r["seq"], Value::Null);
    let (_, s) = call(&app, "GET", &format!("{BASE}/sessions/s"), None).await;
    assert_eq!(s["last_seq"], 1);
    assert_eq!(s["state"], json!({"user:lang": "pt"}));
}

#[tokio::test]
async fn memory_remembers_a_session_and_finds_it_by_word() {
    let (app, _redis) = spawn_app(&[]).await;
    let (status, err) = call(
        &app,
        "POST",
        &format!("{BASE}/memory"),
        Some(json!({"session_id": "nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    call(
        &app,
        "POST",
        &format!("{BASE}/sessions"),
        Some(json!({"session_id": "s"})),
    )
    .await;
    for text in ["tours em Paris", "hotel in Rome", "Paris at night"] {
        let event = json!({"author": "user", "content": {"parts": [{"text": text}]}});
        call(
            &app,
            "POST",
            &format!("{BASE}/sessions/s/events"),
            Some(json!({"event": event})),
        )
        .await;
    }
    let (status, r) = call(
        &app,
        "POST",
        &format!("{BASE}/memory"),
        Some(json!({"session_id": "s"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["added"], 3);
    let (status, r) = call(
        &app,
        "GET",
        &format!("{BASE}/memory?query=paris&limit=5"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let texts: Vec<&str> = r["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Paris at night", "tours em Paris"]);
    let (_, r) = call(
        &app,
        "GET",
        "/apps/agent/users/bob/memory?query=paris",
        None,
    )
    .await;
    assert!(
        r["memories"].as_array().unwrap().is_empty(),
        "another user's memory: {r}"
    );
}

#[tokio::test]
async fn bad_input_answers_4xx_json_and_writes_nothing() {
    let (app, redis) = spawn_app(&[]).await;
    call(
        &app,
        "POST",
        &format!("{BASE}/sessions"),
        Some(json!({"session_id": "s"})),
    )
    .await;
    let dump = || {
        let mut conn = redis.admin();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
        keys.sort();
        keys.iter()
            .map(|k| {
                let v: Vec<u8> = redis::cmd("DUMP").arg(k).query(&mut conn).unwrap();
                format!("{k}={v:?}")
            })
            .collect::<Vec<_>>()
    };
    let before = dump();
    let long = "x".repeat(300);
    let event = json!({"author": "user"});
    let cases: Vec<(&str, String, Option<String>, &str, u16)> = vec![
        (
            "POST",
            "/apps/bad:app/users/u/sessions".into(),
            Some("{}".into()),
            "application/json",
            400,
        ),
        (
            "POST",
            "/apps/%7Bagent%7D/users/u/sessions".into(),
            Some("{}".into()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("/apps/agent/users/{long}/sessions"),
            Some("{}".into()),
            "application/json",
            400,
        ),
        (
            "POST",
            "/apps/agent/users/%FF%FE/sessions".into(),
            Some("{}".into()),
            "application/json",
            400,
        ),
        (
            "POST",
            "/apps/agent/users/a%00b/sessions".into(),
            Some("{}".into()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions"),
            Some(json!({"session_id": long}).to_string()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions"),
            Some(json!({"session_id": "n", "state": {"app:": 1}}).to_string()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions"),
            Some(json!({"session_id": "n", "state": [1]}).to_string()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions"),
            Some(json!({"session_id": "n", "surprise": 1}).to_string()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions"),
            Some("{\"session_id\": ".into()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions"),
            Some("session_id=n".into()),
            "application/x-www-form-urlencoded",
            415,
        ),
        (
            "POST",
            format!("{BASE}/sessions/s/events"),
            Some(json!({"event": event, "expected_seq": -1}).to_string()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions/s/events"),
            Some(json!({"event": {"timestamp": -3}}).to_string()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions/s/events"),
            Some(json!({"event": {"timestamp": "later-x9"}}).to_string()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions/s/events"),
            Some(json!({"event": {"id": long}}).to_string()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions/s/events"),
            Some(json!({"event": {"actions": {"state_delta": {"user:": 1}}}}).to_string()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions/s/events"),
            Some(json!({"expected_seq": 0}).to_string()),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("{BASE}/sessions/s/events"),
            Some("[]".into()),
            "application/json",
            400,
        ),
        (
            "GET",
            format!("{BASE}/sessions/s?num_recent_events=-1"),
            None,
            "",
            400,
        ),
        (
            "GET",
            format!("{BASE}/sessions/s?num_recent_events=many"),
            None,
            "",
            400,
        ),
        (
            "GET",
            format!("{BASE}/sessions/s?after_timestamp=soon"),
            None,
            "",
            400,
        ),
        (
            "GET",
            format!("{BASE}/sessions/s?after_timestamp=inf"),
            None,
            "",
            400,
        ),
        ("GET", format!("{BASE}/sessions/s?nope=1"), None, "", 400),
        ("GET", format!("{BASE}/memory"), None, "", 400),
        (
            "GET",
            format!("{BASE}/memory?query=x&limit=0"),
            None,
            "",
            400,
        ),
        (
            "GET",
            format!("{BASE}/memory?query=x&limit=1000"),
            None,
            "",
            400,
        ),
        (
            "GET",
            format!("{BASE}/memory?query={}", "q".repeat(2_000)),
            None,
            "",
            400,
        ),
        (
            "POST",
            format!("{BASE}/memory"),
            Some(json!({"session_id": ""}).to_string()),
            "application/json",
            400,
        ),
        ("PUT", format!("{BASE}/sessions/s"), None, "", 405),
        ("GET", format!("{BASE}/sessions/s/nothing"), None, "", 404),
    ];
    for (method, uri, body, content_type, expected) in cases {
        let (status, _, reply) = call_raw(&app, method, &uri, body.clone(), content_type).await;
        assert_eq!(
            status.as_u16(),
            expected,
            "{method} {uri} {body:?}: {reply}"
        );
        assert!(
            reply["error"]["code"].is_string(),
            "{method} {uri}: {reply}"
        );
        assert!(
            reply["error"]["message"].is_string(),
            "{method} {uri}: {reply}"
        );
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains(&long) && !message.contains("later-x9"),
            "{message}"
        );
    }
    assert_eq!(dump(), before, "rejected requests wrote nothing");
}

#[tokio::test]
async fn an_expired_session_answers_404_and_an_append_does_not_bring_it_back() {
    let (app, redis) = spawn_app(&[("REDIS_SESSION_TTL", "1")]).await;
    call(
        &app,
        "POST",
        &format!("{BASE}/sessions"),
        Some(json!({"session_id": "s"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, _) = call(&app, "GET", &format!("{BASE}/sessions/s"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let event = json!({"author": "user", "content": {"parts": [{"text": "hello?"}]}});
    let (status, _) = call(
        &app,
        "POST",
        &format!("{BASE}/sessions/s/events"),
        Some(json!({"event": event})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*session*")
        .query(&mut redis.admin())
        .unwrap();
    assert!(
        keys.is_empty(),
        "nothing of the session came back: {keys:?}"
    );
}

#[tokio::test]
async fn a_redis_outage_answers_503_with_retry_after() {
    let (app, mut redis) = spawn_app(&[]).await;
    call(
        &app,
        "POST",
        &format!("{BASE}/sessions"),
        Some(json!({"session_id": "s"})),
    )
    .await;
    redis.stop();
    let event = json!({"author": "user", "content": {"parts": [{"text": "hi"}]}});
    let (status, headers, body) = call_raw(
        &app,
        "POST",
        &format!("{BASE}/sessions/s/events"),
        Some(json!({"event": event}).to_string()),
        "application/json",
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert!(headers.get("retry-after").is_some());
}

#[tokio::test]
async fn a_write_refused_for_lack_of_memory_is_503_busy_and_stores_nothing() {
    let (app, redis) = spawn_app(&[]).await;
    let (status, _) = call(
        &app,
        "POST",
        &format!("{BASE}/sessions"),
        Some(json!({"session_id": "s"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let before = redis.all_keys();
    let mut admin = redis.admin();
    redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "noeviction"])
        .exec(&mut admin)
        .unwrap();
    redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "1"])
        .exec(&mut admin)
        .unwrap();
    let event = json!({"author": "user", "content": {"parts": [{"text": "hi"}]}});
    let uri = format!("{BASE}/sessions/s/events");
    let append = || {
        call_raw(
            &app,
            "POST",
            &uri,
            Some(json!({"event": event}).to_string()),
            "application/json",
        )
    };
    let (status, headers, body) = append().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert_eq!(body["error"]["type"], "busy", "{body}");
    assert!(headers.get("retry-after").is_some());
    assert_eq!(redis.all_keys(), before, "nothing was stored");

    redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "0"])
        .exec(&mut admin)
        .unwrap();
    let (status, _, body) = append().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], 1, "the refused append left no trace");
}

/// The binary on the `sql` backend (the rollback path), then back on
/// `redis`: the same routes answer the same way, and the database URL's
/// password never reaches the output.
async fn backend_switch(url: &str) {
    let redis = RedisServer::start();
    for backend in ["sql", "redis", "memory"] {
        let mut f = FunctionProcess::spawn(
            BIN,
            &[
                ("REDIS_URL", &redis.url()),
                ("SESSION_BACKEND", backend),
                ("MEMORY_BACKEND", backend),
                ("DATABASE_URL", url),
                ("AUTH_MODE", "none"),
            ],
        );
        f.wait_ready(Duration::from_secs(30)).await;
        let base = format!("{}/apps/agent/users/alice", f.base_url());
        let http = reqwest::Client::new();
        let created = http
            .post(format!("{base}/sessions"))
            .json(&json!({"session_id": backend, "state": {"app:backend": backend}}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{backend}: {}", f.output());
        let again = http
            .post(format!("{base}/sessions"))
            .json(&json!({"session_id": backend}))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 409, "{backend}");
        let event = json!({"event": {"author": "user", "content": {"parts": [{"text": "hello rollback"}]}}});
        let appended: Value = http
            .post(format!("{base}/sessions/{backend}/events"))
            .json(&event)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(appended["seq"], 1, "{backend}: {appended}");
        let memory = http
            .post(format!("{base}/memory"))
            .json(&json!({"session_id": backend}))
            .send()
            .await
            .unwrap();
        assert_eq!(memory.status(), 200, "{backend}");
        let found: Value = http
            .get(format!("{base}/memory?query=rollback"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            found["memories"].as_array().unwrap().len(),
            1,
            "{backend}: {found}"
        );
        let s: Value = http
            .get(format!("{base}/sessions/{backend}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            s["events"][0]["content"]["parts"][0]["text"],
            "hello rollback"
        );
        assert!(f.output().contains("stores ready"), "{}", f.output());
        assert!(
            !f.output().contains("pw-7f3a"),
            "the password reached the logs:\n{}",
            f.output()
        );
        assert_eq!(f.terminate(Duration::from_secs(10)), Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_between_postgres_redis_and_memory_backends_by_configuration() {
    let pg = PostgresServer::start();
    let db = pg.create_database().await;
    // Trust authentication accepts any password: it is there to be hidden.
    let url = db.expose().replace("postgres@", "postgres:pw-7f3a@");
    backend_switch(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_between_mariadb_redis_and_memory_backends_by_configuration() {
    let maria = MariaDbServer::start();
    let db = maria.create_database().await;
    let url = db.expose().replace("root@", "root:pw-7f3a@");
    backend_switch(&url).await;
}

#[tokio::test]
async fn an_unreachable_database_stops_the_process_without_printing_the_password() {
    let redis = RedisServer::start();
    let url = format!(
        "postgres://u:pw-7f3a@127.0.0.1:{}/db",
        shared::testkit::free_port()
    );
    let mut f = FunctionProcess::spawn(
        BIN,
        &[
            ("REDIS_URL", &redis.url()),
            ("SESSION_BACKEND", "sql"),
            ("DATABASE_URL", &url),
            ("DATABASE_TIMEOUT_MS", "500"),
        ],
    );
    assert_eq!(
        f.wait_exit(Duration::from_secs(20)),
        Some(1),
        "{}",
        f.output()
    );
    assert!(f.output().contains("stores"), "{}", f.output());
    assert!(!f.output().contains("pw-7f3a"), "{}", f.output());
}

/// Hostile input through the whole router against a real Redis, with many
/// generated cases: crafted app, user and session ids, state keys (`app:`,
/// `user:`, `temp:`, braces, globs), events and query values. Nothing
/// answers 5xx, and every key left is inside an app a request named.
/// Authentication is on (`AUTH_MODE=jwt`): every request carries a token
/// for `app-a` and `app-b`; the victim app is written with its own.
#[test]
fn hostile_requests_get_4xx_never_5xx_and_stay_in_their_app() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as ProptestConfig, TestRunner};
    use shared::testkit::hostile::{self, encode};
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeSet;

    #[derive(Debug, Clone)]
    enum Call {
        Create(String, Value),
        Append(Value, Value, String),
        Get(String, String),
        List,
        Delete,
        Remember(Value),
        RememberEvents(Value, Value, String),
        Search(String, String),
        ListApp,
        UserState,
        Forget(String),
    }
    let id = || prop_oneof![3 => "s[0-2]", 2 => hostile::text()];
    let state = || {
        prop_oneof![
            2 => prop::collection::vec((prop_oneof![Just("app:".to_owned()), Just("user:".to_owned()), Just("temp:".to_owned()), Just(String::new())], hostile::text(), hostile::json()), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(p, k, v)| (format!("{p}{k}"), v)).collect())),
            1 => hostile::json(),
        ]
    };
    let calls = prop_oneof![
        2 => (id(), state()).prop_map(|(i, s)| Call::Create(i, s)),
        4 => (state(), hostile::json(), hostile::text())
            .prop_map(|(delta, content, seq)| Call::Append(delta, content, seq)),
        // Hostile event fields: id, timestamp, partial, anything else.
        2 => (hostile::text(), hostile::json(), hostile::json(), hostile::text())
            .prop_map(|(id, timestamp, partial, seq)| Call::Append(
                json!({"k": 1}),
                json!({"id": id, "timestamp": timestamp, "partial": partial}),
                seq,
            )),
        1 => (hostile::text(), hostile::text()).prop_map(|(n, t)| Call::Get(n, t)),
        1 => Just(Call::List),
        1 => Just(Call::Delete),
        1 => hostile::json().prop_map(Call::Remember),
        1 => (hostile::json(), hostile::json(), hostile::text())
            .prop_map(|(content, timestamp, id)| Call::RememberEvents(content, timestamp, id)),
        1 => Just(Call::ListApp),
        1 => Just(Call::UserState),
        1 => hostile::text().prop_map(Call::Forget),
        1 => (hostile::text(), hostile::text()).prop_map(|(q, l)| Call::Search(q, l)),
    ];
    let app_id = prop_oneof![3 => "app-[a-b]", 1 => hostile::text()];
    let user = prop_oneof![3 => "u[0-1]", 1 => hostile::text()];

    let rt = tokio::runtime::Runtime::new().unwrap();
    let idp = rt.block_on(shared::testkit::TestIdp::start());
    let env = idp.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (router, redis) = rt.block_on(spawn_app(&env));
    let victim = format!("{}/sessions", "/apps/victim-app-0/users/v");
    let as_victim =
        shared::testkit::access::with_authorization(router.clone(), &idp.bearer(&["victim-app-0"]));
    let (status, _) = rt.block_on(call(
        &as_victim,
        "POST",
        &victim,
        Some(json!({"session_id": "v"})),
    ));
    assert_eq!(status, StatusCode::CREATED);
    let app = shared::testkit::access::with_authorization(router, &idp.bearer(&["app-a", "app-b"]));
    let victim_keys = redis.all_keys();
    let dump = |keys: &[String]| -> Vec<Vec<u8>> {
        keys.iter()
            .map(|k| redis::cmd("DUMP").arg(k).query(&mut redis.admin()).unwrap())
            .collect()
    };
    let victim_dump = dump(&victim_keys);

    let named = RefCell::new(BTreeSet::from(["victim-app-0".to_owned()]));
    let (ok, rejected) = (Cell::new(0u32), Cell::new(0u32));
    // 2,000 cases: with authentication on, an app id that is valid but not
    // app-a or app-b is 403, so fewer requests than before reach Redis.
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&(app_id, user, id(), calls), |(a, u, s, c)| {
        if hostile::is_tenant(&a) {
            named.borrow_mut().insert(a.clone());
        }
        let base = format!("/apps/{}/users/{}", encode(&a), encode(&u));
        let session = format!("{base}/sessions/{}", encode(&s));
        let (method, uri, body) = match &c {
            Call::Create(i, st) => ("POST", format!("{base}/sessions"), Some(json!({"session_id": i, "state": st}).to_string())),
            Call::Append(delta, content, seq) => {
                let expected = seq.parse::<i64>().map_or(Value::String(seq.clone()), Value::from);
                let mut event = json!({"author": "user", "content": content, "actions": {"state_delta": delta}});
                // The hostile-fields case: its "content" carries the fields.
                if let Some(fields) = content.as_object().filter(|f| f.contains_key("partial")) {
                    for (k, v) in fields {
                        event[k] = v.clone();
                    }
                }
                let event = json!({"event": event, "expected_seq": expected});
                ("POST", format!("{session}/events"), Some(event.to_string()))
            }
            Call::Get(n, t) => ("GET", format!("{session}?num_recent_events={}&after_timestamp={}", encode(n), encode(t)), None),
            Call::List => ("GET", format!("{base}/sessions"), None),
            Call::Delete => ("DELETE", session.clone(), None),
            Call::Remember(body) => ("POST", format!("{base}/memory"), Some(body.to_string())),
            Call::Search(q, l) => ("GET", format!("{base}/memory?query={}&limit={}", encode(q), encode(l)), None),
            Call::RememberEvents(content, timestamp, id) => {
                let body = json!({"session_id": s, "events": [
                    {"id": id, "author": "user", "timestamp": timestamp, "content": content},
                    {"author": "user", "content": {"parts": [{"text": id}]}},
                ]});
                ("POST", format!("{base}/memory"), Some(body.to_string()))
            }
            Call::ListApp => ("GET", format!("/apps/{}/sessions", encode(&a)), None),
            Call::UserState => ("GET", format!("{base}/state"), None),
            Call::Forget(id) => ("DELETE", format!("{base}/memory/{}", encode(id)), None),
        };
        let (status, _, reply) = rt.block_on(call_raw(&app, method, &uri, body, "application/json"));
        prop_assert!(status.as_u16() < 500, "{c:?} on {a:?}/{u:?}/{s:?}: {reply}");
        if status.is_client_error() {
            rejected.set(rejected.get() + 1);
            prop_assert!(reply["error"]["code"].is_string(), "{reply}");
        } else {
            ok.set(ok.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        ok.get() >= 200 && rejected.get() >= 200,
        "{} accepted, {} rejected",
        ok.get(),
        rejected.get()
    );
    hostile::assert_keys_confined(&redis.all_keys(), &named.borrow());
    assert_eq!(
        dump(&victim_keys),
        victim_dump,
        "the victim app's keys changed"
    );
}
