//! `session`: GET /v1/tests/{id}.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::ApiError;
use super::extract::IdPath;
use crate::App;
use crate::cat::{self, Report};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new().route("/v1/tests/{id}", get(report))
}

async fn report(
    State(app): State<App>,
    IdPath(id): IdPath,
) -> Result<axum::Json<Report>, ApiError> {
    Ok(axum::Json(cat::report(&app, id).await?))
}
