//! The health probe: real values when up, a bounded failure when not.

use std::time::{Duration, Instant};

use shared::ErrorKind;
use shared::redis::HealthCheck;
use shared::testkit::{BlackHole, RedisServer};

use crate::{client_for_url, client_with, time_until_ok};

#[tokio::test]
async fn reports_real_server_values() {
    let server = RedisServer::start();
    let client = server.client();
    let report = HealthCheck::new(client.clone()).check().await;
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
    // The probe has a connection of its own, outside the pool: a probe
    // never waits behind application commands.
    assert_eq!(report.pool.open, 0);
    assert_eq!(report.role.as_deref(), Some("master"));
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
        assert!(HealthCheck::new(client.clone()).check().await.is_healthy());
    }
    stopped.stop();
    paused.pause();
    for (name, client, kind) in &clients {
        let started = Instant::now();
        let report = HealthCheck::new(client.clone()).check().await;
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
    assert!(HealthCheck::new(client.clone()).check().await.is_healthy());
    server.stop();
    assert!(!HealthCheck::new(client.clone()).check().await.is_healthy());
    server.restart();
    let took = time_until_ok(Duration::from_secs(5), || async {
        let report = HealthCheck::new(client.clone()).check().await;
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
    assert!(HealthCheck::new(client.clone()).check().await.is_healthy());
    server.pause();
    for _ in 0..3 {
        assert!(!HealthCheck::new(client.clone()).check().await.is_healthy());
    }
    server.resume();
    let took = time_until_ok(Duration::from_secs(5), || async {
        let report = HealthCheck::new(client.clone()).check().await;
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

/// `calls` of PING and of INFO in `INFO commandstats`, read at once. That
/// INFO is not counted in its own reply; it is in the next one.
fn ping_and_info_calls(server: &RedisServer) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.admin())
        .unwrap();
    let calls = |command: &str| {
        shared::redis::info::info_field(&info, &format!("cmdstat_{command}"))
            .and_then(|v| v.split(',').find_map(|p| p.strip_prefix("calls=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (calls("ping"), calls("info"))
}

#[tokio::test]
async fn info_facts_are_reused_for_a_second_and_reread_after_a_failure() {
    let mut server = RedisServer::start();
    let health = HealthCheck::new(server.client());
    for _ in 0..5 {
        let report = health.check().await;
        assert!(report.is_healthy(), "{report:?}");
        assert_eq!(report.connected_clients, Some(1));
        assert!(report.redis_version.is_some());
    }
    // Every probe PINGs and reads its role (INFO replication); INFO server
    // and INFO clients were read by the first probe only. The first
    // connection also asked whether the server is a cluster (INFO cluster).
    let (pings, infos) = ping_and_info_calls(&server);
    assert!(pings >= 5, "{pings} PINGs");
    assert_eq!(
        infos,
        1 + 5 + 2,
        "topology, five roles, one read of the facts"
    );

    // After the facts' age, the next probe reads them again.
    tokio::time::sleep(shared::redis::health::FACTS_MAX_AGE + Duration::from_millis(100)).await;
    assert!(health.check().await.is_healthy());
    assert_eq!(
        ping_and_info_calls(&server).1,
        8 + 1 + 1 + 2,
        "before, this test's INFO, the probe's role and facts"
    );

    // A failed probe forgets them: the restarted server is asked afresh.
    server.stop();
    assert!(!health.check().await.is_healthy());
    server.restart();
    let mut report = health.check().await;
    for _ in 0..100 {
        if report.is_healthy() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        report = health.check().await;
    }
    assert!(report.is_healthy(), "{report:?}");
    assert!(report.redis_version.is_some());
    assert_eq!(
        ping_and_info_calls(&server).1,
        1 + 2,
        "the new server was asked for its role and its facts"
    );
}
