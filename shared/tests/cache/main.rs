//! The cache-aside building block against real `redis-server` processes:
//! hits and misses, expiry, stampede protection, compute failures, a dead
//! lock holder, undecodable values, a Redis that is down, and what the cache
//! costs in Redis' own keyspace statistics.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shared::ErrorKind;
use shared::blocks::cache::{Cache, CacheError, CacheStatus};
use shared::blocks::keys::Tenant;
use shared::testkit::TestRedis;

fn acme() -> Tenant {
    Tenant::new("workspace", "acme").unwrap()
}

fn cache(server: &TestRedis, ttl: Duration) -> Cache {
    Cache::new(server.client(), &acme(), "report", ttl)
}

/// `keyspace_hits` and `keyspace_misses` from `INFO stats` (every node).
fn keyspace(server: &TestRedis) -> (u64, u64) {
    (
        server.info_sum("stats", "keyspace_hits"),
        server.info_sum("stats", "keyspace_misses"),
    )
}

fn exists(server: &TestRedis, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query::<bool>(&mut server.admin())
        .unwrap()
}

async fn value_of(cache: &Cache, key: &str, value: u64) -> (u64, CacheStatus) {
    let got = cache
        .get_or_compute(key, || async move { Ok::<_, std::io::Error>(value) })
        .await
        .unwrap();
    (got.value, got.status)
}

#[tokio::test]
async fn a_miss_computes_and_stores_then_a_hit_reads_the_stored_value() {
    let server = TestRedis::start();
    let cache = cache(&server, Duration::from_secs(60));
    assert_eq!(value_of(&cache, "monthly", 1).await, (1, CacheStatus::Miss));
    // The second computation would give 2: a hit must not run it.
    assert_eq!(value_of(&cache, "monthly", 2).await, (1, CacheStatus::Hit));
    let key = cache.value_key("monthly").unwrap();
    assert_eq!(key, "ws:{acme}:cache:report:monthly");
    let stored: String = redis::cmd("GET")
        .arg(&key)
        .query(&mut server.admin())
        .unwrap();
    assert_eq!(stored, "1");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query(&mut server.admin())
        .unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");
    assert!(
        !exists(&server, &cache.lock_key("monthly").unwrap()),
        "the lock is released after the value is stored"
    );
}

#[tokio::test]
async fn a_value_is_recomputed_after_its_ttl() {
    let server = TestRedis::start();
    let cache = cache(&server, Duration::from_millis(100));
    assert_eq!(value_of(&cache, "k", 1).await.1, CacheStatus::Miss);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(value_of(&cache, "k", 2).await, (2, CacheStatus::Miss));
}

#[tokio::test]
async fn a_hit_costs_one_keyspace_hit_and_a_miss_one_keyspace_miss() {
    let server = TestRedis::start();
    let cache = cache(&server, Duration::from_secs(60));
    let before = keyspace(&server);
    for i in 0..7 {
        assert_eq!(
            value_of(&cache, &format!("k{i}"), i).await.1,
            CacheStatus::Miss
        );
    }
    for _ in 0..3 {
        for i in 0..7 {
            assert_eq!(
                value_of(&cache, &format!("k{i}"), 99).await,
                (i, CacheStatus::Hit)
            );
        }
    }
    let after = keyspace(&server);
    assert_eq!(after.0 - before.0, 21, "hits");
    assert_eq!(after.1 - before.1, 7, "misses");
}

#[tokio::test]
async fn concurrent_misses_of_one_key_compute_it_once() {
    let server = TestRedis::start();
    let cache = cache(&server, Duration::from_secs(60));
    let computed = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            let computed = computed.clone();
            tokio::spawn(async move {
                cache
                    .get_or_compute("expensive", || async move {
                        computed.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok::<_, std::io::Error>("report".to_owned())
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for caller in callers {
        let got = caller.await.unwrap();
        assert_eq!(got.value, "report");
        statuses.push(got.status);
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == CacheStatus::Miss).count(),
        1
    );
    assert!(
        statuses.iter().all(|s| matches!(
            s,
            CacheStatus::Miss | CacheStatus::Coalesced | CacheStatus::Hit
        )),
        "{statuses:?}"
    );
    assert!(statuses.iter().filter(|s| s.is_hit()).count() == 49);
}

#[tokio::test]
async fn a_failed_computation_stores_nothing_and_frees_the_lock() {
    let server = TestRedis::start();
    let cache = cache(&server, Duration::from_secs(60));
    let err = cache
        .get_or_compute("k", || async { Err::<u64, _>("upstream down") })
        .await
        .unwrap_err();
    assert_eq!(err, CacheError::Compute("upstream down"));
    assert!(!exists(&server, &cache.value_key("k").unwrap()));
    assert!(!exists(&server, &cache.lock_key("k").unwrap()));
    assert_eq!(value_of(&cache, "k", 5).await, (5, CacheStatus::Miss));
}

#[tokio::test]
async fn a_caller_waits_for_a_dead_lock_holder_only_as_long_as_its_wait() {
    let server = TestRedis::start();
    let cache = cache(&server, Duration::from_secs(60))
        .with_lock(Duration::from_secs(30), Duration::from_millis(300));
    // A holder that took the lock and died before storing anything.
    redis::cmd("SET")
        .arg(cache.lock_key("k").unwrap())
        .arg("1")
        .arg("PX")
        .arg(30_000)
        .exec(&mut server.admin())
        .unwrap();
    let started = Instant::now();
    assert_eq!(value_of(&cache, "k", 3).await, (3, CacheStatus::Miss));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Its value was stored for everyone else.
    assert_eq!(value_of(&cache, "k", 4).await, (3, CacheStatus::Hit));
}

#[tokio::test]
async fn a_waiting_caller_reads_the_value_the_lock_holder_stores() {
    let server = TestRedis::start();
    let cache = cache(&server, Duration::from_secs(60));
    let lock = cache.lock_key("k").unwrap();
    redis::cmd("SET")
        .arg(&lock)
        .arg("1")
        .arg("PX")
        .arg(30_000)
        .exec(&mut server.admin())
        .unwrap();
    let value_key = cache.value_key("k").unwrap();
    let mut admin = server.admin();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        redis::cmd("SET")
            .arg(&value_key)
            .arg("42")
            .exec(&mut admin)
            .unwrap();
    });
    assert_eq!(value_of(&cache, "k", 7).await, (42, CacheStatus::Coalesced));
    holder.join().unwrap();
}

#[tokio::test]
async fn an_undecodable_value_is_recomputed_and_overwritten() {
    let server = TestRedis::start();
    let cache = cache(&server, Duration::from_secs(60));
    let key = cache.value_key("k").unwrap();
    redis::cmd("SET")
        .arg(&key)
        .arg("not json {")
        .exec(&mut server.admin())
        .unwrap();
    assert_eq!(value_of(&cache, "k", 8).await, (8, CacheStatus::Miss));
    assert_eq!(value_of(&cache, "k", 9).await, (8, CacheStatus::Hit));
}

#[tokio::test]
async fn a_redis_outage_computes_without_the_cache_and_says_so() {
    let mut server = TestRedis::start();
    let client = server.client();
    let cache = Cache::new(client.clone(), &acme(), "report", Duration::from_secs(60));
    assert_eq!(value_of(&cache, "k", 1).await.1, CacheStatus::Miss);
    server.stop();
    let got = cache
        .get_or_compute("k", || async { Ok::<_, std::io::Error>(2) })
        .await
        .unwrap();
    assert_eq!((got.value, got.status), (2, CacheStatus::Bypass));
    assert_eq!(got.failure.unwrap().kind(), ErrorKind::Connect);
    assert_eq!(client.metrics().fallbacks, 1);
    // An invalidation cannot fall back: the caller must know it failed.
    match cache.invalidate("k").await {
        Err(CacheError::Redis(failure)) => assert_eq!(failure.kind(), ErrorKind::Connect),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn crafted_keys_stay_inside_the_tenant_and_never_collide() {
    let server = TestRedis::start();
    let cache = cache(&server, Duration::from_secs(60));
    let crafted = ["a:*", "{b}", "b:x", "../b", "日本", "*", "x y", "[a]?"];
    for (i, key) in crafted.iter().enumerate() {
        assert_eq!(value_of(&cache, key, i as u64).await.1, CacheStatus::Miss);
    }
    for (i, key) in crafted.iter().enumerate() {
        assert_eq!(
            value_of(&cache, key, 99).await,
            (i as u64, CacheStatus::Hit)
        );
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.admin())
        .unwrap();
    assert_eq!(keys.len(), crafted.len());
    for key in keys {
        assert!(key.starts_with("ws:{acme}:cache:report:"), "{key}");
    }
    let too_long = "x".repeat(shared::blocks::keys::MAX_ID_LEN + 1);
    let err = cache
        .get_or_compute(&too_long, || async { Ok::<_, std::io::Error>(0) })
        .await
        .unwrap_err();
    assert!(matches!(err, CacheError::Key(_)), "{err:?}");
}

#[tokio::test]
async fn invalidate_removes_a_value_so_the_next_read_misses() {
    let server = TestRedis::start();
    let cache = cache(&server, Duration::from_secs(60));
    assert_eq!(value_of(&cache, "k", 1).await.1, CacheStatus::Miss);
    assert!(cache.invalidate("k").await.unwrap());
    assert!(!cache.invalidate("k").await.unwrap());
    assert_eq!(value_of(&cache, "k", 2).await, (2, CacheStatus::Miss));
}
