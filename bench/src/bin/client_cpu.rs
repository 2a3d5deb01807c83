//! Where the client's CPU goes: CPU time per operation of the project's
//! client (user + system, of this process only: the server is another
//! process), for `PING` and `GET` at 1, 16 and 64 concurrent callers, on a
//! runtime of `BENCH_WORKERS` threads (default 1). Unlike throughput, CPU
//! per operation barely depends on what else the machine runs, so it is
//! the figure to compare across builds and machines.
//!
//! `BENCH_SECS` (default 3) sets each measurement's length; the result is
//! the median of `BENCH_ROUNDS` (default 3). `BENCH_COMMANDS` (default
//! `PING,GET`) and `BENCH_CALLERS` (default `1,16,64`) choose the cases, for
//! a profile of one of them. Prints a table and writes
//! `bench-results/client-cpu.json`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bench::{env_or, out, progress, table};
use serde::Serialize;
use shared::RedisClient;
use shared::testkit::RedisServer;

/// User and system CPU time of this process so far (`/proc/self/stat`).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after ')'.
    let total = ticks(11) + ticks(12);
    // The kernel's USER_HZ is 100 on Linux.
    Duration::from_millis(total * 10)
}

#[derive(Serialize)]
struct Row {
    command: &'static str,
    callers: usize,
    ops: u64,
    cpu_us_per_op: f64,
    ops_per_cpu_second: f64,
}

async fn measure(
    client: &RedisClient,
    command: &'static str,
    callers: usize,
    secs: f64,
) -> (u64, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (client, stop, ops) = (client.clone(), stop.clone(), ops.clone());
            tokio::spawn(async move {
                let mut cmd = redis::cmd(command);
                if command == "GET" {
                    cmd.arg("key:bench");
                }
                while !stop.load(Relaxed) {
                    let Ok(mut conn) = client.conn() else {
                        continue;
                    };
                    if cmd.query_async::<redis::Value>(&mut conn).await.is_ok() {
                        ops.fetch_add(1, Relaxed);
                    }
                }
            })
        })
        .collect();
    // Warm up, then measure.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ops_before, cpu_before, started) = (ops.load(Relaxed), cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let (ops_after, cpu_after) = (ops.load(Relaxed), cpu_time());
    let _ = started;
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    (ops_after - ops_before, cpu_after.saturating_sub(cpu_before))
}

fn main() {
    let workers: usize = env_or("BENCH_WORKERS", 1);
    let secs: f64 = env_or("BENCH_SECS", 3.0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .unwrap_or_else(|e| bench::fail(&e.to_string()));
    runtime.block_on(async {
        let server = RedisServer::start();
        let client = RedisClient::new(server.config()).unwrap_or_else(|e| bench::fail(&e.to_string()));
        let mut rows = Vec::new();
        let commands: String = env_or("BENCH_COMMANDS", "PING,GET".to_owned());
        let callers_list: String = env_or("BENCH_CALLERS", "1,16,64".to_owned());
        let callers_list: Vec<usize> = callers_list
            .split(',')
            .map(|c| c.trim().parse().unwrap_or_else(|_| bench::fail("BENCH_CALLERS: numbers, comma-separated")))
            .collect();
        for command in commands.split(',').map(str::trim) {
            let command: &'static str = match command {
                "PING" => "PING",
                "GET" => "GET",
                _ => bench::fail("BENCH_COMMANDS: PING and/or GET"),
            };
            for &callers in &callers_list {
                progress(&format!("{command} at {callers} callers"));
                let mut samples: Vec<(u64, Duration)> = Vec::new();
                for _ in 0..rounds {
                    samples.push(measure(&client, command, callers, secs).await);
                }
                samples.sort_by(|a, b| {
                    let per = |s: &(u64, Duration)| s.1.as_secs_f64() / s.0.max(1) as f64;
                    per(a).total_cmp(&per(b))
                });
                let (ops, cpu) = samples[samples.len() / 2];
                let per_op = cpu.as_secs_f64() * 1e6 / ops.max(1) as f64;
                rows.push(Row {
                    command,
                    callers,
                    ops,
                    cpu_us_per_op: (per_op * 1_000.0).round() / 1_000.0,
                    ops_per_cpu_second: (1e6 / per_op).round(),
                });
            }
        }
        let text = table(
            &["command", "callers", "ops", "client CPU µs/op", "ops per CPU second"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.command.to_owned(),
                        r.callers.to_string(),
                        r.ops.to_string(),
                        format!("{:.3}", r.cpu_us_per_op),
                        format!("{:.0}", r.ops_per_cpu_second),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        out(&format!(
            "client CPU per operation ({workers} runtime thread(s), median of {rounds} rounds of {secs} s)\n{text}"
        ));
        let path = bench::write_results("client-cpu", &rows);
        out(&format!("results: {}", path.display()));
    });
}
