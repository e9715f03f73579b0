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
use crate::services::courses::Position;
use crate::services::teach::{self, Reply, SessionView, Start, Summary};

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
        .merge(super::courses::routes())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    #[serde(default, deserialize_with = "crate::wire::some")]
    organization_id: Option<Uuid>,
    course_id: Uuid,
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    module_index: Option<u32>,
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    sub_topic_index: Option<u32>,
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    segment_index: Option<u32>,
}

/// A session is the caller's own. It begins where `module_index`,
/// `sub_topic_index` (both, or neither) and `segment_index` (0 unless given)
/// say, else where the student's progress through the course left off.
async fn create(
    State(app): State<App>,
    caller: Caller,
    Json(body): Json<NewSession>,
) -> Result<impl IntoResponse, ApiError> {
    let at = match (body.module_index, body.sub_topic_index, body.segment_index) {
        (Some(module_index), Some(sub_topic_index), segment) => Some(Position {
            module_index,
            sub_topic_index,
            segment_index: segment.unwrap_or(0),
        }),
        (None, None, None) => None,
        _ => {
            return Err(ApiError::invalid(
                "module_index and sub_topic_index go together (segment_index only with them)",
            ));
        }
    };
    let start = Start {
        course_id: body.course_id,
        organization_id: body.organization_id,
        at,
    };
    let reply = teach::create(&app, &caller, start).await?;
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
