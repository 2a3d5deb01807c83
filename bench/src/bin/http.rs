//! Functions over HTTP: each function binary (release build) in server mode
//! under [oha](https://crates.io/crates/oha), `/redis-health` (a Redis round
//! trip per request) beside `/healthz` on the same server (no Redis work);
//! for `sessions`, also the session append (`POST .../events`, one atomic
//! Redis script per request).
//!
//! Two measurements per route:
//! - the maximum rate: a closed loop at 1, 16, 64 and 256 keep-alive
//!   connections (each sends its next request when the previous one is
//!   answered), compared with `/healthz` on the same server;
//! - latency at a fixed rate of 25%, 50% and 75% of that maximum (an open
//!   loop: requests are sent on a schedule whatever the answers do, and oha's
//!   latency correction measures each from its scheduled start, so a stall
//!   shows in the tail instead of pausing the generator), on as many
//!   connections as the maximum was reached with.
//!
//! Writes `bench-results/http.json` and two charts. `BENCH_SECS` /
//! `BENCH_ROUNDS` set the effort of the closed loop, `BENCH_RATE_SECS` the
//! length of a fixed-rate run; `BENCH_FUNCTIONS` and `BENCH_CONNECTIONS`
//! (comma-separated) choose the functions and columns.

use std::time::Duration;

use bench::chart::{self, Chart, Scale, Series};
use bench::oha::{self, Load, Request};
use bench::{Stats, env_or, median, out, progress, table};
use serde::Serialize;
use shared::testkit::{FunctionProcess, RedisServer};

const CONNECTIONS: [usize; 4] = [1, 16, 64, 256];

/// The fixed rates, as fractions of the maximum.
const FRACTIONS: [f64; 3] = [0.25, 0.50, 0.75];

/// The session append route, as shown in the table.
const APPEND_ROUTE: &str = "POST .../events";

/// Creates a session on the running `sessions` function and returns the
/// request that appends one event to it (the same event every time: a chat
/// turn with a small state delta).
async fn append_request(base_url: &str) -> Request {
    let path = "/apps/bench/users/load/sessions";
    let id = format!("s{}", std::process::id());
    let created = reqwest::Client::new()
        .post(format!("{base_url}{path}"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"session_id":"{id}"}}"#))
        .send()
        .await
        .unwrap_or_else(|e| bench::fail(&format!("creating the benchmark session: {e}")))
        .status()
        .as_u16();
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

/// One closed-loop measurement.
#[derive(Serialize)]
struct Row {
    function: String,
    route: String,
    connections: usize,
    stats: Stats,
    vs_no_redis: f64,
}

/// Latency at one fixed rate (median of the rounds, each figure on its own).
#[derive(Serialize, Clone, Copy)]
struct RatePoint {
    fraction: f64,
    target_per_sec: f64,
    achieved_per_sec: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

/// The fixed-rate latencies of one route.
#[derive(Serialize)]
struct FixedRate {
    function: String,
    route: String,
    max_per_sec: f64,
    connections: usize,
    points: Vec<RatePoint>,
}

fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// A rate point's cell: the achieved rate when it fell more than 5% short of
/// the target (the server or the generator could not keep the schedule).
fn short_mark(p: &RatePoint) -> &'static str {
    if p.achieved_per_sec < 0.95 * p.target_per_sec {
        "*"
    } else {
        ""
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = env_or("BENCH_SECS", 0.5);
    let rate_secs: f64 = env_or("BENCH_RATE_SECS", 1.0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    // BENCH_CONNECTIONS=64 keeps one column, e.g. to profile the function
    // with `perf record -p` while it runs (docs/performance.md).
    let wanted_connections: Vec<usize> = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| CONNECTIONS.to_vec());
    let oha_version = oha::version();
    if oha_version != oha::PINNED {
        progress(&format!(
            "oha {oha_version} found, {} pinned (scripts/install-oha.sh)",
            oha::PINNED
        ));
    }
    let redis = RedisServer::start();
    let bins = bench::release_functions();
    if bins.is_empty() {
        bench::fail(
            "no release binaries in target/release: run `cargo build --release` (make bench does)",
        );
    }
    let mut rows = Vec::new();
    let mut fixed = Vec::new();
    for (name, bin) in &bins {
        let mut f =
            FunctionProcess::spawn(bin, &[("REDIS_URL", &redis.url()), ("LOG_LEVEL", "warn")]);
        f.wait_ready(Duration::from_secs(10)).await;
        let base_url = f.base_url();
        let mut routes = vec![
            ("/healthz".to_owned(), Request::get("/healthz")),
            ("/redis-health".to_owned(), Request::get("/redis-health")),
        ];
        if name == "sessions" {
            routes.push((APPEND_ROUTE.to_owned(), append_request(&base_url).await));
        }
        // The closed loop: the maximum rate at each connection count.
        for connections in CONNECTIONS {
            if !wanted_connections.contains(&connections) {
                continue;
            }
            let mut baseline = Stats::default();
            for (route, request) in &routes {
                progress(&format!("{name} {route} at {connections} connections"));
                let load = |d: f64| Load {
                    base_url: &base_url,
                    request,
                    connections,
                    duration: Duration::from_secs_f64(d),
                    rate: None,
                };
                // Warm-up (new connections, the server's first requests).
                let _ = oha::run(&load(secs / 5.0));
                let stats = median((0..rounds).map(|_| oha::run(&load(secs))).collect());
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
        // The fixed rate: latency at fractions of each route's maximum.
        for (route, request) in &routes {
            let Some(best) = rows
                .iter()
                .filter(|r| &r.function == name && &r.route == route)
                .max_by(|a, b| a.stats.ops_per_sec.total_cmp(&b.stats.ops_per_sec))
            else {
                continue;
            };
            let (max_per_sec, connections) = (best.stats.ops_per_sec, best.connections);
            let mut points = Vec::new();
            for fraction in FRACTIONS {
                let target = max_per_sec * fraction;
                progress(&format!(
                    "{name} {route} at {target:.0} requests/s ({:.0}% of the maximum), {connections} connections",
                    fraction * 100.0
                ));
                let runs: Vec<Stats> = (0..rounds)
                    .map(|_| {
                        oha::run(&Load {
                            base_url: &base_url,
                            request,
                            connections,
                            duration: Duration::from_secs_f64(rate_secs),
                            rate: Some(target),
                        })
                    })
                    .collect();
                let of = |f: fn(&Stats) -> f64| median_of(runs.iter().map(f).collect());
                points.push(RatePoint {
                    fraction,
                    target_per_sec: target,
                    achieved_per_sec: of(|s| s.ops_per_sec),
                    p50_ms: of(|s| s.p50_ms),
                    p95_ms: of(|s| s.p95_ms),
                    p99_ms: of(|s| s.p99_ms),
                });
            }
            fixed.push(FixedRate {
                function: name.clone(),
                route: route.clone(),
                max_per_sec,
                connections,
                points,
            });
        }
        if !f.is_running() {
            bench::fail(&format!(
                "{name} exited during the benchmark:\n{}",
                f.output()
            ));
        }
    }
    let mut report = bench::Report::default();
    report.say(&format!(
        "Maximum rate (oha {oha_version}, closed loop), median of {rounds} rounds of {secs} s"
    ));
    let printable: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.function.clone(),
                r.route.clone(),
                r.connections.to_string(),
                format!("{:.0}", r.stats.ops_per_sec),
                format!("{:.0}%", r.vs_no_redis * 100.0),
            ]
        })
        .collect();
    report.say(&table(
        &["function", "route", "conns", "req/s", "vs /healthz"],
        &printable,
    ));
    report.say("");
    report.say(&format!(
        "Latency at a fixed rate (oha -q, --latency-correction), % of the maximum above, \
         median of {rounds} runs of {rate_secs} s; * = achieved rate more than 5% short"
    ));
    let printable: Vec<Vec<String>> = fixed
        .iter()
        .map(|f| {
            let mut cells = vec![
                f.function.clone(),
                f.route.clone(),
                format!("{:.0}", f.max_per_sec),
                f.connections.to_string(),
            ];
            for p in &f.points {
                cells.push(format!("{:.3}{}", p.p50_ms, short_mark(p)));
                cells.push(format!("{:.3}{}", p.p99_ms, short_mark(p)));
            }
            cells
        })
        .collect();
    report.say(&table(
        &[
            "function",
            "route",
            "max req/s",
            "conns",
            "25% p50",
            "25% p99",
            "50% p50",
            "50% p99",
            "75% p50",
            "75% p99",
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
    let throughput_svg = chart::write(
        "http-throughput",
        &Chart {
            title: "HTTP maximum rate against connections (closed loop)",
            x_label: "keep-alive connections",
            y_label: "requests per second",
            x_scale: Scale::Log,
            y_scale: Scale::Linear,
        },
        &series,
    );
    let latency_series: Vec<Series> = fixed
        .iter()
        .map(|f| Series {
            name: format!("{} {}", f.function, f.route),
            points: f
                .points
                .iter()
                .map(|p| (p.fraction * 100.0, p.p99_ms))
                .collect(),
        })
        .collect();
    let latency_svg = chart::write(
        "http-latency",
        &Chart {
            title: "HTTP p99 latency at a fixed rate (open loop, latency corrected)",
            x_label: "% of the maximum rate",
            y_label: "p99 ms",
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
        },
        &latency_series,
    );
    let path = bench::write_results(
        "http",
        &serde_json::json!({
            "generator": format!("oha {oha_version}"),
            "seconds": secs,
            "rounds": rounds,
            "rate_seconds": rate_secs,
            "rows": rows,
            "fixed_rate": fixed,
        }),
    );
    report.into_doc("http");
    out(&format!(
        "results: {} {} {}",
        path.display(),
        throughput_svg.display(),
        latency_svg.display()
    ));
}
