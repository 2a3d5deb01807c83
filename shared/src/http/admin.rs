//! Admin authentication: a bearer token (`ADMIN_TOKEN`) compared in
//! constant time; without a token configured, admin routes do not exist.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::config::Secret;

/// Requires `Authorization: Bearer <token>` on every route of `routes`.
/// Without a token configured the routes answer `404`, as if absent: admin
/// endpoints are never open by default. The comparison takes the same time
/// wherever the presented token first differs.
pub fn admin_only<S>(routes: Router<S>, token: Option<Secret>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes.route_layer(middleware::from_fn_with_state(
        token.map(Arc::new),
        require_admin,
    ))
}

async fn require_admin(
    State(token): State<Option<Arc<Secret>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return ApiError::not_found("no such route").into_response();
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(p) if token.matches(p.as_bytes()) => next.run(req).await,
        _ => ApiError::unauthorized().into_response(),
    }
}
