//! In-process counters of the Redis client: operations, errors by kind, slow
//! operations, and latency percentiles over a rolling window.
//!
//! Recording is a handful of relaxed atomic increments, cheap enough for every
//! round trip. Readers take a [`MetricsSnapshot`] (totals since start, for
//! dashboards) or an [`IntervalMetrics`] (what happened since the previous
//! interval was taken, for the metrics line the alerts read: see
//! [`crate::telemetry::MetricsReporter`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::ErrorKind;
use crate::contract as names;
use crate::contract::SLOW_OPERATION_THRESHOLD_MS;
use crate::telemetry::latency::{BUCKETS, Histogram, LatencySummary, RollingHistogram, summarize};
use crate::telemetry::{IntervalPolicy, IntervalSource, IntervalSummary};

/// Counters of one Redis client.
#[derive(Debug)]
pub struct ClientMetrics {
    started: Instant,
    operations: AtomicU64,
    errors: [AtomicU64; ErrorKind::OPERATION_KINDS.len()],
    slow_operations: AtomicU64,
    circuit_rejections: AtomicU64,
    overload_rejections: AtomicU64,
    connections_replaced: AtomicU64,
    fallbacks: AtomicU64,
    /// The largest queue figures seen since the last interval was taken.
    queues: QueueGauges,
    latency: RollingHistogram,
    /// Latency since the last interval was taken (drained by `take_interval`).
    interval_latency: Histogram,
    /// Totals at the last interval taken, and when. Locked only by the
    /// (rare) taker, never on the recording path.
    interval: Mutex<IntervalMark>,
}

/// Where the previous interval ended.
#[derive(Debug, Clone, Copy)]
struct IntervalMark {
    at: Instant,
    totals: Totals,
}

/// The cumulative counters, as plain numbers.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    operations: u64,
    errors: ErrorCounts,
    slow_operations: u64,
    circuit_rejections: u64,
    overload_rejections: u64,
    connections_replaced: u64,
    fallbacks: u64,
}

impl Totals {
    fn failures(&self) -> u64 {
        self.errors.total() + self.circuit_rejections + self.overload_rejections
    }
}

impl Default for ClientMetrics {
    fn default() -> Self {
        let started = Instant::now();
        Self {
            started,
            operations: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            slow_operations: AtomicU64::new(0),
            circuit_rejections: AtomicU64::new(0),
            overload_rejections: AtomicU64::new(0),
            connections_replaced: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            queues: QueueGauges::default(),
            latency: RollingHistogram::new(),
            interval_latency: Histogram::default(),
            interval: Mutex::new(IntervalMark {
                at: started,
                totals: Totals::default(),
            }),
        }
    }
}

fn error_index(kind: ErrorKind) -> Option<usize> {
    ErrorKind::OPERATION_KINDS.iter().position(|k| *k == kind)
}

impl ClientMetrics {
    /// Counts one Redis round trip and its outcome.
    pub fn record(&self, elapsed: Duration, outcome: Result<(), ErrorKind>) {
        self.record_at(elapsed, outcome, Instant::now());
    }

    /// [`record`](Self::record) with the caller's reading of the clock
    /// (`now`), which places the latency in the rolling window.
    pub fn record_at(&self, elapsed: Duration, outcome: Result<(), ErrorKind>, now: Instant) {
        self.operations.fetch_add(1, Relaxed);
        self.latency.record_at(elapsed, now);
        self.interval_latency.record(elapsed);
        if elapsed >= Duration::from_millis(SLOW_OPERATION_THRESHOLD_MS) {
            self.slow_operations.fetch_add(1, Relaxed);
        }
        if let Err(kind) = outcome
            && let Some(i) = error_index(kind)
        {
            self.errors[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts an operation refused by the open circuit breaker.
    pub fn record_circuit_rejection(&self) {
        self.circuit_rejections.fetch_add(1, Relaxed);
    }

    /// Counts a command refused because its connection's queue was full.
    pub fn record_overload_rejection(&self) {
        self.overload_rejections.fetch_add(1, Relaxed);
    }

    /// Counts a connection replaced (it kept timing out, died while idle, or
    /// reached a replica after a failover).
    pub fn record_connection_replaced(&self) {
        self.connections_replaced.fetch_add(1, Relaxed);
    }

    /// Counts a fallback value returned in place of a Redis result.
    pub fn record_fallback(&self) {
        self.fallbacks.fetch_add(1, Relaxed);
    }

    /// Notes what one queue looked like (its backlog, oldest item's age and
    /// dead letters): the interval's line carries the largest of each.
    pub fn record_queue(&self, seen: QueueObservation) {
        let q = &self.queues;
        q.backlog.fetch_max(seen.backlog, Relaxed);
        q.oldest_age_ms
            .fetch_max(seen.oldest_age_ms.unwrap_or(0), Relaxed);
        q.dead_letters.fetch_max(seen.dead_letters, Relaxed);
        q.observed.store(true, Relaxed);
    }

    fn errors(&self) -> ErrorCounts {
        let err = |kind| error_index(kind).map_or(0, |i| self.errors[i].load(Relaxed));
        ErrorCounts {
            connect: err(ErrorKind::Connect),
            timeout: err(ErrorKind::Timeout),
            auth: err(ErrorKind::Auth),
            read_only: err(ErrorKind::ReadOnly),
            busy: err(ErrorKind::Busy),
            other: err(ErrorKind::Other),
        }
    }

    fn totals(&self) -> Totals {
        Totals {
            operations: self.operations.load(Relaxed),
            errors: self.errors(),
            slow_operations: self.slow_operations.load(Relaxed),
            circuit_rejections: self.circuit_rejections.load(Relaxed),
            overload_rejections: self.overload_rejections.load(Relaxed),
            connections_replaced: self.connections_replaced.load(Relaxed),
            fallbacks: self.fallbacks.load(Relaxed),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            uptime_secs: self.started.elapsed().as_secs(),
            operations: self.operations.load(Relaxed),
            errors: self.errors(),
            slow_operations: self.slow_operations.load(Relaxed),
            circuit_rejections: self.circuit_rejections.load(Relaxed),
            overload_rejections: self.overload_rejections.load(Relaxed),
            connections_replaced: self.connections_replaced.load(Relaxed),
            fallbacks: self.fallbacks.load(Relaxed),
            latency: self.latency.summary(),
        }
    }

    /// Ends the current interval now and returns what happened in it.
    /// `None` while another caller is taking an interval.
    pub fn take_interval(&self) -> Option<IntervalMetrics> {
        self.take(|_, _| true)
    }

    /// Ends the current interval if `policy` says it is over (see
    /// [`IntervalPolicy`]) and returns what happened in it; otherwise `None`.
    /// Cheap enough to call after every request: an uncontended lock and a
    /// few loads when the interval is not over.
    pub fn take_interval_if_due(&self, policy: IntervalPolicy) -> Option<IntervalMetrics> {
        self.take(|elapsed, failed| policy.is_due(elapsed, failed))
    }

    fn take(&self, due: impl FnOnce(Duration, bool) -> bool) -> Option<IntervalMetrics> {
        // A poisoned lock only means a taker panicked; the mark is still valid.
        let mut mark = match self.interval.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        let now = Instant::now();
        let totals = self.totals();
        let elapsed = now.saturating_duration_since(mark.at);
        // Rejections (breaker open, queue full) are failures the user felt.
        let failed = totals.failures() > mark.totals.failures();
        if !due(elapsed, failed) {
            return None;
        }
        let mut counts = vec![0; BUCKETS];
        self.interval_latency.drain_into(&mut counts);
        let queues = self.queues.take();
        let before = mark.totals;
        *mark = IntervalMark { at: now, totals };
        let d = |now: u64, before: u64| now.saturating_sub(before);
        Some(IntervalMetrics {
            duration: elapsed,
            operations: d(totals.operations, before.operations),
            errors: ErrorCounts {
                connect: d(totals.errors.connect, before.errors.connect),
                timeout: d(totals.errors.timeout, before.errors.timeout),
                auth: d(totals.errors.auth, before.errors.auth),
                read_only: d(totals.errors.read_only, before.errors.read_only),
                busy: d(totals.errors.busy, before.errors.busy),
                other: d(totals.errors.other, before.errors.other),
            },
            slow_operations: d(totals.slow_operations, before.slow_operations),
            circuit_rejections: d(totals.circuit_rejections, before.circuit_rejections),
            overload_rejections: d(totals.overload_rejections, before.overload_rejections),
            connections_replaced: d(totals.connections_replaced, before.connections_replaced),
            fallbacks: d(totals.fallbacks, before.fallbacks),
            latency: summarize(&counts, elapsed),
            queues,
        })
    }
}

/// What one queue looked like when an operation read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueObservation {
    /// Items waiting to be claimed, delayed ones included.
    pub backlog: u64,
    /// Age of the oldest item neither acknowledged nor dead-lettered, in
    /// milliseconds; `None` when there is none.
    pub oldest_age_ms: Option<u64>,
    /// Dead letters.
    pub dead_letters: u64,
}

/// The largest queue figures of an interval (gauges, not counts).
#[derive(Debug, Default)]
struct QueueGauges {
    observed: AtomicBool,
    backlog: AtomicU64,
    oldest_age_ms: AtomicU64,
    dead_letters: AtomicU64,
}

impl QueueGauges {
    /// The interval's largest figures, `None` when no queue was read; resets them.
    fn take(&self) -> Option<QueueObservation> {
        if !self.observed.swap(false, Relaxed) {
            return None;
        }
        Some(QueueObservation {
            backlog: self.backlog.swap(0, Relaxed),
            oldest_age_ms: Some(self.oldest_age_ms.swap(0, Relaxed)),
            dead_letters: self.dead_letters.swap(0, Relaxed),
        })
    }
}

/// What one Redis client did during one interval (between two calls of
/// [`ClientMetrics::take_interval`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct IntervalMetrics {
    /// Length of the interval.
    #[serde(skip)]
    pub duration: Duration,
    /// Redis round trips attempted, failed ones included.
    pub operations: u64,
    /// Failed round trips by kind.
    pub errors: ErrorCounts,
    /// Round trips that took at least
    /// [`SLOW_OPERATION_THRESHOLD_MS`].
    pub slow_operations: u64,
    /// Operations refused because the circuit was open.
    pub circuit_rejections: u64,
    /// Commands refused because their connection's queue was full.
    pub overload_rejections: u64,
    /// Connections replaced (half-open, died while idle, failover).
    pub connections_replaced: u64,
    /// Fallback values returned in place of Redis results.
    pub fallbacks: u64,
    /// Round-trip latency of the interval's operations.
    pub latency: LatencySummary,
    /// The largest queue figures seen in the interval, if a queue was read.
    pub queues: Option<QueueObservation>,
}

impl IntervalMetrics {
    /// Whether nothing at all was counted (no line needs to be written).
    pub fn is_empty(&self) -> bool {
        self.operations == 0
            && self.circuit_rejections == 0
            && self.overload_rejections == 0
            && self.connections_replaced == 0
            && self.fallbacks == 0
    }
}

/// Errors by kind since the client started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// Connection failures.
    pub connect: u64,
    /// Deadlines missed.
    pub timeout: u64,
    /// Credentials refused.
    pub auth: u64,
    /// A replica answered a write (failover).
    pub read_only: u64,
    /// The server refused for now (BUSY, TRYAGAIN, OOM).
    pub busy: u64,
    /// Errors a retry cannot cure.
    pub other: u64,
}

impl ErrorCounts {
    /// All errors together.
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.auth + self.read_only + self.busy + self.other
    }
}

/// The client's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Seconds since the client was created.
    pub uptime_secs: u64,
    /// Redis round trips attempted since start, failed ones included.
    pub operations: u64,
    /// Failed round trips by kind since start.
    pub errors: ErrorCounts,
    /// Round trips that took at least
    /// [`SLOW_OPERATION_THRESHOLD_MS`]
    /// since start.
    pub slow_operations: u64,
    /// Operations refused without trying because the circuit was open.
    pub circuit_rejections: u64,
    /// Commands refused because their connection's queue was full.
    pub overload_rejections: u64,
    /// Connections replaced because they kept timing out (half-open).
    pub connections_replaced: u64,
    /// Fallback values returned in place of Redis results.
    pub fallbacks: u64,
    /// Round-trip latency over the last minute.
    pub latency: LatencySummary,
}

impl IntervalMetrics {
    /// The metrics line's fields for this interval, named by the contract.
    /// Latency is left out of an interval without operations (a zero would
    /// read as "fast").
    pub fn summary(&self) -> IntervalSummary {
        let mut fields: Vec<(&'static str, serde_json::Value)> = [
            (names::OPERATIONS, self.operations),
            (names::ERRORS, self.errors.total()),
            (names::ERRORS_CONNECT, self.errors.connect),
            (names::ERRORS_TIMEOUT, self.errors.timeout),
            (names::ERRORS_AUTH, self.errors.auth),
            (names::ERRORS_READ_ONLY, self.errors.read_only),
            (names::ERRORS_BUSY, self.errors.busy),
            (names::ERRORS_OTHER, self.errors.other),
            (names::SLOW_OPERATIONS, self.slow_operations),
            (names::CIRCUIT_REJECTIONS, self.circuit_rejections),
            (names::OVERLOAD_REJECTIONS, self.overload_rejections),
            (names::CONNECTIONS_REPLACED, self.connections_replaced),
            (names::FALLBACKS, self.fallbacks),
        ]
        .into_iter()
        .map(|(name, value)| (name, value.into()))
        .collect();
        for ((_, name), count) in names::OPERATIONS_AT_LEAST.iter().zip(self.latency.at_least) {
            fields.push((name, count.into()));
        }
        if self.operations > 0 {
            fields.push((names::LATENCY_P50_MS, self.latency.p50_ms.into()));
            fields.push((names::LATENCY_P99_MS, self.latency.p99_ms.into()));
            fields.push((names::LATENCY_MAX_MS, self.latency.max_ms.into()));
        }
        if let Some(q) = self.queues {
            fields.push((names::QUEUE_BACKLOG, q.backlog.into()));
            fields.push((
                names::QUEUE_OLDEST_AGE_MS,
                q.oldest_age_ms.unwrap_or(0).into(),
            ));
            fields.push((names::QUEUE_DEAD_LETTERS, q.dead_letters.into()));
        }
        IntervalSummary {
            duration: self.duration,
            fields,
            // A rejection failed the user as an error would: the line
            // is a warning and comes sooner.
            failures: self.errors.total() + self.circuit_rejections + self.overload_rejections,
            empty: self.is_empty(),
        }
    }
}

impl IntervalSource for ClientMetrics {
    fn take_interval(&self, policy: Option<IntervalPolicy>) -> Option<IntervalSummary> {
        match policy {
            Some(policy) => self.take_interval_if_due(policy),
            None => ClientMetrics::take_interval(self),
        }
        .map(|interval| interval.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_kind() {
        let m = ClientMetrics::default();
        m.record(Duration::from_micros(100), Ok(()));
        m.record(Duration::from_micros(100), Err(ErrorKind::Timeout));
        m.record(Duration::from_micros(100), Err(ErrorKind::Timeout));
        m.record(Duration::from_micros(100), Err(ErrorKind::Auth));
        let s = m.snapshot();
        assert_eq!(s.operations, 4);
        assert_eq!(s.errors.timeout, 2);
        assert_eq!(s.errors.auth, 1);
        assert_eq!(s.errors.total(), 3);
        assert_eq!(s.latency.count, 4);
    }

    #[test]
    fn intervals_count_what_happened_since_the_previous_one() {
        let m = ClientMetrics::default();
        m.record(Duration::from_micros(100), Ok(()));
        m.record(Duration::from_millis(150), Err(ErrorKind::Connect));
        m.record_circuit_rejection();
        let first = m.take_interval().unwrap();
        assert_eq!(first.operations, 2);
        assert_eq!(first.errors.connect, 1);
        assert_eq!(first.slow_operations, 1);
        assert_eq!(first.circuit_rejections, 1);
        assert_eq!(first.latency.count, 2);
        m.record(Duration::from_micros(100), Ok(()));
        let second = m.take_interval().unwrap();
        assert_eq!(second.operations, 1);
        assert_eq!(second.errors.total(), 0);
        assert_eq!(second.slow_operations, 0);
        assert_eq!(second.latency.count, 1);
        assert!(m.take_interval().unwrap().is_empty());
        // The totals are untouched by intervals.
        assert_eq!(m.snapshot().operations, 3);
        assert_eq!(m.snapshot().slow_operations, 1);
    }

    #[test]
    fn an_interval_is_due_after_its_length_or_sooner_after_a_failure() {
        let m = ClientMetrics::default();
        let hour = Duration::from_secs(3_600);
        m.record(Duration::from_micros(100), Ok(()));
        assert!(
            m.take_interval_if_due(IntervalPolicy::new(hour, hour))
                .is_none()
        );
        assert!(
            m.take_interval_if_due(IntervalPolicy::new(hour, Duration::ZERO))
                .is_none(),
            "no failure: the regular interval applies"
        );
        m.record(Duration::from_micros(100), Err(ErrorKind::Timeout));
        let taken = m
            .take_interval_if_due(IntervalPolicy::new(hour, Duration::ZERO))
            .unwrap();
        assert_eq!(taken.operations, 2);
        assert_eq!(taken.errors.timeout, 1);
        assert!(
            m.take_interval_if_due(IntervalPolicy::new(Duration::ZERO, Duration::ZERO))
                .is_some()
        );
    }
}
