//! In-process counters of the Redis client: operations, errors by kind, slow
//! operations, and latency percentiles over a rolling window.
//!
//! Recording is a handful of relaxed atomic increments, cheap enough for every
//! round trip. Readers take a [`MetricsSnapshot`] (totals since start, for
//! dashboards) or an [`IntervalMetrics`] (what happened since the previous
//! interval was taken, for the metrics line the alerts read: see
//! [`crate::telemetry::MetricsReporter`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::ErrorKind;
use crate::telemetry::names::SLOW_OPERATION_THRESHOLD_MS;

/// Latency buckets: exact below 16 µs, then 8 per power of two (at most 6.25 %
/// apart), up to 2^40 µs. Percentiles are the bucket midpoints.
const EXACT: usize = 16;
const SUB_BITS: u32 = 3;
const MAX_EXP: u32 = 40;
const BUCKETS: usize = EXACT + ((MAX_EXP - 4 + 1) as usize) * (1 << SUB_BITS);

fn bucket_of(micros: u64) -> usize {
    if micros < EXACT as u64 {
        return micros as usize;
    }
    let exp = 63 - micros.leading_zeros();
    if exp > MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (micros >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    EXACT + ((exp - 4) as usize) * (1 << SUB_BITS) + sub as usize
}

/// The midpoint of a bucket, in microseconds.
fn value_of(bucket: usize) -> f64 {
    if bucket < EXACT {
        return bucket as f64;
    }
    let i = bucket - EXACT;
    let exp = (i >> SUB_BITS) as u32 + 4;
    let sub = (i & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    let low = ((1 << SUB_BITS) + sub) * width;
    low as f64 + width as f64 / 2.0
}

/// A latency histogram. Fixed size, lock-free, mergeable.
#[derive(Debug)]
pub struct Histogram {
    counts: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Histogram {
    /// Counts one observation.
    pub fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(micros)].fetch_add(1, Relaxed);
    }

    fn clear(&self) {
        for c in &*self.counts {
            c.store(0, Relaxed);
        }
    }

    fn add_into(&self, into: &mut [u64]) {
        for (acc, c) in into.iter_mut().zip(&*self.counts) {
            *acc += c.load(Relaxed);
        }
    }

    /// Moves the counts into `into` and leaves zeros; no observation made
    /// meanwhile is lost (each bucket is swapped atomically).
    fn drain_into(&self, into: &mut [u64]) {
        for (acc, c) in into.iter_mut().zip(&*self.counts) {
            *acc += c.swap(0, Relaxed);
        }
    }
}

/// Percentiles of a set of bucket counts.
fn summarize(counts: &[u64], window: Duration) -> LatencySummary {
    let total: u64 = counts.iter().sum();
    let at = |q: f64| -> f64 {
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i) / 1_000.0;
            }
        }
        0.0
    };
    let max = counts
        .iter()
        .rposition(|c| *c > 0)
        .map_or(0.0, |i| value_of(i) / 1_000.0);
    LatencySummary {
        window_secs: window.as_secs(),
        count: total,
        p50_ms: round3(at(0.50)),
        p95_ms: round3(at(0.95)),
        p99_ms: round3(at(0.99)),
        max_ms: round3(max),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1_000.0).round() / 1_000.0
}

/// Latency percentiles over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Length of the window the figures cover.
    pub window_secs: u64,
    /// Observations in the window.
    pub count: u64,
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile, in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// Largest observation (its bucket), in milliseconds.
    pub max_ms: f64,
}

/// Percentiles of a list of durations measured by a caller (a probe, a benchmark).
pub fn summarize_durations(samples: &[Duration]) -> LatencySummary {
    let h = Histogram::default();
    for s in samples {
        h.record(*s);
    }
    let mut counts = vec![0; BUCKETS];
    h.add_into(&mut counts);
    summarize(&counts, Duration::ZERO)
}

const SLOTS: usize = 6;
const SLOT_SECS: u64 = 10;

/// A histogram over the last minute: six ten-second slots, each reset when
/// the clock moves past it.
#[derive(Debug)]
struct RollingHistogram {
    origin: Instant,
    slots: [(AtomicU64, Histogram); SLOTS],
}

impl RollingHistogram {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            slots: std::array::from_fn(|_| (AtomicU64::new(u64::MAX), Histogram::default())),
        }
    }

    fn epoch(&self) -> u64 {
        self.origin.elapsed().as_secs() / SLOT_SECS
    }

    fn record(&self, elapsed: Duration) {
        let epoch = self.epoch();
        let (slot_epoch, hist) = &self.slots[(epoch % SLOTS as u64) as usize];
        let seen = slot_epoch.load(Relaxed);
        if seen != epoch
            && slot_epoch
                .compare_exchange(seen, epoch, Relaxed, Relaxed)
                .is_ok()
        {
            // The first writer of a new ten seconds clears the slot's old
            // minute. A concurrent writer may lose one count to the clear.
            hist.clear();
        }
        hist.record(elapsed);
    }

    fn summary(&self) -> LatencySummary {
        let epoch = self.epoch();
        let mut counts = vec![0; BUCKETS];
        for (slot_epoch, hist) in &self.slots {
            let e = slot_epoch.load(Relaxed);
            if e != u64::MAX && e + (SLOTS as u64) > epoch {
                hist.add_into(&mut counts);
            }
        }
        summarize(&counts, Duration::from_secs(SLOTS as u64 * SLOT_SECS))
    }
}

/// Counters of one Redis client.
#[derive(Debug)]
pub struct ClientMetrics {
    started: Instant,
    operations: AtomicU64,
    errors: [AtomicU64; ErrorKind::OPERATION_KINDS.len()],
    slow_operations: AtomicU64,
    circuit_rejections: AtomicU64,
    connections_replaced: AtomicU64,
    fallbacks: AtomicU64,
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
    connections_replaced: u64,
    fallbacks: u64,
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
            connections_replaced: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            latency: RollingHistogram::new(),
            interval_latency: Histogram::default(),
            interval: Mutex::new(IntervalMark {
                at: started,
                totals: Totals::default(),
            }),
        }
    }
}

/// When [`ClientMetrics::take_interval_if_due`] ends an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
}

fn error_index(kind: ErrorKind) -> Option<usize> {
    ErrorKind::OPERATION_KINDS.iter().position(|k| *k == kind)
}

impl ClientMetrics {
    /// Counts one Redis round trip and its outcome.
    pub fn record(&self, elapsed: Duration, outcome: Result<(), ErrorKind>) {
        self.operations.fetch_add(1, Relaxed);
        self.latency.record(elapsed);
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

    /// Counts a connection replaced because it kept timing out.
    pub fn record_connection_replaced(&self) {
        self.connections_replaced.fetch_add(1, Relaxed);
    }

    /// Counts a fallback value returned in place of a Redis result.
    pub fn record_fallback(&self) {
        self.fallbacks.fetch_add(1, Relaxed);
    }

    fn errors(&self) -> ErrorCounts {
        let err = |kind| error_index(kind).map_or(0, |i| self.errors[i].load(Relaxed));
        ErrorCounts {
            connect: err(ErrorKind::Connect),
            timeout: err(ErrorKind::Timeout),
            auth: err(ErrorKind::Auth),
            other: err(ErrorKind::Other),
        }
    }

    fn totals(&self) -> Totals {
        Totals {
            operations: self.operations.load(Relaxed),
            errors: self.errors(),
            slow_operations: self.slow_operations.load(Relaxed),
            circuit_rejections: self.circuit_rejections.load(Relaxed),
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
        self.take(|elapsed, failed| {
            elapsed >= policy.every || (failed && elapsed >= policy.with_errors_every)
        })
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
        let failed = totals.errors.total() > mark.totals.errors.total();
        if !due(elapsed, failed) {
            return None;
        }
        let mut counts = vec![0; BUCKETS];
        self.interval_latency.drain_into(&mut counts);
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
                other: d(totals.errors.other, before.errors.other),
            },
            slow_operations: d(totals.slow_operations, before.slow_operations),
            circuit_rejections: d(totals.circuit_rejections, before.circuit_rejections),
            connections_replaced: d(totals.connections_replaced, before.connections_replaced),
            fallbacks: d(totals.fallbacks, before.fallbacks),
            latency: summarize(&counts, elapsed),
        })
    }
}

/// What one Redis client did during one interval (between two calls of
/// [`ClientMetrics::take_interval`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
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
    /// Connections replaced because they kept timing out.
    pub connections_replaced: u64,
    /// Fallback values returned in place of Redis results.
    pub fallbacks: u64,
    /// Round-trip latency of the interval's operations.
    pub latency: LatencySummary,
}

impl IntervalMetrics {
    /// Whether nothing at all was counted (no line needs to be written).
    pub fn is_empty(&self) -> bool {
        self.operations == 0
            && self.circuit_rejections == 0
            && self.connections_replaced == 0
            && self.fallbacks == 0
    }
}

/// Errors by kind since the client started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ErrorCounts {
    /// Connection failures.
    pub connect: u64,
    /// Deadlines missed.
    pub timeout: u64,
    /// Credentials or ACL refusals.
    pub auth: u64,
    /// Errors answered by a working server.
    pub other: u64,
}

impl ErrorCounts {
    /// All errors together.
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.auth + self.other
    }
}

/// The client's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
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
    /// Connections replaced because they kept timing out (half-open).
    pub connections_replaced: u64,
    /// Fallback values returned in place of Redis results.
    pub fallbacks: u64,
    /// Round-trip latency over the last minute.
    pub latency: LatencySummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for micros in (0..20_000_000u64).step_by(997) {
            let b = bucket_of(micros);
            assert!(b >= last);
            last = b;
            let v = value_of(b);
            let err = (v - micros as f64).abs() / (micros.max(1) as f64);
            assert!(err <= 0.0625 + 1e-9 || micros < 16, "{micros} -> {v}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_known_samples() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = summarize_durations(&samples);
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() / 50.0 < 0.07, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() / 99.0 < 0.07, "{s:?}");
        assert!(s.max_ms >= s.p99_ms);
    }

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
