//! The fallback combinator and the circuit breaker against a Redis that dies
//! and comes back.

use std::time::{Duration, Instant};

use shared::ErrorKind;
use shared::blocks::fallback::with_fallback;
use shared::redis::breaker::CircuitState;
use shared::testkit::RedisServer;

use crate::{client_with, round_trip};

async fn read_counter(client: &shared::RedisClient) -> shared::blocks::fallback::WithFallback<i64> {
    with_fallback(client, "test.counter", -1, |mut c| async move {
        redis::cmd("INCR").arg("counter").query_async(&mut c).await
    })
    .await
}

#[tokio::test]
async fn fallback_returns_redis_value_then_the_fallback_when_redis_is_down() {
    let mut server = RedisServer::start();
    let client = server.client();
    let ok = read_counter(&client).await;
    assert_eq!(ok.value, 1);
    assert!(!ok.is_fallback());
    server.stop();
    let down = read_counter(&client).await;
    assert_eq!(down.value, -1);
    assert_eq!(down.failure.unwrap().kind(), ErrorKind::Connect);
    assert_eq!(client.metrics().fallbacks, 1);
}

#[tokio::test]
async fn circuit_opens_after_k_failures_fails_fast_and_closes_after_a_probe() {
    let mut server = RedisServer::start();
    let client = client_with(&server, |c| {
        c.breaker_threshold = 3;
        c.breaker_cooldown = Duration::from_millis(400);
    });
    round_trip(&client, "k").await.unwrap();
    server.stop();
    // The connection the stop dropped is not itself a failure of Redis (it
    // may be noticed before or by the first operation); the three refused
    // reconnects that follow are, and open the circuit.
    let mut failures = 0;
    while client.circuit().state != CircuitState::Open {
        assert_eq!(
            round_trip(&client, "k").await.unwrap_err().kind(),
            ErrorKind::Connect
        );
        failures += 1;
        assert!(failures <= 4, "still closed after {failures} failures");
    }
    assert!(failures >= 3, "opened after {failures} failures");
    let ops_before = client.metrics().operations;

    // Open: fails fast, Redis is not tried, the fallback is returned.
    let started = Instant::now();
    let skipped = read_counter(&client).await;
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(skipped.value, -1);
    assert_eq!(skipped.failure.unwrap().kind(), ErrorKind::CircuitOpen);
    assert_eq!(
        client.metrics().operations,
        ops_before,
        "no round trip while open"
    );
    assert_eq!(client.metrics().circuit_rejections, 1);

    // After the cool-down one probe goes through; its success closes the circuit.
    server.restart();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(client.circuit().state, CircuitState::HalfOpen);
    let probe = read_counter(&client).await;
    assert_eq!(probe.value, 1, "fresh server after restart");
    assert_eq!(client.circuit().state, CircuitState::Closed);
    assert_eq!(read_counter(&client).await.value, 2);
}

#[tokio::test]
async fn a_failed_probe_keeps_the_circuit_open() {
    let mut server = RedisServer::start();
    let client = client_with(&server, |c| {
        c.breaker_threshold = 1;
        c.breaker_cooldown = Duration::from_millis(200);
    });
    server.stop();
    assert!(round_trip(&client, "k").await.is_err());
    assert_eq!(client.circuit().state, CircuitState::Open);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let probe = round_trip(&client, "k").await.unwrap_err();
    assert_eq!(
        probe.kind(),
        ErrorKind::Connect,
        "the probe reached for Redis"
    );
    assert_eq!(client.circuit().state, CircuitState::Open);
    assert_eq!(client.circuit().opened_total, 2);
}

#[tokio::test]
async fn one_dropped_connection_failing_many_operations_does_not_open_the_circuit() {
    let server = RedisServer::start();
    let client = client_with(&server, |c| {
        c.breaker_threshold = 3;
        c.max_connections = 1;
    });
    round_trip(&client, "k").await.unwrap();
    // Fifty operations in flight on the one multiplexed connection.
    let blocked: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .run(|mut c| async move {
                        redis::cmd("BLPOP")
                            .arg(format!("empty{i}"))
                            .arg(0.8)
                            .query_async::<Option<(String, String)>>(&mut c)
                            .await
                    })
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(server.kill_clients() >= 1);
    let mut failed = 0;
    for task in blocked {
        if task.await.unwrap().is_err() {
            failed += 1;
        }
    }
    assert_eq!(
        failed, 50,
        "every operation on the dropped connection failed"
    );
    let circuit = client.circuit();
    assert_eq!(circuit.state, CircuitState::Closed, "{circuit:?}");
    assert!(circuit.consecutive_failures <= 1, "{circuit:?}");
    round_trip(&client, "k").await.unwrap();
    assert_eq!(client.circuit().consecutive_failures, 0);
}
