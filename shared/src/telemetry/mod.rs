//! Logging setup for each place the code runs.
//!
//! - `LOG_FORMAT=json` (the default on Lambda and Cloud Run): one JSON object
//!   per line with `severity`, `message` and `time`, which Cloud Logging reads
//!   as structured fields, `level` and `timestamp`, which Lambda's log-level
//!   filtering reads, `service` and `environment`, plus the fields of the
//!   event and of the spans it is in (so `request_id` is on every line of a
//!   request) and, when a Cloud Trace header came in,
//!   `logging.googleapis.com/trace`. CloudWatch Logs stores the same line as
//!   JSON. (`AWS_LAMBDA_LOG_FORMAT=Text` does not change this unless
//!   `LOG_FORMAT=text` says so: the metrics need JSON; see [`crate::config`].)
//! - `LOG_FORMAT=text` (the default in a terminal): compact human-readable lines.
//!
//! The filter is `RUST_LOG` when set, otherwise `LOG_LEVEL`, otherwise
//! Lambda's `AWS_LAMBDA_LOG_LEVEL`, otherwise `info`. The metrics line
//! (target [`crate::contract::METRICS_TARGET`]) passes at `info` whatever the
//! filter says: the alerts read it; and its `level` is raised to
//! `AWS_LAMBDA_LOG_LEVEL` so that Lambda does not drop it either.
//!
//! # Metrics
//!
//! [`MetricsReporter`] turns the Redis client's counters (and the HTTP
//! responses it is shown) into one JSON line per interval that serves both
//! clouds: Cloud Logging's log-based metrics extract its fields, and its `_aws`
//! member is a CloudWatch Embedded Metric Format document over the same
//! fields. The names are in [`crate::contract`], the metric contract. Nothing is logged
//! per operation: a line is written when an interval is over (checked after
//! every request and by a timer), sooner when operations failed, never for an
//! idle interval, and once more at shutdown.
//!
//! # Layout
//!
//! - this file: [`init`] and the subscriber for each log format.
//! - `json`: the JSON line format.
//! - [`latency`]: latency histograms and percentiles.
//! - [`reporter`]: [`MetricsReporter`], the metrics line, and the
//!   [`IntervalSource`] it reads counts from.

mod json;
pub mod latency;
pub mod reporter;

use std::io;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Registry;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat, UNSET_ENVIRONMENT};
use crate::contract as names;
use json::{JsonLine, SpanFields};
pub use reporter::{
    DEFAULT_INTERVAL_LAMBDA, DEFAULT_INTERVAL_SERVER, ERROR_INTERVAL, INTERVAL_VAR, IntervalPolicy,
    IntervalSource, IntervalSummary, MetricsReporter, RouteKind,
};

/// Installs the global logger for a function. Call once, first thing in
/// `main`; later calls do nothing.
pub fn init(service: &'static str, config: &Config) {
    let filter = filter(&config.log_level);
    install(
        service,
        &config.environment,
        config.log_format,
        filter,
        io::stdout,
    );
}

/// Installs the global logger writing to `writer`: for tests that read the
/// log lines back (to prove a secret never appears in them). The lines say
/// environment [`UNSET_ENVIRONMENT`].
pub fn init_with_writer<W>(service: &'static str, format: LogFormat, level: &str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    install(service, UNSET_ENVIRONMENT, format, filter(level), writer);
}

/// The logger [`init_with_writer`] installs, without installing it: for
/// tests that scope it to one thread with `tracing::subscriber::set_default`.
pub fn subscriber<W>(
    service: &'static str,
    format: LogFormat,
    level: &str,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    subscriber_in(service, UNSET_ENVIRONMENT, format, level, writer)
}

/// [`subscriber`] whose lines name `environment` (as `DEPLOY_ENVIRONMENT`
/// does for a function): for tests that evaluate an environment's alerts.
pub fn subscriber_in<W>(
    service: &'static str,
    environment: &str,
    format: LogFormat,
    level: &str,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    build(service, environment, format, filter(level), writer)
}

fn filter(level: &str) -> EnvFilter {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        // Dependencies stay at warn unless asked: their info lines are noise
        // in a function's logs.
        EnvFilter::new(format!(
            "warn,shared={level},{},tower_http=warn",
            crate_targets(level)
        ))
    });
    match format!("{}=info", names::METRICS_TARGET).parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// The level applied to the workspace's own crates (shared and the functions).
fn crate_targets(level: &str) -> String {
    ["tebra_debug", "patient_sync", "sessions", "bench"]
        .iter()
        .map(|c| format!("{c}={level}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn install<W>(
    service: &'static str,
    environment: &str,
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    if build(service, environment, format, filter, writer)
        .try_init()
        .is_ok()
    {
        install_panic_hook();
    }
}

fn build<W>(
    service: &'static str,
    environment: &str,
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    match format {
        LogFormat::Json => Box::new(
            Registry::default().with(filter).with(SpanFields).with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLine {
                        service,
                        environment: environment.to_owned(),
                    })
                    .with_writer(writer),
            ),
        ),
        LogFormat::Text => Box::new(
            Registry::default().with(filter).with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(writer),
            ),
        ),
    }
}

/// Logs every panic as one error line, wherever it happens (a handler, a
/// background task, start-up). The payload is left out: a panic message can
/// quote the data being processed. What became of the request, if any, is
/// logged where that is known (a handler's panic: `http::routes`).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        tracing::error!(
            panic.location = %location,
            panic.thread = thread.name().unwrap_or("unnamed"),
            "panicked"
        );
    }));
}
