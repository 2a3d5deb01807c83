//! [`MetricsReporter`]: the one JSON line per interval that the alerts read.
//!
//! The reporter does not know what it counts: an [`IntervalSource`] (the
//! Redis client's counters, see `crate::redis`) ends an interval and hands
//! over its fields, named by [`crate::contract`]; the reporter adds the HTTP
//! responses it was shown, the Embedded Metric Format document, and decides
//! when a line is due.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::config::{ConfigError, Env, LambdaLogLevel, on_lambda};
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

/// Whether a request went to a probe route or a user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `/redis-health` or `/healthz` ([`names::PROBE_ROUTES`]): the probes'.
    Probe,
    /// Any other route, and unmatched paths: the users'.
    User,
}

impl RouteKind {
    /// The kind of the route template `route` (axum's `MatchedPath`; `None`
    /// for a path no route matched).
    pub fn of(route: Option<&str>) -> Self {
        match route {
            Some(route) if names::PROBE_ROUTES.contains(&route) => Self::Probe,
            _ => Self::User,
        }
    }
}

/// HTTP responses counted by [`MetricsReporter::record_response`] in one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HttpCounts {
    /// Responses of any status, to any route.
    pub requests: u64,
    /// Responses with a 5xx status, to any route.
    pub server_errors: u64,
    /// Responses to user routes.
    pub user_requests: u64,
    /// Of those, 5xx.
    pub user_server_errors: u64,
    /// Of those, the slow ones.
    pub user_slow: u64,
    /// Responses to the probe routes.
    pub probe_requests: u64,
}

/// The HTTP counters of the current interval.
#[derive(Debug, Default)]
struct HttpCounters {
    requests: AtomicU64,
    server_errors: AtomicU64,
    user_requests: AtomicU64,
    user_server_errors: AtomicU64,
    user_slow: AtomicU64,
    probe_requests: AtomicU64,
}

impl HttpCounters {
    fn take(&self) -> HttpCounts {
        HttpCounts {
            requests: self.requests.swap(0, Relaxed),
            server_errors: self.server_errors.swap(0, Relaxed),
            user_requests: self.user_requests.swap(0, Relaxed),
            user_server_errors: self.user_server_errors.swap(0, Relaxed),
            user_slow: self.user_slow.swap(0, Relaxed),
            probe_requests: self.probe_requests.swap(0, Relaxed),
        }
    }
}

/// What the first line of a process says about its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ColdStart {
    /// How long init took, when [`MetricsReporter::mark_ready`] was called.
    pub init: Option<Duration>,
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
    /// Failed operations in the interval, operations refused without trying
    /// (an open breaker, a full queue) included: a line with failures is
    /// written as a warning, so that it shows at any log level.
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
    http: HttpCounters,
    /// When the reporter was made (at start-up): init is measured from it.
    created: Instant,
    /// Milliseconds from `created` to [`MetricsReporter::mark_ready`];
    /// `u64::MAX` until then.
    init_ms: AtomicU64,
    /// Whether no line was written yet (the next one is the cold start's).
    cold: AtomicBool,
    /// The lowest `level` a line is written at ([`LambdaLogLevel`] as u8).
    floor: AtomicU8,
    /// Whether a request that saw an error writes the line at once (Lambda).
    write_on_errors: AtomicBool,
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
                http: HttpCounters::default(),
                created: Instant::now(),
                init_ms: AtomicU64::new(u64::MAX),
                cold: AtomicBool::new(true),
                floor: AtomicU8::new(LambdaLogLevel::Trace as u8),
                write_on_errors: AtomicBool::new(false),
            }),
        }
    }

    /// A reporter with the interval from `METRICS_INTERVAL_SECS` (0 to 3600),
    /// by default [`DEFAULT_INTERVAL_LAMBDA`] on Lambda and
    /// [`DEFAULT_INTERVAL_SERVER`] elsewhere. On Lambda it also writes the
    /// line at the end of any request that saw an error
    /// ([`Self::set_write_on_errors`]), and its lines are at least at
    /// `AWS_LAMBDA_LOG_LEVEL` ([`Self::set_level_floor`]).
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
        let reporter = Self::new(source, Duration::from_secs(secs));
        reporter.set_write_on_errors(on_lambda());
        if let Some(level) = env
            .get("AWS_LAMBDA_LOG_LEVEL")
            .and_then(|v| LambdaLogLevel::parse(&v))
        {
            reporter.set_level_floor(level);
        }
        Ok(reporter)
    }

    /// The regular interval between two lines.
    pub fn interval(&self) -> Duration {
        self.inner.policy.every
    }

    /// Writes every line at `level` or above: Lambda's log-level filtering
    /// drops JSON lines below the function's application log level
    /// (`AWS_LAMBDA_LOG_LEVEL`), and the alerts must see the line.
    pub fn set_level_floor(&self, level: LambdaLogLevel) {
        self.inner.floor.store(level as u8, Relaxed);
    }

    /// Whether a request that saw an error (a 5xx, a failed Redis operation
    /// or a rejection in the interval so far) writes the line when it ends,
    /// instead of when the interval is over: on Lambda, where an
    /// environment can be frozen and then reclaimed with the interval's
    /// counts unwritten.
    pub fn set_write_on_errors(&self, yes: bool) {
        self.inner.write_on_errors.store(yes, Relaxed);
    }

    /// Says that init is over (the process is ready to serve): the first
    /// line carries how long it took ([`names::INIT_DURATION_MS`]), counted
    /// from the reporter's creation at start-up. Later calls do nothing.
    pub fn mark_ready(&self) {
        let ms = u64::try_from(self.inner.created.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let _ = self
            .inner
            .init_ms
            .compare_exchange(u64::MAX, ms, Relaxed, Relaxed);
    }

    /// Counts one HTTP response of `status` to a route of `kind` that took
    /// `elapsed` from entering the router to the response.
    pub fn record_response(&self, status: u16, kind: RouteKind, elapsed: Duration) {
        let http = &self.inner.http;
        http.requests.fetch_add(1, Relaxed);
        let failed = status >= 500;
        if failed {
            http.server_errors.fetch_add(1, Relaxed);
        }
        match kind {
            RouteKind::Probe => {
                http.probe_requests.fetch_add(1, Relaxed);
            }
            RouteKind::User => {
                http.user_requests.fetch_add(1, Relaxed);
                if failed {
                    http.user_server_errors.fetch_add(1, Relaxed);
                }
                if elapsed >= Duration::from_millis(names::HTTP_SLOW_REQUEST_THRESHOLD_MS) {
                    http.user_slow.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// What the request path calls once a response of `status` is
    /// counted: with [`Self::set_write_on_errors`], writes the line when the
    /// response is a 5xx or the interval so far had a failure; otherwise
    /// (and without errors) as [`Self::flush_if_due`]. Returns whether a
    /// line was written.
    pub fn after_response(&self, status: u16) -> bool {
        if !self.inner.write_on_errors.load(Relaxed) {
            return self.flush_if_due();
        }
        if status >= 500 {
            return self.flush();
        }
        let at_once_on_failure = IntervalPolicy {
            every: self.inner.policy.every,
            with_errors_every: Duration::ZERO,
        };
        let taken = self.inner.source.take_interval(Some(at_once_on_failure));
        self.write(taken)
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
        let http = self.inner.http.take();
        if interval.is_empty() && http.requests == 0 {
            return false;
        }
        let cold = self.inner.cold.swap(false, Relaxed).then(|| {
            let ms = self.inner.init_ms.load(Relaxed);
            ColdStart {
                init: (ms != u64::MAX).then(|| Duration::from_millis(ms)),
            }
        });
        let mut document = metrics_document(&interval, http, cold, SystemTime::now());
        // Failures (errors, rejections, 5xx) make a warning, so that the
        // line shows at any level; Lambda's floor can raise it further.
        let failed = interval.failures > 0 || http.server_errors > 0;
        let natural = if failed {
            LambdaLogLevel::Warn
        } else {
            LambdaLogLevel::Info
        };
        let floor = level_from_u8(self.inner.floor.load(Relaxed));
        if floor > natural {
            document.insert(names::LEVEL.into(), floor.as_str().into());
        }
        let fields = Value::Object(document).to_string();
        if failed {
            tracing::warn!(target: names::METRICS_TARGET, _json = fields.as_str(), "{}", names::METRICS_MESSAGE);
        } else {
            tracing::info!(target: names::METRICS_TARGET, _json = fields.as_str(), "{}", names::METRICS_MESSAGE);
        }
        true
    }

    /// Starts a task that calls [`Self::flush_if_due`] every second, and on
    /// Lambda also [`Self::flush`] when the runtime sends SIGTERM (it does
    /// when an extension is registered, as `serve` does, before the
    /// environment is reclaimed), then ends the process as the signal
    /// would have. Dropping the handle does not stop the task; abort it.
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
                        tracing::info!("SIGTERM: the last metrics line is written; exiting");
                        // Lines are written whole to stdout; flush whatever
                        // the standard library still holds.
                        let _ = std::io::Write::flush(&mut std::io::stdout());
                        // Then end as SIGTERM would have without this
                        // handler: the runtime is shutting the sandbox down.
                        std::process::exit(0);
                    }
                }
            }
        })
    }
}

fn level_from_u8(value: u8) -> LambdaLogLevel {
    [
        LambdaLogLevel::Trace,
        LambdaLogLevel::Debug,
        LambdaLogLevel::Info,
        LambdaLogLevel::Warn,
        LambdaLogLevel::Error,
        LambdaLogLevel::Fatal,
    ]
    .into_iter()
    .find(|l| *l as u8 == value)
    .unwrap_or(LambdaLogLevel::Trace)
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
/// the HTTP counts under the names of [`crate::contract`] (every count, zero
/// included), the cold start's on a process's first line, and the `_aws`
/// Embedded Metric Format document that declares them as CloudWatch metrics
/// in [`names::NAMESPACE`] with the dimension sets [`names::DIMENSION_SETS`]
/// (the line format adds `service` and `environment` to every line).
pub(crate) fn metrics_document(
    interval: &IntervalSummary,
    http: HttpCounts,
    cold: Option<ColdStart>,
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
    fields.insert(
        names::HTTP_SLOW_THRESHOLD_MS.into(),
        names::HTTP_SLOW_REQUEST_THRESHOLD_MS.into(),
    );
    for (name, value) in &interval.fields {
        fields.insert((*name).into(), value.clone());
    }
    for (name, count) in [
        (names::HTTP_REQUESTS, http.requests),
        (names::HTTP_5XX, http.server_errors),
        (names::HTTP_USER_REQUESTS, http.user_requests),
        (names::HTTP_USER_5XX, http.user_server_errors),
        (names::HTTP_USER_SLOW_REQUESTS, http.user_slow),
        (names::HTTP_PROBE_REQUESTS, http.probe_requests),
        (names::COLD_STARTS, u64::from(cold.is_some())),
    ] {
        fields.insert(name.into(), count.into());
    }
    if let Some(init) = cold.and_then(|c| c.init) {
        fields.insert(
            names::INIT_DURATION_MS.into(),
            u64::try_from(init.as_millis()).unwrap_or(u64::MAX).into(),
        );
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
                "Dimensions": names::DIMENSION_SETS,
                "Metrics": metrics,
            }],
        }),
    );
    fields
}
