//! `tebra_debug`: the diagnostics function an engineer opens when an
//! integration misbehaves: is Redis reachable, how fast, how full, what is
//! the client doing, what does a tenant's data look like.
//!
//! Routes (besides the common `/redis-health` and `/healthz`):
//! - `GET /status`: open to anyone, so it says only what anyone may know:
//!   the service name and whether Redis answers a `PING`, read through the
//!   fallback combinator (`"redis": "reachable"`, or `"unreachable"` with
//!   `"degraded": true`, still `200`). Nothing about any tenant (not even
//!   the number of keys across all of them): that is behind the admin token.
//! - `GET /debug/redis?probe=<0..100>` and `GET /admin/redis-metrics` (the
//!   same JSON): server figures from `INFO`, the client's pool, breaker,
//!   counters and latency percentiles, and a live probe of `probe` `PING`s
//!   ([`shared::redis::diagnostics::RedisReport`]).
//! - `GET /debug/config`: the effective configuration, secrets redacted.
//! - `GET /debug/keys?workspace=<id>&pattern=<glob>&limit=<1..1000>`: keys of
//!   one workspace with type and TTL, by a bounded `SCAN`
//!   ([`shared::blocks::keyscan::list_keys`]).
//! - `GET /debug`: the live dashboard (an HTML page, its script and styles).
//!
//! # Access
//!
//! Every JSON route above requires `Authorization: Bearer <ADMIN_TOKEN>`
//! ([`shared::http::admin_only`]); with `ADMIN_TOKEN` unset they answer `404`.
//! A browser cannot send a bearer header when it navigates to a page, so the
//! dashboard's HTML, script and styles are served without the token, but
//! only when `ADMIN_TOKEN` is set (`404` otherwise), and they hold no data:
//! the page asks for the token, keeps it in a JavaScript variable (never in
//! the URL or browser storage) and sends it as a bearer header on each poll
//! of `/debug/redis`. A strict Content-Security-Policy allows the page to
//! load only its own script and styles and to talk only to its own origin.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use shared::blocks::fallback::with_fallback;
use shared::blocks::keys::Tenant;
use shared::blocks::keyscan::{self, KeyListing, KeyQuery};
use shared::config::{ConfigError, Env};
use shared::redis::diagnostics::{QueryError, RedisReport};
use shared::redis::probe;
use shared::{ApiError, AppContext};

/// `PING`s of a metrics request without `?probe=`.
pub const DEFAULT_PROBE: usize = 10;
/// Keys of a listing without `?limit=`.
pub const DEFAULT_KEY_LIMIT: usize = 100;

/// The function's own settings, read from the environment at start.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Settings {
    /// `DEBUG_TIME_BUDGET_MS`: the longest a `/debug/keys` scan or a
    /// `/debug/redis` probe may run.
    #[serde(rename = "time_budget_ms", serialize_with = "as_millis")]
    pub time_budget: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            time_budget: Duration::from_millis(1_000),
        }
    }
}

impl Settings {
    /// Reads the settings through `env`, checked against the shared
    /// configuration: the budget plus one Redis deadline (the key lookups
    /// after a scan) must fit in the request deadline.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `DEBUG_TIME_BUDGET_MS` and what it accepts.
    pub fn from_env(env: &Env<'_>, config: &shared::Config) -> Result<Self, ConfigError> {
        let time_budget = env.millis("DEBUG_TIME_BUDGET_MS", 1_000, 10, 60_000)?;
        if time_budget + config.redis.command_timeout >= config.http.request_timeout {
            return Err(ConfigError::new(
                "DEBUG_TIME_BUDGET_MS",
                format!(
                    "plus REDIS_COMMAND_TIMEOUT_MS ({} ms) must be under REQUEST_TIMEOUT_MS ({} ms)",
                    config.redis.command_timeout.as_millis(),
                    config.http.request_timeout.as_millis()
                ),
            ));
        }
        Ok(Self { time_budget })
    }
}

#[derive(Debug, Clone)]
struct DebugState {
    ctx: AppContext,
    settings: Arc<Settings>,
}

/// The function's router with default [`Settings`], common routes and layers included.
pub fn app(ctx: AppContext) -> Router {
    app_with(ctx, Settings::default())
}

/// The function's router with `settings`, common routes and layers included.
pub fn app_with(ctx: AppContext, settings: Settings) -> Router {
    let state = DebugState {
        ctx: ctx.clone(),
        settings: Arc::new(settings),
    };
    let admin = Router::new()
        .route("/debug/redis", get(redis_report))
        .route("/admin/redis-metrics", get(redis_report))
        .route("/debug/config", get(effective_config))
        .route("/debug/keys", get(list_keys));
    let admin = shared::http::admin_only(admin, ctx.config.admin_token.clone())
        .layer(axum::middleware::map_response(no_store));
    let routes = Router::new()
        .route("/status", get(status))
        .route("/debug", get(dashboard_page))
        .route("/debug/assets/dashboard.js", get(dashboard_script))
        .route("/debug/assets/dashboard.css", get(dashboard_styles))
        .merge(admin)
        .with_state(state);
    shared::http::finish(routes, &ctx)
}

#[derive(Serialize)]
struct Status {
    service: &'static str,
    redis: &'static str,
    degraded: bool,
}

async fn status(State(state): State<DebugState>) -> Json<Status> {
    let ping = with_fallback(&state.ctx.redis, "status.ping", false, |mut c| async move {
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| true)
    })
    .await;
    Json(Status {
        service: "tebra_debug",
        degraded: ping.is_fallback(),
        redis: if ping.value {
            "reachable"
        } else {
            "unreachable"
        },
    })
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Query parameters, each known and given at most once.
struct Params(HashMap<&'static str, String>);

impl Params {
    fn parse(raw: Option<&str>, known: &[&'static str]) -> Result<Self, ApiError> {
        let mut found = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            // The caller's parameter name is not repeated: it is their input.
            let Some(known_name) = known.iter().find(|k| **k == name) else {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!(
                        "unknown query parameter; this route accepts: {}",
                        known.join(", ")
                    ),
                ));
            };
            if found.insert(*known_name, value.into_owned()).is_some() {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("`{known_name}` is given more than once"),
                ));
            }
        }
        Ok(Self(found))
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A non-negative integer, or `default` when absent.
    /// `min..=max` is only named in the error: the building blocks check
    /// the range.
    fn count(
        &self,
        name: &'static str,
        default: usize,
        (min, max): (usize, usize),
    ) -> Result<usize, ApiError> {
        let Some(raw) = self.text(name) else {
            return Ok(default);
        };
        raw.trim().parse::<usize>().map_err(|_| {
            QueryError::new(name, format!("must be an integer from {min} to {max}")).into()
        })
    }
}

async fn redis_report(
    State(state): State<DebugState>,
    RawQuery(query): RawQuery,
) -> Result<Json<RedisReport>, ApiError> {
    let params = Params::parse(query.as_deref(), &["probe"])?;
    let probe = params.count("probe", DEFAULT_PROBE, (0, probe::MAX_PROBE_PINGS))?;
    let probe = probe::probe_count(probe)?;
    let report = RedisReport::collect(&state.ctx.redis, probe, state.settings.time_budget).await;
    Ok(Json(report))
}

#[derive(Serialize)]
struct EffectiveConfig<'a> {
    service: &'static str,
    redis_target: String,
    shared: &'a shared::Config,
    tebra_debug: &'a Settings,
}

async fn effective_config(State(state): State<DebugState>) -> impl IntoResponse {
    // `Config` serializes every secret as "[redacted]" and keeps the Redis
    // password out of its URLs.
    Json(EffectiveConfig {
        service: "tebra_debug",
        redis_target: state.ctx.redis.config().redacted_url(),
        shared: &state.ctx.config,
        tebra_debug: &state.settings,
    })
    .into_response()
}

async fn list_keys(
    State(state): State<DebugState>,
    RawQuery(query): RawQuery,
) -> Result<Json<KeyListing>, ApiError> {
    let params = Params::parse(query.as_deref(), &["workspace", "pattern", "limit"])?;
    let workspace = params.text("workspace").ok_or_else(|| {
        ApiError::bad_request(
            "missing_parameter",
            "`workspace` is required: the workspace (tenant) id whose keys to list",
        )
    })?;
    let tenant = Tenant::new("workspace", workspace)?;
    let limit = params.count("limit", DEFAULT_KEY_LIMIT, (1, keyscan::MAX_KEY_LIMIT))?;
    let query = KeyQuery::new(tenant, params.text("pattern").unwrap_or("*"), limit)?;
    let listing = keyscan::list_keys(&state.ctx.redis, &query, state.settings.time_budget).await?;
    tracing::info!(
        workspace = listing.workspace,
        returned = listing.keys.len(),
        complete = listing.complete,
        scan_calls = listing.scan_calls,
        "debug keys listed"
    );
    Ok(Json(listing))
}

/// The dashboard's files, compiled in: the function needs no internet and
/// no file system to serve them.
const PAGE: &str = include_str!("../assets/dashboard.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLES: &str = include_str!("../assets/dashboard.css");

/// Only its own script and styles, only its own origin for data.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn dashboard_file(state: &DebugState, content_type: &'static str, body: &'static str) -> Response {
    if state.ctx.config.admin_token.is_none() {
        return ApiError::not_found("no such route").into_response();
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn dashboard_page(State(state): State<DebugState>) -> Response {
    dashboard_file(&state, "text/html; charset=utf-8", PAGE)
}

async fn dashboard_script(State(state): State<DebugState>) -> Response {
    dashboard_file(&state, "text/javascript; charset=utf-8", SCRIPT)
}

async fn dashboard_styles(State(state): State<DebugState>) -> Response {
    dashboard_file(&state, "text/css; charset=utf-8", STYLES)
}
