//! The error every Redis-backed operation returns, classified once.
//!
//! Callers branch on [`RedisFailure::kind`] and [`RedisFailure::is_unavailable`],
//! never on message text. The classification reads `redis::RedisError`'s own
//! methods (`kind()`, `is_timeout()`, `is_connection_refusal()`, the protocol
//! error code) and the message is written here, from the kind, so that no
//! server-supplied text (which may echo arguments) reaches a log or a response.

use std::fmt;
use std::time::Duration;

use redis::{ErrorKind as RedisErrorKind, RedisError, ServerErrorKind};
use serde::Serialize;

/// What went wrong with Redis, in the categories the alerts and the
/// `/redis-health` `type` field use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No usable connection: refused, reset, DNS, TLS handshake, cluster down.
    Connect,
    /// No answer within the deadline (a paused or overloaded server, a
    /// half-open connection).
    Timeout,
    /// The server rejected the credentials or the ACL denied the command.
    Auth,
    /// Redis answered with an error (out of memory, a script error, a type
    /// error): it is reachable but the operation failed.
    Other,
    /// The circuit breaker is open: Redis was not tried at all.
    CircuitOpen,
}

impl ErrorKind {
    /// The kinds a real Redis round trip can end with, in metric order.
    pub const OPERATION_KINDS: [ErrorKind; 4] =
        [Self::Connect, Self::Timeout, Self::Auth, Self::Other];

    /// The stable name used in logs, metrics and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::Other => "other",
            Self::CircuitOpen => "circuit_open",
        }
    }

    /// Whether this kind means Redis cannot be used right now (as opposed to
    /// one operation failing on a working server). These feed the breaker.
    pub fn is_unavailable(self) -> bool {
        !matches!(self, Self::Other)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Redis operation that did not succeed.
///
/// `Display` is safe to log and to return: it names the kind and a short
/// description written by this crate, never the server's message, a key, an
/// argument or a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisFailure {
    /// The operation was sent (or a connection was attempted) and failed.
    #[error("redis {kind} error: {detail}")]
    Failed {
        /// The category of the failure.
        kind: ErrorKind,
        /// A description written here, free of secrets and data.
        detail: String,
    },
    /// The circuit breaker is open; Redis was not tried.
    #[error("redis circuit open after repeated failures; retrying in {} ms", retry_after.as_millis())]
    CircuitOpen {
        /// Until the breaker lets the next probe through.
        retry_after: Duration,
    },
}

impl RedisFailure {
    /// The category, for metrics, responses and branching.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Failed { kind, .. } => *kind,
            Self::CircuitOpen { .. } => ErrorKind::CircuitOpen,
        }
    }

    /// Whether Redis is unusable right now (connect, timeout, auth, open circuit).
    pub fn is_unavailable(&self) -> bool {
        self.kind().is_unavailable()
    }

    /// How long a caller should wait before retrying: the breaker's remaining
    /// cool-down, or one second.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::CircuitOpen { retry_after } => (*retry_after).max(Duration::from_secs(1)),
            Self::Failed { .. } => Duration::from_secs(1),
        }
    }

    /// An error raised by this crate for a reply that is not what the
    /// operation expects (a bug or a foreign value under our key).
    pub fn unexpected(detail: impl Into<String>) -> Self {
        Self::Failed {
            kind: ErrorKind::Other,
            detail: detail.into(),
        }
    }
}

impl From<RedisError> for RedisFailure {
    fn from(err: RedisError) -> Self {
        let kind = classify(&err);
        Self::Failed {
            kind,
            detail: describe(&err, kind),
        }
    }
}

/// The error of a round trip that passed its deadline: an I/O timeout, so
/// that [`classify`] (and redis-rs's own `is_timeout()`) read it as one.
pub(crate) fn deadline_error() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from redis within the deadline",
    ))
}

/// Sorts a `redis` error into an [`ErrorKind`] by the error's own methods.
pub fn classify(err: &RedisError) -> ErrorKind {
    if err.kind() == RedisErrorKind::AuthenticationFailed {
        return ErrorKind::Auth;
    }
    // The protocol's machine-readable error codes for credentials and ACLs.
    if matches!(err.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM")) {
        return ErrorKind::Auth;
    }
    if err.is_timeout() {
        return ErrorKind::Timeout;
    }
    if err.is_connection_refusal() || err.is_connection_dropped() || err.is_io_error() {
        return ErrorKind::Connect;
    }
    match err.kind() {
        RedisErrorKind::ClusterConnectionNotFound
        | RedisErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown,
        ) => ErrorKind::Connect,
        _ => ErrorKind::Other,
    }
}

/// A description of `err` that carries no server text, key or credential.
fn describe(err: &RedisError, kind: ErrorKind) -> String {
    match kind {
        ErrorKind::Auth => match err.code() {
            Some("NOPERM") => "the ACL user may not run this command on this key".into(),
            Some("NOAUTH") => "the server requires a password (set REDIS_PASSWORD)".into(),
            _ => "authentication failed (check REDIS_USERNAME / REDIS_PASSWORD)".into(),
        },
        ErrorKind::Timeout => "no answer within the deadline".into(),
        ErrorKind::Connect if err.is_connection_refusal() => "connection refused".into(),
        ErrorKind::Connect if err.is_connection_dropped() => "connection lost".into(),
        ErrorKind::Connect => match err.code() {
            Some(code) => format!("server unavailable ({code})"),
            None => format!("cannot reach the server ({})", err.category()),
        },
        ErrorKind::Other | ErrorKind::CircuitOpen => match err.code() {
            Some(code) => format!("server error {code}"),
            None => err.category().to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn server_error(text: &str) -> RedisError {
        // An error reply exactly as the server sends it on the wire.
        match redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).unwrap() {
            redis::Value::ServerError(e) => RedisError::from(e),
            other => panic!("not an error reply: {other:?}"),
        }
    }

    #[test]
    fn io_errors_are_classified_by_kind() {
        let refused = RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&refused), ErrorKind::Connect);
        let reset = RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&reset), ErrorKind::Connect);
        let timed_out = RedisError::from(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(classify(&timed_out), ErrorKind::Timeout);
    }

    #[test]
    fn auth_errors_are_classified_by_code() {
        assert_eq!(
            classify(&server_error("WRONGPASS invalid username-password pair")),
            ErrorKind::Auth
        );
        assert_eq!(
            classify(&server_error("NOAUTH Authentication required.")),
            ErrorKind::Auth
        );
        assert_eq!(
            classify(&server_error("NOPERM this user has no permissions")),
            ErrorKind::Auth
        );
        let failed = RedisError::from((
            RedisErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert_eq!(classify(&failed), ErrorKind::Auth);
    }

    #[test]
    fn server_errors_are_other_and_their_text_is_not_repeated() {
        let oom =
            server_error("OOM command not allowed when used memory > 'maxmemory'. secret-arg");
        assert_eq!(classify(&oom), ErrorKind::Other);
        let failure = RedisFailure::from(oom);
        assert_eq!(failure.to_string(), "redis other error: server error OOM");
        assert!(!failure.is_unavailable());
        assert_eq!(
            classify(&server_error("LOADING Redis is loading")),
            ErrorKind::Connect
        );
    }
}
