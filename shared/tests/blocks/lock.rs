//! The lock: one holder, expiry when the holder dies, release by the holder only.

use std::time::Duration;

use shared::blocks::lock::{Lock, LockError};
use shared::testkit::TestRedis;

use crate::{all_keys, tenant};

#[tokio::test]
async fn one_holder_at_a_time_and_the_holder_releases() {
    let server = TestRedis::start();
    let lock = Lock::new(
        server.client(),
        &tenant("a"),
        "sync",
        Duration::from_secs(30),
    )
    .unwrap();
    let guard = lock.acquire().await.unwrap().expect("free");
    assert!(lock.acquire().await.unwrap().is_none());
    assert!(lock.is_held().await.unwrap());
    assert!(lock.release(guard).await.unwrap());
    assert!(!lock.is_held().await.unwrap());
    assert!(lock.acquire().await.unwrap().is_some());
    assert_eq!(all_keys(&server), ["ws:{a}:lock:sync"]);
}

#[tokio::test]
async fn of_many_concurrent_acquirers_exactly_one_wins() {
    let server = TestRedis::start();
    let lock = Lock::new(
        server.client(),
        &tenant("a"),
        "sync",
        Duration::from_secs(30),
    )
    .unwrap();
    let tries = (0..32).map(|_| {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await.unwrap().is_some() })
    });
    let wins = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn a_lock_whose_holder_died_expires_after_its_ttl() {
    let server = TestRedis::start();
    let lock = Lock::new(
        server.client(),
        &tenant("a"),
        "sync",
        Duration::from_millis(1_000),
    )
    .unwrap();
    let holder = lock.acquire().await.unwrap().expect("free");
    drop(holder); // the holder dies without releasing
    assert!(lock.acquire().await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(lock.acquire().await.unwrap().is_some());
}

#[tokio::test]
async fn a_holder_whose_lock_expired_cannot_release_the_next_holders_lock() {
    let server = TestRedis::start();
    let lock = Lock::new(
        server.client(),
        &tenant("a"),
        "sync",
        Duration::from_millis(150),
    )
    .unwrap();
    let old = lock.acquire().await.unwrap().expect("free");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let new = lock.acquire().await.unwrap().expect("expired");
    assert!(!lock.release(old.clone()).await.unwrap());
    assert!(!lock.extend(&old, Duration::from_secs(10)).await.unwrap());
    assert!(
        lock.is_held().await.unwrap(),
        "the new holder still holds it"
    );
    assert!(lock.release(new).await.unwrap());
}

#[tokio::test]
async fn the_holder_can_extend_its_lock() {
    let server = TestRedis::start();
    let lock = Lock::new(
        server.client(),
        &tenant("a"),
        "sync",
        Duration::from_millis(1_000),
    )
    .unwrap();
    let guard = lock.acquire().await.unwrap().expect("free");
    assert!(lock.extend(&guard, Duration::from_secs(30)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(lock.is_held().await.unwrap());
    assert!(lock.release(guard).await.unwrap());
}

#[tokio::test]
async fn locks_of_different_tenants_are_independent() {
    let server = TestRedis::start();
    let ttl = Duration::from_secs(30);
    let a = Lock::new(server.client(), &tenant("a"), "sync", ttl).unwrap();
    let b = Lock::new(server.client(), &tenant("b"), "sync", ttl).unwrap();
    let _held = a.acquire().await.unwrap().expect("free");
    assert!(b.acquire().await.unwrap().is_some());
}

#[tokio::test]
async fn redis_down_is_an_unavailable_error_and_a_zero_ttl_is_refused() {
    let mut server = TestRedis::start();
    assert_eq!(
        Lock::new(server.client(), &tenant("a"), "x", Duration::ZERO).unwrap_err(),
        LockError::InvalidTtl
    );
    let lock = Lock::new(server.client(), &tenant("a"), "x", Duration::from_secs(1)).unwrap();
    server.stop();
    assert!(lock.acquire().await.unwrap_err().is_unavailable());
}
