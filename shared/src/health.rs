//! The `/redis-health` probe: one pipelined round trip (`PING`, `INFO server`,
//! `INFO clients`) under its own deadline, reported with the pool and
//! circuit-breaker state.
//!
//! The probe bypasses the circuit breaker: it must tell the truth about the
//! server even while the breaker fails operations fast, and its success is
//! what closes an open circuit soonest.

use serde::Serialize;

use crate::breaker::CircuitSnapshot;
use crate::client::{PoolSnapshot, RedisClient};
use crate::error::{ErrorKind, RedisFailure};
use crate::telemetry::names;

/// Result of one probe. Serialized as the `/redis-health` body.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// `healthy` or `unhealthy`.
    pub status: &'static str,
    /// `PONG` when the server answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping: Option<String>,
    /// Duration of the probe's round trip (or of the wait before it failed).
    pub latency_ms: f64,
    /// `connected_clients` from `INFO clients`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_clients: Option<u64>,
    /// `redis_version` from `INFO server`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_version: Option<String>,
    /// `redis_mode` from `INFO server` (standalone, cluster, sentinel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_mode: Option<String>,
    /// What failed, without secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure's kind: connect, timeout, auth, other.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorKind>,
    /// Connections of the client.
    pub pool: PoolSnapshot,
    /// The circuit breaker.
    pub circuit: CircuitSnapshot,
}

impl HealthReport {
    /// Whether Redis answered.
    pub fn is_healthy(&self) -> bool {
        self.error_type.is_none()
    }
}

/// Probes Redis through `client` within `REDIS_HEALTH_TIMEOUT_MS`. Never
/// fails: a failure is reported in the result.
pub async fn check(client: &RedisClient) -> HealthReport {
    let started = std::time::Instant::now();
    let result = probe(client).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let (ping, connected_clients, redis_version, redis_mode, failure) = match result {
        Ok(info) => (Some(info.pong), info.clients, info.version, info.mode, None),
        Err(failure) => (None, None, None, None, Some(failure)),
    };
    HealthReport {
        status: if failure.is_none() {
            names::HEALTHY
        } else {
            names::UNHEALTHY
        },
        ping,
        latency_ms,
        connected_clients,
        redis_version,
        redis_mode,
        error: failure.as_ref().map(ToString::to_string),
        error_type: failure.as_ref().map(RedisFailure::kind),
        pool: client.pool(),
        circuit: client.circuit(),
    }
}

struct ServerInfo {
    pong: String,
    clients: Option<u64>,
    version: Option<String>,
    mode: Option<String>,
}

async fn probe(client: &RedisClient) -> Result<ServerInfo, RedisFailure> {
    let mut conn = client.conn_with_deadline(client.config().health_timeout)?;
    let (pong, server, clients): (String, String, String) = redis::pipe()
        .cmd("PING")
        .cmd("INFO")
        .arg("server")
        .cmd("INFO")
        .arg("clients")
        .query_async(&mut conn)
        .await?;
    Ok(ServerInfo {
        pong,
        clients: info_field(&clients, "connected_clients").and_then(|v| v.parse().ok()),
        version: info_field(&server, "redis_version").map(str::to_owned),
        mode: info_field(&server, "redis_mode").map(str::to_owned),
    })
}

/// The value of `field` in an `INFO` reply (`field:value` lines).
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

#[cfg(test)]
mod tests {
    use super::info_field;

    #[test]
    fn info_fields_are_found_by_exact_name() {
        let info = "# Clients\r\nconnected_clients_extra:9\r\nconnected_clients:3\r\nblocked_clients:0\r\n";
        assert_eq!(info_field(info, "connected_clients"), Some("3"));
        assert_eq!(info_field(info, "blocked_clients"), Some("0"));
        assert_eq!(info_field(info, "missing"), None);
    }
}
