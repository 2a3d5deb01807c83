//! The diagnostics building blocks against real `redis-server` processes:
//! the server's figures, the `PING` probe and the bounded key listing,
//! including a paused and a stopped server.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use shared::blocks::keys::Tenant;
use shared::blocks::keyscan::{self, CutShort, KeyQuery, ListKeysError};
use shared::redis::diagnostics::RedisReport;
use shared::redis::info::{self, ServerStats};
use shared::redis::probe::{self, MAX_PROBE_PINGS};
use shared::testkit::RedisServer;
use shared::{ErrorKind, RedisClient};

fn tenant(id: &str) -> Tenant {
    Tenant::new("workspace", id).unwrap()
}

fn client_with(server: &RedisServer, tweak: impl FnOnce(&mut shared::RedisConfig)) -> RedisClient {
    let mut config = server.config();
    tweak(&mut config);
    RedisClient::new(config).unwrap()
}

fn run(server: &RedisServer, pipe: &redis::Pipeline) {
    pipe.exec(&mut server.admin()).unwrap();
}

async fn stats(client: &RedisClient) -> ServerStats {
    info::server_stats(client).await.unwrap()
}

#[tokio::test]
async fn server_stats_report_the_real_servers_settings_and_keys() {
    let server = RedisServer::builder()
        .arg("--maxmemory")
        .arg("64mb")
        .arg("--maxmemory-policy")
        .arg("allkeys-lru")
        .start();
    let mut pipe = redis::pipe();
    for i in 0..25 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    run(&server, &pipe);
    let client = server.client();
    let s = stats(&client).await;
    let version: String = {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut server.admin())
            .unwrap();
        shared::redis::info::info_field(&info, "redis_version")
            .unwrap()
            .to_owned()
    };
    assert_eq!(s.version, Some(version));
    assert_eq!(s.mode.as_deref(), Some("standalone"));
    assert_eq!(s.role.as_deref(), Some("master"));
    assert_eq!(s.memory.max_bytes, Some(64 * 1024 * 1024));
    assert_eq!(s.memory.eviction_policy.as_deref(), Some("allkeys-lru"));
    assert!(s.memory.used_bytes.is_some_and(|u| u > 0));
    assert!(s.memory.used_ratio.is_some_and(|r| r > 0.0 && r < 1.0));
    assert_eq!(s.keyspace.keys, Some(25));
    assert!(s.clients.connected.is_some_and(|c| c >= 1));
    assert_eq!(s.clients.blocked, Some(0));
}

#[tokio::test]
async fn server_stats_count_a_client_blocked_in_blpop() {
    let server = RedisServer::start();
    let mut blocked = server.admin();
    let waiter = std::thread::spawn(move || {
        let _: Option<(String, String)> = redis::cmd("BLPOP")
            .arg("ws:{acme}:queue")
            .arg(3)
            .query(&mut blocked)
            .unwrap();
    });
    let client = server.client();
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < Duration::from_secs(3) {
        seen = stats(&client).await.clients.blocked;
        if seen == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(1));
    redis::cmd("LPUSH")
        .arg("ws:{acme}:queue")
        .arg("x")
        .exec(&mut server.admin())
        .unwrap();
    waiter.join().unwrap();
}

#[tokio::test]
async fn evicted_and_expired_keys_are_counted() {
    let server = RedisServer::builder()
        .arg("--maxmemory")
        .arg("2mb")
        .arg("--maxmemory-policy")
        .arg("allkeys-random")
        .start();
    // First a key that expires (before the memory fills: eviction could
    // otherwise take it first)...
    redis::cmd("SET")
        .arg("short")
        .arg("v")
        .arg("PX")
        .arg(1)
        .exec(&mut server.admin())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A read of the expired key makes the server remove it now.
    let _: Option<String> = redis::cmd("GET")
        .arg("short")
        .query(&mut server.admin())
        .unwrap();
    // ...then more data than maxmemory holds.
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET")
            .arg(format!("big{i}"))
            .arg(vec![b'x'; 16 * 1024])
            .ignore();
    }
    run(&server, &pipe);
    let s = stats(&server.client()).await;
    assert!(s.keyspace.evicted_keys.is_some_and(|n| n > 0), "{s:?}");
    assert_eq!(s.keyspace.expired_keys, Some(1), "{s:?}");
}

#[tokio::test]
async fn the_probe_sends_the_pings_asked_for_and_they_count_as_operations() {
    let server = RedisServer::start();
    let client = server.client();
    let before = client.metrics().operations;
    let report = probe::ping_probe(&client, 20, Duration::from_secs(10)).await;
    assert_eq!((report.requested, report.completed), (20, 20));
    assert_eq!(report.latency.count, 20);
    assert!(report.latency.p50_ms > 0.0 && report.latency.p50_ms <= report.latency.p99_ms);
    assert!(report.error.is_none() && !report.budget_exhausted);
    assert_eq!(client.metrics().operations - before, 20);
    let capped = probe::ping_probe(&client, 5_000, Duration::from_secs(10)).await;
    assert_eq!(capped.requested, MAX_PROBE_PINGS);
    assert_eq!(capped.completed, MAX_PROBE_PINGS);
}

#[tokio::test]
async fn the_probe_stops_at_its_budget_when_the_server_is_paused() {
    let mut server = RedisServer::start();
    let client = client_with(&server, |c| c.command_timeout = Duration::from_secs(5));
    probe::ping_probe(&client, 1, Duration::from_secs(5)).await;
    server.pause();
    let started = Instant::now();
    let report = probe::ping_probe(&client, 10, Duration::from_millis(300)).await;
    let took = started.elapsed();
    server.resume();
    assert!(report.budget_exhausted, "{report:?}");
    assert_eq!(report.completed, 0);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn the_probe_reports_a_stopped_server_as_a_connect_failure() {
    let mut server = RedisServer::start();
    let client = server.client();
    server.stop();
    let report = probe::ping_probe(&client, 10, Duration::from_secs(5)).await;
    assert_eq!(report.completed, 0);
    assert_eq!(report.error_type, Some(ErrorKind::Connect));
    assert!(report.error.is_some());
}

#[tokio::test]
async fn a_report_stays_useful_when_redis_is_down() {
    let mut server = RedisServer::builder().password("pw-diagnostics-77").start();
    let client = server.client();
    let ok = RedisReport::collect(&client, 3, Duration::from_secs(5)).await;
    assert_eq!(ok.status, "ok");
    assert!(ok.server.is_some() && ok.server_error.is_none());
    assert_eq!(ok.probe.completed, 3);
    assert_eq!(
        ok.target,
        format!("redis://:***@127.0.0.1:{}", server.port())
    );
    server.stop();
    let down = RedisReport::collect(&client, 3, Duration::from_secs(5)).await;
    assert_eq!(down.status, "degraded");
    assert!(down.server.is_none());
    assert_eq!(down.server_error.as_ref().unwrap().kind, ErrorKind::Connect);
    assert_eq!(down.probe.completed, 0);
    assert_eq!(down.probe.error_type, Some(ErrorKind::Connect));
    // The client figures are there, as of the start of the call: one INFO
    // and three PINGs of the first report.
    assert_eq!(down.client.metrics.operations, 4);
    let json = serde_json::to_string(&down).unwrap();
    assert!(!json.contains("pw-diagnostics-77"), "{json}");
}

/// Keys of `acme` and of its look-alikes, with several types and TTLs.
fn populate(server: &RedisServer) {
    let mut pipe = redis::pipe();
    for i in 0..30 {
        pipe.cmd("SET")
            .arg(format!("ws:{{acme}}:patient:{i}"))
            .arg("x")
            .ignore();
    }
    pipe.cmd("HSET")
        .arg("ws:{acme}:sync:state")
        .arg("f")
        .arg("v")
        .ignore();
    pipe.cmd("RPUSH").arg("ws:{acme}:queue").arg("a").ignore();
    pipe.cmd("SET")
        .arg("ws:{acme}:session:1")
        .arg("s")
        .arg("PX")
        .arg(600_000)
        .ignore();
    for decoy in [
        "ws:{acme2}:patient:1",
        "ws:{acm}:patient:1",
        "ws:acme:patient:1",
        "acme:patient:1",
        "ws:{other}:x",
        "ws:{acme}",
    ] {
        pipe.cmd("SET").arg(decoy).arg("decoy").ignore();
    }
    run(server, &pipe);
}

#[tokio::test]
async fn listing_returns_one_tenants_keys_with_type_and_ttl() {
    let server = RedisServer::start();
    populate(&server);
    let client = server.client();
    let query = KeyQuery::new(tenant("acme"), "*", 1_000).unwrap();
    let listing = keyscan::list_keys(&client, &query, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(listing.complete);
    assert_eq!(listing.cut_short, None);
    assert_eq!(listing.keys.len(), 33, "{:?}", listing.keys);
    assert!(listing.keys.iter().all(|k| k.key.starts_with("ws:{acme}:")));
    let find = |name: &str| listing.keys.iter().find(|k| k.key == name).unwrap();
    assert_eq!(find("ws:{acme}:sync:state").kind, "hash");
    assert_eq!(find("ws:{acme}:queue").kind, "list");
    assert_eq!(find("ws:{acme}:patient:3").kind, "string");
    assert_eq!(find("ws:{acme}:patient:3").ttl_ms, None);
    let ttl = find("ws:{acme}:session:1").ttl_ms.unwrap();
    assert!((1..=600_000).contains(&ttl), "{ttl}");
    let patients = KeyQuery::new(tenant("acme"), "patient:*", 1_000).unwrap();
    let listing = keyscan::list_keys(&client, &patients, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(listing.keys.len(), 30);
}

#[tokio::test]
async fn crafted_patterns_never_leave_the_tenant() {
    let server = RedisServer::start();
    populate(&server);
    let client = server.client();
    for glob in [
        "*", "../*", "}:*", "*}*", "\\*", "[a-z]*", "?*", "*:*", "**", "{acme2}*",
    ] {
        let query = KeyQuery::new(tenant("acme"), glob, 1_000).unwrap();
        let listing = keyscan::list_keys(&client, &query, Duration::from_secs(10))
            .await
            .unwrap();
        for key in &listing.keys {
            assert!(key.key.starts_with("ws:{acme}:"), "{glob}: {}", key.key);
        }
    }
}

#[tokio::test]
async fn listing_stops_at_the_limit_and_says_so() {
    let server = RedisServer::start();
    populate(&server);
    let client = server.client();
    let query = KeyQuery::new(tenant("acme"), "patient:*", 7).unwrap();
    let listing = keyscan::list_keys(&client, &query, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(listing.keys.len(), 7);
    assert!(!listing.complete);
    assert_eq!(listing.cut_short, Some(CutShort::Limit));
    let unique: std::collections::HashSet<_> = listing.keys.iter().map(|k| &k.key).collect();
    assert_eq!(unique.len(), 7, "no key twice");
}

#[tokio::test]
async fn listing_stops_at_its_time_budget_when_the_server_is_paused() {
    let mut server = RedisServer::start();
    populate(&server);
    let client = client_with(&server, |c| c.command_timeout = Duration::from_secs(5));
    probe::ping_probe(&client, 1, Duration::from_secs(5)).await;
    server.pause();
    let query = KeyQuery::new(tenant("acme"), "*", 10).unwrap();
    let started = Instant::now();
    let listing = keyscan::list_keys(&client, &query, Duration::from_millis(300)).await;
    let took = started.elapsed();
    server.resume();
    let listing = listing.unwrap();
    assert!(!listing.complete);
    assert_eq!(listing.cut_short, Some(CutShort::TimeBudget));
    assert!(listing.keys.is_empty());
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn listing_on_a_stopped_server_is_a_connect_failure() {
    let mut server = RedisServer::start();
    let client = server.client();
    server.stop();
    let query = KeyQuery::new(tenant("acme"), "*", 10).unwrap();
    let err = keyscan::list_keys(&client, &query, Duration::from_secs(5))
        .await
        .unwrap_err();
    match err {
        ListKeysError::Redis(failure) => assert_eq!(failure.kind(), ErrorKind::Connect),
        other => panic!("{other:?}"),
    }
}
