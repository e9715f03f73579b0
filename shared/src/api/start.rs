//! `start`: POST /v1/tests.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use serde::Deserialize;
use uuid::Uuid;

use super::ApiError;
use super::extract::Json;
use crate::app::App;
use crate::services::auth::Caller;
use crate::services::cat::{self, StartRequest, TestConfig, TestConfigInput};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new().route("/v1/tests", post(start))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    pool_id: Uuid,
    #[serde(default, deserialize_with = "crate::wire::some")]
    student_id: Option<Uuid>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    organization_id: Option<Uuid>,
    #[serde(default)]
    config: TestConfigInput,
}

/// The test is the caller's; staff may start one for a student they teach or administer.
async fn start(
    State(app): State<App>,
    caller: Caller,
    Json(body): Json<Body>,
) -> Result<impl IntoResponse, ApiError> {
    let config = TestConfig::resolve(body.config)?;
    let started = cat::start(
        &app,
        &caller,
        StartRequest {
            pool_id: body.pool_id,
            student_id: body.student_id,
            organization_id: body.organization_id,
            config,
        },
    )
    .await?;
    let location = format!("/v1/tests/{}", started.test_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(started),
    ))
}
