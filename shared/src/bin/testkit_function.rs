//! A minimal function for the test kit's lifecycle tests (feature
//! `testkit`; never built for a release): `shared::start` and
//! `shared::serve` as every function's `main` calls them, around a user
//! route that reads Redis and one that echoes the request.
//!
//! - `GET /value`: one Redis `GET`; `200` with the value, or the Redis
//!   failure as `503` JSON with `Retry-After`.
//! - `ANY /echo/{*rest}` (and `/echo`): `200` JSON with the method, the
//!   path and query the router saw, the query's decoded pairs, and the body
//!   (its length, and the text when it is UTF-8).

use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, Uri};
use axum::routing::{any, get};
use shared::{ApiError, AppContext};

fn app(ctx: AppContext) -> Router {
    let redis = ctx.redis.clone();
    let routes = Router::new()
        .route(
            "/value",
            get(move || {
                let redis = redis.clone();
                async move {
                    let value: Option<String> = redis
                        .run(|mut c| async move {
                            redis::cmd("GET")
                                .arg("testkit:value")
                                .query_async(&mut c)
                                .await
                        })
                        .await
                        .map_err(ApiError::from)?;
                    Ok::<_, ApiError>(value.unwrap_or_default())
                }
            }),
        )
        .route("/echo", any(echo))
        .route("/echo/{*rest}", any(echo));
    shared::http::finish(routes, &ctx)
}

async fn echo(method: Method, uri: Uri, body: Bytes) -> axum::Json<serde_json::Value> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    axum::Json(serde_json::json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "pairs": pairs,
        "body_len": body.len(),
        "body": std::str::from_utf8(&body).ok(),
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    match shared::start("testkit_function") {
        Ok(ctx) => shared::serve(app(ctx.clone()), &ctx).await,
        Err(code) => code,
    }
}
