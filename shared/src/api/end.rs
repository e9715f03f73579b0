//! `end`: POST /v1/tests/{id}/end.

use axum::Router;
use axum::extract::State;
use axum::routing::post;

use super::ApiError;
use super::extract::IdPath;
use crate::app::App;
use crate::services::auth::Caller;
use crate::services::cat::{self, Ended};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new().route("/v1/tests/{id}/end", post(end))
}

async fn end(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<axum::Json<Ended>, ApiError> {
    Ok(axum::Json(cat::end(&app, id, &caller).await?))
}
