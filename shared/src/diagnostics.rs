//! What an engineer asks of Redis when an integration misbehaves: the
//! server's own figures ([`ServerStats`] from `INFO`), a live latency probe
//! ([`ping_probe`]), both with the client's own state in one
//! [`RedisReport`], and the keys of one tenant ([`list_keys`]).
//!
//! Everything here is bounded, because it runs inside a request against a
//! production Redis that may be slow or huge:
//!
//! - the probe sends at most [`MAX_PROBE_PINGS`] `PING`s, one after another,
//!   and stops at its time budget;
//! - the key listing uses `SCAN` (never `KEYS`, which blocks the server for
//!   the whole keyspace), returns at most [`MAX_KEY_LIMIT`] keys, stops
//!   scanning at its time budget and says whether it saw everything; its
//!   pattern is confined to the tenant's prefix, and the type and TTL of the
//!   keys found are read in one pipelined round trip.
//!
//! Key *values* are never read: a value may be patient data.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::breaker::CircuitSnapshot;
use crate::client::{PoolSnapshot, RedisClient};
use crate::error::{ErrorKind, RedisFailure};
use crate::health::info_field;
use crate::keys::Tenant;
use crate::metrics::{LatencySummary, MetricsSnapshot, summarize_durations};

/// Most `PING`s one probe sends.
pub const MAX_PROBE_PINGS: usize = 100;
/// Most keys one listing returns.
pub const MAX_KEY_LIMIT: usize = 1_000;
/// Longest `pattern` accepted by a listing, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;
/// The `COUNT` hint of each `SCAN`: keys the server examines per call. Large
/// enough for few round trips, small enough that one call never stalls the
/// server (about a millisecond per call).
pub const SCAN_COUNT: usize = 1_000;

/// The server's figures, from one `INFO` reply. A field the server does not
/// report (managed services hide some) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerStats {
    /// `redis_version`.
    pub version: Option<String>,
    /// `redis_mode`: `standalone`, `cluster` or `sentinel`.
    pub mode: Option<String>,
    /// `role`: `master` or `slave`.
    pub role: Option<String>,
    /// `uptime_in_seconds`.
    pub uptime_secs: Option<u64>,
    /// Memory use and limit.
    pub memory: MemoryStats,
    /// Client connections.
    pub clients: ClientStats,
    /// `instantaneous_ops_per_sec`: commands per second, as the server
    /// samples them (over its last ~1.6 s).
    pub ops_per_sec: Option<u64>,
    /// `total_commands_processed` since the server started.
    pub total_commands: Option<u64>,
    /// Key reads that found or missed their key, and keys removed.
    pub keyspace: KeyspaceStats,
}

/// Memory figures of [`ServerStats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MemoryStats {
    /// `used_memory`, bytes.
    pub used_bytes: Option<u64>,
    /// `used_memory_peak`, bytes.
    pub peak_bytes: Option<u64>,
    /// `maxmemory`, bytes; `None` when unlimited (`0`) or not reported.
    pub max_bytes: Option<u64>,
    /// `used_bytes / max_bytes`, when there is a limit.
    pub used_ratio: Option<f64>,
    /// `maxmemory_policy`: what the server evicts at the limit.
    pub eviction_policy: Option<String>,
    /// `mem_fragmentation_ratio`.
    pub fragmentation_ratio: Option<f64>,
}

/// Client figures of [`ServerStats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ClientStats {
    /// `connected_clients`.
    pub connected: Option<u64>,
    /// `blocked_clients` (waiting in `BLPOP` and the like).
    pub blocked: Option<u64>,
    /// `maxclients`.
    pub max: Option<u64>,
    /// `rejected_connections` since start (over `maxclients`).
    pub rejected: Option<u64>,
}

/// Keyspace figures of [`ServerStats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct KeyspaceStats {
    /// Keys in all databases (sum of the `# Keyspace` lines).
    pub keys: Option<u64>,
    /// `keyspace_hits`: key reads that found their key, since start.
    pub hits: Option<u64>,
    /// `keyspace_misses`: key reads that did not, since start.
    pub misses: Option<u64>,
    /// `hits / (hits + misses)`; `None` before the first read.
    pub hit_rate: Option<f64>,
    /// `evicted_keys`: removed to stay under `maxmemory`, since start.
    pub evicted_keys: Option<u64>,
    /// `expired_keys`: removed by their TTL, since start.
    pub expired_keys: Option<u64>,
}

impl ServerStats {
    /// Reads the figures out of an `INFO` reply (`field:value` lines).
    pub fn from_info(info: &str) -> Self {
        let num = |field: &str| info_field(info, field).and_then(|v| v.parse::<u64>().ok());
        let float = |field: &str| info_field(info, field).and_then(|v| v.parse::<f64>().ok());
        let text = |field: &str| info_field(info, field).map(str::to_owned);
        let used = num("used_memory");
        let max = num("maxmemory").filter(|m| *m > 0);
        let hits = num("keyspace_hits");
        let misses = num("keyspace_misses");
        let hit_rate = match (hits, misses) {
            (Some(h), Some(m)) if h + m > 0 => Some(h as f64 / (h + m) as f64),
            _ => None,
        };
        Self {
            version: text("redis_version"),
            mode: text("redis_mode"),
            role: text("role"),
            uptime_secs: num("uptime_in_seconds"),
            memory: MemoryStats {
                used_bytes: used,
                peak_bytes: num("used_memory_peak"),
                max_bytes: max,
                used_ratio: used.zip(max).map(|(u, m)| u as f64 / m as f64),
                eviction_policy: text("maxmemory_policy"),
                fragmentation_ratio: float("mem_fragmentation_ratio"),
            },
            clients: ClientStats {
                connected: num("connected_clients"),
                blocked: num("blocked_clients"),
                max: num("maxclients"),
                rejected: num("rejected_connections"),
            },
            ops_per_sec: num("instantaneous_ops_per_sec"),
            total_commands: num("total_commands_processed"),
            keyspace: KeyspaceStats {
                keys: keyspace_keys(info),
                hits,
                misses,
                hit_rate,
                evicted_keys: num("evicted_keys"),
                expired_keys: num("expired_keys"),
            },
        }
    }
}

/// Sum of `keys=` over the `db<N>:keys=…,expires=…` lines; `Some(0)` when
/// the `# Keyspace` section is there but empty.
fn keyspace_keys(info: &str) -> Option<u64> {
    let mut in_section = false;
    let mut total = None;
    for line in info.lines() {
        let line = line.trim();
        if let Some(section) = line.strip_prefix('#') {
            in_section = section.trim().eq_ignore_ascii_case("keyspace");
            if in_section {
                total = Some(0);
            }
            continue;
        }
        if !in_section || !line.starts_with("db") {
            continue;
        }
        let keys = line
            .split_once(':')
            .and_then(|(_, rest)| rest.split(',').find_map(|kv| kv.strip_prefix("keys=")))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(keys) = keys {
            total = Some(total.unwrap_or(0) + keys);
        }
    }
    total
}

/// Reads the server's figures with one `INFO` (its default sections).
///
/// # Errors
/// The Redis failure, or an open circuit.
pub async fn server_stats(client: &RedisClient) -> Result<ServerStats, RedisFailure> {
    let info: String = client
        .run(|mut c| async move { redis::cmd("INFO").query_async(&mut c).await })
        .await?;
    Ok(ServerStats::from_info(&info))
}

/// The result of a [`ping_probe`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
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

/// A request parameter that cannot be used. The message says what is
/// allowed and never repeats the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
#[non_exhaustive]
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

/// Everything `tebra_debug` reports about Redis at one moment: the
/// server's figures, the client's state and counters, and a live probe.
/// Serialized as the body of `GET /debug/redis` and `GET /admin/redis-metrics`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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

impl ProbeReport {
    /// A probe not run because of `failure`.
    fn failed(requested: usize, failure: &RedisFailure) -> Self {
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

/// What to list: a tenant, a glob inside it, and how many keys at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQuery {
    tenant: Tenant,
    pattern: String,
    limit: usize,
}

impl KeyQuery {
    /// The keys of `tenant` matching `glob` (a Redis glob applied after the
    /// tenant prefix; empty means `*`), at most `limit` of them.
    ///
    /// # Errors
    /// A [`QueryError`] when `limit` is not within `1..=`[`MAX_KEY_LIMIT`]
    /// or `glob` is longer than [`MAX_PATTERN_LEN`] bytes.
    pub fn new(tenant: Tenant, glob: &str, limit: usize) -> Result<Self, QueryError> {
        if limit == 0 || limit > MAX_KEY_LIMIT {
            return Err(QueryError::new(
                "limit",
                format!("must be an integer from 1 to {MAX_KEY_LIMIT}"),
            ));
        }
        if glob.len() > MAX_PATTERN_LEN {
            return Err(QueryError::new(
                "pattern",
                format!("must be at most {MAX_PATTERN_LEN} bytes"),
            ));
        }
        Ok(Self {
            pattern: tenant.scan_pattern(glob),
            tenant,
            limit,
        })
    }

    /// The `SCAN MATCH` pattern: the tenant prefix, then the glob.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The tenant.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Most keys returned.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Why a listing stopped before covering the whole keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CutShort {
    /// `limit` keys were found; there may be more.
    Limit,
    /// The time budget was spent; keys not yet scanned may match.
    TimeBudget,
}

/// One key of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyEntry {
    /// The key (bytes that are not UTF-8 shown as U+FFFD).
    pub key: String,
    /// `string`, `hash`, `list`, `set`, `zset`, `stream`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Time to live in milliseconds; `None` when the key does not expire.
    pub ttl_ms: Option<i64>,
}

/// The result of [`list_keys`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct KeyListing {
    /// The tenant listed.
    pub workspace: String,
    /// The `SCAN MATCH` pattern used (always under the tenant's prefix).
    pub pattern: String,
    /// Most keys returned.
    pub limit: usize,
    /// Whether the scan covered the whole keyspace: `keys` is every match.
    pub complete: bool,
    /// Why it did not, when it did not.
    pub cut_short: Option<CutShort>,
    /// The keys found, at most `limit`, in scan order.
    pub keys: Vec<KeyEntry>,
    /// `SCAN` round trips made.
    pub scan_calls: u64,
    /// Time taken, in milliseconds.
    pub elapsed_ms: f64,
}

/// Why [`list_keys`] returned no listing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListKeysError {
    /// On Redis Cluster a `SCAN` cursor belongs to one node, which this
    /// client does not route to.
    #[error("listing keys is not supported on Redis Cluster")]
    ClusterUnsupported,
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] RedisFailure),
}

/// Lists the keys of `query` with their type and TTL (see the module
/// documentation). Scanning stops at `limit` keys or when `budget` is spent,
/// whichever comes first; the type and TTL lookups then take one pipelined
/// round trip, bounded by the command deadline. So the call returns within
/// `budget` plus one `REDIS_COMMAND_TIMEOUT_MS`.
///
/// # Errors
/// [`ListKeysError::ClusterUnsupported`] in cluster mode; the Redis failure
/// of a round trip (nothing partial is returned then).
pub async fn list_keys(
    client: &RedisClient,
    query: &KeyQuery,
    budget: Duration,
) -> Result<KeyListing, ListKeysError> {
    if client.config().cluster {
        return Err(ListKeysError::ClusterUnsupported);
    }
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + budget;
    let prefix = query.tenant.prefix().as_bytes();
    let mut conn = client.conn()?;
    let mut cursor: u64 = 0;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut scan_calls = 0;
    let mut cut_short = None;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&query.pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let step = cmd.query_async::<(u64, Vec<Vec<u8>>)>(&mut conn);
        let (next, batch) = match tokio::time::timeout_at(deadline, step).await {
            Ok(result) => result.map_err(RedisFailure::from)?,
            Err(_) => {
                cut_short = Some(CutShort::TimeBudget);
                break;
            }
        };
        scan_calls += 1;
        // The pattern already confines the scan; checking the prefix again
        // costs nothing and does not depend on how the server reads globs.
        for key in batch {
            if key.starts_with(prefix) && !seen.contains(&key) {
                seen.insert(key.clone());
                found.push(key);
            }
        }
        cursor = next;
        if found.len() > query.limit || (found.len() == query.limit && cursor != 0) {
            found.truncate(query.limit);
            cut_short = Some(CutShort::Limit);
            break;
        }
        if cursor == 0 {
            break;
        }
    }
    let keys = if found.is_empty() {
        Vec::new()
    } else {
        describe_keys(&mut conn, found).await?
    };
    Ok(KeyListing {
        workspace: query.tenant.id().to_owned(),
        pattern: query.pattern.clone(),
        limit: query.limit,
        complete: cut_short.is_none(),
        cut_short,
        keys,
        scan_calls,
        elapsed_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
    })
}

/// Type and TTL of each key, in one pipelined round trip. Keys that vanished
/// since the scan (type `none`) are left out.
async fn describe_keys(
    conn: &mut crate::client::RedisConn,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<KeyEntry>, RedisFailure> {
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("TYPE").arg(key).cmd("PTTL").arg(key);
    }
    let replies: Vec<(String, i64)> = {
        let flat: Vec<redis::Value> = pipe.query_async(conn).await?;
        let mut pairs = Vec::with_capacity(keys.len());
        let mut it = flat.into_iter();
        while let (Some(kind), Some(ttl)) = (it.next(), it.next()) {
            let kind: String = redis::from_redis_value(kind)
                .map_err(|_| RedisFailure::unexpected("TYPE reply is not a string"))?;
            let ttl: i64 = redis::from_redis_value(ttl)
                .map_err(|_| RedisFailure::unexpected("PTTL reply is not an integer"))?;
            pairs.push((kind, ttl));
        }
        pairs
    };
    Ok(keys
        .into_iter()
        .zip(replies)
        .filter(|(_, (kind, ttl))| kind != "none" && *ttl != -2)
        .map(|(key, (kind, ttl))| KeyEntry {
            key: String::from_utf8_lossy(&key).into_owned(),
            kind,
            ttl_ms: (ttl >= 0).then_some(ttl),
        })
        .collect())
}

/// Milliseconds since the Unix epoch: the timestamp of a metrics sample.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Excerpts of a real `INFO` reply of redis-server 7.0.
    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nuptime_in_seconds:42\r\n\r\n\
        # Clients\r\nconnected_clients:3\r\nmaxclients:10000\r\nblocked_clients:1\r\n\r\n\
        # Memory\r\nused_memory:1048576\r\nused_memory_peak:2097152\r\nmaxmemory:4194304\r\n\
        maxmemory_policy:allkeys-lru\r\nmem_fragmentation_ratio:1.25\r\n\r\n\
        # Stats\r\ntotal_commands_processed:1000\r\ninstantaneous_ops_per_sec:17\r\n\
        rejected_connections:0\r\nexpired_keys:5\r\nevicted_keys:2\r\nkeyspace_hits:30\r\nkeyspace_misses:10\r\n\r\n\
        # Replication\r\nrole:master\r\n\r\n\
        # Keyspace\r\ndb0:keys=7,expires=1,avg_ttl=100\r\ndb3:keys=5,expires=0,avg_ttl=0\r\n";

    #[test]
    fn server_stats_are_read_from_info() {
        let s = ServerStats::from_info(INFO);
        assert_eq!(s.version.as_deref(), Some("7.0.15"));
        assert_eq!(s.mode.as_deref(), Some("standalone"));
        assert_eq!(s.role.as_deref(), Some("master"));
        assert_eq!(s.uptime_secs, Some(42));
        assert_eq!(s.memory.used_bytes, Some(1_048_576));
        assert_eq!(s.memory.max_bytes, Some(4_194_304));
        assert_eq!(s.memory.used_ratio, Some(0.25));
        assert_eq!(s.memory.eviction_policy.as_deref(), Some("allkeys-lru"));
        assert_eq!(s.clients.connected, Some(3));
        assert_eq!(s.clients.blocked, Some(1));
        assert_eq!(s.ops_per_sec, Some(17));
        assert_eq!(s.keyspace.hits, Some(30));
        assert_eq!(s.keyspace.misses, Some(10));
        assert_eq!(s.keyspace.hit_rate, Some(0.75));
        assert_eq!(s.keyspace.evicted_keys, Some(2));
        assert_eq!(s.keyspace.expired_keys, Some(5));
        assert_eq!(s.keyspace.keys, Some(12));
    }

    #[test]
    fn unlimited_memory_and_no_reads_are_none_not_zero() {
        let s = ServerStats::from_info(
            "maxmemory:0\r\nused_memory:10\r\nkeyspace_hits:0\r\nkeyspace_misses:0\r\n# Keyspace\r\n",
        );
        assert_eq!(s.memory.max_bytes, None);
        assert_eq!(s.memory.used_ratio, None);
        assert_eq!(s.keyspace.hit_rate, None);
        assert_eq!(s.keyspace.keys, Some(0));
        assert_eq!(ServerStats::from_info("").keyspace.keys, None);
    }

    #[test]
    fn key_queries_are_bounded_and_confined() {
        let acme = Tenant::new("workspace", "acme").unwrap();
        let q = KeyQuery::new(acme.clone(), "patient:*", 10).unwrap();
        assert_eq!(q.pattern(), "ws:{acme}:patient:*");
        assert_eq!(
            KeyQuery::new(acme.clone(), "", 1).unwrap().pattern(),
            "ws:{acme}:*"
        );
        for glob in ["*", "../*", "}:*", "\\*", "[a-z]*"] {
            let q = KeyQuery::new(acme.clone(), glob, 1).unwrap();
            assert!(q.pattern().starts_with("ws:{acme}:"), "{glob}");
        }
        for limit in [0, MAX_KEY_LIMIT + 1] {
            let err = KeyQuery::new(acme.clone(), "*", limit).unwrap_err();
            assert_eq!(err.field, "limit");
            assert!(err.to_string().contains("from 1 to 1000"), "{err}");
        }
        let err = KeyQuery::new(acme, &"x".repeat(MAX_PATTERN_LEN + 1), 1).unwrap_err();
        assert_eq!(err.field, "pattern");
        assert!(probe_count(MAX_PROBE_PINGS).is_ok());
        assert_eq!(probe_count(MAX_PROBE_PINGS + 1).unwrap_err().field, "probe");
    }
}
