//! The last interval's metrics are written when a server stops: `serve`
//! flushes the metrics line after draining, so a scale-in (SIGTERM on Cloud
//! Run) loses no counts. Its own test binary: it sends SIGTERM to its own
//! process, which `serve` handles.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use axum::Router;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use shared::config::LogFormat;
use shared::contract as names;
use shared::telemetry;
use shared::testkit::{CapturedLogs, RedisServer, free_port};
use shared::{AppContext, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_writes_the_last_interval_when_stopped_by_sigterm() {
    let redis = RedisServer::start();
    let port = free_port();
    let url = redis.url();
    let config = Config::from_lookup(|name| match name {
        "REDIS_URL" => Some(url.clone()),
        "PORT" => Some(port.to_string()),
        _ => None,
    })
    .unwrap();
    let ctx = AppContext::new(config).unwrap();
    // The interval is a minute: nothing is due while the test runs.
    assert!(ctx.metrics.interval() >= Duration::from_secs(10));
    let logs = CapturedLogs::default();
    telemetry::init_with_writer("shutdown_test", LogFormat::Json, "info", logs.clone());

    let app = shared::http::finish(Router::new(), &ctx);
    let metrics_lines = || -> Vec<Value> {
        logs.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l[names::EVENT] == names::METRICS_EVENT)
            .collect()
    };
    // The server and its caller on one task (serve's future is not Send).
    let caller = async {
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{base}{}", names::LIVENESS_PATH))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "server never listened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..3 {
            let response = reqwest::get(format!("{base}{}", names::HEALTH_PATH))
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
        }
        assert!(metrics_lines().is_empty(), "{}", logs.text());
        kill(Pid::this(), Signal::SIGTERM).unwrap();
    };
    let (code, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(shared::serve(app, &ctx), caller)
    })
    .await
    .expect("serve stops after SIGTERM");
    assert_eq!(code, std::process::ExitCode::SUCCESS);

    let found = metrics_lines();
    assert_eq!(found.len(), 1, "{}", logs.text());
    assert_eq!(found[0][names::OPERATIONS], 3, "{}", found[0]);
    // The readiness polls of /healthz and the three probes.
    let requests = found[0][names::HTTP_REQUESTS].as_u64().unwrap();
    assert!(requests >= 4, "{}", found[0]);
    assert_eq!(found[0][names::HTTP_5XX], 0);
}
