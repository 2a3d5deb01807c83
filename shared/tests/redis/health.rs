//! The health probe: real values when up, a bounded failure when not.

use std::time::{Duration, Instant};

use shared::ErrorKind;
use shared::health::check;
use shared::testkit::{BlackHole, RedisServer};

use crate::{client_for_url, client_with, time_until_ok};

#[tokio::test]
async fn reports_real_server_values() {
    let server = RedisServer::start();
    let client = server.client();
    let report = check(&client).await;
    assert!(report.is_healthy(), "{report:?}");
    assert_eq!(report.status, "healthy");
    assert_eq!(report.ping.as_deref(), Some("PONG"));
    assert_eq!(report.connected_clients, Some(1));
    assert!(
        report
            .redis_version
            .as_deref()
            .is_some_and(|v| v.contains('.'))
    );
    assert_eq!(report.redis_mode.as_deref(), Some("standalone"));
    assert!(report.latency_ms > 0.0);
    assert_eq!(report.pool.open, 1);
}

#[tokio::test]
async fn unhealthy_within_the_deadline_when_stopped_paused_or_black_holed() {
    let mut stopped = RedisServer::start();
    let mut paused = RedisServer::start();
    let hole = BlackHole::bind();
    let deadline = Duration::from_millis(500);
    let clients = [
        ("stopped", client_with(&stopped, |_| {}), ErrorKind::Connect),
        ("paused", client_with(&paused, |_| {}), ErrorKind::Timeout),
        (
            "black hole",
            client_for_url(&hole.url(), |_| {}),
            ErrorKind::Timeout,
        ),
    ];
    for (_, client, _) in &clients[..2] {
        assert!(check(client).await.is_healthy());
    }
    stopped.stop();
    paused.pause();
    for (name, client, kind) in &clients {
        let started = Instant::now();
        let report = check(client).await;
        let took = started.elapsed();
        assert!(!report.is_healthy(), "{name}: {report:?}");
        assert_eq!(report.error_type, Some(*kind), "{name}: {report:?}");
        assert!(
            took < deadline + Duration::from_millis(300),
            "{name}: took {took:?}"
        );
        let error = report.error.unwrap();
        assert!(!error.is_empty());
    }
    paused.resume();
}

#[tokio::test]
async fn healthy_again_soon_after_a_restart() {
    let mut server = RedisServer::start();
    let client = server.client();
    assert!(check(&client).await.is_healthy());
    server.stop();
    assert!(!check(&client).await.is_healthy());
    server.restart();
    let took = time_until_ok(Duration::from_secs(5), || async {
        let report = check(&client).await;
        if report.is_healthy() {
            Ok(())
        } else {
            Err(report)
        }
    })
    .await
    .expect("not healthy within 5 s of the restart");
    assert!(took < Duration::from_secs(2), "healthy after {took:?}");
}

#[tokio::test]
async fn healthy_again_after_a_pause_ends() {
    let mut server = RedisServer::start();
    let client = server.client();
    assert!(check(&client).await.is_healthy());
    server.pause();
    for _ in 0..3 {
        assert!(!check(&client).await.is_healthy());
    }
    server.resume();
    let took = time_until_ok(Duration::from_secs(5), || async {
        let report = check(&client).await;
        if report.is_healthy() {
            Ok(())
        } else {
            Err(report)
        }
    })
    .await
    .expect("not healthy within 5 s of the resume");
    assert!(took < Duration::from_secs(2), "healthy after {took:?}");
}
