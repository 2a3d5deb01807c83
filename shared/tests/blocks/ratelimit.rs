//! The rate limiter: exact under concurrency, one round trip, retry-after.

use std::time::Duration;

use shared::ErrorKind;
use shared::blocks::ratelimit::{RateLimitError, RateLimiter};
use shared::testkit::TestRedis;

use crate::{all_keys, tenant};

#[tokio::test]
async fn with_limit_l_and_more_concurrent_requests_exactly_l_pass() {
    let server = TestRedis::start();
    let limiter = RateLimiter::new(server.client(), 25, Duration::from_secs(60)).unwrap();
    let practice = tenant("clinic-1");
    let checks = (0..120).map(|_| {
        let limiter = limiter.clone();
        let practice = practice.clone();
        tokio::spawn(async move { limiter.check(&practice, "sync").await.unwrap() })
    });
    let decisions = futures::future::join_all(checks).await;
    let decisions: Vec<_> = decisions.into_iter().map(Result::unwrap).collect();
    let allowed = decisions.iter().filter(|d| d.allowed).count();
    assert_eq!(allowed, 25);
    // Every admitted request saw a distinct remaining count: 24, 23, ..., 0.
    let mut remaining: Vec<u32> = decisions
        .iter()
        .filter(|d| d.allowed)
        .map(|d| d.remaining)
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..25).collect::<Vec<_>>());
    for rejected in decisions.iter().filter(|d| !d.allowed) {
        assert_eq!(rejected.remaining, 0);
        assert!(rejected.retry_after > Duration::ZERO);
        assert!(rejected.retry_after <= Duration::from_secs(60));
    }
}

#[tokio::test]
async fn a_rejected_caller_is_told_when_the_next_request_fits_and_it_does() {
    let server = TestRedis::start();
    let limiter = RateLimiter::new(server.client(), 2, Duration::from_secs(2)).unwrap();
    let t = tenant("a");
    assert!(limiter.check(&t, "s").await.unwrap().allowed);
    assert!(limiter.check(&t, "s").await.unwrap().allowed);
    let rejected = limiter.check(&t, "s").await.unwrap();
    assert!(!rejected.allowed);
    assert!(
        rejected.retry_after > Duration::ZERO && rejected.retry_after <= Duration::from_secs(2),
        "{rejected:?}"
    );
    tokio::time::sleep(rejected.retry_after + Duration::from_millis(20)).await;
    let after = limiter.check(&t, "s").await.unwrap();
    assert!(after.allowed, "{after:?}");
}

#[tokio::test]
async fn rejected_requests_are_not_counted() {
    let server = TestRedis::start();
    let limiter = RateLimiter::new(server.client(), 1, Duration::from_secs(60)).unwrap();
    let t = tenant("a");
    assert!(limiter.check(&t, "s").await.unwrap().allowed);
    for _ in 0..20 {
        assert!(!limiter.check(&t, "s").await.unwrap().allowed);
    }
    let count: u64 = redis::cmd("ZCARD")
        .arg(RateLimiter::key(&t, "s").unwrap())
        .query(&mut server.admin())
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn each_check_is_one_redis_round_trip() {
    let server = TestRedis::start();
    let client = server.client();
    let limiter = RateLimiter::new(client.clone(), 100, Duration::from_secs(60)).unwrap();
    let t = tenant("a");
    // The first call loads the script (EVALSHA answered NOSCRIPT, then
    // EVAL): redis-rs's normal exchange, not an error of Redis.
    limiter.check(&t, "s").await.unwrap();
    assert_eq!(
        client.metrics().errors.total(),
        0,
        "NOSCRIPT counted as an error"
    );
    let before = client.metrics().operations;
    for _ in 0..10 {
        limiter.check(&t, "s").await.unwrap();
    }
    assert_eq!(client.metrics().operations - before, 10);
}

#[tokio::test]
async fn limits_are_kept_per_tenant_and_subject_under_the_tenant_prefix() {
    let server = TestRedis::start();
    let limiter = RateLimiter::new(server.client(), 1, Duration::from_secs(60)).unwrap();
    assert!(limiter.check(&tenant("a"), "sync").await.unwrap().allowed);
    assert!(!limiter.check(&tenant("a"), "sync").await.unwrap().allowed);
    assert!(limiter.check(&tenant("b"), "sync").await.unwrap().allowed);
    assert!(limiter.check(&tenant("a"), "a:*{b}").await.unwrap().allowed);
    assert_eq!(
        all_keys(&server),
        [
            "ws:{a}:ratelimit:a%3A%2A%7Bb%7D",
            "ws:{a}:ratelimit:sync",
            "ws:{b}:ratelimit:sync"
        ]
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg("ws:{a}:ratelimit:sync")
        .query(&mut server.admin())
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 60_000,
        "the key expires with its window: {ttl}"
    );
}

#[tokio::test]
async fn peek_reports_the_remaining_budget_without_spending_it() {
    let server = TestRedis::start();
    let limiter = RateLimiter::new(server.client(), 3, Duration::from_secs(60)).unwrap();
    let t = tenant("a");
    assert_eq!(limiter.peek(&t, "s").await.unwrap().remaining, 3);
    limiter.check(&t, "s").await.unwrap();
    for _ in 0..5 {
        let peek = limiter.peek(&t, "s").await.unwrap();
        assert!(peek.allowed);
        assert_eq!(peek.remaining, 2);
    }
    limiter.check(&t, "s").await.unwrap();
    limiter.check(&t, "s").await.unwrap();
    let full = limiter.peek(&t, "s").await.unwrap();
    assert!(!full.allowed);
    assert!(full.retry_after > Duration::ZERO);
}

#[tokio::test]
async fn redis_down_is_an_unavailable_error_not_a_decision() {
    let mut server = TestRedis::start();
    let limiter = RateLimiter::new(server.client(), 3, Duration::from_secs(60)).unwrap();
    server.stop();
    let err = limiter.check(&tenant("a"), "s").await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    match err {
        RateLimitError::Redis(f) => assert_eq!(f.kind(), ErrorKind::Connect),
        other => panic!("{other:?}"),
    }
}

#[test]
fn impossible_settings_and_subjects_are_refused() {
    let server = TestRedis::start();
    assert_eq!(
        RateLimiter::new(server.client(), 0, Duration::from_secs(1)).unwrap_err(),
        RateLimitError::InvalidSettings
    );
    assert!(RateLimiter::new(server.client(), 1, Duration::ZERO).is_err());
    assert!(RateLimiter::key(&tenant("a"), "").is_err());
}
