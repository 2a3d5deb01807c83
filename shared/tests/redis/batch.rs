//! The write batcher's promises, against a real server stalled with SIGSTOP:
//! work whose caller has gone is never written, a retry never overtakes the
//! command it retries, the queue is bounded, and no caller waits past its
//! own deadline.

use std::time::{Duration, Instant};

use shared::ErrorKind;
use shared::testkit::{RedisMonitor, RedisServer};

use crate::client_with;

async fn set_with(
    client: &shared::RedisClient,
    budget: Option<Duration>,
    key: &'static str,
    value: &'static str,
) -> Result<(), shared::RedisFailure> {
    let mut conn = match budget {
        Some(budget) => client.conn_with_deadline(budget),
        None => client.conn()?,
    };
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .exec_async(&mut conn)
        .await
        .map_err(Into::into)
}

/// A server and a client for it (3 s deadlines, no circuit breaker) that
/// has already written once, so its connection is up.
async fn warm_server_and_client() -> (RedisServer, shared::RedisClient) {
    let server = RedisServer::start();
    let client = client_with(&server, |c| {
        c.command_timeout = Duration::from_secs(3);
        c.breaker_threshold = 0;
    });
    set_with(&client, None, "warm", "1").await.unwrap();
    (server, client)
}

/// `SET key value` with the default deadline, in a task of its own.
fn spawn_set(
    client: &shared::RedisClient,
    key: &'static str,
    value: &'static str,
) -> tokio::task::JoinHandle<Result<(), shared::RedisFailure>> {
    let client = client.clone();
    tokio::spawn(async move { set_with(&client, None, key, value).await })
}

#[tokio::test]
async fn abandoned_work_is_never_written_and_a_retry_never_overtakes_it() {
    let (mut server, client) = warm_server_and_client().await;
    let monitor = RedisMonitor::start(&server);
    server.pause();
    // A goes straight to the stalled connection; B is queued and kept back
    // (the connection has not answered since); C queues behind B and gives
    // up.
    let a = spawn_set(&client, "a", "1");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let b = spawn_set(&client, "b", "1");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let abandoned = set_with(&client, Some(Duration::from_millis(100)), "c", "old").await;
    assert_eq!(abandoned.unwrap_err().kind(), ErrorKind::Timeout);
    // The caller retries with the value it means now.
    let retry = spawn_set(&client, "c", "new");
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.resume();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    retry.await.unwrap().unwrap();
    let c: String = redis::cmd("GET")
        .arg("c")
        .query(&mut server.admin())
        .unwrap();
    assert_eq!(c, "new", "the retry landed last");
    let lines = monitor.take();
    assert!(
        lines.iter().any(|l| l.contains("\"new\"")),
        "the monitor saw the retry: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("\"old\"")),
        "the abandoned command was written: {lines:?}"
    );
}

/// Batches follow each other without waiting for replies only while the
/// server answers: behind a connection that has stopped answering, a new
/// batch is kept back, so a caller that gives up meanwhile is never written.
#[tokio::test]
async fn work_queued_behind_a_connection_that_stopped_answering_is_kept_back() {
    let (mut server, client) = warm_server_and_client().await;
    let monitor = RedisMonitor::start(&server);
    server.pause();
    let a = spawn_set(&client, "a", "1");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let given_up = set_with(&client, Some(Duration::from_millis(100)), "b", "given-up").await;
    assert_eq!(given_up.unwrap_err().kind(), ErrorKind::Timeout);
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.resume();
    a.await.unwrap().unwrap();
    set_with(&client, None, "after", "1").await.unwrap();
    let lines = monitor.take();
    assert!(
        lines.iter().any(|l| l.contains("\"after\"")),
        "the monitor saw the later write: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("given-up")),
        "a command given up while kept back was written: {lines:?}"
    );
}

#[tokio::test]
async fn past_the_bound_a_command_fails_fast_as_overloaded_and_is_counted() {
    let mut server = RedisServer::start();
    let client = client_with(&server, |c| {
        c.command_timeout = Duration::from_secs(2);
        c.max_queued = 3;
        c.breaker_threshold = 0;
    });
    set_with(&client, None, "warm", "1").await.unwrap();
    server.pause();
    let held: Vec<_> = ["x", "y", "z"]
        .into_iter()
        .map(|key| {
            let client = client.clone();
            tokio::spawn(async move { set_with(&client, None, key, "1").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let err = set_with(&client, None, "over", "1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded, "{err}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(client.metrics().overload_rejections, 1);
    server.resume();
    for op in held {
        op.await.unwrap().unwrap();
    }
    set_with(&client, None, "after", "1").await.unwrap();
}

#[tokio::test]
async fn no_caller_waits_past_its_own_deadline_whatever_its_batch_allows() {
    let (mut server, client) = warm_server_and_client().await;
    server.pause();
    // Long deadlines and one short one, batched together behind a stall.
    let long: Vec<_> = ["l1", "l2", "l3"]
        .into_iter()
        .map(|key| {
            let client = client.clone();
            tokio::spawn(async move { set_with(&client, None, key, "1").await })
        })
        .collect();
    let started = Instant::now();
    let short = set_with(&client, Some(Duration::from_millis(150)), "short", "1").await;
    let took = started.elapsed();
    assert_eq!(short.unwrap_err().kind(), ErrorKind::Timeout);
    assert!(took < Duration::from_millis(250), "took {took:?}");
    server.resume();
    for op in long {
        op.await.unwrap().unwrap();
    }
}

/// The same behind a command sent directly that waits for a frozen server,
/// after the queue has emptied once: each queued caller is answered at its
/// own deadline, not at the direct command's.
#[tokio::test]
async fn a_caller_queued_behind_a_stuck_direct_command_is_answered_at_its_deadline() {
    let (mut server, client) = warm_server_and_client().await;
    server.pause();
    let direct = spawn_set(&client, "direct", "1");
    tokio::time::sleep(Duration::from_millis(30)).await;
    for key in ["first", "second"] {
        let started = Instant::now();
        let err = set_with(&client, Some(Duration::from_millis(100)), key, "1")
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{key}: {err}");
        assert!(took < Duration::from_millis(250), "{key} took {took:?}");
    }
    server.resume();
    direct.await.unwrap().unwrap();
}

/// One write of the load test's callers: its value and whether it was
/// acknowledged.
struct Attempt {
    value: u64,
    acknowledged: bool,
}

/// Batches follow each other on the connection without waiting for each
/// other's replies; a server frozen under load must not reorder anything:
/// each caller's writes (16 callers, one connection, deadlines short enough
/// that callers give up during the freeze and write again) reach Redis in
/// the order the caller made them, and every acknowledged write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_through_a_freeze_each_callers_writes_land_in_its_order() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    const CALLERS: usize = 16;
    let mut server = RedisServer::start();
    let client = client_with(&server, |c| {
        c.max_connections = 1;
        c.breaker_threshold = 0;
    });
    set_with(&client, None, "warm", "1").await.unwrap();
    let monitor = RedisMonitor::start(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let client = client.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut attempts = Vec::new();
                let mut value = 0u64;
                while !stop.load(Relaxed) {
                    let mut conn = client.conn_with_deadline(Duration::from_millis(120));
                    let outcome: Result<(), _> = redis::cmd("SET")
                        .arg(format!("load:{i}"))
                        .arg(value)
                        .exec_async(&mut conn)
                        .await;
                    attempts.push(Attempt {
                        value,
                        acknowledged: outcome.is_ok(),
                    });
                    value += 1;
                    if outcome.is_err() {
                        // Fail-fast errors (no connection yet) would spin.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                attempts
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.resume();
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Relaxed);
    let mut logs = Vec::new();
    for caller in callers {
        logs.push(caller.await.unwrap());
    }
    let seen = monitor.take();
    let mut given_up = 0;
    for (i, attempts) in logs.iter().enumerate() {
        let prefix = format!("\"SET\" \"load:{i}\" \"");
        let written: Vec<u64> = seen
            .iter()
            .filter_map(|line| line.strip_prefix(&prefix))
            .map(|rest| rest.trim_end_matches('"').parse().unwrap())
            .collect();
        assert!(
            written.windows(2).all(|w| w[0] < w[1]),
            "caller {i}'s writes landed out of order: {written:?}"
        );
        for attempt in attempts {
            if attempt.acknowledged {
                assert!(
                    written.contains(&attempt.value),
                    "caller {i}'s acknowledged write {} is not in MONITOR",
                    attempt.value
                );
            } else {
                given_up += 1;
            }
        }
        let acknowledged_after = attempts.iter().rev().take_while(|a| a.acknowledged).count();
        assert!(acknowledged_after > 0, "caller {i} never recovered");
    }
    assert!(
        given_up >= CALLERS,
        "the freeze made callers give up ({given_up})"
    );
}
