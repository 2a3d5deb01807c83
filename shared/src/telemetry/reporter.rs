//! [`MetricsReporter`]: the one JSON line per interval that the alerts read.
//!
//! The reporter does not know what it counts: an [`IntervalSource`] (the
//! Redis client's counters, see `crate::redis`) ends an interval and hands
//! over its fields, named by [`crate::contract`]; the reporter adds the HTTP
//! responses it was shown, the Embedded Metric Format document, and decides
//! when a line is due.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::config::{ConfigError, Env, on_lambda};
use crate::contract as names;

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
pub(crate) struct HttpCounts {
    /// Responses of any status.
    pub requests: u64,
    /// Responses with a 5xx status.
    pub server_errors: u64,
}

/// When an [`IntervalSource`] ends an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalPolicy {
    /// An interval ends once it is this long.
    pub every: Duration,
    /// An interval in which an operation failed ends once it is this long,
    /// so that failures show up sooner than the regular interval.
    pub with_errors_every: Duration,
}

impl IntervalPolicy {
    /// A policy: regular intervals of `every`, shortened to
    /// `with_errors_every` (at most `every`) when operations failed.
    pub fn new(every: Duration, with_errors_every: Duration) -> Self {
        Self {
            every,
            with_errors_every: with_errors_every.min(every),
        }
    }

    /// Whether an interval that has lasted `elapsed`, with or without
    /// failures, is over.
    pub fn is_due(&self, elapsed: Duration, failed: bool) -> bool {
        elapsed >= self.every || (failed && elapsed >= self.with_errors_every)
    }
}

/// What a source counted in one interval, ready for the metrics line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntervalSummary {
    /// Length of the interval.
    pub duration: Duration,
    /// The line's numeric fields, named by [`crate::contract`] (each must be
    /// one of [`names::METRICS`] to become a CloudWatch metric).
    pub fields: Vec<(&'static str, Value)>,
    /// Failed operations in the interval: a line with failures is written
    /// as a warning, so that it shows at any log level.
    pub failures: u64,
    /// Whether nothing at all was counted (no line needs to be written for
    /// the source's sake).
    pub empty: bool,
}

impl IntervalSummary {
    /// Whether nothing at all was counted.
    pub fn is_empty(&self) -> bool {
        self.empty
    }
}

/// Something whose counts the metrics line reports, one interval at a time.
pub trait IntervalSource: fmt::Debug + Send + Sync + 'static {
    /// Ends the current interval and returns what happened in it: always
    /// when `policy` is `None`, otherwise only when the policy says the
    /// interval is over. `None` when it is not over, or when another caller
    /// is ending an interval at the same moment.
    fn take_interval(&self, policy: Option<IntervalPolicy>) -> Option<IntervalSummary>;
}

/// Writes the metrics line (see the module documentation) for one
/// [`IntervalSource`] and the HTTP responses it is shown. Cheap to clone; clones share
/// the counters.
///
/// Where the line is written from, and why:
/// - after every request ([`Self::record_response`] then
///   [`Self::flush_if_due`], done by [`crate::http::finish`]'s layer): on
///   Lambda, and on Cloud Run without always-on CPU, the process runs only
///   while it serves, so the request path is the one place that surely runs;
/// - by a timer ([`Self::spawn_timer`]) so an idle server still reports the
///   tail of its last interval;
/// - at shutdown ([`Self::flush`], called by [`crate::serve()`] after the
///   server drained, and on SIGTERM on Lambda).
#[derive(Debug, Clone)]
pub struct MetricsReporter {
    inner: Arc<ReporterInner>,
}

#[derive(Debug)]
struct ReporterInner {
    source: Box<dyn IntervalSource>,
    policy: IntervalPolicy,
    requests: AtomicU64,
    server_errors: AtomicU64,
}

impl MetricsReporter {
    /// A reporter for `source` that writes a line every `interval` (sooner,
    /// after [`ERROR_INTERVAL`], when an operation failed). A zero interval
    /// writes one line per request that did something.
    pub fn new(source: impl IntervalSource, interval: Duration) -> Self {
        Self::with_policy(source, IntervalPolicy::new(interval, ERROR_INTERVAL))
    }

    /// A reporter whose intervals end as `policy` says (regular length, and
    /// how soon after a failure).
    pub fn with_policy(source: impl IntervalSource, policy: IntervalPolicy) -> Self {
        Self {
            inner: Arc::new(ReporterInner {
                source: Box::new(source),
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
    pub fn from_env(source: impl IntervalSource, env: &Env<'_>) -> Result<Self, ConfigError> {
        let default = if on_lambda() {
            DEFAULT_INTERVAL_LAMBDA
        } else {
            DEFAULT_INTERVAL_SERVER
        };
        let secs = env.range(INTERVAL_VAR, default.as_secs(), 0, 3_600)?;
        Ok(Self::new(source, Duration::from_secs(secs)))
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
        let taken = self.inner.source.take_interval(Some(self.inner.policy));
        self.write(taken)
    }

    /// Ends the interval now and writes its line, unless nothing happened in
    /// it. Returns whether a line was written.
    pub fn flush(&self) -> bool {
        let taken = self.inner.source.take_interval(None);
        self.write(taken)
    }

    fn write(&self, taken: Option<IntervalSummary>) -> bool {
        let Some(interval) = taken else {
            return false;
        };
        let http = HttpCounts {
            requests: self.inner.requests.swap(0, Relaxed),
            server_errors: self.inner.server_errors.swap(0, Relaxed),
        };
        if interval.is_empty() && http.requests == 0 {
            return false;
        }
        let document = metrics_document(&interval, http, SystemTime::now());
        let fields = Value::Object(document).to_string();
        // Failures are logged as a warning so that they show at any level.
        if interval.failures > 0 || http.server_errors > 0 {
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
    if on_lambda()
        && let Ok(mut sigterm) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        sigterm.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}

/// The fields of the metrics line for one interval: the source's fields and
/// the HTTP counts under the names of [`crate::contract`], and the `_aws`
/// Embedded Metric Format document that declares them as CloudWatch metrics
/// in [`names::NAMESPACE`] with the dimension [`names::SERVICE`] (which the
/// line format adds to every line).
pub(crate) fn metrics_document(
    interval: &IntervalSummary,
    http: HttpCounts,
    now: SystemTime,
) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert(names::EVENT.into(), names::METRICS_EVENT.into());
    fields.insert(
        names::INTERVAL_MS.into(),
        u64::try_from(interval.duration.as_millis())
            .unwrap_or(u64::MAX)
            .into(),
    );
    fields.insert(
        names::SLOW_THRESHOLD_MS.into(),
        names::SLOW_OPERATION_THRESHOLD_MS.into(),
    );
    for (name, value) in &interval.fields {
        fields.insert((*name).into(), value.clone());
    }
    fields.insert(names::HTTP_REQUESTS.into(), http.requests.into());
    fields.insert(names::HTTP_5XX.into(), http.server_errors.into());
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
