//! Logging setup for each place the code runs.
//!
//! - `LOG_FORMAT=json` (the default on Lambda and Cloud Run): one JSON object
//!   per line with `severity`, `message` and `time`, which Cloud Logging reads
//!   as structured fields, plus the fields of the event and of the spans it is
//!   in (so `request_id` is on every line of a request) and, when a Cloud
//!   Trace header came in, `logging.googleapis.com/trace`. CloudWatch Logs
//!   stores the same line as JSON.
//! - `LOG_FORMAT=text` (the default in a terminal): compact human-readable lines.
//!
//! The filter is `RUST_LOG` when set, otherwise `LOG_LEVEL` (default `info`).
//! The metrics line (target [`names::METRICS_TARGET`]) passes at `info`
//! whatever the filter says: the alerts read it.
//!
//! # Metrics
//!
//! [`MetricsReporter`] turns the Redis client's counters (and the HTTP
//! responses it is shown) into one JSON line per interval that serves both
//! clouds: Cloud Logging's log-based metrics extract its fields, and its `_aws`
//! member is a CloudWatch Embedded Metric Format document over the same
//! fields. The names are in [`names`], the metric contract. Nothing is logged
//! per operation: a line is written when an interval is over (checked after
//! every request and by a timer), sooner when operations failed, never for an
//! idle interval, and once more at shutdown.

pub mod names;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::client::RedisClient;
use crate::config::{Config, ConfigError, Env, LogFormat};
use crate::metrics::{IntervalMetrics, IntervalPolicy};

/// The event field whose value (a JSON object, as a string) the JSON line
/// format merges into the line: how the metrics line carries fields whose
/// names are constants and the nested `_aws` document.
const MERGE_FIELD: &str = "_json"; // the field name written literally in `MetricsReporter::write`

/// Installs the global logger for a function. Call once, first thing in
/// `main`; later calls do nothing.
pub fn init(service: &'static str, config: &Config) {
    let filter = filter(&config.log_level);
    install(service, config.log_format, filter, io::stdout);
}

/// Installs the global logger writing to `writer`: for tests that read the
/// log lines back (to prove a secret never appears in them).
pub fn init_with_writer<W>(service: &'static str, format: LogFormat, level: &str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    install(service, format, filter(level), writer);
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
    build(service, format, filter(level), writer)
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

fn install<W>(service: &'static str, format: LogFormat, filter: EnvFilter, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    if build(service, format, filter, writer).try_init().is_ok() {
        install_panic_hook();
    }
}

fn build<W>(
    service: &'static str,
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
                    .event_format(JsonLine { service })
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

/// Logs panics as one error line. The payload is left out: a panic message
/// can quote the data being processed.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic.location = %location, "a handler panicked; the request was answered 500");
    }));
}

/// Fields of a span kept as JSON values, for the JSON line format.
#[derive(Debug, Default)]
struct SpanFieldMap(Map<String, Value>);

/// Records span fields into the span's extensions.
struct SpanFields;

impl<S> Layer<S> for SpanFields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = SpanFieldMap::default();
            attrs.record(&mut JsonVisitor(&mut fields.0));
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFieldMap>()
        {
            values.record(&mut JsonVisitor(&mut fields.0));
        }
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == MERGE_FIELD
            && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(value)
        {
            self.0.extend(fields);
            return;
        }
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

/// The JSON line format (see the module documentation).
struct JsonLine {
    service: &'static str,
}

fn severity(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        line.insert(
            names::SEVERITY.into(),
            severity(*event.metadata().level()).into(),
        );
        line.insert(names::TIME.into(), rfc3339(SystemTime::now()).into());
        line.insert(names::SERVICE.into(), self.service.into());
        line.insert("target".into(), event.metadata().target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFieldMap>() {
                    for (k, v) in &fields.0 {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        if let Some(trace) = line.remove("trace") {
            line.insert(names::TRACE.into(), trace);
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writer.write_str(&text)?;
        writer.write_char('\n')
    }
}

/// `METRICS_INTERVAL_SECS`: how often the metrics line is written.
pub const INTERVAL_VAR: &str = "METRICS_INTERVAL_SECS";
/// The default interval of a long-lived server (Cloud Run, containers).
pub const DEFAULT_INTERVAL_SERVER: Duration = Duration::from_secs(60);
/// The default interval on Lambda, shorter because an execution environment
/// can be frozen, then reclaimed, with an interval's counts still unwritten.
pub const DEFAULT_INTERVAL_LAMBDA: Duration = Duration::from_secs(10);
/// How soon a line is written after an operation failed (at most the interval).
pub const ERROR_INTERVAL: Duration = Duration::from_secs(5);

/// HTTP responses counted by [`MetricsReporter::record_response`] in one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpCounts {
    /// Responses of any status.
    pub requests: u64,
    /// Responses with a 5xx status.
    pub server_errors: u64,
}

/// Writes the metrics line (see the module documentation) for one Redis
/// client and the HTTP responses it is shown. Cheap to clone; clones share
/// the counters.
///
/// Where the line is written from, and why:
/// - after every request ([`Self::record_response`] then
///   [`Self::flush_if_due`], done by [`crate::http::finish`]'s layer): on
///   Lambda, and on Cloud Run without always-on CPU, the process runs only
///   while it serves, so the request path is the one place that surely runs;
/// - by a timer ([`Self::spawn_timer`]) so an idle server still reports the
///   tail of its last interval;
/// - at shutdown ([`Self::flush`], called by [`crate::serve`] after the
///   server drained, and on SIGTERM on Lambda).
#[derive(Debug, Clone)]
pub struct MetricsReporter {
    inner: Arc<ReporterInner>,
}

#[derive(Debug)]
struct ReporterInner {
    client: RedisClient,
    policy: IntervalPolicy,
    requests: AtomicU64,
    server_errors: AtomicU64,
}

impl MetricsReporter {
    /// A reporter for `client` that writes a line every `interval` (sooner,
    /// after [`ERROR_INTERVAL`], when an operation failed). A zero interval
    /// writes one line per request that did something.
    pub fn new(client: RedisClient, interval: Duration) -> Self {
        Self::with_policy(client, IntervalPolicy::new(interval, ERROR_INTERVAL))
    }

    /// A reporter whose intervals end as `policy` says (regular length, and
    /// how soon after a failure).
    pub fn with_policy(client: RedisClient, policy: IntervalPolicy) -> Self {
        Self {
            inner: Arc::new(ReporterInner {
                client,
                policy,
                requests: AtomicU64::new(0),
                server_errors: AtomicU64::new(0),
            }),
        }
    }

    /// A reporter with the interval from `METRICS_INTERVAL_SECS` (0 to 3600),
    /// by default [`DEFAULT_INTERVAL_LAMBDA`] on Lambda and
    /// [`DEFAULT_INTERVAL_SERVER`] elsewhere.
    ///
    /// # Errors
    /// When `METRICS_INTERVAL_SECS` is not an integer from 0 to 3600.
    pub fn from_env(client: RedisClient, env: &Env<'_>) -> Result<Self, ConfigError> {
        let default = if crate::http::on_lambda() {
            DEFAULT_INTERVAL_LAMBDA
        } else {
            DEFAULT_INTERVAL_SERVER
        };
        let secs = env.range(INTERVAL_VAR, default.as_secs(), 0, 3_600)?;
        Ok(Self::new(client, Duration::from_secs(secs)))
    }

    /// The regular interval between two lines.
    pub fn interval(&self) -> Duration {
        self.inner.policy.every
    }

    /// Counts one HTTP response of `status`.
    pub fn record_response(&self, status: u16) {
        self.inner.requests.fetch_add(1, Relaxed);
        if status >= 500 {
            self.inner.server_errors.fetch_add(1, Relaxed);
        }
    }

    /// Writes the line if the interval is over. Returns whether a line was
    /// written.
    pub fn flush_if_due(&self) -> bool {
        let taken = self
            .inner
            .client
            .metrics_recorder()
            .take_interval_if_due(self.inner.policy);
        self.write(taken)
    }

    /// Ends the interval now and writes its line, unless nothing happened in
    /// it. Returns whether a line was written.
    pub fn flush(&self) -> bool {
        let taken = self.inner.client.metrics_recorder().take_interval();
        self.write(taken)
    }

    fn write(&self, taken: Option<IntervalMetrics>) -> bool {
        let Some(redis) = taken else {
            return false;
        };
        let http = HttpCounts {
            requests: self.inner.requests.swap(0, Relaxed),
            server_errors: self.inner.server_errors.swap(0, Relaxed),
        };
        if redis.is_empty() && http.requests == 0 {
            return false;
        }
        let document = metrics_document(&redis, http, SystemTime::now());
        let fields = Value::Object(document).to_string();
        // Failures are logged as a warning so that they show at any level.
        if redis.errors.total() > 0 || http.server_errors > 0 {
            tracing::warn!(target: names::METRICS_TARGET, _json = fields.as_str(), "{}", names::METRICS_MESSAGE);
        } else {
            tracing::info!(target: names::METRICS_TARGET, _json = fields.as_str(), "{}", names::METRICS_MESSAGE);
        }
        true
    }

    /// Starts a task that calls [`Self::flush_if_due`] every second, and on
    /// Lambda also [`Self::flush`] when the runtime sends SIGTERM (it does
    /// when an extension is registered, before the environment is
    /// reclaimed), then ends the process as the signal would have.
    /// Dropping the handle does not stop the task; abort it.
    pub fn spawn_timer(&self) -> tokio::task::JoinHandle<()> {
        let reporter = self.clone();
        tokio::spawn(async move {
            let tick = reporter
                .interval()
                .clamp(Duration::from_millis(200), Duration::from_secs(1));
            let mut ticker = tokio::time::interval(tick);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let terminated = terminated_on_lambda();
            tokio::pin!(terminated);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        reporter.flush_if_due();
                    }
                    () = &mut terminated => {
                        reporter.flush();
                        // Then end as SIGTERM would have without this
                        // handler: the runtime is shutting the sandbox down.
                        std::process::exit(0);
                    }
                }
            }
        })
    }
}

/// Completes on SIGTERM when running on Lambda; never elsewhere (a server
/// flushes after draining instead).
async fn terminated_on_lambda() {
    #[cfg(unix)]
    if crate::http::on_lambda()
        && let Ok(mut sigterm) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        sigterm.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}

/// The fields of the metrics line for one interval: the counters under the
/// names of [`names`], and the `_aws` Embedded Metric Format document that
/// declares them as CloudWatch metrics in [`names::NAMESPACE`] with the
/// dimension [`names::SERVICE`] (which the line format adds to every line).
/// Latency metrics are left out of an interval without operations (a zero
/// would read as "fast").
pub fn metrics_document(
    redis: &IntervalMetrics,
    http: HttpCounts,
    now: SystemTime,
) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert(names::EVENT.into(), names::METRICS_EVENT.into());
    fields.insert(
        names::INTERVAL_MS.into(),
        u64::try_from(redis.duration.as_millis())
            .unwrap_or(u64::MAX)
            .into(),
    );
    fields.insert(
        names::SLOW_THRESHOLD_MS.into(),
        names::SLOW_OPERATION_THRESHOLD_MS.into(),
    );
    let counts = [
        (names::OPERATIONS, redis.operations),
        (names::ERRORS, redis.errors.total()),
        (names::ERRORS_CONNECT, redis.errors.connect),
        (names::ERRORS_TIMEOUT, redis.errors.timeout),
        (names::ERRORS_AUTH, redis.errors.auth),
        (names::ERRORS_OTHER, redis.errors.other),
        (names::SLOW_OPERATIONS, redis.slow_operations),
        (names::CIRCUIT_REJECTIONS, redis.circuit_rejections),
        (names::CONNECTIONS_REPLACED, redis.connections_replaced),
        (names::FALLBACKS, redis.fallbacks),
        (names::HTTP_REQUESTS, http.requests),
        (names::HTTP_5XX, http.server_errors),
    ];
    for (name, value) in counts {
        fields.insert(name.into(), value.into());
    }
    if redis.operations > 0 {
        fields.insert(names::LATENCY_P50_MS.into(), redis.latency.p50_ms.into());
        fields.insert(names::LATENCY_P99_MS.into(), redis.latency.p99_ms.into());
        fields.insert(names::LATENCY_MAX_MS.into(), redis.latency.max_ms.into());
    }
    let metrics: Vec<Value> = names::METRICS
        .iter()
        .filter(|(name, _)| fields.contains_key(*name))
        .map(|(name, unit)| serde_json::json!({ "Name": name, "Unit": unit.as_str() }))
        .collect();
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    fields.insert(
        names::EMF_ROOT.into(),
        serde_json::json!({
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": names::NAMESPACE,
                "Dimensions": [[names::SERVICE]],
                "Metrics": metrics,
            }],
        }),
    );
    fields
}

/// `2026-11-23T18:51:00.123Z` without a date-time dependency.
fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_459_860_123);
        assert_eq!(rfc3339(t), "2026-11-23T18:51:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
