//! `GET /debug/keys` against a real server with 100,000 keys: bounded in
//! count and time, confined to the workspace, bad input rejected with 400.

use std::time::{Duration, Instant};

use serde_json::Value;
use shared::testkit::RedisServer;

use crate::{TOKEN, assert_error, ctx_for, get};

const ACME_PATIENTS: usize = 50;
const ACME_OTHER: usize = 59_950;
const DECOYS: usize = 40_000;

/// 100,000 keys: 60,000 of `acme` (50 of them `patient:*`, some hashes and
/// lists, some with a TTL) and 40,000 decoys of look-alike workspaces,
/// written with pipelines.
fn populate(server: &RedisServer) {
    let mut admin = server.admin();
    let mut pipe = redis::pipe();
    let mut flush = |pipe: &mut redis::Pipeline, force: bool| {
        if (force && !pipe.is_empty()) || pipe.len() >= 10_000 {
            pipe.exec(&mut admin).unwrap();
            pipe.clear();
        }
    };
    for i in 0..ACME_PATIENTS {
        pipe.cmd("HSET")
            .arg(format!("ws:{{acme}}:patient:{i}"))
            .arg("hash")
            .arg("h")
            .ignore();
        flush(&mut pipe, false);
    }
    for i in 0..ACME_OTHER {
        let key = format!("ws:{{acme}}:item:{i}");
        match i % 3 {
            0 => pipe
                .cmd("SET")
                .arg(key)
                .arg("v")
                .arg("EX")
                .arg(3_600)
                .ignore(),
            1 => pipe.cmd("SET").arg(key).arg("v").ignore(),
            _ => pipe.cmd("RPUSH").arg(key).arg("v").ignore(),
        };
        flush(&mut pipe, false);
    }
    let decoy_prefixes = [
        "ws:{acme2}:",
        "ws:{acm}:",
        "ws:acme:",
        "acme:",
        "ws:{other}:patient:",
    ];
    for i in 0..DECOYS {
        let prefix = decoy_prefixes[i % decoy_prefixes.len()];
        pipe.cmd("SET")
            .arg(format!("{prefix}{i}"))
            .arg("decoy")
            .ignore();
        flush(&mut pipe, false);
    }
    flush(&mut pipe, true);
    let size: usize = redis::cmd("DBSIZE").query(&mut server.admin()).unwrap();
    assert_eq!(size, 100_000);
}

fn keys_of(body: &Value) -> Vec<(String, String, Value)> {
    body["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no keys in {body}"))
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_owned(),
                k["type"].as_str().unwrap().to_owned(),
                k["ttl_ms"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn keys_on_100k_keys_answer_within_the_bound_with_at_most_limit_keys_of_the_workspace() {
    let server = RedisServer::start();
    populate(&server);
    let budget = Duration::from_millis(1_000);
    let ctx = ctx_for(
        &server,
        &[("ADMIN_TOKEN", TOKEN), ("REDIS_COMMAND_TIMEOUT_MS", "1000")],
    );
    let settings = tebra_debug::Settings::from_env(
        &shared::config::Env::from_fn(|name| {
            (name == "DEBUG_TIME_BUDGET_MS").then(|| budget.as_millis().to_string())
        }),
        &ctx.config,
    )
    .unwrap();
    let app = tebra_debug::app_with(ctx.clone(), settings);
    // The scan phase is bounded by the budget, the one pipelined lookup by
    // the Redis deadline; the rest is slack for a loaded machine.
    let bound = budget + ctx.config.redis.command_timeout + Duration::from_secs(1);

    for (uri, limit) in [
        ("/debug/keys?workspace=acme&limit=1000", 1_000),
        ("/debug/keys?workspace=acme", tebra_debug::DEFAULT_KEY_LIMIT),
        ("/debug/keys?workspace=acme&pattern=*&limit=1", 1),
        (
            "/debug/keys?workspace=acme&pattern=nothing-matches-*&limit=1000",
            1_000,
        ),
    ] {
        let started = Instant::now();
        let reply = get(&app, uri, Some(TOKEN)).await;
        let took = started.elapsed();
        assert_eq!(reply.status, 200, "{uri}: {}", reply.text);
        assert!(took < bound, "{uri}: answered after {took:?}");
        let body = reply.json();
        let keys = keys_of(&body);
        assert!(keys.len() <= limit, "{uri}: {} keys", keys.len());
        for (key, _, _) in &keys {
            assert!(key.starts_with("ws:{acme}:"), "{uri}: {key}");
        }
        assert_eq!(body["limit"], limit);
        assert_eq!(body["workspace"], "acme");
        // Either every match is there, or the answer says why not.
        match body["complete"].as_bool().unwrap() {
            true => assert_eq!(body["cut_short"], Value::Null),
            false => assert!(
                ["limit", "time_budget"].contains(&body["cut_short"].as_str().unwrap()),
                "{body}"
            ),
        }
        if body["cut_short"] == "limit" {
            assert_eq!(keys.len(), limit, "{uri}");
        }
        let unique: std::collections::HashSet<_> = keys.iter().map(|k| &k.0).collect();
        assert_eq!(unique.len(), keys.len(), "{uri}: a key listed twice");
    }
}

#[tokio::test]
async fn keys_report_every_match_with_type_and_ttl_when_the_scan_completes() {
    let server = RedisServer::start();
    populate(&server);
    let ctx = ctx_for(&server, &[("ADMIN_TOKEN", TOKEN)]);
    // A generous budget: this test is about completeness, not time.
    let settings = tebra_debug::Settings::from_env(
        &shared::config::Env::from_fn(|name| {
            (name == "DEBUG_TIME_BUDGET_MS").then(|| "8000".to_owned())
        }),
        &ctx.config,
    )
    .unwrap();
    let app = tebra_debug::app_with(ctx, settings);
    let reply = get(
        &app,
        "/debug/keys?workspace=acme&pattern=patient:*&limit=1000",
        Some(TOKEN),
    )
    .await;
    let body = reply.json();
    assert_eq!(body["complete"], true, "{body}");
    assert_eq!(body["pattern"], "ws:{acme}:patient:*");
    let keys = keys_of(&body);
    assert_eq!(keys.len(), ACME_PATIENTS);
    for (key, kind, ttl) in &keys {
        assert!(key.starts_with("ws:{acme}:patient:"), "{key}");
        assert_eq!(kind, "hash");
        assert_eq!(ttl, &Value::Null, "no TTL");
    }
    assert!(
        body["scan_calls"].as_u64().unwrap()
            >= 100_000 / shared::blocks::keyscan::SCAN_COUNT as u64,
        "SCAN walked the keyspace in bounded steps: {body}"
    );

    let reply = get(
        &app,
        "/debug/keys?workspace=acme&pattern=item:1*&limit=1000",
        Some(TOKEN),
    )
    .await;
    let keys = keys_of(&reply.json());
    assert_eq!(keys.len(), 1_000);
    for (key, kind, ttl) in &keys {
        let i: usize = key
            .strip_prefix("ws:{acme}:item:")
            .unwrap()
            .parse()
            .unwrap();
        let (want_kind, expires) = match i % 3 {
            0 => ("string", true),
            1 => ("string", false),
            _ => ("list", false),
        };
        assert_eq!(kind, want_kind, "{key}");
        match expires {
            true => assert!(
                ttl.as_i64().is_some_and(|t| t > 0 && t <= 3_600_000),
                "{key}: {ttl}"
            ),
            false => assert_eq!(ttl, &Value::Null, "{key}"),
        }
    }
}

#[tokio::test]
async fn keys_are_cut_short_by_the_time_budget_when_redis_is_slow() {
    let mut server = RedisServer::start();
    let ctx = ctx_for(
        &server,
        &[("ADMIN_TOKEN", TOKEN), ("REDIS_COMMAND_TIMEOUT_MS", "5000")],
    );
    let settings = tebra_debug::Settings::from_env(
        &shared::config::Env::from_fn(|name| {
            (name == "DEBUG_TIME_BUDGET_MS").then(|| "300".to_owned())
        }),
        &ctx.config,
    )
    .unwrap();
    let app = tebra_debug::app_with(ctx, settings);
    // Connect first, then freeze the server: every SCAN now hangs.
    let warm = get(&app, "/debug/keys?workspace=acme", Some(TOKEN)).await;
    assert_eq!(warm.status, 200);
    server.pause();
    let started = Instant::now();
    let reply = get(&app, "/debug/keys?workspace=acme", Some(TOKEN)).await;
    let took = started.elapsed();
    server.resume();
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["complete"], false);
    assert_eq!(body["cut_short"], "time_budget");
    assert_eq!(body["keys"], Value::Array(vec![]));
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn bad_key_queries_get_a_clear_400_and_touch_nothing() {
    let server = RedisServer::start();
    redis::cmd("SET")
        .arg("ws:{acme}:x")
        .arg("1")
        .exec(&mut server.admin())
        .unwrap();
    let ctx = ctx_for(&server, &[("ADMIN_TOKEN", TOKEN)]);
    let app = tebra_debug::app(ctx.clone());
    let long_pattern = format!("/debug/keys?workspace=acme&pattern={}", "x".repeat(257));
    let cases: Vec<(&str, &str, &str)> = vec![
        ("/debug/keys", "missing_parameter", "workspace"),
        ("/debug/keys?limit=5", "missing_parameter", "workspace"),
        ("/debug/keys?workspace=", "invalid_id", "A-Z"),
        ("/debug/keys?workspace=a:*", "invalid_id", "A-Z"),
        ("/debug/keys?workspace=%7Bacme%7D", "invalid_id", "A-Z"),
        ("/debug/keys?workspace=acme%7D:*", "invalid_id", "A-Z"),
        ("/debug/keys?workspace=*", "invalid_id", "A-Z"),
        ("/debug/keys?workspace=../acme", "invalid_id", "A-Z"),
        (
            "/debug/keys?workspace=acme&limit=0",
            "invalid_parameter",
            "from 1 to 1000",
        ),
        (
            "/debug/keys?workspace=acme&limit=1001",
            "invalid_parameter",
            "from 1 to 1000",
        ),
        (
            "/debug/keys?workspace=acme&limit=-5",
            "invalid_parameter",
            "from 1 to 1000",
        ),
        (
            "/debug/keys?workspace=acme&limit=lots",
            "invalid_parameter",
            "from 1 to 1000",
        ),
        (
            "/debug/keys?workspace=acme&limit=1&limit=2",
            "invalid_parameter",
            "more than once",
        ),
        (&long_pattern, "invalid_parameter", "at most 256 bytes"),
        (
            "/debug/keys?workspace=acme&cursor=0",
            "unknown_parameter",
            "workspace, pattern, limit",
        ),
    ];
    for (uri, code, says) in cases {
        let reply = get(&app, uri, Some(TOKEN)).await;
        assert_error(&reply, 400, code);
        assert!(reply.text.contains(says), "{uri}: {}", reply.text);
    }
    assert_eq!(
        ctx.redis.metrics().operations,
        0,
        "a rejected request sends nothing to Redis"
    );
}
