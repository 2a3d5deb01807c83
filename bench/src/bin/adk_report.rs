//! The report of `make bench-adk`: reads what the Python benchmark
//! (`clients/python/bench/bench_adk.py`) measured, in
//! `bench-results/adk-sessions.json`, prints the table with each service's
//! ratio to `HttpSessionService` on Redis, draws latency against history
//! length (one line per service) into `bench-results/adk-sessions-*.svg`, and
//! writes the table into `docs/performance.md` (section `adk-sessions`).

use bench::chart::{self, Chart, Scale, Series};
use bench::{Report, fail, table};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Results {
    histories: Vec<u64>,
    seconds: f64,
    #[serde(default)]
    not_run: std::collections::BTreeMap<String, String>,
    versions: std::collections::BTreeMap<String, String>,
    services: Vec<Service>,
}

#[derive(Debug, Deserialize)]
struct Service {
    name: String,
    label: String,
    cells: Vec<Cell>,
    #[serde(default)]
    skipped: Vec<Skipped>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Skipped {
    history: u64,
    why: String,
}

#[derive(Debug, Deserialize)]
struct Cell {
    history: u64,
    concurrency: u64,
    get_session: Latency,
    append_event: Latency,
}

#[derive(Debug, Deserialize)]
struct Latency {
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

/// The service the others are compared with.
const BASE: &str = "http-redis";

fn cell(service: &Service, history: u64, concurrency: u64) -> Option<&Cell> {
    service
        .cells
        .iter()
        .find(|c| c.history == history && c.concurrency == concurrency)
}

fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bench-results/adk-sessions.json".into());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| fail(&format!("cannot read {path}: {e} (run make bench-adk)")));
    let results: Results =
        serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let base = results.services.iter().find(|s| s.name == BASE);
    let mut report = Report::default();
    let versions: Vec<String> = results
        .versions
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    report.say(&format!(
        "ADK session services from one Python process ({}; {:.0} s). Latency in ms; x = p50 / p50 of HttpSessionService on redis (above 1: slower).",
        versions.join(", "),
        results.seconds
    ));
    for (op, pick) in [
        (
            "append_event",
            (|c: &Cell| &c.append_event) as fn(&Cell) -> &Latency,
        ),
        ("get_session (whole session)", |c: &Cell| &c.get_session),
    ] {
        let mut rows = Vec::new();
        for s in &results.services {
            for concurrency in [1, 16] {
                let mut row = vec![format!("{} x{concurrency}", s.label)];
                for &h in &results.histories {
                    match cell(s, h, concurrency) {
                        Some(c) => {
                            let l = pick(c);
                            let ratio = base
                                .and_then(|b| cell(b, h, concurrency))
                                .map(|b| l.p50_ms / pick(b).p50_ms)
                                .map_or_else(|| "-".into(), |r| format!("{r:.1}x"));
                            row.push(format!(
                                "{} / {} / {}  {ratio}",
                                ms(l.p50_ms),
                                ms(l.p95_ms),
                                ms(l.p99_ms)
                            ));
                        }
                        None => row.push("not measured".into()),
                    }
                }
                rows.push(row);
            }
        }
        let headers: Vec<String> = results
            .histories
            .iter()
            .map(|h| format!("{h} events: p50 / p95 / p99  x"))
            .collect();
        let mut header = vec![op];
        header.extend(headers.iter().map(String::as_str));
        report.say("");
        report.say(&table(&header, &rows));
    }
    for s in &results.services {
        if let Some(e) = &s.error {
            report.say(&format!("{}: failed: {e}", s.label));
        }
        for k in &s.skipped {
            report.say(&format!(
                "{}: not measured at {} events: {}",
                s.label, k.history, k.why
            ));
        }
    }
    for (name, why) in &results.not_run {
        report.say(&format!("{name}: not run: {why}"));
    }
    for (name, title, pick) in [
        (
            "adk-sessions-append",
            "append_event p50, one session at a time",
            (|c: &Cell| c.append_event.p50_ms) as fn(&Cell) -> f64,
        ),
        (
            "adk-sessions-get",
            "get_session (whole session) p50, one session at a time",
            |c: &Cell| c.get_session.p50_ms,
        ),
    ] {
        let series: Vec<Series> = results
            .services
            .iter()
            .filter(|s| !s.cells.is_empty())
            .map(|s| Series {
                // The short name: the legend is narrow.
                name: s.name.clone(),
                points: results
                    .histories
                    .iter()
                    .filter_map(|&h| cell(s, h, 1).map(|c| (h as f64, pick(c).max(0.001))))
                    .collect(),
            })
            .collect();
        let chart = Chart {
            title,
            x_label: "prior events in the session",
            y_label: "ms",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
        };
        let path = chart::write(name, &chart, &series);
        report.say(&format!("chart: {}", path.display()));
    }
    report.into_doc("adk-sessions");
}
