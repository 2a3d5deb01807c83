//! The client against its floor: each Redis operation through the project's
//! client (one multiplexed connection, deadlines, metrics, breaker) beside
//! `redis-benchmark` running the same command at the same concurrency
//! without pipelining, against one `redis-server` started here.
//!
//! Latency p50/p99 with one caller; throughput at 1, 16, 64 and 256 callers.
//! Prints a table, writes `bench-results/client.json` and two charts.
//! `BENCH_SECS` (default 1.5) and `BENCH_ROUNDS` (default 3) set the effort.

use std::sync::Arc;
use std::time::Duration;

use bench::chart::{self, Chart, Scale, Series};
use bench::{
    Stats, closed_loop, env_or, median, out, progress, redis_benchmark, redis_benchmark_command,
    table,
};
use futures::future::BoxFuture;
use serde::Serialize;
use shared::testkit::RedisServer;
use shared::{RedisClient, RedisFailure};

const CONCURRENCY: [usize; 4] = [1, 16, 64, 256];

type Op = Arc<dyn Fn(RedisClient) -> BoxFuture<'static, Result<(), RedisFailure>> + Send + Sync>;

/// What `redis-benchmark` runs as the reference for a case.
enum Reference {
    /// A built-in test (`-t`).
    Test(&'static str),
    /// A custom command.
    Command(Vec<String>),
}

struct Case {
    name: &'static str,
    reference: Reference,
    op: Op,
}

#[derive(Serialize, Clone)]
struct Row {
    case: &'static str,
    concurrency: usize,
    client: Stats,
    redis_benchmark: Stats,
    throughput_ratio: f64,
    p50_ratio: f64,
}

fn cmd_op(cmd: redis::Cmd) -> Op {
    Arc::new(move |client: RedisClient| {
        let cmd = cmd.clone();
        Box::pin(async move {
            let mut c = client.conn()?;
            cmd.query_async::<redis::Value>(&mut c)
                .await
                .map(drop)
                .map_err(RedisFailure::from)
        })
    })
}

fn cases() -> Vec<Case> {
    let mut set = redis::cmd("SET");
    set.arg("key:bench").arg("x".repeat(3));
    let mut get = redis::cmd("GET");
    get.arg("key:bench");
    vec![
        Case {
            name: "PING",
            reference: Reference::Test("ping_mbulk"),
            op: cmd_op(redis::cmd("PING")),
        },
        Case {
            name: "GET",
            reference: Reference::Command(vec!["GET".into(), "key:bench".into()]),
            op: cmd_op(get),
        },
        Case {
            name: "SET",
            reference: Reference::Command(vec!["SET".into(), "key:bench".into(), "xxx".into()]),
            op: cmd_op(set),
        },
    ]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = env_or("BENCH_SECS", 1.5);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let server = RedisServer::start();
    let client = server.client();
    let mut rows = Vec::new();
    for case in cases() {
        for concurrency in CONCURRENCY {
            progress(&format!("{} at {concurrency} callers", case.name));
            let reference = median(
                (0..rounds)
                    .map(|_| {
                        let n = (25_000 * concurrency.min(8)) as u64;
                        match &case.reference {
                            Reference::Test(t) => redis_benchmark(server.port(), t, concurrency, n),
                            Reference::Command(c) => {
                                redis_benchmark_command(server.port(), c, concurrency, n)
                            }
                        }
                    })
                    .collect(),
            );
            let mut samples = Vec::new();
            for _ in 0..rounds {
                let op = case.op.clone();
                let client = client.clone();
                samples.push(
                    closed_loop(concurrency, Duration::from_secs_f64(secs), move || {
                        op(client.clone())
                    })
                    .await,
                );
            }
            let ours = median(samples);
            rows.push(Row {
                case: case.name,
                concurrency,
                throughput_ratio: ours.ops_per_sec / reference.ops_per_sec.max(1.0),
                p50_ratio: ours.p50_ms / reference.p50_ms.max(1e-6),
                client: ours,
                redis_benchmark: reference,
            });
        }
    }
    let printable: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.case.to_owned(),
                r.concurrency.to_string(),
                format!("{:.0}", r.client.ops_per_sec),
                format!("{:.0}", r.redis_benchmark.ops_per_sec),
                format!("{:.2}x", r.throughput_ratio),
                format!("{:.3}", r.client.p50_ms),
                format!("{:.3}", r.redis_benchmark.p50_ms),
                format!("{:.2}x", r.p50_ratio),
                format!("{:.3}", r.client.p99_ms),
                format!("{:.3}", r.redis_benchmark.p99_ms),
            ]
        })
        .collect();
    out(&format!(
        "Client vs redis-benchmark (no pipelining), median of {rounds} rounds of {secs} s"
    ));
    out(&table(
        &[
            "case",
            "callers",
            "client ops/s",
            "r-b ops/s",
            "throughput",
            "client p50",
            "r-b p50",
            "p50 ratio",
            "client p99",
            "r-b p99",
        ],
        &printable,
    ));
    let by_case = |ours: &dyn Fn(&Row) -> f64, floor: &dyn Fn(&Row) -> f64| -> Vec<Series> {
        let mut names: Vec<&str> = rows.iter().map(|r| r.case).collect();
        names.dedup();
        let mut series = Vec::new();
        for name in names {
            let of = |f: &dyn Fn(&Row) -> f64| -> Vec<(f64, f64)> {
                rows.iter()
                    .filter(|r| r.case == name)
                    .map(|r| (r.concurrency as f64, f(r)))
                    .collect()
            };
            series.push(Series {
                name: format!("{name} (client)"),
                points: of(ours),
            });
            series.push(Series {
                name: format!("{name} (redis-benchmark)"),
                points: of(floor),
            });
        }
        series
    };
    let throughput = chart::write(
        "client-throughput",
        &Chart {
            title: "Throughput against concurrency",
            x_label: "concurrent callers",
            y_label: "operations per second",
            x_scale: Scale::Log,
            y_scale: Scale::Linear,
        },
        &by_case(&|r: &Row| r.client.ops_per_sec, &|r: &Row| {
            r.redis_benchmark.ops_per_sec
        }),
    );
    let latency = chart::write(
        "client-latency",
        &Chart {
            title: "p50 latency against concurrency",
            x_label: "concurrent callers",
            y_label: "p50 latency (ms)",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
        },
        &by_case(&|r: &Row| r.client.p50_ms, &|r: &Row| {
            r.redis_benchmark.p50_ms
        }),
    );
    let path = bench::write_results(
        "client",
        &serde_json::json!({ "seconds": secs, "rounds": rounds, "rows": rows }),
    );
    out(&format!(
        "results: {} {} {}",
        path.display(),
        throughput.display(),
        latency.display()
    ));
}
