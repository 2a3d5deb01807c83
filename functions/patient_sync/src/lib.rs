//! `patient_sync`: receives batches of patient records from a
//! practice-management system, detects which records changed, and hands the
//! changes to downstream consumers through a reliable queue.
//!
//! Routes (besides the common `/redis-health` and `/healthz`), documented
//! with examples in `docs/patient_sync.md`:
//! - `POST /practices/{practice_id}/patients/sync[?mode=full]`: compare,
//!   store and queue; `Idempotency-Key` supported; rate limited per practice
//!   (a replay of a completed idempotent request is answered before the
//!   limiter and spends none of the budget).
//! - `POST /practices/{practice_id}/changes/claim?max=N`: claim queued changes.
//! - `POST /practices/{practice_id}/changes/ack`: acknowledge claimed changes.
//! - `POST /practices/{practice_id}/changes/nack`: release claimed changes
//!   that could not be processed (optional delay and error reason); after
//!   `CHANGE_MAX_DELIVERIES` deliveries a change goes to the dead letters.
//! - `POST /practices/{practice_id}/changes/extend`: extend claims (heartbeat).
//! - Admin (`Authorization: Bearer <ADMIN_TOKEN>`, `404` when unset):
//!   `GET /admin/practices/{practice_id}/changes/dead-letters` lists dead
//!   letters, `POST …/dead-letters/replay` puts them back in the queue
//!   (delivery count reset), `POST …/dead-letters/drop` deletes them.
//! - `GET /practices/{practice_id}/sync/status`: counts, last sync, rate limit.
//! - `GET /practices/{practice_id}/patients/count`: how many patients the
//!   practice has on record, read through the fallback combinator (`null`
//!   and `"degraded": true` when Redis fails).
//!
//! Every practice route is behind [`shared::http::bind_tenant`]: the caller
//! must be authenticated (`AUTH_MODE`) for the practice the path names,
//! else `401` / `403` and nothing is read or written. Idempotency keys are
//! scoped by the authenticated caller as well as the practice; the
//! practice's rate limit is only reached by callers bound to it.
//!
//! Handlers parse and validate, call the building blocks ([`sync`] here;
//! rate limiter, lock, idempotency and queue in `shared`) and shape the
//! answer. No field of a patient record is logged or put in an error.
//!
//! # Layout
//!
//! - [`settings`]: the function's own environment settings.
//! - [`sync`]: batch validation, content hashes, the atomic sync script, practice state.

pub mod settings;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::blocks::fallback::with_fallback;
use shared::blocks::idempotency::{
    Begin, Idempotency, IdempotencyError, IdempotencySettings, Pending,
};
use shared::blocks::keys::Tenant;
use shared::blocks::lock::Lock;
use shared::blocks::queue::{self, QueueError, QueueStats};
use shared::blocks::ratelimit::RateLimiter;
use shared::http::Caller;
use shared::{ApiError, AppContext};

pub use settings::Settings;
use sync::{Batch, BatchError, Mode, PatientSync, SyncError, SyncSettings};

/// The header that makes a sync idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response replayed from an idempotency key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// Claimed changes per call when `max` is not given.
pub const DEFAULT_CLAIM_MAX: usize = 10;

/// The function's router with default [`Settings`].
pub fn app(ctx: AppContext) -> Router {
    app_with(ctx, Settings::default())
}

/// The function's router with `settings`, common routes and layers included.
///
/// The settings are assumed valid ([`Settings::from_env`] checks them); a
/// rate limit outside its range is clamped.
pub fn app_with(ctx: AppContext, settings: Settings) -> Router {
    let limiter = RateLimiter::new(
        ctx.redis.clone(),
        settings
            .rate_limit_per_minute
            .clamp(1, shared::blocks::ratelimit::MAX_LIMIT),
        std::time::Duration::from_secs(60),
    );
    let limiter = match limiter {
        Ok(limiter) => limiter,
        // Unreachable after the clamp; a router must still be returned.
        Err(_) => return shared::http::finish(Router::new(), &ctx),
    };
    let service = Arc::new(Service {
        sync: PatientSync::new(
            ctx.redis.clone(),
            SyncSettings {
                record_ttl: settings.record_ttl,
                visibility_timeout: settings.visibility_timeout,
                max_deliveries: settings.max_deliveries,
                idempotency_ttl: IdempotencySettings::default().ttl,
            },
        ),
        limiter,
        settings,
        ctx: ctx.clone(),
    });
    let routes = Router::new()
        .route(
            "/practices/{practice_id}/patients/sync",
            post(sync_patients),
        )
        .route(
            "/practices/{practice_id}/changes/claim",
            post(claim_changes),
        )
        .route("/practices/{practice_id}/changes/ack", post(ack_changes))
        .route("/practices/{practice_id}/changes/nack", post(nack_changes))
        .route(
            "/practices/{practice_id}/changes/extend",
            post(extend_changes),
        )
        .route("/practices/{practice_id}/sync/status", get(sync_status))
        .route(
            "/practices/{practice_id}/patients/count",
            get(patient_count),
        )
        .with_state(service.clone());
    let routes = shared::http::bind_tenant(routes, &ctx, "practice_id");
    // The dead letters carry patient records and concern the operators,
    // not a practice's consumer: behind ADMIN_TOKEN (404 without one), not
    // the practice's identity.
    let admin = Router::new()
        .route(
            "/admin/practices/{practice_id}/changes/dead-letters",
            get(list_dead_letters),
        )
        .route(
            "/admin/practices/{practice_id}/changes/dead-letters/replay",
            post(replay_dead_letters),
        )
        .route(
            "/admin/practices/{practice_id}/changes/dead-letters/drop",
            post(drop_dead_letters),
        )
        .with_state(service);
    let admin = shared::http::admin_only(admin, ctx.config.admin_token.clone());
    shared::http::finish(routes.merge(admin), &ctx)
}

#[derive(Debug)]
struct Service {
    ctx: AppContext,
    sync: PatientSync,
    limiter: RateLimiter,
    settings: Settings,
}

impl Service {
    /// The idempotency records of `caller` in `practice`: another caller's
    /// key of the same name is another record. The in-progress marker lives
    /// as long as the request can still run (its deadline: on Lambda the
    /// invocation's, see `shared::http`) plus the settings' slack, so a retry
    /// after a dead process waits no longer than needed; outside a request,
    /// the configured lifetime.
    fn idempotency(&self, practice: &Tenant, caller: &Caller) -> Result<Idempotency, ApiError> {
        let defaults = IdempotencySettings::default();
        let pending_ttl = shared::redis::request_deadline().map_or(
            self.settings.idempotency_pending_ttl,
            |deadline| {
                deadline.saturating_duration_since(tokio::time::Instant::now())
                    + settings::PENDING_SLACK
            },
        );
        Ok(Idempotency::new(
            self.ctx.redis.clone(),
            practice,
            "sync",
            IdempotencySettings::new(defaults.ttl, pending_ttl),
        )
        .for_caller(&caller.scope_id())?)
    }

    fn lock(&self, practice: &Tenant) -> Result<Lock, ApiError> {
        Ok(Lock::new(
            self.ctx.redis.clone(),
            practice,
            "sync",
            self.settings.lock_ttl,
        )?)
    }
}

type AppState = State<Arc<Service>>;

/// The practice of the path, validated; rejections in the JSON error shape.
struct Practice(Tenant);

impl<S: Send + Sync> FromRequestParts<S> for Practice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        #[derive(Deserialize)]
        struct Params {
            practice_id: String,
        }
        let Path(params) = Path::<Params>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_id",
                    "invalid practice_id: the path segment is not valid UTF-8 text",
                )
            })?;
        Ok(Self(Tenant::new("practice_id", &params.practice_id)?))
    }
}

/// The value of `name` in the query string, if any; a repeated name is refused.
fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    let mut found = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == name {
            if found.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("`{name}` is given more than once"),
                ));
            }
            found = Some(value.into_owned());
        }
    }
    Ok(found)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    patients: Vec<Value>,
}

impl From<BatchError> for ApiError {
    fn from(err: BatchError) -> Self {
        if err.is_too_large() {
            Self::too_large(err.to_string())
        } else if matches!(err, BatchError::DuplicateId { .. }) {
            Self::bad_request("duplicate_patient_id", err.to_string())
        } else {
            Self::bad_request("invalid_patient", err.to_string())
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(err: SyncError) -> Self {
        match err {
            SyncError::Redis(failure) => failure.into(),
            // Our in-progress marker expired mid-sync: another request may
            // now own the key; the caller retries and gets its answer.
            SyncError::IdempotencyLost => IdempotencyError::InProgress {
                retry_after: Duration::from_secs(1),
            }
            .into(),
        }
    }
}

async fn sync_patients(
    State(service): AppState,
    caller: Caller,
    Practice(practice): Practice,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    shared::Json(body): shared::Json<SyncBody>,
) -> Result<Response, ApiError> {
    let mode = match query_param(query.as_deref(), "mode")?.as_deref() {
        None | Some("incremental") => Mode::Incremental,
        Some("full") => Mode::Full,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`mode` must be `full` or `incremental`",
            ));
        }
    };
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => {
            let key = value.to_str().map_err(|_| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be printable ASCII",
                )
            })?;
            Idempotency::validate_key(key)
                .map_err(|e| ApiError::bad_request("invalid_idempotency_key", e.to_string()))?;
            Some(key.to_owned())
        }
    };
    let batch = Batch::new(body.patients, mode)?;

    // A retry of a completed request is answered from its stored response
    // before the rate limiter, and spends none of the practice's budget: a
    // client retrying after a lost reply must get its answer, not a 429.
    // An in-progress duplicate (409) or a reused key (422) spends none
    // either. Only a request that will run is counted.
    let idempotency = service.idempotency(&practice, &caller)?;
    let pending = match &idempotency_key {
        None => None,
        Some(key) => match idempotency.begin(key, batch.fingerprint()).await? {
            Begin::Started(pending) => Some(pending),
            Begin::Replay(stored) => {
                tracing::info!(
                    practice = practice.id(),
                    "sync replayed from its idempotency key"
                );
                let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
                let mut response = json_response(status, stored.body);
                response
                    .headers_mut()
                    .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
                return Ok(response);
            }
        },
    };

    let decision = match service.limiter.check(&practice, "sync").await {
        Ok(decision) => decision,
        Err(err) => {
            abandon(&idempotency, pending).await;
            return Err(err.into());
        }
    };
    if !decision.allowed {
        // The key was taken for a request that will not run: give it back,
        // so that the retry after `Retry-After` runs.
        abandon(&idempotency, pending).await;
        tracing::info!(
            practice = practice.id(),
            limit = decision.limit,
            "sync rate limited"
        );
        return Err(ApiError::too_many_requests(decision.retry_after));
    }

    let outcome = run_sync(&service, &practice, &batch, mode, pending.as_ref()).await;
    if outcome.is_err() {
        abandon(&idempotency, pending).await;
    }
    let report = outcome?;
    tracing::info!(
        practice = practice.id(),
        mode = mode.as_str(),
        received = report.received,
        changed = report.changed,
        unchanged = report.unchanged,
        "patients synced"
    );
    Ok(Json(report).into_response())
}

/// Gives up an idempotency key taken by a request that will not run.
/// Best effort: if Redis is down the marker expires by itself.
async fn abandon(idempotency: &Idempotency, pending: Option<Pending>) {
    if let Some(pending) = pending {
        let _ = idempotency.abandon(pending).await;
    }
}

/// The sync itself, under the practice's lock in full mode.
async fn run_sync(
    service: &Service,
    practice: &Tenant,
    batch: &Batch,
    mode: Mode,
    pending: Option<&Pending>,
) -> Result<sync::SyncReport, ApiError> {
    let lock = match mode {
        Mode::Full => {
            let lock = service.lock(practice)?;
            match lock.acquire().await? {
                Some(guard) => Some((lock, guard)),
                None => {
                    return Err(ApiError::conflict(
                        "sync_in_progress",
                        "a full sync of this practice is already running",
                    )
                    .with_retry_after(Duration::from_secs(1)));
                }
            }
        }
        Mode::Incremental => None,
    };
    let result = service.sync.apply(practice, batch, pending).await;
    if let Some((lock, guard)) = lock {
        // Best effort: if Redis is down the lock expires after its TTL.
        let _ = lock.release(guard).await;
    }
    Ok(result?)
}

#[derive(Serialize)]
struct ClaimedChange {
    claim_id: String,
    change_id: String,
    delivery: u32,
    change: Value,
}

#[derive(Serialize)]
struct ClaimResponse {
    changes: Vec<ClaimedChange>,
    visibility_timeout_ms: u64,
}

async fn claim_changes(
    State(service): AppState,
    Practice(practice): Practice,
    RawQuery(query): RawQuery,
) -> Result<Json<ClaimResponse>, ApiError> {
    let max = match query_param(query.as_deref(), "max")? {
        None => DEFAULT_CLAIM_MAX,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=queue::MAX_BATCH).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("`max` must be an integer from 1 to {}", queue::MAX_BATCH),
                )
            })?,
    };
    let queue = service.sync.queue(&practice);
    let claimed = queue.claim(max).await?;
    let changes = claimed
        .into_iter()
        .map(|c| ClaimedChange {
            change: serde_json::from_slice(&c.payload).unwrap_or(Value::Null),
            claim_id: c.claim_id,
            change_id: c.item_id,
            delivery: c.delivery,
        })
        .collect::<Vec<_>>();
    tracing::info!(
        practice = practice.id(),
        claimed = changes.len(),
        "changes claimed"
    );
    Ok(Json(ClaimResponse {
        changes,
        visibility_timeout_ms: millis(service.settings.visibility_timeout),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    ids: Vec<String>,
}

#[derive(Serialize)]
struct AckResponse {
    acknowledged: usize,
    unknown: Vec<String>,
}

async fn ack_changes(
    State(service): AppState,
    Practice(practice): Practice,
    shared::Json(body): shared::Json<AckBody>,
) -> Result<Json<AckResponse>, ApiError> {
    if body.ids.len() > queue::MAX_BATCH {
        return Err(QueueError::InvalidBatch.into());
    }
    let report = service.sync.queue(&practice).ack(&body.ids).await?;
    tracing::info!(
        practice = practice.id(),
        acknowledged = report.acked.len(),
        unknown = report.unknown.len(),
        "changes acknowledged"
    );
    Ok(Json(AckResponse {
        acknowledged: report.acked.len(),
        unknown: report.unknown,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NackBody {
    ids: Vec<String>,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Serialize)]
struct NackResponse {
    requeued: usize,
    dead_lettered: usize,
    unknown: Vec<String>,
}

/// Releases claimed changes the consumer could not process: each goes back
/// to the queue (after `delay_ms`), or to the dead letters after its last
/// delivery. `error` is kept as the change's last error; it is never logged.
async fn nack_changes(
    State(service): AppState,
    Practice(practice): Practice,
    shared::Json(body): shared::Json<NackBody>,
) -> Result<Json<NackResponse>, ApiError> {
    if body.ids.len() > queue::MAX_BATCH {
        return Err(QueueError::InvalidBatch.into());
    }
    if body.delay_ms > millis(queue::MAX_DELAY) {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!(
                "`delay_ms` must be at most {} (12 hours)",
                millis(queue::MAX_DELAY)
            ),
        ));
    }
    if body
        .error
        .as_ref()
        .is_some_and(|e| e.len() > queue::MAX_REASON_BYTES)
    {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("`error` must be at most {} bytes", queue::MAX_REASON_BYTES),
        ));
    }
    let report = service
        .sync
        .queue(&practice)
        .nack(
            &body.ids,
            Duration::from_millis(body.delay_ms),
            body.error.as_deref(),
        )
        .await?;
    tracing::info!(
        practice = practice.id(),
        requeued = report.requeued.len(),
        dead_lettered = report.dead_lettered.len(),
        unknown = report.unknown.len(),
        "changes released"
    );
    Ok(Json(NackResponse {
        requeued: report.requeued.len(),
        dead_lettered: report.dead_lettered.len(),
        unknown: report.unknown,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    ids: Vec<String>,
    #[serde(default)]
    visibility_timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct ExtendResponse {
    extended: usize,
    unknown: Vec<String>,
    visibility_timeout_ms: u64,
    deadline_ms: Option<u64>,
}

/// Renews claims (a consumer's heartbeat): each known claim stays
/// invisible for `visibility_timeout_ms` more (default: the configured
/// visibility timeout).
async fn extend_changes(
    State(service): AppState,
    Practice(practice): Practice,
    shared::Json(body): shared::Json<ExtendBody>,
) -> Result<Json<ExtendResponse>, ApiError> {
    if body.ids.len() > queue::MAX_BATCH {
        return Err(QueueError::InvalidBatch.into());
    }
    let visibility_ms = body
        .visibility_timeout_ms
        .unwrap_or_else(|| millis(service.settings.visibility_timeout));
    if visibility_ms == 0 || visibility_ms > millis(queue::MAX_DELAY) {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!(
                "`visibility_timeout_ms` must be from 1 to {} (12 hours)",
                millis(queue::MAX_DELAY)
            ),
        ));
    }
    let report = service
        .sync
        .queue(&practice)
        .extend(&body.ids, Duration::from_millis(visibility_ms))
        .await?;
    tracing::info!(
        practice = practice.id(),
        extended = report.extended.len(),
        unknown = report.unknown.len(),
        "claims extended"
    );
    Ok(Json(ExtendResponse {
        extended: report.extended.len(),
        deadline_ms: (!report.extended.is_empty()).then_some(report.deadline_ms),
        unknown: report.unknown,
        visibility_timeout_ms: visibility_ms,
    }))
}

/// Dead letters per page when `limit` is not given.
pub const DEFAULT_DEAD_LETTER_PAGE: usize = 20;

#[derive(Serialize)]
struct DeadLetterEntry {
    change_id: String,
    deliveries: u32,
    last_error: Option<String>,
    dead_lettered_at_ms: u64,
    change: Value,
}

#[derive(Serialize)]
struct DeadLetterList {
    practice_id: String,
    total: u64,
    offset: u64,
    dead_letters: Vec<DeadLetterEntry>,
}

async fn list_dead_letters(
    State(service): AppState,
    Practice(practice): Practice,
    RawQuery(query): RawQuery,
) -> Result<Json<DeadLetterList>, ApiError> {
    let limit = match query_param(query.as_deref(), "limit")? {
        None => DEFAULT_DEAD_LETTER_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=queue::MAX_DEAD_LETTER_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "`limit` must be an integer from 1 to {}",
                        queue::MAX_DEAD_LETTER_PAGE
                    ),
                )
            })?,
    };
    let offset = match query_param(query.as_deref(), "offset")? {
        None => 0,
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= 1_000_000_000)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    "`offset` must be an integer from 0 to 1000000000",
                )
            })?,
    };
    let page = service
        .sync
        .queue(&practice)
        .dead_letters(offset, limit)
        .await?;
    tracing::info!(
        practice = practice.id(),
        listed = page.items.len(),
        total = page.total,
        "dead letters listed"
    );
    Ok(Json(DeadLetterList {
        practice_id: practice.id().to_owned(),
        total: page.total,
        offset,
        dead_letters: page
            .items
            .into_iter()
            .map(|d| DeadLetterEntry {
                change: serde_json::from_slice(&d.payload).unwrap_or(Value::Null),
                change_id: d.item_id,
                deliveries: d.deliveries,
                last_error: d.last_error,
                dead_lettered_at_ms: d.dead_lettered_at_ms,
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeIdsBody {
    ids: Vec<String>,
}

/// The ids of a replay or drop, checked: at most [`queue::MAX_BATCH`],
/// each a change id as a listing gives it.
fn change_ids(body: &ChangeIdsBody) -> Result<(), ApiError> {
    if body.ids.len() > queue::MAX_BATCH {
        return Err(QueueError::InvalidBatch.into());
    }
    if let Some(index) = body
        .ids
        .iter()
        .position(|id| !shared::blocks::queue::Queue::is_item_id(id))
    {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("ids[{index}] is not a change id (1 to 20 digits, as the listing gives it)"),
        ));
    }
    Ok(())
}

#[derive(Serialize)]
struct ReplayResponse {
    replayed: usize,
    unknown: Vec<String>,
}

async fn replay_dead_letters(
    State(service): AppState,
    Practice(practice): Practice,
    shared::Json(body): shared::Json<ChangeIdsBody>,
) -> Result<Json<ReplayResponse>, ApiError> {
    change_ids(&body)?;
    let report = service
        .sync
        .queue(&practice)
        .replay_dead_letters(&body.ids)
        .await?;
    tracing::info!(
        practice = practice.id(),
        replayed = report.done.len(),
        unknown = report.unknown.len(),
        "dead letters replayed"
    );
    Ok(Json(ReplayResponse {
        replayed: report.done.len(),
        unknown: report.unknown,
    }))
}

#[derive(Serialize)]
struct DropResponse {
    dropped: usize,
    unknown: Vec<String>,
}

async fn drop_dead_letters(
    State(service): AppState,
    Practice(practice): Practice,
    shared::Json(body): shared::Json<ChangeIdsBody>,
) -> Result<Json<DropResponse>, ApiError> {
    change_ids(&body)?;
    let report = service
        .sync
        .queue(&practice)
        .drop_dead_letters(&body.ids)
        .await?;
    tracing::info!(
        practice = practice.id(),
        dropped = report.done.len(),
        unknown = report.unknown.len(),
        "dead letters dropped"
    );
    Ok(Json(DropResponse {
        dropped: report.done.len(),
        unknown: report.unknown,
    }))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Serialize)]
struct RateLimitStatus {
    limit: u32,
    remaining: u32,
    window_secs: u64,
    reset_after_ms: u64,
}

#[derive(Serialize)]
struct StatusResponse {
    practice_id: String,
    patients_tracked: u64,
    changes_pending: u64,
    changes_delayed: u64,
    changes_claimed: u64,
    changes_dead_lettered: u64,
    oldest_change_age_ms: Option<u64>,
    last_sync_ms: Option<u64>,
    rate_limit: RateLimitStatus,
}

async fn sync_status(
    State(service): AppState,
    Practice(practice): Practice,
) -> Result<Json<StatusResponse>, ApiError> {
    let (state, limit) = tokio::join!(
        service.sync.state(&practice),
        service.limiter.peek(&practice, "sync")
    );
    let (state, limit) = (state?, limit?);
    let QueueStats {
        pending,
        delayed,
        claimed,
        dead_letters,
        oldest_age_ms,
    } = state.changes;
    Ok(Json(StatusResponse {
        practice_id: practice.id().to_owned(),
        patients_tracked: state.patients_tracked,
        changes_pending: pending,
        changes_delayed: delayed,
        changes_claimed: claimed,
        changes_dead_lettered: dead_letters,
        oldest_change_age_ms: oldest_age_ms,
        last_sync_ms: state.last_sync_ms,
        rate_limit: RateLimitStatus {
            limit: limit.limit,
            remaining: limit.remaining,
            window_secs: service.limiter.window().as_secs(),
            reset_after_ms: u64::try_from(limit.reset_after.as_millis()).unwrap_or(u64::MAX),
        },
    }))
}

#[derive(Serialize)]
struct PatientCount {
    practice_id: String,
    patients: Option<u64>,
    degraded: bool,
}

async fn patient_count(
    State(service): AppState,
    Practice(practice): Practice,
) -> Json<PatientCount> {
    let key = practice.key("patients");
    let count = with_fallback(
        &service.ctx.redis,
        "patients.count",
        None,
        |mut c| async move {
            redis::cmd("HLEN")
                .arg(key)
                .query_async::<u64>(&mut c)
                .await
                .map(Some)
        },
    )
    .await;
    Json(PatientCount {
        practice_id: practice.id().to_owned(),
        degraded: count.is_fallback(),
        patients: count.value,
    })
}
