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
//! | `GET /apps/{app}/users/{user}/sessions` | `200` `{"sessions": […]}` (no events) |
//! | `GET /apps/{app}/users/{user}/sessions/{id}?num_recent_events=&after_timestamp=` | `200` the session; `404` |
//! | `DELETE /apps/{app}/users/{user}/sessions/{id}` | `204` (absent too) |
//! | `POST /apps/{app}/users/{user}/sessions/{id}/events` `{"event", "expected_seq"?}` | `200` `{"seq", …}`; `404`; `409` stale |
//! | `POST /apps/{app}/users/{user}/memory` `{"session_id"}` | `200` `{"added"}`; `404` no such session |
//! | `GET /apps/{app}/users/{user}/memory?query=&limit=` | `200` `{"memories": […]}` |
//!
//! Every route is behind [`shared::http::bind_tenant`] on `{app}`: the
//! caller must be authenticated (`AUTH_MODE`) for the app, else `401` /
//! `403` and the store is not touched. Bad input is a `4xx` JSON error and
//! writes nothing; an unavailable backend is `503` with `Retry-After`.

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use shared::config::{Backend, Env};
use shared::http::{PathParams, QueryParams};
use shared::store::StoreError;
use shared::store::memory::{self, MemoryEntry, MemoryStore};
use shared::store::session::{self, Event, GetSession, Session, SessionKey, SessionStore, UserKey};
use shared::store::sql::{SqlDatabase, SqlSettings};
use shared::{ApiError, AppContext, Json};

/// The two stores the routes use, chosen by configuration.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Where sessions live (`SESSION_BACKEND`).
    pub sessions: Arc<dyn SessionStore>,
    /// Where memory lives (`MEMORY_BACKEND`).
    pub memory: Arc<dyn MemoryStore>,
}

impl Stores {
    /// Builds the stores `ctx.config.stores` names; with a `sql` backend,
    /// connects to `DATABASE_URL` (pool settings from `env`) and runs the
    /// migrations.
    ///
    /// # Errors
    /// An invalid `DATABASE_URL` or pool setting, an unreachable database,
    /// a failed migration.
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
        Ok(Self {
            sessions: session::open(stores, &ctx.redis, database.as_ref())?,
            memory: memory::open(stores, &ctx.redis, database.as_ref())?,
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
    let routes = Router::new()
        .route(
            "/apps/{app}/users/{user}/sessions",
            post(create_session).get(list_sessions),
        )
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
    let mut sessions = stores.sessions.list(&user).await?;
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(SessionList { sessions }))
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
        event_id: appended.event.id,
        timestamp: appended.timestamp,
        state_delta: appended.state_delta,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMemoryBody {
    session_id: String,
}

#[derive(Debug, Serialize)]
struct AddMemoryReply {
    added: usize,
}

async fn add_to_memory(
    State(stores): State<Stores>,
    PathParams((app, user)): PathParams<(String, String)>,
    Json(body): Json<AddMemoryBody>,
) -> Reply<Json<AddMemoryReply>> {
    let key = SessionKey::new(&app, &user, &body.session_id)?;
    let session = stores
        .sessions
        .get(&key, GetSession::all())
        .await?
        .ok_or(StoreError::NotFound)?;
    let added = stores.memory.add_session(&session).await?;
    Ok(Json(AddMemoryReply { added }))
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
