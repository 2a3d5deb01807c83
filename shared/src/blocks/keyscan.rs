//! The keys of one tenant, listed with their type and TTL: what an engineer
//! looks at when an integration misbehaves.
//!
//! Bounded, because it runs inside a request against a production Redis
//! that may be huge: the listing uses `SCAN` (never `KEYS`, which blocks the
//! server for the whole keyspace), returns at most [`MAX_KEY_LIMIT`] keys,
//! stops scanning at its time budget and says whether it saw everything; its
//! pattern is confined to the tenant's prefix, and the type and TTL of the
//! keys found are read in one pipelined round trip.
//!
//! Key *values* are never read: a value may be patient data.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::keys::Tenant;
use crate::redis::diagnostics::QueryError;
use crate::redis::{RedisClient, RedisConn, RedisFailure};

/// Most keys one listing returns.
pub const MAX_KEY_LIMIT: usize = 1_000;
/// Longest `pattern` accepted by a listing, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;
/// The `COUNT` hint of each `SCAN`: keys the server examines per call. Large
/// enough for few round trips, small enough that one call never stalls the
/// server (about a millisecond per call).
pub const SCAN_COUNT: usize = 1_000;

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
pub enum CutShort {
    /// `limit` keys were found; there may be more.
    Limit,
    /// The time budget was spent; keys not yet scanned may match.
    TimeBudget,
}

/// One key of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    if client.cluster_mode().await? {
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
    conn: &mut RedisConn,
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
