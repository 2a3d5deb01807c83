//! Functions over HTTP: each function binary (release build) in server mode
//! under the workspace's load generator, `/redis-health` (a Redis round trip
//! per request) beside `/healthz` on the same server (no Redis work), at 1,
//! 16, 64 and 256 keep-alive connections; for `sessions`, also the session
//! append (`POST .../events`, one atomic Redis script per request). Writes `bench-results/http.json`
//! and a chart. `BENCH_SECS` / `BENCH_ROUNDS` set the effort; `BENCH_FUNCTIONS`
//! and `BENCH_CONNECTIONS` (comma-separated) choose the functions and columns.

use std::net::SocketAddr;
use std::time::Duration;

use bench::chart::{self, Chart, Scale, Series};
use bench::http_load::{self, Request};
use bench::{Stats, env_or, median, out, progress, table};
use serde::Serialize;
use shared::testkit::{FunctionProcess, RedisServer};

const CONNECTIONS: [usize; 4] = [1, 16, 64, 256];

/// The session append route, as shown in the table.
const APPEND_ROUTE: &str = "POST .../events";

/// Creates a session on the running `sessions` function and returns the
/// request that appends one event to it (the same event every time: a chat
/// turn with a small state delta).
async fn append_request(addr: SocketAddr) -> Request {
    let path = "/apps/bench/users/load/sessions";
    let id = format!("s{}", std::process::id());
    let create = Request::post_json(path, format!(r#"{{"session_id":"{id}"}}"#));
    let created = http_load::send_once(addr, &create).await;
    if created != 201 && created != 409 {
        bench::fail(&format!(
            "creating the benchmark session answered {created}"
        ));
    }
    Request::post_json(
        &format!("{path}/{id}/events"),
        r#"{"event":{"author":"user","content":{"parts":[{"text":"what tours are there in Paris?"}]},"actions":{"state_delta":{"topic":"paris"}}}}"#.to_owned(),
    )
}

#[derive(Serialize)]
struct Row {
    function: String,
    route: String,
    connections: usize,
    stats: Stats,
    vs_no_redis: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = env_or("BENCH_SECS", 0.5);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    // BENCH_CONNECTIONS=64 keeps one column, e.g. to profile the function
    // with `perf record -p` while it runs (docs/performance.md).
    let wanted_connections: Vec<usize> = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| CONNECTIONS.to_vec());
    let redis = RedisServer::start();
    let bins = bench::release_functions();
    if bins.is_empty() {
        bench::fail(
            "no release binaries in target/release: run `cargo build --release` (make bench does)",
        );
    }
    let mut rows = Vec::new();
    for (name, bin) in &bins {
        let mut f =
            FunctionProcess::spawn(bin, &[("REDIS_URL", &redis.url()), ("LOG_LEVEL", "warn")]);
        f.wait_ready(Duration::from_secs(10)).await;
        let addr: SocketAddr = f
            .base_url()
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|_| bench::fail("bad address"));
        let mut routes = vec![
            ("/healthz".to_owned(), Request::get("/healthz")),
            ("/redis-health".to_owned(), Request::get("/redis-health")),
        ];
        if name == "sessions" {
            routes.push((APPEND_ROUTE.to_owned(), append_request(addr).await));
        }
        for connections in CONNECTIONS {
            if !wanted_connections.contains(&connections) {
                continue;
            }
            let mut baseline = Stats::default();
            for (route, request) in &routes {
                progress(&format!("{name} {route} at {connections} connections"));
                let mut samples = Vec::new();
                for _ in 0..rounds {
                    samples.push(
                        http_load::run(addr, request, connections, Duration::from_secs_f64(secs))
                            .await,
                    );
                }
                let stats = median(samples);
                if route == "/healthz" {
                    baseline = stats;
                }
                rows.push(Row {
                    function: name.clone(),
                    route: route.clone(),
                    connections,
                    stats,
                    vs_no_redis: stats.ops_per_sec / baseline.ops_per_sec.max(1.0),
                });
            }
        }
        if !f.is_running() {
            bench::fail(&format!(
                "{name} exited during the benchmark:\n{}",
                f.output()
            ));
        }
    }
    let printable: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.function.clone(),
                r.route.clone(),
                r.connections.to_string(),
                format!("{:.0}", r.stats.ops_per_sec),
                format!("{:.3}", r.stats.p50_ms),
                format!("{:.3}", r.stats.p99_ms),
                format!("{:.0}%", r.vs_no_redis * 100.0),
            ]
        })
        .collect();
    let mut report = bench::Report::default();
    report.say(&format!(
        "HTTP through the functions (server mode), median of {rounds} rounds of {secs} s"
    ));
    report.say(&table(
        &[
            "function",
            "route",
            "conns",
            "req/s",
            "p50 ms",
            "p99 ms",
            "vs /healthz",
        ],
        &printable,
    ));
    let mut series: Vec<Series> = Vec::new();
    for r in &rows {
        let label = format!("{} {}", r.function, r.route);
        let point = (r.connections as f64, r.stats.ops_per_sec);
        match series.iter_mut().find(|s| s.name == label) {
            Some(s) => s.points.push(point),
            None => series.push(Series {
                name: label,
                points: vec![point],
            }),
        }
    }
    let svg = chart::write(
        "http-throughput",
        &Chart {
            title: "HTTP throughput against connections",
            x_label: "keep-alive connections",
            y_label: "requests per second",
            x_scale: Scale::Log,
            y_scale: Scale::Linear,
        },
        &series,
    );
    let path = bench::write_results(
        "http",
        &serde_json::json!({ "seconds": secs, "rounds": rounds, "rows": rows }),
    );
    report.into_doc("http");
    out(&format!("results: {} {}", path.display(), svg.display()));
}
