//! `tebra_debug`: the diagnostics function an engineer opens when an
//! integration misbehaves.
//!
//! Routes (besides the common `/redis-health` and `/healthz`):
//! - `GET /status`: the service name and the number of keys in Redis, read
//!   through the fallback combinator: when Redis fails the answer is still
//!   `200`, with `"keys": null` and `"degraded": true`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use shared::AppContext;
use shared::fallback::with_fallback;

/// The function's router, common routes and layers included.
pub fn app(ctx: AppContext) -> Router {
    let routes = Router::new()
        .route("/status", get(status))
        .with_state(ctx.clone());
    shared::http::finish(routes, &ctx)
}

#[derive(Serialize)]
struct Status {
    service: &'static str,
    keys: Option<u64>,
    degraded: bool,
}

async fn status(State(ctx): State<AppContext>) -> Json<Status> {
    let keys = with_fallback(&ctx.redis, "status.dbsize", None, |mut c| async move {
        redis::cmd("DBSIZE")
            .query_async::<u64>(&mut c)
            .await
            .map(Some)
    })
    .await;
    Json(Status {
        service: "tebra_debug",
        degraded: keys.is_fallback(),
        keys: keys.value,
    })
}
