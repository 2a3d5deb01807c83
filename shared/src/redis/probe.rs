//! A live latency probe: `PING`s one after another within a time budget.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::client::RedisClient;
use super::diagnostics::QueryError;
use super::error::{ErrorKind, RedisFailure};
use crate::telemetry::latency::{LatencySummary, summarize_durations};

/// Most `PING`s one probe sends.
pub const MAX_PROBE_PINGS: usize = 100;

/// The result of a [`ping_probe`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    /// `PING`s asked for (after capping at [`MAX_PROBE_PINGS`]).
    pub requested: usize,
    /// `PING`s answered.
    pub completed: usize,
    /// Round-trip times of the answered `PING`s (`window_secs` is 0).
    pub latency: LatencySummary,
    /// The probe stopped at its time budget before sending them all.
    pub budget_exhausted: bool,
    /// What failed, without secrets; the probe stops at the first failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure's kind: connect, timeout, auth, other, circuit_open.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorKind>,
}

/// Sends `count` `PING`s (at most [`MAX_PROBE_PINGS`]) one after another
/// through `client` and measures each round trip, stopping at the first
/// failure or when `budget` is spent. Never fails: a failure is in the report.
/// The pings are ordinary operations: they count in the client's metrics and
/// respect its circuit breaker.
pub async fn ping_probe(client: &RedisClient, count: usize, budget: Duration) -> ProbeReport {
    let requested = count.min(MAX_PROBE_PINGS);
    let started = Instant::now();
    let mut samples = Vec::with_capacity(requested);
    let mut failure = None;
    let mut budget_exhausted = false;
    if requested > 0 {
        match client.conn() {
            Err(f) => failure = Some(f),
            Ok(mut conn) => {
                for _ in 0..requested {
                    let left = budget.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        budget_exhausted = true;
                        break;
                    }
                    let sent = Instant::now();
                    let cmd = redis::cmd("PING");
                    let ping = cmd.query_async::<String>(&mut conn);
                    match tokio::time::timeout(left, ping).await {
                        Ok(Ok(_)) => samples.push(sent.elapsed()),
                        Ok(Err(err)) => {
                            failure = Some(RedisFailure::from(err));
                            break;
                        }
                        Err(_) => {
                            budget_exhausted = true;
                            break;
                        }
                    }
                }
            }
        }
    }
    ProbeReport {
        requested,
        completed: samples.len(),
        latency: summarize_durations(&samples),
        budget_exhausted,
        error: failure.as_ref().map(ToString::to_string),
        error_type: failure.as_ref().map(RedisFailure::kind),
    }
}

/// Checks a probe size: `0..=`[`MAX_PROBE_PINGS`].
///
/// # Errors
/// A [`QueryError`] about `probe` when it is larger.
pub fn probe_count(count: usize) -> Result<usize, QueryError> {
    if count > MAX_PROBE_PINGS {
        return Err(QueryError::new(
            "probe",
            format!("must be an integer from 0 to {MAX_PROBE_PINGS}"),
        ));
    }
    Ok(count)
}

impl ProbeReport {
    /// A probe not run because of `failure`.
    pub(super) fn failed(requested: usize, failure: &RedisFailure) -> Self {
        Self {
            requested: requested.min(MAX_PROBE_PINGS),
            completed: 0,
            latency: LatencySummary::default(),
            budget_exhausted: false,
            error: Some(failure.to_string()),
            error_type: Some(failure.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sizes_are_bounded() {
        assert_eq!(probe_count(MAX_PROBE_PINGS), Ok(MAX_PROBE_PINGS));
        assert_eq!(probe_count(MAX_PROBE_PINGS + 1).unwrap_err().field, "probe");
    }
}
