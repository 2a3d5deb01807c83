//! A sliding-window rate limiter: at most `limit` requests per `window` for
//! each subject of a tenant, checked in one Redis round trip.
//!
//! # Key scheme
//!
//! ```text
//! ws:{<tenant>}:ratelimit:<escaped subject>   sorted set: one member per admitted request,
//!                                             scored by its admission time (µs, server clock)
//! ```
//!
//! The key expires one window after the last admitted request.
//!
//! # Why a sliding log
//!
//! A check is one Lua script: drop the members older than the window, count
//! the rest, admit (add a member) only while the count is under the limit.
//! Redis runs scripts one at a time, so with limit `L` and any number of
//! concurrent checks exactly `L` are admitted per window; and because the
//! window slides, there is no burst of `2L` across a fixed window's edge.
//! The time is the server's (`TIME`), so the clocks of the processes that
//! share a limit do not matter. Rejected checks are not recorded: a caller
//! hammering a closed limit does not extend its own wait. The price is one
//! sorted-set member per admitted request, so limits are capped at
//! [`MAX_LIMIT`].
//!
//! `retry_after` on a rejection is exact: the time until enough admitted
//! requests leave the window for one more to fit.

use std::time::Duration;

use crate::redis::Script;

use super::keys::{KeyError, Tenant};
use super::token::random_token;
use crate::redis::RedisClient;
use crate::redis::error::RedisFailure;

/// The largest limit per window (the log keeps one member per admitted request).
pub const MAX_LIMIT: u32 = 100_000;

/// Checks and records one request, or reports when the next would fit.
/// ARGV: limit, window (ms), nonce, consume (1) or peek (0).
/// Returns {allowed (0/1), remaining, retry_after_ms, reset_after_ms}.
const CHECK_LUA: &str = r"
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2]) * 1000
local consume = ARGV[4] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local floor = now - window_us
local used
if consume then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', floor)
  used = redis.call('ZCARD', key)
else
  used = redis.call('ZCOUNT', key, '(' .. floor, '+inf')
end
local function reset_ms()
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if newest[2] == nil then return 0 end
  return math.max(0, math.ceil((tonumber(newest[2]) + window_us - now) / 1000))
end
if used < limit then
  if consume then
    redis.call('ZADD', key, now, now .. ':' .. ARGV[3])
    redis.call('PEXPIRE', key, ARGV[2])
    used = used + 1
  end
  return {1, limit - used, 0, reset_ms()}
end
-- The (used - limit + 1)th oldest member in the window must leave it first.
local rank = used - limit
if not consume then
  rank = rank + redis.call('ZCOUNT', key, '-inf', floor)
end
local entry = redis.call('ZRANGE', key, rank, rank, 'WITHSCORES')
local retry = 1
if entry[2] ~= nil then
  retry = math.max(1, math.ceil((tonumber(entry[2]) + window_us - now) / 1000))
end
return {0, 0, retry, reset_ms()}
";

/// A rejected configuration or subject, or Redis failing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// Redis could not be asked; the caller decides whether to fail open or closed.
    #[error(transparent)]
    Redis(#[from] RedisFailure),
    /// The subject cannot be used in a key (empty or too long).
    #[error(transparent)]
    InvalidSubject(#[from] KeyError),
    /// The limit is 0 or above [`MAX_LIMIT`], or the window is under 1 ms.
    #[error("invalid rate limit: the limit must be 1 to {MAX_LIMIT} and the window at least 1 ms")]
    InvalidSettings,
}

impl RateLimitError {
    /// Whether Redis is unusable right now (answer `503`, not `4xx`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Redis(f) if f.is_unavailable())
    }
}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request is admitted (and was counted).
    pub allowed: bool,
    /// The limit per window.
    pub limit: u32,
    /// Requests still admitted in the current window after this one.
    pub remaining: u32,
    /// When rejected: how long until one more request fits. Zero when allowed.
    pub retry_after: Duration,
    /// How long until the window is empty again (every counted request has left it).
    pub reset_after: Duration,
}

/// A rate limiter: `limit` requests per `window`, per tenant and subject.
/// Cheap to clone; shares the client.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    client: RedisClient,
    limit: u32,
    window: Duration,
    script: Script,
}

impl RateLimiter {
    /// A limiter of `limit` requests per `window`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidSettings`] for a limit of 0 or above
    /// [`MAX_LIMIT`], or a window under 1 ms.
    pub fn new(client: RedisClient, limit: u32, window: Duration) -> Result<Self, RateLimitError> {
        if limit == 0 || limit > MAX_LIMIT || window < Duration::from_millis(1) {
            return Err(RateLimitError::InvalidSettings);
        }
        Ok(Self {
            client,
            limit,
            window,
            script: Script::new(CHECK_LUA),
        })
    }

    /// The limit per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// `ws:{<tenant>}:ratelimit:<escaped subject>`.
    ///
    /// # Errors
    /// When `subject` is empty or longer than [`super::keys::MAX_ID_LEN`] bytes.
    pub fn key(tenant: &Tenant, subject: &str) -> Result<String, KeyError> {
        tenant.key_with("ratelimit", "rate limit subject", &[subject])
    }

    /// Counts one request of `subject` if it fits in the window. One round trip.
    ///
    /// # Errors
    /// [`RateLimitError::Redis`] when Redis fails (nothing is counted unless
    /// the script ran), [`RateLimitError::InvalidSubject`] for an unusable subject.
    pub async fn check(
        &self,
        tenant: &Tenant,
        subject: &str,
    ) -> Result<RateDecision, RateLimitError> {
        self.run(tenant, subject, true).await
    }

    /// What [`check`](Self::check) would answer, without counting a request.
    ///
    /// # Errors
    /// As [`check`](Self::check).
    pub async fn peek(
        &self,
        tenant: &Tenant,
        subject: &str,
    ) -> Result<RateDecision, RateLimitError> {
        self.run(tenant, subject, false).await
    }

    async fn run(
        &self,
        tenant: &Tenant,
        subject: &str,
        consume: bool,
    ) -> Result<RateDecision, RateLimitError> {
        let key = Self::key(tenant, subject)?;
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(key)
            .arg(self.limit)
            .arg(window_ms)
            .arg(random_token())
            .arg(if consume { "1" } else { "0" });
        let (allowed, remaining, retry_ms, reset_ms): (u8, u32, u64, u64) = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(RateDecision {
            allowed: allowed == 1,
            limit: self.limit,
            remaining,
            retry_after: Duration::from_millis(retry_ms),
            reset_after: Duration::from_millis(reset_ms),
        })
    }
}
