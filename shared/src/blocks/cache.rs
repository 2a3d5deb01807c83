//! Cache-aside on Redis, with HIT/MISS reporting and stampede protection.
//!
//! [`Cache::get_or_compute`] reads a value; on a miss it computes it, stores
//! it with a TTL and returns it, telling the caller which of the two happened
//! ([`CacheStatus`]). When many callers miss the same key at once (a value
//! just expired under load), only one computes: it takes a short per-key lock
//! (`SET … NX PX`), the others wait for the value to appear and report
//! [`CacheStatus::Coalesced`].
//!
//! # Keys
//!
//! ```text
//! ws:{<tenant>}:cache:<namespace>:<escaped key>        the value (JSON), TTL = the cache's TTL
//! ws:{<tenant>}:cache_lock:<namespace>:<escaped key>   the recompute lock, TTL = the lock lease
//! ```
//!
//! Keys are built by [`Tenant::key_with`], so no caller-supplied key can
//! leave the tenant or collide with another key.
//!
//! # What it costs Redis
//!
//! A hit is one `GET`. A miss is one `GET`, one `SET NX` for the lock and one
//! round trip with the value `SET` and the lock `DEL`. Only the `GET`s are
//! key *reads*, so Redis' `keyspace_hits` and `keyspace_misses` (the hit rate
//! `tebra_debug` charts) move exactly as this cache's hits and misses do
//! (waiters polling for a value being computed add misses).
//!
//! The lock is released with a plain `DEL` rather than a compare-and-delete
//! script (whose `GET` would count a keyspace hit on every miss). The `DEL`
//! is only sent while, by this process's clock, the lease has not run out
//! (the time since `SET NX` was sent plus the round trip's deadline is under
//! the lease); past that the lock is left to expire. That makes deleting a
//! later holder's lock unlikely, not impossible: a `DEL` held up longer than
//! its deadline (a paused server, a frozen process, a slow network) can
//! still arrive after the lease ended and another caller took the lock. The
//! lock is advisory, so the cost is bounded: one extra computation of the
//! value, never a wrong value (every holder stores what it computed itself).
//!
//! # When Redis fails
//!
//! A cache must not turn a Redis outage into an outage of what it caches: on
//! a Redis failure the value is computed directly, the failure is logged and
//! counted as a fallback, and the status is [`CacheStatus::Bypass`]. The
//! circuit breaker keeps a dead Redis from being tried on every call.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::{KeyError, Tenant};
use crate::redis::RedisClient;
use crate::redis::error::{ErrorKind, RedisFailure};

/// How a value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CacheStatus {
    /// Found in the cache.
    Hit,
    /// Not in the cache: computed by this caller and stored.
    Miss,
    /// Not in the cache, but another caller was computing it: this caller
    /// waited and read the value that caller stored.
    Coalesced,
    /// Redis failed: computed by this caller and not stored.
    Bypass,
}

impl CacheStatus {
    /// `HIT`, `MISS`, `COALESCED` or `BYPASS`: the name used in logs and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Coalesced => "COALESCED",
            Self::Bypass => "BYPASS",
        }
    }

    /// Whether the value came from the cache (a hit, or a wait for another
    /// caller's computation) rather than from this caller's computation.
    pub fn is_hit(self) -> bool {
        matches!(self, Self::Hit | Self::Coalesced)
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached<T> {
    /// The cached or freshly computed value.
    pub value: T,
    /// Hit, miss, coalesced or bypass.
    pub status: CacheStatus,
    /// The Redis failure behind a [`CacheStatus::Bypass`].
    pub failure: Option<RedisFailure>,
}

/// Why [`Cache::get_or_compute`] returned no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError<E> {
    /// The key cannot be used (empty, or longer than
    /// [`MAX_ID_LEN`](super::keys::MAX_ID_LEN) bytes).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The computation failed. Nothing was stored.
    #[error("computing the value failed: {0}")]
    Compute(E),
    /// Redis failed. Only [`Cache::invalidate`] returns this:
    /// [`Cache::get_or_compute`] computes without the cache instead.
    #[error(transparent)]
    Redis(RedisFailure),
}

/// A cache-aside cache of one kind of value (see the module documentation).
/// Cheap to clone; clones share the client.
#[derive(Clone)]
pub struct Cache {
    client: RedisClient,
    tenant: Tenant,
    namespace: &'static str,
    ttl: Duration,
    lock_lease: Duration,
    wait: Duration,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("tenant", &self.tenant)
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("lock_lease", &self.lock_lease)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// The default lease of the recompute lock.
pub const DEFAULT_LOCK_LEASE: Duration = Duration::from_secs(5);
/// The default longest wait for another caller's computation.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);

/// Pause between two reads of a value another caller is computing: from the
/// first to the last, doubling.
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(50);

impl Cache {
    /// A cache of `namespace` values of `tenant`, kept for `ttl` (at least
    /// one millisecond). `namespace` is a fixed name chosen by the code
    /// (`info`, `practice_summary`), escaped like any id.
    pub fn new(
        client: RedisClient,
        tenant: &Tenant,
        namespace: &'static str,
        ttl: Duration,
    ) -> Self {
        Self {
            client,
            tenant: tenant.clone(),
            namespace,
            ttl: ttl.max(Duration::from_millis(1)),
            lock_lease: DEFAULT_LOCK_LEASE,
            wait: DEFAULT_WAIT,
        }
    }

    /// Sets the recompute lock's lease (how long one caller may compute
    /// before another may start; default 5 s) and the longest time a caller
    /// waits for another's computation before computing itself (default 2 s).
    pub fn with_lock(mut self, lease: Duration, wait: Duration) -> Self {
        self.lock_lease = lease.max(Duration::from_millis(1));
        self.wait = wait;
        self
    }

    /// How long values are kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The Redis key of the value cached under `key`.
    ///
    /// # Errors
    /// When `key` is empty or longer than [`MAX_ID_LEN`](super::keys::MAX_ID_LEN) bytes.
    pub fn value_key(&self, key: &str) -> Result<String, KeyError> {
        self.tenant
            .key_with("cache", "cache key", &[self.namespace, key])
    }

    /// The Redis key of the recompute lock of `key`.
    ///
    /// # Errors
    /// As [`Cache::value_key`].
    pub fn lock_key(&self, key: &str) -> Result<String, KeyError> {
        self.tenant
            .key_with("cache_lock", "cache key", &[self.namespace, key])
    }

    /// The value cached under `key`, or `compute`'s result, stored for the
    /// cache's TTL (see the module documentation for the protocol).
    ///
    /// ```no_run
    /// # async fn demo(redis: shared::RedisClient) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use shared::blocks::cache::Cache;
    /// use shared::blocks::keys::Tenant;
    ///
    /// let tenant = Tenant::new("workspace", "acme")?;
    /// let cache = Cache::new(redis, &tenant, "report", Duration::from_secs(30));
    /// let report = cache
    ///     .get_or_compute("monthly", || async { Ok::<_, std::io::Error>(vec![1, 2, 3]) })
    ///     .await?;
    /// tracing::info!(cache = %report.status, "report served");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`CacheError::Key`] for an unusable key (nothing is read or computed);
    /// [`CacheError::Compute`] when `compute` fails (nothing is stored).
    /// Redis failures are not errors: see [`CacheStatus::Bypass`].
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        key: &str,
        compute: F,
    ) -> Result<Cached<T>, CacheError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let value_key = self.value_key(key)?;
        let lock_key = self.lock_key(key)?;
        match self.read::<T>(&value_key).await {
            Ok(Some(value)) => return Ok(self.outcome(value, CacheStatus::Hit, None)),
            Ok(None) => {}
            Err(failure) => return self.bypass(compute, failure).await,
        }
        let lock_sent = Instant::now();
        let lock_deadline;
        match self.try_lock(&lock_key).await {
            Ok((true, deadline)) => lock_deadline = Some(deadline),
            Ok((false, _)) => match self.wait_for::<T>(&value_key).await {
                Ok(Some(value)) => {
                    return Ok(self.outcome(value, CacheStatus::Coalesced, None));
                }
                // The holder is slow or gone: compute without the lock.
                Ok(None) => lock_deadline = None,
                Err(failure) => return self.bypass(compute, failure).await,
            },
            Err(failure) => return self.bypass(compute, failure).await,
        }
        let computed = compute().await;
        // Released only while, by our clock, the lease still runs (see the
        // module documentation); the value is stored only when the
        // computation worked.
        let release = lock_deadline.and_then(|deadline| {
            (lock_sent.elapsed() + deadline < self.lock_lease).then_some(lock_key.as_str())
        });
        let stored = match &computed {
            Ok(value) => match serde_json::to_vec(value) {
                Ok(bytes) => Some(bytes),
                Err(err) => {
                    tracing::warn!(
                        cache.namespace = self.namespace,
                        error.category = ?err.classify(),
                        "cache value could not be serialized; not stored"
                    );
                    None
                }
            },
            Err(_) => None,
        };
        let failure = self
            .store(&value_key, stored.as_deref(), release)
            .await
            .err();
        if let Some(failure) = &failure {
            tracing::warn!(
                cache.namespace = self.namespace,
                error.kind = failure.kind().as_str(),
                error = %failure,
                "cache store failed; the computed value is returned anyway"
            );
        }
        let value = computed.map_err(CacheError::Compute)?;
        Ok(self.outcome(value, CacheStatus::Miss, None))
    }

    /// Removes the value cached under `key` (after the data behind it
    /// changed). Returns whether there was one.
    ///
    /// # Errors
    /// [`CacheError::Key`] for an unusable key, [`CacheError::Redis`] when
    /// Redis fails: the stale value may then still be served until its TTL.
    pub async fn invalidate(
        &self,
        key: &str,
    ) -> Result<bool, CacheError<std::convert::Infallible>> {
        let value_key = self.value_key(key)?;
        self.client
            .run(|mut c| async move {
                redis::cmd("DEL")
                    .arg(value_key)
                    .query_async::<u64>(&mut c)
                    .await
            })
            .await
            .map(|n| n > 0)
            .map_err(CacheError::Redis)
    }

    fn outcome<T>(
        &self,
        value: T,
        status: CacheStatus,
        failure: Option<RedisFailure>,
    ) -> Cached<T> {
        tracing::debug!(
            cache.namespace = self.namespace,
            cache.status = status.as_str(),
            "cache lookup"
        );
        Cached {
            value,
            status,
            failure,
        }
    }

    /// Computes without the cache after a Redis failure.
    async fn bypass<T, E, F, Fut>(
        &self,
        compute: F,
        failure: RedisFailure,
    ) -> Result<Cached<T>, CacheError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.client.record_fallback();
        if failure.kind() == ErrorKind::CircuitOpen {
            tracing::debug!(
                cache.namespace = self.namespace,
                error.kind = failure.kind().as_str(),
                "redis skipped; computing without the cache"
            );
        } else {
            tracing::warn!(
                cache.namespace = self.namespace,
                error.kind = failure.kind().as_str(),
                error = %failure,
                "cache unavailable; computing without it"
            );
        }
        let value = compute().await.map_err(CacheError::Compute)?;
        Ok(self.outcome(value, CacheStatus::Bypass, Some(failure)))
    }

    /// The decoded value under `key`; `None` when absent or undecodable
    /// (a value of an older shape is recomputed and overwritten).
    async fn read<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RedisFailure> {
        let key = key.to_owned();
        let bytes: Option<Vec<u8>> = self
            .client
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        Ok(bytes.and_then(|b| match serde_json::from_slice(&b) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::warn!(
                    cache.namespace = self.namespace,
                    error.category = ?err.classify(),
                    "cached value could not be decoded; recomputing it"
                );
                None
            }
        }))
    }

    /// Tries to take the recompute lock. Returns whether it was taken and
    /// the deadline of the round trips on the connection used.
    async fn try_lock(&self, lock_key: &str) -> Result<(bool, Duration), RedisFailure> {
        let mut conn = self.client.conn()?;
        // The release goes on its own operation, whose deadline is this long.
        let deadline = self.client.config().command_timeout;
        let taken: Option<String> = redis::cmd("SET")
            .arg(lock_key)
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(millis(self.lock_lease))
            .query_async(&mut conn)
            .await?;
        Ok((taken.is_some(), deadline))
    }

    /// Reads `key` until it has a value or the wait is over.
    async fn wait_for<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RedisFailure> {
        let started = Instant::now();
        let mut pause = POLL_FIRST;
        loop {
            let left = self.wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(POLL_MAX);
            if let Some(value) = self.read(key).await? {
                return Ok(Some(value));
            }
        }
    }

    /// Stores the value (if any) and releases the lock (if asked), in one round trip.
    async fn store(
        &self,
        value_key: &str,
        value: Option<&[u8]>,
        release: Option<&str>,
    ) -> Result<(), RedisFailure> {
        if value.is_none() && release.is_none() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        if let Some(bytes) = value {
            pipe.cmd("SET")
                .arg(value_key)
                .arg(bytes)
                .arg("PX")
                .arg(millis(self.ttl))
                .ignore();
        }
        if let Some(lock_key) = release {
            pipe.cmd("DEL").arg(lock_key).ignore();
        }
        self.client
            .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_name_themselves_and_classify_hits() {
        assert_eq!(CacheStatus::Hit.as_str(), "HIT");
        assert_eq!(CacheStatus::Miss.to_string(), "MISS");
        assert!(CacheStatus::Hit.is_hit());
        assert!(CacheStatus::Coalesced.is_hit());
        assert!(!CacheStatus::Miss.is_hit());
        assert!(!CacheStatus::Bypass.is_hit());
        assert_eq!(
            serde_json::to_string(&CacheStatus::Coalesced).unwrap(),
            "\"COALESCED\""
        );
    }

    #[test]
    fn keys_are_escaped_inside_the_tenant() {
        let client =
            RedisClient::new(crate::RedisConfig::for_url("redis://127.0.0.1:1").unwrap()).unwrap();
        let tenant = Tenant::new("workspace", "acme").unwrap();
        let cache = Cache::new(client, &tenant, "report", Duration::from_secs(1));
        assert_eq!(
            cache.value_key("a:*").unwrap(),
            "ws:{acme}:cache:report:a%3A%2A"
        );
        assert_eq!(
            cache.lock_key("a:*").unwrap(),
            "ws:{acme}:cache_lock:report:a%3A%2A"
        );
        assert!(cache.value_key("").is_err());
    }
}
