//! Start and size of each function: time from exec to the first `200` from
//! `/redis-health` (the first Redis connection included), resident memory
//! idle and under load, and the size of the release binary and of its Lambda
//! zip (`bootstrap`, deflated). Writes `bench-results/startup.json`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use bench::oha::{self, Load, Request};
use bench::{out, progress, table};
use serde::Serialize;
use shared::testkit::{FunctionProcess, RedisServer, free_port};

#[derive(Serialize)]
struct Row {
    function: String,
    start_to_healthy_ms_median: f64,
    start_to_healthy_ms_max: f64,
    idle_rss_mib: f64,
    load_rss_mib: f64,
    binary_mib: f64,
    lambda_zip_mib: f64,
}

/// One `GET /redis-health`; true on a 200.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /redis-health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn zip_size(bin: &std::path::Path) -> u64 {
    let zip = std::env::temp_dir().join(format!("bench-{}.zip", std::process::id()));
    let script = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n    z.write(sys.argv[2], 'bootstrap')\n";
    let ok = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&zip)
        .arg(bin)
        .status()
        .is_ok_and(|s| s.success());
    let size = if ok {
        std::fs::metadata(&zip).map(|m| m.len()).unwrap_or(0)
    } else {
        0
    };
    let _ = std::fs::remove_file(&zip);
    size
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let redis = RedisServer::start();
    let runs: usize = std::env::var("BENCH_STARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut rows = Vec::new();
    for (name, bin) in bench::release_functions() {
        progress(&format!("{name}: {runs} cold starts"));
        let mut times = Vec::new();
        for _ in 0..runs {
            let port = free_port();
            let started = Instant::now();
            let mut f = FunctionProcess::spawn(
                &bin,
                &[("REDIS_URL", &redis.url()), ("PORT", &port.to_string())],
            );
            while !healthy(port) {
                if started.elapsed() > Duration::from_secs(10) || !f.is_running() {
                    bench::fail(&format!("{name} did not become healthy:\n{}", f.output()));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        progress(&format!("{name}: memory idle and under load"));
        let port = free_port();
        let mut f = FunctionProcess::spawn(
            &bin,
            &[
                ("REDIS_URL", &redis.url()),
                ("PORT", &port.to_string()),
                ("LOG_LEVEL", "warn"),
            ],
        );
        f.wait_ready(Duration::from_secs(10)).await;
        let _ = healthy(port);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = bench::proc::rss_kib(f.pid()).unwrap_or(0);
        // Memory under load: 64 keep-alive connections in a closed loop.
        let base_url = f.base_url();
        let request = Request::get("/redis-health");
        let mut load = oha::spawn(&Load {
            base_url: &base_url,
            request: &request,
            connections: 64,
            duration: Duration::from_secs(3),
            rate: None,
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let loaded = bench::proc::rss_kib(f.pid()).unwrap_or(0);
        let _ = load.wait();
        let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
        rows.push(Row {
            function: name,
            start_to_healthy_ms_median: times[times.len() / 2],
            start_to_healthy_ms_max: times[times.len() - 1],
            idle_rss_mib: idle as f64 / 1024.0,
            load_rss_mib: loaded as f64 / 1024.0,
            binary_mib: mib(size),
            lambda_zip_mib: mib(zip_size(&bin)),
        });
    }
    let printable: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.function.clone(),
                format!("{:.1}", r.start_to_healthy_ms_median),
                format!("{:.1}", r.start_to_healthy_ms_max),
                format!("{:.1}", r.idle_rss_mib),
                format!("{:.1}", r.load_rss_mib),
                format!("{:.1}", r.binary_mib),
                format!("{:.1}", r.lambda_zip_mib),
            ]
        })
        .collect();
    let mut report = bench::Report::default();
    report.say(&format!(
        "Start and size (median of {runs} starts; exec to the first 200 from /redis-health)"
    ));
    report.say(&table(
        &[
            "function",
            "start ms",
            "max ms",
            "idle MiB",
            "load MiB",
            "binary MiB",
            "zip MiB",
        ],
        &printable,
    ));
    let path = bench::write_results(
        "startup",
        &serde_json::json!({ "starts": runs, "rows": rows }),
    );
    report.into_doc("startup");
    out(&format!("results: {}", path.display()));
}
