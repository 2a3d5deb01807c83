//! `GET /debug/redis` and `GET /admin/redis-metrics` against a real server:
//! the counters follow real operations, the hit rate follows real cache hits
//! and misses, and the report stays useful when Redis is down.

use std::time::Duration;

use serde_json::Value;
use shared::blocks::cache::{Cache, CacheStatus};
use shared::blocks::keys::Tenant;
use shared::testkit::RedisServer;

use crate::{TOKEN, ctx_for, get};

async fn report(app: &axum::Router, uri: &str) -> Value {
    let reply = get(app, uri, Some(TOKEN)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.headers["cache-control"], "no-store",
        "metrics must not be cached by a proxy"
    );
    reply.json()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

#[tokio::test]
async fn both_routes_answer_the_same_report() {
    let server = RedisServer::start();
    let ctx = ctx_for(&server, &[("ADMIN_TOKEN", TOKEN)]);
    let app = tebra_debug::app(ctx);
    let a = report(&app, "/debug/redis").await;
    let b = report(&app, "/admin/redis-metrics").await;
    for body in [&a, &b] {
        assert_eq!(body["status"], "ok");
        let server_info = &body["server"];
        assert_eq!(
            server_info["version"].as_str().map(str::is_empty),
            Some(false)
        );
        assert_eq!(server_info["mode"], "standalone");
        for field in [
            "/uptime_secs",
            "/memory/used_bytes",
            "/clients/connected",
            "/clients/blocked",
            "/ops_per_sec",
            "/keyspace/hits",
            "/keyspace/misses",
            "/keyspace/evicted_keys",
            "/keyspace/expired_keys",
        ] {
            assert!(
                server_info.pointer(field).is_some_and(Value::is_u64),
                "{field}: {body}"
            );
        }
        assert!(server_info["memory"]["eviction_policy"].is_string());
        let client = &body["client"];
        assert_eq!(client["pool"]["kind"], "multiplexed");
        assert_eq!(client["circuit"]["state"], "closed");
        for kind in ["connect", "timeout", "auth", "other"] {
            assert!(client["errors"][kind].is_u64(), "{body}");
        }
        for p in ["p50_ms", "p95_ms", "p99_ms"] {
            assert!(client["latency"][p].is_f64(), "{body}");
        }
        assert_eq!(body["probe"]["requested"], tebra_debug::DEFAULT_PROBE);
        assert_eq!(body["probe"]["completed"], tebra_debug::DEFAULT_PROBE);
        assert!(body["probe"]["latency"]["p50_ms"].as_f64().unwrap() > 0.0);
        assert!(body["probe"]["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
    }
    let mut keys_a: Vec<_> = a.as_object().unwrap().keys().collect();
    let mut keys_b: Vec<_> = b.as_object().unwrap().keys().collect();
    keys_a.sort();
    keys_b.sort();
    assert_eq!(keys_a, keys_b);
}

#[tokio::test]
async fn the_client_counters_grow_by_the_operations_performed() {
    let mut server = RedisServer::start();
    let ctx = ctx_for(&server, &[("ADMIN_TOKEN", TOKEN)]);
    let app = tebra_debug::app(ctx.clone());
    let before = report(&app, "/debug/redis?probe=0").await;
    const N: u64 = 37;
    for i in 0..N {
        ctx.redis
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(format!("ws:{{acme}}:k{i}"))
                    .arg(i)
                    .exec_async(&mut c)
                    .await
            })
            .await
            .unwrap();
    }
    let after = report(&app, "/debug/redis?probe=0").await;
    // The counters are taken at the start of a report; the first report's
    // own INFO is the one operation that is not the test's.
    assert_eq!(
        u(&after["client"]["operations"]) - u(&before["client"]["operations"]),
        N + 1
    );
    assert!(u(&after["client"]["latency"]["count"]) >= N);
    assert_eq!(after["server"]["keyspace"]["keys"], N);

    // A probe of 7 PINGs: 7 more operations, and 7 samples in its summary.
    let probed = report(&app, "/debug/redis?probe=7").await;
    assert_eq!(probed["probe"]["completed"], 7);
    assert_eq!(probed["probe"]["latency"]["count"], 7);
    let next = report(&app, "/debug/redis?probe=0").await;
    assert_eq!(
        u(&next["client"]["operations"]) - u(&probed["client"]["operations"]),
        1 + 7
    );

    // Errors by kind: three operations against a stopped server.
    server.stop();
    const K: u64 = 3;
    for _ in 0..K {
        let failed = ctx
            .redis
            .run(|mut c| async move { redis::cmd("GET").arg("k").exec_async(&mut c).await })
            .await;
        assert_eq!(failed.unwrap_err().kind(), shared::ErrorKind::Connect);
    }
    let down = report(&app, "/debug/redis?probe=0").await;
    assert_eq!(down["status"], "degraded");
    assert_eq!(down["server"], Value::Null);
    assert_eq!(down["server_error"]["type"], "connect");
    assert_eq!(
        u(&down["client"]["errors"]["connect"]) - u(&next["client"]["errors"]["connect"]),
        K
    );
    assert_eq!(
        u(&down["client"]["operations"]) - u(&next["client"]["operations"]),
        1 + K
    );
}

#[tokio::test]
async fn the_hit_rate_follows_real_cache_hits_and_misses() {
    let server = RedisServer::start();
    let ctx = ctx_for(&server, &[("ADMIN_TOKEN", TOKEN)]);
    let app = tebra_debug::app(ctx.clone());
    let tenant = Tenant::new("workspace", "acme").unwrap();
    let cache = Cache::new(
        ctx.redis.clone(),
        &tenant,
        "report",
        Duration::from_secs(600),
    );
    let lookup = |key: String| {
        let cache = cache.clone();
        async move {
            cache
                .get_or_compute(&key, || async { Ok::<_, std::io::Error>(1) })
                .await
                .unwrap()
                .status
        }
    };
    let fresh = report(&app, "/debug/redis").await;
    assert_eq!(fresh["server"]["keyspace"]["hits"], 0);
    assert_eq!(fresh["server"]["keyspace"]["misses"], 0);
    assert_eq!(fresh["server"]["keyspace"]["hit_rate"], Value::Null);

    // 10 misses, then 30 hits: 75 %.
    for i in 0..10 {
        assert_eq!(lookup(format!("p{i}")).await, CacheStatus::Miss);
    }
    for _ in 0..3 {
        for i in 0..10 {
            assert_eq!(lookup(format!("p{i}")).await, CacheStatus::Hit);
        }
    }
    let first = report(&app, "/debug/redis").await;
    assert_eq!(first["server"]["keyspace"]["hits"], 30);
    assert_eq!(first["server"]["keyspace"]["misses"], 10);
    assert_eq!(first["server"]["keyspace"]["hit_rate"], 0.75);

    // 10 more misses: 30 of 50.
    for i in 10..20 {
        assert_eq!(lookup(format!("p{i}")).await, CacheStatus::Miss);
    }
    let second = report(&app, "/admin/redis-metrics").await;
    assert_eq!(second["server"]["keyspace"]["misses"], 20);
    assert_eq!(second["server"]["keyspace"]["hit_rate"], 0.6);
}

#[tokio::test]
async fn probe_sizes_are_bounded_with_a_clear_400() {
    let server = RedisServer::start();
    let ctx = ctx_for(&server, &[("ADMIN_TOKEN", TOKEN)]);
    let app = tebra_debug::app(ctx.clone());
    for uri in [
        "/debug/redis?probe=101",
        "/debug/redis?probe=-1",
        "/debug/redis?probe=ten",
        "/debug/redis?probe=99999999999999999999999",
        "/admin/redis-metrics?probe=1000",
    ] {
        let reply = get(&app, uri, Some(TOKEN)).await;
        crate::assert_error(&reply, 400, "invalid_parameter");
        assert!(
            reply.text.contains("from 0 to 100"),
            "{uri}: {}",
            reply.text
        );
    }
    let reply = get(&app, "/debug/redis?probes=5", Some(TOKEN)).await;
    crate::assert_error(&reply, 400, "unknown_parameter");
    let reply = get(&app, "/debug/redis?probe=100", Some(TOKEN)).await;
    assert_eq!(reply.json()["probe"]["completed"], 100);
    // Rejected requests sent nothing: only the accepted report's INFO and
    // its 100 PINGs were operations.
    assert_eq!(ctx.redis.metrics().operations, 101);
}
