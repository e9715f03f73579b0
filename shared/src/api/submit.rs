//! `submit`: POST /v1/tests/{id}/responses.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::Deserialize;

use super::ApiError;
use super::extract::{IdPath, Json};
use crate::app::App;
use crate::services::auth::Caller;
use crate::services::cat::{self, Submitted};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new().route("/v1/tests/{id}/responses", post(submit))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    question_id: String,
    response: String,
}

async fn submit(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<Body>,
) -> Result<axum::Json<Submitted>, ApiError> {
    Ok(axum::Json(
        cat::submit(&app, id, &caller, &body.question_id, &body.response).await?,
    ))
}
