//! A circuit breaker: stop hammering a Redis that is down.
//!
//! Closed, it counts consecutive failures that mean "Redis is unusable"
//! (connect, timeout, auth), one per incident: when a connection drops, every
//! operation in flight on it fails at once, and those count as one failure (a
//! failure counts only if its operation started after the previous counted
//! failure). At the threshold it opens: every operation fails
//! fast with [`RedisFailure::CircuitOpen`](crate::RedisFailure) for the
//! cool-down. Then one probe is let through (half-open); its success closes
//! the circuit, its failure opens it for another cool-down. A probe that never
//! reports back (its caller gave up) is forgotten after the probe timeout, so
//! the breaker cannot stick half-open.
//!
//! The state is three atomics; the hot path (closed) is one load.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Where the breaker reads the time. A seam so tests can move time by hand.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The breaker's state as reported by health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Operations go to Redis.
    Closed,
    /// Operations fail fast until the cool-down ends.
    Open,
    /// The cool-down ended; one probe decides.
    HalfOpen,
}

/// A point-in-time view of the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CircuitSnapshot {
    /// Closed, open or half-open.
    pub state: CircuitState,
    /// Unavailability failures in a row (closed state).
    pub consecutive_failures: u32,
    /// Times the circuit has opened since start.
    pub opened_total: u64,
    /// Failures in a row that open the circuit (0: disabled).
    pub threshold: u32,
    /// Redis Cluster: groups of 16 hash slots whose own breaker is open (the
    /// tenants of a sick node fail fast; the others are served).
    pub open_slot_groups: usize,
}

/// See the module documentation.
pub struct CircuitBreaker {
    threshold: u32,
    cooldown_ms: u64,
    probe_timeout_ms: u64,
    clock: Arc<dyn Clock>,
    origin: Instant,
    failures: AtomicU32,
    /// Milliseconds since `origin` at which the open circuit lets a probe
    /// through, plus one; 0 while closed.
    open_until: AtomicU64,
    /// When the current probe started (same encoding); 0 when none is out.
    probe_started: AtomicU64,
    /// When the last counted failure was recorded (same encoding).
    last_counted: AtomicU64,
    opened_total: AtomicU64,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("snapshot", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A breaker that opens after `threshold` consecutive failures (0 disables
    /// it) for `cooldown`, and forgets a probe after `probe_timeout`.
    pub fn new(threshold: u32, cooldown: Duration, probe_timeout: Duration) -> Self {
        Self::with_clock(threshold, cooldown, probe_timeout, Arc::new(SystemClock))
    }

    /// As [`CircuitBreaker::new`], reading time from `clock`.
    pub fn with_clock(
        threshold: u32,
        cooldown: Duration,
        probe_timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let origin = clock.now();
        Self {
            threshold,
            cooldown_ms: cooldown.as_millis().max(1) as u64,
            probe_timeout_ms: probe_timeout.as_millis().max(1) as u64,
            clock,
            origin,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probe_started: AtomicU64::new(0),
            last_counted: AtomicU64::new(0),
            opened_total: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.ms_of(self.clock.now())
    }

    fn ms_of(&self, at: Instant) -> u64 {
        // +1 keeps 0 free to mean "unset".
        at.saturating_duration_since(self.origin).as_millis() as u64 + 1
    }

    /// May an operation go to Redis now? `Err` holds how long until the next
    /// probe may go.
    ///
    /// # Errors
    /// While the circuit is open, or half-open with a probe already out.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let open_until = self.open_until.load(Relaxed);
        if open_until == 0 || self.threshold == 0 {
            return Ok(());
        }
        let now = self.now_ms();
        if now < open_until {
            return Err(Duration::from_millis(open_until - now));
        }
        let started = self.probe_started.load(Relaxed);
        if started != 0 && now < started + self.probe_timeout_ms {
            return Err(Duration::from_millis(started + self.probe_timeout_ms - now));
        }
        match self
            .probe_started
            .compare_exchange(started, now, Relaxed, Relaxed)
        {
            Ok(_) => Ok(()),
            Err(_) => Err(Duration::from_millis(self.probe_timeout_ms)),
        }
    }

    /// Records an operation that reached a working Redis.
    pub fn record_success(&self) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if self.open_until.load(Relaxed) != 0 && self.open_until.swap(0, Relaxed) != 0 {
            self.probe_started.store(0, Relaxed);
            tracing::info!(circuit = "closed", "redis answered again; circuit closed");
        }
    }

    /// Records an operation, started at `started`, that found Redis
    /// unusable. It is ignored when the operation was already in flight when
    /// the previous failure was counted: the same incident.
    pub fn record_failure(&self, started: Instant) {
        if self.threshold == 0 {
            return;
        }
        let now = self.now_ms();
        let last = self.last_counted.load(Relaxed);
        if self.ms_of(started) < last {
            return;
        }
        self.last_counted.store(now, Relaxed);
        let open_until = self.open_until.load(Relaxed);
        if open_until != 0 {
            // Half-open: the probe (or a straggler) failed; open again.
            if now >= open_until
                && self
                    .open_until
                    .compare_exchange(open_until, now + self.cooldown_ms, Relaxed, Relaxed)
                    .is_ok()
            {
                self.probe_started.store(0, Relaxed);
                self.opened_total.fetch_add(1, Relaxed);
            }
            return;
        }
        let failures = self.failures.fetch_add(1, Relaxed).saturating_add(1);
        if failures >= self.threshold
            && self
                .open_until
                .compare_exchange(0, now + self.cooldown_ms, Relaxed, Relaxed)
                .is_ok()
        {
            self.probe_started.store(0, Relaxed);
            self.opened_total.fetch_add(1, Relaxed);
            tracing::warn!(
                circuit = "open",
                consecutive_failures = failures,
                cooldown_ms = self.cooldown_ms,
                "redis keeps failing; circuit opened, failing fast until the cool-down ends"
            );
        }
    }

    /// The current state.
    pub fn snapshot(&self) -> CircuitSnapshot {
        let open_until = self.open_until.load(Relaxed);
        let state = if open_until == 0 || self.threshold == 0 {
            CircuitState::Closed
        } else if self.now_ms() < open_until {
            CircuitState::Open
        } else {
            CircuitState::HalfOpen
        };
        CircuitSnapshot {
            state,
            consecutive_failures: self.failures.load(Relaxed),
            opened_total: self.opened_total.load(Relaxed),
            threshold: self.threshold,
            open_slot_groups: 0,
        }
    }

    /// Whether the breaker fails operations fast now (open or half-open).
    pub fn is_open(&self) -> bool {
        self.threshold != 0 && self.open_until.load(Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A breaker whose clock only moves when the test says so.
    fn breaker(threshold: u32) -> (CircuitBreaker, Arc<Mutex<Instant>>) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let mut clock = MockClock::new();
        let t = now.clone();
        clock.expect_now().returning(move || *t.lock().unwrap());
        let b = CircuitBreaker::with_clock(
            threshold,
            Duration::from_secs(1),
            Duration::from_millis(300),
            Arc::new(clock),
        );
        (b, now)
    }

    fn advance(now: &Mutex<Instant>, by: Duration) {
        *now.lock().unwrap() += by;
    }

    /// The start of an operation beginning now.
    fn start(now: &Mutex<Instant>) -> Instant {
        *now.lock().unwrap()
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let (b, now) = breaker(3);
        b.record_failure(start(&now));
        b.record_failure(start(&now));
        assert!(b.try_acquire().is_ok());
        b.record_success();
        b.record_failure(start(&now));
        b.record_failure(start(&now));
        assert!(b.try_acquire().is_ok(), "a success resets the count");
        b.record_failure(start(&now));
        let wait = b.try_acquire().unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900));
        assert_eq!(b.snapshot().state, CircuitState::Open);
        assert_eq!(b.snapshot().opened_total, 1);
    }

    #[test]
    fn lets_one_probe_through_after_cooldown_and_closes_on_success() {
        let (b, now) = breaker(1);
        b.record_failure(start(&now));
        assert!(b.try_acquire().is_err());
        advance(&now, Duration::from_millis(1_001));
        assert_eq!(b.snapshot().state, CircuitState::HalfOpen);
        assert!(b.try_acquire().is_ok(), "the probe");
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        b.record_success();
        assert_eq!(b.snapshot().state, CircuitState::Closed);
        assert!(b.try_acquire().is_ok());
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cooldown() {
        let (b, now) = breaker(1);
        b.record_failure(start(&now));
        advance(&now, Duration::from_millis(1_001));
        assert!(b.try_acquire().is_ok());
        b.record_failure(start(&now));
        assert_eq!(b.snapshot().state, CircuitState::Open);
        advance(&now, Duration::from_millis(900));
        assert!(b.try_acquire().is_err());
        advance(&now, Duration::from_millis(200));
        assert!(b.try_acquire().is_ok());
        assert_eq!(b.snapshot().opened_total, 2);
    }

    #[test]
    fn an_abandoned_probe_is_forgotten_after_the_probe_timeout() {
        let (b, now) = breaker(1);
        b.record_failure(start(&now));
        advance(&now, Duration::from_millis(1_001));
        assert!(b.try_acquire().is_ok(), "probe taken, never reported");
        advance(&now, Duration::from_millis(100));
        assert!(b.try_acquire().is_err());
        advance(&now, Duration::from_millis(250));
        assert!(b.try_acquire().is_ok(), "a new probe after the timeout");
    }

    #[test]
    fn threshold_zero_never_opens() {
        let (b, now) = breaker(0);
        for _ in 0..100 {
            b.record_failure(start(&now));
        }
        assert!(b.try_acquire().is_ok());
        assert_eq!(b.snapshot().state, CircuitState::Closed);
    }

    #[test]
    fn operations_in_flight_when_a_failure_is_counted_are_the_same_incident() {
        let (b, now) = breaker(3);
        // Fifty operations start together; the connection drops and all fail.
        let together = start(&now);
        advance(&now, Duration::from_millis(5));
        for _ in 0..50 {
            b.record_failure(together);
        }
        assert_eq!(b.snapshot().consecutive_failures, 1);
        assert_eq!(b.snapshot().state, CircuitState::Closed);
        // Operations started after that failure are new evidence.
        for _ in 0..2 {
            advance(&now, Duration::from_millis(5));
            let began = start(&now);
            advance(&now, Duration::from_millis(1));
            b.record_failure(began);
        }
        assert_eq!(b.snapshot().state, CircuitState::Open);
    }
}
