//! The `/redis-health` probe: a `PING` under its own deadline, reported with
//! the server's version, mode and connected clients, the pool and the
//! circuit-breaker state.
//!
//! Every probe sends `PING`: it is what says whether Redis answers now. The
//! facts from `INFO server` and `INFO clients` change slowly and cost the
//! server far more than a `PING` (building a kilobyte of text), so they are
//! re-read in the same pipelined round trip at most once per
//! [`FACTS_MAX_AGE`], and after any failed probe (a restarted server may be
//! another version). A health check polled at a high rate thus costs Redis a
//! `PING` per request (docs/performance.md measures the difference).
//!
//! The probe bypasses the circuit breaker: it must tell the truth about the
//! server even while the breaker fails operations fast, and its success is
//! what closes an open circuit soonest.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use std::sync::Arc;

use super::breaker::CircuitSnapshot;
use super::client::{PoolSnapshot, RedisClient, RedisConn};
use super::error::{ErrorKind, RedisFailure};
use super::info::info_field;
use crate::contract as names;

/// Result of one probe. Serialized as the `/redis-health` body.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `healthy` or `unhealthy`.
    pub status: &'static str,
    /// `PONG` when the server answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping: Option<String>,
    /// `role` of a standalone server from `INFO replication`: `master` (a
    /// `slave` fails the probe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
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

/// The health probe of one client. It keeps what it last learnt from `INFO`
/// (see the module documentation); clones share it. Build one per client
/// (the functions' [`crate::AppContext`] holds it).
#[derive(Debug, Clone)]
pub struct HealthCheck {
    client: RedisClient,
    facts: Arc<FactsCache>,
}

impl HealthCheck {
    /// A probe of `client`'s server.
    pub fn new(client: RedisClient) -> Self {
        Self {
            client,
            facts: Arc::default(),
        }
    }

    /// Probes Redis within `REDIS_HEALTH_TIMEOUT_MS`. Never fails: a failure
    /// is reported in the result.
    pub async fn check(&self) -> HealthReport {
        check(&self.client, &self.facts).await
    }
}

async fn check(client: &RedisClient, facts: &FactsCache) -> HealthReport {
    let started = std::time::Instant::now();
    let result = probe(client, facts).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let (ping, role, connected_clients, redis_version, redis_mode, failure) = match result {
        Ok(info) => (
            Some(info.pong),
            info.role,
            info.clients,
            info.version,
            info.mode,
            None,
        ),
        Err(failure) => (None, None, None, None, None, Some(failure)),
    };
    HealthReport {
        status: if failure.is_none() {
            names::HEALTHY
        } else {
            names::UNHEALTHY
        },
        ping,
        role,
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

/// How long the `INFO` facts of a probe are reused by the next probes.
pub const FACTS_MAX_AGE: Duration = Duration::from_secs(1);

/// The `INFO` facts of the last probe that read them.
#[derive(Debug, Default)]
struct FactsCache(Mutex<Option<(Instant, Facts)>>);

#[derive(Debug, Clone, Default)]
struct Facts {
    clients: Option<u64>,
    version: Option<String>,
    mode: Option<String>,
}

impl FactsCache {
    fn fresh(&self) -> Option<Facts> {
        let guard = self.0.lock().ok()?;
        guard
            .as_ref()
            .filter(|(read, _)| read.elapsed() < FACTS_MAX_AGE)
            .map(|(_, facts)| facts.clone())
    }

    fn store(&self, facts: Option<Facts>) {
        if let Ok(mut guard) = self.0.lock() {
            *guard = facts.map(|f| (Instant::now(), f));
        }
    }
}

struct ServerInfo {
    pong: String,
    role: Option<String>,
    clients: Option<u64>,
    version: Option<String>,
    mode: Option<String>,
}

async fn probe(client: &RedisClient, cache: &FactsCache) -> Result<ServerInfo, RedisFailure> {
    // One deadline for the whole probe, a replica's second look included.
    let mut conn = client.health_conn(client.config().health_timeout);
    let mut result = probe_once(client, &mut conn, cache).await;
    if matches!(&result, Err(f) if f.kind() == ErrorKind::ReadOnly) {
        // A failover behind the endpoint: every connection of the client
        // still reaches the old primary. Replace them all and look again: a
        // new connection reaches whatever the endpoint names now.
        client.replace_all();
        result = probe_once(client, &mut conn, cache).await;
    }
    result
}

async fn probe_once(
    client: &RedisClient,
    conn: &mut RedisConn,
    cache: &FactsCache,
) -> Result<ServerInfo, RedisFailure> {
    let cached = cache.fresh();
    let read_info = cached.is_none();
    let result = probe_uncached(client, conn, cached).await;
    match &result {
        // Only a probe that read INFO restarts the clock: reused facts
        // must not keep themselves alive under a steady stream of probes.
        Ok(info) if read_info => cache.store(Some(Facts {
            clients: info.clients,
            version: info.version.clone(),
            mode: info.mode.clone(),
        })),
        Ok(_) => {}
        Err(_) => cache.store(None),
    }
    result
}

/// `PING` and `INFO replication` (the role: on a standalone server a
/// replica, where the functions expect a primary, fails the probe: writes
/// would fail), and `INFO server` and `INFO clients` when the cached facts
/// are stale, in one round trip. `INFO` rather than `ROLE`: ACL users that
/// may run the probe are given `+info`, and `ROLE` is in `@dangerous`.
async fn probe_uncached(
    client: &RedisClient,
    conn: &mut RedisConn,
    cached: Option<Facts>,
) -> Result<ServerInfo, RedisFailure> {
    let mut pipe = redis::pipe();
    pipe.cmd("PING").cmd("INFO").arg("replication");
    if cached.is_none() {
        pipe.cmd("INFO").arg("server").cmd("INFO").arg("clients");
    }
    let replies: Vec<redis::Value> = pipe.query_async(conn).await?;
    let mut replies = replies.into_iter();
    let mut text = || -> Result<String, RedisFailure> {
        let value = replies.next().ok_or_else(|| {
            RedisFailure::unexpected("the health probe got fewer replies than it asked for")
        })?;
        redis::from_redis_value(value)
            .map_err(|_| RedisFailure::unexpected("the health probe got a reply it cannot read"))
    };
    let pong = text()?;
    let replication = text()?;
    // A cluster's pipeline goes to one node, replica or not: the role says
    // nothing about the cluster's writes (its client follows MOVED/READONLY).
    let role = (client.is_cluster() == Some(false))
        .then(|| info_field(&replication, "role").map(str::to_owned))
        .flatten();
    if role.as_deref() == Some("slave") {
        return Err(RedisFailure::Failed {
            kind: ErrorKind::ReadOnly,
            detail: "the server is a replica (role:slave): writes would fail".into(),
        });
    }
    let (clients, version, mode) = match cached {
        Some(facts) => (facts.clients, facts.version, facts.mode),
        None => {
            let server = text()?;
            let clients = text()?;
            (
                info_field(&clients, "connected_clients").and_then(|v| v.parse().ok()),
                info_field(&server, "redis_version").map(str::to_owned),
                info_field(&server, "redis_mode").map(str::to_owned),
            )
        }
    };
    Ok(ServerInfo {
        pong,
        role,
        clients,
        version,
        mode,
    })
}
