//! Idempotency keys: the first response to a request is stored under the
//! caller's key, and a repeat gets it back instead of being processed again.
//!
//! # Key scheme
//!
//! ```text
//! ws:{<tenant>}:idempotency:<scope>[:<caller>]:<escaped key>   hash
//!     state        pending | done
//!     fp           the request's fingerprint (a hash of what makes it "the same request")
//!     token        while pending: the random token of the request processing it
//!     status, body when done: the stored response
//! ```
//!
//! `<caller>` ([`Idempotency::for_caller`]) is the scope id of the
//! authenticated caller: two callers of one tenant who pick the same key
//! are two requests, and neither can replay (read) the other's response.
//!
//! # Protocol
//!
//! 1. [`Idempotency::begin`] is one script: a new key gets a `pending`
//!    marker (expiring after [`IdempotencySettings::pending_ttl`]) and the
//!    caller a [`Pending`] token; a key that is `done` with the same
//!    fingerprint returns the stored response; the same key with another
//!    fingerprint is [`IdempotencyError::Mismatch`]; a key `pending` with
//!    the same fingerprint is [`IdempotencyError::InProgress`] (a concurrent
//!    duplicate: it must wait, not run twice).
//! 2. The caller processes the request, then [`Idempotency::complete`]s
//!    (the response is kept for [`IdempotencySettings::ttl`], 24 h by
//!    default) or [`Idempotency::abandon`]s (the marker is deleted, so a
//!    retry runs). Both act only while the caller's token still owns the
//!    marker.
//!
//! A caller whose processing is itself one Lua script of the same tenant
//! can complete in that script, so that "the work happened" and "the
//! response is stored" are one atomic step and a retry after a lost reply
//! gets the first response: prepend [`LUA_FUNCTIONS`] and pass
//! [`Pending::redis_key`] / [`Pending::token`].
//!
//! If the process dies while pending, the marker expires after
//! `pending_ttl` and a retry runs.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use crate::redis::Script;

use super::keys::{KeyError, Tenant};
use super::token::random_token;
use crate::redis::RedisClient;
use crate::redis::error::RedisFailure;

/// Longest idempotency key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// Lua functions for a script that completes an idempotent request in its
/// own atomic step (see the module documentation).
///
/// - `idempotency_owned(key, token)`: whether `token` still owns the pending marker.
/// - `idempotency_complete(key, status, body, ttl_ms)`: stores the response.
pub const LUA_FUNCTIONS: &str = r"
local function idempotency_owned(key, token)
  return redis.call('HGET', key, 'state') == 'pending'
    and redis.call('HGET', key, 'token') == token
end
local function idempotency_complete(key, status, body, ttl_ms)
  redis.call('HSET', key, 'state', 'done', 'status', status, 'body', body)
  redis.call('HDEL', key, 'token')
  redis.call('PEXPIRE', key, ttl_ms)
end
";

/// ARGV: fingerprint, token, pending ttl (ms). Returns {outcome, a, b}.
static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key = KEYS[1]
local state = redis.call('HGET', key, 'state')
if not state then
  redis.call('HSET', key, 'state', 'pending', 'fp', ARGV[1], 'token', ARGV[2])
  redis.call('PEXPIRE', key, ARGV[3])
  return {'started', '', ''}
end
if redis.call('HGET', key, 'fp') ~= ARGV[1] then
  return {'mismatch', '', ''}
end
if state == 'done' then
  return {'done', redis.call('HGET', key, 'status'), redis.call('HGET', key, 'body')}
end
return {'pending', tostring(redis.call('PTTL', key)), ''}
",
    )
});

/// ARGV: token, status, body, ttl (ms).
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{LUA_FUNCTIONS}
if idempotency_owned(KEYS[1], ARGV[1]) then
  idempotency_complete(KEYS[1], ARGV[2], ARGV[3], ARGV[4])
  return 1
end
return 0
"
    ))
});

/// ARGV: token.
static ABANDON: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{LUA_FUNCTIONS}
if idempotency_owned(KEYS[1], ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
"
    ))
});

/// Why a request may not proceed, or Redis failing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyError {
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] RedisFailure),
    /// The key is empty, too long or not printable ASCII.
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
    /// The key was first used with a different request.
    #[error("this idempotency key was already used with a different request")]
    Mismatch,
    /// The same request is being processed under this key right now.
    #[error("a request with this idempotency key is still being processed")]
    InProgress {
        /// When the in-progress marker expires at the latest.
        retry_after: Duration,
    },
}

impl IdempotencyError {
    /// Whether Redis is unusable right now (answer `503`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Redis(f) if f.is_unavailable())
    }
}

/// How long records live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencySettings {
    /// How long a completed response is kept (24 h by default).
    pub ttl: Duration,
    /// How long an in-progress marker lives if its request never finishes.
    /// Longer than the request deadline, so a slow request keeps its key.
    pub pending_ttl: Duration,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
            pending_ttl: Duration::from_secs(60),
        }
    }
}

impl IdempotencySettings {
    /// Responses kept for `ttl`; in-progress markers for `pending_ttl`.
    pub fn new(ttl: Duration, pending_ttl: Duration) -> Self {
        Self { ttl, pending_ttl }
    }
}

/// A response stored under a key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body, as first sent.
    pub body: Vec<u8>,
}

impl StoredResponse {
    /// A response to store.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

impl fmt::Debug for StoredResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredResponse")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// The right to process a request under a key, until completed or abandoned.
#[must_use = "complete or abandon a pending idempotency key"]
#[derive(Clone, PartialEq, Eq)]
pub struct Pending {
    key: String,
    token: String,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl Pending {
    /// The Redis key of the record (for a script that completes it).
    pub fn redis_key(&self) -> &str {
        &self.key
    }

    /// The token that owns the marker (for a script that completes it).
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// What [`Idempotency::begin`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First time: process the request, then complete or abandon.
    Started(Pending),
    /// Done before: send this response again.
    Replay(StoredResponse),
}

/// Idempotency records of one tenant and scope (an operation name chosen
/// by the code, such as `sync`).
#[derive(Debug, Clone)]
pub struct Idempotency {
    client: RedisClient,
    prefix: String,
    settings: IdempotencySettings,
}

impl Idempotency {
    /// Records of `tenant` for the operation `scope` (lower-case letters and `_`).
    pub fn new(
        client: RedisClient,
        tenant: &Tenant,
        scope: &str,
        settings: IdempotencySettings,
    ) -> Self {
        Self {
            client,
            prefix: tenant.key(&format!("idempotency:{scope}")),
            settings,
        }
    }

    /// The records of one caller only: `caller` is a fixed-form id of the
    /// authenticated principal (lowercase hex, as
    /// [`crate::http::Caller::scope_id`] makes), never raw caller input.
    ///
    /// # Errors
    /// When `caller` is empty, longer than 64, or not lowercase hex.
    pub fn for_caller(mut self, caller: &str) -> Result<Self, KeyError> {
        if caller.is_empty()
            || caller.len() > 64
            || !caller
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(KeyError {
                field: "caller",
                reason: "must be 1 to 64 lowercase hex digits".into(),
            });
        }
        self.prefix.push(':');
        self.prefix.push_str(caller);
        Ok(self)
    }

    /// The settings.
    pub fn settings(&self) -> IdempotencySettings {
        self.settings
    }

    /// Checks a caller's key: 1 to [`MAX_KEY_LEN`] bytes of printable ASCII.
    ///
    /// # Errors
    /// A [`KeyError`] naming `Idempotency-Key` and what is allowed.
    pub fn validate_key(key: &str) -> Result<(), KeyError> {
        if key.is_empty()
            || key.len() > MAX_KEY_LEN
            || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(KeyError {
                field: "Idempotency-Key",
                reason: format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
            });
        }
        Ok(())
    }

    fn redis_key(&self, key: &str) -> Result<String, KeyError> {
        Self::validate_key(key)?;
        let mut out = self.prefix.clone();
        out.push(':');
        out.push_str(&super::keys::escape_id("Idempotency-Key", key)?);
        Ok(out)
    }

    /// Starts a request under `key`; `fingerprint` identifies the request
    /// (a hash of its method, route and canonical body).
    ///
    /// # Errors
    /// [`IdempotencyError::Mismatch`] when the key was used with another
    /// fingerprint, [`IdempotencyError::InProgress`] while the same request
    /// runs, [`IdempotencyError::InvalidKey`], [`IdempotencyError::Redis`].
    pub async fn begin(&self, key: &str, fingerprint: &str) -> Result<Begin, IdempotencyError> {
        let redis_key = self.redis_key(key)?;
        let token = random_token();
        let mut invocation = BEGIN.prepare_invoke();
        invocation
            .key(&redis_key)
            .arg(fingerprint)
            .arg(&token)
            .arg(ms(self.settings.pending_ttl));
        let (outcome, a, b): (String, Vec<u8>, Vec<u8>) = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        match outcome.as_str() {
            "started" => Ok(Begin::Started(Pending {
                key: redis_key,
                token,
            })),
            "done" => {
                let status = std::str::from_utf8(&a)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        RedisFailure::unexpected("an idempotency record has no valid status")
                    })?;
                Ok(Begin::Replay(StoredResponse { status, body: b }))
            }
            "mismatch" => Err(IdempotencyError::Mismatch),
            "pending" => {
                let ttl: i64 = std::str::from_utf8(&a)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1_000);
                Err(IdempotencyError::InProgress {
                    retry_after: Duration::from_millis(ttl.clamp(1, i64::MAX) as u64),
                })
            }
            _ => Err(RedisFailure::unexpected("unknown idempotency outcome").into()),
        }
    }

    /// Stores `response` for the key of `pending`. `false` when the marker
    /// was no longer this request's (it expired; another request may own it).
    ///
    /// # Errors
    /// [`IdempotencyError::Redis`] when Redis fails.
    pub async fn complete(
        &self,
        pending: &Pending,
        response: &StoredResponse,
    ) -> Result<bool, IdempotencyError> {
        let mut invocation = COMPLETE.prepare_invoke();
        invocation
            .key(&pending.key)
            .arg(&pending.token)
            .arg(response.status)
            .arg(&response.body[..])
            .arg(ms(self.settings.ttl));
        let done: u8 = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(done == 1)
    }

    /// Gives the key up (the request failed): a retry will run.
    ///
    /// # Errors
    /// [`IdempotencyError::Redis`] when Redis fails (the marker then expires
    /// after `pending_ttl`).
    pub async fn abandon(&self, pending: Pending) -> Result<(), IdempotencyError> {
        let mut invocation = ABANDON.prepare_invoke();
        invocation.key(&pending.key).arg(&pending.token);
        let _: u8 = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(())
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
