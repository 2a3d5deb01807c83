//! Redis failing during a request: `503` with `Retry-After`, nothing
//! partial, and a retry that gives the right result. Also: no patient
//! data in any log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use serde_json::{Value, json};
use shared::testkit::{CapturedLogs, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{Reply, app_for, patient, post, send, spawn_app, status};

const URI: &str = "/practices/c/patients/sync";

/// Sends the request until Redis answers again (not `503`), for at most 10 s.
async fn retry_until_served(app: &Router, body: &Value, key: &str) -> Reply {
    let started = Instant::now();
    loop {
        let reply = send(app, post(URI, body, &[("Idempotency-Key", key)])).await;
        if reply.status != 503 || started.elapsed() > Duration::from_secs(10) {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_unavailable(reply: &Reply) {
    reply.assert_error(503, "redis_unavailable");
    assert!(
        reply.retry_after().is_some_and(|s| s >= 1),
        "{:?}",
        reply.headers
    );
    assert!(
        ["connect", "timeout", "circuit_open"]
            .contains(&reply.body["error"]["type"].as_str().unwrap()),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn redis_stopped_mid_request_is_503_and_a_retry_after_restart_gives_the_right_result() {
    let mut t = spawn_app(&[("REDIS_COMMAND_TIMEOUT_MS", "500")]);
    let body = json!({"patients": [patient("p1", "Jo"), patient("p2", "Al")]});
    // Connected and scripts loaded, as in steady operation.
    assert_eq!(
        send(&t.app, post("/practices/warm/patients/sync", &body, &[]))
            .await
            .status,
        200
    );

    t.redis.pause();
    let app = t.app.clone();
    let request_body = body.clone();
    let started = Instant::now();
    let in_flight = tokio::spawn(async move {
        send(&app, post(URI, &request_body, &[("Idempotency-Key", "k1")])).await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    t.redis.stop(); // dies while the request waits on it
    let reply = in_flight.await.unwrap();
    assert_unavailable(&reply);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered within the request deadline"
    );

    t.redis.restart();
    let retry = retry_until_served(&t.app, &body, "k1").await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(
        retry.body,
        json!({"received": 2, "changed": 2, "unchanged": 0, "queued": 2})
    );
    let s = status(&t.app, "c").await;
    assert_eq!(s["patients_tracked"], 2);
    assert_eq!(s["changes_pending"], 2);
}

#[tokio::test]
async fn redis_down_before_the_request_is_503_and_nothing_is_stored_or_acknowledged() {
    let mut t = spawn_app(&[("REDIS_COMMAND_TIMEOUT_MS", "500")]);
    let body = json!({"patients": [patient("p1", "Jo")]});
    send(&t.app, post(URI, &body, &[])).await;
    let claim = crate::claim(&t.app, "c", 1).await;
    let ids = crate::claim_ids(&claim);
    t.redis.pause();
    let reply = crate::ack(&t.app, "c", &[&ids[0]]).await;
    assert_unavailable(&reply);
    let reply = send(
        &t.app,
        post(URI, &json!({"patients": [patient("p2", "Al")]}), &[]),
    )
    .await;
    assert_unavailable(&reply);
    t.redis.resume();
    // The ack and the sync sent before the pause timed out on the client;
    // whatever the server ran afterwards ran whole. Here the rate-limit check
    // of the sync is what timed out, so the sync itself never ran.
    let started = Instant::now();
    let s = loop {
        let reply = send(&t.app, crate::get("/practices/c/sync/status")).await;
        if reply.status == 200 || started.elapsed() > Duration::from_secs(10) {
            break reply.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(s["patients_tracked"], 1, "{s}");
}

/// A TCP proxy to Redis that, once armed, forwards the command containing
/// `marker` but throws away the server's reply and closes the connection:
/// the write happened, the client never hears of it.
struct ReplyCutter {
    port: u16,
    armed: Arc<AtomicBool>,
}

impl ReplyCutter {
    async fn start(upstream: u16, marker: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let trigger = armed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                tokio::spawn(pump(client, server, marker, trigger.clone()));
            }
        });
        Self { port, armed }
    }
}

async fn pump(client: TcpStream, server: TcpStream, marker: &'static [u8], armed: Arc<AtomicBool>) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let cut = Arc::new(AtomicBool::new(false));
    let cut_up = cut.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if buf[..n].windows(marker.len()).any(|w| w == marker)
                && armed.swap(false, Ordering::SeqCst)
            {
                cut_up.store(true, Ordering::SeqCst);
            }
            if server_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match server_rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            break; // the reply is lost with the connection
        }
        if client_tx.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    up.abort();
}

#[tokio::test]
async fn a_reply_lost_after_the_sync_ran_is_503_and_the_retry_replays_the_first_response() {
    let redis = RedisServer::start();
    let cutter = ReplyCutter::start(redis.port(), b"cut-reply-here").await;
    let app = app_for(&format!("redis://127.0.0.1:{}", cutter.port), &[]);
    let body = json!({"patients": [patient("cut-reply-here", "Jo"), patient("p2", "Al")]});
    // Scripts loaded, so the sync goes out as one EVALSHA.
    send(
        &app,
        post(
            "/practices/warm/patients/sync",
            &body,
            &[("Idempotency-Key", "w")],
        ),
    )
    .await;

    cutter.armed.store(true, Ordering::SeqCst);
    let first = send(&app, post(URI, &body, &[("Idempotency-Key", "k1")])).await;
    assert_unavailable(&first);
    assert!(
        !cutter.armed.load(Ordering::SeqCst),
        "the sync command went through the proxy"
    );
    // It did run, whole: both hashes are stored.
    let stored: u64 = redis::cmd("HLEN")
        .arg("ws:{c}:patients")
        .query(&mut redis.admin())
        .unwrap();
    assert_eq!(stored, 2);

    let retry = retry_until_served(&app, &body, "k1").await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(
        retry.body,
        json!({"received": 2, "changed": 2, "unchanged": 0, "queued": 2}),
        "the first response, not a second processing"
    );
    assert_eq!(status(&app, "c").await["changes_pending"], 2, "queued once");
}

#[tokio::test]
async fn no_field_or_id_of_a_patient_reaches_a_log_line_or_an_error() {
    let logs = CapturedLogs::default();
    shared::telemetry::init_with_writer(
        "patient_sync",
        shared::config::LogFormat::Json,
        "trace",
        logs.clone(),
    );
    let mut t = spawn_app(&[("REDIS_COMMAND_TIMEOUT_MS", "300")]);
    let secret = json!({"id": "ID-SECRET-7", "name": "NAME-SECRET", "ssn": "SSN-SECRET"});
    let mut texts = Vec::new();
    let key = [("Idempotency-Key", "k")];
    texts.push(
        send(&t.app, post(URI, &json!({"patients": [secret]}), &key))
            .await
            .text,
    );
    texts.push(
        send(&t.app, post(URI, &json!({"patients": [secret]}), &key))
            .await
            .text,
    );
    let changed = json!({"id": "ID-SECRET-7", "name": "NAME-SECRET-2"});
    texts.push(
        send(&t.app, post(URI, &json!({"patients": [changed]}), &key))
            .await
            .text,
    );
    texts.push(
        send(
            &t.app,
            post(URI, &json!({"patients": [secret, secret]}), &[]),
        )
        .await
        .text,
    );
    texts.push(
        send(
            &t.app,
            post(URI, &json!({"patients": [{"name": "NAME-SECRET"}]}), &[]),
        )
        .await
        .text,
    );
    crate::drain(&t.app, "c").await;
    t.redis.stop();
    texts.push(
        send(&t.app, post(URI, &json!({"patients": [secret]}), &[]))
            .await
            .text,
    );
    let logged = logs.text();
    assert!(logged.contains("patients synced"), "{logged}");
    assert!(logged.contains("request failed"), "{logged}");
    for text in texts.iter().map(String::as_str).chain([logged.as_str()]) {
        for marker in ["ID-SECRET", "NAME-SECRET", "SSN-SECRET"] {
            assert!(!text.contains(marker), "{marker} in: {text}");
        }
    }
}

/// The managed "primary endpoint" flips after a failover (ElastiCache,
/// Memorystore): the function's connection still reaches the demoted
/// primary, which answers writes with `READONLY`. The next sync must land
/// on the new primary, and `/redis-health` must say so, at once.
#[tokio::test]
async fn a_failover_behind_the_primary_endpoint_costs_no_sync() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    b.replicate(&a);
    let proxy = shared::testkit::TcpProxy::start(a.port());
    let app = app_for(&proxy.url(), &[]);
    let one = json!({"patients": [patient("p-1", "Ada")]});
    let uri = "/practices/clinic-1/patients/sync";
    assert_eq!(send(&app, post(uri, &one, &[])).await.status, 200);
    assert_eq!(send(&app, crate::get("/redis-health")).await.status, 200);

    b.promote();
    a.replicate(&b);
    proxy.set_upstream(b.port());

    let two = json!({"patients": [patient("p-1", "Ada"), patient("p-2", "Ben")]});
    let reply = send(&app, post(uri, &two, &[])).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let health = send(&app, crate::get("/redis-health")).await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.body["role"], "master", "{}", health.text);
    assert!(
        b.all_keys().iter().any(|k| k.contains("clinic-1")),
        "the sync reached the new primary"
    );
}
