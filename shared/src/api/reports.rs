//! `reports`: a test's report (GET /v1/tests/{id}), and a student's records:
//! GET /v1/students/{id}/tests and GET /v1/students/{id}/proficiency.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::ApiError;
use serde::Deserialize;
use uuid::Uuid;

use super::extract::{IdPath, Page, Query};
use crate::app::App;
use crate::services::CachedJson;
use crate::services::auth::Caller;
use crate::services::cat::{self, Report};
use crate::services::students;

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/tests/{id}", get(report))
        .route("/v1/students/{id}/tests", get(tests))
        .route("/v1/students/{id}/proficiency", get(proficiency))
}

async fn report(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<axum::Json<Report>, ApiError> {
    Ok(axum::Json(cat::report(&app, id, &caller).await?))
}

/// A student's tests per page: 20 unless asked, at most 100.
type TestsPage = Page<20, 100>;

async fn tests(
    State(app): State<App>,
    caller: Caller,
    IdPath(student): IdPath,
    page: TestsPage,
) -> Result<CachedJson, ApiError> {
    Ok(students::tests(&app, &caller, student, page.limit, page.offset).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProficiencyQuery {
    organization_id: Option<Uuid>,
}

async fn proficiency(
    State(app): State<App>,
    caller: Caller,
    IdPath(student): IdPath,
    Query(q): Query<ProficiencyQuery>,
) -> Result<CachedJson, ApiError> {
    Ok(students::proficiency(&app, &caller, student, q.organization_id).await?)
}
