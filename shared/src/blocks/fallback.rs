//! Run a Redis operation, and on failure return a fallback value instead.
//!
//! For reads where a stale or empty answer beats an error (a cache lookup, a
//! counter shown on a page). The failure is logged with its kind and counted
//! (`fallbacks` in the client metrics), and the circuit breaker keeps a dead
//! Redis from being tried on every call. Writes that must not be lost do not
//! use this: they return the [`RedisFailure`] and the edge answers `503`.

use std::future::Future;

use redis::RedisResult;

use crate::redis::error::{ErrorKind, RedisFailure};
use crate::redis::{RedisClient, RedisConn};

/// A value, and the failure that made it a fallback, if one did.
#[derive(Debug, Clone, PartialEq)]
pub struct WithFallback<T> {
    /// Redis's answer, or the fallback.
    pub value: T,
    /// Why the fallback was used; `None` when Redis answered.
    pub failure: Option<RedisFailure>,
}

impl<T> WithFallback<T> {
    /// Whether the value is the fallback.
    pub fn is_fallback(&self) -> bool {
        self.failure.is_some()
    }

    /// The value, however it was obtained.
    pub fn into_value(self) -> T {
        self.value
    }
}

/// Runs `op` on a connection from `client`; on any Redis failure (including an
/// open circuit) logs it as `op_name`, counts it and returns `fallback`.
///
/// ```no_run
/// # async fn demo(redis: &shared::RedisClient) {
/// let hits: u64 = shared::blocks::fallback::with_fallback(redis, "hits.read", 0, |mut c| async move {
///     redis::cmd("GET").arg("ws:{demo}:hits").query_async::<Option<u64>>(&mut c).await.map(Option::unwrap_or_default)
/// })
/// .await
/// .into_value();
/// # }
/// ```
pub async fn with_fallback<T, F, Fut>(
    client: &RedisClient,
    op_name: &'static str,
    fallback: T,
    op: F,
) -> WithFallback<T>
where
    F: FnOnce(RedisConn) -> Fut,
    Fut: Future<Output = RedisResult<T>>,
{
    match client.run(op).await {
        Ok(value) => WithFallback {
            value,
            failure: None,
        },
        Err(failure) => {
            client.record_fallback();
            if failure.kind() == ErrorKind::CircuitOpen {
                // Already announced when the circuit opened; one line per call
                // would flood the logs during an outage.
                tracing::debug!(
                    op = op_name,
                    error.kind = failure.kind().as_str(),
                    "redis skipped; returning the fallback"
                );
            } else {
                tracing::warn!(
                    op = op_name,
                    error.kind = failure.kind().as_str(),
                    error = %failure,
                    "redis operation failed; returning the fallback"
                );
            }
            WithFallback {
                value: fallback,
                failure: Some(failure),
            }
        }
    }
}
