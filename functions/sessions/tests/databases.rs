//! Issue 15 through the HTTP API: identities compare byte for byte on
//! every route and backend (#1), and `SESSION_BACKEND=cloudsql` with the
//! source project's `CLOUDSQL_*` variables over a Unix socket, on both
//! dialects, through the real binary (#9).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::AppContext;
use shared::config::{Config, Env};
use shared::testkit::{FunctionProcess, MariaDbServer, PostgresServer, RedisServer};
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_sessions");

/// Ids that a PAD SPACE, case-insensitive or normalising comparison takes
/// for one: every one is its own user, session, state key and memory.
const LOOKALIKES: [&str; 7] = [
    "alice",
    "alice ",
    " alice",
    "Alice",
    "ALICE",
    "jos\u{e9}",
    "jose\u{301}",
];

/// `id` as one path segment: every byte but the unreserved ones escaped.
fn seg(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The router on `backend` (`redis`, `memory`, `postgres`, `mariadb`),
/// with the servers it needs kept alive in the returned guard.
async fn app_on(backend: &str) -> (Router, Box<dyn std::any::Any>) {
    let redis = RedisServer::start();
    let (kind, url, guard): (&str, Option<String>, Box<dyn std::any::Any>) = match backend {
        "postgres" => {
            let pg = PostgresServer::start();
            let url = pg.create_database().await.expose().to_owned();
            ("sql", Some(url), Box::new(pg))
        }
        "mariadb" => {
            let maria = MariaDbServer::start();
            let url = maria.create_database().await.expose().to_owned();
            ("sql", Some(url), Box::new(maria))
        }
        other => (other, None, Box::new(())),
    };
    let lookup = move |name: &str| match name {
        "SESSION_BACKEND" | "MEMORY_BACKEND" => Some(kind.to_owned()),
        "DATABASE_URL" => url.clone(),
        "AUTH_MODE" => Some("none".to_owned()),
        _ => None,
    };
    let mut config = Config::from_lookup(&lookup).unwrap();
    config.redis = redis.config();
    let ctx = AppContext::new(config).unwrap();
    let stores = sessions::Stores::connect(&ctx, &Env::from_fn(&lookup))
        .await
        .unwrap();
    (sessions::app(ctx, stores), Box::new((redis, guard)))
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"))
    };
    (status, value)
}

fn texts(found: &Value) -> Vec<String> {
    found["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

fn event(id: &str, text: &str) -> Value {
    json!({"id": id, "author": "user", "content": {"role": "user", "parts": [{"text": text}]}})
}

/// Every route that takes an id, with ids that differ in one byte.
async fn every_route_tells_lookalike_ids_apart(backend: &str) {
    let (app, _servers) = app_on(backend).await;
    for u in LOOKALIKES {
        let (status, s) = call(
            &app,
            "POST",
            &format!("/apps/agent/users/{}/sessions", seg(u)),
            Some(json!({"session_id": "s", "state": {"owner": u, "user:owner": u}})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{backend} {u:?}: {s}");
        assert_eq!(s["user_id"], u);
    }
    for (i, u) in LOOKALIKES.iter().enumerate() {
        let base = format!("/apps/agent/users/{}", seg(u));
        let body = json!({"event": event("evt", &format!("hello number{i}")),});
        let mut body = body;
        body["event"]["actions"] = json!({"state_delta": {"user:seen": i}});
        let (status, appended) = call(
            &app,
            "POST",
            &format!("{base}/sessions/s/events"),
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{backend} {u:?}: {appended}");
        assert_eq!(appended["seq"], 1, "{backend} {u:?}: a session of its own");
        assert_eq!(appended["duplicate"], false, "{backend} {u:?}");
    }
    for (i, u) in LOOKALIKES.iter().enumerate() {
        let base = format!("/apps/agent/users/{}", seg(u));
        let (status, s) = call(&app, "GET", &format!("{base}/sessions/s"), None).await;
        assert_eq!(status, StatusCode::OK, "{backend} {u:?}");
        assert_eq!(s["user_id"], *u);
        assert_eq!(s["state"]["owner"], *u, "{backend}: {s}");
        assert_eq!(s["state"]["user:owner"], *u, "{backend}: {s}");
        assert_eq!(s["state"]["user:seen"], i, "{backend}: {s}");
        assert_eq!(s["events"].as_array().unwrap().len(), 1, "{backend} {u:?}");
        let (_, list) = call(&app, "GET", &format!("{base}/sessions"), None).await;
        let listed = list["sessions"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{backend} {u:?}: {list}");
        assert_eq!(listed[0]["user_id"], *u);
        let (status, state) = call(&app, "GET", &format!("{base}/state"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            state["state"],
            json!({"owner": u, "seen": i}),
            "{backend} {u:?}"
        );
        let (status, added) = call(
            &app,
            "POST",
            &format!("{base}/memory"),
            Some(json!({"session_id": "s"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{backend} {u:?}: {added}");
        assert_eq!(added["added"], 1);
    }
    for (i, u) in LOOKALIKES.iter().enumerate() {
        let base = format!("/apps/agent/users/{}", seg(u));
        let (status, found) = call(&app, "GET", &format!("{base}/memory?query=hello"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            texts(&found),
            [format!("hello number{i}")],
            "{backend} {u:?}"
        );
    }
    let (_, everyone) = call(&app, "GET", "/apps/agent/sessions", None).await;
    let users: BTreeSet<&str> = everyone["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, LOOKALIKES.into_iter().collect(), "{backend}");

    // Deleting the trailing-space user's session and memory leaves alice's.
    let spaced = format!("/apps/agent/users/{}", seg("alice "));
    let (status, _) = call(&app, "DELETE", &format!("{spaced}/sessions/s"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, "DELETE", &format!("{spaced}/memory/evt"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, "GET", &format!("{spaced}/sessions/s"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{backend}");
    let (_, found) = call(&app, "GET", &format!("{spaced}/memory?query=hello"), None).await;
    assert!(texts(&found).is_empty(), "{backend}: {found}");
    for u in LOOKALIKES.iter().filter(|u| **u != "alice ") {
        let base = format!("/apps/agent/users/{}", seg(u));
        let (status, _) = call(&app, "GET", &format!("{base}/sessions/s"), None).await;
        assert_eq!(status, StatusCode::OK, "{backend} {u:?}");
        let (_, found) = call(&app, "GET", &format!("{base}/memory?query=hello"), None).await;
        assert_eq!(texts(&found).len(), 1, "{backend} {u:?}");
    }

    // One user: session ids and memory (event) ids that differ in a byte.
    let bob = "/apps/agent/users/bob";
    for id in LOOKALIKES {
        let (status, s) = call(
            &app,
            "POST",
            &format!("{bob}/sessions"),
            Some(json!({"session_id": id, "state": {"id": id}})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{backend} {id:?}: {s}");
    }
    for id in LOOKALIKES {
        let (status, s) = call(&app, "GET", &format!("{bob}/sessions/{}", seg(id)), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(s["id"], id);
        assert_eq!(s["state"]["id"], id, "{backend}");
    }
    let events: Vec<Value> = LOOKALIKES
        .iter()
        .enumerate()
        .map(|(i, id)| event(id, &format!("memo{i}")))
        .collect();
    let (status, added) = call(
        &app,
        "POST",
        &format!("{bob}/memory"),
        Some(json!({"session_id": "notes", "events": events})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{backend}: {added}");
    assert_eq!(added["added"], LOOKALIKES.len());
    let query: Vec<String> = (0..LOOKALIKES.len()).map(|i| format!("memo{i}")).collect();
    let search = format!("{bob}/memory?query={}&limit=100", query.join("+"));
    let (_, found) = call(&app, "GET", &search, None).await;
    assert_eq!(texts(&found).len(), LOOKALIKES.len(), "{backend}: {found}");
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("{bob}/memory/{}", seg("jose\u{301}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, found) = call(&app, "GET", &search, None).await;
    let ids: BTreeSet<&str> = found["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["event_id"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = LOOKALIKES
        .into_iter()
        .filter(|id| *id != "jose\u{301}")
        .collect();
    assert_eq!(ids, expected, "{backend}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_tells_lookalike_ids_apart_on_redis() {
    every_route_tells_lookalike_ids_apart("redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_tells_lookalike_ids_apart_on_memory() {
    every_route_tells_lookalike_ids_apart("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_tells_lookalike_ids_apart_on_postgres() {
    every_route_tells_lookalike_ids_apart("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_tells_lookalike_ids_apart_on_mariadb() {
    every_route_tells_lookalike_ids_apart("mariadb").await;
}

/// The binary with `SESSION_BACKEND=cloudsql` and `CLOUDSQL_*` (no
/// `DATABASE_URL`) over the server's Unix socket: it starts, stores a
/// session and a memory, and never prints the password.
async fn cloudsql_over_a_unix_socket(vars: &[(&str, &str)]) {
    let redis = RedisServer::start();
    let mut env = vec![
        ("REDIS_URL", redis.url()),
        ("SESSION_BACKEND", "cloudsql".to_owned()),
        ("MEMORY_BACKEND", "cloudsql".to_owned()),
        ("CLOUDSQL_PASSWORD", "pw-7f3a-cloudsql".to_owned()),
        ("AUTH_MODE", "none".to_owned()),
    ];
    env.extend(vars.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut f = FunctionProcess::spawn(BIN, &env);
    f.wait_ready(Duration::from_secs(30)).await;
    let base = format!("{}/apps/agent/users/alice", f.base_url());
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/sessions"))
        .json(&json!({"session_id": "rollback"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", f.output());
    let appended = http
        .post(format!("{base}/sessions/rollback/events"))
        .json(&json!({"event": event("e1", "remember the cloudsql rollback")}))
        .send()
        .await
        .unwrap();
    assert_eq!(appended.status(), 200, "{}", f.output());
    let added = http
        .post(format!("{base}/memory"))
        .json(&json!({"session_id": "rollback"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200, "{}", f.output());
    let found: Value = http
        .get(format!("{base}/memory?query=cloudsql"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(texts(&found), ["remember the cloudsql rollback"]);
    assert!(f.output().contains("stores ready"), "{}", f.output());
    assert!(!f.output().contains("pw-7f3a"), "{}", f.output());
    assert_eq!(f.terminate(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudsql_variables_reach_postgres_over_its_unix_socket() {
    let pg = PostgresServer::start();
    let url = pg.create_database().await;
    let database = url.expose().rsplit('/').next().unwrap().to_owned();
    let socket_dir = pg.socket_dir().display().to_string();
    let port = pg.port().to_string();
    cloudsql_over_a_unix_socket(&[
        ("CLOUDSQL_UNIX_SOCKET", &socket_dir),
        // The socket file is named by the port (`.s.PGSQL.<port>`); a test
        // server's port is not 5432, so the dialect is named.
        ("CLOUDSQL_PORT", &port),
        ("CLOUDSQL_DIALECT", "postgres"),
        ("CLOUDSQL_DATABASE", &database),
        ("CLOUDSQL_USER", "postgres"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudsql_variables_reach_mariadb_over_its_unix_socket() {
    let maria = MariaDbServer::start();
    let url = maria.create_database().await;
    let database = url.expose().rsplit('/').next().unwrap().to_owned();
    let socket = maria.socket_path().display().to_string();
    cloudsql_over_a_unix_socket(&[
        ("CLOUDSQL_UNIX_SOCKET", &socket),
        ("CLOUDSQL_PORT", "3306"),
        ("CLOUDSQL_DATABASE", &database),
        ("CLOUDSQL_USER", "root"),
    ])
    .await;
}

#[test]
fn cloudsql_without_a_database_name_stops_with_a_clear_message() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut f = FunctionProcess::spawn(
        BIN,
        &[
            ("REDIS_URL", &url),
            ("SESSION_BACKEND", "cloudsql"),
            ("CLOUDSQL_HOST", "127.0.0.1"),
            ("CLOUDSQL_PORT", "5432"),
            ("CLOUDSQL_USER", "agent"),
            ("CLOUDSQL_PASSWORD", "pw-7f3a-cloudsql"),
        ],
    );
    let code = f.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(2), "{}", f.output());
    assert!(f.output().contains("CLOUDSQL_DATABASE"), "{}", f.output());
    assert!(!f.output().contains("pw-7f3a"), "{}", f.output());
}
