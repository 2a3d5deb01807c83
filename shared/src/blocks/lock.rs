//! A lock with a time to live, held by whoever knows its random token.
//!
//! # Key scheme
//!
//! ```text
//! ws:{<tenant>}:lock:<name>    string: the holder's token, with the lock's TTL
//! ```
//!
//! - **Acquire** is `SET key token NX PX ttl`: one holder at a time.
//! - **Expiry**: a holder that dies (a killed process, a frozen Lambda)
//!   cannot release; the key expires after the TTL and the lock is free.
//!   Choose a TTL longer than the longest legitimate hold (a request's
//!   deadline) and [`Lock::extend`] for longer work.
//! - **Release** is compare-and-delete in one script: only the holder's
//!   token deletes the key. A holder whose lock expired and was taken by
//!   someone else cannot release the new holder's lock.
//!
//! This is a single-instance lock (not Redlock): it is as available as the
//! one Redis it lives on, and a failover that loses the key can grant it twice.
//! It serializes work; it does not fence writes (the work it guards should
//! still be safe to repeat).

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use crate::redis::Script;

use super::keys::Tenant;
use super::token::random_token;
use crate::redis::RedisClient;
use crate::redis::error::RedisFailure;

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Redis failing, or settings that make no lock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// Redis failed; whether the lock is held is unknown (it expires anyway).
    #[error(transparent)]
    Redis(#[from] RedisFailure),
    /// A TTL under 1 ms.
    #[error("a lock's time to live must be at least 1 ms")]
    InvalidTtl,
}

impl LockError {
    /// Whether Redis is unusable right now (answer `503`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Redis(f) if f.is_unavailable())
    }
}

/// Proof of holding a lock: its token. Give it back to [`Lock::release`].
/// Dropping it does not release the lock (release needs Redis, which a
/// `Drop` cannot await); the TTL does.
#[must_use = "a lock is held until released or expired"]
#[derive(Clone, PartialEq, Eq)]
pub struct LockGuard {
    token: String,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is what releases the lock: keep it out of logs.
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

/// The lock `name` of a tenant.
#[derive(Debug, Clone)]
pub struct Lock {
    client: RedisClient,
    key: String,
    ttl: Duration,
}

impl Lock {
    /// The lock `name` (chosen by the code: lower-case letters and `_`) of
    /// `tenant`, held for `ttl` at most.
    ///
    /// # Errors
    /// [`LockError::InvalidTtl`] for a TTL under 1 ms.
    pub fn new(
        client: RedisClient,
        tenant: &Tenant,
        name: &str,
        ttl: Duration,
    ) -> Result<Self, LockError> {
        if ttl < Duration::from_millis(1) {
            return Err(LockError::InvalidTtl);
        }
        Ok(Self {
            client,
            key: tenant.key(&format!("lock:{name}")),
            ttl,
        })
    }

    /// The Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Takes the lock if it is free. `None` when someone holds it.
    ///
    /// # Errors
    /// [`LockError::Redis`] when Redis fails.
    pub async fn acquire(&self) -> Result<Option<LockGuard>, LockError> {
        let token = random_token();
        let key = self.key.clone();
        let ttl = ttl_ms(self.ttl);
        let value = token.clone();
        let set: Option<String> = self
            .client
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(set.map(|_| LockGuard { token }))
    }

    /// Releases the lock if `guard` still holds it; `false` when it had
    /// expired (and may be someone else's now, which stays untouched).
    ///
    /// # Errors
    /// [`LockError::Redis`] when Redis fails (the lock then expires by itself).
    pub async fn release(&self, guard: LockGuard) -> Result<bool, LockError> {
        let mut invocation = RELEASE.prepare_invoke();
        invocation.key(&self.key).arg(guard.token);
        let deleted: u8 = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(deleted == 1)
    }

    /// Renews the lock to a full `ttl` from now if `guard` still holds it.
    ///
    /// # Errors
    /// [`LockError::InvalidTtl`] under 1 ms; [`LockError::Redis`] when Redis fails.
    pub async fn extend(&self, guard: &LockGuard, ttl: Duration) -> Result<bool, LockError> {
        if ttl < Duration::from_millis(1) {
            return Err(LockError::InvalidTtl);
        }
        let mut invocation = EXTEND.prepare_invoke();
        invocation.key(&self.key).arg(&guard.token).arg(ttl_ms(ttl));
        let renewed: u8 = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(renewed == 1)
    }

    /// Whether anyone holds the lock now.
    ///
    /// # Errors
    /// [`LockError::Redis`] when Redis fails.
    pub async fn is_held(&self) -> Result<bool, LockError> {
        let key = self.key.clone();
        let exists: bool = self
            .client
            .run(|mut c| async move { redis::cmd("EXISTS").arg(key).query_async(&mut c).await })
            .await?;
        Ok(exists)
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
