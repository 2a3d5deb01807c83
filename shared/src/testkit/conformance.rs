//! Checks every function binary must pass: the common routes in server mode
//! and in Lambda mode, a bounded `503` when Redis is unreachable, a clear
//! configuration error, a clean exit on SIGTERM, `AUTH_MODE=none` refused on
//! the clouds, slow clients cut off. A function's tests call each with
//! `env!("CARGO_BIN_EXE_<name>")`.

use std::time::{Duration, Instant};

use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::{
    BlackHole, FunctionProcess, LambdaRuntimeApi, RedisServer, SHUTDOWN_GRACE, ShutdownOutcome,
    lambda_env, lambda_events,
};
use crate::contract as names;

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Panics unless `body` holds only the fields a probe needs.
fn assert_probe_fields_only(body: &Value) {
    for key in body.as_object().expect("a JSON object").keys() {
        assert!(
            crate::contract::HEALTH_FIELDS.contains(&key.as_str()),
            "/redis-health answers `{key}`, which a probe does not need: {body}"
        );
    }
}

/// Server mode against a real Redis: `/redis-health` 200 with the
/// documented fields (and no others), `/healthz` 200, both without
/// credentials in the default `AUTH_MODE`.
pub async fn server_mode(bin: &str) {
    let redis = RedisServer::start();
    let mut f = FunctionProcess::spawn(bin, &[("REDIS_URL", &redis.url())]);
    f.wait_ready(Duration::from_secs(10)).await;
    let (status, body) = get_json(&format!("{}/redis-health", f.base_url())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["ping"], "PONG");
    assert!(
        body["latency_ms"].as_f64().is_some_and(|v| v > 0.0),
        "{body}"
    );
    assert_probe_fields_only(&body);
    let (status, _) = get_json(&format!("{}/healthz", f.base_url())).await;
    assert_eq!(status, 200);
    assert!(f.is_running());
}

/// With `REDIS_URL` at a closed port, and at a listener that never
/// answers: `/redis-health` is `503` JSON within 1.5 s, every time, and
/// the process stays up.
pub async fn unreachable_redis(bin: &str) {
    // Port 1: closed everywhere and never handed out by the kernel, unlike
    // a port found free a moment ago, which a parallel test's listener can
    // take (it then answers, and the failure is a parse error).
    let closed = "redis://127.0.0.1:1".to_owned();
    let hole = BlackHole::bind();
    for (url, kind) in [(closed, "connect"), (hole.url(), "timeout")] {
        let mut f = FunctionProcess::spawn(bin, &[("REDIS_URL", &url)]);
        f.wait_ready(Duration::from_secs(10)).await;
        for _ in 0..3 {
            let started = Instant::now();
            let (status, body) = get_json(&format!("{}/redis-health", f.base_url())).await;
            let took = started.elapsed();
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["status"], "unhealthy");
            assert_eq!(body["type"], kind, "{body}");
            assert!(body["error"].is_string());
            assert!(
                took < Duration::from_millis(1_500),
                "{url}: answered after {took:?}"
            );
        }
        assert!(
            f.is_running(),
            "the process must stay up; output:\n{}",
            f.output()
        );
    }
}

/// Lambda mode: the real binary registers its shutdown extension during
/// init, polls a Runtime API emulator and answers every event shape (REST
/// API with a stage, HTTP API `$default` and a named stage, Function URL,
/// ALB with single- and multi-value headers) with the same JSON; at
/// shutdown the SIGTERM Lambda sends writes the last metrics line.
pub async fn lambda_mode(bin: &str) {
    let redis = RedisServer::start();
    let api = LambdaRuntimeApi::start().await;
    let mut env = lambda_env(&api);
    env.push(("REDIS_URL", redis.url()));
    env.push(("DEPLOY_ENVIRONMENT", "conformance".into()));
    // What a deployment sets on a cloud (the sessions function needs it).
    env.push((
        "MEMORY_INDEX_KEY",
        "conformance-memory-index-key-0123456789".into(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut f = FunctionProcess::spawn(bin, &env);
    let events = [
        (
            "v2",
            lambda_events::apigw_v2("GET", "/redis-health", "", None),
        ),
        (
            "v2 named stage",
            lambda_events::apigw_v2_named_stage("prod", "GET", "/redis-health", "", None),
        ),
        (
            "function url",
            lambda_events::function_url("GET", "/redis-health", "", None),
        ),
        ("v1", lambda_events::apigw_v1("GET", "/redis-health", None)),
        ("alb", lambda_events::alb("GET", "/redis-health", &[], None)),
        (
            "alb multi-value",
            lambda_events::alb_multi_value("GET", "/redis-health", &[], None),
        ),
    ];
    let probes = events.len() as u64;
    for (name, event) in events {
        let reply = api.invoke(event).await;
        assert!(!reply.is_error, "{name}: {:?}\n{}", reply.body, f.output());
        assert_eq!(reply.status(), 200, "{name}: {}", reply.body);
        let body = reply.json();
        assert_eq!(body["status"], "healthy", "{name}: {body}");
        assert_eq!(body["ping"], "PONG");
        assert_probe_fields_only(&body);
    }
    // Invocations share the client: one connection to Redis for all.
    assert_eq!(redis.client_count(), 1);
    let reply = api
        .invoke(lambda_events::apigw_v2("GET", "/nope", "", None))
        .await;
    assert_eq!(reply.status(), 404, "{}", reply.body);
    assert!(f.is_running());
    assert!(
        api.extensions()
            .iter()
            .any(|e| e.name == crate::http::lambda::EXTENSION_NAME && e.ready),
        "no shutdown extension registered: {:?}",
        api.extensions()
    );

    assert_eq!(
        api.shutdown(&mut f, SHUTDOWN_GRACE),
        ShutdownOutcome::ExitedAfterSigterm(Some(0)),
        "{}",
        f.output()
    );
    let output = f.output();
    let last = output
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l[names::EVENT] == names::METRICS_EVENT)
        .unwrap_or_else(|| panic!("no metrics line at shutdown:\n{output}"));
    assert_eq!(last[names::HTTP_PROBE_REQUESTS], probes, "{last}");
    assert_eq!(last[names::HTTP_USER_REQUESTS], 1, "the 404: {last}");
    assert_eq!(last[names::ENVIRONMENT], "conformance", "{last}");
}

/// The router, as [`crate::http::serve_router`] runs it on Lambda, answers
/// `lambda_http` request fixtures (as `lambda_http::request::from_str`
/// parses them) with the same JSON as a plain request.
pub async fn lambda_fixtures(app: Router) {
    let app = crate::http::for_lambda(app);
    for event in [
        lambda_events::apigw_v2("GET", "/redis-health", "", None),
        lambda_events::apigw_v2_named_stage("prod", "GET", "/redis-health", "", None),
        lambda_events::function_url("GET", "/redis-health", "", None),
        lambda_events::apigw_v1("GET", "/redis-health", None),
        lambda_events::alb("GET", "/redis-health", &[], None),
        lambda_events::alb_multi_value("GET", "/redis-health", &[], None),
    ] {
        let request = lambda_http::request::from_str(&event.to_string()).expect("a valid event");
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), 200);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(body["status"], "healthy", "{body}");
        assert_eq!(body["ping"], "PONG");
    }
}

/// An invalid setting stops the process at start with exit code 2 and
/// one line naming the variable.
pub fn config_error(bin: &str) {
    let mut f = FunctionProcess::spawn(bin, &[("REDIS_MAX_CONNECTIONS", "zero")]);
    assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(2));
    let output = f.output();
    assert!(output.contains("REDIS_MAX_CONNECTIONS"), "{output}");
    assert!(output.contains("from 1 to 64"), "{output}");
    let mut f = FunctionProcess::spawn(
        bin,
        &[("REDIS_URL", "redis://user:hunter2-secret@host:notaport")],
    );
    assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(2));
    assert!(!f.output().contains("hunter2-secret"), "{}", f.output());
}

/// `AUTH_MODE=none` on Cloud Run or Lambda stops the process at start with
/// exit code 2 naming `AUTH_MODE` and the way out; with
/// `AUTH_ALLOW_ANONYMOUS=true` it serves, and warns at start. Locally it
/// serves and warns.
pub async fn anonymous_mode_refused_on_the_clouds(bin: &str) {
    let redis = RedisServer::start();
    let url = redis.url();
    for cloud in [("K_SERVICE", "svc"), ("AWS_LAMBDA_FUNCTION_NAME", "fn")] {
        let mut f =
            FunctionProcess::spawn(bin, &[("REDIS_URL", &url), ("AUTH_MODE", "none"), cloud]);
        assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(2), "{cloud:?}");
        let output = f.output();
        assert!(output.contains("AUTH_MODE"), "{output}");
        assert!(output.contains("AUTH_ALLOW_ANONYMOUS"), "{output}");
    }
    for extra in [
        vec![("K_SERVICE", "svc"), ("AUTH_ALLOW_ANONYMOUS", "true")],
        vec![],
    ] {
        let mut env = vec![
            ("REDIS_URL", url.as_str()),
            ("AUTH_MODE", "none"),
            (
                "MEMORY_INDEX_KEY",
                "conformance-memory-index-key-0123456789",
            ),
        ];
        env.extend(extra);
        let mut f = FunctionProcess::spawn(bin, &env);
        f.wait_ready(Duration::from_secs(10)).await;
        let output = f.output();
        assert!(
            output.contains("AUTH_MODE=none") && output.contains("WARN"),
            "no warning at start: {output}"
        );
    }
}

/// A client that sends its request head a byte at a time is disconnected
/// after `HEADER_READ_TIMEOUT_MS`, and `/healthz` answers meanwhile.
pub async fn slow_clients_cut_off(bin: &str) {
    use std::io::{Read, Write};
    let redis = RedisServer::start();
    let mut f = FunctionProcess::spawn(
        bin,
        &[
            ("REDIS_URL", &redis.url()),
            ("HEADER_READ_TIMEOUT_MS", "500"),
        ],
    );
    f.wait_ready(Duration::from_secs(10)).await;
    let port: u16 = f
        .base_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let slow: Vec<_> = (0..5)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
                let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                let mut buf = [0u8; 64];
                for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                    if stream.write_all(&[*byte]).is_err() {
                        break;
                    }
                    match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    }
                    if started.elapsed() > Duration::from_secs(10) {
                        break;
                    }
                }
                started.elapsed()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, _) = get_json(&format!("{}/healthz", f.base_url())).await;
    assert_eq!(status, 200);
    for client in slow {
        let open = client.join().unwrap();
        assert!(
            open < Duration::from_secs(3),
            "a slow client was kept {open:?} (HEADER_READ_TIMEOUT_MS=500)"
        );
    }
    assert!(f.is_running());
}

/// SIGTERM ends the server with exit code 0.
pub async fn graceful_shutdown(bin: &str) {
    let redis = RedisServer::start();
    let mut f = FunctionProcess::spawn(bin, &[("REDIS_URL", &redis.url())]);
    f.wait_ready(Duration::from_secs(10)).await;
    let _ = get_json(&format!("{}/redis-health", f.base_url())).await;
    assert_eq!(
        f.terminate(Duration::from_secs(10)),
        Some(0),
        "{}",
        f.output()
    );
}

/// With a wrong Redis password: `/redis-health` is `503` with type `auth`,
/// and neither the wrong nor the right password appears in any response or
/// any log line (at debug level).
pub async fn wrong_password(bin: &str) {
    let right = "right-password-7f3a9c";
    let wrong = "wrong-password-e21b4d";
    let redis = RedisServer::builder().password(right).start();
    let url = format!("redis://:{wrong}@127.0.0.1:{}", redis.port());
    let mut f = FunctionProcess::spawn(bin, &[("REDIS_URL", &url), ("LOG_LEVEL", "debug")]);
    f.wait_ready(Duration::from_secs(10)).await;
    for path in ["/redis-health", "/redis-health", "/healthz", "/nope"] {
        let response = reqwest::get(format!("{}{path}", f.base_url()))
            .await
            .expect("a response");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert!(
            !body.contains(wrong) && !body.contains(right),
            "{path}: {body}"
        );
        if path == "/redis-health" {
            assert_eq!(status, 503, "{body}");
            let json: Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(json["type"], "auth", "{body}");
        }
    }
    let output = f.output();
    assert!(
        !output.is_empty(),
        "the function logged nothing at debug level"
    );
    assert!(
        !output.contains(wrong) && !output.contains(right),
        "a password reached the logs:\n{output}"
    );
    assert!(f.is_running());
}

/// Declares a function crate's conformance tests: every check of this module
/// as a `#[tokio::test]`. `$bin` is `env!("CARGO_BIN_EXE_<name>")`, `$app`
/// the function's `fn(AppContext) -> Router`.
///
/// ```ignore
/// shared::conformance_tests!(env!("CARGO_BIN_EXE_tebra_debug"), tebra_debug::app);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($bin:expr, $app:path) => {
        #[tokio::test]
        async fn serves_redis_health_as_a_server() {
            $crate::testkit::conformance::server_mode($bin).await;
        }

        #[tokio::test]
        async fn answers_503_quickly_and_stays_up_when_redis_is_unreachable() {
            $crate::testkit::conformance::unreachable_redis($bin).await;
        }

        #[tokio::test]
        async fn a_wrong_redis_password_is_503_auth_and_never_shown_or_logged() {
            $crate::testkit::conformance::wrong_password($bin).await;
        }

        #[tokio::test]
        async fn serves_lambda_invocations_through_the_runtime_api() {
            $crate::testkit::conformance::lambda_mode($bin).await;
        }

        #[tokio::test]
        async fn answers_lambda_http_request_fixtures() {
            let redis = $crate::testkit::RedisServer::start();
            let ctx = $crate::AppContext::with_redis(redis.config()).expect("a local context");
            $crate::testkit::conformance::lambda_fixtures($app(ctx)).await;
        }

        #[test]
        fn an_invalid_setting_stops_the_process_with_a_clear_message() {
            $crate::testkit::conformance::config_error($bin);
        }

        #[tokio::test]
        async fn exits_cleanly_on_sigterm() {
            $crate::testkit::conformance::graceful_shutdown($bin).await;
        }

        #[tokio::test]
        async fn anonymous_mode_is_refused_on_the_clouds_and_warned_about() {
            $crate::testkit::conformance::anonymous_mode_refused_on_the_clouds($bin).await;
        }

        #[tokio::test]
        async fn clients_sending_headers_slowly_are_cut_off() {
            $crate::testkit::conformance::slow_clients_cut_off($bin).await;
        }
    };
}
