//! `teach`: tutoring sessions — POST /v1/teaching/sessions, GET
//! /v1/teaching/sessions/{id}, POST …/{id}/input, POST …/{id}/end.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::ApiError;
use super::extract::{IdPath, Json};
use crate::app::App;
use crate::services::auth::Caller;
use crate::services::teach::{self, Reply, SessionView, Summary};
use lectern_orchestrator::Lesson;

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/teaching/sessions", post(create))
        .route("/v1/teaching/sessions/{id}", get(view))
        .route("/v1/teaching/sessions/{id}/input", post(input))
        .route("/v1/teaching/sessions/{id}/end", post(end))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    #[serde(default, deserialize_with = "crate::wire::some")]
    organization_id: Option<Uuid>,
    course_id: String,
    #[serde(deserialize_with = "crate::wire::integer")]
    module_index: u32,
    #[serde(deserialize_with = "crate::wire::integer")]
    sub_topic_index: u32,
    #[serde(deserialize_with = "crate::wire::integer")]
    total_segments: u32,
}

/// A session is the caller's own.
async fn create(
    State(app): State<App>,
    caller: Caller,
    Json(body): Json<NewSession>,
) -> Result<impl IntoResponse, ApiError> {
    let lesson = Lesson {
        course_id: body.course_id,
        module_index: body.module_index,
        sub_topic_index: body.sub_topic_index,
        total_segments: body.total_segments,
    };
    let reply = teach::create(&app, &caller, body.organization_id, lesson).await?;
    let location = format!("/v1/teaching/sessions/{}", reply.session_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(reply),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInput {
    text: String,
}

async fn input(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<NewInput>,
) -> Result<axum::Json<Reply>, ApiError> {
    Ok(axum::Json(
        teach::input(&app, &caller, id, &body.text).await?,
    ))
}

async fn view(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<axum::Json<SessionView>, ApiError> {
    Ok(axum::Json(teach::view(&app, &caller, id).await?))
}

async fn end(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<axum::Json<Summary>, ApiError> {
    Ok(axum::Json(teach::end(&app, &caller, id).await?))
}
