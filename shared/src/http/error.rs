//! [`ApiError`], the one error shape every function answers with
//! (`{"error":{"code","message","type"?}}`), and the conversion of every
//! building block's error into it: each error maps to HTTP once, here, so
//! handlers use `?`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::blocks::cache::CacheError;
use crate::blocks::idempotency::IdempotencyError;
use crate::blocks::keys::KeyError;
use crate::blocks::keyscan::ListKeysError;
use crate::blocks::lock::LockError;
use crate::blocks::queue::QueueError;
use crate::blocks::ratelimit::RateLimitError;
use crate::redis::diagnostics::QueryError;
use crate::redis::{ErrorKind, RedisFailure};
#[cfg(feature = "store")]
use crate::store::StoreError;

/// An error answered to the caller as `{"error":{"code","message"}}`.
///
/// The status and code are chosen by the code that raises it; the message is
/// written for the caller and must not hold secrets or patient data. Redis
/// failures become `503` with `Retry-After` and the failure kind as
/// `error.type`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    kind: Option<ErrorKind>,
    retry_after: Option<Duration>,
    www_authenticate: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<ErrorKind>,
}

/// Attached to error responses so the request log line can name the error
/// without parsing the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorMarker {
    pub(crate) code: &'static str,
    pub(crate) kind: Option<ErrorKind>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            kind: None,
            retry_after: None,
            www_authenticate: None,
        }
    }

    /// `400`: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `404`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `409`: conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// `413`: the request is larger than allowed.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// `422`: well-formed but not acceptable.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// `429` with `Retry-After`.
    pub fn too_many_requests(retry_after: Duration) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry after the time in Retry-After",
        )
        .with_retry_after(retry_after)
    }

    /// `401` with `WWW-Authenticate: Bearer`.
    pub fn unauthorized() -> Self {
        Self::unauthorized_with("a valid bearer token is required", false)
    }

    /// `401` saying why; `WWW-Authenticate: Bearer`, with
    /// `error="invalid_token"` when a credential was presented and refused
    /// (RFC 6750). `message` must not quote the credential.
    pub fn unauthorized_with(message: &'static str, invalid_token: bool) -> Self {
        Self {
            www_authenticate: Some(if invalid_token {
                r#"Bearer error="invalid_token""#
            } else {
                "Bearer"
            }),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    /// `403`: authenticated, but not for the tenant the request names. The
    /// message does not repeat the tenant.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the credential does not grant access to this tenant",
        )
    }

    /// `500`: a bug or an impossible state; the detail goes to the log, not here.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// Names the Redis failure kind behind the error (`error.type`).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Adds a `Retry-After` header (whole seconds, rounded up).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// The one table of what a Redis failure answers (see
/// [`ErrorKind::is_retryable`]): `503` with `Retry-After` and the kind as
/// `error.type` when a retry can succeed (connect, timeout, auth while
/// credentials may be rotating, read-only after a failover, busy, overloaded,
/// an open circuit); `500` without detail when it cannot (a type error, a
/// script error, an ACL refusal, an unexpected reply), logged here.
impl From<RedisFailure> for ApiError {
    fn from(failure: RedisFailure) -> Self {
        if !failure.is_retryable() {
            return internal_error(&failure);
        }
        Self {
            kind: Some(failure.kind()),
            retry_after: Some(failure.retry_after()),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "redis_unavailable",
                failure.to_string(),
            )
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        Self::bad_request("invalid_id", err.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        Self::bad_request("invalid_parameter", err.to_string())
    }
}

impl From<ListKeysError> for ApiError {
    fn from(err: ListKeysError) -> Self {
        match err {
            ListKeysError::ClusterUnsupported => Self::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_supported",
                err.to_string(),
            ),
            ListKeysError::Redis(failure) => failure.into(),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Redis(failure) => failure.into(),
            QueueError::InvalidBatch => Self::too_large(err.to_string()),
            QueueError::Invalid(message) => Self::bad_request("invalid_argument", message),
        }
    }
}

impl From<LockError> for ApiError {
    fn from(err: LockError) -> Self {
        match err {
            LockError::Redis(failure) => failure.into(),
            // The TTL comes from validated settings: a bug if it happens.
            LockError::InvalidTtl => internal_error(&err),
        }
    }
}

impl From<RateLimitError> for ApiError {
    fn from(err: RateLimitError) -> Self {
        match err {
            RateLimitError::Redis(failure) => failure.into(),
            RateLimitError::InvalidSubject(key) => key.into(),
            // The limit comes from validated settings: a bug if it happens.
            RateLimitError::InvalidSettings => internal_error(&err),
        }
    }
}

impl From<IdempotencyError> for ApiError {
    fn from(err: IdempotencyError) -> Self {
        match err {
            IdempotencyError::Redis(failure) => failure.into(),
            IdempotencyError::InvalidKey(key) => {
                Self::bad_request("invalid_idempotency_key", key.to_string())
            }
            IdempotencyError::Mismatch => Self::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request body",
            ),
            IdempotencyError::InProgress { retry_after } => Self::conflict(
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still being processed; retry after Retry-After",
            )
            .with_retry_after(retry_after),
        }
    }
}

impl<E: Into<ApiError>> From<CacheError<E>> for ApiError {
    fn from(err: CacheError<E>) -> Self {
        match err {
            CacheError::Key(key) => key.into(),
            CacheError::Compute(inner) => inner.into(),
            CacheError::Redis(failure) => failure.into(),
        }
    }
}

#[cfg(feature = "store")]
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match &err {
            StoreError::AlreadyExists => {
                Self::conflict("already_exists", "a session with this id already exists")
            }
            StoreError::NotFound => Self::not_found("no such session (absent or expired)"),
            StoreError::Stale { .. } => Self::conflict("stale", err.to_string()),
            StoreError::Invalid { .. } => Self::bad_request("invalid_input", err.to_string()),
            StoreError::TooLarge { .. } => Self::too_large(err.to_string()),
            StoreError::LimitReached { .. } => {
                Self::unprocessable("limit_reached", err.to_string())
            }
            StoreError::Unavailable { kind, .. } => {
                let unavailable = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    err.to_string(),
                )
                .with_retry_after(err.retry_after());
                match kind {
                    Some(kind) => unavailable.with_kind(*kind),
                    None => unavailable,
                }
            }
            StoreError::Failed { .. } => internal_error(&err),
        }
    }
}

/// A `500` for an error that should not happen; the error itself (written
/// by this crate, free of secrets and data) goes to the log, not the caller.
fn internal_error(err: &dyn std::error::Error) -> ApiError {
    tracing::error!(error = %err, "internal error");
    ApiError::internal()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                kind: self.kind,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response.extensions_mut().insert(ErrorMarker {
            code: self.code,
            kind: self.kind,
        });
        response
    }
}
