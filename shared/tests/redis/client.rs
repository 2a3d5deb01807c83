//! The pooled client: laziness, reuse, concurrency, faults and recovery.

use std::time::{Duration, Instant};

use shared::ErrorKind;
use shared::testkit::{BlackHole, RedisServer};

use crate::{client_for_url, client_with, connections_received, round_trip, time_until_ok};

#[tokio::test]
async fn no_connection_is_made_before_first_use() {
    let server = RedisServer::start();
    let before = connections_received(&server);
    let client = client_with(&server, |c| c.max_connections = 4);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Only the test's own INFO connections have arrived.
    assert_eq!(connections_received(&server), before + 1);
    assert_eq!(client.pool().open, 0);
    round_trip(&client, "k").await.unwrap();
    assert_eq!(client.pool().open, 1);
    assert_eq!(
        server.client_count(),
        1,
        "one connection, made on first use"
    );
}

#[tokio::test]
async fn a_thousand_sequential_operations_reuse_the_same_connections() {
    let server = RedisServer::start();
    let client = client_with(&server, |c| c.max_connections = 4);
    for i in 0..10 {
        round_trip(&client, &format!("warm{i}")).await.unwrap();
    }
    let after_warmup = connections_received(&server);
    for i in 0..1_000 {
        round_trip(&client, &format!("k{i}")).await.unwrap();
    }
    // The only new connection is this assertion's own INFO.
    assert_eq!(connections_received(&server), after_warmup + 1);
    assert_eq!(server.client_count(), 4);
    assert_eq!(client.metrics().operations, 2 * 1_010);
}

#[tokio::test]
async fn two_hundred_concurrent_operations_all_succeed_on_one_connection() {
    let server = RedisServer::start();
    let client = client_with(&server, |c| c.max_connections = 1);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { round_trip(&client, &format!("c{i}")).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "v");
    }
    assert_eq!(server.client_count(), 1);
}

/// Concurrent single commands are written in batches (shared/src/batch.rs):
/// each caller must still get its own reply, and one caller's error reply
/// must not reach the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_each_get_their_own_reply_and_error() {
    let server = RedisServer::start();
    let client = client_with(&server, |c| c.max_connections = 1);
    let mut admin = server.admin();
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("ws:{{t}}:k{i}"))
            .arg(i)
            .query(&mut admin)
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("ws:{t}:text")
        .arg("not a number")
        .query(&mut admin)
        .unwrap();
    drop(admin);
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                if i % 10 == 7 {
                    // INCR of a non-number: an error reply for this caller only.
                    let r: Result<i64, _> = client
                        .run(|mut c| async move {
                            redis::cmd("INCR")
                                .arg("ws:{t}:text")
                                .query_async(&mut c)
                                .await
                        })
                        .await;
                    (i, r.map(|_| -1))
                } else {
                    let r: Result<i64, _> = client
                        .run(|mut c| async move {
                            redis::cmd("GET")
                                .arg(format!("ws:{{t}}:k{i}"))
                                .query_async(&mut c)
                                .await
                        })
                        .await;
                    (i, r)
                }
            })
        })
        .collect();
    for task in tasks {
        let (i, result) = task.await.unwrap();
        if i % 10 == 7 {
            assert!(
                result.is_err(),
                "caller {i} should have had the error reply"
            );
        } else {
            assert_eq!(result.unwrap(), i as i64, "caller {i} got another's reply");
        }
    }
    assert_eq!(server.client_count(), 1);
}

#[tokio::test]
async fn operations_fail_within_the_deadline_when_redis_is_paused() {
    let mut server = RedisServer::start();
    let client = client_with(&server, |c| {
        c.command_timeout = Duration::from_millis(300);
        c.breaker_threshold = 0;
    });
    round_trip(&client, "k").await.unwrap();
    server.pause();
    let started = Instant::now();
    let err = round_trip(&client, "k").await.unwrap_err();
    let elapsed = started.elapsed();
    server.resume();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(elapsed < Duration::from_millis(1_000), "took {elapsed:?}");
}

#[tokio::test]
async fn a_connection_that_keeps_timing_out_is_replaced() {
    let mut server = RedisServer::start();
    let client = client_with(&server, |c| {
        c.command_timeout = Duration::from_millis(200);
        c.breaker_threshold = 0;
    });
    round_trip(&client, "k").await.unwrap();
    server.pause();
    for _ in 0..2 {
        assert_eq!(
            round_trip(&client, "k").await.unwrap_err().kind(),
            ErrorKind::Timeout
        );
    }
    assert_eq!(client.metrics().connections_replaced, 1);
    assert_eq!(
        client.pool().open,
        0,
        "the half-open connection was dropped"
    );
    server.resume();
    round_trip(&client, "k").await.unwrap();
    assert_eq!(client.pool().open, 1);
}

#[tokio::test]
async fn recovers_after_a_restart_without_a_new_client() {
    let mut server = RedisServer::start();
    let client = server.client();
    round_trip(&client, "k").await.unwrap();
    server.stop();
    let err = round_trip(&client, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    server.restart();
    let took = time_until_ok(Duration::from_secs(5), || round_trip(&client, "k")).await;
    let took = took.expect("the client did not recover within 5 s of the restart");
    assert!(took < Duration::from_secs(2), "recovered after {took:?}");
}

#[tokio::test]
async fn recovers_after_its_connections_are_killed() {
    let server = RedisServer::start();
    let client = client_with(&server, |c| c.max_connections = 2);
    for i in 0..4 {
        round_trip(&client, &format!("k{i}")).await.unwrap();
    }
    assert_eq!(server.kill_clients(), 2);
    let took = time_until_ok(Duration::from_secs(5), || round_trip(&client, "k")).await;
    assert!(took.is_some(), "no recovery after CLIENT KILL");
    for i in 0..20 {
        round_trip(&client, &format!("after{i}")).await.unwrap();
    }
}

#[tokio::test]
async fn a_listener_that_never_answers_times_out() {
    let hole = BlackHole::bind();
    let client = client_for_url(&hole.url(), |c| {
        c.command_timeout = Duration::from_millis(300)
    });
    let started = Instant::now();
    let err = round_trip(&client, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_closed_port_fails_fast_as_connect() {
    let port = shared::testkit::free_port();
    let client = client_for_url(&format!("redis://127.0.0.1:{port}"), |_| {});
    let started = Instant::now();
    let err = round_trip(&client, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_that_never_shows_the_password() {
    let server = RedisServer::builder()
        .password("right-password-1234")
        .start();
    let client = client_with(&server, |c| {
        c.password = Some(shared::Secret::new("wrong-password-5678"));
    });
    let err = round_trip(&client, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let shown = format!("{err} {err:?} {client:?}");
    assert!(
        !shown.contains("wrong-password-5678") && !shown.contains("right-password"),
        "{shown}"
    );
    // With the right one it works.
    round_trip(&server.client(), "k").await.unwrap();
}

#[tokio::test]
async fn every_round_trip_is_counted_with_its_outcome() {
    let mut server = RedisServer::start();
    let client = client_with(&server, |c| c.breaker_threshold = 0);
    for i in 0..25 {
        round_trip(&client, &format!("k{i}")).await.unwrap();
    }
    let m = client.metrics();
    assert_eq!(m.operations, 50);
    assert_eq!(m.errors.total(), 0);
    assert_eq!(m.latency.count, 50);
    assert!(m.latency.p50_ms > 0.0 && m.latency.p99_ms >= m.latency.p50_ms);
    server.stop();
    let _ = round_trip(&client, "k").await;
    let m = client.metrics();
    assert_eq!(m.operations, 51);
    assert_eq!(m.errors.connect, 1);
}
