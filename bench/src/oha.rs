//! HTTP load from [oha](https://crates.io/crates/oha), run as a subprocess
//! with its JSON output: a closed loop (N keep-alive connections, one request
//! at a time each) to find the maximum rate, and a fixed rate (open loop)
//! with oha's latency correction for the latency figures, so that a stalled
//! response delays the requests scheduled behind it in the figures too
//! (no coordinated omission).
//!
//! `scripts/install-oha.sh` installs the pinned version (`make bench` runs
//! it); `OHA` names another binary.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::{Stats, fail};

/// The version `scripts/install-oha.sh` installs; another one is used, and said.
pub const PINNED: &str = "1.16.0";

/// One request to send repeatedly.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// JSON body, if any.
    pub body: Option<String>,
}

impl Request {
    /// A `GET` of `path`.
    pub fn get(path: &str) -> Self {
        Self {
            method: "GET",
            path: path.to_owned(),
            body: None,
        }
    }

    /// A `POST` of a JSON body.
    pub fn post_json(path: &str, body: String) -> Self {
        Self {
            method: "POST",
            path: path.to_owned(),
            body: Some(body),
        }
    }
}

/// One oha run.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    /// `http://host:port` of the server.
    pub base_url: &'a str,
    /// What to send.
    pub request: &'a Request,
    /// Keep-alive connections.
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
    /// `None`: closed loop. `Some(r)`: `r` requests per second on a fixed
    /// schedule, latency measured from each request's scheduled start.
    pub rate: Option<f64>,
}

/// The oha binary: `$OHA`, else `$CARGO_HOME/bin/oha` (where
/// `scripts/install-oha.sh` puts it), else `oha` on `PATH`.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("OHA") {
        return p.into();
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    cargo_home
        .map(|h| h.join("bin").join("oha"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "oha".into())
}

/// `oha --version`'s number; ends the program when oha cannot run.
pub fn version() -> String {
    let output = Command::new(binary())
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot run {} ({e}); scripts/install-oha.sh installs it (make bench does)",
                binary().display()
            ))
        });
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().trim_start_matches("oha ").to_owned()
}

fn command(load: &Load<'_>) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(["--no-tui", "--output-format", "json"])
        .args(["-z", &format!("{}ms", load.duration.as_millis().max(1))])
        .args(["-c", &load.connections.to_string()])
        .args(["-m", load.request.method]);
    if let Some(body) = &load.request.body {
        cmd.args(["-d", body, "-T", "application/json"]);
    }
    if let Some(rate) = load.rate {
        cmd.args(["-q", &format!("{rate:.0}"), "--latency-correction"]);
    }
    cmd.arg(format!("{}{}", load.base_url, load.request.path));
    cmd.stdin(Stdio::null());
    cmd
}

/// The parts of oha's JSON report read here (durations in seconds).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    summary: Summary,
    latency_percentiles: Percentiles,
    status_code_distribution: std::collections::BTreeMap<String, u64>,
    error_distribution: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
struct Summary {
    total: f64,
}

#[derive(Debug, Deserialize)]
struct Percentiles {
    p50: Option<f64>,
    p95: Option<f64>,
    p99: Option<f64>,
}

/// oha counts the requests still in flight when `-z` ends as this error.
const DEADLINE: &str = "aborted due to deadline";

/// Runs oha and returns throughput (2xx responses per second) and latency
/// percentiles. Any other status or any error other than the end of the run
/// ends the program: numbers from a failing setup are meaningless.
pub fn run(load: &Load<'_>) -> Stats {
    let output = command(load).output().unwrap_or_else(|e| {
        fail(&format!(
            "cannot run {} ({e}); scripts/install-oha.sh installs it (make bench does)",
            binary().display()
        ))
    });
    let what = format!("oha {} {}", load.request.method, load.request.path);
    if !output.status.success() {
        fail(&format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let report: Report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        fail(&format!(
            "{what}: unreadable JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        ))
    });
    let mut ok = 0;
    for (status, count) in &report.status_code_distribution {
        if status.starts_with('2') {
            ok += count;
        } else {
            fail(&format!("{what}: {count} responses with status {status}"));
        }
    }
    if let Some((error, count)) = report
        .error_distribution
        .iter()
        .find(|(e, _)| e.as_str() != DEADLINE)
    {
        fail(&format!("{what}: {count} requests failed: {error}"));
    }
    let ms = |s: Option<f64>| s.unwrap_or(0.0) * 1e3;
    Stats {
        ops: ok,
        ops_per_sec: ok as f64 / report.summary.total.max(1e-9),
        p50_ms: ms(report.latency_percentiles.p50),
        p95_ms: ms(report.latency_percentiles.p95),
        p99_ms: ms(report.latency_percentiles.p99),
    }
}

/// Starts oha in the background (its report discarded), e.g. to load a
/// server while something else is measured.
pub fn spawn(load: &Load<'_>) -> Child {
    command(load)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot run {} ({e}); scripts/install-oha.sh installs it (make bench does)",
                binary().display()
            ))
        })
}
