//! `sessions`: an agent's session and memory service over HTTP, on the
//! backend `SESSION_BACKEND` / `MEMORY_BACKEND` name (`redis`, `sql`,
//! `memory`). The semantics are those of [`shared::store::session`] and
//! [`shared::store::memory`]; this crate parses, calls and shapes.
//!
//! Routes (besides the common `/redis-health` and `/healthz`):
//!
//! | route | answer |
//! |---|---|
//! | `POST /apps/{app}/users/{user}/sessions` `{"state"?, "session_id"?}` | `201` the session; `409` the id exists |
//! | `GET /apps/{app}/users/{user}/sessions` | `200` `{"sessions": […]}` (no events; oldest update first) |
//! | `GET /apps/{app}/sessions` | `200` `{"sessions": […]}`: every user's, same order |
//! | `GET /apps/{app}/users/{user}/sessions/{id}?num_recent_events=&after_timestamp=` | `200` the session; `404`; `422` more bytes than a response may carry |
//! | `DELETE /apps/{app}/users/{user}/sessions/{id}` | `204` (absent too) |
//! | `POST /apps/{app}/users/{user}/sessions/{id}/events` `{"event", "expected_seq"?}` | `200` `{"seq", "duplicate", …}`; `404`; `409` stale; `413`; `422` session full |
//! | `GET /apps/{app}/users/{user}/state` | `200` `{"state": {…}}`: the user state, without the `user:` prefix |
//! | `POST /apps/{app}/users/{user}/memory` `{"session_id"}` or `{"session_id"?, "events"}` | `200` `{"added"}`; `404` no such session |
//! | `GET /apps/{app}/users/{user}/memory?query=&limit=` | `200` `{"memories": […]}` |
//! | `DELETE /apps/{app}/users/{user}/memory/{event_id}` | `204` (absent too) |
//!
//! Every id in a path or body (app, user, session, state key, event id)
//! is compared byte for byte on every backend: `alice`, `alice ` and
//! `Alice` are three users. Memory search finds words by the one tokenizer
//! [`shared::store::memory::words`] (UAX #29 words, lowercased, NFKC;
//! character bigrams in scripts written without spaces).
//!
//! Every route is behind [`shared::http::bind_tenant`] on `{app}`: the
//! caller must be authenticated (`AUTH_MODE`) for the app, else `401` /
//! `403` and the store is not touched. Bad input is a `4xx` JSON error and
//! writes nothing; an unavailable backend is `503` with `Retry-After`.
//! Request bodies may be up to `MAX_BODY_BYTES`, 8 MiB by default for this
//! function (events carry images and audio inline).

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use shared::config::{Backend, Env};
use shared::http::{PathParams, QueryParams};
use shared::store::StoreError;
use shared::store::memory::{self, MemoryEntry, MemoryStore};
use shared::store::session::{
    self, AppKey, Event, GetSession, Session, SessionKey, SessionStore, UserKey,
};
use shared::store::sql::{SqlDatabase, SqlSettings};
use shared::{ApiError, AppContext, Json};

/// The two stores the routes use, chosen by configuration.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Where sessions live (`SESSION_BACKEND`).
    pub sessions: Arc<dyn SessionStore>,
    /// Where memory lives (`MEMORY_BACKEND`).
    pub memory: Arc<dyn MemoryStore>,
    /// The largest request body (`MAX_BODY_BYTES`, 8 MiB by default here).
    pub max_body_bytes: usize,
}

/// This function's default `MAX_BODY_BYTES`: ADK events carry images, audio
/// and files inline (base64), and one stored event may be up to
/// `SESSION_MAX_EVENT_BYTES` (8 MiB by default).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 8 << 20;

impl Stores {
    /// Builds the stores `ctx.config.stores` names; with a `sql` backend,
    /// connects to `DATABASE_URL` or the database the `CLOUDSQL_*`
    /// variables name (pool settings from `env`), with the TLS the URL asks
    /// for, and runs the migrations.
    ///
    /// # Errors
    /// An invalid `DATABASE_URL` or pool setting, an unreachable database,
    /// a refused connection (TLS required, a certificate that does not
    /// verify, a wrong login), a failed migration.
    pub async fn connect(ctx: &AppContext, env: &Env<'_>) -> Result<Self, StoreError> {
        let stores = &ctx.config.stores;
        let needs_sql = [stores.session_backend, stores.memory_backend].contains(&Backend::Sql);
        let database = match (&stores.database_url, needs_sql) {
            (Some(url), true) => {
                let settings = SqlSettings::from_env(env)
                    .map_err(|e| StoreError::invalid(e.var, e.message))?;
                let db = SqlDatabase::connect_lazy(url, settings)?;
                db.migrate().await?;
                Some(db)
            }
            _ => None,
        };
        let max_body_bytes =
            env.range("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1_024, 64 << 20)
                .map_err(|e| StoreError::invalid(e.var, e.message))? as usize;
        Ok(Self {
            sessions: session::open(stores, &ctx.redis, database.as_ref())?,
            memory: memory::open(stores, &ctx.redis, database.as_ref())?,
            max_body_bytes,
        })
    }

    /// [`Stores::connect`] for `main`: logs the outcome, and on failure
    /// returns the exit code (2 for a setting, 1 for an unreachable database).
    ///
    /// # Errors
    /// The exit code to end the process with.
    pub async fn open(ctx: &AppContext, env: &Env<'_>) -> Result<Self, ExitCode> {
        match Self::connect(ctx, env).await {
            Ok(stores) => {
                tracing::info!(
                    session_backend = stores.sessions.backend(),
                    memory_backend = stores.memory.backend(),
                    "stores ready"
                );
                Ok(stores)
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot set up the session and memory stores");
                Err(match err {
                    StoreError::Invalid { .. } => ExitCode::from(2),
                    _ => ExitCode::FAILURE,
                })
            }
        }
    }
}

/// The function's router, common routes and layers included.
pub fn app(ctx: AppContext, stores: Stores) -> Router {
    let limit = stores.max_body_bytes;
    let routes = Router::new()
        .route("/apps/{app}/sessions", get(list_app_sessions))
        .route(
            "/apps/{app}/users/{user}/sessions",
            post(create_session).get(list_sessions),
        )
        .route("/apps/{app}/users/{user}/state", get(get_user_state))
        .route(
            "/apps/{app}/users/{user}/sessions/{id}",
            get(get_session).delete(delete_session),
        )
        .route(
            "/apps/{app}/users/{user}/sessions/{id}/events",
            post(append_event),
        )
        .route(
            "/apps/{app}/users/{user}/memory",
            post(add_to_memory).get(search_memory),
        )
        .route(
            "/apps/{app}/users/{user}/memory/{event_id}",
            delete(delete_memory),
        )
        // Inside the common layers: this function's own body limit wins.
        .layer(DefaultBodyLimit::max(limit))
        .with_state(stores);
    let routes = shared::http::bind_tenant(routes, &ctx, "app");
    shared::http::finish(routes, &ctx)
}

type Reply<T> = Result<T, ApiError>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    state: session::State,
    #[serde(default)]
    session_id: Option<String>,
}

async fn create_session(
    State(stores): State<Stores>,
    PathParams((app, user)): PathParams<(String, String)>,
    Json(body): Json<CreateBody>,
) -> Reply<(StatusCode, Json<Session>)> {
    let user = UserKey::new(&app, &user)?;
    let session = stores
        .sessions
        .create(&user, body.state, body.session_id.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(session)))
}

#[derive(Debug, Serialize)]
struct SessionList {
    sessions: Vec<Session>,
}

async fn list_sessions(
    State(stores): State<Stores>,
    PathParams((app, user)): PathParams<(String, String)>,
) -> Reply<Json<SessionList>> {
    let user = UserKey::new(&app, &user)?;
    let sessions = stores.sessions.list(&user).await?;
    Ok(Json(SessionList { sessions }))
}

async fn list_app_sessions(
    State(stores): State<Stores>,
    PathParams(app): PathParams<String>,
) -> Reply<Json<SessionList>> {
    let app = AppKey::new(&app)?;
    let sessions = stores.sessions.list_app(&app).await?;
    Ok(Json(SessionList { sessions }))
}

#[derive(Debug, Serialize)]
struct UserStateReply {
    state: session::State,
}

async fn get_user_state(
    State(stores): State<Stores>,
    PathParams((app, user)): PathParams<(String, String)>,
) -> Reply<Json<UserStateReply>> {
    let user = UserKey::new(&app, &user)?;
    let state = stores.sessions.user_state(&user).await?;
    Ok(Json(UserStateReply { state }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    num_recent_events: Option<u32>,
    after_timestamp: Option<f64>,
}

async fn get_session(
    State(stores): State<Stores>,
    PathParams((app, user, id)): PathParams<(String, String, String)>,
    QueryParams(params): QueryParams<GetParams>,
) -> Reply<Json<Session>> {
    let key = SessionKey::new(&app, &user, &id)?;
    if params.after_timestamp.is_some_and(|t| !t.is_finite()) {
        return Err(StoreError::invalid("after_timestamp", "must be a number of seconds").into());
    }
    let query = match params.after_timestamp {
        Some(t) => GetSession::after(t, params.num_recent_events),
        None => match params.num_recent_events {
            Some(n) => GetSession::recent(n),
            None => GetSession::all(),
        },
    };
    let session = stores
        .sessions
        .get(&key, query)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(Json(session))
}

async fn delete_session(
    State(stores): State<Stores>,
    PathParams((app, user, id)): PathParams<(String, String, String)>,
) -> Reply<StatusCode> {
    let key = SessionKey::new(&app, &user, &id)?;
    stores.sessions.delete(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendBody {
    event: Event,
    #[serde(default)]
    expected_seq: Option<u64>,
}

#[derive(Debug, Serialize)]
struct AppendReply {
    /// The new sequence number; `null` for a partial event.
    seq: Option<u64>,
    stored: bool,
    /// The session already held this event id: nothing was written (a retry).
    duplicate: bool,
    event_id: String,
    timestamp: f64,
    /// The delta as applied to the caller's session (`temp:` keys included).
    state_delta: session::State,
}

async fn append_event(
    State(stores): State<Stores>,
    PathParams((app, user, id)): PathParams<(String, String, String)>,
    Json(body): Json<AppendBody>,
) -> Reply<Json<AppendReply>> {
    let key = SessionKey::new(&app, &user, &id)?;
    let appended = stores
        .sessions
        .append_event(&key, body.event, body.expected_seq)
        .await?;
    Ok(Json(AppendReply {
        seq: appended.seq,
        stored: appended.seq.is_some(),
        duplicate: appended.duplicate,
        event_id: appended.event.id,
        timestamp: appended.timestamp,
        state_delta: appended.state_delta,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMemoryBody {
    #[serde(default)]
    session_id: Option<String>,
    /// Events to remember as they are (the session need not be stored).
    #[serde(default)]
    events: Option<Vec<Event>>,
}

/// The session id ADK gives events remembered without one.
const UNKNOWN_SESSION: &str = "__unknown_session_id__";

#[derive(Debug, Serialize)]
struct AddMemoryReply {
    added: usize,
}

async fn add_to_memory(
    State(stores): State<Stores>,
    PathParams((app, user)): PathParams<(String, String)>,
    Json(body): Json<AddMemoryBody>,
) -> Reply<Json<AddMemoryReply>> {
    let user = UserKey::new(&app, &user)?;
    let added = match (body.events, body.session_id) {
        (Some(events), session_id) => {
            let session_id = session_id.as_deref().unwrap_or(UNKNOWN_SESSION);
            stores.memory.add_events(&user, session_id, &events).await?
        }
        (None, Some(session_id)) => {
            let key = user.session(&session_id)?;
            let session = stores
                .sessions
                .get(&key, GetSession::all())
                .await?
                .ok_or(StoreError::NotFound)?;
            stores.memory.add_session(&session).await?
        }
        (None, None) => {
            return Err(StoreError::invalid("session_id", "give session_id or events").into());
        }
    };
    Ok(Json(AddMemoryReply { added }))
}

async fn delete_memory(
    State(stores): State<Stores>,
    PathParams((app, user, event_id)): PathParams<(String, String, String)>,
) -> Reply<StatusCode> {
    let user = UserKey::new(&app, &user)?;
    stores.memory.delete(&user, &event_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    query: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    10
}

#[derive(Debug, Serialize)]
struct SearchReply {
    memories: Vec<MemoryEntry>,
}

async fn search_memory(
    State(stores): State<Stores>,
    PathParams((app, user)): PathParams<(String, String)>,
    QueryParams(params): QueryParams<SearchParams>,
) -> Reply<Json<SearchReply>> {
    let user = UserKey::new(&app, &user)?;
    if params.query.len() > 1_024 {
        return Err(StoreError::invalid("query", "at most 1024 bytes").into());
    }
    let memories = stores
        .memory
        .search(&user, &params.query, params.limit)
        .await?;
    Ok(Json(SearchReply { memories }))
}
