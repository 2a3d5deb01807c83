//! Shared pieces of the benchmark programs: a closed-loop driver for
//! in-process operations, HTTP load through oha, the `redis-benchmark`
//! reference, tables and JSON results.
//!
//! Benchmarks are programs, not tests: they print a table with the reference
//! measured in the same run and write machine-readable results under
//! `bench-results/`. These machines are shared and noisy, so every figure is
//! the median of several rounds and comparisons are ratios.

pub mod chart;
pub mod monitor;
pub mod oha;
pub mod proc;

use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Results of one measurement.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    /// Operations completed.
    pub ops: u64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th percentile latency, ms.
    pub p95_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

impl Stats {
    /// Throughput and percentiles of `samples` (per-operation latencies)
    /// completed in `elapsed`.
    pub fn from_samples(mut samples: Vec<Duration>, elapsed: Duration) -> Self {
        samples.sort_unstable();
        let pct = |q: f64| {
            samples
                .get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        Self {
            ops: samples.len() as u64,
            ops_per_sec: samples.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
            p99_ms: pct(0.99),
        }
    }
}

/// The value of environment variable `name` parsed as `T`, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `op` from `concurrency` tasks for `duration` (after a short warm-up)
/// and measures throughput and per-operation latency. A failed operation
/// aborts the benchmark: numbers from a failing setup are meaningless.
pub async fn closed_loop<F, Fut, E>(concurrency: usize, duration: Duration, op: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Debug,
{
    let op = Arc::new(op);
    let run = |d: Duration| {
        let op = op.clone();
        async move {
            let stop = Instant::now() + d;
            let tasks: Vec<_> = (0..concurrency)
                .map(|_| {
                    let op = op.clone();
                    tokio::spawn(async move {
                        let mut samples = Vec::with_capacity(4_096);
                        while Instant::now() < stop {
                            let t = Instant::now();
                            if let Err(e) = op().await {
                                return Err(format!("{e:?}"));
                            }
                            samples.push(t.elapsed());
                        }
                        Ok(samples)
                    })
                })
                .collect();
            let started = Instant::now();
            let mut all = Vec::new();
            for task in tasks {
                match task.await {
                    Ok(Ok(samples)) => all.extend(samples),
                    Ok(Err(e)) => fail(&format!("operation failed during the benchmark: {e}")),
                    Err(e) => fail(&format!("benchmark task failed: {e}")),
                }
            }
            (all, started.elapsed())
        }
    };
    let _ = run(duration / 5).await;
    let (samples, elapsed) = run(duration).await;
    Stats::from_samples(samples, elapsed)
}

/// The median by `ops_per_sec` of several rounds.
pub fn median(mut rounds: Vec<Stats>) -> Stats {
    rounds.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    rounds.get(rounds.len() / 2).copied().unwrap_or_default()
}

/// Runs `redis-benchmark` against `port` for one test (`get`, `set`,
/// `ping_mbulk`, `rpush`...) at `clients` connections without pipelining.
pub fn redis_benchmark(port: u16, test: &str, clients: usize, requests: u64) -> Stats {
    redis_benchmark_args(port, &["-r", "1000", "-t", test], clients, requests)
}

/// How many requests to give `redis-benchmark` so that it runs for roughly
/// `secs` at `clients` connections on a loopback server (about 15k requests
/// per second per connection, saturating near four).
pub fn reference_requests(secs: f64, clients: usize) -> u64 {
    ((secs * 15_000.0 * clients.min(4) as f64) as u64).max(2_000)
}

/// Runs `redis-benchmark` with an arbitrary command (e.g. `EVALSHA <sha> 1
/// key arg`), at `clients` connections without pipelining.
pub fn redis_benchmark_command(
    port: u16,
    command: &[String],
    clients: usize,
    requests: u64,
) -> Stats {
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    redis_benchmark_args(port, &args, clients, requests)
}

fn redis_benchmark_args(port: u16, extra: &[&str], clients: usize, requests: u64) -> Stats {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-P", "1", "--csv"])
        .args(extra)
        .output()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot run redis-benchmark ({e}); it comes with redis-server: make setup"
            ))
        });
    let text = String::from_utf8_lossy(&output.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let row = text
        .lines()
        .skip(1)
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| fail(&format!("redis-benchmark printed no result: {text}")));
    // The first column is the command line, which may itself hold commas
    // and quotes (a JSON argument): read the seven numbers from the end.
    let mut cols: Vec<f64> = row
        .rsplit(',')
        .take(7)
        .map(|c| c.trim_matches('"').parse().unwrap_or(0.0))
        .collect();
    cols.reverse();
    let col = |i: usize| cols.get(i).copied().unwrap_or(0.0);
    Stats {
        ops: requests,
        ops_per_sec: col(0),
        p50_ms: col(3),
        p95_ms: col(4),
        p99_ms: col(5),
    }
}

/// The functions' release binaries to measure: `BENCH_FUNCTIONS`
/// (comma-separated) or every function, keeping those built in `target/release`
/// (or in `BENCH_BIN_DIR`, e.g. a build with symbols for a profiler).
pub fn release_functions() -> Vec<(String, std::path::PathBuf)> {
    let wanted = std::env::var("BENCH_FUNCTIONS")
        .unwrap_or_else(|_| "tebra_debug,patient_sync,sessions".into());
    let dir = std::env::var("BENCH_BIN_DIR").unwrap_or_else(|_| "target/release".into());
    wanted
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| (n.to_owned(), Path::new(&dir).join(n)))
        .filter(|(_, p)| p.is_file())
        .collect()
}

/// Writes `value` as pretty JSON to `bench-results/<name>.json`.
pub fn write_results(name: &str, value: &impl Serialize) -> std::path::PathBuf {
    let dir = Path::new("bench-results");
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join(format!("{name}.json"));
    match serde_json::to_vec_pretty(value) {
        Ok(bytes) => {
            if let Err(e) = std::fs::write(&path, bytes) {
                fail(&format!("cannot write {}: {e}", path.display()));
            }
        }
        Err(e) => fail(&format!("cannot encode results: {e}")),
    }
    path
}

/// Prints one line of program output (the benchmarks' report goes to stdout).
pub fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Prints a progress note to stderr.
pub fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "  .. {line}");
}

/// Ends the program with a message: a benchmark that cannot run has no result.
pub fn fail(message: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "bench: {message}");
    std::process::exit(1)
}

/// Formats a table with a header row; columns are right-aligned except the first.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0))
                } else {
                    format!("{c:>w$}", w = widths.get(i).copied().unwrap_or(0))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = vec![line(header.to_vec())];
    out.push(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    for r in rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// Replaces the text between `<!-- {section}:begin -->` and
/// `<!-- {section}:end -->` in the markdown file `doc` with `text` as a code
/// block, so that the documents hold the latest output of their programs.
/// A missing file or marker is left alone (and said).
pub fn update_doc(doc: &str, section: &str, text: &str) {
    let path = Path::new(doc);
    let (begin, end) = (
        format!("<!-- {section}:begin -->"),
        format!("<!-- {section}:end -->"),
    );
    let Ok(old) = std::fs::read_to_string(path) else {
        progress(&format!("{doc} not found; not updated"));
        return;
    };
    match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if b < e => {
            let new = format!("{}{begin}\n```text\n{text}\n```\n{}", &old[..b], &old[e..]);
            if let Err(err) = std::fs::write(path, new) {
                progress(&format!("cannot update {doc}: {err}"));
            }
        }
        _ => progress(&format!("{doc} has no {begin} … {end}; not updated")),
    }
}

/// What a benchmark program prints as its result: printed as it comes, and
/// kept for its section of `docs/performance.md`.
#[derive(Debug, Default)]
pub struct Report(String);

impl Report {
    /// Prints `text` and keeps it.
    pub fn say(&mut self, text: &str) {
        out(text);
        self.0.push_str(text);
        self.0.push('\n');
    }

    /// Writes what was said into the `section` of `docs/performance.md`.
    pub fn into_doc(self, section: &str) {
        update_doc("docs/performance.md", section, self.0.trim_end());
    }
}

/// Claims and acknowledges every change queued for `practice` through a
/// `patient_sync` at `base`, and returns the patient ids seen: how the chaos
/// programs check that every acknowledged sync is in Redis. Retries a
/// failed claim (a `503` just after a fault) for a few seconds.
pub async fn drain_changes(
    http: &reqwest::Client,
    base: &str,
    practice: &str,
) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut failures = 0;
    loop {
        let reply = http
            .post(format!(
                "{base}/practices/{practice}/changes/claim?max=1000"
            ))
            .send()
            .await;
        let claimed: serde_json::Value = match reply {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
            Ok(_) | Err(_) => {
                failures += 1;
                if failures > 50 {
                    fail("claiming the queued changes kept failing after the run");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let changes = claimed["changes"].as_array().cloned().unwrap_or_default();
        if changes.is_empty() {
            return seen;
        }
        let ids: Vec<serde_json::Value> = changes.iter().map(|c| c["claim_id"].clone()).collect();
        for c in &changes {
            if let Some(p) = c["change"]["patient_id"].as_str() {
                seen.insert(p.to_owned());
            }
        }
        let _ = http
            .post(format!("{base}/practices/{practice}/changes/ack"))
            .json(&serde_json::json!({ "ids": ids }))
            .send()
            .await;
    }
}
