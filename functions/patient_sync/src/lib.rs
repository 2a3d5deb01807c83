//! `patient_sync`: receives batches of patient records from a
//! practice-management system and hands the changes to downstream consumers.
//!
//! Routes (besides the common `/redis-health` and `/healthz`):
//! - `GET /practices/{practice_id}/patients/count`: how many patients the
//!   practice has on record, read through the fallback combinator (`null`
//!   and `"degraded": true` when Redis fails).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use shared::fallback::with_fallback;
use shared::keys::Tenant;
use shared::{ApiError, AppContext};

/// The function's router, common routes and layers included.
pub fn app(ctx: AppContext) -> Router {
    let routes = Router::new()
        .route(
            "/practices/{practice_id}/patients/count",
            get(patient_count),
        )
        .with_state(ctx.clone());
    shared::http::finish(routes, &ctx)
}

#[derive(Serialize)]
struct PatientCount {
    practice_id: String,
    patients: Option<u64>,
    degraded: bool,
}

async fn patient_count(
    State(ctx): State<AppContext>,
    Path(practice_id): Path<String>,
) -> Result<Json<PatientCount>, ApiError> {
    let practice = Tenant::new("practice_id", &practice_id)?;
    let key = practice.key("patients");
    let count = with_fallback(&ctx.redis, "patients.count", None, |mut c| async move {
        redis::cmd("HLEN")
            .arg(key)
            .query_async::<u64>(&mut c)
            .await
            .map(Some)
    })
    .await;
    Ok(Json(PatientCount {
        practice_id,
        degraded: count.is_fallback(),
        patients: count.value,
    }))
}
