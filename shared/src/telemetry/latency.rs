//! Latency histograms: fixed size, lock-free, mergeable; percentiles from
//! bucket counts; and a histogram over the last minute.
//!
//! Recording is one relaxed atomic increment, cheap enough for every Redis
//! round trip. Used by the Redis client's counters (`crate::redis`) and by
//! callers that time things themselves (a probe, a benchmark).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::contract::OPERATIONS_AT_LEAST;

/// Latency buckets: exact below 16 µs, then 8 per power of two (at most 6.25 %
/// apart), up to 2^40 µs. Percentiles are the bucket midpoints.
const EXACT: usize = 16;
const SUB_BITS: u32 = 3;
const MAX_EXP: u32 = 40;
pub(crate) const BUCKETS: usize = EXACT + ((MAX_EXP - 4 + 1) as usize) * (1 << SUB_BITS);

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
    pub(crate) fn drain_into(&self, into: &mut [u64]) {
        for (acc, c) in into.iter_mut().zip(&*self.counts) {
            *acc += c.swap(0, Relaxed);
        }
    }
}

/// Percentiles of a set of bucket counts.
pub(crate) fn summarize(counts: &[u64], window: Duration) -> LatencySummary {
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
        at_least: at_least(counts),
    }
}

/// For each bound of [`OPERATIONS_AT_LEAST`], the observations at least
/// that long. A bucket lies wholly on one side of a bound except the one
/// that straddles it, which is counted by its midpoint: exact to within a
/// bucket's width (6.25 %) of the bound.
fn at_least(counts: &[u64]) -> [u64; AT_LEAST] {
    std::array::from_fn(|i| {
        let bound_micros = OPERATIONS_AT_LEAST[i].0 as f64 * 1_000.0;
        counts
            .iter()
            .enumerate()
            .filter(|(bucket, _)| value_of(*bucket) >= bound_micros)
            .map(|(_, c)| c)
            .sum()
    })
}

fn round3(v: f64) -> f64 {
    (v * 1_000.0).round() / 1_000.0
}

/// Latency percentiles over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
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
    /// Observations at least as long as each bound of
    /// [`OPERATIONS_AT_LEAST`], in its order (the distribution's tail).
    #[serde(skip)]
    pub at_least: [u64; AT_LEAST],
}

/// How many bounds [`LatencySummary::at_least`] counts.
pub const AT_LEAST: usize = OPERATIONS_AT_LEAST.len();

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
pub(crate) struct RollingHistogram {
    origin: Instant,
    slots: [(AtomicU64, Histogram); SLOTS],
}

impl RollingHistogram {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            slots: std::array::from_fn(|_| (AtomicU64::new(u64::MAX), Histogram::default())),
        }
    }

    fn epoch(&self) -> u64 {
        self.epoch_at(Instant::now())
    }

    fn epoch_at(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / SLOT_SECS
    }

    /// Records `elapsed` in the window of `now` (the caller's clock reading).
    pub(crate) fn record_at(&self, elapsed: Duration, now: Instant) {
        let epoch = self.epoch_at(now);
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

    pub(crate) fn summary(&self) -> LatencySummary {
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
    fn tail_counts_are_cumulative_and_exact_away_from_the_bounds() {
        let ms =
            |v: &[u64]| -> Vec<Duration> { v.iter().map(|m| Duration::from_millis(*m)).collect() };
        // Bounds 10, 25, 50, 100, 250, 1000 ms.
        let s = summarize_durations(&ms(&[1, 9, 12, 30, 49, 60, 120, 300, 2_000]));
        assert_eq!(s.at_least, [7, 6, 4, 3, 2, 1]);
        let none = summarize_durations(&[]);
        assert_eq!(none.at_least, [0; AT_LEAST]);
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
}
