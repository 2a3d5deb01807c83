//! Authentication, tenant binding and request hardening through real
//! routers and a real plain server, against real `redis-server` processes
//! and a token issuer on loopback ([`shared::testkit::TestIdp`]).
//!
//! - `jwt`: `AUTH_MODE=jwt`: every bad credential, tenant binding, leeway,
//!   key rotation, an unreachable or stalled JWKS, claim shapes and grants.
//! - `platform`: `AUTH_MODE=platform`: the identity shapes Lambda events
//!   carry, Cloud Run's token headers, and nothing anywhere else.
//! - `admin`: the admin token's throttle and warnings.
//! - `server`: slowloris against the plain server; the connection cap.
//! - `answers`: the headers of every answer, error bodies that quote nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod answers;
mod jwt;
mod platform;
mod server;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use shared::http::Caller;
use shared::testkit::RedisServer;
use shared::{ApiError, AppContext, Config};

/// A context for `server` with `vars` as the environment.
pub fn ctx(server: &RedisServer, vars: &[(&str, String)]) -> AppContext {
    let mut env: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    env.push(("REDIS_URL".into(), server.url()));
    let config =
        Config::from_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .unwrap();
    AppContext::new(config).unwrap()
}

/// A tenant route that writes to Redis (`INCR ws:{t}:hits`) and one that
/// reads (`GET`), behind `bind_tenant` on `{tenant}`; plus the common routes.
pub fn app(ctx: &AppContext) -> Router {
    async fn hit(
        State(ctx): State<AppContext>,
        caller: Caller,
        Path(tenant): Path<String>,
    ) -> Result<axum::Json<serde_json::Value>, ApiError> {
        let key = shared::blocks::keys::Tenant::new("tenant", &tenant)?.key("hits");
        let mut conn = ctx.redis.conn()?;
        let n: i64 = redis::cmd("INCR")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|_| ApiError::internal())?;
        Ok(axum::Json(
            serde_json::json!({ "hits": n, "scope": caller.scope_id() }),
        ))
    }
    async fn read(
        State(ctx): State<AppContext>,
        Path(tenant): Path<String>,
    ) -> Result<axum::Json<serde_json::Value>, ApiError> {
        let key = shared::blocks::keys::Tenant::new("tenant", &tenant)?.key("hits");
        let mut conn = ctx.redis.conn()?;
        let n: Option<i64> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|_| ApiError::internal())?;
        Ok(axum::Json(serde_json::json!({ "hits": n })))
    }
    let routes = Router::new()
        .route("/tenants/{tenant}/hits", post(hit).get(read))
        .with_state(ctx.clone());
    let routes = shared::http::bind_tenant(routes, ctx, "tenant");
    shared::http::finish(routes, ctx)
}

/// `(name, value)` pairs as owned environment entries.
pub fn vars(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}
