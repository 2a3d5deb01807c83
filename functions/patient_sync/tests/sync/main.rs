//! `patient_sync`'s API against real `redis-server` processes, one per test:
//! change detection, concurrency, idempotency, rate limit, queue, lock,
//! isolation, validation, faults, and access (authentication and tenant
//! binding, with a token issuer on loopback).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod acl;
mod change_detection;
mod concurrency;
mod dead_letters;
mod faults;
mod hostile;
mod idempotency;
mod isolation;
mod lock;
mod queue;
mod ratelimit;
mod validation;

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::config::Env;
use shared::testkit::RedisServer;
use shared::{AppContext, Config};
use tower::ServiceExt;

/// A function router on its own `redis-server`.
#[derive(Debug)]
pub struct TestApp {
    pub redis: RedisServer,
    pub app: Router,
}

/// Starts a server and builds the router with `vars` as environment
/// (shared and function settings alike).
pub fn spawn_app(vars: &[(&str, &str)]) -> TestApp {
    let redis = RedisServer::start();
    let app = app_for(&redis.url(), vars);
    TestApp { redis, app }
}

/// The router for the Redis at `url` with `vars` as environment;
/// authentication is off unless `vars` set `AUTH_MODE` (`access` covers it).
pub fn app_for(url: &str, vars: &[(&str, &str)]) -> Router {
    let mut env: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if !env.iter().any(|(k, _)| k == "AUTH_MODE") {
        env.push(("AUTH_MODE".into(), "none".into()));
    }
    env.push(("REDIS_URL".into(), url.to_owned()));
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let config = Config::from_lookup(lookup).unwrap();
    let settings = patient_sync::Settings::from_env(&Env::from_fn(lookup), &config).unwrap();
    patient_sync::app_with(AppContext::new(config).unwrap(), settings)
}

/// A response, its JSON body parsed (`Null` if none).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Asserts the JSON error shape and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.body["error"]["code"], code, "{}", self.text);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    /// `Retry-After` in seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }
}

/// Sends a request to the router.
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// `POST uri` with a JSON body and extra headers.
pub fn post(uri: &str, body: &Value, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// `POST uri` without a body.
pub fn post_empty(uri: &str) -> Request<Body> {
    Request::post(uri).body(Body::empty()).unwrap()
}

/// `GET uri`.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Syncs `patients` to `practice`.
pub async fn sync(app: &Router, practice: &str, patients: Value) -> Reply {
    let uri = format!("/practices/{practice}/patients/sync");
    send(app, post(&uri, &json!({ "patients": patients }), &[])).await
}

/// Claims up to `max` changes.
pub async fn claim(app: &Router, practice: &str, max: usize) -> Reply {
    send(
        app,
        post_empty(&format!("/practices/{practice}/changes/claim?max={max}")),
    )
    .await
}

/// Acknowledges claim ids.
pub async fn ack(app: &Router, practice: &str, ids: &[&str]) -> Reply {
    let uri = format!("/practices/{practice}/changes/ack");
    send(app, post(&uri, &json!({ "ids": ids }), &[])).await
}

/// The status route.
pub async fn status(app: &Router, practice: &str) -> Value {
    let reply = send(app, get(&format!("/practices/{practice}/sync/status"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

/// A patient record.
pub fn patient(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "dob": "1980-02-29", "phones": ["555-0100"]})
}

/// `n` patients `p0..p{n-1}`.
pub fn patients(n: usize) -> Value {
    Value::Array((0..n).map(|i| patient(&format!("p{i}"), "Jo")).collect())
}

/// Every key on the server, sorted.
pub fn all_keys(server: &RedisServer) -> Vec<String> {
    server.all_keys()
}

/// The claim ids of a claim reply.
pub fn claim_ids(reply: &Reply) -> Vec<String> {
    reply.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["claim_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Claims and acknowledges everything queued; returns the changes.
pub async fn drain(app: &Router, practice: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let reply = claim(app, practice, 100).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let ids = claim_ids(&reply);
        if ids.is_empty() {
            return out;
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(
            ack(app, practice, &ids).await.body["acknowledged"],
            ids.len()
        );
        out.extend(reply.body["changes"].as_array().unwrap().iter().cloned());
    }
}

/// Every key with its value (hashes, lists, strings), for before/after comparisons.
pub fn dump(t: &TestApp) -> Vec<(String, Value)> {
    all_keys(&t.redis)
        .into_iter()
        .map(|k| {
            let kind: String = redis::cmd("TYPE")
                .arg(&k)
                .query(&mut t.redis.admin())
                .unwrap();
            let value: Value = match kind.as_str() {
                "hash" => {
                    let m: BTreeMap<String, String> = redis::cmd("HGETALL")
                        .arg(&k)
                        .query(&mut t.redis.admin())
                        .unwrap();
                    json!(m)
                }
                "list" => {
                    let l: Vec<String> = redis::cmd("LRANGE")
                        .arg(&k)
                        .arg(0)
                        .arg(-1)
                        .query(&mut t.redis.admin())
                        .unwrap();
                    json!(l)
                }
                "string" => {
                    let s: String = redis::cmd("GET")
                        .arg(&k)
                        .query(&mut t.redis.admin())
                        .unwrap();
                    json!(s)
                }
                other => json!(other),
            };
            (k, value)
        })
        .collect()
}
