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

/// What went wrong with Redis, in the categories the alerts, the metrics
/// line and the `/redis-health` `type` field use.
///
/// Two questions are asked of a kind, separately: [`ErrorKind::is_retryable`]
/// (can the same request succeed later? then it is answered `503` with
/// `Retry-After`, else `500`) and [`ErrorKind::is_unavailable`] (is Redis as
/// a whole unusable? those feed the circuit breaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No usable connection: refused, reset, DNS, TLS handshake; or a server
    /// that is not serving yet (`LOADING`, `MASTERDOWN`, `CLUSTERDOWN`).
    Connect,
    /// No answer within the deadline (a paused or overloaded server, a
    /// half-open connection).
    Timeout,
    /// The server rejected the credentials (`WRONGPASS`, `NOAUTH`): they may
    /// be rotating, so it is retried (and asked again on every reconnect).
    Auth,
    /// A replica answered where a primary was expected (`READONLY`): a
    /// failover moved the primary. The connection is replaced.
    ReadOnly,
    /// The server is reachable but refuses for now: a script is running too
    /// long (`BUSY`), a slot is moving (`TRYAGAIN`), memory is full (`OOM`).
    Busy,
    /// Too many commands already queued on the connection: this client
    /// refused the command without sending it.
    Overloaded,
    /// Redis answered with an error that a retry cannot cure (`WRONGTYPE`, a
    /// script error, an ACL refusal `NOPERM`) or an unexpected reply: a bug
    /// or a misconfiguration.
    Other,
    /// The circuit breaker is open: Redis was not tried at all.
    CircuitOpen,
}

impl ErrorKind {
    /// The kinds a real Redis round trip can end with, in metric order.
    pub const OPERATION_KINDS: [ErrorKind; 6] = [
        Self::Connect,
        Self::Timeout,
        Self::Auth,
        Self::ReadOnly,
        Self::Busy,
        Self::Other,
    ];

    /// The stable name used in logs, metrics and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::ReadOnly => "read_only",
            Self::Busy => "busy",
            Self::Overloaded => "overloaded",
            Self::Other => "other",
            Self::CircuitOpen => "circuit_open",
        }
    }

    /// Whether this kind means Redis cannot be used right now (as opposed to
    /// one operation failing on a working server). These feed the breaker.
    pub fn is_unavailable(self) -> bool {
        matches!(
            self,
            Self::Connect | Self::Timeout | Self::Auth | Self::CircuitOpen
        )
    }

    /// Whether the same request can succeed if retried later: everything but
    /// [`ErrorKind::Other`]. The HTTP edge answers these `503` with
    /// `Retry-After`, the others `500`.
    pub fn is_retryable(self) -> bool {
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

    /// Whether the same request can succeed later (see [`ErrorKind::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
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
        if let Some(retry_after) = circuit_open_delay(&err) {
            return Self::CircuitOpen { retry_after };
        }
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

/// A circuit-open failure raised inside a round trip (a cluster slot
/// group's breaker). redis-rs errors carry no payload of ours, so the retry
/// delay travels in the detail, which [`circuit_open_delay`] reads back.
const CIRCUIT_OPEN_DESC: &str = "circuit open";

/// A command this client refused to send (its connection's queue is full).
const OVERLOADED_DESC: &str = "overloaded";

pub(crate) fn circuit_open_error(retry_after: Duration) -> RedisError {
    RedisError::from((
        RedisErrorKind::Client,
        CIRCUIT_OPEN_DESC,
        retry_after.as_millis().to_string(),
    ))
}

pub(crate) fn overloaded_error(queued: usize) -> RedisError {
    RedisError::from((
        RedisErrorKind::Client,
        OVERLOADED_DESC,
        format!("{queued} commands already waiting on the connection"),
    ))
}

/// The retry delay of an error made by [`circuit_open_error`].
fn circuit_open_delay(err: &RedisError) -> Option<Duration> {
    if err.kind() != RedisErrorKind::Client || !err.to_string().starts_with(CIRCUIT_OPEN_DESC) {
        return None;
    }
    err.detail()?.parse().ok().map(Duration::from_millis)
}

/// Whether `err` was made by [`overloaded_error`].
fn is_overloaded(err: &RedisError) -> bool {
    err.kind() == RedisErrorKind::Client && err.to_string().starts_with(OVERLOADED_DESC)
}

/// Sorts a `redis` error into an [`ErrorKind`] by the error's own methods
/// and the protocol's machine-readable error codes.
pub fn classify(err: &RedisError) -> ErrorKind {
    if is_overloaded(err) {
        return ErrorKind::Overloaded;
    }
    if circuit_open_delay(err).is_some() {
        return ErrorKind::CircuitOpen;
    }
    if err.kind() == RedisErrorKind::AuthenticationFailed {
        return ErrorKind::Auth;
    }
    match err.code() {
        Some("NOAUTH" | "WRONGPASS") => return ErrorKind::Auth,
        Some("READONLY") => return ErrorKind::ReadOnly,
        Some("BUSY" | "TRYAGAIN" | "OOM") => return ErrorKind::Busy,
        Some("LOADING" | "MASTERDOWN" | "CLUSTERDOWN") => return ErrorKind::Connect,
        _ => {}
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
        RedisErrorKind::Server(ServerErrorKind::ReadOnly) => ErrorKind::ReadOnly,
        RedisErrorKind::Server(ServerErrorKind::TryAgain) => ErrorKind::Busy,
        _ => ErrorKind::Other,
    }
}

/// Whether `err` means the connection it came from now talks to a replica
/// or a server that cannot serve (a failover behind one endpoint): the
/// command was refused, not executed, so it may go again on a new connection.
pub(crate) fn is_role_change(err: &RedisError) -> bool {
    matches!(err.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
        || matches!(
            err.kind(),
            RedisErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
            )
        )
}

/// A description of `err` that carries no server text, key or credential.
fn describe(err: &RedisError, kind: ErrorKind) -> String {
    match kind {
        ErrorKind::Auth => match err.code() {
            Some("NOAUTH") => "the server requires a password (set REDIS_PASSWORD)".into(),
            _ => "authentication failed (check REDIS_USERNAME / REDIS_PASSWORD or the credential provider)".into(),
        },
        ErrorKind::Timeout => "no answer within the deadline".into(),
        ErrorKind::Connect if err.is_connection_refusal() => "connection refused".into(),
        ErrorKind::Connect if err.is_connection_dropped() => "connection lost".into(),
        ErrorKind::Connect => match err.code() {
            Some(code) => format!("server unavailable ({code})"),
            None => format!("cannot reach the server ({})", err.category()),
        },
        ErrorKind::ReadOnly => "the server is a replica (READONLY): the primary moved".into(),
        ErrorKind::Busy => match err.code() {
            Some(code) => format!("server busy ({code})"),
            None => "server busy".into(),
        },
        ErrorKind::Other if err.code() == Some("NOPERM") => {
            "the ACL user may not run this command on this key".into()
        }
        ErrorKind::Overloaded => err.detail().unwrap_or("too many commands waiting").to_owned(),
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
        // An ACL refusal is a configuration error: retrying cannot cure it.
        assert_eq!(
            classify(&server_error("NOPERM this user has no permissions")),
            ErrorKind::Other
        );
        let failed = RedisError::from((
            RedisErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert_eq!(classify(&failed), ErrorKind::Auth);
    }

    #[test]
    fn server_errors_are_classified_by_code_and_their_text_is_not_repeated() {
        let oom =
            server_error("OOM command not allowed when used memory > 'maxmemory'. secret-arg");
        assert_eq!(classify(&oom), ErrorKind::Busy);
        let failure = RedisFailure::from(oom);
        assert_eq!(failure.to_string(), "redis busy error: server busy (OOM)");
        assert!(!failure.is_unavailable());
        assert!(failure.is_retryable());
        assert_eq!(
            classify(&server_error("LOADING Redis is loading")),
            ErrorKind::Connect
        );
    }

    #[test]
    fn retryable_is_what_a_later_retry_can_cure() {
        let cases = [
            (
                "READONLY You can't write against a read only replica.",
                ErrorKind::ReadOnly,
                true,
            ),
            (
                "MASTERDOWN Link with MASTER is down",
                ErrorKind::Connect,
                true,
            ),
            (
                "LOADING Redis is loading the dataset in memory",
                ErrorKind::Connect,
                true,
            ),
            ("CLUSTERDOWN The cluster is down", ErrorKind::Connect, true),
            (
                "TRYAGAIN Multiple keys request during rehashing of slot",
                ErrorKind::Busy,
                true,
            ),
            (
                "BUSY Redis is busy running a script.",
                ErrorKind::Busy,
                true,
            ),
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                ErrorKind::Other,
                false,
            ),
            (
                "ERR user_script:1: Script attempted to access nonexistent global variable",
                ErrorKind::Other,
                false,
            ),
            (
                "NOPERM this user has no permissions",
                ErrorKind::Other,
                false,
            ),
            (
                "WRONGPASS invalid username-password pair",
                ErrorKind::Auth,
                true,
            ),
        ];
        for (reply, kind, retryable) in cases {
            let failure = RedisFailure::from(server_error(reply));
            assert_eq!(failure.kind(), kind, "{reply}");
            assert_eq!(failure.is_retryable(), retryable, "{reply}");
            assert!(!failure.to_string().contains("nonexistent"), "{failure}");
        }
        assert!(is_role_change(&server_error("READONLY You can't write")));
        assert!(is_role_change(&server_error(
            "MASTERDOWN Link with MASTER is down"
        )));
        assert!(!is_role_change(&server_error("WRONGTYPE Operation")));
        let overloaded = RedisFailure::from(overloaded_error(10));
        assert_eq!(overloaded.kind(), ErrorKind::Overloaded);
        assert!(overloaded.is_retryable());
        assert!(!overloaded.is_unavailable());
        assert_eq!(
            RedisFailure::from(circuit_open_error(Duration::from_millis(1500))),
            RedisFailure::CircuitOpen {
                retry_after: Duration::from_millis(1500)
            }
        );
        assert!(!RedisFailure::unexpected("a reply").is_retryable());
    }
}
