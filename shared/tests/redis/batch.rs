//! The write batcher's promises, against a real server stalled with SIGSTOP:
//! work whose caller has gone is never written, a retry never overtakes the
//! command it retries, the queue is bounded, and no caller waits past its
//! own deadline.

use std::time::{Duration, Instant};

use shared::ErrorKind;
use shared::testkit::RedisServer;

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

#[tokio::test]
async fn abandoned_work_is_never_written_and_a_retry_never_overtakes_it() {
    let mut server = RedisServer::start();
    let client = client_with(&server, |c| {
        c.command_timeout = Duration::from_secs(3);
        c.breaker_threshold = 0;
    });
    set_with(&client, None, "warm", "1").await.unwrap();
    let monitor = server.monitor();
    server.pause();
    // A goes straight to the stalled connection; B is queued and its batch
    // is stuck behind A; C queues behind that batch and gives up.
    let a = tokio::spawn({
        let client = client.clone();
        async move { set_with(&client, None, "a", "1").await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let b = tokio::spawn({
        let client = client.clone();
        async move { set_with(&client, None, "b", "1").await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let abandoned = set_with(&client, Some(Duration::from_millis(100)), "c", "old").await;
    assert_eq!(abandoned.unwrap_err().kind(), ErrorKind::Timeout);
    // The caller retries with the value it means now.
    let retry = tokio::spawn({
        let client = client.clone();
        async move { set_with(&client, None, "c", "new").await }
    });
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = monitor.lines();
    assert!(
        lines.iter().any(|l| l.contains("\"new\"")),
        "the monitor saw the retry: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("\"old\"")),
        "the abandoned command was written: {lines:?}"
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
    let mut server = RedisServer::start();
    let client = client_with(&server, |c| {
        c.command_timeout = Duration::from_secs(3);
        c.breaker_threshold = 0;
    });
    set_with(&client, None, "warm", "1").await.unwrap();
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
