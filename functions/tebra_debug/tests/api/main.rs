//! `tebra_debug` as a process and as a router, against real `redis-server`
//! processes: the checks every function passes (here), the admin metrics
//! (`metrics`), the key listing (`keys`), admin access (`access`), secrets
//! in responses and logs (`secrets`) and the dashboard in a real headless
//! browser (`dashboard`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod dashboard;
mod hostile;
mod keys;
mod metrics;
mod secrets;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use shared::testkit::RedisServer;
use shared::{AppContext, Config};
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_tebra_debug");

/// The admin token of the tests.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// A context for `server` (its URL, password included) with extra settings.
pub fn ctx_for(server: &RedisServer, vars: &[(&str, &str)]) -> AppContext {
    ctx_for_url(&server.url(), vars)
}

/// A context for a Redis URL with extra settings.
pub fn ctx_for_url(url: &str, vars: &[(&str, &str)]) -> AppContext {
    let mut env: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    env.push(("REDIS_URL".into(), url.to_owned()));
    let config =
        Config::from_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .unwrap();
    AppContext::new(config).unwrap()
}

/// A response, its body read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Every header value and the body, for searching for secrets.
    pub fn everything(&self) -> String {
        let mut all = self.text.clone();
        for (name, value) in &self.headers {
            all.push_str(&format!(
                "\n{name}: {}",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        all
    }
}

/// `GET uri` on `app`, with `Authorization: Bearer <token>` when given,
/// from a client address of its own (the admin throttle counts failed
/// tokens per address: `access` tries it from one).
pub async fn get(app: &Router, uri: &str, token: Option<&str>) -> Reply {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let source =
        std::net::SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 40_000));
    get_from(app, uri, token, source).await
}

/// [`get`] from the client address `source`.
pub async fn get_from(
    app: &Router,
    uri: &str,
    token: Option<&str>,
    source: std::net::SocketAddr,
) -> Reply {
    let mut request = Request::get(uri).extension(axum::extract::ConnectInfo(source));
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Asserts the JSON error shape with `code`.
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

shared::conformance_tests!(BIN, tebra_debug::app);

#[tokio::test]
async fn status_pings_redis_through_the_fallback_and_reveals_no_data() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let mut redis = RedisServer::start();
    redis::cmd("SET")
        .arg("a")
        .arg("1")
        .exec(&mut redis.admin())
        .unwrap();
    let ctx = shared::AppContext::with_redis(redis.config()).unwrap();
    let app = tebra_debug::app(ctx);
    let get = || {
        axum::http::Request::get("/status")
            .body(Body::empty())
            .unwrap()
    };
    let body = |r: axum::response::Response| async move {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let ok = app.clone().oneshot(get()).await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok = body(ok).await;
    assert_eq!(ok["redis"], "reachable");
    assert_eq!(ok["degraded"], false);
    // Open to anyone: nothing about the data, not even how many keys.
    assert!(ok.get("keys").is_none(), "{ok}");

    redis.stop();
    let down = app.oneshot(get()).await.unwrap();
    assert_eq!(down.status(), 200, "a read with a fallback still answers");
    let down = body(down).await;
    assert_eq!(down["redis"], "unreachable");
    assert_eq!(down["degraded"], true);
}

#[test]
fn an_invalid_time_budget_stops_the_process_with_a_clear_message() {
    use std::time::Duration;
    for (value, says) in [
        ("soon", "integer from 10 to 60000"),
        ("5", "integer from 10 to 60000"),
        ("9500", "must be under REQUEST_TIMEOUT_MS"),
    ] {
        let mut f =
            shared::testkit::FunctionProcess::spawn(BIN, &[("DEBUG_TIME_BUDGET_MS", value)]);
        assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(2), "{value}");
        let output = f.output();
        assert!(output.contains("DEBUG_TIME_BUDGET_MS"), "{output}");
        assert!(output.contains(says), "{value}: {output}");
    }
}
