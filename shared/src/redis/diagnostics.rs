//! What an engineer asks of Redis when an integration misbehaves: the
//! server's own figures ([`super::info::ServerStats`] from `INFO`), a live
//! latency probe ([`super::probe::ping_probe`]), both with the client's own
//! state in one [`RedisReport`]. (The keys of one tenant are listed by
//! [`crate::blocks::keyscan`].)
//!
//! Everything here is bounded, because it runs inside a request against a
//! production Redis that may be slow or huge: the probe sends at most
//! [`super::probe::MAX_PROBE_PINGS`] `PING`s, one after another, and stops at
//! its time budget.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::breaker::CircuitSnapshot;
use super::client::{PoolSnapshot, RedisClient};
use super::error::ErrorKind;
use super::info::{ServerStats, server_stats};
use super::metrics::MetricsSnapshot;
use super::probe::{ProbeReport, ping_probe};

/// A request parameter that cannot be used. The message says what is
/// allowed and never repeats the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct QueryError {
    /// The parameter at fault.
    pub field: &'static str,
    /// What is allowed.
    pub reason: String,
}

impl QueryError {
    /// An error about `field`; `reason` says what is allowed.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Everything `tebra_debug` reports about Redis at one moment: the
/// server's figures, the client's state and counters, and a live probe.
/// Serialized as the body of `GET /debug/redis` and `GET /admin/redis-metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct RedisReport {
    /// `ok`, or `degraded` when the server could not be read.
    pub status: &'static str,
    /// When the sample was taken, in milliseconds since the Unix epoch.
    pub sampled_at_ms: u64,
    /// The Redis address, password replaced by `***`.
    pub target: String,
    /// The server's figures; `None` when `INFO` failed.
    pub server: Option<ServerStats>,
    /// Why `server` is `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_error: Option<ReportError>,
    /// The client in this process.
    pub client: ClientReport,
    /// The live `PING` probe.
    pub probe: ProbeReport,
}

/// A failure inside a [`RedisReport`], without secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportError {
    /// connect, timeout, auth, other or circuit_open.
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    /// What failed, written by this crate.
    pub message: String,
}

/// The client part of a [`RedisReport`]: pool, circuit breaker and the
/// counters since start (flattened [`MetricsSnapshot`]).
#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
    /// Connections.
    pub pool: PoolSnapshot,
    /// The circuit breaker.
    pub circuit: CircuitSnapshot,
    /// Operations, errors by kind and rolling latency percentiles.
    #[serde(flatten)]
    pub metrics: MetricsSnapshot,
}

impl RedisReport {
    /// Takes a report: first the client's counters (so they are as of the
    /// start of the call, before its own round trips), then one `INFO`,
    /// then a probe of `probe` `PING`s within `budget`. When `INFO` fails
    /// because Redis is unavailable, the probe is skipped (it would only
    /// wait for the same failure) and reports that failure.
    pub async fn collect(client: &RedisClient, probe: usize, budget: Duration) -> Self {
        let client_report = ClientReport {
            pool: client.pool(),
            circuit: client.circuit(),
            metrics: client.metrics(),
        };
        let sampled_at_ms = unix_millis();
        let (server, server_error, probe) = match server_stats(client).await {
            Ok(stats) => (Some(stats), None, ping_probe(client, probe, budget).await),
            Err(failure) => {
                let probe = if failure.is_unavailable() {
                    ProbeReport::failed(probe, &failure)
                } else {
                    ping_probe(client, probe, budget).await
                };
                let error = ReportError {
                    kind: failure.kind(),
                    message: failure.to_string(),
                };
                (None, Some(error), probe)
            }
        };
        Self {
            status: if server.is_some() { "ok" } else { "degraded" },
            sampled_at_ms,
            target: client.config().redacted_url(),
            server,
            server_error,
            client: client_report,
            probe,
        }
    }
}

/// Milliseconds since the Unix epoch: the timestamp of a metrics sample.
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
