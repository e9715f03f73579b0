//! `next`: GET /v1/tests/{id}/next.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::ApiError;
use super::extract::IdPath;
use crate::app::App;
use crate::services::auth::Caller;
use crate::services::cat::{self, Question};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new().route("/v1/tests/{id}/next", get(next))
}

async fn next(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<axum::Json<Question>, ApiError> {
    Ok(axum::Json(cat::current_question(&app, id, &caller).await?))
}
