//! Which pool should the client use? Measures `GET` through
//! - the project's client with one multiplexed connection,
//! - the project's client with a round-robin of 2 and 4 multiplexed connections,
//! - a deadpool-redis checkout pool of 16 and 64 connections,
//!
//! at 1, 16, 64 and 256 concurrent callers, beside `redis-benchmark` at the
//! same concurrency without pipelining, all against one `redis-server`
//! started here. Prints a table and writes `bench-results/pool.json`.
//!
//! `BENCH_SECS` sets the length of each measurement (default 0.3 s),
//! `BENCH_ROUNDS` the rounds whose median is reported (default 5).

use std::time::Duration;

use bench::{
    Stats, closed_loop, env_or, median, out, progress, redis_benchmark, table, write_results,
};
use serde::Serialize;
use shared::RedisClient;
use shared::testkit::RedisServer;

const CONCURRENCY: [usize; 4] = [1, 16, 64, 256];

#[derive(Serialize)]
struct Row {
    pool: String,
    concurrency: usize,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    vs_redis_benchmark: f64,
}

async fn multiplexed(server: &RedisServer, size: usize, concurrency: usize, secs: f64) -> Stats {
    let mut config = server.config();
    config.max_connections = size;
    let client = RedisClient::new(config).unwrap_or_else(|e| bench::fail(&e.to_string()));
    closed_loop(concurrency, Duration::from_secs_f64(secs), move || {
        let client = client.clone();
        async move {
            let mut c = client.conn()?;
            redis::cmd("GET")
                .arg("key:bench")
                .query_async::<Option<String>>(&mut c)
                .await
                .map(drop)
                .map_err(shared::RedisFailure::from)
        }
    })
    .await
}

async fn deadpool(server: &RedisServer, size: usize, concurrency: usize, secs: f64) -> Stats {
    let pool = match deadpool_redis::Config::from_url(server.url()).builder() {
        Ok(builder) => builder
            .max_size(size)
            .runtime(deadpool_redis::Runtime::Tokio1)
            .build()
            .unwrap_or_else(|e| bench::fail(&format!("cannot build the deadpool pool: {e}"))),
        Err(e) => bench::fail(&format!("cannot configure the deadpool pool: {e}")),
    };
    closed_loop(concurrency, Duration::from_secs_f64(secs), move || {
        let pool = pool.clone();
        async move {
            let mut c = pool.get().await.map_err(|e| e.to_string())?;
            redis::cmd("GET")
                .arg("key:bench")
                .query_async::<Option<String>>(&mut c)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    })
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = env_or("BENCH_SECS", 0.3);
    let rounds: usize = env_or("BENCH_ROUNDS", 5);
    let server = RedisServer::start();
    redis::cmd("SET")
        .arg("key:bench")
        .arg("x".repeat(64))
        .exec(&mut server.admin())
        .unwrap_or_else(|e| bench::fail(&e.to_string()));

    let pools = [
        "multiplexed x1",
        "multiplexed x2",
        "multiplexed x4",
        "deadpool x16",
        "deadpool x64",
    ];
    let mut rows = Vec::new();
    for concurrency in CONCURRENCY {
        progress(&format!("redis-benchmark -t get -c {concurrency}"));
        let reference = median(
            (0..rounds)
                .map(|_| {
                    redis_benchmark(
                        server.port(),
                        "get",
                        concurrency,
                        bench::reference_requests(secs, concurrency),
                    )
                })
                .collect(),
        );
        rows.push(Row {
            pool: "redis-benchmark".into(),
            concurrency,
            ops_per_sec: reference.ops_per_sec,
            p50_ms: reference.p50_ms,
            p99_ms: reference.p99_ms,
            vs_redis_benchmark: 1.0,
        });
        for pool in pools {
            progress(&format!("{pool} at {concurrency} callers"));
            let mut samples = Vec::new();
            for _ in 0..rounds {
                samples.push(match pool {
                    "multiplexed x1" => multiplexed(&server, 1, concurrency, secs).await,
                    "multiplexed x2" => multiplexed(&server, 2, concurrency, secs).await,
                    "multiplexed x4" => multiplexed(&server, 4, concurrency, secs).await,
                    "deadpool x16" => deadpool(&server, 16, concurrency, secs).await,
                    _ => deadpool(&server, 64, concurrency, secs).await,
                });
            }
            let s = median(samples);
            rows.push(Row {
                pool: pool.into(),
                concurrency,
                ops_per_sec: s.ops_per_sec,
                p50_ms: s.p50_ms,
                p99_ms: s.p99_ms,
                vs_redis_benchmark: s.ops_per_sec / reference.ops_per_sec.max(1.0),
            });
        }
    }
    let printable: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.pool.clone(),
                r.concurrency.to_string(),
                format!("{:.0}", r.ops_per_sec),
                format!("{:.3}", r.p50_ms),
                format!("{:.3}", r.p99_ms),
                format!("{:.2}x", r.vs_redis_benchmark),
            ]
        })
        .collect();
    let mut report = bench::Report::default();
    report.say(&format!(
        "GET throughput and latency by pool (median of {rounds} rounds of {secs} s)"
    ));
    report.say(&table(
        &[
            "pool",
            "callers",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "vs redis-benchmark",
        ],
        &printable,
    ));
    let path = write_results(
        "pool",
        &serde_json::json!({ "seconds": secs, "rounds": rounds, "rows": rows }),
    );
    report.into_doc("pool");
    out(&format!("results: {}", path.display()));
}
