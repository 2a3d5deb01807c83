//! [`StoreError`], the one error of the session and memory stores, whatever
//! their backend (Redis, SQL, process memory).
//!
//! Callers branch on the variant ([`StoreError::AlreadyExists`],
//! [`StoreError::NotFound`], [`StoreError::Stale`], [`StoreError::Invalid`],
//! [`StoreError::TooLarge`], [`StoreError::LimitReached`])
//! or on [`StoreError::is_unavailable`], never on the message. Messages are
//! written here: they never carry a server's text (which may echo a value), a
//! connection string, or user content.

use std::time::Duration;

use crate::blocks::keys::KeyError;
use crate::redis::error::{ErrorKind, RedisFailure};

/// Why a store operation did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// A session with this (app, user, id) already exists.
    #[error("a session with this id already exists")]
    AlreadyExists,
    /// The session does not exist, or has expired.
    #[error("no such session (absent or expired)")]
    NotFound,
    /// `expected_seq` no longer matches: someone else appended first.
    #[error("stale session: expected sequence {expected}, the session is at {current}")]
    Stale {
        /// The sequence number the caller expected.
        expected: u64,
        /// The session's sequence number now.
        current: u64,
    },
    /// The input cannot be stored; nothing was written.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The request field at fault.
        field: &'static str,
        /// What is wrong and what is allowed (never the value itself).
        reason: String,
    },
    /// The input is larger than a documented limit; nothing was written.
    #[error("the {what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What is too large (`event`).
        what: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A documented limit on the work of one request or the size of a
    /// session is reached; nothing was written.
    #[error("{what}: the limit of {limit} is reached; {hint}")]
    LimitReached {
        /// Which limit (`events per session`, `bytes per response`).
        what: &'static str,
        /// Its value.
        limit: u64,
        /// What the caller can do instead.
        hint: &'static str,
    },
    /// The backend cannot be used right now (down, unreachable, overloaded):
    /// retry after `retry_after`.
    #[error("{backend} unavailable: {detail}")]
    Unavailable {
        /// `redis` or `sql`.
        backend: &'static str,
        /// A description written here, free of secrets and data.
        detail: String,
        /// How long to wait before retrying.
        retry_after: Duration,
        /// For Redis, the failure's kind (connect, timeout, auth, other,
        /// circuit_open), reported to callers as `error.type`.
        kind: Option<ErrorKind>,
    },
    /// The backend answered with an error (a bug, a schema mismatch, a
    /// foreign value under one of our keys).
    #[error("{backend} error: {detail}")]
    Failed {
        /// `redis` or `sql`.
        backend: &'static str,
        /// A description written here, free of secrets and data.
        detail: String,
    },
}

impl StoreError {
    /// An [`StoreError::Invalid`] for `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// Whether the backend is unusable right now (the caller should answer
    /// `503` and retry later).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// How long to wait before retrying an unavailable backend (one second
    /// for every other error).
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => Duration::from_secs(1),
        }
    }

    pub(crate) fn failed(backend: &'static str, detail: impl Into<String>) -> Self {
        Self::Failed {
            backend,
            detail: detail.into(),
        }
    }
}

/// A Redis failure a retry can cure (the server is down or slow, refuses the
/// credentials while they rotate, is a replica during a failover, is busy or
/// out of memory; see [`RedisFailure::is_retryable`]) makes the store
/// unavailable: `503` with `Retry-After`, its kind kept for the caller and
/// the logs. Any other (a type error under our key, a script error, an ACL
/// refusal) is a failure of the store: `500`, detail logged.
impl From<RedisFailure> for StoreError {
    fn from(failure: RedisFailure) -> Self {
        if !failure.is_retryable() {
            return Self::failed("redis", failure.to_string());
        }
        Self::Unavailable {
            backend: "redis",
            retry_after: failure.retry_after(),
            detail: failure.to_string(),
            kind: Some(failure.kind()),
        }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        RedisFailure::from(err).into()
    }
}

impl From<KeyError> for StoreError {
    fn from(err: KeyError) -> Self {
        Self::Invalid {
            field: err.field,
            reason: err.reason,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        let unavailable = |detail: String| Self::Unavailable {
            backend: "sql",
            detail,
            retry_after: Duration::from_secs(1),
            kind: None,
        };
        match &err {
            E::PoolTimedOut => unavailable("no database connection available in time".into()),
            E::PoolClosed => unavailable("the connection pool is closed".into()),
            E::Io(io) => unavailable(format!("cannot reach the database ({:?})", io.kind())),
            E::Tls(_) => unavailable("TLS error talking to the database".into()),
            E::WorkerCrashed => unavailable("the database connection worker crashed".into()),
            E::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // SQLSTATE class 08: connection exceptions; 57P0x: the server is shutting down.
                if code.starts_with("08") || code.starts_with("57P0") {
                    unavailable(format!("database connection error (SQLSTATE {code})"))
                } else if is_retryable_code(&code) {
                    unavailable(format!("database conflict, retry (SQLSTATE {code})"))
                } else {
                    // Never the server's message: it may quote the values.
                    Self::failed("sql", format!("database error (SQLSTATE {code})"))
                }
            }
            E::RowNotFound => Self::failed("sql", "an expected row is missing"),
            E::ColumnDecode { .. }
            | E::Decode(_)
            | E::ColumnNotFound(_)
            | E::TypeNotFound { .. } => Self::failed(
                "sql",
                "a stored value has an unexpected type (schema mismatch?)",
            ),
            E::Migrate(_) => Self::failed("sql", "the schema migration failed"),
            E::Configuration(_) => Self::failed("sql", "DATABASE_URL is not usable"),
            _ => Self::failed("sql", "database driver error"),
        }
    }
}

/// SQLSTATE codes after which the whole transaction may simply be retried:
/// serialization failure and deadlock (PostgreSQL `40001`, `40P01`; MySQL
/// reports its deadlock as `40001` too).
fn is_retryable_code(code: &str) -> bool {
    matches!(code, "40001" | "40P01")
}

/// Whether `err` is a deadlock or serialization failure whose transaction
/// can be run again.
pub(crate) fn is_retryable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| is_retryable_code(&c)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_failures_keep_their_availability() {
        let down: StoreError = RedisFailure::CircuitOpen {
            retry_after: Duration::from_secs(3),
        }
        .into();
        assert!(down.is_unavailable());
        assert_eq!(down.retry_after(), Duration::from_secs(3));
        let oom = redis::RedisError::from(
            match redis::parse_redis_value(
                b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
            ) {
                Ok(redis::Value::ServerError(e)) => e,
                other => panic!("not an error reply: {other:?}"),
            },
        );
        let refused: StoreError = RedisFailure::from(oom).into();
        assert!(
            refused.is_unavailable(),
            "a write refused for lack of memory is retried later, not a 500"
        );
        let bug: StoreError = RedisFailure::unexpected("a reply of the wrong shape").into();
        assert!(!bug.is_unavailable(), "a bug is a 500, not a retry");
    }

    #[test]
    fn sql_pool_timeouts_are_unavailable_and_say_nothing_secret() {
        let err: StoreError = sqlx::Error::PoolTimedOut.into();
        assert!(err.is_unavailable());
        let err: StoreError = sqlx::Error::Configuration("postgres://u:hunter2@h/db".into()).into();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
