//! `INFO` parsing: one field ([`info_field`]) and the server's figures
//! ([`ServerStats`]), and [`server_stats`], which reads them with one `INFO`.

use serde::Serialize;

use super::client::RedisClient;
use super::error::RedisFailure;

/// The value of `field` in an `INFO` reply (`field:value` lines).
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The server's figures, from one `INFO` reply. A field the server does not
/// report (managed services hide some) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
    fn info_fields_are_found_by_exact_name() {
        let info = "# Clients\r\nconnected_clients_extra:9\r\nconnected_clients:3\r\nblocked_clients:0\r\n";
        assert_eq!(info_field(info, "connected_clients"), Some("3"));
        assert_eq!(info_field(info, "blocked_clients"), Some("0"));
        assert_eq!(info_field(info, "missing"), None);
    }
}
